"""Timing on a shared, noisy machine: interleaved turns, medians, warm pages,
and what the machine is."""
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
from ..ops.window import positive_int


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
    repeats = positive_int(repeats, "repeats")
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


def _ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def _ms(v):
    return "-" if v is None else f"{v:.2f}"
