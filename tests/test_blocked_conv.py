"""The blocked convolution plan (csrc/conv_blocked.c, ops/conv_plans.Blocked).

Oracle: the NumPy backend in float64 (``bruteforce.assert_sum_close``: each
output is a sum of ``terms`` products, each rounded once in float32 in some
order, so |err| <= terms * eps * (the same op on magnitudes)). Forward: C*kh*kw
products and the bias; weight gradient: N*OH*OW; input gradient: at most
FN*kh*kw. ReLU is 1-Lipschitz and keeps the bound.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import functional as F
from fastconv._testing import cap_isa, last_team_size, use_conv_plan
from fastconv.ops.conv import backward_core, forward_core
from fastconv.ops.conv_plans import BLOCKED_NCHW_MAX_CHANNELS
from fastconv.ops.window import Window
import bruteforce as bf
from conftest import running_on

try:
    from fastconv import _ext
except ImportError:  # pragma: no cover - the NumPy-only install
    _ext = None

pytestmark = pytest.mark.skipif(_ext is None or not _ext.blocked_available(),
                                reason="blocked convolution not compiled in")

ISA_MISSING = {1: "this CPU has no AVX2+FMA", 2: "this CPU has no AVX-512"}


@contextlib.contextmanager
def on_isa(level):
    """The blocked (and direct) kernels capped at ``level``; skips where the CPU lacks it."""
    if not _ext.blocked_isa_supported(level):
        pytest.skip(ISA_MISSING[level])
    with cap_isa(level):
        assert _ext.blocked_isa() == level
        yield


def numpy_ops(x_shape, w_shape, pad):
    """The three ops on the NumPy backend (called on float64 arrays by assert_sum_close)."""
    def fwd(x, w, b):
        with fastconv.use_backend("numpy"):
            return F.conv2d(x, w, b, 1, pad)

    def dw(x, d):
        with fastconv.use_backend("numpy"):
            return F.conv2d_weight_grad(x, d, w_shape, 1, pad)

    def dx(d, w):
        with fastconv.use_backend("numpy"):
            return F.conv2d_input_grad(d, w, x_shape, 1, pad)
    return fwd, dw, dx


def run_blocked(x, w, b, d, pad, relu_too=True):
    """forward (bias), forward with fused ReLU, and the backward (dx, dW, db) of a
    layer whose input gradient is needed, on the blocked plan."""
    win = Window.of(w.shape[2:], 1, pad)
    with use_conv_plan("blocked"):
        out, ctx = forward_core(x, w, b, win, keep=True)
        assert ctx.plan_name == "blocked"
        fused = forward_core(x, w, b, win, keep=False, relu=True)[0] if relu_too else None
        dx, dw, db = backward_core(ctx, d)
    return out, fused, dx, dw, db


def check_against_numpy(x, w, b, d, pad, results):
    out, fused, dx, dw, db = results
    n, c, _, _ = x.shape
    fn, _, kh, kw = w.shape
    fwd, wgrad, igrad = numpy_ops(x.shape, w.shape, pad)
    for a in (out, dx, dw, db):
        assert a.dtype == np.float32
    bf.assert_sum_close(out, fwd, (x, w, b), c * kh * kw + 1)
    if fused is not None:
        bf.assert_sum_close(fused, lambda *a: np.maximum(fwd(*a), 0), (x, w, b),
                            c * kh * kw + 1)
    bf.assert_sum_close(dw, wgrad, (x, d), n * d.shape[2] * d.shape[3])
    bf.assert_sum_close(dx, igrad, (d, w), fn * kh * kw)


def data(n, c, h, w, fn, kh, kw, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((fn, c, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(fn).astype(np.float32)
    return x, weight, bias, rng


def not_a_block(v):
    return v % 8 != 0


geometry = st.fixed_dictionaries({
    "n": st.integers(1, 7), "c": st.integers(1, 40).filter(not_a_block),
    "fn": st.integers(1, 40).filter(not_a_block), "h": st.integers(1, 30),
    "w": st.integers(1, 30), "kh": st.integers(1, 5), "kw": st.integers(1, 5),
    "ph": st.integers(0, 4), "pw": st.integers(0, 4), "seed": st.integers(0, 2**32 - 1),
})


@settings(max_examples=60, deadline=None)
@given(geometry)
def test_property_blocked_plan_within_the_bound_of_numpy(g):
    pad = (min(g["ph"], g["kh"] - 1), min(g["pw"], g["kw"] - 1))
    assume(g["h"] + 2 * pad[0] >= g["kh"] and g["w"] + 2 * pad[1] >= g["kw"])
    x, w, b, rng = data(g["n"], g["c"], g["h"], g["w"], g["fn"], g["kh"], g["kw"], g["seed"])
    oh, ow = g["h"] + 2 * pad[0] - g["kh"] + 1, g["w"] + 2 * pad[1] - g["kw"] + 1
    d = rng.standard_normal((g["n"], g["fn"], oh, ow)).astype(np.float32)
    with running_on("c-2t"):
        results = run_blocked(x, w, b, d, pad)
    check_against_numpy(x, w, b, d, pad, results)


# (n, c, h, w, fn, k, pad): a first layer (NCHW read directly), DeepConvNet-like
# inner layers at batches that leave partial chunks, partial blocks everywhere.
LAYER_CASES = [
    (5, 1, 28, 28, 16, 3, 1),
    (3, 3, 17, 15, 30, 5, 0),
    (7, 16, 14, 14, 30, 3, 1),
    (9, 20, 13, 11, 33, 3, 2),
    (4, 37, 8, 8, 19, 3, 1),
    (2, 64, 8, 8, 64, 3, 1),
]


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
@pytest.mark.parametrize("case", LAYER_CASES, ids=[str(c) for c in LAYER_CASES])
def test_each_isa_build_within_the_bound_of_numpy(level, case):
    n, c, h, wd, fn, k, pad = case
    x, w, b, rng = data(n, c, h, wd, fn, k, k, 1)
    d = rng.standard_normal((n, fn, h + 2 * pad - k + 1, wd + 2 * pad - k + 1)).astype(
        np.float32)
    with on_isa(level), running_on("c-2t"):
        results = run_blocked(x, w, b, d, pad)
    check_against_numpy(x, w, b, d, pad, results)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
@pytest.mark.parametrize("case", [LAYER_CASES[1], LAYER_CASES[3]], ids=["nchw-in", "blocked-in"])
def test_bits_do_not_depend_on_threads(level, case):
    n, c, h, wd, fn, k, pad = case
    x, w, b, rng = data(n, c, h, wd, fn, k, k, 2)
    d = rng.standard_normal((n, fn, h + 2 * pad - k + 1, wd + 2 * pad - k + 1)).astype(
        np.float32)
    runs = []
    with on_isa(level):
        for threads in (1, 2, 3):
            with running_on(f"c-{threads}t"):
                runs.append(run_blocked(x, w, b, d, pad))
                # A team of that size really ran (the backward's last kernel).
                assert threads == 1 or last_team_size() == threads
    assert (c <= BLOCKED_NCHW_MAX_CHANNELS) == (case is LAYER_CASES[1])
    for other in runs[1:]:
        for a, o in zip(runs[0], other):
            assert a.tobytes() == o.tobytes()


def test_public_ops_and_the_layer_run_blocked_and_keep_nchw(backend):
    n, c, h, wd, fn, k, pad = LAYER_CASES[2]
    x, w, b, rng = data(n, c, h, wd, fn, k, k, 3)
    layer = fastconv.Convolution(w, b, 1, pad)
    with use_conv_plan("blocked"):
        out = layer.forward(x)
        if backend == "c":
            assert layer.plan == "blocked"
            assert F.conv_plan(x.shape, w.shape, np.float32, 1, pad) == "blocked"
        d = rng.standard_normal(out.shape).astype(np.float32)
        dx = layer.backward(d)
        one_off = (F.conv2d(x, w, b, 1, pad), F.conv2d_weight_grad(x, d, w.shape, 1, pad),
                   F.conv2d_input_grad(d, w, x.shape, 1, pad))
    assert out.shape == (n, fn, h, wd) and out.flags.c_contiguous and dx.shape == x.shape
    check_against_numpy(x, w, b, d, pad, (out, None, dx, layer.dW, layer.db))
    check_against_numpy(x, w, b, d, pad, (one_off[0], None, one_off[2], one_off[1], layer.db))
    # The layer's saved input is its own: writing to x after forward changes nothing.
    with use_conv_plan("blocked"):
        layer.forward(x)
        x[...] = 0
        layer.backward(d)
    check_against_numpy(data(n, c, h, wd, fn, k, k, 3)[0], w, b, d, pad,
                        (out, None, dx, layer.dW, layer.db))


def test_plan_steps_aside_where_it_cannot_serve():
    x = np.ones((2, 8, 9, 9), np.float32)
    with fastconv.use_backend("c"), use_conv_plan("blocked"):
        assert F.conv_plan(x.shape, (4, 8, 3, 3), np.float32, 1, 1) == "blocked"
        assert F.conv_plan(x.shape, (4, 8, 3, 3), np.float64, 1, 1) == "direct"
        assert F.conv_plan(x.shape, (4, 8, 3, 3), np.float32, 1, 3) != "blocked"  # pad > k-1
        assert F.conv_plan(x.shape, (4, 8, 3, 3), np.float32, 2, 1) != "blocked"  # stride 2
    with fastconv.use_backend("numpy"), use_conv_plan("blocked"):
        assert F.conv_plan(x.shape, (4, 8, 3, 3), np.float32, 1, 1) != "blocked"


@pytest.mark.parametrize("case", [LAYER_CASES[1], LAYER_CASES[3]], ids=["nchw-in", "blocked-in"])
def test_non_finite_inputs_give_what_per_image_gives(case):
    n, c, h, wd, fn, k, pad = case
    x, w, b, rng = data(n, c, h, wd, fn, k, k, 4)
    # NaN and infinities inside and on the border (next to the padding).
    x[0, 0, 0, 0] = np.inf
    x[-1, -1, h // 2, wd - 1] = -np.inf
    x[0, c // 2, h - 1, wd // 2] = np.nan
    d = rng.standard_normal((n, fn, h + 2 * pad - k + 1, wd + 2 * pad - k + 1)).astype(
        np.float32)
    runs = {}
    win = Window.of(k, 1, pad)
    for plan in ("blocked", "per_image"):
        with fastconv.use_backend("c"), use_conv_plan(plan):
            out, ctx = forward_core(x, w, b, win, keep=True)
            assert ctx.plan_name == plan
            dx, dw, _ = backward_core(ctx, d)
            runs[plan] = (out, dw, dx)
    finite = np.where(np.isfinite(x), x, 0)
    (s_out, t_out), (s_w, t_w), (s_x, t_x) = (
        (bf_scale, terms) for bf_scale, terms in _magnitudes(finite, w, b, d, pad))
    for what, a, o, scale, terms in zip(("forward", "weight grad", "input grad"),
                                        runs["blocked"], runs["per_image"],
                                        (s_out, s_w, s_x), (t_out, t_w, t_x)):
        assert not np.isfinite(a).all() or what == "input grad", what
        for test in (np.isnan, np.isposinf, np.isneginf):
            assert np.array_equal(test(a), test(o)), (what, test.__name__)
        keep = np.isfinite(a)
        bf.assert_sums_agree(a[keep], o[keep], scale[keep], terms, what=what)


def _magnitudes(x, w, b, d, pad):
    ax, aw, ab, ad = (np.abs(a.astype(np.float64)) for a in (x, w, b, d))
    n, c, _, _ = x.shape
    fn, _, kh, kw = w.shape
    with fastconv.use_backend("numpy"):
        return ((F.conv2d(ax, aw, ab, 1, pad), c * kh * kw + 1),
                (F.conv2d_weight_grad(ax, ad, w.shape, 1, pad), n * d.shape[2] * d.shape[3]),
                (F.conv2d_input_grad(ad, aw, x.shape, 1, pad), fn * kh * kw))


def test_deep_convnet_training_step_on_the_blocked_plan():
    # A whole float32 DeepConvNet step with every convolution on the blocked
    # plan: each conv layer's outputs and gradients, on the inputs and
    # grad_outputs it really got inside the net, within the rounding bound of
    # the float64 NumPy evaluation of that layer.
    net = fastconv.DeepConvNet(dtype=np.float32, seed=0)
    rng = np.random.default_rng(5)
    x = rng.random((3, 1, 28, 28)).astype(np.float32)
    t = np.array([1, 7, 3])
    seen = {}
    convs = [(name, layer) for name, layer in net.layers.items()
             if isinstance(layer, fastconv.Convolution)]
    assert len(convs) == 6
    for name, layer in convs:
        def forward(a, layer=layer, name=name, inner=layer.forward):
            out = inner(a)
            seen[name] = {"x": np.array(a, np.float32), "out": out.copy(), "plan": layer.plan}
            return out

        def backward(d, layer=layer, name=name, inner=layer.backward):
            dx = inner(d)
            # Copies: the ReLU before this layer works on dx in place.
            seen[name].update(d=np.array(d, np.float32), dx=None if dx is None else dx.copy(),
                              dW=layer.dW.copy(),
                              db=layer.db.copy())
            return dx
        layer.forward, layer.backward = forward, backward
    with running_on("c-2t"), use_conv_plan("blocked"), net.fixed_dropout_masks():
        loss, grads = net.loss_and_gradient(x, t)
    assert np.isfinite(loss)
    for i, (name, layer) in enumerate(convs):
        s = seen[name]
        assert s["plan"] == "blocked", name
        pad = layer.pad
        w, b = layer.W, layer.b
        fwd, wgrad, igrad = numpy_ops(s["x"].shape, w.shape, pad)
        n, c, _, _ = s["x"].shape
        fn, _, kh, kw = w.shape
        d = s["d"]
        bf.assert_sum_close(s["out"], fwd, (s["x"], w, b), c * kh * kw + 1)
        bf.assert_sum_close(s["dW"], wgrad, (s["x"], d), n * d.shape[2] * d.shape[3])
        if i == 0:
            assert s["dx"] is None  # the data's gradient is never computed
        else:
            bf.assert_sum_close(s["dx"], igrad, (d, w), fn * kh * kw)
        assert grads[f"W{i + 1}"].dtype == np.float32
        assert np.array_equal(grads[f"W{i + 1}"], s["dW"])
