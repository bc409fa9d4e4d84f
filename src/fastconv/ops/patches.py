"""im2col, col2im (the book's layout) and unfold, fold (PyTorch's), checked.

Each public function validates all of its arguments, then calls its core: the
cores (``*_core``) take arrays and a :class:`~fastconv.ops.window.Window` that
the caller has already checked, and are what the convolution plans call on
buffers they made themselves.
"""
import numpy as np

from .. import _runtime as R
from . import reference as _ref
from . import validate as V
from .window import Window, pair

__all__ = ["im2col", "col2im", "unfold", "fold", "im2col_core", "unfold_core", "fold_core",
           "col2im_core", "BOOK_NAMES", "TORCH_NAMES"]

BOOK_NAMES = ("filter_h/filter_w", "stride", "pad", "dilation")
TORCH_NAMES = ("kernel_size", "stride", "padding", "dilation")


# --- im2col / col2im (the book's layout) ---------------------------------------

def _book_window(filter_h, filter_w, stride, pad):
    for value, name in ((filter_h, "filter_h"), (filter_w, "filter_w")):
        if isinstance(value, (tuple, list, np.ndarray)):
            raise TypeError(f"{name} must be an int, got {value!r}")
        pair(value, name, 1)
    return Window.of((filter_h, filter_w), stride, pad, what="filter", names=BOOK_NAMES)


def im2col(input_data, filter_h, filter_w, stride=1, pad=0, *, out=None):
    """Unroll every filter window of ``input_data`` into one row (the book's layout).

    Parameters
    ----------
    input_data : ndarray
        Input of shape (N, C, H, W), any real dtype (the book's name; ``x``).
    filter_h, filter_w : int
        Height and width of the window.
    stride, pad : int or tuple of int
        Step and zero padding, one int or an (h, w) pair.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype to write into (saves a
        large allocation per call in a training loop); it must not overlap
        ``input_data``.

    Returns
    -------
    col : ndarray
        Shape (N*OH*OW, C*filter_h*filter_w); float32 if the input is float32,
        else float64. Rows are ordered (n, oh, ow) and columns (c, fh, fw);
        padding contributes zeros. Equal, element for element, to the book's
        ``common.util.im2col``.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> col = fastconv.im2col(x, 3, 3)
    >>> col.shape
    (4, 9)
    >>> col[0]
    array([ 0.,  1.,  2.,  4.,  5.,  6.,  8.,  9., 10.], dtype=float32)
    """
    win = _book_window(filter_h, filter_w, stride, pad)
    x = V.float_array(input_data, "input_data", (4,), "4-D (N, C, H, W)")
    n, c, h, w = x.shape
    oh, ow = win.out_size(h, w)
    shape = (n * oh * ow, c * win.kernel[0] * win.kernel[1])
    V.check_output_fits(shape, x.itemsize, "col")
    if out is not None:
        out = V.out_array(out, shape, x.dtype, inputs={"input_data": input_data, "x": x})
    return im2col_core(x, win, out)


def im2col_core(x, win, out=None):
    """:func:`im2col` of a checked float array x (N, C, H, W) and window;
    ``out``, when given, has the result's shape and dtype and overlaps nothing."""
    n, c, h, w = x.shape
    oh, ow = win.out_size(h, w)
    if not R.use_c():
        if out is None:
            return _ref.im2col(x, win)
        out[...] = _ref.im2col(x, win)
        return out
    col = out if out is not None else np.empty(
        (n * oh * ow, c * win.kernel[0] * win.kernel[1]), dtype=x.dtype)
    if col.size:
        R.ext.im2col(x, *win.c_args(), R.threads_for(col.size), col)
    return col


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The adjoint of :func:`im2col`: sum each row back onto its window.

    Parameters
    ----------
    col : ndarray
        Columns of shape (N*OH*OW, C*filter_h*filter_w).
    input_shape : tuple of int
        (N, C, H, W), the shape given to im2col.
    filter_h, filter_w : int
        Height and width of the window.
    stride, pad : int or tuple of int
        Step and zero padding, one int or an (h, w) pair.

    Returns
    -------
    x : ndarray
        Array of ``input_shape`` in the dtype of col (float32 or float64).
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
    return col2im_core(col, (n, c, h, w), win)


def col2im_core(col, input_shape, win):
    """:func:`col2im` of a checked float col of the right shape for ``input_shape``."""
    if not R.use_c():
        return _ref.col2im(col, input_shape, win)
    x = np.empty(input_shape, dtype=col.dtype)
    if x.size:
        R.ext.col2im(col, *win.c_args(), R.threads_for(col.size), x)
    return x


# --- unfold / fold (PyTorch's layout) ------------------------------------------

def unfold(x, kernel_size, dilation=1, padding=0, stride=1, *, out=None, batch_inner=False):
    """Extract sliding blocks, as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    x : ndarray
        Input of shape (N, C, H, W), or (C, H, W) unbatched.
    kernel_size, dilation, padding, stride : int or tuple of int
        The window, one int or an (h, w) pair each.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype to write into; it must
        not overlap ``x``.
    batch_inner : bool, default False
        Return the blocks of all images side by side in each row: shape
        (C*kh*kw, N*L), column n*L + l holding block l of image n. One matrix
        product with (FN, C*kh*kw) filters then convolves the whole batch.
        It is ``unfold(x)`` transposed to (C*kh*kw, N, L), written directly.

    Returns
    -------
    ndarray
        Shape (N, C*kh*kw, L), or (C*kh*kw, L) unbatched, with L = OH*OW. Each
        column holds one block, ordered (c, kh, kw); columns are ordered (oh, ow).
    """
    win = Window.of(kernel_size, stride, padding, dilation, names=TORCH_NAMES)
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
    result = None
    if out is not None:
        result = V.out_array(out, result_shape, x.dtype, inputs={"x": original, "input": x})
    result = unfold_core(x, win, result, batch_inner=batch_inner)
    return result[0] if unbatched and not batch_inner and out is None else result


def unfold_core(x, win, out=None, *, batch_inner=False):
    """:func:`unfold` of a checked 4-D float array x: (N, CKK, L), or with
    ``batch_inner`` (CKK, N*L); ``out``, when given, is C-contiguous of that
    shape and x's dtype and overlaps nothing."""
    n, c, h, w = x.shape
    oh, ow = win.out_size(h, w)
    ckk, length = c * win.kernel[0] * win.kernel[1], oh * ow
    shape = (ckk, n * length) if batch_inner else (n, ckk, length)
    if out is None and not R.use_c():
        cols = _ref.unfold(x, win)
        if batch_inner:
            return np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(shape)
        return cols
    result = out if out is not None else np.empty(shape, dtype=x.dtype)
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
    input : ndarray
        Blocks of shape (N, C*kh*kw, L), or (C*kh*kw, L) unbatched; with
        ``batch_inner=True``, (C*kh*kw, N*L) as ``unfold(..., batch_inner=True)``
        gives, and the result is always 4-D.
    output_size : int or tuple of int
        (H, W) of the image.
    kernel_size, dilation, padding, stride : int or tuple of int
        The window, as given to :func:`unfold`.
    batch_inner : bool, default False
        The layout of ``input``, as above.

    Returns
    -------
    ndarray
        Shape (N, C, H, W), or (C, H, W) unbatched; overlapping blocks add up.
    """
    win = Window.of(kernel_size, stride, padding, dilation, names=TORCH_NAMES)
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
    x = fold_core(cols, (n, c, h, w), win, batch_inner=batch_inner)
    return x[0] if unbatched else x


def fold_core(cols, input_shape, win, *, batch_inner=False):
    """:func:`fold` of checked float blocks: cols (N, CKK, L), or with
    ``batch_inner`` (CKK, N, L), into an (N, C, H, W) = ``input_shape`` image."""
    if not R.use_c():
        per_image = cols.transpose(1, 0, 2) if batch_inner else cols
        return _ref.fold(per_image, input_shape[2:], win)
    x = np.empty(input_shape, dtype=cols.dtype)
    if x.size:
        R.ext.fold(cols, *win.c_args(), *win.dilation, batch_inner,
                   R.threads_for(cols.size), x)
    return x
