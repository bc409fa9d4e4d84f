"""``fastconv bench``: the sections, their options, and the JSON."""
import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .. import functional as F
from .._argtypes import positive_int, thread_count
from . import kernels, peak, steps
from .kernels import KERNEL_CASES, format_table
from .report import (bench_commands, format_commands_table, format_float64_table,
                     format_forward_table, format_inference_table, format_training_table)
from .timing import environment, touch_memory


SECTIONS = ("peak", "kernels", "training", "float64", "forward", "inference", "commands")


def add_arguments(parser):
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="dtype of the kernel table (the other sections fix their own)")
    parser.add_argument("--repeats", type=positive_int, default=7,
                        help="timed runs per figure (median)")
    parser.add_argument("--threads", type=thread_count, default=None,
                        help="thread count for the multi-threaded columns (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes and one round, to check that the harness runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--only", choices=SECTIONS, action="append", default=None,
                        help="run only this section (repeatable; default: all)")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="MNIST folder for the 'commands' section (default: "
                             "$FASTCONV_DATA, else fastconv's cache folder; never downloads)")


def run(args):
    """Run the sections chosen by ``args`` (see :func:`add_arguments`), print
    their tables and write the JSON; returns 0. (The project's own targets are
    read off that JSON by benchmarks/targets.py, outside the package.)"""
    sections = args.only or SECTIONS
    quick = args.quick
    repeats = 1 if quick else args.repeats
    env = environment()
    print(f"fastconv bench  {env['date']}  {env['cpu']} ({env['cores']} cores)  "
          f"dtype {args.dtype}  python {env['python']}  numpy {env['numpy']}  "
          f"torch {env['torch'] or 'not installed'}  "
          f"onnxruntime {env['onnxruntime'] or 'not installed'}", flush=True)
    progress = lambda s: print(f"  timing {s}", file=sys.stderr, flush=True)  # noqa: E731
    result = {"environment": env, "dtype": args.dtype}
    # Long enough for the first calls, which back fresh pages on this VM
    # (about 10x slower for the first few calls on 151 MB: benchmarks/README.md).
    warmup_time = 0.0 if quick else 0.5
    common = dict(repeats=repeats, threads=args.threads, progress=progress,
                  warmup_time=warmup_time)
    few = min(repeats, 3)
    if "peak" in sections:
        rows = peak.bench_peak(batch=4 if quick else 100, sgemm=256 if quick else 2048,
                               **common)
        print(f"\nThe yardstick: a {rows[0]['shape']} float32 SGEMM (numpy's BLAS) beside "
              f"each direction of DeepConvNet's convolutions, batch {4 if quick else 100}: "
              f"median milliseconds and GFLOP/s, {rows[0]['threads']} threads\n")
        print(peak.format_peak_table(rows))
        result["peak"] = rows
    if "training" in sections:
        rows = steps.bench_training(batch=8 if quick else 100, numpy_repeats=few,
                              burst=1 if quick else 4, **common)
        print(f"\nTraining step (forward, backward, Adam), float32: median milliseconds, "
              f"{rows[0]['threads']} threads. The two 'imported first' columns are the C "
              f"step in child processes\n")
        print(format_training_table(rows))
        result["training"] = rows
    if "float64" in sections:
        rows = steps.bench_training(batch=8 if quick else 100, burst=1 if quick else 4,
                              dtype=np.float64, backends=("c",), children=("torch",), **common)
        print(f"\nTraining step, float64: median milliseconds, {rows[0]['threads']} threads\n")
        print(format_float64_table(rows))
        result["float64"] = rows
    if "forward" in sections:
        rows = steps.bench_forward(images=20 if quick else 1000, batch=10 if quick else 100,
                             numpy_repeats=few, **common)
        print(f"\nForward pass (test mode), float64: median milliseconds, "
              f"{rows[0]['threads']} threads\n")
        print(format_forward_table(rows))
        result["forward"] = rows
    if "inference" in sections:
        rows = steps.bench_inference(images=40 if quick else 10000, batch=20 if quick else 500,
                               **common)
        print(f"\nInference, float32, random images and seed-0 weights: median milliseconds, "
              f"{rows[0]['threads']} threads; onnxruntime and PyTorch in child processes\n")
        print(format_inference_table(rows))
        result["inference"] = rows
    if "commands" in sections:
        rows = bench_commands(threads=args.threads, data=args.data, quick=quick,
                              progress=progress)
        print(f"\nWhole commands, wall time from start to exit{' (quick: 300 images, 1 epoch)' if quick else ''}\n")
        print(format_commands_table(rows))
        result["commands"] = rows
    # Last: the kernel table's PyTorch column imports torch into this process,
    # whose thread pool must not be there while the sections above run.
    if "kernels" in sections:
        cases = KERNEL_CASES
        if quick:
            cases = [(label, (2, shape[1], 12, 12), k, s, p)
                     for label, shape, k, s, p in KERNEL_CASES]
        else:
            # The largest case keeps about four result-sized arrays alive, and
            # the NumPy backend makes temporaries of a few more.
            touch_memory(8 * max(math.prod(shape) * 9 * 4 for _, shape, _, _, _ in cases))
        rows = kernels.bench_kernels(cases, np.dtype(args.dtype), repeats, args.threads,
                             numpy_repeats=few, progress=progress, warmup_time=warmup_time)
        print(f"\nKernels: median milliseconds, {args.dtype}, {rows[0]['threads']} threads "
              f"for the multi-threaded columns. The C columns include allocating the "
              f"result (no out=); np.copy copies an array the size of the largest "
              f"operand (the result of im2col and unfold, the columns col2im and fold "
              f"read)\n")
        print(format_table(rows))
        result["kernels"] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
