"""The kernel table: the C kernels against the NumPy backend, a memory copy and
PyTorch, on the book's layer shapes."""
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
from . import children as _kids
from .timing import _in_setting, _ms, _ratio, time_interleaved


# (label, x shape, kernel, stride, pad): the shapes of the book's SimpleConvNet
# layer, a mid-size 3x3 layer and a large 3x3 layer, plus SimpleConvNet's pool.
KERNEL_CASES = [
    ("conv 5x5", (100, 1, 28, 28), 5, 1, 0),
    ("conv 3x3 pad 1", (100, 16, 28, 28), 3, 1, 1),
    ("conv 3x3 pad 1", (64, 64, 32, 32), 3, 1, 1),
    ("pool 2x2 stride 2", (100, 30, 24, 24), 2, 2, 0),
]


def _torch():
    if not _kids.torch_available():
        return None
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
    # Each call allocates its result (no out=). The copy floor is the largest
    # operand: the result of im2col and unfold, the columns that col2im and
    # fold must read (a copy of their small result is no floor of that).
    yield "col2im", lambda: F.col2im(col, shape, k, k, s, p), col.nbytes, None
    yield "unfold", lambda: F.unfold(x, k, padding=p, stride=s), cols.nbytes, t_unfold
    yield "fold", lambda: F.fold(cols, hw, k, padding=p, stride=s), cols.nbytes, t_fold


def bench_kernels(cases=KERNEL_CASES, dtype=np.float32, repeats=7, threads=None,
                  numpy_repeats=3, progress=None, warmup_time=0.3):
    """Time every kernel case; returns a list of dicts of median milliseconds.

    Keys: ``op``, ``shape``, ``c_1t``, ``c_nt`` (C at ``threads``, default all
    cores), ``numpy``, ``copy`` (``np.copy`` of an array the size of the
    largest operand, the memory-traffic floor: the result of im2col and unfold,
    the columns read by col2im and fold, the input of the pools), ``torch``
    (None without PyTorch), ``copy_bytes`` (that array's size) and
    ``threads``. Every op is called without
    ``out=``, so its figures include allocating the result.
    """
    rng = np.random.default_rng(0)
    all_threads = threads or os.cpu_count() or 1
    torch = _torch()
    rows = []
    with F.use_backend(F.get_backend()), F.use_num_threads(all_threads):
        with _torch_threads(torch, all_threads):
            for case in cases:
                for op, fn, nbytes, tfn in _ops_for(case, dtype, rng):
                    if progress:
                        progress(f"{op} {case[1]}")
                    row = {"op": op, "shape": list(case[1]), "kernel": case[2],
                           "stride": case[3], "pad": case[4], "threads": all_threads,
                           "copy_bytes": nbytes}
                    src = np.ones(nbytes // np.dtype(dtype).itemsize, dtype)
                    variants = {"copy": lambda: np.copy(src)}
                    if "c" in F.available_backends():
                        variants["c_1t"] = _in_setting("c", 1, fn)
                        variants["c_nt"] = _in_setting("c", all_threads, fn)
                    variants["numpy"] = _in_setting("numpy", all_threads, fn)
                    if tfn is not None:
                        variants["torch"] = tfn
                    # At least 5 warm-up calls: the first calls on a case's
                    # fresh 151 MB took 160-184 ms instead of 16 (benchmarks/README.md).
                    medians = time_interleaved(variants, repeats,
                                               fewer={"numpy": numpy_repeats},
                                               warmup=5 if warmup_time else 1,
                                               warmup_time=warmup_time)
                    for key in ("copy", "c_1t", "c_nt", "numpy", "torch"):
                        row[key] = 1e3 * medians[key] if key in medians else None
                    rows.append(row)
    return rows


class _torch_threads:
    """torch's intra-op thread count set to n inside the block (no-op without torch)."""

    def __init__(self, torch, n):
        self.torch, self.n = torch, n

    def __enter__(self):
        if self.torch is not None:
            self.before = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.torch is not None:
            self.torch.set_num_threads(self.before)


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
