#!/usr/bin/env bash
# scripts/test_wheel.sh WHEEL [pytest args]: installs one of scripts/wheels.sh's
# wheels the way a user would, prints show_config(), and runs the test suite
# (default: -m "not slow") against it, from outside the source tree.
#
# - x86_64: a fresh venv of the wheel's CPython (python3.X on PATH).
# - aarch64: Debian's arm64 CPython 3.11 (scripts/arm64-root.sh) under
#   qemu-aarch64-static with QEMU_CPU=neoverse-n1 (on qemu's default CPU,
#   numpy's OpenBLAS picks an SME kernel and returns wrong float64 products);
#   numpy and the other test dependencies are aarch64 wheels installed with
#   pip --target --platform. Child processes (subprocess, multiprocessing)
#   run through a wrapper that starts qemu again, set as sys.executable.
# The test dependencies are pinned with hashes in scripts/lock/test-*.txt.
# FASTCONV_EXPECT_OPENMP=bundled makes tests/test_config.py require OpenMP and
# the libgomp bundled in the wheel.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
wheel="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
pytest_args=("$@")
[[ ${#pytest_args[@]} -gt 0 ]] || pytest_args=(-m "not slow")
cache="$repo/build/wheels"
name=$(basename "$wheel")
tag=$(cut -d- -f3 <<<"$name")            # cp311
case "$name" in
  *_x86_64.whl) arch=x86_64 ;;
  *_aarch64.whl) arch=aarch64 ;;
  *) echo "test_wheel.sh: not a manylinux x86_64/aarch64 wheel: $name" >&2; exit 2 ;;
esac
lock="$repo/scripts/lock/test-$tag-$arch.txt"
[[ -f "$lock" ]] || { echo "test_wheel.sh: no lock file $lock" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export FASTCONV_EXPECT_OPENMP=bundled
export FASTCONV_TEST_MNIST="${FASTCONV_TEST_MNIST:-$repo/../shared/data/mnist}"

if [[ $arch == x86_64 ]]; then
  py=$("$repo/scripts/find_python.sh" "${tag:2:1}.${tag:3}") \
    || { echo "test_wheel.sh: no CPython ${tag:2:1}.${tag:3} here" >&2; exit 1; }
  "$py" -m venv "$work/venv"
  run=("$work/venv/bin/python")
  "${run[@]}" -m pip install --quiet --no-deps --require-hashes -r "$lock"
  "${run[@]}" -m pip install --quiet --no-deps "$wheel"
else
  [[ $tag == cp311 ]] || { echo "test_wheel.sh: aarch64 tests need cp311" >&2; exit 1; }
  if ! command -v qemu-aarch64-static >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      qemu-user-static >&2
  fi
  root=$("$repo/scripts/arm64-root.sh")
  sum=$(sha256sum "$lock" | cut -d' ' -f1)
  site="$cache/aarch64-site-${sum:0:12}"
  plat=(--only-binary :all: --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64
        --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp --abi cp311)
  if [[ ! -f "$site/.done" ]]; then
    rm -rf "$site"
    python3 -m pip install --quiet --no-deps --require-hashes "${plat[@]}" \
      --target "$site" -r "$lock"
    touch "$site/.done"
  fi
  python3 -m pip install --quiet --no-deps "${plat[@]}" --target "$work/pkg" "$wheel"
  # The entry point the CLI tests may run, and an interpreter children can exec.
  mkdir -p "$work/shim"
  cat >"$work/shim/python" <<SH
#!/bin/sh
exec qemu-aarch64-static -L "$root" "$root/usr/bin/python3.11" "\$@"
SH
  chmod +x "$work/shim/python"
  cat >"$work/shim/sitecustomize.py" <<PY
import sys
sys.executable = "$work/shim/python"
PY
  printf '#!/bin/sh\nexec "%s" -m fastconv "$@"\n' "$work/shim/python" >"$work/shim/fastconv"
  chmod +x "$work/shim/fastconv"
  export QEMU_CPU=neoverse-n1
  export PYTHONPATH="$work/shim:$work/pkg:$site"
  export PATH="$work/shim:$PATH"
  run=("$work/shim/python")
fi

cd "$work"   # outside the source tree: the installed wheel is what is tested
echo "== $name"
"${run[@]}" -c "import fastconv; fastconv.show_config()"
# FASTCONV_WHEEL_TESTS: test files (relative to tests/) instead of the whole suite.
targets=("$repo/tests")
if [[ -n "${FASTCONV_WHEEL_TESTS:-}" ]]; then
  targets=()
  for t in $FASTCONV_WHEEL_TESTS; do targets+=("$repo/tests/$t"); done
fi
"${run[@]}" -m pytest "${targets[@]}" -q -p no:cacheprovider "${pytest_args[@]}"
