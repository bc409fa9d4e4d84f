"""Print what .ci/run's second numerics run uses, on one line:

    <this CPU's OpenBLAS kernel family> <an older family> <ISAs,comma,separated>

The older family is one this CPU can run (OpenBLAS's DYNAMIC_ARCH builds take
OPENBLAS_CORETYPE); the ISAs are the builds of fastconv's direct kernels below
the best one this CPU runs, for FASTCONV_ISA.
"""
import os
import subprocess
import sys

# Each family with an older one every CPU of that family also runs.
OLDER = {
    "sapphirerapids": "SkylakeX", "cooperlake": "SkylakeX", "skylakex": "Haswell",
    "zen": "Sandybridge", "haswell": "Sandybridge", "sandybridge": "Nehalem",
    "nehalem": "Prescott",
}


def blas_family(env=None):
    code = ("import threadpoolctl, numpy\n"
            "print(next((l.get('architecture') or '?') for l in threadpoolctl.threadpool_info()"
            " if l['user_api'] == 'blas'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    return out


def main():
    native = blas_family()
    if os.uname().machine != "x86_64":
        sys.exit("other_numerics.py knows OpenBLAS's x86_64 kernel families only")
    older = OLDER.get(native.lower(), "Prescott")
    # The kernel family must really change, or the second run proves nothing.
    got = blas_family({**os.environ, "OPENBLAS_CORETYPE": older})
    if got.lower() != older.lower():
        sys.exit(f"OPENBLAS_CORETYPE={older} gave OpenBLAS kernels {got!r}, not {older}")
    import fastconv
    from fastconv import _runtime
    best = fastconv.build_config()["isa"]
    below = _runtime.ISAS[:_runtime.ISAS.index(best)] if best in _runtime.ISAS else ()
    print(native, older, ",".join(below) or "baseline")


if __name__ == "__main__":
    main()
