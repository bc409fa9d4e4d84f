"""
Compiled kernels against the NumPy backend
==========================================

The same calls on both backends (:func:`fastconv.use_backend`), the compiled
one at one and two threads (:func:`fastconv.use_num_threads`): im2col, max
pooling forward and backward, a convolution with both gradients, and one
SimpleConvNet training step on a batch of 100. Medians of a few calls on
small inputs, measured while this page was built: on a shared machine the
figures move from build to build, and the ratios within one run are what to
read. :doc:`/performance` has the careful measurements.
"""
import datetime
import os
import platform
import time

import matplotlib.pyplot as plt
import numpy as np

import fastconv


def median_ms(fn, repeat=7):
    fn()  # warm-up: first-touch page faults, the thread team's start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


rng = np.random.default_rng(0)
x = rng.random((100, 16, 28, 28), dtype=np.float32)
w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
pooled = rng.random((100, 30, 24, 24), dtype=np.float32)
digits = rng.random((100, 1, 28, 28), dtype=np.float32)
labels = rng.integers(0, 10, 100)


def pool():
    out, idx = fastconv.max_pool2d(pooled, 2, return_indices=True)
    fastconv.max_pool2d_backward(np.ones_like(out), idx, pooled.shape)


def conv():
    y = fastconv.conv2d(x, w, padding=1)
    fastconv.conv2d_input_grad(y, w, x.shape, padding=1)
    fastconv.conv2d_weight_grad(x, y, w.shape, padding=1)


net = fastconv.SimpleConvNet(seed=0)
opt = fastconv.Adam()


def step():
    opt.update(net.params, net.gradient(digits, labels))


cases = {
    "im2col 100x16x28x28 k3": lambda: fastconv.im2col(x, 3, 3, pad=1),
    "max pool fwd+bwd 100x30x24x24": pool,
    "conv2d + 2 gradients 100x16x28x28": conv,
    "SimpleConvNet step, batch 100": step,
}
variants = [("numpy", 1), ("c", 1), ("c", 2)]
results = {}
for name, fn in cases.items():
    for backend, threads in variants:
        with fastconv.use_backend(backend), fastconv.use_num_threads(threads):
            results[name, backend, threads] = median_ms(fn, repeat=3 if backend == "numpy" else 7)

print(f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, "
      f"numpy {np.__version__}")
print(f"{'case':36s} {'NumPy':>8s} {'C 1T':>8s} {'C 2T':>8s}   NumPy / C 2T")
for name in cases:
    row = [results[name, b, t] for b, t in variants]
    print(f"{name:36s} {row[0]:8.2f} {row[1]:8.2f} {row[2]:8.2f}   {row[0] / row[2]:.1f}x")

# %%
# Median milliseconds, on a log scale (shorter is faster).

fig, ax = plt.subplots(figsize=(9, 3.8))
height = 0.26
for k, (backend, threads) in enumerate(variants):
    label = "NumPy backend" if backend == "numpy" else f"C, {threads} thread{'s' * (threads > 1)}"
    ax.barh(np.arange(len(cases)) + (k - 1) * height,
            [results[name, backend, threads] for name in cases], height, label=label)
ax.set_yticks(np.arange(len(cases)), list(cases))
ax.invert_yaxis()
ax.set_xscale("log")
ax.set_xlabel(f"median ms (this build's machine: {os.cpu_count()} CPUs, {datetime.date.today()})")
ax.legend(loc="lower right")
fig.tight_layout()
