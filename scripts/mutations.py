"""Known-bad patches that the test suite must catch, one at a time.

    python scripts/mutations.py [--keep]

Copies the tracked files to a scratch folder, installs that copy once
(editable, rebuilt on import, into a venv that sees this interpreter's
packages), then for each mutant: applies its patch, runs the tests named for
it, and restores the file. A mutant is killed when those tests fail. Prints a
table and exits 1 if any mutant survived (or its patch no longer applies).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (name, file, text, replacement, pytest arguments)
MUTANTS = [
    ("Adam kernel skips the last element on more than one thread",
     "csrc/optim_impl.h",
     "b * block + block < size ? b * block + block : size,",
     "b * block + block < size ? b * block + block : size - (nthreads > 1),",
     ["tests/test_optim_trainer.py", "-k", "adam_kernel"]),
    ("direct conv2d output one ulp off on more than one thread",
     "csrc/conv_direct_driver.h",
     "  free(wpack);\n  return failed ? -1 : 0;",
     "  if (nthreads > 1 && n > 0) { uint32_t u_; memcpy(&u_, out, 4); u_++; "
     "memcpy(out, &u_, 4); }\n"
     "  free(wpack);\n  return failed ? -1 : 0;",
     ["tests/test_conv.py", "-k", "bits_do_not_depend"]),
    ("average-pool backward scaled by 1 + 1e-6",
     "csrc/pooling_impl.h",
     "const T g = dout[oh * ow_count + ow] * inv;",
     "const T g = dout[oh * ow_count + ow] * inv * (T)1.000001;",
     ["tests/test_ops.py", "-k", "avg_pool"]),
    ("max pooling ties go to the last maximum",
     "csrc/pooling_impl.h",
     "const int take = (v > best) | ((v != v) & (best == best));",
     "const int take = (v >= best) | ((v != v) & (best == best));",
     ["tests/test_ops.py", "-k", "max_pool"]),
    ("direct-path bias gradient averaged instead of summed",
     "src/fastconv/ops/conv.py",
     "    db = d.sum(axis=(0, 2, 3))\n",
     "    db = d.mean(axis=(0, 2, 3))\n",
     ["tests/test_conv.py", "-k", "direct_layer_gradients"]),
    ("FASTCONV_ISA=baseline ignored by the direct kernels",
     "csrc/conv_direct.c",
     "if (fc_force_baseline || fc_isa_cap < 1) return 0;",
     "if (fc_force_baseline) return 0;",
     ["tests/test_config.py", "-k", "fastconv_isa"]),
    ("blocked weight gradient: a tap's rectangle one output column short",
     "csrc/conv_blocked_impl.h",
     "const fc_int xhi = a->w + pw - j < ow ? a->w + pw - j : ow;",
     "const fc_int xhi = (a->w + pw - j < ow ? a->w + pw - j : ow) - (xlo == 0);",
     ["tests/test_blocked_conv.py", "-k", "each_isa"]),
    ("blocked weight gradient drops the last chunk's partial on more than one thread",
     "csrc/conv_blocked.c",
     "FC_TN(fc_bk_reduce)(ws, chunks, psize, f, c, kh * kw, a.ncb, cbi, cb, dw));",
     "FC_TN(fc_bk_reduce)(ws, chunks - (nthreads > 1 && chunks > 1), psize, f, c, kh * kw,\n"
     "                                      a.ncb, cbi, cb, dw));",
     ["tests/test_blocked_conv.py", "-k", "bits_do_not_depend"]),
    ("blocked 2x2 max pooling: ties go to the last maximum",
     "csrc/pool_blocked.c",
     "    const fc_pb_v4i take = (v > acc) | ((v != v) & (acc == acc));\n"
     "    acc = (fc_pb_v4f)(((fc_pb_v4i)v & take) | ((fc_pb_v4i)acc & ~take));\n  }\n"
     "  if (relu)",
     "    const fc_pb_v4i take = (v >= acc) | ((v != v) & (acc == acc));\n"
     "    acc = (fc_pb_v4f)(((fc_pb_v4i)v & take) | ((fc_pb_v4i)acc & ~take));\n  }\n"
     "  if (relu)",
     ["tests/test_blocked_pass.py", "-k", "pooling"]),
    ("a fork child's set_num_threads(2) honoured (libgomp then hangs)",
     "src/fastconv/_runtime.py",
     "if n > 1 and _fork_unsafe:",
     "if n > 1 and not _fork_unsafe:",
     ["tests/test_threads.py", "-k", "asking_for_threads"]),
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def newer_than_build(path, build):
    """Date ``path`` after every build output.

    A patch written in the second the last build ended looks no newer than
    its objects where the file system keeps whole seconds (CI's did: its
    first mutant ran unpatched), and ninja then builds nothing.
    """
    newest = max((f.stat().st_mtime for f in build.rglob("*") if f.is_file()), default=0)
    stamp = max(time.time(), newest) + 2
    os.utime(path, (stamp, stamp))


def rebuilt(build):
    """Build the extension now; False when ninja found nothing to do."""
    proc = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return True     # a patch that breaks the build is not a survivor: pytest reports it
    return "no work to do" not in proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="fastconv-mutants-"))
    src = scratch / "src"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True,
                           text=True).stdout.split()
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    venv = scratch / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    py = str(venv / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", "scikit-build-core", "cython>=3", "cython-cmake",
         "ninja", "hypothesis", "pytest"])
    build = scratch / "build"
    run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "-e", str(src),
         f"-Cbuild-dir={build}", "-Ceditable.rebuild=true"])
    rows, failed = [], False
    try:
        for name, path, text, replacement, tests in MUTANTS:
            target = src / path
            original = target.read_text()
            if original.count(text) != 1:
                rows.append((name, "PATCH DOES NOT APPLY", path))
                failed = True
                continue
            target.write_text(original.replace(text, replacement))
            newer_than_build(target, build)
            t0 = time.perf_counter()
            try:
                if path.startswith("csrc/") and not rebuilt(build):
                    rows.append((name, "NOT REBUILT after the patch", path))
                    failed = True
                    continue
                proc = subprocess.run([py, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                       "--hypothesis-seed=0", *tests],
                                      cwd=src, capture_output=True, text=True)
            finally:
                target.write_text(original)
                newer_than_build(target, build)
            if proc.returncode == 1:
                verdict = "killed"
            elif proc.returncode == 0:
                verdict, failed = "SURVIVED", True
            else:
                verdict, failed = f"ERROR (pytest exit {proc.returncode})", True
                print(proc.stdout[-3000:], proc.stderr[-3000:])
            killer = next((line.split(" - ")[0] for line in proc.stdout.splitlines()
                           if line.startswith("FAILED")), " ".join(tests))
            rows.append((name, f"{verdict} in {time.perf_counter() - t0:.0f} s", killer))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    for name, verdict, killer in rows:
        print(f"{verdict:28} {name}\n{'':28} by {killer}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
