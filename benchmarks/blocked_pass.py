"""A net's test-time pass in the blocked layout against the same pass layer by
layer in NCHW (nn/blocked_pass.py), interleaved in one process.

    python benchmarks/blocked_pass.py [--threads 2] [--images 10000] [--turns 7]

Each turn predicts the same random images once each way (seed-0 weights,
float32, Net.predict's own chunks); the table gives medians over turns and
their ratio (< 1: the blocked pass is faster), then each layer's share of
one blocked pass.
"""
import argparse
import collections
import datetime
import platform
import statistics
import time

import numpy as np

import fastconv
from fastconv import _runtime as R
from fastconv.nn import DeepConvNet, SimpleConvNet, blocked_pass
from fastconv.ops import blocked as B

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--images", type=int, default=10000)
parser.add_argument("--turns", type=int, default=7)
args = parser.parse_args()
fastconv.set_num_threads(args.threads)
x = np.random.default_rng(0).random((args.images, 1, 28, 28), dtype=np.float32)
isa = R.ext.blocked_isa_name(R.ext.blocked_isa())
print(f"{datetime.date.today()}  {platform.processor() or platform.machine()}  "
      f"blocked ISA {isa}  threads {args.threads}  {args.images} images  turns {args.turns}")
print("| model | blocked pass (ms) | layer by layer (ms) | ratio |")
print("|---|---|---|---|")
nets = {"SimpleConvNet": SimpleConvNet(seed=0), "DeepConvNet": DeepConvNet(seed=0)}
for name, net in nets.items():
    on, off = [], []
    net.predict(x[:net._test_chunk])  # scratch buffers allocated before timing
    for _ in range(args.turns):
        t0 = time.perf_counter()
        net.predict(x)
        on.append(time.perf_counter() - t0)
        with blocked_pass.switched_off():
            t0 = time.perf_counter()
            net.predict(x)
            off.append(time.perf_counter() - t0)
    a, b = statistics.median(on), statistics.median(off)
    print(f"| {name} | {1e3 * a:.0f} | {1e3 * b:.0f} | {a / b:.2f} |")

# Where one blocked pass of DeepConvNet spends its time, step by step.
net = nets["DeepConvNet"]
test_pass = net._test_pass
spent = collections.defaultdict(float)


def timed_step(i, maps, inner=test_pass._blocked_step):
    t0 = time.perf_counter()
    out, ran = inner(i, maps)
    if out is not None:
        layer = test_pass._steps[i][0]
        spent[f"{type(layer).__name__} {i}" + (" (+ReLU)" if ran > 1 else "")] += \
            time.perf_counter() - t0
    return out, ran


test_pass._blocked_step = timed_step
t0 = time.perf_counter()
net.predict(x)
whole = time.perf_counter() - t0
del test_pass._blocked_step
print(f"\nDeepConvNet, one blocked pass of {args.images} images: {1e3 * whole:.0f} ms")
for step, seconds in spent.items():
    print(f"  {step:28s} {1e3 * seconds:7.1f} ms")
print(f"  {'the rest (NCHW layers)':28s} {1e3 * (whole - sum(spent.values())):7.1f} ms")
