"""Arguments are checked once, at the door: a layer checks its input and calls
the unchecked cores; the public ops check theirs and call the same cores. One
mistake reads the same whichever public entry it came through."""
import re

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv.ops import validate as V
from fastconv._testing import use_conv_plan


@pytest.fixture
def checks(monkeypatch):
    """Every V.float_array call of the test, as (argument name, shape)."""
    seen = []
    real = V.float_array

    def counting(x, name, *args, **kwargs):
        seen.append((name, np.shape(x)))
        return real(x, name, *args, **kwargs)

    monkeypatch.setattr(V, "float_array", counting)
    return seen


@pytest.mark.parametrize("backend", fastconv.available_backends())
@pytest.mark.parametrize("shape, pad", [((4, 16, 14, 14), 1), ((3, 1, 28, 28), 0),
                                        ((2, 8, 6, 6), 2)])
def test_one_convolution_forward_checks_x_once(checks, backend, shape, pad):
    rng = np.random.default_rng(0)
    layer = fastconv.Convolution(rng.standard_normal((6, shape[1], 3, 3)).astype(np.float32),
                                 np.zeros(6, np.float32), stride=1, pad=pad)
    x = rng.standard_normal(shape).astype(np.float32)
    with fastconv.use_backend(backend):
        for plan in ("direct", "per_image", "rows"):
            checks.clear()
            with use_conv_plan(plan):
                layer.forward(x)
            assert [c for c in checks if c[1] == x.shape] == [("x", x.shape)], (plan, checks)
            checks.clear()
            layer.infer(x)
            assert [c for c in checks if c[1] == x.shape] == [("x", x.shape)], checks


@pytest.mark.parametrize("backend", fastconv.available_backends())
def test_backward_checks_dout_once(checks, backend):
    rng = np.random.default_rng(1)
    layer = fastconv.Convolution(rng.standard_normal((5, 4, 3, 3)), np.zeros(5), pad=1)
    x = rng.standard_normal((2, 4, 9, 9))
    with fastconv.use_backend(backend):
        out = layer.forward(x)
        checks.clear()
        layer.backward(np.ones_like(out))
    assert [name for name, _ in checks] == ["grad_output"], checks


def _message(call):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    return type(info.value), re.sub(r"\bweight\b|\bW\b", "<filters>", str(info.value))


W = np.zeros((6, 3, 3, 3))
MISTAKES = {
    "wrong channels": np.zeros((2, 4, 8, 8)),
    "3-D x": np.zeros((3, 8, 8)),
    "a string": "abc",
    "complex": np.zeros((2, 3, 8, 8), complex),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_reads_the_same_through_every_entry(mistake):
    x = MISTAKES[mistake]
    entries = {
        "conv2d": lambda: F.conv2d(x, W, None, 1, 1),
        "conv2d_forward": lambda: F.conv2d_forward(x, W, None, 1, 1),
        "Convolution.forward": lambda: fastconv.Convolution(W, np.zeros(6), 1, 1).forward(x),
        "Convolution.infer": lambda: fastconv.Convolution(W, np.zeros(6), 1, 1).infer(x),
    }
    messages = {name: _message(call) for name, call in entries.items()}
    assert len(set(messages.values())) == 1, messages


# --- counts: one rule wherever fastconv takes a number of things ----------------

def _net():
    return fastconv.SimpleConvNet(input_dim=(1, 8, 8), conv_param={
        "filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1}, hidden_size=4,
        output_size=3, weight_init_std=0.01)


def _trainer(value):
    x, t = np.zeros((4, 1, 8, 8)), np.zeros(4, int)
    fastconv.Trainer(_net(), x, t, x, t, epochs=1, mini_batch_size=value, verbose=False)


def _accuracy(value):
    _net().accuracy(np.zeros((4, 1, 8, 8)), np.zeros(4, int), batch_size=value)


def _lrn(value):
    from fastconv.nn.normalization import LRN
    LRN(size=value)


def _onnx(value):
    pytest.importorskip("onnx")
    from fastconv.interop.onnx import onnx_model
    onnx_model(_net(), batch=value)


def _repeats(value):
    from fastconv.bench.timing import time_interleaved
    time_interleaved({"noop": lambda: None}, repeats=value)


# Each entry, whether it takes a whole-valued float (the book's code computes
# some of these by division) and whether None means "all" or "any" there.
COUNTS = [("Trainer mini_batch_size", _trainer, True, False),
          ("Net.accuracy batch_size", _accuracy, True, True),
          ("LRN size", _lrn, True, False), ("onnx_model batch", _onnx, True, True),
          ("time_interleaved repeats", _repeats, False, False)]


@pytest.mark.parametrize("entry, call, floats, none_ok", COUNTS, ids=[c[0] for c in COUNTS])
@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-3, ValueError), (np.int64(-1), ValueError), (2.5, ValueError),
    (float("inf"), ValueError), (float("nan"), ValueError), ("3", TypeError),
    (None, TypeError), (True, TypeError), (np.bool_(True), TypeError), (2 + 0j, TypeError),
])
def test_every_count_is_refused_by_the_same_rule(entry, call, floats, none_ok, value, error):
    if value is None and none_ok:
        call(value)     # accepted: the whole batch, or a dynamic one
        return
    if not floats and isinstance(value, float):
        error = TypeError
    name = entry.split()[-1]
    with pytest.raises(error, match=rf"{name} must be a positive integer, got "):
        call(value)


@pytest.mark.parametrize("call", [
    lambda big: F.conv2d_input_grad(np.zeros((1, 2, 3, 3), np.float32),
                                    np.zeros((2, 1, 3, 3), np.float32), big),
    lambda big: F.conv2d_weight_grad(np.zeros((1, 1, 5, 5), np.float32),
                                     np.zeros((1, 2, 3, 3), np.float32), big),
    lambda big: F.max_pool2d(np.zeros((1, 1, 4, 4)), big),
    lambda big: F.im2col(np.zeros((1, 1, 4, 4)), 2, 2, stride=big),
    lambda big: fastconv.nn.normalization.LRN(size=big),
], ids=["input_shape", "weight_shape", "kernel_size", "stride", "lrn-size"])
def test_an_array_where_a_shape_or_count_belongs_reads_in_one_short_line(call):
    # An error names the array by shape and dtype instead of printing it.
    with pytest.raises((TypeError, ValueError)) as info:
        call(np.zeros((1, 1, 50, 50)))
    message = str(info.value)
    assert "\n" not in message and len(message) < 200, message
