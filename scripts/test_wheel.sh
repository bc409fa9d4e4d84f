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
#   The whole non-slow suite runs under FASTCONV_TEST_PROFILE=emulated
#   (tests/conftest.py): every test file and function, but the backend fixture
#   at numpy, c-1t and c-2t (not c-3t) and at most 10 hypothesis examples per
#   property test, derandomised; emulation is ~20-50x slower than native.
#   By default the tests marked emulation_heavy are deselected there too
#   (-m "not slow and not emulation_heavy"): tests that each take from
#   ~15 s to ~2.5 min under qemu, or share a set-up that does, listed with
#   their reasons in tests/conftest.py (EMULATION_HEAVY and
#   EMULATION_HEAVY_FIXTURES):
#     test_bench.py: the 4 tests on one `fastconv bench --quick` run;
#     test_book_pickle.py: the 3 DeepConvNet ones (SimpleConvNet's still run);
#     test_book_scripts.py: train_convnet_runs_unchanged, deep_convnet_scripts,
#       float32_mode_trains (the book's scripts training in a child qemu);
#     test_checkpoint.py: png_written_by_viz_is_atomic (fastconv viz);
#     test_cli.py: train_module_entry_point, train_is_reproducible_and_seeded,
#       train_other_models (3), train_numpy_backend, train_cosine_schedules (2),
#       train_presets_and_overrides,
#       viz_writes_pictures, train_on_a_full_disk, ctrl_c_saves_a_checkpoint
#       (whole training runs; the shared small_run training and the tests on
#       it still run);
#     test_export_modelcard.py: train_writes_a_full_card (fastconv train);
#     test_predict.py: every test on the module's `trained` net (one epoch on
#       10,000 images: 160 s), rerendered_digits_are_recognised among them;
#     test_export.py: every test on the module's `nets` (each model trained a
#       few steps: 214 s; most of them need onnx or torch, absent on aarch64);
#     test_cli.py: eval_confusion_matrix (64 s);
#     test_models.py: gradient_matches_numerical_gradient of AlexNet and
#       DeepConvNet (6; the other four models still run on every setting).
# The test dependencies are pinned with hashes in scripts/lock/test-*.txt.
# FASTCONV_EXPECT_OPENMP=bundled makes tests/test_config.py require OpenMP and
# the libgomp bundled in the wheel.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
wheel="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
pytest_args=("$@")
explicit_args=${#pytest_args[@]}
[[ $explicit_args -gt 0 ]] || pytest_args=(-m "not slow")
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
  export FASTCONV_TEST_PROFILE="${FASTCONV_TEST_PROFILE:-emulated}"
  [[ $explicit_args -gt 0 ]] || pytest_args=(-m "not slow and not emulation_heavy")
  export PYTHONPATH="$work/shim:$work/pkg:$site"
  export PATH="$work/shim:$PATH"
  run=("$work/shim/python")
fi

cd "$work"   # outside the source tree: the installed wheel is what is tested
echo "== $name"
"${run[@]}" -c "import fastconv; fastconv.show_config()"
# FASTCONV_WHEEL_TESTS: test files (relative to tests/) instead of the whole
# suite, on either architecture.
targets=("$repo/tests")
if [[ -n "${FASTCONV_WHEEL_TESTS:-}" ]]; then
  targets=()
  for t in $FASTCONV_WHEEL_TESTS; do targets+=("$repo/tests/$t"); done
fi
"${run[@]}" -m pytest "${targets[@]}" -q -p no:cacheprovider "${pytest_args[@]}"
