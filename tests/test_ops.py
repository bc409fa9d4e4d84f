"""Every op against brute-force loops, and the two backends against each other."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
import bruteforce as bf

DTYPES = [np.float32, np.float64]
# (kernel, stride, pad) cases chosen to hit: overlap (stride < kernel), gaps
# (stride > kernel), padding on one axis only, and non-square everything.
WINDOWS = [
    ((3, 3), (1, 1), (0, 0)),
    ((3, 3), (1, 1), (1, 1)),
    ((2, 3), (2, 1), (1, 0)),
    ((1, 1), (3, 2), (0, 0)),
    ((4, 2), (1, 3), (2, 1)),
]


def on_magnitudes(fn, *args, **kwargs):
    """``fn`` on the absolute values of its float array arguments, in float64 on the
    NumPy backend: the scale of the two backends' rounding bounds."""
    args = [np.abs(a.astype(np.float64)) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
            else a for a in args]
    with fastconv.use_backend("numpy"):
        return fn(*args, **kwargs)


def agree(a, b, terms, fn, *args, **kwargs):
    """The two backends' results of a sum op: each within terms * eps * (the op on
    magnitudes), in whatever order it adds (bruteforce.assert_sums_agree)."""
    bf.assert_sums_agree(a, b, on_magnitudes(fn, *args, **kwargs), terms, what=fn.__name__)


def assert_adjoint(x, cols, y, back, terms, fn, *args, **kwargs):
    """<cols, y> = <x, back> with cols the (exact) patches of x and back = fn(y, ...)
    a sum of at most ``terms`` values: the float64 dot products err by at most
    size * eps64 * their magnitudes, and back by terms * eps * fn(|y|) elementwise."""
    x64, y64, c64, b64 = (a.astype(np.float64).ravel() for a in (x, y, cols, back))
    lhs, rhs = np.dot(c64, y64), np.dot(x64, b64)
    eps64 = np.finfo(np.float64).eps
    allowed = (eps64 * (c64.size * np.dot(np.abs(c64), np.abs(y64))
                        + x64.size * np.dot(np.abs(x64), np.abs(b64)))
               + terms * np.finfo(back.dtype).eps
               * np.dot(np.abs(x64), on_magnitudes(fn, y, *args, **kwargs).ravel()) + 1e-300)
    assert abs(lhs - rhs) <= allowed, (lhs, rhs, allowed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,pad", WINDOWS)
def test_im2col_col2im_match_loops(backend, dtype, kernel, stride, pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    col = fastconv.im2col(x, *kernel, stride=stride, pad=pad)
    assert col.dtype == dtype
    np.testing.assert_array_equal(col, bf.im2col(x, *kernel, stride, pad))
    y = rng.standard_normal(col.shape).astype(dtype)
    back = fastconv.col2im(y, x.shape, *kernel, stride=stride, pad=pad)
    assert back.dtype == dtype and back.shape == x.shape
    bf.assert_sum_close(back, bf.col2im, (y, x.shape, *kernel, stride, pad),
                        kernel[0] * kernel[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,pad", WINDOWS)
@pytest.mark.parametrize("dilation", [(1, 1), (2, 1)])
def test_unfold_fold_match_loops(backend, dtype, kernel, stride, pad, dilation):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 8, 7)).astype(dtype)
    cols = fastconv.unfold(x, kernel, dilation=dilation, padding=pad, stride=stride)
    np.testing.assert_array_equal(cols, bf.unfold(x, kernel, dilation, pad, stride))
    y = rng.standard_normal(cols.shape).astype(dtype)
    back = fastconv.fold(y, (8, 7), kernel, dilation=dilation, padding=pad, stride=stride)
    bf.assert_sum_close(back, bf.fold, (y, (8, 7), kernel, dilation, pad, stride),
                        kernel[0] * kernel[1])
    # The batch-inner layout: (C*kh*kw, N*L), image n's blocks in columns [n*L, (n+1)*L).
    n, ckk, length = cols.shape
    inner = fastconv.unfold(x, kernel, dilation=dilation, padding=pad, stride=stride,
                            batch_inner=True)
    assert inner.shape == (ckk, n * length)
    for i in range(n):
        np.testing.assert_array_equal(inner[:, i * length:(i + 1) * length], cols[i])
    y_inner = np.concatenate(list(y), axis=1)
    back = fastconv.fold(y_inner, (8, 7), kernel, dilation=dilation, padding=pad,
                         stride=stride, batch_inner=True)
    bf.assert_sum_close(back, bf.fold, (y, (8, 7), kernel, dilation, pad, stride),
                        kernel[0] * kernel[1])


def test_unfold_fold_unbatched(backend):
    x = np.arange(2 * 5 * 5, dtype=np.float64).reshape(2, 5, 5)
    cols = fastconv.unfold(x, 3, padding=1)
    np.testing.assert_array_equal(cols, fastconv.unfold(x[None], 3, padding=1)[0])
    np.testing.assert_array_equal(fastconv.fold(cols, 5, 3, padding=1),
                                  fastconv.fold(cols[None], 5, 3, padding=1)[0])


POOLS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 1), (1, 0)),
         ((2, 2), (1, 1), (1, 1)), ((1, 3), (2, 3), (0, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,pad", POOLS)
def test_max_pool_matches_loops(backend, dtype, kernel, stride, pad):
    rng = np.random.default_rng(3)
    # Few distinct values, so ties are common and the tie rule is exercised.
    x = rng.integers(-3, 3, size=(2, 3, 7, 8)).astype(dtype)
    out, idx = fastconv.max_pool2d(x, kernel, stride, pad, return_indices=True)
    want_out, want_idx = bf.max_pool(x, kernel, stride, pad)
    assert out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(fastconv.max_pool2d(x, kernel, stride, pad), want_out)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = fastconv.max_pool2d_backward(dout, idx, x.shape)
    assert dx.dtype == dtype
    bf.assert_sum_close(dx, bf.max_pool_backward, (dout, idx, x.shape), kernel[0] * kernel[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,pad", POOLS)
def test_avg_pool_matches_loops(backend, dtype, kernel, stride, pad):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 8)).astype(dtype)
    out = fastconv.avg_pool2d(x, kernel, stride, pad)
    assert out.dtype == dtype
    bf.assert_sum_close(out, bf.avg_pool, (x, kernel, stride, pad), kernel[0] * kernel[1] + 1)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = fastconv.avg_pool2d_backward(dout, x.shape, kernel, stride, pad)
    assert dx.dtype == dtype
    bf.assert_sum_close(dx, bf.avg_pool_backward, (dout, x.shape, kernel, stride, pad),
                        kernel[0] * kernel[1] + 1)


def test_stride_defaults_to_kernel(backend):
    x = np.random.default_rng(5).standard_normal((1, 1, 6, 6))
    np.testing.assert_array_equal(fastconv.max_pool2d(x, 3), fastconv.max_pool2d(x, 3, 3))
    np.testing.assert_array_equal(fastconv.avg_pool2d(x, 2), fastconv.avg_pool2d(x, 2, 2))


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_, np.float16])
def test_other_real_dtypes_become_float64(backend, dtype):
    x = (np.arange(2 * 16).reshape(1, 2, 4, 4) % 3).astype(dtype)
    col = fastconv.im2col(x, 2, 2)
    assert col.dtype == np.float64
    np.testing.assert_array_equal(col, bf.im2col(x.astype(np.float64), 2, 2, 1, 0))
    assert fastconv.max_pool2d(x, 2).dtype == np.float64


def test_empty_batch(any_backend):
    x = np.zeros((0, 3, 6, 6), np.float32)
    assert fastconv.im2col(x, 3, 3).shape == (0, 27)
    assert fastconv.col2im(np.zeros((0, 27), np.float32), x.shape, 3, 3).shape == x.shape
    assert fastconv.unfold(x, 3).shape == (0, 27, 16)
    out, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    assert out.shape == idx.shape == (0, 3, 3, 3)
    assert fastconv.max_pool2d_backward(out, idx, x.shape).shape == x.shape
    assert fastconv.avg_pool2d(x, 2).shape == (0, 3, 3, 3)


def test_im2col_equals_the_books_formulation():
    """The book builds col as (N, C, FH, FW, OH, OW) by strided slicing, then
    transposes; check that construction (written out here) against ours."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 9, 7))
    fh, fw, s, p = 3, 2, 2, 1
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p - fh) // s + 1, (w + 2 * p - fw) // s + 1
    img = np.pad(x, [(0, 0), (0, 0), (p, p), (p, p)])
    col = np.zeros((n, c, fh, fw, oh, ow))
    for i in range(fh):
        for j in range(fw):
            col[:, :, i, j] = img[:, :, i:i + s * oh:s, j:j + s * ow:s]
    book = col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)
    for name in fastconv.available_backends():
        with fastconv.use_backend(name):
            np.testing.assert_array_equal(fastconv.im2col(x, fh, fw, s, p), book)


# --- properties over random geometry: C against NumPy --------------------------

geometry = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 3),
    "h": st.integers(1, 10), "w": st.integers(1, 10),
    "kernel": st.tuples(st.integers(1, 4), st.integers(1, 4)),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "pad": st.tuples(st.integers(0, 2), st.integers(0, 2)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "dtype": st.sampled_from(DTYPES),
    "seed": st.integers(0, 2**32 - 1),
})

needs_c = pytest.mark.skipif("c" not in fastconv.available_backends(),
                             reason="compiled extension not built")


def _fits(g, dilation=(1, 1)):
    return all(d * (k - 1) + 1 <= s + 2 * p for k, s, p, d in
               zip(g["kernel"], (g["h"], g["w"]), g["pad"], dilation))


def _both(fn, *args, **kwargs):
    with fastconv.use_backend("c"):
        a = fn(*args, **kwargs)
    with fastconv.use_backend("numpy"):
        b = fn(*args, **kwargs)
    return a, b


@needs_c
@settings(max_examples=150, deadline=None)
@given(geometry)
def test_property_backends_agree_on_window_ops(g):
    assume(_fits(g))
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["n"], g["c"], g["h"], g["w"])).astype(g["dtype"])
    a, b = _both(fastconv.im2col, x, *g["kernel"], stride=g["stride"], pad=g["pad"])
    np.testing.assert_array_equal(a, b)
    y = rng.standard_normal(a.shape).astype(g["dtype"])
    args = (x.shape, *g["kernel"])
    kwargs = dict(stride=g["stride"], pad=g["pad"])
    a2, b2 = _both(fastconv.col2im, y, *args, **kwargs)
    terms = g["kernel"][0] * g["kernel"][1]  # windows covering one pixel
    agree(a2, b2, terms, fastconv.col2im, y, *args, **kwargs)
    # Adjoint identity: <im2col(x), y> == <x, col2im(y)>.
    assert_adjoint(x, a, y, a2, terms, fastconv.col2im, *args, **kwargs)


@needs_c
@settings(max_examples=150, deadline=None)
@given(geometry)
def test_property_backends_agree_on_unfold_fold(g):
    assume(_fits(g, g["dilation"]))
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["n"], g["c"], g["h"], g["w"])).astype(g["dtype"])
    kw = dict(dilation=g["dilation"], padding=g["pad"], stride=g["stride"])
    a, b = _both(fastconv.unfold, x, g["kernel"], **kw)
    np.testing.assert_array_equal(a, b)
    y = rng.standard_normal(a.shape).astype(g["dtype"])
    a2, b2 = _both(fastconv.fold, y, (g["h"], g["w"]), g["kernel"], **kw)
    terms = g["kernel"][0] * g["kernel"][1]  # windows covering one pixel
    agree(a2, b2, terms, fastconv.fold, y, (g["h"], g["w"]), g["kernel"], **kw)
    assert_adjoint(x, a, y, a2, terms, fastconv.fold, (g["h"], g["w"]), g["kernel"], **kw)
    # Batch-inner: the same blocks and sums, rows holding every image's blocks.
    a3, b3 = _both(fastconv.unfold, x, g["kernel"], batch_inner=True, **kw)
    np.testing.assert_array_equal(a3, b3)
    np.testing.assert_array_equal(a3, np.concatenate(list(a), axis=1))
    y3 = np.concatenate(list(y), axis=1)
    a4, b4 = _both(fastconv.fold, y3, (g["h"], g["w"]), g["kernel"], batch_inner=True, **kw)
    agree(a4, b4, terms, fastconv.fold, y3, (g["h"], g["w"]), g["kernel"], batch_inner=True,
          **kw)
    agree(a4, a2, terms, fastconv.fold, y, (g["h"], g["w"]), g["kernel"], **kw)


@needs_c
@settings(max_examples=150, deadline=None)
@given(geometry, st.sampled_from(["normal", "ties", "specials"]))
def test_property_backends_agree_on_pooling(g, values):
    pad = tuple(min(p, k // 2) for p, k in zip(g["pad"], g["kernel"]))
    g = dict(g, pad=pad)
    assume(_fits(g))
    rng = np.random.default_rng(g["seed"])
    shape = (g["n"], g["c"], g["h"], g["w"])
    if values == "normal":
        x = rng.standard_normal(shape)
    elif values == "ties":
        x = rng.integers(-2, 2, size=shape).astype(float)
    else:
        x = rng.choice([np.nan, -np.inf, np.inf, 0.0, -0.0, 1.0], size=shape)
    x = x.astype(g["dtype"])
    k, s = g["kernel"], g["stride"]
    (ao, ai), (bo, bi) = _both(fastconv.max_pool2d, x, k, s, pad, return_indices=True)
    np.testing.assert_array_equal(ao, bo)
    np.testing.assert_array_equal(ai, bi)
    dout = rng.standard_normal(ao.shape).astype(g["dtype"])
    a, b = _both(fastconv.max_pool2d_backward, dout, ai, x.shape)
    # A pixel is the maximum of at most kh*kw windows; averages divide once more.
    terms = k[0] * k[1]
    agree(a, b, terms, fastconv.max_pool2d_backward, dout, ai, x.shape)
    if values == "normal":
        a, b = _both(fastconv.avg_pool2d, x, k, s, pad)
        agree(a, b, terms + 1, fastconv.avg_pool2d, x, k, s, pad)
        a, b = _both(fastconv.avg_pool2d_backward, dout, x.shape, k, s, pad)
        agree(a, b, terms + 1, fastconv.avg_pool2d_backward, dout, x.shape, k, s, pad)
