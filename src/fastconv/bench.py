"""Benchmarks: the C kernels against the NumPy backend, the memory-copy floor
and PyTorch (when installed), measured side by side in one process.

Every figure is the median of several timed runs after a warm-up. Ratios are
formed from figures taken in the same run, which is the only honest way to
compare on a shared, noisy machine.

Run it as ``fastconv bench`` or ``python -m fastconv.bench``.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from . import functional as F

__all__ = ["KERNEL_CASES", "time_call", "bench_kernels", "format_table", "main"]

# (label, x shape, kernel, stride, pad): the shapes of the book's SimpleConvNet
# layer, a mid-size 3x3 layer and a large 3x3 layer, plus SimpleConvNet's pool.
KERNEL_CASES = [
    ("conv 5x5", (100, 1, 28, 28), 5, 1, 0),
    ("conv 3x3 pad 1", (100, 16, 28, 28), 3, 1, 1),
    ("conv 3x3 pad 1", (64, 64, 32, 32), 3, 1, 1),
    ("pool 2x2 stride 2", (100, 30, 24, 24), 2, 2, 0),
]


def time_call(fn, repeats=7, warmup=1, min_time=0.0):
    """Median wall time of ``fn()`` in seconds, over at least ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _ops_for(case, dtype, rng):
    """Yield (op name, function of the active backend, result size in bytes, torch fn)."""
    label, shape, k, s, p = case
    x = rng.standard_normal(shape).astype(dtype)
    torch = _torch()
    tx = torch.from_numpy(x) if torch else None
    if label.startswith("pool"):
        out, idx = F.max_pool2d(x, k, s, p, return_indices=True)
        dout = np.ones_like(out)

        def max_fb():
            o, i = F.max_pool2d(x, k, s, p, return_indices=True)
            F.max_pool2d_backward(dout, i, shape)

        def avg_fb():
            F.avg_pool2d_backward(F.avg_pool2d(x, k, s, p), shape, k, s, p)

        t_max = t_avg = None
        if torch:
            def t_max():
                t = tx.detach().requires_grad_()
                torch.nn.functional.max_pool2d(t, k, s, p).backward(torch.from_numpy(dout))

            def t_avg():
                t = tx.detach().requires_grad_()
                torch.nn.functional.avg_pool2d(t, k, s, p).backward(torch.from_numpy(dout))
        yield "max_pool fwd+bwd", max_fb, x.nbytes, t_max
        yield "avg_pool fwd+bwd", avg_fb, x.nbytes, t_avg
        return
    col = F.im2col(x, k, k, s, p)
    cols = F.unfold(x, k, padding=p, stride=s)
    hw = shape[2:]
    t_unfold = t_fold = None
    if torch:
        tcols = torch.from_numpy(cols)

        def t_unfold():
            torch.nn.functional.unfold(tx, k, padding=p, stride=s)

        def t_fold():
            torch.nn.functional.fold(tcols, hw, k, padding=p, stride=s)
    yield "im2col", lambda: F.im2col(x, k, k, s, p), col.nbytes, None
    yield "col2im", lambda: F.col2im(col, shape, k, k, s, p), col.nbytes, None
    yield "unfold", lambda: F.unfold(x, k, padding=p, stride=s), cols.nbytes, t_unfold
    yield "fold", lambda: F.fold(cols, hw, k, padding=p, stride=s), cols.nbytes, t_fold


def bench_kernels(cases=KERNEL_CASES, dtype=np.float32, repeats=7, threads=None,
                  numpy_repeats=3, progress=None):
    """Time every kernel case; returns a list of dicts of median milliseconds.

    Keys: ``op``, ``shape``, ``c_1t``, ``c_nt`` (C at ``threads``, default all
    cores), ``numpy``, ``copy`` (``np.copy`` of an array the size of the
    result: the memory-traffic floor), ``torch`` (None without PyTorch) and
    ``threads``.
    """
    rng = np.random.default_rng(0)
    all_threads = threads or os.cpu_count() or 1
    torch = _torch()
    previous_backend, previous_threads = F.get_backend(), F._num_threads
    rows = []
    try:
        for case in cases:
            for op, fn, nbytes, tfn in _ops_for(case, dtype, rng):
                if progress:
                    progress(f"{op} {case[1]}")
                row = {"op": op, "shape": list(case[1]), "kernel": case[2], "stride": case[3],
                       "pad": case[4], "threads": all_threads}
                src = np.ones(nbytes // np.dtype(dtype).itemsize, dtype)
                row["copy"] = 1e3 * time_call(lambda: np.copy(src), repeats)
                if "c" in F.available_backends():
                    F.set_backend("c")
                    F.set_num_threads(1)
                    row["c_1t"] = 1e3 * time_call(fn, repeats)
                    F.set_num_threads(all_threads)
                    row["c_nt"] = 1e3 * time_call(fn, repeats)
                else:
                    row["c_1t"] = row["c_nt"] = None
                F.set_backend("numpy")
                row["numpy"] = 1e3 * time_call(fn, numpy_repeats)
                row["torch"] = None
                if torch is not None and tfn is not None:
                    with _torch_threads(torch, all_threads):
                        row["torch"] = 1e3 * time_call(tfn, repeats)
                rows.append(row)
    finally:
        F.set_backend(previous_backend)
        F.set_num_threads(previous_threads)
    return rows


class _torch_threads:
    def __init__(self, torch, n):
        self.torch, self.n = torch, n

    def __enter__(self):
        self.before = self.torch.get_num_threads()
        self.torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        self.torch.set_num_threads(self.before)


def _ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def _ms(v):
    return "-" if v is None else f"{v:.2f}"


def format_table(rows):
    """A Markdown table: milliseconds, then the ratios that matter."""
    threads = rows[0]["threads"] if rows else "?"
    head = ["op", "shape", "C 1T", f"C {threads}T", "NumPy", "np.copy", "torch",
            "NumPy / C", "C / copy", "C 1T / C"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        lines.append("| " + " | ".join([
            r["op"], f"{shape} k{r['kernel']} s{r['stride']} p{r['pad']}",
            _ms(r["c_1t"]), _ms(r["c_nt"]), _ms(r["numpy"]), _ms(r["copy"]), _ms(r["torch"]),
            _ratio(r["numpy"], r["c_nt"]), _ratio(r["c_nt"], r["copy"]),
            _ratio(r["c_1t"], r["c_nt"]),
        ]) + " |")
    return "\n".join(lines)


def environment():
    """What a reader needs to judge the numbers: machine, versions, threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    torch = _torch()
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "fastconv_openmp": F.openmp_enabled(),
    }


def add_arguments(parser):
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure (median)")
    parser.add_argument("--threads", type=int, default=None,
                        help="thread count for the multi-threaded columns (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, to check that the harness runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def run(args):
    cases = KERNEL_CASES
    if args.quick:
        cases = [(label, (2, shape[1], 12, 12), k, s, p)
                 for label, shape, k, s, p in KERNEL_CASES]
    env = environment()
    print(f"fastconv bench  {env['date']}  {env['cpu']} ({env['cores']} cores)  "
          f"dtype {args.dtype}  python {env['python']}  numpy {env['numpy']}  "
          f"torch {env['torch'] or 'not installed'}", flush=True)
    rows = bench_kernels(cases, np.dtype(args.dtype), args.repeats, args.threads,
                         numpy_repeats=min(args.repeats, 3),
                         progress=lambda s: print(f"  timing {s}", file=sys.stderr, flush=True))
    print(f"\nmedian milliseconds, {rows[0]['threads']} threads for the multi-threaded columns\n")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "dtype": args.dtype, "kernels": rows}, f, indent=2)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
