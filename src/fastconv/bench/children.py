"""Variants timed in child processes of their own: PyTorch, ONNX Runtime, and
fastconv imported before or after numpy."""
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


# --- child processes ----------------------------------------------------------------

def torch_available():
    """Whether PyTorch can be imported, without importing it into this process."""
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def onnxruntime_available():
    """Whether onnxruntime (to run) and onnx (to export) can be imported, without
    importing either into this process."""
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def _child_env():
    # fastconv's import leaves nothing in os.environ (fastconv._runtime), so a
    # child sees what a user's process would.
    return dict(os.environ)


# What each kind of child imports before anything else, and how it tells
# whether fastconv came before numpy (None where that is no question).
_PRELUDES = {
    "torch": "import sys, torch; fastconv_before_numpy = None",
    "onnxruntime": "import sys, onnxruntime; fastconv_before_numpy = None",
    "fastconv-first": ("import sys; fastconv_before_numpy = 'numpy' not in sys.modules; "
                       "import fastconv, numpy"),
    "numpy-first": ("import sys, numpy; fastconv_before_numpy = 'fastconv' in sys.modules; "
                    "numpy.ones((256, 256)) @ numpy.ones((256, 256))"),
}


class _ChildWorker:
    """A benchmark variant timed in a child process of its own.

    ``kind`` is what the child imports first: ``"torch"``, ``"onnxruntime"``,
    ``"fastconv-first"`` or ``"numpy-first"`` (numpy and one BLAS product
    before fastconv). ``task`` is ``"step"`` (args: model name, batch, dtype
    name) or ``"infer"`` (args: model name, .npy images, batch, .onnx path,
    .npy path where the child saves its scores of the first batch).
    ``run()`` does the task once there and returns the seconds the child
    measured, without the round trip. ``info`` is what the child reported at
    start (``fastconv_before_numpy``). A child that fails raises RuntimeError
    with the tail of its stderr; call ``close()`` in every case.
    """

    def __init__(self, kind, task, args, threads):
        self.kind = kind
        self.stderr = tempfile.TemporaryFile("w+")
        code = (_PRELUDES[kind] + "; from fastconv.bench.children import _child_main; "
                "_child_main(sys.argv[1:], fastconv_before_numpy)")
        argv = [kind, task, str(threads), *map(str, args)]
        self.proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env=_child_env())
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self._fail(f"the {kind} benchmark process ({task} {' '.join(argv[3:])}) "
                       "did not start")
        self.info = json.loads(line[len("ready"):])

    def run(self):
        try:
            self.proc.stdin.write("1\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            return float(line)
        except (OSError, ValueError):
            self._fail(f"the {self.kind} benchmark process ended early")

    def _fail(self, message):
        self.close(keep_stderr=True)
        self.stderr.seek(0)
        tail = self.stderr.read()[-2000:]
        self.stderr.close()
        raise RuntimeError(f"{message}; its stderr ended with:\n{tail}")

    def close(self, keep_stderr=False):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        if not keep_stderr:
            self.stderr.close()


def _open_children(stack, specs, threads):
    """Variants for time_interleaved, one per (name, kind, task, args) in
    ``specs``, each timed by its child; ``stack`` (an ExitStack) closes them."""
    variants = {}
    for name, kind, task, args in specs:
        worker = _ChildWorker(kind, task, args, threads)
        stack.callback(worker.close)
        call = lambda worker=worker: worker.run()  # noqa: E731
        call.timed_by_callee = True
        variants[name] = call
    return variants


def _step_data(batch, dtype):
    """The random batch every training-step variant uses: images (batch, 1, 28, 28)
    of ``dtype`` and integer labels (batch,)."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32).astype(dtype)
    return x, rng.integers(0, 10, batch)


def _torch_model(torch, name):
    """fastconv's model ``name`` in torch.nn, built from that model's own layer
    specs (fastconv.interop.torch), so the two cannot drift apart."""
    from .. import nn as M
    from ..interop.torch import sequential
    net = getattr(M, name)(seed=0)
    return sequential(net.input_dim, net.layer_specs, torch)


def _child_main(argv, fastconv_before_numpy=None):
    """The child of _ChildWorker: one line "ready {json}", then per line read
    (a count) that many runs of its task, each answered with its seconds."""
    kind, task, threads, *args = argv
    run = (_child_step if task == "step" else _child_infer)(kind, int(threads), *args)
    print("ready " + json.dumps({"fastconv_before_numpy": fastconv_before_numpy}), flush=True)
    for line in sys.stdin:
        for _ in range(int(line)):
            print(repr(run()), flush=True)


def _child_step(kind, threads, name, batch, dtype):
    """A function that runs one training step of ``name`` in the child's library
    and returns its seconds."""
    dtype = np.dtype(dtype)
    x, t = _step_data(int(batch), dtype)
    if kind == "torch":
        import torch
        torch.set_num_threads(threads)
        model = _torch_model(torch, name)
        if dtype == np.float64:
            model = model.double()
        x, t = torch.from_numpy(x), torch.from_numpy(t)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss_fn(model(x), t).backward()
            opt.step()
    else:
        from .. import nn as M
        from ..train.optim import Adam
        F.set_backend("c")
        F.set_num_threads(threads)
        net = getattr(M, name)(seed=0, dtype=dtype)
        opt = Adam()

        def step():
            _, grads = net.loss_and_gradient(x, t)
            opt.update(net.params, grads)

    def timed():
        t0 = time.perf_counter()
        step()
        return time.perf_counter() - t0
    return timed


def _child_infer(kind, threads, name, images, batch, onnx_path, check_path):
    """A function that predicts all of ``images`` (an .npy file) in batches of
    ``batch`` with torch or onnxruntime and returns its seconds. The scores of
    the first batch go to ``check_path`` first, for the parent to compare."""
    x, batch = np.load(images), int(batch)
    if kind == "torch":
        import torch
        from .. import nn as M
        torch.set_num_threads(threads)
        net = getattr(M, name)(seed=0)
        model = _torch_model(torch, name)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict_torch().items()})
        model.eval()

        def predict(xb):
            with torch.inference_mode():
                return model(torch.from_numpy(xb)).numpy()
    else:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

        def predict(xb):
            return session.run(None, {"input": xb})[0]
    np.save(check_path, predict(x[:batch]))

    def timed():
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            predict(x[i:i + batch])
        return time.perf_counter() - t0
    return timed
