"""Training steps, forward passes and inference against NumPy, PyTorch and
ONNX Runtime."""
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
from .children import _open_children, _step_data
from .timing import _in_setting, time_interleaved


# --- training steps -----------------------------------------------------------------

def bench_training(models=("SimpleConvNet", "DeepConvNet"), batch=100, repeats=7,
                   threads=None, numpy_repeats=3, progress=None, warmup_time=0.3, burst=4,
                   dtype=np.float32, backends=("c", "numpy"), children=None):
    """Median milliseconds of one training step (forward, backward, Adam update).

    Batch ``batch`` of random 1x28x28 images of ``dtype`` (float32 or
    float64). Rows hold ``model``, ``batch``, ``dtype``, ``threads`` and one
    figure per variant, all at ``threads``: ``c`` and ``numpy`` (the backends
    in ``backends``, in this process), and per child kind in ``children``
    (default: ``"torch"``, ``"numpy-first"``, ``"fastconv-first"``) its key:
    ``torch`` (None without PyTorch), ``c_numpy_first`` (the C step in a
    script that imported numpy and ran a BLAS product before importing
    fastconv) and ``c_fastconv_first`` (the same step, fastconv imported
    first). A variant not run is None.

    The children have no other thread pool beside them. The variants take
    turns of ``burst`` steps in a row, the first of each turn untimed: a
    turn's first step pays for waking the thread pools (on this VM a step
    right after 0.2 s of idling took 3x as long), and in one process numpy's
    OpenBLAS threads, still spinning after our step, slowed PyTorch's
    DeepConvNet step by half or more (benchmarks/README.md).
    """
    from .. import nn as M
    from ..train.optim import Adam

    if children is None:
        children = ("torch", "numpy-first", "fastconv-first")
    dtype = np.dtype(dtype)
    x, t = _step_data(batch, dtype)
    n_threads = threads or os.cpu_count() or 1
    keys = {"torch": "torch", "numpy-first": "c_numpy_first",
            "fastconv-first": "c_fastconv_first"}
    have_c = "c" in F.available_backends()
    rows = []
    with F.use_backend(F.get_backend()), F.use_num_threads(n_threads):
        for name in models:
            if progress:
                progress(f"training step {name} {dtype.name}")
            net = getattr(M, name)(seed=0, dtype=dtype)
            opt = Adam()

            def step():
                _, grads = net.loss_and_gradient(x, t)
                opt.update(net.params, grads)

            row = {"model": name, "batch": batch, "dtype": dtype.name, "threads": n_threads}
            variants = {backend: _in_setting(backend, n_threads, step)
                        for backend in backends if backend in F.available_backends()}
            specs = [(keys[kind], kind, "step", (name, batch, dtype.name)) for kind in children
                     if (_kids.torch_available() if kind == "torch" else have_c)]
            with contextlib.ExitStack() as stack:
                remote = _open_children(stack, specs, n_threads)
                variants.update(remote)
                medians = time_interleaved(variants, repeats, fewer={"numpy": numpy_repeats},
                                           warmup_time=warmup_time, burst=burst)
            for key in [*backends, *(keys[kind] for kind in children)]:
                row[key] = 1e3 * medians[key] if key in medians else None
            rows.append(row)
    return rows


# --- forward and inference ----------------------------------------------------------

def _predict_in_batches(net, x, batch):
    """``net.predict`` (test mode) of images x (N,) + input_dim, ``batch`` at a
    time; scores (N, classes) in the net's dtype."""
    return np.concatenate([net.predict(x[i:i + batch]) for i in range(0, len(x), batch)])


def bench_forward(model="DeepConvNet", images=1000, batch=100, repeats=7, threads=None,
                  numpy_repeats=3, progress=None, warmup_time=0.3, dtype=np.float64):
    """Median milliseconds of predicting ``images`` random 1x28x28 images of
    ``dtype``, ``batch`` at a time, on each backend in this process.

    Returns one row: ``model``, ``images``, ``batch``, ``dtype``, ``threads``,
    ``c`` (None without the C backend) and ``numpy`` (the book's im2col and
    matrix products).
    """
    from .. import nn as M
    dtype = np.dtype(dtype)
    n_threads = threads or os.cpu_count() or 1
    x = np.random.default_rng(0).random((images, 1, 28, 28), dtype=np.float32).astype(dtype)
    net = getattr(M, model)(seed=0, dtype=dtype)
    if progress:
        progress(f"forward {model} {images} images {dtype.name}")
    with F.use_backend(F.get_backend()), F.use_num_threads(n_threads):
        variants = {backend: _in_setting(backend, n_threads,
                                         lambda: _predict_in_batches(net, x, batch))
                    for backend in ("c", "numpy") if backend in F.available_backends()}
        medians = time_interleaved(variants, repeats, fewer={"numpy": numpy_repeats},
                                   warmup_time=warmup_time)
    row = {"model": model, "images": images, "batch": batch, "dtype": dtype.name,
           "threads": n_threads}
    for key in ("c", "numpy"):
        row[key] = 1e3 * medians[key] if key in medians else None
    return [row]


def bench_inference(models=("SimpleConvNet", "DeepConvNet"), images=10000, batch=500,
                    repeats=7, threads=None, progress=None, warmup_time=0.3):
    """Median milliseconds of predicting ``images`` random 1x28x28 float32
    images, ``batch`` at a time, with the seed-0 weights of each model.

    Rows hold ``model``, ``images``, ``batch``, ``threads``, ``fastconv``
    (this process, its active backend), ``onnxruntime`` (a CPU
    InferenceSession on the net's ONNX export) and ``torch`` (the twin under
    ``torch.inference_mode()``); the last two run in child processes and are
    None when not installed. Each child's scores of the first batch must
    match fastconv's, or RuntimeError.
    """
    from .. import nn as M
    n_threads = threads or os.cpu_count() or 1
    x = np.random.default_rng(0).random((images, 1, 28, 28), dtype=np.float32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastconv-bench-") as tmp, \
            F.use_backend(F.get_backend()), F.use_num_threads(n_threads):
        path = os.path.join(tmp, "images.npy")
        np.save(path, x)
        for name in models:
            if progress:
                progress(f"inference {name} {images} images")
            net = getattr(M, name)(seed=0)
            expected = net.predict(x[:batch])
            specs = []
            if _kids.onnxruntime_available():
                onnx_path = net.to_onnx(os.path.join(tmp, f"{name}.onnx"))
                specs.append(("onnxruntime", "onnxruntime", "infer",
                              (name, path, batch, onnx_path, os.path.join(tmp, "ort.npy"))))
            if _kids.torch_available():
                specs.append(("torch", "torch", "infer",
                              (name, path, batch, "-", os.path.join(tmp, "torch.npy"))))
            variants = {"fastconv": lambda: _predict_in_batches(net, x, batch)}
            with contextlib.ExitStack() as stack:
                remote = _open_children(stack, specs, n_threads)
                for key in remote:
                    scores = np.load(os.path.join(tmp, "ort.npy" if key == "onnxruntime"
                                                  else "torch.npy"))
                    if not np.allclose(scores, expected, rtol=1e-3, atol=1e-4):
                        raise RuntimeError(f"{key}'s scores of {name} differ from fastconv's "
                                           "(not the same weights?)")
                variants.update(remote)
                medians = time_interleaved(variants, repeats, warmup_time=warmup_time)
            row = {"model": name, "images": images, "batch": batch, "threads": n_threads}
            for key in ("fastconv", "onnxruntime", "torch"):
                row[key] = 1e3 * medians[key] if key in medians else None
            rows.append(row)
    return rows
