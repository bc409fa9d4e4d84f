#!/usr/bin/env bash
# scripts/wheels.sh OUTDIR: builds fastconv's manylinux_2_17 (manylinux2014)
# wheels for the running CPython, x86_64 and aarch64, without containers, and
# leaves exactly those repaired wheels in OUTDIR.
#
# - x86_64: the host gcc; aarch64: Debian's gcc-aarch64-linux-gnu cross
#   compiler, against the arm64 CPython headers of scripts/arm64-root.sh.
# - OpenMP is required (FASTCONV_REQUIRE_OPENMP=ON). The host's libgomp needs
#   glibc 2.34, so auditwheel bundles instead the libgomp that scikit-learn
#   1.3.2's manylinux2014 wheels carry (built for glibc 2.17, GOMP_4.5).
# - Pinned and checksummed: the build tools (scripts/lock/build.txt, installed
#   with --require-hashes), the two scikit-learn wheels (sha256 below), the
#   Debian packages (scripts/lock/debian-arm64.txt). Everything is cached
#   under build/wheels; SOURCE_DATE_EPOCH is the last commit's time.
#
# Environment: PYTHON (default python3) picks the CPython; FASTCONV_WHEEL_ARCHS
# (default "x86_64 aarch64") the architectures; aarch64 needs a CPython 3.11
# (the arm64 headers are bookworm's 3.11). Run as root on Debian bookworm:
# missing apt packages (the cross compiler) are installed.
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: scripts/wheels.sh OUTDIR" >&2
  exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
python="${PYTHON:-python3}"
archs="${FASTCONV_WHEEL_ARCHS:-x86_64 aarch64}"
cache="$repo/build/wheels"
mkdir -p "$cache"
tag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 315532800)}"
log() { echo "== wheels.sh: $*" >&2; }

# --- the build tools, pinned with hashes, one venv per CPython ----------------
venv="$cache/venv-$tag"
lock_sum=$(sha256sum "$repo/scripts/lock/build.txt" | cut -d' ' -f1)
if [[ ! -f "$venv/.lock-sha256" || "$(cat "$venv/.lock-sha256")" != "$lock_sum" ]]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # The pip a CPython ships may predate -C (config settings, pip 23.1): pin one that has it.
  "$venv/bin/python" -m pip install --quiet --require-hashes -r "$repo/scripts/lock/pip.txt"
  "$venv/bin/python" -m pip install --quiet --no-deps --require-hashes \
    -r "$repo/scripts/lock/build.txt"
  echo "$lock_sum" >"$venv/.lock-sha256"
fi
export PATH="$venv/bin:$PATH"

# --- libgomp for glibc 2.17, from scikit-learn 1.3.2's manylinux2014 wheels ---
declare -A sklearn_sha=(
  [x86_64]=fc4144a5004a676d5022b798d9e573b05139e77f271253a4703eed295bde0433
  [aarch64]=3271552a5eb16f208a6f7f617b8cc6d1f137b52c8a1ef8edf547db0259b2c9fb
)
gomp_dir() {  # prints a folder holding libgomp.so.1 for arch $1
  local arch=$1 dir="$cache/gomp-$1"
  if [[ ! -f "$dir/libgomp.so.1" ]]; then
    local whl="scikit_learn-1.3.2-cp311-cp311-manylinux_2_17_${arch}.manylinux2014_${arch}.whl"
    mkdir -p "$cache/downloads" "$dir"
    if [[ ! -f "$cache/downloads/$whl" ]]; then
      python -m pip download --quiet --no-deps --only-binary :all: \
        --platform "manylinux2014_$arch" --python-version 3.11 --implementation cp \
        -d "$cache/downloads" scikit-learn==1.3.2 >&2
    fi
    echo "${sklearn_sha[$arch]}  $cache/downloads/$whl" | sha256sum --quiet -c - >&2
    local member
    member=$(python -m zipfile -l "$cache/downloads/$whl" | awk '/scikit_learn.libs\/libgomp/ {print $1}')
    python - "$cache/downloads/$whl" "$member" "$dir/libgomp.so.1" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as f:
    f.write(z.read(sys.argv[2]))
PY
  fi
  echo "$dir"
}

# --- one wheel ------------------------------------------------------------------
build_one() {
  local arch=$1 stage="$cache/stage-$tag-$1"
  rm -rf "$stage" && mkdir -p "$stage/raw" "$stage/repaired"
  local -a cfg=(-Ccmake.define.FASTCONV_REQUIRE_OPENMP=ON
                -Cbuild-dir="$cache/build-$tag-$arch")
  local -a env=()
  if [[ $arch == aarch64 ]]; then
    [[ $tag == cp311 ]] || { echo "aarch64 wheels need CPython 3.11 here, not $tag" >&2; exit 1; }
    if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
      log "installing Debian's aarch64 cross compiler"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross >&2
    fi
    local root
    root=$("$repo/scripts/arm64-root.sh")
    cat >"$stage/toolchain.cmake" <<TC
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
TC
    cfg+=(-Ccmake.args=--toolchain="$stage/toolchain.cmake"
          -Ccmake.define.Python_INCLUDE_DIR="$root/usr/include/python3.11"
          -Ccmake.define.CMAKE_C_FLAGS="-isystem $root/usr/include")
    env=(_PYTHON_HOST_PLATFORM=linux-aarch64
         SETUPTOOLS_EXT_SUFFIX=.cpython-311-aarch64-linux-gnu.so)
  fi
  log "building $tag $arch"
  env "${env[@]}" python -m pip wheel --quiet --no-deps --no-build-isolation \
    "${cfg[@]}" -w "$stage/raw" "$repo" >&2
  local gomp
  gomp=$(gomp_dir "$arch")
  # --plat lists only the host's architecture; "auto" takes the most
  # compatible tag the wheel satisfies, checked below.
  LD_LIBRARY_PATH="$gomp" auditwheel repair --plat auto \
    -w "$stage/repaired" "$stage"/raw/*.whl >&2
  local wheel
  wheel=$(ls "$stage"/repaired/*.whl)
  # What auditwheel says of the repaired wheel, and what the wheel holds.
  local shown listing
  shown=$(auditwheel show "$wheel")
  if ! grep -q "manylinux_2_17_$arch" <<<"$shown"; then
    echo "$shown" >&2
    echo "auditwheel does not report manylinux_2_17_$arch for $(basename "$wheel")" >&2
    exit 1
  fi
  listing=$(python -m zipfile -l "$wheel")
  for want in "fastconv.libs/libgomp" "licenses/LICENSE" "fastconv/_ext.pyi"; do
    grep -q "$want" <<<"$listing" || { echo "$(basename "$wheel") lacks $want" >&2; exit 1; }
  done
  if grep -q '\.pyx' <<<"$listing"; then
    echo "$(basename "$wheel") ships a .pyx" >&2
    exit 1
  fi
  cp "$wheel" "$out/"
  log "$(basename "$wheel")"
}

for arch in $archs; do
  build_one "$arch"
done
