#!/usr/bin/env bash
# Makes .gpu-build/build-gpu: a copy of build-gpu/ (the `gpu` preset, built here) without object
# files, dependency files and ninja's logs: the binaries, libkestrel, the CTest files and
# CMakeCache.txt that `tools/gpu_check.sh --no-build` needs, at about a third of the size, so that
# it and the CIFAR-10 pack (.gpu-data) fit the device tool's 64 MiB carry limit together.
# On the device machine, `tools/gpu_check.sh --no-build` moves it into place (the binaries and CTest
# files hold absolute paths of this checkout: the device runs in a copy at the same path).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build-gpu/bin/kestrel_cuda_tests ] || { echo "gpu_slim_build: build build-gpu first (cmake --preset gpu && cmake --build --preset gpu)" >&2; exit 1; }
cmake --build build-gpu -j "$(nproc)" > /dev/null || { echo "gpu_slim_build: building build-gpu failed (run cmake --build build-gpu to see why)" >&2; exit 1; }
rm -rf .gpu-build/build-gpu
mkdir -p .gpu-build
tar -C . --exclude='*.o' --exclude='*.o.d' --exclude='*.d' --exclude='.ninja_*' -cf - build-gpu | tar -C .gpu-build -xf -
# The sources it was built from, so that gpu_check.sh --no-build refuses a tree built from other
# ones: build-gpu is brought up to date first (nothing to do when it is), then the checksums taken.
git ls-files -z -- CMakeLists.txt CMakePresets.json cmake core kernels layers python_free_examples tests \
  | xargs -0 sha256sum > .gpu-build/build-gpu/SOURCES.sha256
echo "gpu_slim_build: $(wc -l < .gpu-build/build-gpu/SOURCES.sha256) source checksums in .gpu-build/build-gpu/SOURCES.sha256"
# The lossy CIFAR-10 pack and its converter, carried as .gpu-data (see the project brief's data
# folder, ../shared/data next to this repository, or KESTREL_SHARED_DATA).
shared=${KESTREL_SHARED_DATA:-../shared/data}
if [ ! -f .gpu-data/cifar10-jpeg.pack.gz ] && [ -f "$shared/cifar10-jpeg.pack.gz" ]; then
  mkdir -p .gpu-data && cp "$shared/cifar10-jpeg.pack.gz" "$shared/to_cifar_bin.py" .gpu-data/
fi
[ -f .gpu-data/cifar10-jpeg.pack.gz ] || echo "gpu_slim_build: no .gpu-data/cifar10-jpeg.pack.gz (no $shared): training and experiments will run without CIFAR-10" >&2
du -sh .gpu-build/build-gpu .gpu-data 2>/dev/null
