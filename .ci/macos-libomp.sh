#!/usr/bin/env bash
# Builds LLVM's OpenMP runtime (libomp) from a pinned, checksummed release into
# /tmp/libomp, for cibuildwheel's macOS builds. cibuildwheel runs this once per
# runner (before-all), and [tool.cibuildwheel.macos] builds only the runner's
# own architecture ("native"), so this builds libomp for that one
# architecture, with the deployment target its wheels use. Never run here (no
# macOS in this project's CI); the checksums are those Homebrew's libomp
# formula publishes for these files.
set -euo pipefail
LLVM_VERSION=18.1.8
declare -A sha256=(
  [openmp]=60ed57245e73894e4a2a89b15889f367bd906abfe6d3f92e1718223d4b496150
  [cmake]=59badef592dd34893cd319d42b323aaa990b452d05c7180ff20f23ab1b41e837
)
arch="$(uname -m)"
case "$arch" in
  x86_64) target=10.13 ;;   # must match [[tool.cibuildwheel.overrides]] in pyproject.toml
  arm64) target=11.0 ;;
  *) echo "macos-libomp.sh: unknown architecture $arch" >&2; exit 1 ;;
esac
if [[ -n "${MACOSX_DEPLOYMENT_TARGET:-}" && "$MACOSX_DEPLOYMENT_TARGET" != "$target" ]]; then
  echo "macos-libomp.sh: MACOSX_DEPLOYMENT_TARGET=$MACOSX_DEPLOYMENT_TARGET, expected $target" >&2
  exit 1
fi
export MACOSX_DEPLOYMENT_TARGET="$target"
base="https://github.com/llvm/llvm-project/releases/download/llvmorg-${LLVM_VERSION}"
work="$(mktemp -d)"
cd "$work"
for part in openmp cmake; do
  curl -fsSL -o "$part.tar.xz" "$base/$part-${LLVM_VERSION}.src.tar.xz"
  echo "${sha256[$part]}  $part.tar.xz" | shasum -a 256 -c -
  tar xf "$part.tar.xz"
  mv "$part-${LLVM_VERSION}.src" "$part"
done
cmake -S openmp -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/tmp/libomp \
  -DCMAKE_OSX_ARCHITECTURES="$arch" -DCMAKE_OSX_DEPLOYMENT_TARGET="$target" \
  -DLIBOMP_INSTALL_ALIASES=OFF -DOPENMP_ENABLE_LIBOMPTARGET=OFF \
  -DLLVM_COMMON_CMAKE_UTILS="$work/cmake"
cmake --build build -j
cmake --install build
