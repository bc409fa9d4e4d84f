"""Brute-force loop versions of every op: the slow, obvious oracle.

Written from the definitions (a window slides over the zero-padded input),
independently of both backends, and only ever run on tiny shapes.
"""
import itertools
import math

import numpy as np


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_size(size, k, s, p, d=1):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def window_cells(h, w, oh, ow, kernel, stride, pad, dilation=(1, 1)):
    """Yield (i, j, ih, iw, inside) for the window of output (oh, ow), row-major."""
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            ih = oh * stride[0] - pad[0] + i * dilation[0]
            iw = ow * stride[1] - pad[1] + j * dilation[1]
            yield i, j, ih, iw, (0 <= ih < h and 0 <= iw < w)


def im2col(x, kh, kw, stride, pad):
    stride, pad = pair(stride), pair(pad)
    n, c, h, w = x.shape
    oh_n, ow_n = out_size(h, kh, stride[0], pad[0]), out_size(w, kw, stride[1], pad[1])
    col = np.zeros((n * oh_n * ow_n, c * kh * kw), dtype=x.dtype)
    for b, oh, ow in itertools.product(range(n), range(oh_n), range(ow_n)):
        row = (b * oh_n + oh) * ow_n + ow
        for ch in range(c):
            for i, j, ih, iw, inside in window_cells(h, w, oh, ow, (kh, kw), stride, pad):
                if inside:
                    col[row, (ch * kh + i) * kw + j] = x[b, ch, ih, iw]
    return col


def col2im(col, shape, kh, kw, stride, pad):
    stride, pad = pair(stride), pair(pad)
    n, c, h, w = shape
    oh_n, ow_n = out_size(h, kh, stride[0], pad[0]), out_size(w, kw, stride[1], pad[1])
    x = np.zeros(shape, dtype=np.float64)
    for b, oh, ow in itertools.product(range(n), range(oh_n), range(ow_n)):
        row = (b * oh_n + oh) * ow_n + ow
        for ch in range(c):
            for i, j, ih, iw, inside in window_cells(h, w, oh, ow, (kh, kw), stride, pad):
                if inside:
                    x[b, ch, ih, iw] += col[row, (ch * kh + i) * kw + j]
    return x


def unfold(x, kernel, dilation, pad, stride):
    kernel, dilation, pad, stride = map(pair, (kernel, dilation, pad, stride))
    n, c, h, w = x.shape
    oh_n = out_size(h, kernel[0], stride[0], pad[0], dilation[0])
    ow_n = out_size(w, kernel[1], stride[1], pad[1], dilation[1])
    out = np.zeros((n, c * kernel[0] * kernel[1], oh_n * ow_n), dtype=x.dtype)
    for b, ch, oh, ow in itertools.product(range(n), range(c), range(oh_n), range(ow_n)):
        for i, j, ih, iw, inside in window_cells(h, w, oh, ow, kernel, stride, pad, dilation):
            if inside:
                out[b, (ch * kernel[0] + i) * kernel[1] + j, oh * ow_n + ow] = x[b, ch, ih, iw]
    return out


def fold(cols, size, kernel, dilation, pad, stride):
    kernel, dilation, pad, stride = map(pair, (kernel, dilation, pad, stride))
    n = cols.shape[0]
    c = cols.shape[1] // (kernel[0] * kernel[1])
    h, w = size
    oh_n = out_size(h, kernel[0], stride[0], pad[0], dilation[0])
    ow_n = out_size(w, kernel[1], stride[1], pad[1], dilation[1])
    x = np.zeros((n, c, h, w), dtype=np.float64)
    for b, ch, oh, ow in itertools.product(range(n), range(c), range(oh_n), range(ow_n)):
        for i, j, ih, iw, inside in window_cells(h, w, oh, ow, kernel, stride, pad, dilation):
            if inside:
                x[b, ch, ih, iw] += cols[b, (ch * kernel[0] + i) * kernel[1] + j, oh * ow_n + ow]
    return x


def max_pool(x, kernel, stride, pad):
    """Returns (out, flat indices): NaN first, else the first of the largest."""
    kernel, stride, pad = map(pair, (kernel, stride, pad))
    n, c, h, w = x.shape
    oh_n, ow_n = out_size(h, kernel[0], stride[0], pad[0]), out_size(w, kernel[1], stride[1], pad[1])
    out = np.zeros((n, c, oh_n, ow_n), dtype=x.dtype)
    idx = np.zeros((n, c, oh_n, ow_n), dtype=np.int64)
    for b, ch, oh, ow in itertools.product(range(n), range(c), range(oh_n), range(ow_n)):
        cells = [(x[b, ch, ih, iw], ih * w + iw)
                 for _, _, ih, iw, inside in window_cells(h, w, oh, ow, kernel, stride, pad)
                 if inside]
        nans = [cell for cell in cells if math.isnan(cell[0])]
        if nans:
            value, where = nans[0]
        else:
            top = max(v for v, _ in cells)
            value, where = next(cell for cell in cells if cell[0] == top)
        out[b, ch, oh, ow], idx[b, ch, oh, ow] = value, where
    return out, idx


def max_pool_backward(dout, idx, shape):
    n, c, h, w = shape
    dx = np.zeros(shape, dtype=np.float64)
    for b, ch, oh, ow in itertools.product(*map(range, dout.shape)):
        k = idx[b, ch, oh, ow]
        dx[b, ch, k // w, k % w] += dout[b, ch, oh, ow]
    return dx


def avg_pool(x, kernel, stride, pad):
    kernel, stride, pad = map(pair, (kernel, stride, pad))
    n, c, h, w = x.shape
    oh_n, ow_n = out_size(h, kernel[0], stride[0], pad[0]), out_size(w, kernel[1], stride[1], pad[1])
    out = np.zeros((n, c, oh_n, ow_n), dtype=np.float64)
    for b, ch, oh, ow in itertools.product(range(n), range(c), range(oh_n), range(ow_n)):
        total = sum(float(x[b, ch, ih, iw])
                    for _, _, ih, iw, inside in window_cells(h, w, oh, ow, kernel, stride, pad)
                    if inside)
        out[b, ch, oh, ow] = total / (kernel[0] * kernel[1])
    return out


def avg_pool_backward(dout, shape, kernel, stride, pad):
    kernel, stride, pad = map(pair, (kernel, stride, pad))
    n, c, h, w = shape
    dx = np.zeros(shape, dtype=np.float64)
    for b, ch, oh, ow in itertools.product(*map(range, dout.shape)):
        share = float(dout[b, ch, oh, ow]) / (kernel[0] * kernel[1])
        for _, _, ih, iw, inside in window_cells(h, w, oh, ow, kernel, stride, pad):
            if inside:
                dx[b, ch, ih, iw] += share
    return dx


def conv2d(x, weight, bias, stride, pad):
    """out[n, f, y, x] = b[f] + sum over c, i, j of w[f, c, i, j] * x_padded[n, c, y*s+i, x*s+j]."""
    n, c, h, w = x.shape
    fn, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = pair(stride), pair(pad)
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    out = np.zeros((n, fn, oh, ow), dtype=np.float64)
    for ni in range(n):
        for f in range(fn):
            for y in range(oh):
                for xo in range(ow):
                    s = 0.0 if bias is None else float(bias[f])
                    for ci in range(c):
                        for i in range(kh):
                            for j in range(kw):
                                yy, xx = y * sh - ph + i, xo * sw - pw + j
                                if 0 <= yy < h and 0 <= xx < w:
                                    s += float(weight[f, ci, i, j]) * float(x[ni, ci, yy, xx])
                    out[ni, f, y, xo] = s
    return out


def assert_sum_close(actual, oracle, args, terms):
    """``actual`` against ``oracle(*args)`` computed in float64, within what
    rounding can explain and no more.

    For an op whose every output is a sum of at most ``terms`` values (each a
    float input times a positive constant), each rounded once in the output's
    dtype, the error is at most ``terms * eps * S``, S being the same op applied
    to the absolute values. So float32 is held to a few ulps of its own
    results, and a 1-ppm error (8 ulps) fails where the windows do not overlap.
    """
    def as64(a, magnitude):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return np.abs(a.astype(np.float64)) if magnitude else a.astype(np.float64)
        return a
    expected = oracle(*[as64(a, False) for a in args])
    scale = oracle(*[as64(a, True) for a in args])
    eps = np.finfo(actual.dtype).eps
    bound = terms * eps * scale + np.finfo(actual.dtype).tiny
    err = np.abs(actual.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), (
        f"error {err[worst]:.3g} at {worst} exceeds the rounding bound {bound[worst]:.3g} "
        f"({terms} terms of {actual.dtype})")
