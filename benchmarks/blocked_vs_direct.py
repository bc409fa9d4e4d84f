"""The blocked convolution plan against the direct plan, side by side.

    python benchmarks/blocked_vs_direct.py [--threads 2] [--batch 100] [--turns 9]

The seven layers of the blocked kernels' table (DeepConvNet's six convolutions
and SimpleConvNet's one), float32, on the C backend. For each layer and plan:
forward (keep=True), weight gradient, input gradient (a first layer's is never
needed in training; it is timed anyway, marked *), and the whole training
step of the layer (forward + backward_core, dx only where a net needs it).
Each turn times every (layer, plan, direction) once, the plans interleaved, so
a load change hits both; the table shows medians over turns (ms) and
direct/blocked (> 1: blocked faster). The planner's choice (ops/conv_plans.py)
quotes this script's output.
"""
import argparse
import datetime
import os
import platform
import statistics
import time

import numpy as np

import fastconv
from fastconv import _runtime as R
from fastconv._testing import use_conv_plan
from fastconv.ops.conv import backward_core, forward_core, ConvContext
from fastconv.ops.conv_plans import PLANS
from fastconv.ops.window import Window

# name: (C, H, W, FN, k, pad, first layer)
LAYERS = {
    "conv1": (1, 28, 28, 16, 3, 1, True),
    "conv2": (16, 28, 28, 16, 3, 1, False),
    "conv3": (16, 14, 14, 32, 3, 1, False),
    "conv4": (32, 14, 14, 32, 3, 2, False),
    "conv5": (32, 8, 8, 64, 3, 1, False),
    "conv6": (64, 8, 8, 64, 3, 1, False),
    "simple": (1, 28, 28, 30, 5, 0, True),
}
PLAN_NAMES = ("blocked", "direct")
DIRECTIONS = ("fwd", "dW", "dx", "step")


def one_layer(plan_name, x, w, b, d, win, ctx, first):
    """Seconds of each direction, once each (after the caller's warm-up)."""
    plan = PLANS[plan_name]
    times = {}
    with use_conv_plan(plan_name):
        t0 = time.perf_counter()
        _, ctx = forward_core(x, w, b, win, ctx=ctx, keep=True, x_is_private=True)
        times["fwd"] = time.perf_counter() - t0
        assert ctx.plan_name == plan_name, ctx.plan_name
        t0 = time.perf_counter()
        plan.weight_grad(ctx.x, ctx.cols, d, w.shape, win)
        times["dW"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan.input_grad(d, w, x.shape, win, ctx)
        times["dx"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, ctx = forward_core(x, w, b, win, ctx=ctx, keep=True, x_is_private=True)
        backward_core(ctx, d, input_grad=not first)
        times["step"] = time.perf_counter() - t0
    return times, ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--turns", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    data = {}
    for name, (c, h, wd, fn, k, pad, first) in LAYERS.items():
        x = rng.standard_normal((args.batch, c, h, wd)).astype(np.float32)
        w = (rng.standard_normal((fn, c, k, k)) * 0.1).astype(np.float32)
        b = rng.standard_normal(fn).astype(np.float32)
        win = Window.of(k, 1, pad)
        oh, ow = win.out_size(h, wd)
        d = rng.standard_normal((args.batch, fn, oh, ow)).astype(np.float32)
        data[name] = (x, w, b, d, win, first)
    samples = {(l, p, di): [] for l in LAYERS for p in PLAN_NAMES for di in DIRECTIONS}
    ctxs = {(l, p): ConvContext() for l in LAYERS for p in PLAN_NAMES}
    with fastconv.use_backend("c"), fastconv.use_num_threads(args.threads):
        for turn in range(args.turns + 1):  # turn 0 warms up (buffers, pages, caches)
            for name, (x, w, b, d, win, first) in data.items():
                order = PLAN_NAMES if turn % 2 else PLAN_NAMES[::-1]
                for plan in order:
                    times, ctxs[name, plan] = one_layer(plan, x, w, b, d, win,
                                                        ctxs[name, plan], first)
                    if turn:
                        for di, t in times.items():
                            samples[name, plan, di].append(t)
    isa = R.ext.blocked_isa_name(R.ext.blocked_isa())
    print(f"{datetime.date.today()}  {platform.processor() or platform.machine()}  "
          f"blocked ISA {isa}, direct ISA {R.ext.conv_isa()}  threads {args.threads}  "
          f"batch {args.batch}  turns {args.turns}  load {os.getloadavg()[0]:.1f}")
    print("medians in ms, blocked / direct, and direct/blocked (> 1: blocked faster); "
          "* = a first layer's dx (never needed in training)")
    head = f"{'layer':7}" + "".join(f"{di:>22}" for di in DIRECTIONS)
    print(head)
    totals = {(p, di): 0.0 for p in PLAN_NAMES for di in DIRECTIONS}
    for name in LAYERS:
        first = data[name][5]
        row = f"{name:7}"
        for di in DIRECTIONS:
            tb, td = (statistics.median(samples[name, p, di]) for p in PLAN_NAMES)
            if name != "simple" and not (first and di == "dx"):
                totals["blocked", di] += tb
                totals["direct", di] += td
            mark = "*" if first and di == "dx" else " "
            row += f"  {tb * 1e3:6.2f}/{td * 1e3:6.2f} {td / tb:4.2f}{mark}"
        print(row)
    row = f"{'deep':7}"
    for di in DIRECTIONS:
        tb, td = totals["blocked", di], totals["direct", di]
        row += f"  {tb * 1e3:6.2f}/{td * 1e3:6.2f} {td / tb:4.2f} "
    print(row)
    print("deep: DeepConvNet's six layers summed (dx without conv1's)")


if __name__ == "__main__":
    main()
