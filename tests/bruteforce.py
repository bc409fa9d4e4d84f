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



def assert_sums_agree(actual, other, scale, terms, what="values"):
    """Two evaluations of the same sums, each rounded in its own dtype and order.

    Each output is a sum of at most ``terms`` terms whose absolute values add up
    to ``scale`` (same shape); each evaluation is within ``terms * eps * scale``
    of the exact sum (gamma_terms, eps = 2u covering the 1/(1-nu)), so the two
    differ by at most the sum of their two bounds.
    """
    actual, other = np.asarray(actual), np.asarray(other)
    eps = [np.finfo(a.dtype).eps if a.dtype.kind == "f" else 0.0 for a in (actual, other)]
    tiny = np.finfo(actual.dtype).tiny if actual.dtype.kind == "f" else 0.0
    bound = terms * (eps[0] + eps[1]) * np.asarray(scale, dtype=np.float64) + tiny
    err = np.abs(actual.astype(np.float64) - other.astype(np.float64))
    bound = np.broadcast_to(bound, err.shape)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), (
        f"{what}: difference {err[worst]:.3g} at {worst} exceeds the rounding bound "
        f"{bound[worst]:.3g} ({terms} terms, {actual.dtype} and {other.dtype})")

# --- whole networks -------------------------------------------------------------------

class NetBound:
    """What rounding can explain in a network's test-mode scores (logits), and no more.

    ``NetBound(net, x)`` evaluates ``net`` (any :class:`fastconv.Net`) on ``x``
    in float64 on the NumPy backend (``exact``, through ``net._float64_copy()``) and
    ``of(dtype)`` bounds, for each logit, the error of an evaluation in ``dtype`` (in
    any summation order: BLAS kernel family, thread count, ISA build, ONNX Runtime or
    torch), from the same parameters and the same input values.

    Derivation (first order in u, the unit roundoff; eps = 2u is charged per rounding,
    which also covers the 1/(1-nu) of gamma_n and the second-order terms):

    * Each layer l's own rounding error at its output unit z is bounded locally,
      from the exact input a of that layer: a convolution or affine unit is a sum of
      n = m + 1 terms (m = C*kh*kw or fan-in products, plus the bias), computed in any
      order with at most 2m roundings, each with a coefficient <= S = |W||a| + |b|
      (the layer on magnitudes): |error| <= n*eps*S (gamma_n). Average pooling: kk - 1
      additions and a division or a reciprocal and a product, coefficients <= the
      pooled magnitudes A: (kk+1)*eps*A. Batch norm in test mode, as
      gamma*(x-mean)/sqrt(var+e)+beta or as x*scale+shift: 6 roundings with
      coefficients <= A + |beta|, A = |gamma|(|x|+|mean|)/std. Sigmoid: exp (library,
      LIB_ULPS ulps) and two roundings, all on a value in [0, 1] (absolute bound, so
      that tanh-based forms are covered). LRN: 2*size + 2 roundings in the
      denominator d (coefficients <= d, scaled by beta in the output), a power
      (library) and a product, relative to the output. ReLU, max pooling and test-time
      dropout round nothing.
    * A local error reaches the logits through the rest of the network: to first
      order logit error = sum over layers and units of J_z * error_z, with J the exact
      Jacobian of the logit with respect to z (float64 backprop through the twin;
      those backward passes are checked against finite differences elsewhere).
      Worst case: W = sum |J_z| * local bound (every rounding error of its sign).
      The "magnitude network" (the layers on |x| with |W|) bounds the same sum
      rigorously too, but grows like sqrt(n) per layer (measured: 5e3 times the
      scores for SimpleConvNet, 1e9 for DeepConvNet), useless for deep nets.
    * Probabilistically (Higham and Mary, SIAM J. Sci. Comput. 41, 2019: rounding
      errors delta_k with |delta_k| <= u, each of mean zero given the ones before),
      sum_k c_k delta_k is a martingale, and by Azuma-Hoeffding
      |error| <= LAMBDA * u * sqrt(sum_k c_k^2) but with probability <= 2exp(-LAMBDA^2/2)
      (LAMBDA = 8: 2.5e-14 per logit). sum c_k^2 is bounded as above (m products with
      coefficient |p_i|, m additions with coefficient <= S). Library functions (exp,
      pow) may be biased, so their part stays worst case.
    * The bound is min(worst case, probabilistic + library part), per logit, plus
      the smallest normal number (underflow). Kinks: a ReLU or max pool whose exact
      input lies within rounding of its kink (or of a tie) may take the other branch;
      its unit's error is then still at most its input's (both are 1-Lipschitz),
      which first order does not see; with continuous data such units are rare and
      one unit carries a 1/sqrt(units) share of the quadrature sum.

    ``train_flg=True`` bounds the training-mode scores of a net whose dropout masks are
    frozen (``Dropout.frozen``, which the float64 twin copies); batch norm is refused there.

    Compare one evaluation with ``exact`` (``check(actual)``: allowed of(actual) +
    of(float64), the twin being a float64 evaluation too) or two evaluations with
    each other (``check(a, b)``: of(a) + of(b), each against the exact value).
    In float32 the bound is about 1e-4 of the largest score on the book's nets,
    some hundred times the errors seen; a 1e-3 relative error fails it.
    """

    LAMBDA = 8.0
    LIB_ULPS = 4  # numpy's float32/float64 exp and power: <= 4 ulps (NEP 38 SIMD loops)

    def __init__(self, net, x, train_flg=False):
        import fastconv
        import fastconv as F  # the public ops (conv2d) and layers, wherever they live
        from fastconv import (LRN, Affine, BatchNormalization, Convolution, Dropout,
                              LeakyRelu, Pooling, Relu, Sigmoid)
        twin = net._float64_copy()
        x64 = twin._input(np.asarray(x).astype(np.float64))
        with fastconv.use_backend("numpy"):  # the oracle: NumPy's kernels in float64
            self.exact = np.array(twin.predict(x64, train_flg=train_flg), dtype=np.float64)
        # The magnitudes and the Jacobian only weight the bound: on the fastest backend.
        fast = "c" if "c" in fastconv.available_backends() else "numpy"
        with fastconv.use_backend(fast):
            a = x64
            local = []  # per layer of twin._sequence: (worst, quadrature, library) or None
            shapes = {}  # id(layer) -> the shape of its input
            first = twin._sequence[0]
            for layer in twin._sequence:
                shapes[id(layer)] = a.shape
                if isinstance(layer, Convolution):
                    m = layer.W[0].size
                    args = (layer.stride, layer.pad)
                    s = F.conv2d(np.abs(a), np.abs(layer.W), np.abs(layer.b), *args)
                    p2 = F.conv2d(a * a, layer.W * layer.W, None, *args)
                    local.append(((m + 1) * s, m * s * s + p2, None))
                    a = layer.forward(a)
                elif isinstance(layer, Affine):
                    flat = a.reshape(len(a), -1)
                    m = layer.W.shape[0]
                    s = np.abs(flat) @ np.abs(layer.W) + np.abs(layer.b)
                    p2 = (flat * flat) @ (layer.W * layer.W)
                    local.append(((m + 1) * s, m * s * s + p2, None))
                    a = layer.forward(a)
                elif isinstance(layer, Pooling) and layer.mode == "avg":
                    kk = layer.pool_h * layer.pool_w
                    s = layer.forward(np.abs(a))
                    local.append(((kk + 1) * s, (kk + 1) * s * s, None))
                    a = layer.forward(a)
                elif isinstance(layer, BatchNormalization):
                    if train_flg:
                        raise TypeError("NetBound bounds batch norm in test mode only")
                    shape = (1, -1) if a.ndim == 2 else (1, -1, 1, 1)
                    std = np.sqrt(layer.running_var.reshape(shape) + layer.eps)
                    s = (np.abs(layer.gamma.reshape(shape))
                         * (np.abs(a) + np.abs(layer.running_mean.reshape(shape))) / std
                         + np.abs(layer.beta.reshape(shape)))
                    local.append((6 * s, 6 * s * s, None))
                    a = layer.forward(a, False)
                elif isinstance(layer, Sigmoid):
                    a = layer.forward(a)
                    one = np.ones_like(a)
                    local.append((2 * one, 2 * one, self.LIB_ULPS * one))
                    a = a.copy()  # Sigmoid.backward reads its own output
                elif isinstance(layer, LRN):
                    a = layer.forward(a)
                    s = np.abs(a)
                    rounds = 2 * layer.size + 2
                    local.append(((layer.beta * rounds + 1) * s,
                                  (layer.beta ** 2 * rounds + 1) * s * s, self.LIB_ULPS * s))
                elif isinstance(layer, Dropout):
                    a = layer.forward(a, train_flg)
                    # In training (frozen masks): x * mask exact, times 1/(1-ratio) rounded.
                    local.append((np.abs(a), np.abs(a) ** 2, None) if train_flg else None)
                elif isinstance(layer, LeakyRelu):  # slope * x rounded once where x <= 0
                    a = layer.forward(a)
                    local.append((np.abs(a), np.abs(a) ** 2, None))
                elif isinstance(layer, (Relu, Pooling)):  # exact: max(x, 0), max pooling
                    local.append(None)
                    a = layer.forward(a)
                else:
                    raise TypeError(f"NetBound knows no rounding bound for {layer!r}")
            n, k = self.exact.shape
            self.worst = np.zeros((n, k))   # in units of eps
            self.quad = np.zeros((n, k))    # sum of c_k^2, in units of u^2
            self.lib = np.zeros((n, k))     # in units of eps
            for j in range(k):
                d = np.zeros((n, k))
                d[:, j] = 1.0
                for layer, parts in zip(reversed(twin._sequence), reversed(local)):
                    if parts is not None:
                        axes = tuple(range(1, d.ndim))
                        worst, quad, lib = parts
                        self.worst[:, j] += np.sum(np.abs(d) * worst, axis=axes)
                        self.quad[:, j] += np.sum(d * d * quad, axis=axes)
                        if lib is not None:
                            self.lib[:, j] += np.sum(np.abs(d) * lib, axis=axes)
                    if layer is first:
                        break
                    # Only the gradient with respect to the input is needed: no dW.
                    if isinstance(layer, Convolution):
                        d = F.conv2d_input_grad(d, layer.W, shapes[id(layer)], layer.stride,
                                                layer.pad)
                    elif isinstance(layer, Affine):
                        d = (d @ layer.W.T).reshape(shapes[id(layer)])
                    else:  # the layer may overwrite d, which is used up
                        d = layer.backward(d)

    def of(self, dtype):
        """Per logit, a bound on |an evaluation in dtype - the exact scores|."""
        info = np.finfo(dtype)
        worst = self.worst * info.eps
        likely = self.LAMBDA * (info.eps / 2) * np.sqrt(self.quad) + self.lib * info.eps
        return np.minimum(worst, likely) + info.tiny

    def check(self, actual, expected=None, rows=slice(None), what="scores"):
        """Assert |actual - expected| <= of(actual) + of(expected) on ``rows`` of
        the batch; ``expected`` None is ``exact`` (a float64 evaluation)."""
        actual = np.asarray(actual)
        other = self.exact[rows] if expected is None else np.asarray(expected)
        allowed = self.of(actual.dtype)[rows] + self.of(other.dtype)[rows]
        assert actual.shape == other.shape == allowed.shape, (actual.shape, other.shape)
        err = np.abs(actual.astype(np.float64) - other.astype(np.float64))
        worst = np.unravel_index(np.argmax(err - allowed), err.shape)
        assert np.all(err <= allowed), (
            f"{what}: error {err[worst]:.3g} at {worst} exceeds the rounding bound "
            f"{allowed[worst]:.3g} ({actual.dtype} against {other.dtype}; "
            f"score {self.exact[rows][worst]:.4g}, largest {np.abs(self.exact).max():.4g})")
