"""Benchmarks: the C kernels against the NumPy backend, the memory-copy floor
and PyTorch (when installed), measured side by side in one process.

Every figure is the median of several timed runs after a warm-up. Ratios are
formed from figures taken in the same run, which is the only honest way to
compare on a shared, noisy machine.

Run it as ``fastconv bench`` or ``python -m fastconv.bench``.
"""
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

from . import functional as F

__all__ = ["KERNEL_CASES", "SECTIONS", "time_interleaved", "bench_kernels", "bench_training",
           "bench_forward", "bench_inference", "targets", "format_table",
           "format_training_table", "format_float64_table", "format_forward_table",
           "format_inference_table", "format_targets_table", "main", "touch_memory",
           "torch_available", "onnxruntime_available"]

# (label, x shape, kernel, stride, pad): the shapes of the book's SimpleConvNet
# layer, a mid-size 3x3 layer and a large 3x3 layer, plus SimpleConvNet's pool.
KERNEL_CASES = [
    ("conv 5x5", (100, 1, 28, 28), 5, 1, 0),
    ("conv 3x3 pad 1", (100, 16, 28, 28), 3, 1, 1),
    ("conv 3x3 pad 1", (64, 64, 32, 32), 3, 1, 1),
    ("pool 2x2 stride 2", (100, 30, 24, 24), 2, 2, 0),
]


def time_interleaved(variants, repeats=7, warmup=1, fewer=None, warmup_time=0.0, burst=1):
    """Median wall time in seconds of each of several functions, timed in turns.

    ``variants`` maps a name to a function of no arguments. Each round calls
    every variant once, so a burst of load from another process slows all of
    them alike instead of one whole series: the ratios of the medians stay
    honest on a shared machine. ``fewer`` maps a name to a smaller number of
    rounds for slow variants (they take part in the first rounds only).
    Each variant is first called ``warmup`` times, and more until it has run
    for ``warmup_time`` seconds: the first large allocations of a process can
    be 10x slower while the VM backs fresh pages, which is no property of the
    code under test (benchmarks/README.md). With ``burst`` > 1 a turn is that
    many calls in a row, of which all but the first are timed, so that steady
    state (not the wake-up of thread pools) is measured. A
    variant with the attribute ``timed_by_callee`` returns its own duration in
    seconds (a step timed in another process), which replaces the wall time
    of the call.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    fewer = fewer or {}
    for fn in variants.values():
        start, calls = time.perf_counter(), 0
        while calls < warmup or time.perf_counter() - start < warmup_time:
            fn()
            calls += 1
    times = {name: [] for name in variants}
    for round_ in range(repeats):
        for name, fn in variants.items():
            if round_ >= fewer.get(name, repeats):
                continue
            for call in range(burst):
                t0 = time.perf_counter()
                result = fn()
                elapsed = time.perf_counter() - t0
                if getattr(fn, "timed_by_callee", False):
                    elapsed = result
                if call or burst == 1:
                    times[name].append(elapsed)
    return {name: statistics.median(v) for name, v in times.items()}


def touch_memory(nbytes):
    """Write ``nbytes`` of fresh memory once, then free it; returns the seconds taken.

    On a virtual machine whose RAM the host backs lazily (as here), the first
    use of each page faults into the host, several times slower until the pages
    have been used once (benchmarks/README.md). Touching the
    benchmark's working set first moves that cost out of the timings.
    """
    start = time.perf_counter()
    block = np.empty(max(0, int(nbytes)) // 8, np.float64)
    block.fill(1.0)
    del block
    return time.perf_counter() - start


def _in_setting(backend, threads, fn):
    """fn run with the given backend and thread count (set before each call)."""
    def call():
        F.set_backend(backend)
        F.set_num_threads(threads)
        return fn()
    return call


def _torch():
    if not torch_available():
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


def _version(package):
    """The installed version of ``package`` or None, without importing it."""
    from importlib import metadata
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment():
    """What a reader needs to judge the numbers: machine, versions, threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "fastconv_openmp": F.openmp_enabled(),
    }


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
        code = (_PRELUDES[kind] + "; from fastconv.bench import _child_main; "
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
    from . import models as M
    from .interop.torch import sequential
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
        from . import models as M
        from .train.optim import Adam
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
        from . import models as M
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
    from . import models as M
    from .train.optim import Adam

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
                     if (torch_available() if kind == "torch" else have_c)]
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
    from . import models as M
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
    from . import models as M
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
            if onnxruntime_available():
                onnx_path = net.to_onnx(os.path.join(tmp, f"{name}.onnx"))
                specs.append(("onnxruntime", "onnxruntime", "infer",
                              (name, path, batch, onnx_path, os.path.join(tmp, "ort.npy"))))
            if torch_available():
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


NOT_INSTALLED = "n/a (not installed)"


def _markdown(head, cells):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _ms_or_na(v, installed):
    return NOT_INSTALLED if v is None and not installed else _ms(v)


def _ratio_or_na(a, b, installed):
    return NOT_INSTALLED if (a is None or b is None) and not installed else _ratio(a, b)


def format_training_table(rows):
    """A Markdown table of :func:`bench_training`'s float32 rows: milliseconds, ratios."""
    threads = rows[0]["threads"] if rows else "?"
    torch = torch_available()
    head = ["model", f"fastconv C ({threads}T)", "fastconv NumPy", "PyTorch",
            "C, numpy imported first", "C, fastconv imported first",
            "C / PyTorch", "NumPy / C", "numpy first / fastconv first"]
    return _markdown(head, [[
        f"{r['model']} batch {r['batch']}", _ms(r["c"]), _ms(r["numpy"]),
        _ms_or_na(r["torch"], torch), _ms(r["c_numpy_first"]), _ms(r["c_fastconv_first"]),
        _ratio_or_na(r["c"], r["torch"], torch), _ratio(r["numpy"], r["c"]),
        _ratio(r["c_numpy_first"], r["c_fastconv_first"])] for r in rows])


def format_float64_table(rows):
    """A Markdown table of :func:`bench_training`'s float64 rows (C against PyTorch)."""
    threads = rows[0]["threads"] if rows else "?"
    torch = torch_available()
    head = ["model", f"fastconv C ({threads}T)", "PyTorch", "C / PyTorch"]
    return _markdown(head, [[
        f"{r['model']} batch {r['batch']}", _ms(r["c"]), _ms_or_na(r["torch"], torch),
        _ratio_or_na(r["c"], r["torch"], torch)] for r in rows])


def format_forward_table(rows):
    """A Markdown table of :func:`bench_forward`'s rows (C backend against NumPy's)."""
    threads = rows[0]["threads"] if rows else "?"
    head = ["model", f"fastconv C ({threads}T)", "fastconv NumPy", "C / NumPy"]
    return _markdown(head, [[
        f"{r['model']} {r['images']} images, batches of {r['batch']}", _ms(r["c"]),
        _ms(r["numpy"]), _ratio(r["c"], r["numpy"])] for r in rows])


def format_inference_table(rows):
    """A Markdown table of :func:`bench_inference`'s rows."""
    threads = rows[0]["threads"] if rows else "?"
    ort, torch = onnxruntime_available(), torch_available()
    head = ["model", f"fastconv ({threads}T)", "onnxruntime", "PyTorch",
            "fastconv / onnxruntime", "fastconv / PyTorch"]
    return _markdown(head, [[
        f"{r['model']} {r['images']} images, batches of {r['batch']}", _ms(r["fastconv"]),
        _ms_or_na(r["onnxruntime"], ort), _ms_or_na(r["torch"], torch),
        _ratio_or_na(r["fastconv"], r["onnxruntime"], ort),
        _ratio_or_na(r["fastconv"], r["torch"], torch)] for r in rows])


def targets(result):
    """The figures that have a target, from a :func:`run` result dict.

    A list of dicts: ``figure`` (a name), ``value`` (the measured ratio, None
    when a side is missing), ``target`` (the largest acceptable ratio) and
    ``met`` (``value <= target``, None without a value). Only sections
    present in ``result`` contribute.
    """
    rows = []

    def add(figure, num, den, target):
        value = num / den if num is not None and den else None
        rows.append({"figure": figure, "value": value, "target": target,
                     "met": None if value is None else value <= target})

    step_targets = {"SimpleConvNet": 0.40, "DeepConvNet": 0.60}
    for r in result.get("training", []):
        if r["model"] in step_targets:
            add(f"{r['model']} training step float32, fastconv C / PyTorch",
                r["c"], r["torch"], step_targets[r["model"]])
        add(f"{r['model']} training step, numpy imported first / fastconv first",
            r["c_numpy_first"], r["c_fastconv_first"], 1.10)
    for r in result.get("float64", []):
        add(f"{r['model']} training step float64, fastconv C / PyTorch", r["c"], r["torch"], 0.6)
    for r in result.get("forward", []):
        add(f"{r['model']} forward of {r['images']} images {r['dtype']}, C / NumPy backend",
            r["c"], r["numpy"], 0.15)
    for r in result.get("inference", []):
        add(f"{r['model']} inference of {r['images']} images, fastconv / onnxruntime",
            r["fastconv"], r["onnxruntime"], 0.8)
        add(f"{r['model']} inference of {r['images']} images, fastconv / PyTorch",
            r["fastconv"], r["torch"], 0.6)
    for r in result.get("commands", []):
        # Wall seconds against a limit: the "ratio" is the time over the limit.
        limit = {"book": 60.0, "fast": 30.0}[r["preset"]]
        add(f"fastconv train --preset {r['preset']}, wall seconds / {limit:.0f} s",
            r["seconds"], limit, 1.0)
        if r["preset"] == "fast":
            rows.append({"figure": "fastconv train --preset fast, test accuracy (at least)",
                         "value": r["test_acc"], "target": 0.99,
                         "met": None if r["test_acc"] is None else r["test_acc"] >= 0.99})
    for r in result.get("kernels", []):
        if r["op"] in ("im2col", "col2im"):
            shape = "x".join(map(str, r["shape"]))
            add(f"{r['op']} {shape} k{r['kernel']} p{r['pad']}, C with allocation / copy",
                r["c_nt"], r["copy"], 1.3)
    return rows


def format_targets_table(rows):
    """A Markdown table of :func:`targets`: figure, measured ratio, target, met or missed."""
    verdict = {True: "met", False: "missed", None: "-"}
    return _markdown(["figure", "measured", "target", "met"], [[
        r["figure"], "-" if r["value"] is None else f"{r['value']:.4g}",
        (">= " if "at least" in r["figure"] else "<= ") + f"{r['target']:.2f}",
        verdict[r["met"]]] for r in rows])


def bench_commands(presets=("book", "fast"), threads=None, data=None, quick=False,
                   progress=None):
    """Wall time of whole ``fastconv train --preset P`` commands, each in a
    process of its own (start-up, data loading, training, evaluation and the
    pictures), and the final test accuracy from its history.json.

    Rows: ``preset``, ``command``, ``threads``, ``seconds`` and ``test_acc``
    (None, with ``note``, when the command failed, e.g. without MNIST:
    ``data`` is the folder of the IDX files, default $FASTCONV_DATA). With
    ``quick`` each runs one epoch on 300 images, to check the harness.
    """
    import tempfile
    n_threads = threads or os.cpu_count() or 1
    rows = []
    for preset in presets:
        if progress:
            progress(f"fastconv train --preset {preset}")
        with tempfile.TemporaryDirectory(prefix="fastconv-bench-") as out:
            argv = ["train", "--preset", preset, "--quiet", "--no-download", "--out", out,
                    "--threads", str(n_threads)]
            argv += ["--data", data] if data else []
            argv += ["--limit", "300", "--epochs", "1"] if quick else []
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "fastconv", *argv],
                                  capture_output=True, text=True, env=_child_env())
            seconds = time.perf_counter() - start
            row = {"preset": preset, "command": "fastconv " + " ".join(argv[:3]),
                   "threads": n_threads, "seconds": None, "test_acc": None, "note": None}
            if proc.returncode == 0:
                with open(os.path.join(out, "history.json")) as f:
                    row.update(seconds=seconds, test_acc=json.load(f)["final_test_acc"])
            else:
                tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                row["note"] = f"failed (status {proc.returncode}): {tail}"
            rows.append(row)
    return rows


def format_commands_table(rows):
    return _markdown(["command", "threads", "wall seconds", "final test accuracy", "note"], [[
        f"`{r['command']}`", str(r["threads"]),
        "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
        "-" if r["test_acc"] is None else f"{r['test_acc']:.4f}", r["note"] or ""]
        for r in rows])


def _positive(text):
    from .cli.types import positive_int as _positive_int  # shared with the cli
    return _positive_int(text)


def _thread_count(text):
    from .cli.types import thread_count
    return thread_count(text)


SECTIONS = ("kernels", "training", "float64", "forward", "inference", "commands")


def add_arguments(parser):
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="dtype of the kernel table (the other sections fix their own)")
    parser.add_argument("--repeats", type=_positive, default=7,
                        help="timed runs per figure (median)")
    parser.add_argument("--threads", type=_thread_count, default=None,
                        help="thread count for the multi-threaded columns (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes and one round, to check that the harness runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--only", choices=SECTIONS, action="append", default=None,
                        help="run only this section (repeatable; default: all)")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="MNIST folder for the 'commands' section (default: "
                             "$FASTCONV_DATA, else fastconv's cache folder; never downloads)")


def run(args):
    """Run the sections chosen by ``args`` (see :func:`add_arguments`), print
    their tables and the targets, and write the JSON; returns 0."""
    sections = args.only or SECTIONS
    quick = args.quick
    repeats = 1 if quick else args.repeats
    env = environment()
    print(f"fastconv bench  {env['date']}  {env['cpu']} ({env['cores']} cores)  "
          f"dtype {args.dtype}  python {env['python']}  numpy {env['numpy']}  "
          f"torch {env['torch'] or 'not installed'}  "
          f"onnxruntime {env['onnxruntime'] or 'not installed'}", flush=True)
    progress = lambda s: print(f"  timing {s}", file=sys.stderr, flush=True)  # noqa: E731
    result = {"environment": env, "dtype": args.dtype}
    # Long enough for the first calls, which back fresh pages on this VM
    # (about 10x slower for the first few calls on 151 MB: benchmarks/README.md).
    warmup_time = 0.0 if quick else 0.5
    common = dict(repeats=repeats, threads=args.threads, progress=progress,
                  warmup_time=warmup_time)
    few = min(repeats, 3)
    if "training" in sections:
        rows = bench_training(batch=8 if quick else 100, numpy_repeats=few,
                              burst=1 if quick else 4, **common)
        print(f"\nTraining step (forward, backward, Adam), float32: median milliseconds, "
              f"{rows[0]['threads']} threads. The two 'imported first' columns are the C "
              f"step in child processes\n")
        print(format_training_table(rows))
        result["training"] = rows
    if "float64" in sections:
        rows = bench_training(batch=8 if quick else 100, burst=1 if quick else 4,
                              dtype=np.float64, backends=("c",), children=("torch",), **common)
        print(f"\nTraining step, float64: median milliseconds, {rows[0]['threads']} threads\n")
        print(format_float64_table(rows))
        result["float64"] = rows
    if "forward" in sections:
        rows = bench_forward(images=20 if quick else 1000, batch=10 if quick else 100,
                             numpy_repeats=few, **common)
        print(f"\nForward pass (test mode), float64: median milliseconds, "
              f"{rows[0]['threads']} threads\n")
        print(format_forward_table(rows))
        result["forward"] = rows
    if "inference" in sections:
        rows = bench_inference(images=40 if quick else 10000, batch=20 if quick else 500,
                               **common)
        print(f"\nInference, float32, random images and seed-0 weights: median milliseconds, "
              f"{rows[0]['threads']} threads; onnxruntime and PyTorch in child processes\n")
        print(format_inference_table(rows))
        result["inference"] = rows
    if "commands" in sections:
        rows = bench_commands(threads=args.threads, data=args.data, quick=quick,
                              progress=progress)
        print(f"\nWhole commands, wall time from start to exit{' (quick: 300 images, 1 epoch)' if quick else ''}\n")
        print(format_commands_table(rows))
        result["commands"] = rows
    # Last: the kernel table's PyTorch column imports torch into this process,
    # whose thread pool must not be there while the sections above run.
    if "kernels" in sections:
        cases = KERNEL_CASES
        if quick:
            cases = [(label, (2, shape[1], 12, 12), k, s, p)
                     for label, shape, k, s, p in KERNEL_CASES]
        else:
            # The largest case keeps about four result-sized arrays alive, and
            # the NumPy backend makes temporaries of a few more.
            touch_memory(8 * max(math.prod(shape) * 9 * 4 for _, shape, _, _, _ in cases))
        rows = bench_kernels(cases, np.dtype(args.dtype), repeats, args.threads,
                             numpy_repeats=few, progress=progress, warmup_time=warmup_time)
        print(f"\nKernels: median milliseconds, {args.dtype}, {rows[0]['threads']} threads "
              f"for the multi-threaded columns. The C columns include allocating the "
              f"result (no out=); np.copy copies an array the size of the largest "
              f"operand (the result of im2col and unfold, the columns col2im and fold "
              f"read)\n")
        print(format_table(rows))
        result["kernels"] = rows
    result["targets"] = targets(result)
    print("\nTargets: measured ratio against the largest acceptable\n")
    print(format_targets_table(result["targets"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
