"""The machine's peak as the yardstick: a large SGEMM beside every convolution
direction of DeepConvNet's six layers, in GFLOP/s, timed in turns.

numpy's BLAS multiplying two large float32 matrices is as close to the FMA
peak as this machine's software gets; a convolution's rate over it says how
much of the machine the kernel uses, whatever the CPU of the day.
"""
import os

import numpy as np

from .. import functional as F
from ..nn.conv import Convolution
from ..nn.zoo import DeepConvNet
from .timing import time_interleaved

DIRECTIONS = ("forward", "input grad", "weight grad")


def conv_layers(batch):
    """(x shape, weight shape, padding) of each convolution of DeepConvNet, in order."""
    net = DeepConvNet(seed=0)
    x = np.zeros((1, 1, 28, 28), np.float32)
    found = []
    for layer in net.layers.values():
        if isinstance(layer, Convolution):
            found.append(((batch,) + x.shape[1:], layer.W.shape, layer.pad))
        x = layer.forward(x, train_flg=False) if _takes_flag(layer) else layer.forward(x)
    return found


def _takes_flag(layer):
    return "train_flg" in layer.forward.__code__.co_varnames


def sgemm_flops(size):
    return 2.0 * size ** 3


def conv_flops(x_shape, w_shape, pad):
    n, c, h, w = x_shape
    fn, _, kh, kw = w_shape
    oh, ow = h + 2 * pad[0] - kh + 1, w + 2 * pad[1] - kw + 1
    return 2.0 * n * fn * c * kh * kw * oh * ow


def bench_peak(batch=100, sgemm=2048, repeats=7, threads=None, progress=None, warmup_time=0.0):
    """GFLOP/s of a float32 SGEMM and of each direction of each layer.

    Returns a list of rows: one for the SGEMM (``op`` "sgemm"), one per layer
    and direction, and one per direction over the six layers ("six layers":
    their FLOPs over the sum of their medians). Every row has ``gflops``,
    ``ms`` and ``of_sgemm`` (its rate over the SGEMM's); all on ``threads``
    threads of fastconv and of numpy's BLAS, in one round of turns.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((sgemm, sgemm), dtype=np.float32)
    b = rng.standard_normal((sgemm, sgemm), dtype=np.float32)
    c = np.empty_like(a)
    variants, work = {"sgemm": lambda: np.matmul(a, b, out=c)}, {"sgemm": sgemm_flops(sgemm)}
    layers = conv_layers(batch)
    for i, (xs, ws, pad) in enumerate(layers, 1):
        x = rng.standard_normal(xs, dtype=np.float32)
        w = (rng.standard_normal(ws, dtype=np.float32) * 0.1).astype(np.float32)
        d = rng.standard_normal(F.conv2d(x[:1], w, padding=pad).shape[1:], dtype=np.float32)
        d = np.broadcast_to(d, (xs[0],) + d.shape).copy()
        flops = conv_flops(xs, ws, pad)
        calls = {"forward": (lambda x=x, w=w, p=pad: F.conv2d(x, w, padding=p)),
                 "input grad": (lambda d=d, w=w, s=xs, p=pad: F.conv2d_input_grad(d, w, s, 1, p)),
                 "weight grad": (lambda x=x, d=d, s=ws, p=pad: F.conv2d_weight_grad(x, d, s, 1, p))}
        for direction, fn in calls.items():
            variants[(i, direction)] = fn
            work[(i, direction)] = flops
    if progress:
        progress(f"peak: sgemm {sgemm}^3 and DeepConvNet's {len(layers)} convolutions, "
                 f"batch {batch}")
    from threadpoolctl import threadpool_limits

    threads_used = threads or os.cpu_count() or 1
    with F.use_backend(F.get_backend()), F.use_num_threads(threads_used), \
            threadpool_limits(limits=threads_used, user_api="blas"):
        F.set_backend("c")
        medians = time_interleaved(variants, repeats=repeats, warmup_time=warmup_time)
    peak = work["sgemm"] / medians["sgemm"]
    rows = [{"op": "sgemm", "shape": f"{sgemm}x{sgemm}x{sgemm}", "threads": threads_used,
             "ms": medians["sgemm"] * 1e3, "gflops": peak / 1e9, "of_sgemm": 1.0}]
    for i, (xs, ws, pad) in enumerate(layers, 1):
        for direction in DIRECTIONS:
            rate = work[(i, direction)] / medians[(i, direction)]
            rows.append({"op": f"conv{i} {direction}", "layer": i, "direction": direction,
                         "shape": f"x {'x'.join(map(str, xs))} w {'x'.join(map(str, ws))} "
                                  f"pad {pad[0]}", "threads": threads_used,
                         "ms": medians[(i, direction)] * 1e3, "gflops": rate / 1e9,
                         "of_sgemm": rate / peak})
    for direction in DIRECTIONS:
        keys = [(i, direction) for i in range(1, len(layers) + 1)]
        seconds = sum(medians[k] for k in keys)
        rate = sum(work[k] for k in keys) / seconds
        rows.append({"op": f"six layers {direction}", "direction": direction, "shape": "",
                     "threads": threads_used, "ms": seconds * 1e3, "gflops": rate / 1e9,
                     "of_sgemm": rate / peak})
    return rows


def format_peak_table(rows):
    lines = ["| op | shape | ms | GFLOP/s | / SGEMM |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['op']} | {r['shape']} | {r['ms']:.2f} | {r['gflops']:.1f} | "
                     f"{r['of_sgemm']:.2f} |")
    return "\n".join(lines)
