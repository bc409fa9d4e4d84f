"""Benchmarks: the C kernels against the NumPy backend, the memory-copy floor
and PyTorch (when installed), measured side by side in one process.

Every figure is the median of several timed runs after a warm-up. Ratios are
formed from figures taken in the same run, which is the only honest way to
compare on a shared, noisy machine.

Run it as ``fastconv bench`` or ``python -m fastconv.bench``.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from . import functional as F
from ._runtime import WAIT_POLICY_SET_HERE

__all__ = ["KERNEL_CASES", "time_interleaved", "bench_kernels", "bench_training",
           "format_table", "format_training_table", "main", "touch_memory"]

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
    yield "col2im", lambda: F.col2im(col, shape, k, k, s, p), col.nbytes, None
    yield "unfold", lambda: F.unfold(x, k, padding=p, stride=s), cols.nbytes, t_unfold
    yield "fold", lambda: F.fold(cols, hw, k, padding=p, stride=s), cols.nbytes, t_fold


def bench_kernels(cases=KERNEL_CASES, dtype=np.float32, repeats=7, threads=None,
                  numpy_repeats=3, progress=None, warmup_time=0.3):
    """Time every kernel case; returns a list of dicts of median milliseconds.

    Keys: ``op``, ``shape``, ``c_1t``, ``c_nt`` (C at ``threads``, default all
    cores), ``numpy``, ``copy`` (``np.copy`` of an array the size of the
    result: the memory-traffic floor), ``torch`` (None without PyTorch) and
    ``threads``.
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
                           "stride": case[3], "pad": case[4], "threads": all_threads}
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


def environment():
    """What a reader needs to judge the numbers: machine, versions, threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    torch = _torch()
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "fastconv_openmp": F.openmp_enabled(),
    }


# --- training steps -----------------------------------------------------------------

def _torch_model(torch, name):
    """fastconv's model ``name`` in torch.nn, built from that model's own layer
    specs (fastconv.torch_twin), so the two cannot drift apart."""
    from . import models as M
    from .torch_twin import sequential
    net = getattr(M, name)(seed=0)
    return sequential(net.input_dim, net.layer_specs, torch)


def bench_training(models=("SimpleConvNet", "DeepConvNet"), batch=100, repeats=7,
                   threads=None, numpy_repeats=3, progress=None, warmup_time=0.3, burst=4):
    """Median milliseconds of one training step (forward, backward, Adam update).

    float32, batch ``batch`` of random 1x28x28 images. Rows hold ``c``,
    ``numpy`` and ``torch`` (None without PyTorch), all at ``threads``.

    PyTorch runs in a child process of its own, with its default OpenMP
    settings and no other thread pool beside it. The variants take turns of
    ``burst`` steps in a row, the first of each turn untimed: a turn's first
    step pays for waking the thread pools (on this VM a step right after
    0.2 s of idling took 3x as long), and in one process numpy's OpenBLAS
    threads, still spinning after our step, slowed PyTorch's DeepConvNet step by
    half or more (benchmarks/README.md).
    """
    from . import models as M
    from .optim import Adam

    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, batch)
    n_threads = threads or os.cpu_count() or 1
    rows = []
    with F.use_backend(F.get_backend()), F.use_num_threads(n_threads):
        for name in models:
            if progress:
                progress(f"training step {name}")
            net = getattr(M, name)(seed=0)
            opt = Adam()

            def step():
                _, grads = net.loss_and_gradient(x, t)
                opt.update(net.params, grads)

            row = {"model": name, "batch": batch, "threads": n_threads}
            variants = {backend: _in_setting(backend, n_threads, step)
                        for backend in ("c", "numpy") if backend in F.available_backends()}
            worker = _TorchStepWorker(name, batch, n_threads) if torch_available() else None
            try:
                if worker is not None:
                    def torch_step(worker=worker):
                        return worker.step()
                    torch_step.timed_by_callee = True
                    variants["torch"] = torch_step
                medians = time_interleaved(variants, repeats, fewer={"numpy": numpy_repeats},
                                           warmup_time=warmup_time, burst=burst)
            finally:
                if worker is not None:
                    worker.close()
            for key in ("c", "numpy", "torch"):
                row[key] = 1e3 * medians[key] if key in medians else None
            rows.append(row)
    return rows


def torch_available():
    """Whether PyTorch can be imported, without importing it into this process."""
    import importlib.util
    return importlib.util.find_spec("torch") is not None


class _TorchStepWorker:
    """PyTorch's training step, timed in a child process: ``step()`` runs one
    there and returns the duration the child measured, without the round trip."""

    def __init__(self, name, batch, threads):
        env = dict(os.environ)
        if WAIT_POLICY_SET_HERE:
            env.pop("OMP_WAIT_POLICY", None)  # PyTorch's own default, not ours
        code = ("import sys, torch; from fastconv.bench import _torch_worker_main; "
                "_torch_worker_main(sys.argv[1:])")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, name, str(batch), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError(f"the PyTorch benchmark process for {name} did not start")

    def step(self):
        self.proc.stdin.write("1\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch benchmark process ended early")
        return float(line)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _torch_worker_main(argv):
    """The child of _TorchStepWorker: one line "ready", then one step per
    line read, answering each with its duration in seconds."""
    import torch
    name, batch, threads = argv[0], int(argv[1]), int(argv[2])
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((batch, 1, 28, 28), dtype=np.float32))
    t = torch.from_numpy(rng.integers(0, 10, batch))
    model = _torch_model(torch, name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    print("ready", flush=True)
    for line in sys.stdin:
        for _ in range(int(line)):
            t0 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model(x), t).backward()
            opt.step()
            print(repr(time.perf_counter() - t0), flush=True)


def format_training_table(rows):
    threads = rows[0]["threads"] if rows else "?"
    head = ["model", f"fastconv C ({threads}T)", "fastconv NumPy", "PyTorch",
            "C / PyTorch", "NumPy / C"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            f"{r['model']} batch {r['batch']}", _ms(r["c"]), _ms(r["numpy"]), _ms(r["torch"]),
            _ratio(r["c"], r["torch"]), _ratio(r["numpy"], r["c"])]) + " |")
    return "\n".join(lines)


def _positive(text):
    from ._cli_types import positive_int as _positive_int  # shared with the cli
    return _positive_int(text)


def add_arguments(parser):
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=_positive, default=7,
                        help="timed runs per figure (median)")
    parser.add_argument("--threads", type=_positive, default=None,
                        help="thread count for the multi-threaded columns (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, to check that the harness runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--only", choices=["kernels", "training"], default=None,
                        help="run one half of the benchmark")


def run(args):
    cases = KERNEL_CASES
    if args.quick:
        cases = [(label, (2, shape[1], 12, 12), k, s, p)
                 for label, shape, k, s, p in KERNEL_CASES]
    env = environment()
    print(f"fastconv bench  {env['date']}  {env['cpu']} ({env['cores']} cores)  "
          f"dtype {args.dtype}  python {env['python']}  numpy {env['numpy']}  "
          f"torch {env['torch'] or 'not installed'}", flush=True)
    progress = lambda s: print(f"  timing {s}", file=sys.stderr, flush=True)  # noqa: E731
    result = {"environment": env, "dtype": args.dtype}
    # Long enough for the first calls, which back fresh pages on this VM
    # (about 10x slower for the first few calls on 151 MB: benchmarks/README.md).
    warmup_time = 0.0 if args.quick else 0.5
    if not args.quick:
        # The largest case keeps about four result-sized arrays alive, and the
        # NumPy backend makes temporaries of a few more.
        largest = max(math.prod(shape) * 9 * 4 for _, shape, _, _, _ in cases)
        touch_memory(8 * largest)
    if args.only in (None, "kernels"):
        rows = bench_kernels(cases, np.dtype(args.dtype), args.repeats, args.threads,
                             numpy_repeats=min(args.repeats, 3), progress=progress,
                             warmup_time=warmup_time)
        print(f"\nKernels: median milliseconds, {args.dtype}, {rows[0]['threads']} threads "
              f"for the multi-threaded columns\n")
        print(format_table(rows))
        result["kernels"] = rows
    if args.only in (None, "training"):
        batch = 8 if args.quick else 100
        rows = bench_training(batch=batch, repeats=args.repeats, threads=args.threads,
                              numpy_repeats=min(args.repeats, 3), progress=progress,
                              warmup_time=warmup_time, burst=1 if args.quick else 4)
        print(f"\nTraining step (forward, backward, Adam), float32: median milliseconds, "
              f"{rows[0]['threads']} threads\n")
        print(format_training_table(rows))
        result["training"] = rows
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
