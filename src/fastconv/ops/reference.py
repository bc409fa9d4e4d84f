"""The pure-NumPy backend: the same operations as the C kernels, vectorised.

This is the oracle the C backend is tested against and the baseline it is
benchmarked against. It assumes its arguments were already validated and
normalised by :mod:`fastconv.ops`: arrays are C-contiguous, native-endian
float32/float64, and every window is a :class:`fastconv.ops.window.Window`.
Python loops here run over window offsets (at most kh*kw iterations), never
over pixels.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "im2col", "col2im", "unfold", "fold", "adam_update",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
]


def _patches(x, window, fill=0.0):
    """View of shape (N, C, OH, OW, kh, kw): the window under each output pixel."""
    (sh, sw), (ph, pw), (dh, dw) = window.stride, window.padding, window.dilation
    oh, ow = window.out_size(*x.shape[2:])
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    win = sliding_window_view(x, window.span, axis=(2, 3))
    return win[:, :, : oh * sh : sh, : ow * sw : sw, ::dh, ::dw]


def im2col(x, window):
    n, c = x.shape[:2]
    win = _patches(x, window)
    oh, ow = win.shape[2:4]
    # (n, oh, ow) become rows and (c, kh, kw) columns: the book's layout.
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(
        n * oh * ow, c * window.kernel[0] * window.kernel[1])


def _offsets(k, d, size, count, stride, pad):
    """Window offsets (along one axis) that land on a real cell for some output."""
    lowest = pad - (count - 1) * stride   # smallest i*d that still reaches row 0
    return range(max(0, -(-lowest // d)), min(k, (pad + size - 1) // d + 1))


def _reach(size, count, stride, pad, offset):
    """Outputs [lo, hi) whose cell ``o*stride - pad + offset`` is real, and lo's cell."""
    first = offset - pad
    lo = max(0, -(first // stride)) if first < 0 else 0
    hi = min(count, (size - 1 - first) // stride + 1)
    return lo, hi, first + lo * stride


def _scatter_windows(cols, input_shape, window):
    """Sum cols (N, C, kh, kw, OH, OW) onto the image, dropping what lands on padding.

    Only offsets and outputs that reach real cells are visited, so a window
    far larger than the image (all padding around it) costs nothing extra.
    """
    n, c, h, w = input_shape
    (kh, kw), (sh, sw) = window.kernel, window.stride
    (ph, pw), (dh, dw) = window.padding, window.dilation
    oh, ow = cols.shape[4:]
    out = np.zeros((n, c, h, w), dtype=cols.dtype)
    for i in _offsets(kh, dh, h, oh, sh, ph):
        lo_h, hi_h, row = _reach(h, oh, sh, ph, i * dh)
        if lo_h >= hi_h:
            continue
        rows = slice(row, row + (hi_h - lo_h - 1) * sh + 1, sh)
        for j in _offsets(kw, dw, w, ow, sw, pw):
            lo_w, hi_w, col = _reach(w, ow, sw, pw, j * dw)
            if lo_w >= hi_w:
                continue
            out[:, :, rows, col : col + (hi_w - lo_w - 1) * sw + 1 : sw] += \
                cols[:, :, i, j, lo_h:hi_h, lo_w:hi_w]
    return out


def col2im(col, input_shape, window):
    n, c, h, w = input_shape
    kh, kw = window.kernel
    oh, ow = window.out_size(h, w)
    cols = col.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    return np.ascontiguousarray(_scatter_windows(cols, input_shape, window))


def unfold(x, window):
    n, c = x.shape[:2]
    win = _patches(x, window)
    oh, ow = win.shape[2:4]
    # PyTorch's layout: (n, c*kh*kw, oh*ow).
    return np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3)).reshape(
        n, c * window.kernel[0] * window.kernel[1], oh * ow)


def fold(cols, output_size, window):
    n = cols.shape[0]
    kh, kw = window.kernel
    c = cols.shape[1] // (kh * kw)
    h, w = output_size
    oh, ow = window.out_size(h, w)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    return np.ascontiguousarray(_scatter_windows(cols, (n, c, h, w), window))


def max_pool2d(x, window):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = window.kernel, window.stride, window.padding
    win = _patches(x, window, fill=-np.inf)
    oh, ow = win.shape[2:4]
    flat = win.reshape(n, c, oh, ow, kh * kw)
    # np.argmax returns the first maximum and the first NaN, which is exactly
    # the contract; only padding needs care, since a -inf pad cell would tie
    # with an all -inf window and win by coming first.
    k = np.argmax(flat, axis=-1)
    best = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0]
    row0 = np.arange(oh)[:, None] * sh - ph
    col0 = np.arange(ow)[None, :] * sw - pw
    if ph or pw:
        valid = np.zeros((h + 2 * ph, w + 2 * pw), dtype=bool)
        valid[ph : ph + h, pw : pw + w] = True
        vwin = sliding_window_view(valid, (kh, kw))[: oh * sh : sh, : ow * sw : sw]
        first_valid = np.argmax(vwin.reshape(oh, ow, kh * kw), axis=-1)
        k = np.where(best == -np.inf, first_valid, k)
    dh, dw = np.divmod(k, kw)
    idx = (row0 + dh) * w + (col0 + dw)
    return np.ascontiguousarray(best), idx.astype(np.int64)


def max_pool2d_backward(dout, indices, input_shape):
    n, c, h, w = input_shape
    planes = n * c
    dx = np.zeros(planes * h * w, dtype=dout.dtype)
    # Shift each plane's indices by its offset so one unbuffered add.at
    # handles overlapping windows (repeated indices add, never overwrite).
    offsets = (np.arange(planes, dtype=np.int64) * (h * w))[:, None]
    per_plane = dout.shape[2] * dout.shape[3]
    np.add.at(dx, indices.reshape(planes, per_plane) + offsets, dout.reshape(planes, per_plane))
    return dx.reshape(input_shape)


def avg_pool2d(x, window):
    kh, kw = window.kernel
    win = _patches(x, window)
    # Padded cells are zeros and still count in the divisor (count_include_pad).
    return np.ascontiguousarray(win.sum(axis=(-2, -1)) / x.dtype.type(kh * kw))


def avg_pool2d_backward(dout, input_shape, window):
    kh, kw = window.kernel
    share = dout / dout.dtype.type(kh * kw)
    cols = np.broadcast_to(share[:, :, None, None], dout.shape[:2] + (kh, kw) + dout.shape[2:])
    return np.ascontiguousarray(_scatter_windows(cols, input_shape, window))


def adam_update(param, grad, m, v, lr_t, beta1, beta2, eps):
    """One Adam step in place, in the operation order the C kernel repeats."""
    m += (1 - beta1) * (grad - m)
    v += (1 - beta2) * (grad * grad - v)
    param -= lr_t * m / (np.sqrt(v) + eps)
