#!/usr/bin/env bash
# Makes .gpu-build/build-gpu: a copy of build-gpu/ (the `gpu` preset, built here) without object
# files, dependency files and ninja's logs: the binaries, libkestrel, the CTest files and
# CMakeCache.txt that `tools/gpu_check.sh --no-build` needs, at about a third of the size, so that
# it and the CIFAR-10 pack (.gpu-data) fit the device tool's 64 MiB carry limit together.
# On the device machine, before the check:  rm -rf build-gpu && mv .gpu-build/build-gpu build-gpu
# (CTest files hold absolute paths of this checkout: the device runs in a copy at the same path.)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build-gpu/bin/kestrel_cuda_tests ] || { echo "gpu_slim_build: build build-gpu first (cmake --preset gpu && cmake --build --preset gpu)" >&2; exit 1; }
rm -rf .gpu-build/build-gpu
mkdir -p .gpu-build
tar -C . --exclude='*.o' --exclude='*.o.d' --exclude='*.d' --exclude='.ninja_*' -cf - build-gpu | tar -C .gpu-build -xf -
du -sh .gpu-build/build-gpu
