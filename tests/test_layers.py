"""Layers: backward against central differences (float64, both backends), forward
against brute-force loops and PyTorch, dtype preservation."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import bruteforce as bf
import fastconv
from fastconv import functional as F
from fastconv.train.gradcheck import numerical_gradient, relative_error
from fastconv._testing import use_conv_plan
from fastconv.nn import (LRN, Affine, BatchNormalization, Convolution, Dropout, Pooling,
                         Relu, Sigmoid, SoftmaxWithLoss)

# Central differences in float64 with step h = 1e-4 err by h^2/6 |f^(3)| (1.7e-9 |f^(3)|)
# plus about eps64 |f| / h (2.2e-12 |f|); the points are drawn away from kinks (distinct,
# away_from_zero), where |f^(3)| and |f| stay within a few hundred times |f'|: 1e-6.
TOL = 1e-6
EPS64 = np.finfo(np.float64).eps


def on_magnitudes(fn, *args, **kwargs):
    """fn on |float arrays| in float64 (NumPy backend): the scale of a rounding bound."""
    args = [np.abs(np.asarray(a, dtype=np.float64)) if isinstance(a, np.ndarray) else a
            for a in args]
    with fastconv.use_backend("numpy"):
        return fn(*args, **kwargs)



def check_gradients(forward, backward, x, params=(), seed=0, h=1e-4):
    """Backprop of the random projection sum(forward(x) * g) against central differences.

    ``params`` is a list of (array, callable returning its analytic gradient).
    Returns the largest relative error, which the caller asserts on.
    """
    g = np.random.default_rng(seed).standard_normal(np.shape(forward(x)))
    forward(x)
    dx = backward(g.copy())
    analytic = [dx] + [grad() for _, grad in params]

    def f(_):
        return np.sum(forward(x) * g)

    numeric = [numerical_gradient(f, x, h)] + [numerical_gradient(f, p, h) for p, _ in params]
    errors = [relative_error(a, n) for a, n in zip(analytic, numeric)]
    assert all(a.shape == n.shape for a, n in zip(analytic, numeric))
    return max(errors)


def distinct(shape, rng, gap=0.01):
    """Values at least ``gap`` apart, so that a finite difference never flips a max."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * gap
            - gap * np.prod(shape) / 2).astype(np.float64)


def away_from_zero(shape, rng):
    """Signed values with |x| >= 0.1: no ReLU kink within reach of the step."""
    return rng.choice([-1.0, 1.0], size=shape) * (0.1 + np.abs(rng.standard_normal(shape)))


# --- gradients -------------------------------------------------------------------

@pytest.fixture(params=["per_image", "rows"])
def conv_layout(request):
    """Run a Convolution test on both patch-matrix layouts."""
    with use_conv_plan(request.param):
        yield request.param


@pytest.mark.parametrize("n,c,h,w,fn,fh,fw,stride,pad", [
    (2, 3, 7, 7, 4, 3, 3, 1, 0),
    (2, 2, 8, 7, 3, 3, 2, 2, 1),
    (1, 3, 6, 6, 2, 5, 5, 1, 2),
    (2, 1, 9, 9, 3, 3, 3, 3, 2),
    (1, 2, 7, 8, 2, 3, 3, (2, 1), (1, 0)),
])
def test_convolution_gradients(backend, conv_layout, n, c, h, w, fn, fh, fw, stride, pad):
    rng = np.random.default_rng(1)
    layer = Convolution(rng.standard_normal((fn, c, fh, fw)), rng.standard_normal(fn),
                        stride, pad)
    x = rng.standard_normal((n, c, h, w))
    err = check_gradients(layer.forward, layer.backward, x,
                          [(layer.W, lambda: layer.dW), (layer.b, lambda: layer.db)])
    assert err < TOL


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pool_h,pool_w,stride,pad", [
    (2, 2, 2, 0),
    (3, 3, 2, 0),   # overlapping, AlexNet's
    (3, 3, 1, 1),   # overlapping and padded
    (2, 3, 1, 1),
    (3, 2, (2, 1), (1, 0)),
])
def test_pooling_gradients(backend, mode, pool_h, pool_w, stride, pad):
    rng = np.random.default_rng(2)
    layer = Pooling(pool_h, pool_w, stride, pad, mode=mode)
    x = distinct((2, 3, 7, 6), rng)
    assert check_gradients(layer.forward, layer.backward, x) < TOL


def test_relu_gradients(any_backend):
    layer = Relu()
    x = away_from_zero((3, 2, 4, 5), np.random.default_rng(3))
    assert check_gradients(layer.forward, layer.backward, x) < TOL


def test_sigmoid_gradients(any_backend):
    layer = Sigmoid()
    x = 3 * np.random.default_rng(4).standard_normal((4, 7))
    assert check_gradients(layer.forward, layer.backward, x) < TOL


@pytest.mark.parametrize("x_shape", [(5, 12), (3, 2, 3, 2)])
def test_affine_gradients(any_backend, x_shape):
    rng = np.random.default_rng(5)
    layer = Affine(rng.standard_normal((12, 4)), rng.standard_normal(4))
    x = rng.standard_normal(x_shape)
    err = check_gradients(layer.forward, layer.backward, x,
                          [(layer.W, lambda: layer.dW), (layer.b, lambda: layer.db)])
    assert err < TOL


@pytest.mark.parametrize("labels", ["int", "onehot", "column"])
def test_softmax_with_loss_gradients(any_backend, labels):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 4))
    t = rng.integers(0, 4, 5)
    if labels == "onehot":
        t = np.eye(4)[t]
    elif labels == "column":
        t = t[:, None]  # the book's gradient check passes (N, 1) labels
    layer = SoftmaxWithLoss()
    analytic = (layer.forward(x, t), layer.backward())[1]
    numeric = numerical_gradient(lambda _: layer.forward(x, t), x)
    assert relative_error(analytic, numeric) < TOL


def test_dropout_gradients_with_fixed_mask(any_backend):
    rng = np.random.default_rng(7)
    mask = rng.random((4, 6)) > 0.3
    layer = Dropout(0.3, mask=mask)
    x = rng.standard_normal((4, 6))
    assert check_gradients(layer.forward, layer.backward, x) < TOL


@pytest.mark.parametrize("x_shape", [(6, 5), (4, 3, 3, 2)])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_gradients(any_backend, x_shape, train):
    rng = np.random.default_rng(8)
    c = x_shape[1]
    layer = BatchNormalization(1 + rng.random(c), rng.standard_normal(c),
                               running_mean=rng.standard_normal(c), running_var=1 + rng.random(c))
    x = 2 + 3 * rng.standard_normal(x_shape)

    def forward(x):
        return layer.forward(x, train_flg=train)

    err = check_gradients(forward, layer.backward, x,
                          [(layer.gamma, lambda: layer.dgamma), (layer.beta, lambda: layer.dbeta)])
    assert err < TOL


@pytest.mark.parametrize("size,alpha,beta,k", [
    (5, 1e-4, 0.75, 2.0),   # AlexNet's
    (5, 0.5, 0.75, 2.0),    # a strong cross-channel term
    (4, 0.3, 0.6, 1.0),     # an even window is lopsided
    (3, 1.0, 1.5, 0.5),
    (1, 0.2, 0.75, 1.0),
])
def test_lrn_gradients(any_backend, size, alpha, beta, k):
    layer = LRN(size, alpha, beta, k)
    x = np.random.default_rng(9).standard_normal((2, 6, 3, 2))
    assert check_gradients(layer.forward, layer.backward, x) < TOL


# --- forward values against independent oracles -------------------------------------

def conv_loops(x, W, b, stride, pad):
    n, c, h, w = x.shape
    fn, _, fh, fw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    out = np.empty((n, fn, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * stride:i * stride + fh, j * stride:j * stride + fw]
            out[:, :, i, j] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


conv_cases = st.tuples(
    st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7),
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
    st.integers(0, 2), st.integers(0, 2**32 - 1))


@settings(max_examples=40, deadline=None)
@given(conv_cases)
def test_convolution_forward_matches_loops(case):
    n, c, h, w, fn, f, stride, _, pad, seed = case
    assume(h + 2 * pad >= f and w + 2 * pad >= f)
    rng = np.random.default_rng(seed)
    W, b = rng.standard_normal((fn, c, f, f)), rng.standard_normal(fn)
    x = rng.standard_normal((n, c, h, w))
    for name in F.available_backends():
        for plan in ("per_image", "rows"):  # both patch-matrix layouts
            layer = Convolution(W, b, stride, pad)
            with F.use_backend(name), use_conv_plan(plan):
                out = layer.forward(x)
            # C*f*f products and the bias, in two orders.
            bf.assert_sums_agree(out, conv_loops(x, W, b, stride, pad),
                                 conv_loops(np.abs(x), np.abs(W), np.abs(b), stride, pad),
                                 c * f * f + 1)


@settings(max_examples=40, deadline=None)
@given(conv_cases)
def test_convolution_backward_is_the_adjoint(case):
    # With b = 0 the layer is bilinear: <conv(x, W), g> = <x, dx> = <W, dW>.
    n, c, h, w, fn, f, stride, _, pad, seed = case
    assume(h + 2 * pad >= f and w + 2 * pad >= f)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((fn, c, f, f))
    x = rng.standard_normal((n, c, h, w))
    for plan in ("per_image", "rows"):  # both patch-matrix layouts
        layer = Convolution(W, np.zeros(fn), stride, pad)
        with use_conv_plan(plan):
            out = layer.forward(x)
        g = np.random.default_rng(seed + 1).standard_normal(out.shape)
        dx = layer.backward(g)
        total = np.sum(out * g)
        # Each side: its array's rounding (terms * eps * the op on magnitudes, weighted
        # by the other factor) and the float64 sum of size products.
        positions = out.shape[0] * out.shape[2] * out.shape[3]
        s_out = conv_loops(np.abs(x), np.abs(W), np.zeros(fn), stride, pad)
        base = EPS64 * (c * f * f + out.size) * np.sum(s_out * np.abs(g))
        for a, da, scale, terms in (
                (x, dx, on_magnitudes(F.conv2d_input_grad, g, W, x.shape, stride, pad),
                 fn * f * f),
                (layer.W, layer.dW, on_magnitudes(F.conv2d_weight_grad, x, g, W.shape, stride,
                                                  pad), positions)):
            allowed = base + EPS64 * (terms + a.size) * np.sum(np.abs(a) * scale)
            assert abs(np.sum(a * da) - total) <= allowed
    bf.assert_sums_agree(layer.db, g.sum(axis=(0, 2, 3)), np.abs(g).sum(axis=(0, 2, 3)),
                         positions)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.floats(-50, 50), st.integers(0, 2**32 - 1))
def test_softmax_loss_is_shift_invariant_and_matches_log_softmax(n, k, shift, seed):
    rng = np.random.default_rng(seed)
    x = 5 * rng.standard_normal((n, k))
    t = rng.integers(0, k, n)
    loss = SoftmaxWithLoss().forward(x, t)
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    assert loss >= 0
    assert np.isclose(loss, -np.mean(np.log(p[np.arange(n), t])), rtol=1e-10)
    assert np.isclose(SoftmaxWithLoss().forward(x + shift, t), loss, rtol=1e-9, atol=1e-12)
    assert np.isclose(SoftmaxWithLoss().forward(x, np.eye(k)[t]), loss, rtol=1e-12)


def test_softmax_with_loss_survives_huge_scores():
    x = np.array([[1e4, 0.0, -1e4], [-1e30, 1e30, 0.0]], dtype=np.float32)
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, np.array([1, 1]))
    assert np.isfinite(loss) and np.isclose(loss, 1e4 / 2, rtol=1e-6)
    assert np.all(np.isfinite(layer.backward()))


def test_softmax_with_loss_rejects_bad_labels():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        SoftmaxWithLoss().forward(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        SoftmaxWithLoss().forward(x, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="integer"):
        SoftmaxWithLoss().forward(x, np.array([0.0, 1.0]))


def lrn_loops(x, size, alpha, beta, k):
    out = np.empty_like(x)
    c = x.shape[1]
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c - 1, ch + (size - 1) // 2)
        s = np.sum(x[:, lo:hi + 1] ** 2, axis=1)
        out[:, ch] = x[:, ch] / (k + alpha / size * s) ** beta
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 7), st.integers(1, 8), st.floats(1e-4, 2.0), st.floats(0.1, 2.0),
       st.floats(0.5, 3.0), st.integers(0, 2**32 - 1))
def test_lrn_forward_matches_loops(size, c, alpha, beta, k, seed):
    x = 2 * np.random.default_rng(seed).standard_normal((2, c, 3, 2))
    got, want = LRN(size, alpha, beta, k).forward(x), lrn_loops(x, size, alpha, beta, k)
    # Relative to the output, on each side: 2*size + 2 roundings in the denominator
    # (squares, sum, alpha/size, product, + k; all terms positive) scaled by beta, the
    # power (4 ulps) and the last product or division.
    relative = (beta * (2 * size + 2) + 1 + 4) * EPS64
    assert np.all(np.abs(got - want) <= 2 * relative * np.abs(want) + 1e-300)


def test_batchnorm_normalises_per_channel_and_tracks_running_stats():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((8, 3, 4, 5)) * np.array([1, 5, 0.1])[:, None, None] + 7
    layer = BatchNormalization(np.ones(3), np.zeros(3), momentum=0.5)
    out = layer.forward(x, train_flg=True)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    np.testing.assert_allclose(layer.running_mean, 0.5 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(layer.running_var, 0.5 + 0.5 * x.var(axis=(0, 2, 3)))
    test_out = layer.forward(x, train_flg=False)
    expected = (x - layer.running_mean[:, None, None]) / np.sqrt(
        layer.running_var[:, None, None] + 1e-6)
    np.testing.assert_allclose(test_out, expected)


def test_dropout_is_inverted():
    x = np.ones((200, 100))
    layer = Dropout(0.3, seed=0)
    out = layer.forward(x, train_flg=True)
    assert set(np.unique(out)) <= {0.0, 1 / 0.7}
    assert abs(out.mean() - 1) < 0.02          # unbiased in training...
    assert layer.forward(x, train_flg=False) is x  # ...and the identity at test time
    assert np.array_equal(layer.backward(x), x)
    frozen = Dropout(0.5, mask=np.array([True, False]))
    np.testing.assert_array_equal(frozen.forward(np.array([3.0, 4.0])), [6.0, 0.0])
    np.testing.assert_array_equal(frozen.backward(np.array([1.0, 1.0])), [2.0, 0.0])
    with pytest.raises(ValueError, match="dropout_ratio"):
        Dropout(1.0)


# --- dtypes ------------------------------------------------------------------------

def _layers(dtype, rng):
    def p(*shape):
        return rng.standard_normal(shape).astype(dtype)

    return [
        (Convolution(p(3, 2, 3, 3), p(3), 1, 1), (2, 2, 5, 5), {}),
        (Pooling(2, 2, 2, mode="max"), (2, 2, 4, 4), {}),
        (Pooling(3, 3, 2, 1, mode="avg"), (2, 2, 5, 5), {}),
        (Relu(), (2, 3), {}),
        (Sigmoid(), (2, 3), {}),
        (Affine(p(8, 3), p(3)), (2, 2, 2, 2), {}),
        (Dropout(0.5, seed=0), (2, 3), {"train_flg": True}),
        (BatchNormalization(p(2), p(2)), (3, 2, 2, 2), {"train_flg": True}),
        (LRN(), (2, 6, 2, 2), {}),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_keep_their_dtype(dtype):
    rng = np.random.default_rng(11)
    for layer, shape, kwargs in _layers(dtype, rng):
        x = rng.standard_normal(shape).astype(dtype)
        out = layer.forward(x, **kwargs)
        dx = layer.backward(np.ones_like(out))
        assert out.dtype == dtype and dx.dtype == dtype and dx.shape == shape, repr(layer)
        for name in ("dW", "db", "dgamma", "dbeta"):
            if hasattr(layer, name):
                assert getattr(layer, name).dtype == dtype, (repr(layer), name)
        for name in ("running_mean", "running_var"):
            if hasattr(layer, name):
                assert getattr(layer, name).dtype == dtype
    loss_layer = SoftmaxWithLoss()
    x = rng.standard_normal((3, 4)).astype(dtype)
    assert loss_layer.forward(x, np.eye(4)[[0, 1, 2]]).dtype == dtype  # float64 one-hot labels
    assert loss_layer.backward().dtype == dtype


def test_float32_layers_cast_other_inputs_to_their_parameters_dtype():
    rng = np.random.default_rng(12)
    conv = Convolution(rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
                       np.zeros(2, np.float32))
    out = conv.forward(rng.standard_normal((1, 1, 4, 4)))  # float64 in
    assert out.dtype == np.float32
    assert conv.backward(np.ones(out.shape)).dtype == np.float32
    assert conv.dW.dtype == np.float32
    affine = Affine(np.ones((4, 2), np.float32), np.zeros(2, np.float32))
    assert affine.forward(np.arange(8).reshape(2, 4)).dtype == np.float32  # ints in


def test_reprs_are_short_and_say_what_the_layer_is():
    W = np.zeros((4, 3, 5, 5), np.float32)
    assert repr(Convolution(W, np.zeros(4))) == \
        "Convolution(3->4, 5x5, stride=1, pad=0, dtype=float32)"
    assert repr(Pooling(3, 3, 2)) == "Pooling(3, 3, stride=2, pad=0, mode='max')"
    assert repr(Affine(np.zeros((10, 2)), np.zeros(2))) == "Affine(10->2, dtype=float64)"
    for layer in [Relu(), Sigmoid(), SoftmaxWithLoss(), Dropout(0.25), LRN(),
                  BatchNormalization(np.ones(3), np.zeros(3))]:
        text = repr(layer)
        assert text.startswith(type(layer).__name__ + "(") and len(text) < 80


# --- PyTorch as an oracle --------------------------------------------------------------

def _torch_grads(torch, fn, *arrays):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    g = torch.tensor(np.random.default_rng(13).standard_normal(tuple(out.shape)))
    (out * g).sum().backward()
    return out.detach().numpy(), g.numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (3, 2)])
def test_convolution_matches_torch(backend, conv_layout, stride, pad):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    x, W, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3)), \
        rng.standard_normal(4)
    out_t, g, (dx_t, dW_t, db_t) = _torch_grads(
        torch, lambda x, W, b: torch.nn.functional.conv2d(x, W, b, stride, pad), x, W, b)
    layer = Convolution(W, b, stride, pad)
    # torch sums in its own order: each side within terms * eps64 * (the op on magnitudes).
    positions = g.shape[0] * g.shape[2] * g.shape[3]
    bf.assert_sums_agree(layer.forward(x), out_t,
                         on_magnitudes(F.conv2d, x, W, b, stride, pad), 3 * 9 + 1)
    bf.assert_sums_agree(layer.backward(g), dx_t,
                         on_magnitudes(F.conv2d_input_grad, g, W, x.shape, stride, pad), 4 * 9)
    bf.assert_sums_agree(layer.dW, dW_t,
                         on_magnitudes(F.conv2d_weight_grad, x, g, W.shape, stride, pad),
                         positions)
    bf.assert_sums_agree(layer.db, db_t, np.abs(g).sum(axis=(0, 2, 3)), positions)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pool,stride,pad", [(2, 2, 0), (3, 2, 1), (3, 1, 0)])
def test_pooling_matches_torch(backend, mode, pool, stride, pad):
    torch = pytest.importorskip("torch")
    x = distinct((2, 3, 7, 8), np.random.default_rng(15))
    tf = torch.nn.functional
    if mode == "max":
        def fn(x):
            return tf.max_pool2d(x, pool, stride, pad)
    else:
        def fn(x):
            return tf.avg_pool2d(x, pool, stride, pad, count_include_pad=True)
    out_t, g, (dx_t,) = _torch_grads(torch, fn, x)
    layer = Pooling(pool, pool, stride, pad, mode=mode)
    out = layer.forward(x)
    terms = pool * pool + (mode == "avg")  # averages divide once more
    if mode == "max":  # a maximum rounds nothing
        np.testing.assert_array_equal(out, out_t)
    else:
        bf.assert_sums_agree(out, out_t, on_magnitudes(layer.forward, x), terms)
    back = on_magnitudes(layer.backward, g)  # the windows of the forward above
    bf.assert_sums_agree(layer.backward(g), dx_t, back, terms)


def test_affine_matches_torch(any_backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    x, W, b = rng.standard_normal((3, 2, 2, 3)), rng.standard_normal((12, 5)), \
        rng.standard_normal(5)
    out_t, g, (dx_t, dW_t, db_t) = _torch_grads(
        torch, lambda x, W, b: torch.nn.functional.linear(x.flatten(1), W.T, b), x, W, b)
    layer = Affine(W, b)
    flat, aw, ag = np.abs(x).reshape(3, 12), np.abs(W), np.abs(g)
    bf.assert_sums_agree(layer.forward(x), out_t, flat @ aw + np.abs(b), 13)
    bf.assert_sums_agree(layer.backward(g), dx_t, (ag @ aw.T).reshape(x.shape), 5)
    bf.assert_sums_agree(layer.dW, dW_t, flat.T @ ag, 3)
    bf.assert_sums_agree(layer.db, db_t, ag.sum(axis=0), 3)


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 2.0), (4, 0.5, 0.6, 1.0),
                                               (3, 2.0, 1.2, 0.7)])
def test_lrn_matches_torch(size, alpha, beta, k):
    torch = pytest.importorskip("torch")
    x = 3 * np.random.default_rng(17).standard_normal((2, 7, 3, 4))
    norm = torch.nn.LocalResponseNorm(size, alpha, beta, k)
    out_t, g, (dx_t,) = _torch_grads(torch, norm, x)
    layer = LRN(size, alpha, beta, k)
    # As against the loops: relative to the output on each side.
    relative = (beta * (2 * size + 2) + 1 + 4) * EPS64
    assert np.all(np.abs(layer.forward(x) - out_t) <= 2 * relative * np.abs(out_t) + 1e-300)
    np.testing.assert_allclose(layer.backward(g), dx_t, rtol=1e-10, atol=1e-14)


def test_batchnorm_matches_torch_in_training():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    x, gamma, beta = 1 + 2 * rng.standard_normal((4, 3, 2, 5)), rng.random(3), rng.random(3)

    def fn(x, gamma, beta):
        return torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True,
                                              eps=1e-6)

    out_t, g, (dx_t, dgamma_t, dbeta_t) = _torch_grads(torch, fn, x, gamma, beta)
    layer = BatchNormalization(gamma, beta)
    np.testing.assert_allclose(layer.forward(x, train_flg=True), out_t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), dx_t, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.dgamma, dgamma_t, rtol=1e-10)
    np.testing.assert_allclose(layer.dbeta, dbeta_t, rtol=1e-10)


def test_convolution_without_input_gradient(conv_layout):
    rng = np.random.default_rng(21)
    W, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 18, 17))
    full, first = Convolution(W, b, 1, 1), Convolution(W, b, 1, 1)
    first.needs_input_grad = False
    g = rng.standard_normal(full.forward(x).shape)
    assert full.backward(g).shape == x.shape
    first.forward(x)
    assert first.backward(g) is None
    np.testing.assert_array_equal(first.dW, full.dW)
    np.testing.assert_array_equal(first.db, full.db)
