#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Kestrel builds with, but only those that are absent.
# CUDA, cuDNN and GoogleTest are expected to be present already (see README: Requirements).
set -euo pipefail
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in cmake ninja-build g++ libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libssl-dev libcurl4-openssl-dev pkgconf; do
  have_pkg "$p" || need+=("$p")
done
# libcurl's headers may come from another flavour (gnutls/nss); any of them will do.
if [[ " ${need[*]} " == *" libcurl4-openssl-dev "* ]] && { have_pkg libcurl4-gnutls-dev || have_pkg libcurl4-nss-dev; }; then
  need=("${need[@]/libcurl4-openssl-dev}")
fi
# The fuzz targets (tests/fuzz, run by .ci/run) need clang with its libFuzzer runtime.
if [ "${KESTREL_BOOTSTRAP_FUZZ:-0}" = 1 ]; then
  command -v clang++ >/dev/null 2>&1 || need+=(clang)
  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
fi
# The gtest package name differs across releases; accept GoogleTest if CMake can already see it.
if [[ " ${need[*]} " == *" libgtest-dev "* ]] && [ -f /usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake ]; then
  need=("${need[@]/libgtest-dev}"); need=("${need[@]/libgmock-dev}")
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sed '/^$/d')
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "bootstrap: installing ${need[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
