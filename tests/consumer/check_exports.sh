#!/usr/bin/env bash
# Checks the dynamic symbols a built libkestrel.so exports against cmake/kestrel.map: every one
# belongs to namespace kestrel (its functions and data, or the type information, virtual tables
# and thunks of its classes), none is the standard library's, nlohmann::json's, CUB's or the
# CUDA runtime's; and the API a program needs is there (CTest: library_exports).
# Usage: check_exports.sh LIBRARY
set -euo pipefail
lib=${1:?usage: check_exports.sh LIBRARY}
if ! command -v nm >/dev/null; then
  echo "check_exports: nm (binutils) is not installed" >&2
  exit 1
fi
[ -f "$lib" ] || { echo "check_exports: no library at $lib" >&2; exit 1; }
# "ADDRESS TYPE NAME": the demangled name may contain spaces.
names=$(nm -D --defined-only -C "$lib" | cut -d' ' -f3-)
total=$(printf '%s\n' "$names" | grep -c . || true)
ours='^((typeinfo name|typeinfo|vtable|VTT|guard variable) for |(non-)?virtual thunk to )?kestrel::'
foreign=$(printf '%s\n' "$names" | grep -Ev "$ours" | grep . || true)
status=0
if [ -n "$foreign" ]; then
  echo "check_exports: $lib exports $(printf '%s\n' "$foreign" | wc -l) of its $total symbols from outside" \
       "namespace kestrel (cmake/kestrel.map should hide them), e.g.:" >&2
  printf '%s\n' "$foreign" | head -20 | cut -c1-200 >&2
  status=1
fi
# What a program linking the library must find (a too narrow map would hide these).
for want in 'kestrel::Tensor::empty(' 'kestrel::Executor::run(' 'kestrel::Graph::input(' \
            'kestrel::ParameterStore::ParameterStore(' 'kestrel::Context::Context(' \
            'typeinfo for kestrel::Error' 'vtable for kestrel::Error' 'typeinfo for kestrel::OutOfMemoryError'; do
  # A here-string, not a pipe: grep -q stops at the first match, and printf writing into the
  # closed pipe would fail the pipeline under pipefail now and then.
  if ! grep -qF -- "$want" <<< "$names"; then
    echo "check_exports: $lib does not export $want" >&2
    status=1
  fi
done
if [ "$status" -eq 0 ]; then
  echo "check_exports: $lib exports $total symbols, all of namespace kestrel"
fi
exit "$status"
