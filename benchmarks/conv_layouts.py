"""The Convolution layer's two layouts, forward + backward, interleaved.

    python benchmarks/conv_layouts.py [--threads 2] [--rounds 15]

For each layer shape of SimpleConvNet and DeepConvNet (batch 100, float32),
times the layer three ways: one product per image on the unfold layout, the
book's single product, and the direct kernel (no patch matrix), each forced
with ``fastconv.functional.use_conv_plan``; alternating them so all see the
same machine load. Prints medians.
"""
import argparse
import statistics
import time

import numpy as np

import fastconv
from fastconv import functional as F
from fastconv import Convolution
from fastconv._testing import use_conv_plan

SHAPES = [  # (N, C, H, FN, kernel, pad): the conv layers of the two nets
    (100, 1, 28, 30, 5, 0),
    (100, 1, 28, 16, 3, 1), (100, 16, 28, 16, 3, 1), (100, 16, 14, 32, 3, 1),
    (100, 32, 14, 32, 3, 2), (100, 32, 8, 64, 3, 1), (100, 64, 8, 64, 3, 1),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads {fastconv.get_num_threads()}, median ms of forward+backward (with dx)")
    print("shape (N, C, H, FN, k, pad) | per-image | book | direct | output pixels")
    for n, c, h, fn, k, pad in SHAPES:
        x = rng.random((n, c, h, h), dtype=np.float32)
        W = (rng.standard_normal((fn, c, k, k)) * 0.1).astype(np.float32)
        layers = {name: Convolution(W, np.zeros(fn, np.float32), 1, pad)
                  for name in ("per_image", "rows", "direct")}
        g = rng.random(layers["rows"].forward(x).shape, dtype=np.float32)
        times = {name: [] for name in layers}
        for _ in range(args.rounds + 1):
            for name, layer in layers.items():
                t0 = time.perf_counter()
                with use_conv_plan(name):
                    layer.forward(x)
                layer.backward(g)
                times[name].append(time.perf_counter() - t0)
        med = {name: 1e3 * statistics.median(v[1:]) for name, v in times.items()}
        oh = h + 2 * pad - k + 1
        print(f"{(n, c, h, fn, k, pad)} | {med['per_image']:.1f} | {med['rows']:.1f} | "
              f"{med['direct']:.1f} | {oh * oh}")


if __name__ == "__main__":
    main()
