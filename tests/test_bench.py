"""fastconv bench: every section and target in the quick run, the child workers,
and the rows of PyTorch and onnxruntime when those are not installed.

No assertion here is about speed: the figures are only checked to be there.
"""
import contextlib
import importlib.util
import io
import json
import math
import pathlib

import numpy as np
import pytest

import bruteforce as bf
import fastconv
from fastconv import bench
from fastconv import functional as F
from fastconv.nn import DeepConvNet

# The project's targets are read off the JSON by benchmarks/targets.py.
_TARGETS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "targets.py"
_spec = importlib.util.spec_from_file_location("fastconv_targets", _TARGETS)
targets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(targets)

HAS_C = "c" in fastconv.available_backends()

# The figures of each section; None is allowed only where its library is absent.
FIGURES = {
    "training": ("c", "numpy", "torch", "c_numpy_first", "c_fastconv_first"),
    "float64": ("c", "torch"),
    "forward": ("c", "numpy"),
    "inference": ("fastconv", "onnxruntime", "torch"),
    "kernels": ("copy", "c_1t", "c_nt", "numpy"),
    "commands": ("seconds", "test_acc"),
    "peak": ("ms", "gflops", "of_sgemm"),
}
# Printed in this order.
TABLE_ORDER = ("peak", "training", "float64", "forward", "inference", "commands", "kernels")
TARGET_PREFIXES = (
    [f"DeepConvNet's six convolutions, {d}, GFLOP/s / large SGEMM's"
     for d in ("forward", "input grad", "weight grad")]
    + ["SimpleConvNet training step float32, fastconv C / PyTorch",
     "SimpleConvNet training step, numpy imported first",
     "DeepConvNet training step float32, fastconv C / PyTorch",
     "DeepConvNet training step, numpy imported first",
     "SimpleConvNet training step float64", "DeepConvNet training step float64",
     "DeepConvNet forward of"]
    + [f"{m} inference of 40 images, fastconv / {lib}"
       for m in ("SimpleConvNet", "DeepConvNet") for lib in ("onnxruntime", "PyTorch")]
    + ["fastconv train --preset book, wall seconds", "fastconv train --preset book, test accuracy",
       "fastconv train --preset fast, wall seconds", "fastconv train --preset fast, test accuracy"]
    + [f"{op} 2x{c}x12x12" for c in (1, 16, 64) for op in ("im2col", "col2im")])


def run_bench(argv):
    """``bench.main(argv)`` in-process: (status, stdout); backend and threads restored."""
    out = io.StringIO()
    with F.use_backend(F.get_backend()), F.use_num_threads(None), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = bench.main([str(a) for a in argv])
    return status, out.getvalue()


def tables(stdout):
    """The Markdown tables of the output, in order, each a list of its lines."""
    found, current = [], []
    for line in stdout.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def allowed_missing(section, key):
    if key == "torch":
        return not bench.torch_available()
    if key == "onnxruntime":
        return not bench.onnxruntime_available()
    return not HAS_C and key.startswith("c")


@pytest.fixture(scope="module")
def quick(tmp_path_factory, mnist_dir):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    status, stdout = run_bench(["--quick", "--json", path, "--data", mnist_dir])
    assert status == 0
    return json.loads(path.read_text()), stdout


def test_quick_json_has_every_section_and_target(quick):
    report, _ = quick
    for section in FIGURES:
        assert isinstance(report[section], list) and report[section], section
    assert len(report["training"]) == len(report["float64"]) == len(report["inference"]) == 2
    figures = [row["figure"] for row in targets.targets(report)]
    assert len(figures) == len(TARGET_PREFIXES), figures
    for figure, prefix in zip(figures, TARGET_PREFIXES):
        assert figure.startswith(prefix), (figure, prefix)


def test_quick_figures_are_finite_and_positive(quick):
    report, _ = quick
    for section, keys in FIGURES.items():
        for row in report[section]:
            for key in keys:
                value = row[key]
                if value is None:
                    assert allowed_missing(section, key), (section, key, row)
                    continue
                assert isinstance(value, float) and math.isfinite(value) and value > 0, \
                    (section, key, row)
    for target in targets.targets(report):
        value = target["value"]
        if value is None:
            assert target["met"] is None, target
            continue
        assert math.isfinite(value) and value > 0, target
        if target.get("floor"):
            assert target["met"] is (value >= target["target"]), target
        else:
            assert target["met"] is (value <= target["target"]), target


def test_quick_kernel_copy_is_the_size_of_the_columns(quick):
    # im2col's result and col2im's input: the largest operand of both.
    report, _ = quick
    rows = [r for r in report["kernels"] if r["op"] in ("im2col", "col2im")]
    assert len(rows) == 6
    for r in rows:
        n, c, h, w = r["shape"]
        k, p = r["kernel"], r["pad"]
        oh, ow = h + 2 * p - k + 1, w + 2 * p - k + 1
        assert r["copy_bytes"] == n * oh * ow * c * k * k * 4, r


def test_quick_tables_have_a_row_per_json_row(quick):
    report, stdout = quick
    printed = tables(stdout)
    assert len(printed) == len(TABLE_ORDER), stdout
    for section, table in zip(TABLE_ORDER, printed):
        assert set(table[1]) <= set("|-"), table[1]
        assert len(table) == 2 + len(report[section]), (section, table)
    assert "GFLOP/s" in printed[0][0]
    assert "numpy first / fastconv first" in printed[1][0]
    assert "C / NumPy" in printed[3][0] and "onnxruntime" in printed[4][0]
    assert "wall seconds" in printed[5][0]
    assert [r["preset"] for r in report["commands"]] == ["book", "fast"]
    for r in report["commands"]:  # 300 training images, one epoch: the harness only
        assert r["note"] is None and 0 < r["test_acc"] <= 1, r


@pytest.mark.parametrize("kind, first", [("numpy-first", False), ("fastconv-first", True)])
def test_child_reports_its_import_order(kind, first):
    worker = bench.children._ChildWorker(kind, "step", ("SimpleConvNet", 2, "float32"), 1)
    try:
        assert worker.info["fastconv_before_numpy"] is first
        seconds = worker.run()
        assert math.isfinite(seconds) and seconds > 0
    finally:
        worker.close()
    assert worker.proc.returncode == 0


def test_child_that_fails_raises_with_its_stderr():
    with pytest.raises(RuntimeError, match="did not start(.|\n)*NoSuchNet"):
        bench.children._ChildWorker("fastconv-first", "step", ("NoSuchNet", 2, "float32"), 1)


def test_rows_without_torch_and_onnxruntime(monkeypatch, tmp_path):
    monkeypatch.setattr(bench.children, "torch_available", lambda: False)
    monkeypatch.setattr(bench.children, "onnxruntime_available", lambda: False)
    started = []
    real = bench.children._ChildWorker.__init__

    def spy(self, kind, *args):
        started.append(kind)
        real(self, kind, *args)
    monkeypatch.setattr(bench.children._ChildWorker, "__init__", spy)
    path = tmp_path / "bench.json"
    status, stdout = run_bench(["--quick", "--only", "float64", "--only", "inference",
                                "--json", path])
    assert status == 0
    report = json.loads(path.read_text())
    assert "training" not in report and "kernels" not in report
    assert not {"torch", "onnxruntime"} & set(started), started
    for row in report["float64"]:
        assert row["torch"] is None and (row["c"] is not None or not HAS_C)
    for row in report["inference"]:
        assert row["torch"] is None and row["onnxruntime"] is None
        assert row["fastconv"] > 0
    missing = [t for t in targets.targets(report) if t["value"] is None]
    assert len(missing) == len(targets.targets(report)) == 2 + 4
    assert all(t["met"] is None for t in missing)
    for table in tables(stdout)[:2]:
        assert all("n/a (not installed)" in line for line in table[2:]), table


def test_predict_in_batches_is_predict():
    net = DeepConvNet(seed=0, dtype=np.float64)
    x = np.random.default_rng(1).random((7, 1, 28, 28))
    got = bench.steps._predict_in_batches(net, x, 3)
    assert got.shape == (7, 10)
    # Batches of 3 against one of 7: BLAS may block them differently.
    bf.NetBound(net, x).check(got, net.predict(x))


def test_targets_verdicts():
    kernel = {"op": "im2col", "shape": [2, 1, 12, 12], "kernel": 5, "pad": 0}
    result = {
        "forward": [{"model": "DeepConvNet", "images": 10, "dtype": "float64",
                     "c": 1.0, "numpy": 10.0}],
        "inference": [{"model": "SimpleConvNet", "images": 10, "fastconv": 2.0,
                       "onnxruntime": 2.0, "torch": None}],
        "kernels": [{**kernel, "c_nt": 1.3, "copy": 1.0},
                    {**kernel, "op": "unfold", "c_nt": 9.0, "copy": 1.0}],
    }
    rows = targets.targets(result)
    assert [(r["value"], r["target"], r["met"]) for r in rows] == [
        (0.1, 0.15, True), (1.0, 0.8, False), (None, 0.6, None),
        (1.3, 1.3, True)]  # 1.3 / 1.0: a division by one is exact
    assert targets.format_targets_table(rows).count("\n") == 1 + len(rows)


def test_peak_rows_count_the_flops_of_deepconvnets_layers(quick):
    # Each layer's FLOPs against a brute count of multiply-adds (one per weight
    # tap per output element that reads it, padding included, as an FMA unit
    # does), and the six-layer rates against the rows they sum.
    from fastconv.bench import peak
    report, _ = quick
    layers = peak.conv_layers(4)
    assert [(xs[1], ws[0]) for xs, ws, _ in layers] == [
        (1, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
    for xs, ws, pad in layers:
        n, c, h, w = xs
        out = fastconv.conv2d(np.zeros(xs, np.float32), np.zeros(ws, np.float32), padding=pad)
        assert peak.conv_flops(xs, ws, pad) == 2 * out.size * c * ws[2] * ws[3]
    rows = {r["op"]: r for r in report["peak"]}
    assert rows["sgemm"]["of_sgemm"] == 1.0
    for d in peak.DIRECTIONS:
        per_layer = [rows[f"conv{i} {d}"] for i in range(1, 7)]
        total = sum(r["gflops"] * r["ms"] for r in per_layer) / sum(r["ms"] for r in per_layer)
        assert rows[f"six layers {d}"]["gflops"] == pytest.approx(total, rel=1e-9)
        for r in per_layer + [rows[f"six layers {d}"]]:
            assert r["of_sgemm"] == pytest.approx(r["gflops"] / rows["sgemm"]["gflops"], rel=1e-9)
