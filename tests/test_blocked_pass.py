"""A net's test-time pass in the channel-blocked layout (nn/blocked_pass.py,
ops/blocked.py, csrc/pool_blocked.c).

Oracles: the same net run layer by layer in NCHW, each convolution that the
pass ran blocked forced onto the blocked plan (whose kernels are tested
against the NumPy backend in test_blocked_conv.py): the pass must give the
same bits, NaN and inf included, on every thread count. Its pooling kernel is
compared bit for bit with the NCHW kernels (which equal the NumPy backend for
max pooling, tests/test_ops.py) and, fused with a ReLU, with np.maximum.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv._testing import use_conv_plan
from fastconv.nn import DeepConvNet, Net, SimpleConvNet, blocked_pass
from fastconv.ops import blocked as B
from fastconv.ops import pooling as P

try:
    from fastconv import _ext
except ImportError:  # pragma: no cover - the NumPy-only install
    _ext = None

pytestmark = pytest.mark.skipif(_ext is None or not _ext.blocked_available(),
                                reason="blocked convolution not compiled in")


@contextlib.contextmanager
def recorded(net):
    """The set of conv layers whose test-time call ran in the blocked layout."""
    ran = set()
    originals = {}
    for layer in net.layers.values():
        if hasattr(layer, "_infer_blocked"):
            def spy(x, relu, scratch, layer=layer, inner=layer._infer_blocked):
                out = inner(x, relu, scratch)
                if out is not None:
                    ran.add(id(layer))
                return out
            originals[layer] = layer._infer_blocked
            layer._infer_blocked = spy
    try:
        yield ran
    finally:
        for layer, method in originals.items():
            layer._infer_blocked = method


def layer_by_layer(net, x, blocked_ids):
    """The NCHW pass, the convolutions in ``blocked_ids`` on the blocked plan."""
    x = net._input(x)
    for layer, relu in net._inference:
        plan = use_conv_plan("blocked") if id(layer) in blocked_ids else contextlib.nullcontext()
        with plan:
            x = layer.infer(x, relu=True) if relu else layer.infer(x)
    return x


def check_pass(net, x):
    """The pass against the oracle; returns the layers it ran blocked."""
    with recorded(net) as ran:
        got = net.predict(x)
    want = layer_by_layer(net, x, ran)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    return ran


def images(n, c=1, h=28, w=28, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def test_deep_convnet_runs_blocked_and_gives_the_layer_by_layer_bits():
    net = DeepConvNet(seed=0)
    ran = check_pass(net, images(37))
    convs = [id(layer) for layer in net.layers.values() if hasattr(layer, "_infer_blocked")]
    assert ran == set(convs)  # all six stay blocked: one conversion, before Affine1


def test_a_lone_convolution_stays_in_nchw():
    # SimpleConvNet's one conv: its blocked pooling and the conversion back cost
    # more than the blocked kernel gains, so the pass leaves it to the planner.
    net = SimpleConvNet(seed=0)
    assert check_pass(net, images(9)) == set()
    with blocked_pass.switched_off():
        plain = net.predict(images(9))
    assert np.array_equal(net.predict(images(9)), plain)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_bits_do_not_depend_on_threads(threads):
    net = DeepConvNet(seed=1)
    x = images(23, seed=1)
    with fastconv.use_num_threads(1):
        want = net.predict(x)
    with fastconv.use_num_threads(threads):
        assert np.array_equal(net.predict(x), want)


def test_non_finite_values_pass_as_layer_by_layer():
    net = DeepConvNet(seed=2)
    x = images(6, seed=2)
    x[0, 0, 3, 4] = np.nan
    x[1, 0, 10:12, 10:12] = np.inf
    x[2, 0, 20, 5] = -np.inf
    x[3] = np.nan
    check_pass(net, x)


def test_switched_off_and_other_backends_skip_it():
    net = DeepConvNet(seed=3)
    x = images(5, seed=3)
    with blocked_pass.switched_off(), recorded(net) as ran:
        net.predict(x)
    assert ran == set()
    with fastconv.use_backend("numpy"), recorded(net) as ran:
        net.predict(x)
    assert ran == set()
    net64 = DeepConvNet(seed=3, dtype=np.float64)
    with recorded(net64) as ran:
        net64.predict(x)
    assert ran == set()


# Nets of two or more convolutions with what may sit between them: ReLUs, max
# and average pooling (overlapping windows, padding), channel counts that are
# not a block, a strided conv (not blocked: the pass converts and re-enters),
# and layers that need NCHW (leaky ReLU, batch norm).
between = st.sampled_from([
    [], [{"type": "relu"}],
    [{"type": "relu"}, {"type": "pool"}],
    [{"type": "pool", "pool_h": 3, "pool_w": 3, "stride": 1, "pad": 1}],
    [{"type": "pool", "pool_h": 2, "pool_w": 1, "stride": 1, "mode": "avg"}, {"type": "relu"}],
    [{"type": "pool", "pool_h": 3, "pool_w": 3, "stride": 2, "pad": 1, "mode": "avg"}],
    [{"type": "leaky_relu"}],
    [{"type": "batchnorm"}, {"type": "relu"}],
])
conv = st.builds(lambda fn, k, pad, stride: {"type": "conv", "filter_num": fn,
                                             "filter_size": k, "pad": min(pad, k - 1),
                                             "stride": stride},
                 st.integers(1, 40), st.sampled_from([1, 2, 3, 5]), st.integers(0, 2),
                 st.sampled_from([1, 1, 1, 2]))


@settings(max_examples=40, deadline=None)
@given(c=st.sampled_from([1, 3, 5, 17]), size=st.integers(9, 20),
       convs=st.lists(conv, min_size=2, max_size=4),
       gaps=st.lists(between, min_size=4, max_size=4), n=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_property_any_chain_gives_the_layer_by_layer_bits(c, size, convs, gaps, n, seed):
    layers = []
    for spec, gap in zip(convs, gaps):
        layers += [spec] + gap
    layers += [{"type": "affine", "output_size": 7}]
    try:
        net = Net((c, size, size), layers, seed=seed)
    except ValueError as exc:  # the maps shrank below 1x1
        assert "1x1" in str(exc) or "larger" in str(exc) or "fit" in str(exc), exc
        assume(False)
    ran = check_pass(net, images(n, c, size, size, seed))
    event(f"{len(ran)} convolutions ran blocked")


# The pooling kernel against the NCHW kernels, bit for bit.
def blocked_of(x, cb):
    n, c, h, w = x.shape
    data = np.empty(n * -(-c // cb) * cb * h * w, np.float32)
    _ext.blocked_from_nchw(np.ascontiguousarray(x), cb, 1, data)
    return B.BlockedMaps(data, x.shape, cb)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 35), h=st.integers(1, 13), w=st.integers(1, 13),
       k=st.integers(1, 4), stride=st.integers(1, 3), pad=st.integers(0, 2),
       mode=st.sampled_from(["max", "avg"]), relu=st.booleans(),
       cb=st.sampled_from([8, 16]), ties=st.booleans(), seed=st.integers(0, 2**16),
       threads=st.sampled_from([1, 2, 3]))
def test_property_blocked_pooling_has_the_nchw_bits(n, c, h, w, k, stride, pad, mode, relu, cb,
                                                    ties, seed, threads):
    pad = min(pad, k // 2)
    assume(h + 2 * pad >= k and w + 2 * pad >= k)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if ties:  # few distinct values: equal maxima everywhere, and exact zeros
        x = np.round(x).astype(np.float32)
    special = rng.random(x.shape)
    x[special < 0.05] = np.nan
    x[(special >= 0.05) & (special < 0.08)] = np.inf
    x[(special >= 0.08) & (special < 0.11)] = -np.inf
    x[(special >= 0.11) & (special < 0.14)] = -0.0
    win = P.pool_window(k, stride, pad)
    with fastconv.use_backend("c"):
        want = (P.max_pool2d_core(x, win, return_indices=False)[0] if mode == "max"
                else P.avg_pool2d_core(x, win))
    if relu:
        want = np.maximum(want, 0)
    with fastconv.use_num_threads(threads):
        got = B.pool(blocked_of(x, cb), win, mode, B.Scratch(), relu=relu)
    out = got.to_nchw()
    assert out.shape == want.shape
    # The same bits, the sign of zero and NaN included.
    assert out.view(np.uint32).tolist() == want.view(np.uint32).tolist() or (
        np.array_equal(np.isnan(out), np.isnan(want))
        and np.array_equal(out[~np.isnan(out)].view(np.uint32),
                           want[~np.isnan(want)].view(np.uint32)))
    # Lanes past C stay zero (the next convolution reads them).
    lanes = got.data.reshape(n, -(-c // cb), *out.shape[2:], cb)
    assert not lanes[:, -1, ..., c - (-(-c // cb) - 1) * cb:].any()


@pytest.mark.parametrize("cb", [8, 16])
def test_blocked_pooling_keeps_the_first_of_equal_maxima(cb):
    # +0 and -0 are equal maxima with different bits: the first in row-major
    # window order must win, as in the NCHW kernels (a fixed case: the
    # property test above meets it only now and then).
    first = np.array([[0.0, -0.0], [-0.0, -1.0]], np.float32)
    windows = [first, -first, np.array([[-1.0, -0.0], [0.0, -0.0]], np.float32),
               np.array([[np.nan, 1.0], [-np.nan, 2.0]], np.float32)]
    x = np.tile(np.concatenate(windows, axis=1), (2, 3, 1, 1)).astype(np.float32)
    win = P.pool_window(2, 2, 0)
    with fastconv.use_backend("c"):
        want = P.max_pool2d_core(x, win, return_indices=False)[0]
    for relu in (False, True):
        got = B.pool(blocked_of(x, cb), win, "max", B.Scratch(), relu=relu).to_nchw()
        expect = np.maximum(want, 0) if relu else want
        assert got.view(np.uint32).tolist() == expect.view(np.uint32).tolist()
