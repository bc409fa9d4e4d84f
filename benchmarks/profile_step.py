"""Where a training step's time goes: each layer's forward and backward, timed
inside real steps (mean per step), plus the optimiser update.

    python benchmarks/profile_step.py DeepConvNet --threads 2 --steps 20 [--dtype float64]
    python benchmarks/profile_step.py SimpleConvNet --numpy-first
    python benchmarks/profile_step.py DeepConvNet --predict 1000 [--backend numpy]

With --predict N it times test-mode prediction of N images instead (Net.predict,
which runs them in its own chunks), layer by layer; the layers the pass runs in
the blocked layout are marked "blocked" (a pooling and the ReLU it fuses on one line).

It prints the machine, date and thread count with the table. Timing every layer
adds a little overhead; "whole (median)" is the median of the timed steps (or predictions).
"""
import argparse
import sys

parser = argparse.ArgumentParser()
parser.add_argument("model", nargs="?", default="SimpleConvNet")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--batch", type=int, default=100)
parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
parser.add_argument("--numpy-first", action="store_true",
                    help="import numpy (and run one product) before fastconv")
parser.add_argument("--predict", type=int, default=None, metavar="N",
                    help="profile test-mode prediction of N images instead of a step")
parser.add_argument("--backend", default="c", choices=["c", "numpy"])
args = parser.parse_args()

if args.numpy_first:
    import numpy as np
    np.ones((300, 300)) @ np.ones((300, 300))

import datetime
import platform
import statistics
import time

import numpy as np

import fastconv
from fastconv import functional as F
from fastconv import nn as M
from fastconv import Adam

F.set_num_threads(args.threads)
F.set_backend(args.backend)
rng = np.random.default_rng(0)
x = rng.random((args.predict or args.batch, 1, 28, 28)).astype(args.dtype)
t = rng.integers(0, 10, args.batch)
net = getattr(M, args.model)(seed=0, dtype=np.dtype(args.dtype))
opt = Adam()
times = {}


def timed(name, fn):
    def call(*a, **k):
        t0 = time.perf_counter()
        r = fn(*a, **k)
        times.setdefault(name, []).append(time.perf_counter() - t0)
        return r
    return call


for lname, layer in net.layers.items():
    layer.forward = timed(f"{lname} fwd", layer.forward)
    layer.backward = timed(f"{lname} bwd", layer.backward)
    if hasattr(layer, "infer"):
        layer.infer = timed(f"{lname} infer", layer.infer)
opt.update = timed("Adam", opt.update)

# The test-time pass runs convolutions, pooling and ReLUs in the blocked layout
# without calling their infer (nn/blocked_pass.py): time those steps too.
names = {id(layer): lname for lname, layer in net.layers.items()}
test_pass = net._test_pass


def blocked_step(i, maps, inner=test_pass._blocked_step):
    t0 = time.perf_counter()
    out, ran = inner(i, maps)
    if out is not None:
        steps = [names[id(test_pass._steps[j][0])] for j in range(i, i + ran)]
        times.setdefault(f"{'+'.join(steps)} blocked", []).append(time.perf_counter() - t0)
    return out, ran


test_pass._blocked_step = blocked_step


def work():
    if args.predict:
        net.predict(x)
    else:
        _, grads = net.loss_and_gradient(x, t)
        opt.update(net.params, grads)


step_times = []
for i in range(args.steps + 3):
    if i == 3:
        times.clear()
    t0 = time.perf_counter()
    work()
    if i >= 3:
        step_times.append(time.perf_counter() - t0)

what = f"predict of {args.predict} images" if args.predict else f"step, batch {args.batch}"
print(f"{args.model} {what}, {args.dtype}, backend {args.backend}, {args.threads} threads, "
      f"{'numpy imported first' if args.numpy_first else 'fastconv imported first'}; "
      f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, "
      f"fastconv {fastconv.__version__}")
total = 0.0
calls = len(step_times)
for name, v in times.items():
    med = 1e3 * sum(v) / calls  # per step or prediction (predict calls a layer per chunk)
    total += med
    print(f"  {name:20s} {med:8.2f} ms")
print(f"  {'sum of parts':20s} {total:8.2f} ms")
print(f"  {'whole (median)':20s} {1e3 * statistics.median(step_times):8.2f} ms")
