"""Invalid arguments: each raises the right exception with a message that names
the argument and the value, before any kernel runs."""
import numpy as np
import pytest

import fastconv

x4 = np.zeros((2, 3, 6, 6), np.float32)
col_ok = np.zeros((2 * 4 * 4, 3 * 9), np.float32)
pooled, argmax = fastconv.max_pool2d(x4, 2, return_indices=True)
huge = 2**40

CASES = [
    # (id, call, exception, message regex)
    ("im2col zero filter", lambda: fastconv.im2col(x4, 0, 3), ValueError,
     r"filter_h must be a positive integer, got 0"),
    ("im2col negative filter", lambda: fastconv.im2col(x4, 3, -2), ValueError,
     r"filter_w must be a positive integer, got -2"),
    ("im2col zero stride", lambda: fastconv.im2col(x4, 3, 3, stride=0), ValueError,
     r"stride must be a positive integer, got 0"),
    ("im2col negative stride pair", lambda: fastconv.im2col(x4, 3, 3, stride=(1, -1)),
     ValueError, r"stride must be a positive integer, got \(1, -1\)"),
    ("im2col negative pad", lambda: fastconv.im2col(x4, 3, 3, pad=-1), ValueError,
     r"pad must be a non-negative integer, got -1"),
    ("im2col filter larger than padded input", lambda: fastconv.im2col(x4[:, :, :3, :3], 5, 5),
     ValueError, r"filter 5x5 is larger than the padded input 3x3"),
    ("im2col wrong ndim", lambda: fastconv.im2col(np.zeros((3, 6, 6)), 3, 3), ValueError,
     r"input_data must be a 4-D \(N, C, H, W\) array, got shape \(3, 6, 6\)"),
    ("im2col complex dtype", lambda: fastconv.im2col(x4.astype(complex), 3, 3), TypeError,
     r"input_data must be a real numeric array, got dtype complex128"),
    ("im2col string dtype", lambda: fastconv.im2col(np.full((1, 1, 3, 3), "a"), 2, 2),
     TypeError, r"input_data must be a real numeric array, got dtype <U1"),
    ("im2col object dtype", lambda: fastconv.im2col(np.empty((1, 1, 3, 3), object), 2, 2),
     TypeError, r"input_data must be a real numeric array, got dtype object"),
    ("im2col float stride", lambda: fastconv.im2col(x4, 3, 3, stride=1.5), TypeError,
     r"stride must be an int or a pair of ints, got 1.5"),
    ("im2col bool pad", lambda: fastconv.im2col(x4, 3, 3, pad=True), TypeError,
     r"pad must be an int or a pair of ints, got True"),
    ("im2col triple stride", lambda: fastconv.im2col(x4, 3, 3, stride=(1, 1, 1)), ValueError,
     r"stride must be an int or a pair of ints, got \(1, 1, 1\)"),
    ("col2im shape mismatch", lambda: fastconv.col2im(col_ok[:-1], x4.shape, 3, 3), ValueError,
     r"col has shape \(31, 27\), but input_shape \(2, 3, 6, 6\) .* needs \(32, 27\)"),
    ("col2im wrong channels", lambda: fastconv.col2im(col_ok, (2, 4, 6, 6), 3, 3), ValueError,
     r"col has shape \(32, 27\).*needs \(32, 36\)"),
    ("col2im 3-entry input_shape", lambda: fastconv.col2im(col_ok, (3, 6, 6), 3, 3), ValueError,
     r"input_shape must have 4 entries \(N, C, H, W\), got \(3, 6, 6\)"),
    ("col2im non-positive dims", lambda: fastconv.col2im(col_ok, (2, 0, 6, 6), 3, 3), ValueError,
     r"input_shape must have N >= 0 and C, H, W >= 1, got \(2, 0, 6, 6\)"),
    ("col2im 1-D col", lambda: fastconv.col2im(col_ok.ravel(), x4.shape, 3, 3), ValueError,
     r"col must be a 2-D"),
    ("col2im absurd input_shape", lambda: fastconv.col2im(col_ok, (huge, huge, 6, 6), 3, 3),
     ValueError, r"input_shape of shape .* would need \d+ bytes, more than this platform"),
    ("unfold zero kernel", lambda: fastconv.unfold(x4, 0), ValueError,
     r"kernel_size must be a positive integer, got 0"),
    ("stride beyond the int32 cap", lambda: fastconv.im2col(x4, 3, 3, stride=2**31),
     ValueError, r"stride must be at most 2147483647, got 2147483648"),
    ("unfold zero dilation", lambda: fastconv.unfold(x4, 3, dilation=0), ValueError,
     r"dilation must be a positive integer, got 0"),
    ("unfold dilated kernel too large", lambda: fastconv.unfold(x4, 3, dilation=3), ValueError,
     r"kernel 7x7 is larger than the padded input 6x6"),
    ("unfold 5-D", lambda: fastconv.unfold(x4[None], 3), ValueError,
     r"input must be a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) array"),
    ("fold L mismatch", lambda: fastconv.fold(np.zeros((1, 9, 10)), 6, 3), ValueError,
     r"input has L=10 blocks, but output_size \(6, 6\) .* gives 4x4=16"),
    ("fold channels not a multiple", lambda: fastconv.fold(np.zeros((1, 10, 16)), 6, 3),
     ValueError, r"input's dimension 1 \(10\) must be a positive multiple of kernel_size 3x3"),
    ("fold batch-inner columns not whole images",
     lambda: fastconv.fold(np.zeros((9, 40)), 6, 3, batch_inner=True), ValueError,
     r"input has 40 columns, not a multiple of the 4x4=16 blocks per image"),
    ("fold batch-inner 3-D", lambda: fastconv.fold(np.zeros((1, 9, 16)), 6, 3, batch_inner=True),
     ValueError, r"input must be a 2-D \(C\*kh\*kw, N\*L\) array"),
    ("fold batch-inner rows not a multiple",
     lambda: fastconv.fold(np.zeros((10, 16)), 6, 3, batch_inner=True), ValueError,
     r"input's dimension 0 \(10\) must be a positive multiple of kernel_size 3x3"),
    ("unfold batch-inner out of the wrong shape",
     lambda: fastconv.unfold(x4, 3, batch_inner=True, out=np.zeros((1, 2, 3), x4.dtype)),
     ValueError,
     r"out must have shape"),
    ("fold zero output_size", lambda: fastconv.fold(np.zeros((1, 9, 16)), 0, 3), ValueError,
     r"output_size must be a positive integer, got 0"),
    ("fold absurd output_size", lambda: fastconv.fold(np.zeros((1, 1, 1)), huge, 1),
     ValueError, r"output_size must be at most 2147483647, got 1099511627776"),
    ("max_pool zero window", lambda: fastconv.max_pool2d(x4, 0), ValueError,
     r"kernel_size must be a positive integer, got 0"),
    ("max_pool negative stride", lambda: fastconv.max_pool2d(x4, 2, -1), ValueError,
     r"stride must be a positive integer, got -1"),
    ("max_pool pad over half window", lambda: fastconv.max_pool2d(x4, 2, 2, 2), ValueError,
     r"padding \(2, 2\) must be at most half of kernel_size \(2, 2\)"),
    ("max_pool window larger than input", lambda: fastconv.max_pool2d(x4, 7), ValueError,
     r"pool window 7x7 is larger than the padded input 6x6"),
    ("max_pool 2-D input", lambda: fastconv.max_pool2d(x4[0, 0], 2), ValueError,
     r"x must be a 4-D \(N, C, H, W\) array, got shape \(6, 6\)"),
    ("max_pool_backward int32 indices",
     lambda: fastconv.max_pool2d_backward(pooled, argmax.astype(np.int32), x4.shape),
     TypeError, r"indices must have dtype int64, got int32"),
    ("max_pool_backward float indices",
     lambda: fastconv.max_pool2d_backward(pooled, argmax.astype(float), x4.shape),
     TypeError, r"indices must have dtype int64, got float64"),
    ("max_pool_backward indices shape",
     lambda: fastconv.max_pool2d_backward(pooled, argmax[:, :, :2], x4.shape),
     ValueError, r"indices must have the shape of dout \(2, 3, 3, 3\), got \(2, 3, 2, 3\)"),
    ("max_pool_backward dout batch mismatch",
     lambda: fastconv.max_pool2d_backward(pooled, argmax, (3, 3, 6, 6)),
     ValueError, r"dout has shape \(2, 3, 3, 3\), but input_shape \(3, 3, 6, 6\) needs N=3, C=3"),
    ("max_pool_backward absurd input_shape",
     lambda: fastconv.max_pool2d_backward(pooled, argmax, (2, 3, huge, huge)),
     ValueError, r"would need \d+ bytes"),
    ("avg_pool pad over half window", lambda: fastconv.avg_pool2d(x4, 3, 1, 2), ValueError,
     r"padding \(2, 2\) must be at most half of kernel_size \(3, 3\)"),
    ("avg_pool_backward dout shape",
     lambda: fastconv.avg_pool2d_backward(pooled[:, :, :2], x4.shape, 2), ValueError,
     r"dout has shape \(2, 3, 2, 3\), but input_shape \(2, 3, 6, 6\) pooled with .* gives "
     r"\(2, 3, 3, 3\)"),
    ("set_backend unknown", lambda: fastconv.set_backend("cuda"), ValueError,
     r"backend must be one of \('c', 'numpy'\), got 'cuda'"),
]


@pytest.mark.parametrize("call,exc,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_argument(any_backend, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_there_are_enough_cases():
    assert len(CASES) >= 25


def test_errors_leave_backend_unchanged():
    before = fastconv.get_backend()
    with pytest.raises(ValueError):
        with fastconv.use_backend("nope"):
            pass
    assert fastconv.get_backend() == before
