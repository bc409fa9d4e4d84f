"""Inputs in every memory layout give the results of a plain C-contiguous copy."""
import numpy as np
import pytest

import fastconv


def variants(x):
    """The same values as x in other layouts."""
    readonly = x.copy()
    readonly.flags.writeable = False
    bigger = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    bigger[..., ::2] = x
    return {
        "fortran": np.asfortranarray(x),
        "readonly": readonly,
        "strided": bigger[..., ::2],
        "transposed": np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2),
        "byteswapped": x.astype(x.dtype.newbyteorder("S")),
        "negative_strides": np.ascontiguousarray(x[..., ::-1])[..., ::-1],
    }


OPS = {
    "im2col": lambda x: fastconv.im2col(x, 3, 2, stride=(1, 2), pad=1),
    "unfold": lambda x: fastconv.unfold(x, (2, 3), dilation=(1, 2), padding=1),
    "max_pool2d": lambda x: fastconv.max_pool2d(x, 3, 2, 1, return_indices=True),
    "avg_pool2d": lambda x: fastconv.avg_pool2d(x, 2, 1, 1),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(OPS))
def test_layouts_give_identical_results(backend, dtype, op):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8)).astype(dtype)
    want = OPS[op](x)
    for name, v in variants(x).items():
        np.testing.assert_array_equal(v, x)
        got = OPS[op](v)
        if isinstance(want, tuple):
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_ops_accept_any_layout(backend, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 8, 6)).astype(dtype)
    out, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    dout = rng.standard_normal(out.shape).astype(dtype)
    want = fastconv.max_pool2d_backward(dout, idx, x.shape)
    want_avg = fastconv.avg_pool2d_backward(dout, x.shape, 2)
    col = rng.standard_normal((2 * 7 * 5, 3 * 4)).astype(dtype)
    want_col = fastconv.col2im(col, x.shape, 2, 2)
    fold_in = rng.standard_normal((2, 12, 35)).astype(dtype)
    want_fold = fastconv.fold(fold_in, (8, 6), 2)
    for name, d in variants(dout).items():
        i = idx.astype(idx.dtype.newbyteorder("S")) if name == "byteswapped" else idx
        np.testing.assert_array_equal(fastconv.max_pool2d_backward(d, i, x.shape), want, name)
        np.testing.assert_array_equal(fastconv.avg_pool2d_backward(d, x.shape, 2), want_avg, name)
    for name, c in variants(col).items():
        np.testing.assert_array_equal(fastconv.col2im(c, x.shape, 2, 2), want_col, name)
    for name, f in variants(fold_in).items():
        np.testing.assert_array_equal(fastconv.fold(f, (8, 6), 2), want_fold, name)


def test_input_is_never_modified(backend):
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    x.flags.writeable = False
    before = x.copy()
    fastconv.im2col(x, 3, 3, pad=1)
    fastconv.max_pool2d(x, 2, 1, 1)
    np.testing.assert_array_equal(x, before)


def test_python_lists_are_accepted(backend):
    x = [[[[1, 2], [3, 4]]]]
    np.testing.assert_array_equal(fastconv.im2col(x, 2, 2), [[1.0, 2.0, 3.0, 4.0]])
