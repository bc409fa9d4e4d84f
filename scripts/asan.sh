#!/usr/bin/env bash
# Build fastconv's extension with AddressSanitizer + UndefinedBehaviorSanitizer and
# run the kernel and layer tests against it.
#
#   scripts/asan.sh [extra pytest arguments]
#
# Everything lives under build/ (gitignored):
#   build/asan-venv   a private venv (no system site-packages) with the test dependencies
#   build/asan        the CMake build directory of the sanitized extension
#   build/asan-logs   pytest.log: the verbose test log, sanitizer reports included
#
# Environment:
#   FASTCONV_FUZZ_EXAMPLES  examples per fuzz test (default here: 5000)
#   ASAN_OPTIONS / UBSAN_OPTIONS  override the defaults below (e.g. UBSAN_OPTIONS=
#                           halt_on_error=0:print_stacktrace=1 to list every UB site)
#   PYTHON                  interpreter to build the venv from (default: python3)
#   ASAN_REBUILD=1          force a rebuild of the extension
#
# Exit status: pytest's, or 1 if any sanitizer report was written. A report with
# abort_on_error/halt_on_error ends the run at that point: the log shows which test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/build/asan-venv"
BUILD="$ROOT/build/asan"
LOGS="$ROOT/build/asan-logs"
CC="${CC:-gcc}"
SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g"

start=$(date +%s)
say() { printf '\n== %s\n' "$*"; }

# --- 1. the venv -----------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import numpy, pytest, hypothesis, threadpoolctl, tqdm, matplotlib, \
        scikit_build_core, Cython, cython_cmake" 2>/dev/null; then
    say "installing test and build dependencies into the venv"
    "$PY" -m pip install --quiet --disable-pip-version-check \
        numpy pytest hypothesis threadpoolctl tqdm matplotlib \
        scikit-build-core cython cython-cmake cmake ninja
fi

# --- 2. the sanitized extension ------------------------------------------------------
# CMakeLists.txt adds -O3 as a target option, after CMAKE_C_FLAGS; this launcher
# appends -O1 to every compile line so that the last -O (which gcc obeys) is ours.
mkdir -p "$BUILD"
LAUNCHER="$BUILD/cc-launcher.sh"
cat > "$LAUNCHER" <<'EOF'
#!/bin/sh
exec "$@" -O1 -g -fno-omit-frame-pointer
EOF
chmod +x "$LAUNCHER"

stamp="$BUILD/.sources.sha256"
sources_sha=$(cat csrc/* src/fastconv/*.pyx CMakeLists.txt pyproject.toml | sha256sum | cut -d' ' -f1)
# The sanitized extension cannot be imported without LD_PRELOAD: find it on disk instead.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
find_ext() { compgen -G "$SITE/fastconv/_ext*.so" | head -n 1 || true; }
if [ "${ASAN_REBUILD:-0}" = 1 ] || [ -z "$(find_ext)" ] || \
        [ "$(cat "$stamp" 2>/dev/null)" != "$sources_sha" ]; then
    say "building the extension with: $SAN_FLAGS"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps \
        --force-reinstall . \
        -Cbuild-dir="$BUILD" \
        -Ccmake.build-type=Debug \
        -Cinstall.strip=false \
        -Ccmake.define.CMAKE_C_COMPILER="$CC" \
        -Ccmake.define.CMAKE_C_FLAGS="$SAN_FLAGS" \
        -Ccmake.define.CMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
        -Ccmake.define.CMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
        -Ccmake.define.CMAKE_C_COMPILER_LAUNCHER="$LAUNCHER"
    echo "$sources_sha" > "$stamp"
fi

# --- 3. run the tests under the sanitizers ---------------------------------------------
ASAN_LIB="$("$CC" -print-file-name=libasan.so)"
UBSAN_LIB="$("$CC" -print-file-name=libubsan.so)"
EXT="$(find_ext)"
# Read the dynamic section into a variable first: with pipefail, `readelf | grep -q`
# fails whenever grep exits before readelf has finished writing (SIGPIPE).
needed="$(readelf -d "$EXT")"
if ! grep -q "libasan" <<<"$needed"; then
    echo "error: $EXT is not linked against libasan; its dynamic section:" >&2
    echo "$needed" >&2
    echo "compile and link lines of the sanitized build:" >&2
    grep -h -E "FLAGS|LINK_FLAGS" "$BUILD"/build.ninja "$BUILD"/CMakeFiles/rules.ninja 2>/dev/null | head -n 20 >&2 || true
    exit 2
fi
rm -rf "$LOGS"
mkdir -p "$LOGS"

export LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB"
# allocator_may_return_null: some tests ask for terabytes on purpose and expect MemoryError.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export FASTCONV_FUZZ_EXAMPLES="${FASTCONV_FUZZ_EXAMPLES:-5000}"
export FASTCONV_BACKEND=c
export PYTHONFAULTHANDLER=1

TESTS=(tests/test_ops.py tests/test_conv.py tests/test_blocked_conv.py tests/test_blocked_pass.py
       tests/test_pooling_rules.py
       tests/test_layouts.py tests/test_errors.py
       tests/test_layers.py tests/test_fuzz.py tests/test_bad_input.py)
say "extension: $EXT"
say "ASAN_OPTIONS=$ASAN_OPTIONS"
say "UBSAN_OPTIONS=$UBSAN_OPTIONS"
say "FASTCONV_FUZZ_EXAMPLES=$FASTCONV_FUZZ_EXAMPLES; running: ${TESTS[*]}"
# --capture=sys: pytest captures Python's sys.stdout/stderr only, so the sanitizers'
# reports (written to file descriptor 2 by C code) reach the log even when a report
# kills the process in the middle of a test. -v names each test before it runs.
LOG="$LOGS/pytest.log"
set +e
"$PY" -m pytest "${TESTS[@]}" -p no:cacheprovider -v --capture=sys -o addopts="" -rfEX \
    "$@" 2>&1 | tee "$LOG" | grep -v -E " (PASSED|SKIPPED|XFAIL)( |$)"
status=${PIPESTATUS[0]}
set -e
unset LD_PRELOAD

# --- 4. what the sanitizers said -------------------------------------------------------
count=$(grep -c -E "ERROR: AddressSanitizer|runtime error:" "$LOG" || true)
say "sanitizer reports: $count (full log: $LOG)"
if [ "$count" -gt 0 ]; then
    printf 'by source location:\n'
    grep -o -E "ERROR: AddressSanitizer: [a-z-]+|[^ ]+:[0-9]+:[0-9]+: runtime error: [a-z -]+" \
        "$LOG" | sort | uniq -c
    printf '\nfirst report, with the test that was running:\n'
    grep -n -m1 -B3 -A25 -E "ERROR: AddressSanitizer|runtime error:" "$LOG"
    [ "$status" -eq 0 ] && status=1
fi
grep -E "^(=+ .* in [0-9.]+s|[0-9]+ (passed|failed))" "$LOG" | tail -n 1 || true
say "pytest exit status $status; wall time $(( $(date +%s) - start )) s"
exit "$status"
