"""Max pooling (with PyTorch's argmax indices) and average pooling, checked.

The layers call the ``*_core`` functions with arrays and windows they have
checked once; the public functions check every argument first.
"""
import numpy as np

from .. import _runtime as R
from . import reference as _ref
from . import validate as V
from .patches import TORCH_NAMES
from .window import Window

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "pool_window", "pool_input", "max_pool2d_core", "avg_pool2d_core",
           "max_pool2d_backward_core", "avg_pool2d_backward_core"]


def pool_window(kernel_size, stride, padding):
    if stride is None:  # PyTorch's default: the window itself
        stride = kernel_size
    win = Window.of(kernel_size, stride, padding, what="pool window", names=TORCH_NAMES)
    if 2 * win.padding[0] > win.kernel[0] or 2 * win.padding[1] > win.kernel[1]:
        raise ValueError(
            f"padding {win.padding} must be at most half of kernel_size {win.kernel}")
    return win


def pool_input(x):
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    if x.shape[2] == 0 or x.shape[3] == 0:
        # A window over nothing but padding has no maximum and no index.
        raise ValueError(f"x must have H, W >= 1 to be pooled, got shape {x.shape}")
    return x


def max_pool2d(x, kernel_size, stride=None, padding=0, return_indices=False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    x : ndarray
        Input of shape (N, C, H, W).
    kernel_size : int or tuple of int
        The window, one int or an (h, w) pair.
    stride : int or tuple of int, optional
        Default: ``kernel_size``.
    padding : int or tuple of int, default 0
        At most half the window; padded cells never win.
    return_indices : bool, default False
        Also return where each maximum was.

    Returns
    -------
    out : ndarray
        Shape (N, C, OH, OW), float32 or float64.
    indices : ndarray
        Of dtype int64, shape (N, C, OH, OW), only if ``return_indices``. The flat index
        ``h*W + w`` of each maximum in its unpadded input plane. Ties go to the
        first maximum in row-major window order; a NaN in a window makes the
        output NaN and the index that of the first NaN.

    Examples
    --------
    >>> x = np.array([[[[1., 3.], [3., 2.]]]])
    >>> out, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    >>> float(out[0, 0, 0, 0]), int(idx[0, 0, 0, 0])
    (3.0, 1)
    """
    win = pool_window(kernel_size, stride, padding)
    out, idx = max_pool2d_core(pool_input(x), win, return_indices)
    return (out, idx) if return_indices else out


def max_pool2d_core(x, win, return_indices=True):
    """:func:`max_pool2d` of a checked x and window: ``(out, indices or None)``."""
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
    return out, idx


def max_pool2d_backward(dout, indices, input_shape):
    """Gradient of :func:`max_pool2d`: scatter ``dout`` to ``indices``.

    Parameters
    ----------
    dout : ndarray
        Gradient of the output, (N, C, OH, OW).
    indices : ndarray
        Of dtype int64, shape (N, C, OH, OW), from
        ``max_pool2d(..., return_indices=True)``.
    input_shape : tuple of int
        (N, C, H, W) of the pooled input.

    Returns
    -------
    dx : ndarray
        Array of ``input_shape`` in the dtype of dout. Where windows overlap the
        contributions add. Indices outside ``[0, H*W)`` raise ValueError.
    """
    n, c, h, w = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, w), 8, "input_shape")
    dout = V.float_array(dout, "dout", (4,), "4-D (N, C, OH, OW)")
    if dout.shape[:2] != (n, c):
        raise ValueError(
            f"dout has shape {dout.shape}, but input_shape {(n, c, h, w)} needs N={n}, C={c}")
    indices = V.index_array(indices, "indices", dout.shape)
    return max_pool2d_backward_core(dout, indices, (n, c, h, w))


def max_pool2d_backward_core(dout, indices, input_shape):
    """:func:`max_pool2d_backward` of checked arrays; indices out of range
    still raise ValueError (the kernel counts them)."""
    n, c, h, w = input_shape
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

    Parameters
    ----------
    x : ndarray
        Input of shape (N, C, H, W).
    kernel_size : int or tuple of int
        The window, one int or an (h, w) pair.
    stride : int or tuple of int, optional
        Default: ``kernel_size``.
    padding : int or tuple of int, default 0
        Zero padding, at most half the window.

    Returns
    -------
    ndarray
        Shape (N, C, OH, OW), of x's float dtype.
    """
    win = pool_window(kernel_size, stride, padding)
    return avg_pool2d_core(pool_input(x), win)


def avg_pool2d_core(x, win):
    """:func:`avg_pool2d` of a checked x and window."""
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
    dout : ndarray
        Gradient of the output, (N, C, OH, OW).
    input_shape : tuple of int
        (N, C, H, W) of the pooled input.
    kernel_size, stride, padding : int or tuple of int
        As given to :func:`avg_pool2d`.

    Returns
    -------
    dx : ndarray
        Array of ``input_shape`` in the dtype of dout.
    """
    win = pool_window(kernel_size, stride, padding)
    n, c, h, w = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, w), 8, "input_shape")
    dout = V.float_array(dout, "dout", (4,), "4-D (N, C, OH, OW)")
    oh, ow = win.out_size(h, w)
    if dout.shape != (n, c, oh, ow):
        raise ValueError(
            f"dout has shape {dout.shape}, but input_shape {(n, c, h, w)} pooled with "
            f"kernel_size {win.kernel}, stride {win.stride}, padding {win.padding} gives "
            f"{(n, c, oh, ow)}")
    return avg_pool2d_backward_core(dout, (n, c, h, w), win)


def avg_pool2d_backward_core(dout, input_shape, win):
    """:func:`avg_pool2d_backward` of a checked dout of the pooled shape."""
    n, c, h, w = input_shape
    if dout.size == 0:
        return np.zeros((n, c, h, w), dtype=dout.dtype)
    if not R.use_c():
        return _ref.avg_pool2d_backward(dout, (n, c, h, w), win)
    dx = np.empty((n, c, h, w), dtype=dout.dtype)
    R.ext.avg_pool2d_backward(dout, *win.c_args(), R.threads_for(dx.size), dx)
    return dx
