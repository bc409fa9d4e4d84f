"""fastconv's public operations: validation, dtype handling and backend dispatch.

This is the only module that imports the compiled extension (``_ext``) or the
NumPy backend (``reference``); layers and models call the functions here.

Layouts are NCHW. For a window F, stride S, padding P and dilation D on an
axis of size H the output size is ``(H + 2P - D*(F-1) - 1) // S + 1``, which
must be at least 1. Sizes accept an int or an ``(h, w)`` pair. float32 and
float64 inputs keep their dtype; other real dtypes become float64.
"""
import contextlib
import os
import warnings

import numpy as np

from . import _validate as V
from . import reference as _ref

# Idle libgomp workers spin by default, and spinning they take the cores away
# from numpy's BLAS threads, which run between our kernels: a DeepConvNet
# training step took 225 ms that way and 108 ms with passive waiting (2 threads,
# benchmarks/README.md). libgomp reads this once, when it is loaded with _ext;
# a value the user set wins.
_WAIT_POLICY_SET_HERE = "OMP_WAIT_POLICY" not in os.environ
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    from . import _ext
except ImportError as exc:  # the package still works, on NumPy
    _ext = None
    _EXT_ERROR = exc
else:
    _EXT_ERROR = None

__all__ = [
    "im2col", "col2im", "unfold", "fold",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "conv2d", "conv2d_weight_grad", "conv2d_input_grad", "adam_update", "set_backend", "get_backend", "use_backend", "available_backends",
    "set_num_threads", "get_num_threads", "openmp_enabled",
]

_BACKENDS = ("c", "numpy")


def _warn_no_extension():
    warnings.warn(
        f"fastconv's compiled extension could not be imported ({_EXT_ERROR}); "
        "using the NumPy backend, which is much slower.",
        RuntimeWarning, stacklevel=3)


def _initial_backend():
    name = os.environ.get("FASTCONV_BACKEND", "c").strip().lower() or "c"
    if name not in _BACKENDS:
        warnings.warn(f"FASTCONV_BACKEND must be one of {_BACKENDS}, got {name!r}; using 'c'",
                      RuntimeWarning, stacklevel=2)
        name = "c"
    if name == "c" and _ext is None:
        _warn_no_extension()  # said once, here at import
        name = "numpy"
    return name


_backend = _initial_backend()


def available_backends():
    """The backends that can run here: ``("c", "numpy")``, or ``("numpy",)``."""
    return _BACKENDS if _ext is not None else ("numpy",)


def set_backend(name):
    """Select the backend for every op in this process: ``"c"`` or ``"numpy"``.

    Raises ValueError for an unknown name and RuntimeError when ``"c"`` is
    asked for but the compiled extension failed to import.
    """
    global _backend
    if not isinstance(name, str) or name.lower() not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {name!r}")
    name = name.lower()
    if name == "c" and _ext is None:
        raise RuntimeError(f"the C backend is unavailable: {_EXT_ERROR}")
    _backend = name


def get_backend():
    """The name of the active backend, ``"c"`` or ``"numpy"``."""
    return _backend


@contextlib.contextmanager
def use_backend(name):
    """Context manager that selects a backend and restores the previous one."""
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


# --- threads -----------------------------------------------------------------

_num_threads = None      # None: follow OpenMP (OMP_NUM_THREADS, threadpoolctl)
_parallel_used = False   # has this process entered an OpenMP parallel region?
_forked_after_parallel = False


def _after_fork_in_child():
    # libgomp's worker pool does not survive fork(); a child that opens a
    # parallel region after its parent used one waits forever. Such a child
    # runs every kernel on its own thread instead.
    global _forked_after_parallel
    _forked_after_parallel = _forked_after_parallel or _parallel_used


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def openmp_enabled():
    """True when the compiled extension is present and was built with OpenMP."""
    return _ext is not None and _ext.openmp_enabled()


def set_num_threads(n):
    """Fix the number of threads fastconv's kernels use, for the whole process.

    ``n`` is a positive int, or None to go back to the default, which reads
    ``omp_get_max_threads()`` at every call and so honours ``OMP_NUM_THREADS``
    and ``threadpoolctl.threadpool_limits``. Results never depend on it.
    """
    global _num_threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be a positive int or None, got {n!r}")
        if n < 1:
            raise ValueError(f"n must be a positive int or None, got {n!r}")
        n = int(n)
    _num_threads = n


def get_num_threads():
    """The number of threads the next kernel call will use."""
    if _ext is None or _forked_after_parallel or not _ext.openmp_enabled():
        return 1
    if _num_threads is not None:
        return _num_threads
    return max(1, _ext.max_threads())


# Below this many output elements a second thread costs more to wake than it
# saves; on a loaded machine the wake-up can take a whole scheduler tick.
_GRAIN = 1 << 15


def _threads(work):
    global _parallel_used
    n = min(get_num_threads(), max(1, work // _GRAIN))
    if n > 1:
        _parallel_used = True
    return n


def _use_c():
    return _backend == "c"


# --- im2col / col2im (the book's layout) ---------------------------------------

def _window_args(filter_h, filter_w, stride, pad):
    kernel = (V.single_int(filter_h, "filter_h"), V.single_int(filter_w, "filter_w"))
    return kernel, V.positive_pair(stride, "stride"), V.nonnegative_pair(pad, "pad")


def im2col(x, filter_h, filter_w, stride=1, pad=0, *, out=None):
    """Unroll every filter window of ``x`` into one row (the book's layout).

    Parameters
    ----------
    x : array (N, C, H, W), any real dtype
    filter_h, filter_w : int
    stride, pad : int or (h, w)
    out : optional C-contiguous array of the result's shape and dtype to
        write into (saves a large allocation per call in a training loop)

    Returns
    -------
    col : array (N*OH*OW, C*filter_h*filter_w), float32 if x is float32, else
        float64. Rows are ordered (n, oh, ow) and columns (c, fh, fw);
        padding contributes zeros. Equal, element for element, to the book's
        ``common.util.im2col``.
    """
    kernel, stride, pad = _window_args(filter_h, filter_w, stride, pad)
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    n, c, h, w = x.shape
    oh, ow = V.out_size((h, w), kernel, stride, pad)
    shape = (n * oh * ow, c * kernel[0] * kernel[1])
    V.check_output_fits(shape, x.itemsize, "col")
    if not _use_c() and out is None:
        return _ref.im2col(x, kernel, stride, pad)
    col = V.out_array(out, shape, x.dtype)
    if not _use_c():
        col[...] = _ref.im2col(x, kernel, stride, pad)
    elif col.size:
        _ext.im2col(x, *kernel, *pad, *stride, _threads(col.size), col)
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
    kernel, stride, pad = _window_args(filter_h, filter_w, stride, pad)
    n, c, h, w = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, w), 8, "input_shape")
    col = V.float_array(col, "col", (2,), "2-D (N*OH*OW, C*FH*FW)")
    oh, ow = V.out_size((h, w), kernel, stride, pad)
    expected = (n * oh * ow, c * kernel[0] * kernel[1])
    if col.shape != expected:
        raise ValueError(
            f"col has shape {col.shape}, but input_shape {(n, c, h, w)} with a "
            f"{kernel[0]}x{kernel[1]} filter, stride {stride} and pad {pad} needs {expected}")
    if not _use_c():
        return _ref.col2im(col, (n, c, h, w), kernel, stride, pad)
    x = np.empty((n, c, h, w), dtype=col.dtype)
    if x.size:
        _ext.col2im(col, *kernel, *pad, *stride, _threads(col.size), x)
    return x


# --- unfold / fold (PyTorch's layout) ------------------------------------------

def _torch_window_args(kernel_size, dilation, padding, stride):
    return (V.positive_pair(kernel_size, "kernel_size"), V.positive_pair(dilation, "dilation"),
            V.nonnegative_pair(padding, "padding"), V.positive_pair(stride, "stride"))


def unfold(x, kernel_size, dilation=1, padding=0, stride=1, *, out=None, batch_inner=False):
    """Extract sliding blocks, as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    x : array (N, C, H, W), or (C, H, W) unbatched
    kernel_size, dilation, padding, stride : int or (h, w)
    out : optional C-contiguous array of the result's shape and dtype to write into
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
    kernel, dilation, pad, stride = _torch_window_args(kernel_size, dilation, padding, stride)
    x = V.float_array(x, "input", (3, 4), "3-D (C, H, W) or 4-D (N, C, H, W)")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c, h, w = x.shape
    oh, ow = V.out_size((h, w), kernel, stride, pad, dilation, what="kernel")
    ckk, length = c * kernel[0] * kernel[1], oh * ow
    shape = (n, ckk, length)
    V.check_output_fits(shape, x.itemsize)
    if batch_inner:
        result_shape = (ckk, n * length)
    else:
        result_shape = (ckk, length) if unbatched else shape
    if not _use_c() and out is None:
        cols = _ref.unfold(x, kernel, dilation, pad, stride)
        if batch_inner:
            return np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(result_shape)
        return cols[0] if unbatched else cols
    result = V.out_array(out, result_shape, x.dtype)
    # The kernel sees (N, CKK, L) or, batch-inner, (CKK, N, L): same buffer.
    cols = result.reshape((ckk, n, length) if batch_inner else shape)
    if not _use_c():
        ref = _ref.unfold(x, kernel, dilation, pad, stride)
        cols[...] = ref.transpose(1, 0, 2) if batch_inner else ref
    elif cols.size:
        _ext.unfold(x, *kernel, *pad, *stride, *dilation, batch_inner,
                    _threads(cols.size), cols)
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
    kernel, dilation, pad, stride = _torch_window_args(kernel_size, dilation, padding, stride)
    h, w = V.positive_pair(output_size, "output_size")
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
    oh, ow = V.out_size((h, w), kernel, stride, pad, dilation, what="kernel")
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
    if not _use_c():
        per_image = cols.transpose(1, 0, 2) if batch_inner else cols
        x = _ref.fold(per_image, (h, w), kernel, dilation, pad, stride)
    else:
        x = np.empty((n, c, h, w), dtype=cols.dtype)
        if x.size:
            _ext.fold(cols, *kernel, *pad, *stride, *dilation, batch_inner,
                      _threads(cols.size), x)
    return x[0] if unbatched else x


# --- pooling -------------------------------------------------------------------

def _pool_args(kernel_size, stride, padding):
    kernel = V.positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else V.positive_pair(stride, "stride")
    pad = V.nonnegative_pair(padding, "padding")
    if 2 * pad[0] > kernel[0] or 2 * pad[1] > kernel[1]:
        raise ValueError(
            f"padding {pad} must be at most half of kernel_size {kernel}")
    return kernel, stride, pad


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
    kernel, stride, pad = _pool_args(kernel_size, stride, padding)
    x = _pool_input(x)
    n, c, h, w = x.shape
    oh, ow = V.out_size((h, w), kernel, stride, pad, what="pool window")
    if x.size == 0:
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        idx = np.empty((n, c, oh, ow), dtype=np.int64)
    elif not _use_c():
        out, idx = _ref.max_pool2d(x, kernel, stride, pad)
    else:
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        idx = np.empty((n, c, oh, ow), dtype=np.int64)
        _ext.max_pool2d(x, *kernel, *pad, *stride, _threads(x.size), out, idx)
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
    if not _use_c():
        if indices.size and (indices.min() < 0 or indices.max() >= h * w):
            _bad_indices(h, w, int(np.count_nonzero((indices < 0) | (indices >= h * w))))
        return _ref.max_pool2d_backward(dout, indices, (n, c, h, w))
    dx = np.empty((n, c, h, w), dtype=dout.dtype)
    bad = _ext.max_pool2d_backward(dout, indices, _threads(dx.size), dx)
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
    kernel, stride, pad = _pool_args(kernel_size, stride, padding)
    x = _pool_input(x)
    n, c, h, w = x.shape
    oh, ow = V.out_size((h, w), kernel, stride, pad, what="pool window")
    if x.size == 0:
        return np.empty((n, c, oh, ow), dtype=x.dtype)
    if not _use_c():
        return _ref.avg_pool2d(x, kernel, stride, pad)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    _ext.avg_pool2d(x, *kernel, *pad, *stride, _threads(x.size), out)
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
    kernel, stride, pad = _pool_args(kernel_size, stride, padding)
    n, c, h, w = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, w), 8, "input_shape")
    dout = V.float_array(dout, "dout", (4,), "4-D (N, C, OH, OW)")
    oh, ow = V.out_size((h, w), kernel, stride, pad, what="pool window")
    if dout.shape != (n, c, oh, ow):
        raise ValueError(
            f"dout has shape {dout.shape}, but input_shape {(n, c, h, w)} pooled with "
            f"kernel_size {kernel}, stride {stride}, padding {pad} gives {(n, c, oh, ow)}")
    if dout.size == 0:
        return np.zeros((n, c, h, w), dtype=dout.dtype)
    if not _use_c():
        return _ref.avg_pool2d_backward(dout, (n, c, h, w), kernel, stride, pad)
    dx = np.empty((n, c, h, w), dtype=dout.dtype)
    _ext.avg_pool2d_backward(dout, *kernel, *pad, *stride, _threads(dx.size), dx)
    return dx


# --- convolution ----------------------------------------------------------------

def _direct_conv(dtype, stride, image=None, fn=1, pad=(0, 0)):
    """True when the direct (patch-matrix-free) kernel serves this call: the C
    backend, float32, stride 1. Everything else goes through unfold/fold and a
    matrix product, on either backend. ``image`` = (C, H, W) also bounds the
    kernel's per-image scratch (the padded image and its output grid), which a
    huge padding around a tiny image could otherwise blow up."""
    if not (_use_c() and dtype == np.float32 and tuple(stride) == (1, 1)
            and _ext.conv_available()):
        return False
    if image is not None:
        c, h, w = image
        padded = (h + 2 * pad[0]) * (w + 2 * pad[1])
        if (c + fn + 4) * padded > _DIRECT_SCRATCH_LIMIT:
            return False
    return True


# Values of scratch per image, beyond which the patch-matrix path (with its
# own size checks) takes over; any real network's layers are far below it.
_DIRECT_SCRATCH_LIMIT = 1 << 28


def _conv_args(weight, stride, padding):
    w = V.float_array(weight, "weight", (4,), "4-D (FN, C, KH, KW)")
    stride = V.positive_pair(stride, "stride")
    pad = V.nonnegative_pair(padding, "padding")
    return w, stride, pad


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation of a batch with a filter bank, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : array (N, C, H, W)
    weight : array (FN, C, KH, KW)
    bias : array (FN,) or None
    stride, padding : int or (h, w)

    Returns
    -------
    array (N, FN, OH, OW) in the common float type of x and weight, with
    ``OH = (H + 2*pad_h - KH) // stride_h + 1``.

    With the C backend, float32 and stride 1 it runs a direct convolution kernel
    (no patch matrix; AVX2 where the CPU has it). Otherwise it is ``unfold``
    followed by one matrix product per image.
    """
    w, stride, pad = _conv_args(weight, stride, padding)
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    fn, c, kh, kw = w.shape
    if x.shape[1] != c:
        raise ValueError(f"x has {x.shape[1]} channels but weight expects {c} "
                         f"(x shape {x.shape}, weight shape {w.shape})")
    dtype = np.result_type(x, w)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    b = None
    if bias is not None:
        b = np.ascontiguousarray(bias, dtype=dtype)
        if b.shape != (fn,):
            raise ValueError(f"bias must have shape ({fn},), got {b.shape}")
    n, _, h, wd = x.shape
    oh, ow = V.out_size((h, wd), (kh, kw), stride, pad, what="kernel")
    V.check_output_fits((n, fn, oh, ow), x.itemsize)
    if _direct_conv(dtype, stride, x.shape[1:], fn, pad):
        out = np.empty((n, fn, oh, ow), dtype=dtype)
        if out.size:
            _ext.conv2d(x, w, b, *pad, _threads(out.size), out)
        return out
    cols = unfold(x, (kh, kw), padding=pad, stride=stride)
    out = np.matmul(w.reshape(fn, -1), cols)
    if b is not None:
        out += b[:, None]
    return out.reshape(n, fn, oh, ow)


def conv2d_weight_grad(x, grad_output, weight_shape, stride=1, padding=0):
    """Gradient of :func:`conv2d`'s output with respect to its weight.

    Parameters
    ----------
    x : array (N, C, H, W), the forward input
    grad_output : array (N, FN, OH, OW)
    weight_shape : (FN, C, KH, KW)

    Returns
    -------
    array (FN, C, KH, KW): the sum over the batch, as ``torch.nn.grad.conv2d_weight``.
    """
    fn, c, kh, kw = (int(v) for v in weight_shape)
    stride = V.positive_pair(stride, "stride")
    pad = V.nonnegative_pair(padding, "padding")
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    d = V.float_array(grad_output, "grad_output", (4,), "4-D (N, FN, OH, OW)")
    n, _, h, wd = x.shape
    oh, ow = V.out_size((h, wd), (kh, kw), stride, pad, what="kernel")
    if x.shape[1] != c or d.shape != (n, fn, oh, ow):
        raise ValueError(f"grad_output must have shape {(n, fn, oh, ow)} and x {c} channels "
                         f"for weight_shape {(fn, c, kh, kw)}; got grad_output {d.shape}, "
                         f"x {x.shape}")
    dtype = np.result_type(x, d)
    x, d = x.astype(dtype, copy=False), d.astype(dtype, copy=False)
    # The direct kernel also multiplies the zeros of grad_output's padding
    # columns by input pixels; 0 * inf is NaN, so inputs holding inf or NaN
    # (whose sum is not finite, or overflows: then the fallback is merely
    # slower) take the patch-matrix path, which has exactly the true terms.
    if _direct_conv(dtype, stride, x.shape[1:], fn, pad) and np.isfinite(x.sum()):
        dw = np.empty((fn, c, kh, kw), dtype=dtype)
        if dw.size:
            _ext.conv2d_weight_grad(x, d, *pad, _threads(n * fn * oh * ow), dw)
        return dw
    cols = unfold(x, (kh, kw), padding=pad, stride=stride)          # (N, CKK, L)
    dcol = d.reshape(n, fn, oh * ow)
    dw = np.zeros((fn, c * kh * kw), dtype=dtype)
    # One product per image: numpy's stacked matmul leaves BLAS for a slow
    # loop when the second operand is transposed.
    for i in range(n):
        dw += dcol[i] @ cols[i].T
    return dw.reshape(fn, c, kh, kw)


def conv2d_input_grad(grad_output, weight, input_shape, stride=1, padding=0):
    """Gradient of :func:`conv2d`'s output with respect to its input.

    Parameters
    ----------
    grad_output : array (N, FN, OH, OW)
    weight : array (FN, C, KH, KW)
    input_shape : (N, C, H, W) of the forward input

    Returns
    -------
    array (N, C, H, W), as ``torch.nn.grad.conv2d_input``. Input rows or
    columns that no window reached (stride larger than the window) get 0.
    """
    w, stride, pad = _conv_args(weight, stride, padding)
    n, c, h, wd = (int(v) for v in input_shape)
    fn, wc, kh, kw = w.shape
    oh, ow = V.out_size((h, wd), (kh, kw), stride, pad, what="kernel")
    d = V.float_array(grad_output, "grad_output", (4,), "4-D (N, FN, OH, OW)")
    if wc != c or d.shape != (n, fn, oh, ow):
        raise ValueError(f"grad_output must have shape {(n, fn, oh, ow)} for weight "
                         f"{w.shape} and input_shape {(n, c, h, wd)}; got {d.shape}")
    dtype = np.result_type(d, w)
    d, w = d.astype(dtype, copy=False), w.astype(dtype, copy=False)
    # The input gradient is the full correlation of grad_output with the
    # flipped filters, channels and filters swapped: the forward kernel again,
    # with padding k-1-p, when the window covers the padding (p <= k-1).
    # With fewer than 4 channels most of its 4-filter blocks would be padding.
    if (_direct_conv(dtype, stride, (fn, oh, ow), c, (kh - 1 - pad[0], kw - 1 - pad[1]))
            and pad[0] <= kh - 1 and pad[1] <= kw - 1 and c >= 4):
        flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        dx = np.empty((n, c, h, wd), dtype=dtype)
        if dx.size:
            _ext.conv2d(d, flipped, None, kh - 1 - pad[0], kw - 1 - pad[1],
                        _threads(dx.size), dx)
        return dx
    dcols = np.matmul(np.ascontiguousarray(w.reshape(fn, -1).T), d.reshape(n, fn, oh * ow))
    return fold(dcols, (h, wd), (kh, kw), padding=pad, stride=stride)


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

    The C backend makes one pass over memory instead of numpy's ten; it needs
    param, m and v C-contiguous and writeable, and otherwise computes with
    numpy, in the same order of operations.
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
    grad = np.asarray(grad)
    if grad.shape != param.shape:
        raise ValueError(f"grad has shape {grad.shape}, param has {param.shape}")
    if grad.dtype.kind not in "fiub":
        raise TypeError(f"grad must be a real numeric array, got dtype {grad.dtype}")
    lr_t, beta1, beta2, eps = (float(a) for a in (lr_t, beta1, beta2, eps))
    fusable = (_use_c() and param.size
               and all(a.flags.c_contiguous for a in arrays.values())
               and not np.shares_memory(param, m) and not np.shares_memory(param, v)
               and not np.shares_memory(m, v))
    if not fusable:
        _ref.adam_update(param, grad.astype(param.dtype, copy=False), m, v,
                         lr_t, beta1, beta2, eps)
        return
    grad = np.ascontiguousarray(grad, dtype=param.dtype)
    _ext.adam_update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                     lr_t, 1 - beta1, 1 - beta2, eps, _threads(param.size))
