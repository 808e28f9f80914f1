#!/usr/bin/env bash
# Compiles every ```cpp block of a Markdown file (the README, docs/LIBRARY.md) against the build tree's headers
# (-fsyntax-only): its #include lines at file scope, the rest as the body of main(). Keeps the
# examples in step with the API (CTest: readme_snippets, library_snippets).
# Usage: check_readme_snippets.sh FILE.md CXX INCLUDE_DIR...
set -euo pipefail
md=$1 cxx=$2
shift 2
inc=()
for d in "$@"; do [ -n "$d" ] && inc+=(-I "$d"); done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk -v dir="$work" '/^```cpp/ { n++; f = 1; next } /^```/ { f = 0; next } f { print > (dir "/block" n ".txt") }' "$md"
n=0
for b in "$work"/block*.txt; do
  if [ ! -e "$b" ]; then
    echo "snippets: no C++ blocks in $md" >&2
    exit 1
  fi
  src=${b%.txt}.cpp
  {
    grep '^#include' "$b" || true
    echo 'int main() {'
    grep -v '^#include' "$b" || true
    echo '  return 0;'
    echo '}'
  } > "$src"
  if ! "$cxx" -std=c++17 -fsyntax-only "${inc[@]}" "$src"; then
    echo "snippets: C++ block $(basename "$b" .txt) of $md does not compile; as checked:" >&2
    cat -n "$src" >&2
    exit 1
  fi
  n=$((n + 1))
done
echo "snippets: the $n C++ blocks of $md compile"
