"""The tables ``fastconv bench`` prints, and its whole-command timings."""
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
from .children import _child_env
from .timing import _ms, _ratio


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
    torch = _kids.torch_available()
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
    torch = _kids.torch_available()
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
    ort, torch = _kids.onnxruntime_available(), _kids.torch_available()
    head = ["model", f"fastconv ({threads}T)", "onnxruntime", "PyTorch",
            "fastconv / onnxruntime", "fastconv / PyTorch"]
    return _markdown(head, [[
        f"{r['model']} {r['images']} images, batches of {r['batch']}", _ms(r["fastconv"]),
        _ms_or_na(r["onnxruntime"], ort), _ms_or_na(r["torch"], torch),
        _ratio_or_na(r["fastconv"], r["onnxruntime"], ort),
        _ratio_or_na(r["fastconv"], r["torch"], torch)] for r in rows])


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
