#!/usr/bin/env bash
# Builds LLVM's OpenMP runtime (libomp) from a pinned release into /tmp/libomp,
# for cibuildwheel's macOS builds. The deployment target comes from the
# environment (MACOSX_DEPLOYMENT_TARGET), so the bundled libomp runs on every
# macOS the wheel claims to support. Untested on this project's Linux CI.
set -euo pipefail
LLVM_VERSION="${LLVM_VERSION:-18.1.8}"
base="https://github.com/llvm/llvm-project/releases/download/llvmorg-${LLVM_VERSION}"
work="$(mktemp -d)"
cd "$work"
for part in openmp cmake; do
  curl -fsSL -o "$part.tar.xz" "$base/$part-${LLVM_VERSION}.src.tar.xz"
  tar xf "$part.tar.xz"
  mv "$part-${LLVM_VERSION}.src" "$part"
done
# Universal2 is not needed: cibuildwheel builds each arch separately and sets ARCHFLAGS.
arch="$(echo "${ARCHFLAGS:--arch $(uname -m)}" | awk '{print $2}')"
cmake -S openmp -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/tmp/libomp \
  -DCMAKE_OSX_ARCHITECTURES="$arch" -DLIBOMP_INSTALL_ALIASES=OFF -DOPENMP_ENABLE_LIBOMPTARGET=OFF \
  -DLLVM_COMMON_CMAKE_UTILS="$work/cmake"
cmake --build build -j
cmake --install build
