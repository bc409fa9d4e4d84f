"""fastconv's public operations: validation, dtype handling and backend dispatch.

This is the only module that calls the compiled kernels (through
:mod:`fastconv._runtime`) or the NumPy backend (:mod:`fastconv.reference`);
layers and models call the functions here. It is also the one place that
plans which convolution algorithm runs (:func:`conv_plan`).

Layouts are NCHW. Windows follow PyTorch: kernel, stride, padding, dilation,
each an int or an ``(h, w)`` pair; :class:`fastconv._geometry.Window` holds
them and computes output sizes. float32 and float64 inputs keep their dtype;
other real dtypes become float64. Every op validates all of its arguments,
identically on every path, before choosing one.
"""
import contextlib
import contextvars

import numpy as np

from . import _runtime as R
from . import _validate as V
from . import reference as _ref
from ._geometry import Window, pair
from ._runtime import (available_backends, fork_limits_threads, get_backend, get_num_threads,
                       openmp_enabled, set_backend, set_num_threads, use_backend,
                       use_num_threads)

__all__ = [
    "im2col", "col2im", "unfold", "fold",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "conv2d", "conv2d_weight_grad", "conv2d_input_grad", "conv_plan", "use_conv_plan",
    "conv2d_forward", "conv2d_backward", "ConvContext", "adam_update", "matmul",
    "set_backend", "get_backend", "use_backend", "available_backends",
    "set_num_threads", "get_num_threads", "use_num_threads", "openmp_enabled",
    "fork_limits_threads",
]

_BOOK_NAMES = ("filter_h/filter_w", "stride", "pad", "dilation")
_TORCH_NAMES = ("kernel_size", "stride", "padding", "dilation")


# --- im2col / col2im (the book's layout) ---------------------------------------

def _book_window(filter_h, filter_w, stride, pad):
    for value, name in ((filter_h, "filter_h"), (filter_w, "filter_w")):
        if isinstance(value, (tuple, list, np.ndarray)):
            raise TypeError(f"{name} must be an int, got {value!r}")
        pair(value, name, 1)
    return Window.of((filter_h, filter_w), stride, pad, what="filter", names=_BOOK_NAMES)


def im2col(input_data, filter_h, filter_w, stride=1, pad=0, *, out=None):
    """Unroll every filter window of ``input_data`` into one row (the book's layout).

    Parameters
    ----------
    input_data : array (N, C, H, W), any real dtype (the book's name; ``x``)
    filter_h, filter_w : int
    stride, pad : int or (h, w)
    out : optional C-contiguous array of the result's shape and dtype to
        write into (saves a large allocation per call in a training loop);
        it must not overlap ``input_data``

    Returns
    -------
    col : array (N*OH*OW, C*filter_h*filter_w), float32 if the input is
        float32, else float64. Rows are ordered (n, oh, ow) and columns
        (c, fh, fw); padding contributes zeros. Equal, element for element,
        to the book's ``common.util.im2col``.
    """
    win = _book_window(filter_h, filter_w, stride, pad)
    x = V.float_array(input_data, "input_data", (4,), "4-D (N, C, H, W)")
    n, c, h, w = x.shape
    oh, ow = win.out_size(h, w)
    shape = (n * oh * ow, c * win.kernel[0] * win.kernel[1])
    V.check_output_fits(shape, x.itemsize, "col")
    if out is None and not R.use_c():
        return _ref.im2col(x, win)
    col = V.out_array(out, shape, x.dtype, inputs={"input_data": input_data, "x": x})
    if not R.use_c():
        col[...] = _ref.im2col(x, win)
    elif col.size:
        R.ext.im2col(x, *win.c_args(), R.threads_for(col.size), col)
    return col


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The adjoint of :func:`im2col`: sum each row back onto its window.

    Parameters
    ----------
    col : array (N*OH*OW, C*filter_h*filter_w)
    input_shape : (N, C, H, W), the shape given to im2col

    Returns
    -------
    x : array of ``input_shape``, the dtype of col (float32/float64).
        Overlapping windows add up; contributions to the padding are dropped.
    """
    win = _book_window(filter_h, filter_w, stride, pad)
    n, c, h, w = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, w), 8, "input_shape")
    col = V.float_array(col, "col", (2,), "2-D (N*OH*OW, C*FH*FW)")
    oh, ow = win.out_size(h, w)
    expected = (n * oh * ow, c * win.kernel[0] * win.kernel[1])
    if col.shape != expected:
        raise ValueError(
            f"col has shape {col.shape}, but input_shape {(n, c, h, w)} with a "
            f"{win.kernel[0]}x{win.kernel[1]} filter, stride {win.stride} and pad "
            f"{win.padding} needs {expected}")
    if not R.use_c():
        return _ref.col2im(col, (n, c, h, w), win)
    x = np.empty((n, c, h, w), dtype=col.dtype)
    if x.size:
        R.ext.col2im(col, *win.c_args(), R.threads_for(col.size), x)
    return x


# --- unfold / fold (PyTorch's layout) ------------------------------------------

def unfold(x, kernel_size, dilation=1, padding=0, stride=1, *, out=None, batch_inner=False):
    """Extract sliding blocks, as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    x : array (N, C, H, W), or (C, H, W) unbatched
    kernel_size, dilation, padding, stride : int or (h, w)
    out : optional C-contiguous array of the result's shape and dtype to write
        into; it must not overlap ``x``
    batch_inner : bool, keyword-only
        Return the blocks of all images side by side in each row: shape
        (C*kh*kw, N*L), column n*L + l holding block l of image n. One matrix
        product with (FN, C*kh*kw) filters then convolves the whole batch.
        It is ``unfold(x)`` transposed to (C*kh*kw, N, L), written directly.

    Returns
    -------
    array (N, C*kh*kw, L), or (C*kh*kw, L) unbatched, with L = OH*OW. Each
    column holds one block, ordered (c, kh, kw); columns are ordered (oh, ow).
    """
    win = Window.of(kernel_size, stride, padding, dilation, names=_TORCH_NAMES)
    original = x
    x = V.float_array(x, "input", (3, 4), "3-D (C, H, W) or 4-D (N, C, H, W)")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c, h, w = x.shape
    oh, ow = win.out_size(h, w)
    ckk, length = c * win.kernel[0] * win.kernel[1], oh * ow
    shape = (n, ckk, length)
    V.check_output_fits(shape, x.itemsize)
    if batch_inner:
        result_shape = (ckk, n * length)
    else:
        result_shape = (ckk, length) if unbatched else shape
    if out is None and not R.use_c():
        cols = _ref.unfold(x, win)
        if batch_inner:
            return np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(result_shape)
        return cols[0] if unbatched else cols
    result = V.out_array(out, result_shape, x.dtype, inputs={"x": original, "input": x})
    # The kernel sees (N, CKK, L) or, batch-inner, (CKK, N, L): same buffer.
    cols = result.reshape((ckk, n, length) if batch_inner else shape)
    if not R.use_c():
        ref = _ref.unfold(x, win)
        cols[...] = ref.transpose(1, 0, 2) if batch_inner else ref
    elif cols.size:
        R.ext.unfold(x, *win.c_args(), *win.dilation, batch_inner,
                     R.threads_for(cols.size), cols)
    return result


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1, *,
         batch_inner=False):
    """Sum sliding blocks back into an image, as ``torch.nn.functional.fold``.

    The adjoint of :func:`unfold`.

    Parameters
    ----------
    input : array (N, C*kh*kw, L), or (C*kh*kw, L) unbatched; with
        ``batch_inner=True``, (C*kh*kw, N*L) as ``unfold(..., batch_inner=True)``
        gives, and the result is always 4-D
    output_size : int or (H, W)

    Returns
    -------
    array (N, C, H, W), or (C, H, W) unbatched; overlapping blocks add up.
    """
    win = Window.of(kernel_size, stride, padding, dilation, names=_TORCH_NAMES)
    kernel, dilation, pad, stride = win.kernel, win.dilation, win.padding, win.stride
    h, w = pair(output_size, "output_size", 1)
    if batch_inner:
        cols = V.float_array(input, "input", (2,), "2-D (C*kh*kw, N*L)")
        unbatched = False
    else:
        cols = V.float_array(input, "input", (2, 3), "2-D (C*kh*kw, L) or 3-D (N, C*kh*kw, L)")
        unbatched = cols.ndim == 2
        if unbatched:
            cols = cols[None]
    ckk = cols.shape[1] if cols.ndim == 3 else cols.shape[0]
    kk = kernel[0] * kernel[1]
    if ckk % kk or ckk == 0:
        raise ValueError(
            f"input's dimension {1 if cols.ndim == 3 else 0} ({ckk}) must be a positive "
            f"multiple of kernel_size {kernel[0]}x{kernel[1]} = {kk}")
    oh, ow = win.out_size(h, w)
    if batch_inner:
        total = cols.shape[1]
        if oh * ow == 0 or total % (oh * ow):
            raise ValueError(
                f"input has {total} columns, not a multiple of the {oh}x{ow}={oh * ow} "
                f"blocks per image that output_size {(h, w)} with kernel_size {kernel}, "
                f"dilation {dilation}, padding {pad} and stride {stride} gives")
        n, length = total // (oh * ow), oh * ow
        cols = cols.reshape(ckk, n, length)
    else:
        n, _, length = cols.shape
    if length != oh * ow:
        raise ValueError(
            f"input has L={length} blocks, but output_size {(h, w)} with kernel_size "
            f"{kernel}, dilation {dilation}, padding {pad} and stride {stride} gives "
            f"{oh}x{ow}={oh * ow}")
    c = ckk // kk
    V.check_output_fits((n, c, h, w), cols.itemsize)
    if not R.use_c():
        per_image = cols.transpose(1, 0, 2) if batch_inner else cols
        x = _ref.fold(per_image, (h, w), win)
    else:
        x = np.empty((n, c, h, w), dtype=cols.dtype)
        if x.size:
            R.ext.fold(cols, *win.c_args(), *win.dilation, batch_inner,
                       R.threads_for(cols.size), x)
    return x[0] if unbatched else x


# --- pooling -------------------------------------------------------------------

def _pool_window(kernel_size, stride, padding):
    if stride is None:  # PyTorch's default: the window itself
        stride = kernel_size
    win = Window.of(kernel_size, stride, padding, what="pool window", names=_TORCH_NAMES)
    if 2 * win.padding[0] > win.kernel[0] or 2 * win.padding[1] > win.kernel[1]:
        raise ValueError(
            f"padding {win.padding} must be at most half of kernel_size {win.kernel}")
    return win


def _pool_input(x):
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    if x.shape[2] == 0 or x.shape[3] == 0:
        # A window over nothing but padding has no maximum and no index.
        raise ValueError(f"x must have H, W >= 1 to be pooled, got shape {x.shape}")
    return x


def max_pool2d(x, kernel_size, stride=None, padding=0, return_indices=False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size : int or (h, w)
    stride : int or (h, w), default kernel_size
    padding : int or (h, w), at most half the window; padded cells never win
    return_indices : bool

    Returns
    -------
    out : array (N, C, OH, OW), float32 or float64
    indices : int64 array (N, C, OH, OW), only if return_indices. The flat
        index ``h*W + w`` of each maximum in its unpadded input plane. Ties go
        to the first maximum in row-major window order; a NaN in a window makes
        the output NaN and the index that of the first NaN.
    """
    win = _pool_window(kernel_size, stride, padding)
    x = _pool_input(x)
    n, c, h, w = x.shape
    oh, ow = win.out_size(h, w)
    if x.size == 0:
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        idx = np.empty((n, c, oh, ow), dtype=np.int64)
    elif not R.use_c():
        out, idx = _ref.max_pool2d(x, win)
    else:
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        # Without indices the kernel writes none (inference: 8 bytes per value saved).
        idx = np.empty((n, c, oh, ow), dtype=np.int64) if return_indices else None
        R.ext.max_pool2d(x, *win.c_args(), R.threads_for(x.size), out, idx)
    return (out, idx) if return_indices else out


def max_pool2d_backward(dout, indices, input_shape):
    """Gradient of :func:`max_pool2d`: scatter ``dout`` to ``indices``.

    Parameters
    ----------
    dout : array (N, C, OH, OW)
    indices : int64 array (N, C, OH, OW), from ``max_pool2d(..., return_indices=True)``
    input_shape : (N, C, H, W) of the pooled input

    Returns
    -------
    dx : array of ``input_shape``, the dtype of dout. Where windows overlap
        the contributions add. Indices outside ``[0, H*W)`` raise ValueError.
    """
    n, c, h, w = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, w), 8, "input_shape")
    dout = V.float_array(dout, "dout", (4,), "4-D (N, C, OH, OW)")
    if dout.shape[:2] != (n, c):
        raise ValueError(
            f"dout has shape {dout.shape}, but input_shape {(n, c, h, w)} needs N={n}, C={c}")
    indices = V.index_array(indices, "indices", dout.shape)
    if dout.size == 0:
        return np.zeros((n, c, h, w), dtype=dout.dtype)
    if not R.use_c():
        if indices.size and (indices.min() < 0 or indices.max() >= h * w):
            _bad_indices(h, w, int(np.count_nonzero((indices < 0) | (indices >= h * w))))
        return _ref.max_pool2d_backward(dout, indices, (n, c, h, w))
    dx = np.empty((n, c, h, w), dtype=dout.dtype)
    bad = R.ext.max_pool2d_backward(dout, indices, R.threads_for(dx.size), dx)
    if bad:
        _bad_indices(h, w, bad)
    return dx


def _bad_indices(h, w, count):
    raise ValueError(
        f"indices must lie in [0, H*W) = [0, {h * w}) for an input plane of {h}x{w}; "
        f"{count} do not")


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    The divisor is always kh*kw: padded cells count as zeros
    (PyTorch's default ``count_include_pad=True``).

    Returns an array (N, C, OH, OW) of x's float dtype.
    """
    win = _pool_window(kernel_size, stride, padding)
    x = _pool_input(x)
    n, c, h, w = x.shape
    oh, ow = win.out_size(h, w)
    if x.size == 0:
        return np.empty((n, c, oh, ow), dtype=x.dtype)
    if not R.use_c():
        return _ref.avg_pool2d(x, win)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    R.ext.avg_pool2d(x, *win.c_args(), R.threads_for(x.size), out)
    return out


def avg_pool2d_backward(dout, input_shape, kernel_size, stride=None, padding=0):
    """Gradient of :func:`avg_pool2d` with the same window arguments.

    Parameters
    ----------
    dout : array (N, C, OH, OW)
    input_shape : (N, C, H, W)

    Returns
    -------
    dx : array of ``input_shape``, the dtype of dout.
    """
    win = _pool_window(kernel_size, stride, padding)
    n, c, h, w = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, w), 8, "input_shape")
    dout = V.float_array(dout, "dout", (4,), "4-D (N, C, OH, OW)")
    oh, ow = win.out_size(h, w)
    if dout.shape != (n, c, oh, ow):
        raise ValueError(
            f"dout has shape {dout.shape}, but input_shape {(n, c, h, w)} pooled with "
            f"kernel_size {win.kernel}, stride {win.stride}, padding {win.padding} gives "
            f"{(n, c, oh, ow)}")
    if dout.size == 0:
        return np.zeros((n, c, h, w), dtype=dout.dtype)
    if not R.use_c():
        return _ref.avg_pool2d_backward(dout, (n, c, h, w), win)
    dx = np.empty((n, c, h, w), dtype=dout.dtype)
    R.ext.avg_pool2d_backward(dout, *win.c_args(), R.threads_for(dx.size), dx)
    return dx


# --- convolution ----------------------------------------------------------------
#
# Three algorithms compute the same convolution; conv_plan picks one per call,
# and every conv op (forward, both gradients, and the layer's pair) follows it:
#   "direct"    the C kernel with no patch matrix (stride 1, C backend)
#   "per_image" unfold per image and one (FN, CKK) x (CKK, L) product per image
#   "rows"      the book's single (N*OH*OW, CKK) patch matrix and one product

# The direct kernel computes a padded grid of positions; on 8x8 maps a third
# of it is waste, and alone the patch-matrix path was a little faster there
# (benchmarks/conv_layouts.py). But that path's product wakes numpy's BLAS
# workers, whose spinning then slows every OpenMP kernel of the step when numpy
# was imported before fastconv (DeepConvNet: 1.44x); on the direct kernel from
# 8x8 up, the step was as fast in either import order (benchmarks/README.md).
DIRECT_MIN_PIXELS = 64
# At or above this many output pixels per image, one product per image on
# PyTorch's unfold layout gives NCHW directly and wins; below it the book's
# single product wins despite the transposes around it (conv_layouts.py).
PER_IMAGE_MIN_PIXELS = 256
# Values of scratch per image beyond which the patch path (with its own size
# checks) takes over; any real network's layers are far below it.
_DIRECT_SCRATCH_LIMIT = 1 << 28


def _direct_fits(image, fn, padding):
    c, h, w = image
    padded = (h + 2 * padding[0]) * (w + 2 * padding[1])
    return (c + fn + 4) * padded <= _DIRECT_SCRATCH_LIMIT


# Per thread (a context variable): one Python thread's forced plan must not
# change another's convolutions midway.
_forced_plan = contextvars.ContextVar("fastconv_forced_conv_plan", default=None)


@contextlib.contextmanager
def use_conv_plan(plan):
    """For tests and benchmarks: inside the block, convolutions run ``plan``
    (``"direct"``, ``"per_image"`` or ``"rows"``) wherever it can serve the
    call; ``"direct"`` still needs the C backend and stride 1. It
    applies to the calling thread (and context) only."""
    if plan not in ("direct", "per_image", "rows"):
        raise ValueError(f"plan must be 'direct', 'per_image' or 'rows', got {plan!r}")
    token = _forced_plan.set(plan)
    try:
        yield
    finally:
        _forced_plan.reset(token)


def conv_plan(input_shape, weight_shape, dtype, stride=1, padding=0):
    """The algorithm fastconv runs for this convolution, one of ``"direct"``,
    ``"per_image"`` or ``"rows"`` (see the comment above it in functional.py).

    input_shape (N, C, H, W), weight_shape (FN, C, KH, KW); dtype is the
    computation's float type. The choice depends on the backend, the dtype,
    the stride and the output size, never on the values.
    """
    win = Window.of(weight_shape[2:], stride, padding, names=_TORCH_NAMES)
    oh, ow = win.out_size(*input_shape[2:])
    direct_serves = (R.use_c() and np.dtype(dtype) in (np.float32, np.float64)
                     and win.stride == (1, 1)
                     and R.ext.conv_available()
                     and _direct_fits(input_shape[1:], weight_shape[0], win.padding))
    forced = _forced_plan.get()
    if forced is not None and (forced != "direct" or direct_serves):
        return forced
    if direct_serves and oh * ow >= DIRECT_MIN_PIXELS:
        return "direct"
    return "per_image" if oh * ow >= PER_IMAGE_MIN_PIXELS else "rows"


class ConvContext:
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`: the plan,
    the window, the input (direct plan) or its patch matrix, and scratch
    buffers that a layer keeps between steps (refilling the same memory was
    6x faster than fresh pages for 32 MB patch matrices)."""

    def __init__(self):
        self.plan = self.window = self.weight = self.x = self.cols = self.x_shape = None
        self._buffers = {}

    def buffer(self, name, shape, dtype):
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf


def _conv_window(kh, kw, stride, padding, source):
    """The window of every conv op, named alike in every error (source: the
    argument the kernel size came from)."""
    return Window.of((kh, kw), stride, padding, what="filter",
                     names=(f"{source}'s KH, KW", "stride", "padding", "dilation"))


def _conv_inputs(x, weight, bias, stride, padding):
    """Validate a forward call, identically for every plan."""
    original = x
    w = V.float_array(weight, "weight", (4,), "4-D (FN, C, KH, KW)")
    V.shape4(w.shape, "weight's shape", "FCHW", empty_batch=False)
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    V.shape4(x.shape, "x's shape")  # as conv2d_input_grad's input_shape: C, H, W >= 1
    fn, c, kh, kw = w.shape
    if x.shape[1] != c:
        raise ValueError(f"x has {x.shape[1]} channels but weight expects {c} "
                         f"(x shape {x.shape}, weight shape {w.shape})")
    win = _conv_window(kh, kw, stride, padding, "weight")
    n, _, h, wd = x.shape
    oh, ow = win.out_size(h, wd)
    V.check_output_fits((n, fn, oh, ow), x.itemsize)
    dtype = np.result_type(x, w)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    b = None
    if bias is not None:
        b = V.float_array(bias, "bias", (0, 1), f"({fn},)").astype(dtype, copy=False)
        if b.ndim == 0:  # the book passes a scalar bias (apply_filter.py)
            b = np.full(fn, b, dtype=dtype)
        if b.shape != (fn,):
            raise ValueError(f"bias must have shape ({fn},) or be a scalar, got {b.shape}")
    return original, x, w, b, win


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation of a batch with a filter bank, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : array (N, C, H, W)
    weight : array (FN, C, KH, KW), every dimension at least 1
    bias : array (FN,), a scalar, or None
    stride, padding : int or (h, w)

    Returns
    -------
    array (N, FN, OH, OW) in the common float type of x and weight, with
    ``OH = (H + 2*pad_h - KH) // stride_h + 1``. :func:`conv_plan` says which
    algorithm computes it; all give the same values up to rounding.
    """
    return conv2d_forward(x, weight, bias, stride, padding, keep=False)[0]


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, *, ctx=None, keep=True,
                   x_is_private=False, relu=False):
    """:func:`conv2d` that also returns the :class:`ConvContext` its backward needs.

    Pass the previous call's ``ctx`` back in to reuse its scratch memory.
    With ``keep`` the context holds what backward reads; on the direct plan
    that is a private copy of x (when x is the caller's array), so writes to x
    after this call cannot change the gradients. ``x_is_private`` promises
    that nobody writes to x before backward (a network's inner layers), and
    skips that copy. ``relu`` returns ``max(out, 0)`` instead (NaN kept, as
    ``numpy.maximum``), written in the same pass on the direct plan; it is
    for test-time prediction and needs ``keep=False``. Returns ``(out, ctx)``.
    """
    if relu and keep:
        raise ValueError("relu=True is for prediction: conv2d_backward has no ReLU; "
                         "pass keep=False")
    original, x, w, b, win = _conv_inputs(x, weight, bias, stride, padding)
    ctx = ctx if ctx is not None else ConvContext()
    ctx.plan = conv_plan(x.shape, w.shape, x.dtype, win.stride, win.padding)
    ctx.window, ctx.weight, ctx.x_shape, ctx.x, ctx.cols = win, w, x.shape, None, None
    n, c, h, wd = x.shape
    fn, _, kh, kw = w.shape
    oh, ow = win.out_size(h, wd)
    if ctx.plan == "direct":
        out = np.empty((n, fn, oh, ow), dtype=x.dtype)
        if out.size:
            R.ext.conv2d(x, w, b, *win.padding, relu, R.threads_for(out.size), out)
        if keep:
            shared = isinstance(original, np.ndarray) and np.may_share_memory(x, original)
            ctx.x = x.copy() if shared and not x_is_private else x
        return out, ctx
    w_mat = w.reshape(fn, -1)
    if ctx.plan == "per_image":
        cols = ctx.buffer("cols", (n, c * kh * kw, oh * ow), x.dtype)
        cols = unfold(x, (kh, kw), padding=win.padding, stride=win.stride, out=cols)
        out = np.matmul(w_mat, cols)                                         # (N, FN, L)
        if b is not None:
            out += b[:, None]
        out = out.reshape(n, fn, oh, ow)
    else:
        cols = im2col(x, kh, kw, win.stride, win.padding)                    # (N*L, CKK)
        prod = cols @ w_mat.T                                                # (N*L, FN)
        # Back to NCHW in memory, the bias added on the way: ReLU's mask and
        # product on a transposed view were several times slower than on
        # contiguous maps (benchmarks/README.md).
        out = np.empty((n, fn, oh, ow), dtype=prod.dtype)
        nchw = prod.reshape(n, oh, ow, fn).transpose(0, 3, 1, 2)
        if b is not None:
            np.add(nchw, b[:, None, None], out=out)
        else:
            out[...] = nchw
    if relu:
        np.maximum(out, 0, out=out)
    if keep:
        ctx.cols = cols
    return out, ctx


def conv2d_backward(ctx, grad_output, *, input_grad=True):
    """Gradients of :func:`conv2d_forward`'s call: ``(dx, dweight, dbias)``.

    grad_output : (N, FN, OH, OW), cast to the forward's dtype. dx is None
    when ``input_grad`` is false (a first layer: nobody needs it, and it is
    the costliest part). dbias sums over N, OH and OW, shape (FN,).
    """
    if ctx is None or ctx.plan is None or (ctx.x is None and ctx.cols is None):
        raise ValueError("conv2d_backward needs the context of a conv2d_forward call "
                         "made with keep=True")
    w, win = ctx.weight, ctx.window
    n, c, h, wd = ctx.x_shape
    oh, ow = win.out_size(h, wd)
    d = V.float_array(grad_output, "grad_output", (4,), "4-D (N, FN, OH, OW)")
    if d.shape != (n, w.shape[0], oh, ow):
        raise ValueError(f"grad_output must have shape {(n, w.shape[0], oh, ow)}, "
                         f"got {d.shape}")
    d = d.astype(w.dtype, copy=False)
    if ctx.plan == "direct":
        db = d.sum(axis=(0, 2, 3))
        dw = _weight_grad_direct_or_patches(ctx.x, d, w.shape, win)
    else:
        dw = _weight_grad_patches(ctx.plan, ctx.cols, d, w.shape)
        db = d.sum(axis=(0, 2, 3))
    dx = _input_grad(ctx.plan, d, w, ctx.x_shape, win, ctx) if input_grad else None
    return dx, dw, db


def _weight_grad_direct_or_patches(x, d, weight_shape, win):
    fn, c, kh, kw = weight_shape
    # The direct kernel also multiplies the zeros of grad_output's padding
    # columns by input pixels; 0 * inf is NaN, so inputs holding inf or NaN
    # (whose sum is not finite, or overflows: then the fallback is merely
    # slower) take the patch-matrix path, which has exactly the true terms.
    if np.isfinite(x.sum()):
        dw = np.empty(weight_shape, dtype=x.dtype)
        if dw.size:
            R.ext.conv2d_weight_grad(x, d, *win.padding, R.threads_for(d.size), dw)
        return dw
    cols = unfold(x, (kh, kw), padding=win.padding, stride=win.stride)
    return _weight_grad_patches("per_image", cols, d, weight_shape)


def _weight_grad_patches(plan, cols, d, weight_shape):
    fn = weight_shape[0]
    if plan == "rows":
        return (d.transpose(0, 2, 3, 1).reshape(-1, fn).T @ cols).reshape(weight_shape)
    n = d.shape[0]
    dmat = d.reshape(n, fn, d.shape[2] * d.shape[3])                                              # (N, FN, L)
    # One product per image: numpy's stacked matmul leaves BLAS for a slow
    # loop when the second operand is transposed (measured 20x).
    dw = np.zeros((fn, cols.shape[1]), dtype=d.dtype)
    part = np.empty_like(dw)
    for i in range(n):
        dw += np.dot(dmat[i], cols[i].T, out=part)
    return dw.reshape(weight_shape)


def _input_grad(plan, d, w, input_shape, win, ctx=None):
    n, c, h, wd = input_shape
    fn, _, kh, kw = w.shape
    full = (kh - 1 - win.padding[0], kw - 1 - win.padding[1])
    # The input gradient is the full correlation of grad_output with the
    # flipped filters, channels and filters swapped: the forward kernel again,
    # with padding k-1-p, when the window covers the padding (p <= k-1).
    # With fewer than 4 channels most of its 4-filter blocks would be padding.
    if (plan == "direct" and min(full) >= 0 and c >= 4
            and _direct_fits((fn,) + d.shape[2:], c, full)):
        flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        dx = np.empty(input_shape, dtype=d.dtype)
        if dx.size:
            R.ext.conv2d(d, flipped, None, *full, False, R.threads_for(dx.size), dx)
        return dx
    w_mat = w.reshape(fn, -1)
    if plan == "rows":
        dmat = d.transpose(0, 2, 3, 1).reshape(-1, fn)                      # (N*L, FN)
        return col2im(dmat @ w_mat, input_shape, kh, kw, win.stride, win.padding)
    dmat = d.reshape(n, fn, d.shape[2] * d.shape[3])
    out = ctx.buffer("dcols", (n, c * kh * kw, dmat.shape[2]), d.dtype) if ctx else None
    dcols = np.matmul(np.ascontiguousarray(w_mat.T), dmat, out=out)
    return fold(dcols, (h, wd), (kh, kw), padding=win.padding, stride=win.stride)


def conv2d_weight_grad(x, grad_output, weight_shape, stride=1, padding=0):
    """Gradient of :func:`conv2d`'s output with respect to its weight.

    Parameters
    ----------
    x : array (N, C, H, W), the forward input
    grad_output : array (N, FN, OH, OW)
    weight_shape : (FN, C, KH, KW), positive ints

    Returns
    -------
    array (FN, C, KH, KW): the sum over the batch, as ``torch.nn.grad.conv2d_weight``.
    """
    fn, c, kh, kw = V.shape4(weight_shape, "weight_shape", "FCHW", empty_batch=False)
    win = _conv_window(kh, kw, stride, padding, "weight_shape")
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    V.shape4(x.shape, "x's shape")
    d = V.float_array(grad_output, "grad_output", (4,), "4-D (N, FN, OH, OW)")
    n, _, h, wd = x.shape
    oh, ow = win.out_size(h, wd)
    if x.shape[1] != c or d.shape != (n, fn, oh, ow):
        raise ValueError(f"grad_output must have shape {(n, fn, oh, ow)} and x {c} channels "
                         f"for weight_shape {(fn, c, kh, kw)}; got grad_output {d.shape}, "
                         f"x {x.shape}")
    dtype = np.result_type(x, d)
    x, d = x.astype(dtype, copy=False), d.astype(dtype, copy=False)
    plan = conv_plan(x.shape, (fn, c, kh, kw), dtype, win.stride, win.padding)
    if plan == "direct":
        return _weight_grad_direct_or_patches(x, d, (fn, c, kh, kw), win)
    if plan == "rows":
        cols = im2col(x, kh, kw, win.stride, win.padding)
    else:
        cols = unfold(x, (kh, kw), padding=win.padding, stride=win.stride)
    return _weight_grad_patches(plan, cols, d, (fn, c, kh, kw))


def conv2d_input_grad(grad_output, weight, input_shape, stride=1, padding=0):
    """Gradient of :func:`conv2d`'s output with respect to its input.

    Parameters
    ----------
    grad_output : array (N, FN, OH, OW)
    weight : array (FN, C, KH, KW)
    input_shape : (N, C, H, W) of the forward input, ints

    Returns
    -------
    array (N, C, H, W), as ``torch.nn.grad.conv2d_input``. Input rows or
    columns that no window reached (stride larger than the window) get 0.
    """
    w = V.float_array(weight, "weight", (4,), "4-D (FN, C, KH, KW)")
    fn, wc, kh, kw = V.shape4(w.shape, "weight's shape", "FCHW", empty_batch=False)
    n, c, h, wd = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, wd), 8, "input_shape")
    win = _conv_window(kh, kw, stride, padding, "weight")
    oh, ow = win.out_size(h, wd)
    d = V.float_array(grad_output, "grad_output", (4,), "4-D (N, FN, OH, OW)")
    if wc != c or d.shape != (n, fn, oh, ow):
        raise ValueError(f"grad_output must have shape {(n, fn, oh, ow)} for weight "
                         f"{w.shape} and input_shape {(n, c, h, wd)}; got {d.shape}")
    dtype = np.result_type(d, w)
    d, w = d.astype(dtype, copy=False), w.astype(dtype, copy=False)
    plan = conv_plan((n, c, h, wd), w.shape, dtype, win.stride, win.padding)
    return _input_grad(plan, d, w, (n, c, h, wd), win)


# --- dense products -----------------------------------------------------------------

# Products below this many multiply-adds run on one BLAS thread on the C
# backend (see _runtime.blas_single_thread): a woken OpenBLAS worker would spin
# for 0.1 s after them and slow the OpenMP kernels around them. Above it the
# second thread is worth that. Measured: benchmarks/README.md (numpy first).
SMALL_PRODUCT_MACS = 1 << 24


def matmul(a, b, out=None):
    """``numpy.matmul(a, b, out=out)``, the products of the layers.

    On the C backend a product of fewer than ``SMALL_PRODUCT_MACS``
    multiply-adds runs on one BLAS thread, so that it does not wake numpy's
    BLAS workers; the result is the same product either way.
    """
    a, b = np.asarray(a), np.asarray(b)
    small = (a.ndim == 2 and b.ndim == 2
             and a.shape[0] * a.shape[1] * b.shape[1] < SMALL_PRODUCT_MACS)
    if small and R.use_c():
        with R.blas_single_thread():
            return np.matmul(a, b, out=out)
    return np.matmul(a, b, out=out)


# --- optimiser step ----------------------------------------------------------------

def adam_update(param, grad, m, v, lr_t, beta1=0.9, beta2=0.999, eps=1e-7):
    """One Adam step, in place: the update of :class:`fastconv.Adam`.

    ``m += (1-beta1)*(grad-m); v += (1-beta2)*(grad*grad-v);
    param -= lr_t*m/(sqrt(v)+eps)``, with lr_t the step's bias-corrected rate.

    Parameters
    ----------
    param, m, v : float32 or float64 arrays of one shape and dtype, updated in place
    grad : array of that shape (cast to param's dtype if needed)
    lr_t, beta1, beta2, eps : float

    No two of the four arrays may share memory (ValueError). The C backend
    makes one pass over memory instead of numpy's ten; it needs param, m and v
    C-contiguous, and otherwise computes with numpy, in the same order of
    operations.
    """
    arrays = {"param": param, "m": m, "v": v}
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be a float32 or float64 numpy array, got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
        if a.shape != param.shape or a.dtype != param.dtype:
            raise ValueError(f"{name} has shape {a.shape} and dtype {a.dtype}; param has "
                             f"{param.shape} and {param.dtype}")
        if not a.flags.writeable:
            raise ValueError(f"{name} must be writeable (it is updated in place)")
    grad_in = grad
    grad = np.asarray(grad)
    if grad.shape != param.shape:
        raise ValueError(f"grad has shape {grad.shape}, param has {param.shape}")
    if grad.dtype.kind not in "fiub":
        raise TypeError(f"grad must be a real numeric array, got dtype {grad.dtype}")
    V.no_overlap({"param": param, "grad": grad_in, "m": m, "v": v})
    lr_t, beta1, beta2, eps = (float(a) for a in (lr_t, beta1, beta2, eps))
    if not (R.use_c() and param.size and all(a.flags.c_contiguous for a in arrays.values())):
        _ref.adam_update(param, grad.astype(param.dtype, copy=False), m, v,
                         lr_t, beta1, beta2, eps)
        return
    grad = np.ascontiguousarray(grad, dtype=param.dtype)
    R.ext.adam_update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                      lr_t, 1 - beta1, 1 - beta2, eps, R.threads_for(param.size))
