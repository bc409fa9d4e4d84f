"""The ``fastconv`` command line, end to end on the real MNIST files.

Most runs call ``fastconv.cli.main(argv)`` in-process (the parsed MNIST arrays
are then cached between runs); the module entry point (``python -m fastconv``)
and Ctrl-C are checked in subprocesses. Every run is small: these tests check
that the commands work and fail cleanly, never how fast they are.

No test downloads anything: every run gets ``--data`` (the real, read-only
folder), in-process runs see ``fastconv.io.mnist.MIRRORS`` pointed at a closed
localhost port, and subprocesses get ``$FASTCONV_DATA`` and a private
``$XDG_CACHE_HOME``.
"""
import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import fastconv
from fastconv import cli
from fastconv.io import mnist as datasets
from fastconv import functional as F
from fastconv.nn import SimpleConvNet, make_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Label counts of the 10,000 test images (../shared/data/mnist/README.md).
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_OUTPUTS = ("params.npz", "history.json", "model.json", "learning_curves.png",
                 "filters.png", "feature_maps.png")
HAS_C = "c" in fastconv.available_backends()
# The small run that most tests share: the first 500 train/test images, 2 epochs.
SMALL = ("--limit", "500", "--epochs", "2", "--batch-size", "50",
         "--threads", "2", "--backend", "c" if HAS_C else "numpy")


TOO_MANY_THREADS = fastconv._runtime.max_threads_allowed() + 1


def _closed_port_url():
    """A localhost URL nothing listens on: a download from it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def run_cli(argv):
    """``cli.main(argv)`` in-process: (exit status, stdout, stderr).

    argparse's SystemExit becomes its status. Downloads can only hit a closed
    port, and the process-wide backend and thread count are restored after.
    """
    out, err = io.StringIO(), io.StringIO()
    with F.use_backend(F.get_backend()), F.use_num_threads(None):
        with mock.patch.object(datasets, "MIRRORS", (_closed_port_url(),)), \
                mock.patch.object(datasets, "DOWNLOAD_TIMEOUT", 5.0), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main([str(a) for a in argv])
            except SystemExit as exc:  # argparse errors and --help
                status = exc.code
    return status, out.getvalue(), err.getvalue()


def train(out, mnist_dir, *options, seed=0):
    return run_cli(["train", "--data", mnist_dir, "--out", out, "--seed", seed, *options])


def subprocess_env(tmp_path, mnist_dir):
    """The environment of a child ``fastconv``: it cannot fall back on a download."""
    env = dict(os.environ)
    env["FASTCONV_DATA"] = str(mnist_dir)
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    env.pop("FASTCONV_BACKEND", None)
    return env


def assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 2000, f"{path} is suspiciously small ({len(data)} bytes)"


def load_npz(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def assert_one_line_error(status, err, *fragments, expected_status=None):
    """A user error: status != 0 (or ``expected_status``), one line on stderr, no traceback."""
    assert status not in (0, None), f"expected a failure status, got {status!r}"
    if expected_status is not None:
        assert status == expected_status, (status, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert re.match(r"fastconv \w+: error: \S", lines[0]), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


EPOCH_LINE = re.compile(
    r"^epoch +(\d+)/(\d+) +loss (\d+\.\d{4}) +train acc (\d\.\d{4}) +test acc (\d\.\d{4}) "
    r"+\d+\.\d s$", re.M)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, mnist_dir):
    """The shared in-process run: SimpleConvNet, 500 images, 2 epochs, seed 0."""
    out = tmp_path_factory.mktemp("small_run")
    status, stdout, stderr = train(out, mnist_dir, *SMALL)
    return {"out": out, "status": status, "stdout": stdout, "stderr": stderr}


# --- train ----------------------------------------------------------------------

def check_train_outputs(out, stdout, epochs=2, size=500):
    for name in TRAIN_OUTPUTS:
        assert (out / name).is_file(), f"{name} missing from {out}"
    for name in TRAIN_OUTPUTS:
        if name.endswith(".png"):
            assert_png(out / name)
    assert json.loads((out / "model.json").read_text())["model"] == "simple"

    summary = json.loads((out / "history.json").read_text())
    history = summary["history"]
    assert [r["epoch"] for r in history] == list(range(1, epochs + 1))
    for record in history:
        for key in ("loss", "train_acc", "test_acc", "seconds"):
            assert isinstance(record[key], (int, float)) and math.isfinite(record[key]), key
        assert 0 <= record["train_acc"] <= 1 and 0 <= record["test_acc"] <= 1
        assert record["seconds"] >= 0
    assert summary["interrupted"] is False
    assert summary["completed_epochs"] == epochs
    assert summary["train_size"] == size and summary["test_size"] == size
    final = summary["final_test_acc"]
    assert isinstance(final, float) and 0 <= final <= 1
    # Both are measured on all `size` test images with the final parameters.
    assert final == pytest.approx(history[-1]["test_acc"])

    printed = EPOCH_LINE.findall(stdout)
    assert [(int(e), int(n)) for e, n, *_ in printed] == [(i, epochs) for i in
                                                          range(1, epochs + 1)], stdout
    for (_, _, loss, train_acc, test_acc), record in zip(printed, history):
        assert float(loss) == pytest.approx(record["loss"], abs=6e-5)
        assert float(train_acc) == pytest.approx(record["train_acc"], abs=6e-5)
        assert float(test_acc) == pytest.approx(record["test_acc"], abs=6e-5)
    m = re.search(r"^final test accuracy (\d\.\d{4}) on (\d+) images", stdout, re.M)
    assert m, stdout
    assert float(m.group(1)) == pytest.approx(final, abs=6e-5)
    assert int(m.group(2)) == size
    return summary


def test_train_in_process(small_run):
    assert small_run["status"] == 0, small_run["stderr"]
    assert "Traceback" not in small_run["stderr"]
    summary = check_train_outputs(small_run["out"], small_run["stdout"])
    assert summary["model"] == "simple" and summary["seed"] == 0
    assert summary["threads"] == 2
    # The saved parameters load into a fresh SimpleConvNet.
    net = SimpleConvNet()
    net.load_params(small_run["out"] / "params.npz")
    saved = load_npz(small_run["out"] / "params.npz")
    assert set(saved) == set(net.params)


def test_train_module_entry_point(small_run, mnist_dir, tmp_path):
    """``python -m fastconv train``: same outputs, and the same numbers as in-process."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "fastconv", "train", "--data", str(mnist_dir), "--out", str(out),
         "--seed", "0", *SMALL],
        capture_output=True, text=True, timeout=600, env=subprocess_env(tmp_path, mnist_dir))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = check_train_outputs(out, proc.stdout)
    # Same seed, threads and backend in another process: identical results.
    first = json.loads((small_run["out"] / "history.json").read_text())
    assert [r["loss"] for r in summary["history"]] == [r["loss"] for r in first["history"]]
    a, b = load_npz(out / "params.npz"), load_npz(small_run["out"] / "params.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_train_is_reproducible_and_seeded(small_run, mnist_dir, tmp_path):
    status, _, err = train(tmp_path / "again", mnist_dir, *SMALL, "--quiet")
    assert status == 0, err
    first = json.loads((small_run["out"] / "history.json").read_text())
    again = json.loads((tmp_path / "again" / "history.json").read_text())
    assert [r["loss"] for r in again["history"]] == [r["loss"] for r in first["history"]]
    assert again["iteration_losses"] == first["iteration_losses"]
    p1, p2 = load_npz(small_run["out"] / "params.npz"), load_npz(tmp_path / "again" / "params.npz")
    assert set(p1) == set(p2)
    for name in p1:
        np.testing.assert_array_equal(p1[name], p2[name], err_msg=name)

    status, _, err = train(tmp_path / "seed1", mnist_dir, *SMALL, "--quiet", seed=1)
    assert status == 0, err
    p3 = load_npz(tmp_path / "seed1" / "params.npz")
    for name in ("W1", "W2", "W3"):
        assert not np.array_equal(p1[name], p3[name]), f"{name} does not depend on --seed"
    other = json.loads((tmp_path / "seed1" / "history.json").read_text())
    assert other["iteration_losses"] != first["iteration_losses"]


def test_train_loss_goes_down(small_run):
    summary = json.loads((small_run["out"] / "history.json").read_text())
    losses = [r["loss"] for r in summary["history"]]
    assert losses[1] < losses[0], losses
    it = summary["iteration_losses"]
    assert len(it) == 2 * 10  # 500 images in batches of 50, two epochs
    assert np.mean(it[-5:]) < np.mean(it[:5]), it
    # Untrained, the loss is about ln 10; it must have started there.
    assert it[0] == pytest.approx(math.log(10), abs=0.1)


@pytest.mark.parametrize("model", ["lenet", "deep", "alexnet"])
def test_train_other_models(model, mnist_dir, tmp_path):
    out = tmp_path / model
    status, stdout, err = train(out, mnist_dir, "--model", model, "--limit", "200",
                                "--epochs", "1", "--batch-size", "50", "--quiet")
    assert status == 0, err
    assert "Traceback" not in err
    assert json.loads((out / "model.json").read_text())["model"] == model
    summary = json.loads((out / "history.json").read_text())
    assert summary["model"] == model and len(summary["history"]) == 1
    assert all(math.isfinite(v) for v in summary["iteration_losses"])
    assert len(summary["iteration_losses"]) == 4
    assert re.search(r"^final test accuracy \d\.\d{4} on 200 images", stdout, re.M), stdout
    for name in TRAIN_OUTPUTS:
        assert (out / name).is_file(), name
    net = make_model(model)
    net.load_params(out / "params.npz")  # the file matches the network it came from


def test_train_numpy_backend(mnist_dir, tmp_path):
    out = tmp_path / "np"
    status, stdout, err = train(out, mnist_dir, "--backend", "numpy", "--limit", "100",
                                "--epochs", "1", "--batch-size", "50")
    assert status == 0, err
    assert "backend numpy" in stdout
    summary = json.loads((out / "history.json").read_text())
    assert summary["backend"] == "numpy"
    assert len(summary["history"]) == 1 and math.isfinite(summary["history"][0]["loss"])


@pytest.mark.parametrize("schedule, epochs, batch, expected", [
    # 100 images in batches of 50, 3 epochs: epoch e (from 1) trains with
    # 0.004 * (1 + cos(pi * (e - 1) / 3)) / 2.
    ("cosine", "3", "50", [0.004, 0.003, 0.001]),
    # Batches of 25, 2 epochs: 8 updates; recorded after each epoch's last
    # update is the rate set for the next one.
    ("cosine-steps", "2", "25", [0.002, 0.0]),
])
def test_train_cosine_schedules(mnist_dir, tmp_path, schedule, epochs, batch, expected):
    out = tmp_path / schedule
    status, _, err = train(out, mnist_dir, "--limit", "100", "--epochs", epochs, "--batch-size",
                           batch, "--lr", "0.004", "--lr-schedule", schedule, "--quiet")
    assert status == 0, err
    lrs = [r["lr"] for r in json.loads((out / "history.json").read_text())["history"]]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_train_presets_and_overrides(mnist_dir, tmp_path):
    from fastconv.train import RECIPES
    common = ["--limit", "60", "--batch-size", "20", "--quiet"]
    runs = {"book": ["--epochs", "1"],  # no --preset: the book's recipe
            "fast": ["--preset", "fast"],
            "fast-overridden": ["--preset", "fast", "--epochs", "1", "--augment", "0",
                                "--lr", "0.002"]}
    summaries = {}
    for name, argv in runs.items():
        status, _, err = train(tmp_path / name, mnist_dir, *common, *argv)
        assert status == 0, err
        summaries[name] = json.loads((tmp_path / name / "history.json").read_text())
    book, fast, overridden = summaries["book"], summaries["fast"], summaries["fast-overridden"]
    assert book["preset"] == "book" and book["lr"] == 0.001 and book["init"] == "book"
    assert book["lr_schedule"] == "constant" and book["augment"] == 0
    assert fast["preset"] == "fast"
    for key in ("epochs", "lr", "augment", "init", "lr_schedule", "optimizer"):
        assert fast[key] == getattr(RECIPES["fast"], key), key
    assert (overridden["epochs"], overridden["augment"], overridden["lr"]) == (1, 0, 0.002)
    assert overridden["lr_schedule"] == "cosine-steps" and overridden["init"] == "he"


def test_cosine_lr_values_and_errors():
    from fastconv.train.schedules import cosine_lr
    assert [cosine_lr(1.0, e, 4) for e in range(5)] == pytest.approx(
        [1.0, (1 + 2 ** -0.5) / 2, 0.5, (1 - 2 ** -0.5) / 2, 0.0], abs=1e-15)
    for epoch, epochs in [(-1, 4), (5, 4), (0, 0)]:
        with pytest.raises(ValueError, match="epoch"):
            cosine_lr(1.0, epoch, epochs)


# --- eval and viz ---------------------------------------------------------------

def parse_eval(stdout):
    """(model, printed accuracy, correct, total, 10x10 matrix) from eval's output."""
    m = re.search(r"^(\w+): test accuracy (\d\.\d{4}) \((\d+)/(\d+)\)$", stdout, re.M)
    assert m, stdout
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("true\\pred"))
    assert lines[head].split()[1:] == [str(j) for j in range(10)], lines[head]
    rows = [line.split() for line in lines[head + 1:head + 11]]
    assert [int(r[0]) for r in rows] == list(range(10)), rows
    assert all(len(r) == 11 for r in rows), rows
    cm = np.array([[int(v) for v in r[1:]] for r in rows])
    return m.group(1), float(m.group(2)), int(m.group(3)), int(m.group(4)), cm


def test_eval_confusion_matrix(small_run, mnist_dir, tmp_path):
    out = tmp_path / "eval"
    status, stdout, err = run_cli(["eval", "--params", small_run["out"] / "params.npz",
                                   "--data", mnist_dir, "--out", out])
    assert status == 0, err
    assert "Traceback" not in err
    model, acc, correct, total, cm = parse_eval(stdout)
    assert model == "simple"  # read from model.json beside the params
    assert cm.shape == (10, 10)
    assert cm.sum(axis=1).tolist() == TEST_LABEL_COUNTS
    assert total == 10000 == cm.sum()
    assert correct == np.trace(cm)
    assert acc == pytest.approx(np.trace(cm) / cm.sum(), abs=5e-5 + 1e-12)
    assert 0.2 < acc < 1.0  # 2 epochs on 500 images learn something, not everything
    assert_png(out / "confusion_matrix.png")
    assert_png(out / "misclassified.png")


def test_viz_writes_pictures(small_run, mnist_dir, tmp_path):
    out = tmp_path / "viz"
    status, stdout, err = run_cli(["viz", "--params", small_run["out"] / "params.npz",
                                   "--data", mnist_dir, "--out", out, "--index", "7"])
    assert status == 0, err
    assert_png(out / "filters.png")
    assert_png(out / "feature_maps.png")
    assert str(out) in stdout

    # Without --out, the pictures go beside the params file.
    beside = tmp_path / "beside"
    beside.mkdir()
    for name in ("params.npz", "model.json"):
        shutil.copy(small_run["out"] / name, beside / name)
    status, _, err = run_cli(["viz", "--params", beside / "params.npz", "--data", mnist_dir])
    assert status == 0, err
    assert_png(beside / "filters.png")
    assert_png(beside / "feature_maps.png")


# --- errors: one line on stderr, no traceback ------------------------------------

BAD_OPTIONS = [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--model", "nope"], "--model"),
]


@pytest.mark.parametrize("argv, option", BAD_OPTIONS, ids=["epochs0", "lr-1", "model-nope"])
def test_bad_option_value(argv, option, tmp_path):
    status, stdout, err = run_cli([*argv, "--out", tmp_path / "never"])
    assert status == 2
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("fastconv train: error: argument " + option), err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("argv, option", BAD_OPTIONS, ids=["epochs0", "lr-1", "model-nope"])
def test_bad_option_value_is_one_line(argv, option, tmp_path):
    status, _, err = run_cli([*argv, "--out", tmp_path / "never"])
    assert_one_line_error(status, err, option)


def test_missing_params_file(mnist_dir, tmp_path):
    missing = tmp_path / "nothing" / "params.npz"
    for command in ("eval", "viz"):
        status, _, err = run_cli([command, "--params", missing, "--data", mnist_dir])
        assert_one_line_error(status, err, "not found", str(missing))


def test_params_of_the_wrong_model(small_run, mnist_dir, tmp_path):
    # params.npz alone (no model.json beside it), so --model decides.
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(small_run["out"] / "params.npz", lone / "params.npz")
    status, _, err = run_cli(["eval", "--params", lone / "params.npz", "--model", "deep",
                              "--data", mnist_dir])
    assert_one_line_error(status, err, "deep", str(lone / "params.npz"))


def test_model_json_that_is_not_an_object(small_run, mnist_dir, tmp_path):
    shutil.copy(small_run["out"] / "params.npz", tmp_path / "params.npz")
    (tmp_path / "model.json").write_text('["simple"]')
    status, _, err = run_cli(["eval", "--params", tmp_path / "params.npz", "--data", mnist_dir])
    assert_one_line_error(status, err, "model.json")


@pytest.mark.parametrize("kind", ["random", "truncated"])
def test_corrupt_params_file(kind, small_run, mnist_dir, tmp_path):
    bad = tmp_path / "params.npz"
    if kind == "random":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)
                        .tobytes())
    else:  # the first half of a real file: a zip that ends early
        data = (small_run["out"] / "params.npz").read_bytes()
        bad.write_bytes(data[:len(data) // 2])
    for command in ("eval", "viz"):
        status, _, err = run_cli([command, "--params", bad, "--data", mnist_dir])
        assert_one_line_error(status, err, str(bad))


def test_data_folder_without_mnist(tmp_path):
    """An empty --data folder fails fast and cleanly (the download can only hit a closed port)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = train(tmp_path / "out", empty, "--limit", "10", "--epochs", "1")
    assert status == 1
    assert "Traceback" not in err
    assert err.startswith("fastconv train: error: "), err
    assert str(empty) in err and "--data" in err
    assert list(empty.iterdir()) == []  # no partial download left behind


def test_data_folder_without_mnist_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = train(tmp_path / "out", empty, "--limit", "10", "--epochs", "1")
    assert_one_line_error(status, err, str(empty))


@pytest.mark.parametrize("index", [10000, -1])
def test_viz_index_out_of_range(index, small_run, mnist_dir, tmp_path):
    out = tmp_path / "viz"
    status, _, err = run_cli(["viz", "--params", small_run["out"] / "params.npz",
                              "--data", mnist_dir, "--out", out, "--index", index])
    assert_one_line_error(status, err, "--index", str(index))
    assert not (out / "feature_maps.png").exists()


# --- every subcommand against bad options: one line, never a traceback ---------------

# /proc refuses new entries, even to root (tests may run as root, where chmod
# does not stop a write).
PROC_CHILD = "/proc/fastconv-test-out"


def _a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


# (id, argv builder (tmp_path, params) -> argv, exit status, fragments of the error line).
# Usage errors (argparse's, and bad values found after parsing) exit 2, the rest 1.
BAD_RUNS = [
    ("train-seed-negative", lambda t, p: ["train", "--seed", "-1", "--out", t / "out"],
     2, ["--seed", "'-1'"]),
    ("train-seed-text", lambda t, p: ["train", "--seed", "x", "--out", t / "out"],
     2, ["--seed"]),
    ("train-augment-huge", lambda t, p: ["train", "--augment", "100000", "--out", t / "out"],
     2, ["--augment", "100000"]),
    ("train-augment-negative", lambda t, p: ["train", "--augment", "-1", "--out", t / "out"],
     2, ["--augment"]),
    ("train-epochs-zero", lambda t, p: ["train", "--epochs", "0", "--out", t / "out"],
     2, ["--epochs"]),
    ("train-limit-zero", lambda t, p: ["train", "--limit", "0", "--out", t / "out"],
     2, ["--limit"]),
    ("train-lr-inf", lambda t, p: ["train", "--lr", "inf", "--out", t / "out"], 2, ["--lr"]),
    ("train-dtype-half", lambda t, p: ["train", "--dtype", "float16", "--out", t / "out"],
     2, ["--dtype"]),
    ("train-threads-zero", lambda t, p: ["train", "--threads", "0", "--out", t / "out"],
     2, ["--threads"]),
    # More threads than set_num_threads accepts: a usage error (it was exit 1).
    ("train-threads-too-many", lambda t, p: ["train", "--threads", str(TOO_MANY_THREADS),
                                             "--out", t / "out"], 2, ["--threads"]),
    ("eval-threads-too-many", lambda t, p: ["eval", "--params", p, "--threads",
                                            str(TOO_MANY_THREADS)], 2, ["--threads"]),
    ("bench-threads-too-many", lambda t, p: ["bench", "--quick", "--threads",
                                             str(TOO_MANY_THREADS)], 2, ["--threads"]),
    ("train-out-proc", lambda t, p: ["train", "--out", "/proc"], 1, ["/proc"]),
    ("train-out-proc-child", lambda t, p: ["train", "--out", PROC_CHILD], 1, [PROC_CHILD]),
    ("train-out-is-a-file", lambda t, p: ["train", "--out", _a_file(t)], 1, ["a-file"]),
    ("train-data-is-a-file", lambda t, p: ["train", "--data", _a_file(t), "--out", t / "out",
                                           "--no-download"], 1, ["a-file"]),
    ("eval-out-proc", lambda t, p: ["eval", "--params", p, "--out", "/proc"], 1, ["/proc"]),
    ("eval-out-proc-child", lambda t, p: ["eval", "--params", p, "--out", PROC_CHILD],
     1, [PROC_CHILD]),
    ("eval-out-is-a-file", lambda t, p: ["eval", "--params", p, "--out", _a_file(t)],
     1, ["a-file"]),
    ("eval-params-folder", lambda t, p: ["eval", "--params", t], 1, ["not found"]),
    ("eval-no-params", lambda t, p: ["eval"], 2, ["--params"]),
    ("viz-out-proc", lambda t, p: ["viz", "--params", p, "--out", "/proc"], 1, ["/proc"]),
    ("viz-out-proc-child", lambda t, p: ["viz", "--params", p, "--out", PROC_CHILD],
     1, [PROC_CHILD]),
    ("viz-index-huge", lambda t, p: ["viz", "--params", p, "--index", "10000"],
     2, ["--index", "10000"]),
    ("viz-index-text", lambda t, p: ["viz", "--params", p, "--index", "one"], 2, ["--index"]),
    ("bench-json-proc", lambda t, p: ["bench", "--quick", "--json", "/proc/bench.json"],
     1, ["/proc/bench.json"]),
    ("bench-json-folder", lambda t, p: ["bench", "--quick", "--json", t], 1, ["--json"]),
    ("bench-json-missing-folder", lambda t, p: ["bench", "--quick", "--json",
                                                t / "no" / "b.json"], 1, ["b.json"]),
    ("bench-repeats-zero", lambda t, p: ["bench", "--repeats", "0"], 2, ["--repeats"]),
    ("no-command", lambda t, p: [], 2, []),
    ("unknown-command", lambda t, p: ["fly"], 2, ["fly"]),
]


def test_help_names_only_the_defaults_a_command_has():
    # train writes a model card, it never reads one beside --params.
    for command, reads_card in [("train", False), ("eval", True), ("viz", True),
                                ("predict", True), ("export", True)]:
        with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
            cli.build_parser().parse_args([command, "--help"])
        text = " ".join(out.getvalue().split())
        assert ("model.json beside --params" in text) == reads_card, (command, text)
        assert "--params" in text or not reads_card


def _must_not_run(*args, **kwargs):
    raise AssertionError("a bad option must be refused before the work starts")


@pytest.mark.parametrize("argv, status, fragments", [r[1:] for r in BAD_RUNS],
                         ids=[r[0] for r in BAD_RUNS])
def test_bad_options_of_every_subcommand(argv, status, fragments, small_run, mnist_dir,
                                         tmp_path, monkeypatch):
    from fastconv import bench, nn as models
    from fastconv.train import trainer
    # The work a bad option must stop before: training, evaluation, benchmarking.
    monkeypatch.setattr(trainer.Trainer, "train", _must_not_run)
    monkeypatch.setattr(models.Net, "predict", _must_not_run)
    monkeypatch.setattr(bench.kernels, "bench_kernels", _must_not_run)
    monkeypatch.setattr(bench.steps, "bench_training", _must_not_run)
    monkeypatch.setattr(bench.steps, "bench_forward", _must_not_run)
    monkeypatch.setattr(bench.steps, "bench_inference", _must_not_run)
    args = [str(a) for a in argv(tmp_path, small_run["out"] / "params.npz")]
    if args and args[0] in ("train", "eval", "viz") and "--data" not in args:
        args += ["--data", str(mnist_dir)]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli(args)
    assert code == status, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    if status == 1:
        assert_one_line_error(code, err, *fragments)
    else:
        assert re.match(r"fastconv( \w+)?: error: ", last), err
        for fragment in fragments:
            assert fragment in last, (fragment, last)
    # A refused command leaves nothing behind (no empty --out folder).
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "out").exists()


def test_train_failure_removes_the_out_folder_it_created(mnist_dir, tmp_path, monkeypatch):
    from fastconv.train import trainer

    def boom(self):
        raise ValueError("the optimiser diverged")

    monkeypatch.setattr(trainer.Trainer, "train", boom)
    out = tmp_path / "new" / "run"
    status, _, err = train(out, mnist_dir, "--limit", "100", "--epochs", "1", "--quiet")
    assert_one_line_error(status, err, "the optimiser diverged", expected_status=1)
    assert list(tmp_path.iterdir()) == []


def test_final_save_failure_keeps_the_weights_in_the_temp_folder(mnist_dir, tmp_path,
                                                                  monkeypatch):
    import tempfile

    from fastconv.train import trainer
    out = tmp_path / "out"
    fallback = tmp_path / "tmp"
    fallback.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fallback))
    real_train = trainer.Trainer.train

    def train_then_lose_the_folder(self, *args, **kwargs):
        result = real_train(self, *args, **kwargs)
        shutil.rmtree(out)
        out.write_text("a file where the output folder was")
        return result

    monkeypatch.setattr(trainer.Trainer, "train", train_then_lose_the_folder)
    status, _, err = train(out, mnist_dir, "--limit", "100", "--epochs", "1",
                           "--batch-size", "50", "--quiet")
    assert_one_line_error(status, err, str(out / "params.npz"), expected_status=1)
    saved = list(fallback.iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".npz", saved
    assert str(saved[0]) in err
    net = SimpleConvNet()
    net.load_params(saved[0])
    untrained = make_model("simple", seed=0)
    assert not np.array_equal(net.params["W2"], untrained.params["W2"])


def test_train_on_a_full_disk_keeps_the_previous_run(small_run, mnist_dir, tmp_path):
    """``ulimit -f`` in a child: the new params.npz cannot be written, nor its fallback."""
    import resource
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(small_run["out"] / "params.npz", out / "params.npz")
    before = (out / "params.npz").read_bytes()
    env = subprocess_env(tmp_path, mnist_dir)
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()

    def limit_files():
        _default_sigint()
        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))

    proc = subprocess.run(
        [sys.executable, "-m", "fastconv", "train", "--data", str(mnist_dir), "--out", str(out),
         "--limit", "100", "--epochs", "1", "--batch-size", "50", "--quiet"],
        capture_output=True, text=True, timeout=600, env=env, preexec_fn=limit_files)
    assert_one_line_error(proc.returncode, proc.stderr, str(out / "params.npz"),
                          "File too large", expected_status=1)
    assert (out / "params.npz").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["params.npz"]
    assert list((tmp_path / "tmp").iterdir()) == []


# --- Ctrl-C -----------------------------------------------------------------------

class _Reader:
    """Collects a pipe's bytes on a thread, so the test can poll without blocking."""

    def __init__(self, pipe):
        self.data = bytearray()
        self._fd = pipe.fileno()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while chunk := os.read(self._fd, 65536):
            with self._lock:
                self.data += chunk

    def text(self):
        with self._lock:
            return self.data.decode("utf-8", "replace")


def _default_sigint():
    # A child started from a shell that ignores SIGINT (a background job)
    # would inherit SIG_IGN, and Python would then never raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_saves_a_checkpoint(mnist_dir, tmp_path):
    out = tmp_path / "ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastconv", "train", "--data", str(mnist_dir), "--out", str(out),
         "--limit", "3000", "--epochs", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(tmp_path, mnist_dir),
        preexec_fn=_default_sigint)
    try:
        stdout, stderr = _Reader(proc.stdout), _Reader(proc.stderr)
        # Epoch 1 is done once its line is out, or once epoch 2's progress bar
        # starts (stdout may be block-buffered on a pipe). The deadline only
        # guards against a hang; it is not a speed requirement.
        deadline = time.monotonic() + 300
        while not (re.search(r"^epoch +1/50 ", stdout.text(), re.M)
                   or "epoch 2/50" in stderr.text()):
            assert proc.poll() is None, f"train ended early:\n{stderr.text()}"
            assert time.monotonic() < deadline, "no epoch finished within 300 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=120)
        stdout.thread.join(10)
        stderr.thread.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    err = stderr.text()
    assert status == 130, err
    assert "Traceback" not in err
    last = re.split(r"[\r\n]+", err.strip())[-1]
    assert "interrupted" in last and "checkpoint" in last and str(out / "params.npz") in last, err
    net = SimpleConvNet()
    net.load_params(out / "params.npz")
    summary = json.loads((out / "history.json").read_text())
    assert summary["interrupted"] is True
    assert summary["final_test_acc"] is None
    assert 1 <= summary["completed_epochs"] < 50
    assert len(summary["history"]) == summary["completed_epochs"]
    assert json.loads((out / "model.json").read_text())["model"] == "simple"
    # The per-epoch lines were printed (the last one may be lost if Ctrl-C
    # falls between recording an epoch and printing its line).
    printed = [int(e) for e, *_ in EPOCH_LINE.findall(stdout.text())]
    assert printed == list(range(1, len(printed) + 1)) and printed, stdout.text()
    assert summary["completed_epochs"] - 1 <= len(printed) <= summary["completed_epochs"]


# --- bench ------------------------------------------------------------------------

def test_bench_quick_json(tmp_path):
    path = tmp_path / "bench.json"
    # The kernel table only: tests/test_bench.py runs every section.
    status, stdout, err = run_cli(["bench", "--quick", "--repeats", "1", "--only", "kernels",
                                   "--json", path])
    assert status == 0, err
    lines = stdout.splitlines()
    # The kernel table: its header, then the contiguous Markdown rows below it.
    start = next((i for i, line in enumerate(lines) if line.startswith("| op | shape |")), None)
    assert start is not None, stdout
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    assert set(table[1]) <= set("|-"), table[1]
    report = json.loads(path.read_text())
    rows = report["kernels"]
    assert isinstance(rows, list) and rows
    assert len(table) == 2 + len(rows)
    for row in rows:
        for key in ("c_1t", "c_nt", "numpy", "copy"):
            value = row[key]
            if key.startswith("c_") and not HAS_C:
                assert value is None
                continue
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, row)
            assert math.isfinite(value) and value >= 0, (key, row)


@pytest.mark.parametrize("option", [["--repeats", "0"], ["--threads", "-1"]],
                         ids=["repeats0", "threads-1"])
def test_bench_bad_option_value(option, tmp_path):
    status, _, err = run_cli(["bench", "--quick", *option])
    assert status == 2
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("fastconv bench: error:") and option[0] in last, err


def test_time_interleaved_takes_turns_and_medians(monkeypatch):
    from fastconv import bench
    clock = [0.0]
    monkeypatch.setattr(bench.timing.time, "perf_counter", lambda: clock[0])
    calls = []

    def variant(name, costs):
        costs = iter(costs)

        def fn():
            calls.append(name)
            clock[0] += next(costs)
        return fn

    # Warm-up costs first (ignored), then one cost per round.
    fast = variant("fast", [9.0, 1.0, 5.0, 2.0, 3.0, 4.0])
    slow = variant("slow", [9.0, 10.0, 30.0, 20.0])
    medians = bench.time_interleaved({"fast": fast, "slow": slow}, repeats=5,
                                     fewer={"slow": 3})
    assert medians == {"fast": 3.0, "slow": 20.0}
    assert calls == ["fast", "slow"] + ["fast", "slow"] * 3 + ["fast"] * 2
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        bench.time_interleaved({"fast": fast}, repeats=0)


def test_touch_memory_writes_and_frees():
    from fastconv import bench
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds = bench.touch_memory(64 << 20)
    # 64 MiB of fresh pages cannot be written without faulting some in.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt > before
    assert isinstance(seconds, float) and seconds >= 0
    assert bench.touch_memory(0) >= 0


def test_time_interleaved_bursts_and_callee_timing(monkeypatch):
    from fastconv import bench
    clock = [0.0]
    monkeypatch.setattr(bench.timing.time, "perf_counter", lambda: clock[0])
    costs = iter([5.0] + [7.0, 1.0, 2.0] * 2)  # warm-up, then two bursts of three

    def local():
        clock[0] += next(costs)

    reported = iter([9.0, 8.0, 3.0, 4.0, 8.0, 5.0, 6.0])

    def remote():  # takes 100 s of round trip but reports its own time
        clock[0] += 100.0
        return next(reported)
    remote.timed_by_callee = True

    medians = bench.time_interleaved({"local": local, "remote": remote}, repeats=2, burst=3)
    # The first call of each burst is dropped: local keeps 1, 2, 1, 2; remote 3, 4, 5, 6.
    assert medians == {"local": 1.5, "remote": 4.5}
