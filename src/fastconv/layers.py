"""The layers of "Deep Learning from Scratch" (chapters 5-8), plus LRN.

Every layer has ``forward`` and ``backward``; ``backward(dout)`` returns the
gradient with respect to the input of the last ``forward`` and leaves the
parameter gradients in ``dW``/``db`` (``dgamma``/``dbeta`` for batch norm).

Layers with parameters keep references to the arrays they were given, so an
optimiser that updates ``network.params`` in place updates the layers too.
Their compute dtype is the dtype of their parameters: an input of another
dtype is cast to it, and float32 stays float32 throughout. Layers without
parameters keep the dtype of their (float32 or float64) input.

Shapes are NCHW for images and (N, D) for vectors.
"""
import math

import numpy as np

from . import functional as F
from .ops import conv as _conv
from .ops import validate as V

__all__ = [
    "Convolution", "Pooling", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss",
    "Dropout", "BatchNormalization", "LRN",
]


def _as_float(x, dtype=None):
    """x as an array of ``dtype``, or of its own float dtype (float64 for ints).

    Strings, objects and complex numbers are refused rather than cast: a cast
    would fail obscurely, or silently drop the imaginary part.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be a real numeric array, got dtype {x.dtype}")
    if dtype is not None:
        return x.astype(dtype, copy=False)
    if x.dtype.kind != "f":
        return x.astype(np.float64)
    return x


def _shown(value):
    """An int or (h, w) argument as the repr shows it: 2 for (2, 2)."""
    h, w = value if isinstance(value, (tuple, list)) else (value, value)
    return h if h == w else (h, w)


def _bias(b, size, dtype):
    """A bias as given, or a scalar one (the book's ``Convolution(W, 0)``)
    spread to one value per unit."""
    if np.ndim(b) == 0:
        return np.full(size, b, dtype=dtype)
    return b


class Convolution:
    """2-D convolution (cross-correlation) of a batch with a bank of filters.

    Parameters
    ----------
    W : array (FN, C, FH, FW), float32 or float64 -- the filters
    b : array (FN,) -- one bias per filter; a scalar is spread to all filters
    stride, pad : int or (h, w)

    ``forward(x)`` takes x (N, C, H, W) and returns (N, FN, OH, OW) with
    ``OH = (H + 2*pad - FH) // stride + 1``, in W's dtype. It is
    :func:`fastconv.functional.conv2d_forward`, which also chooses the
    algorithm (:func:`fastconv.functional.conv_plan`); ``backward`` is
    :func:`fastconv.functional.conv2d_backward`. The layer keeps only the
    context between the two, and backward's result never depends on writes
    the caller makes to x after forward.

    Set ``needs_input_grad = False`` on a first layer: ``backward`` then
    computes only ``dW`` and ``db`` and returns None, skipping the costliest
    half of the pass (as PyTorch does for inputs that need no gradient).
    """

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = _bias(b, W.shape[0], W.dtype)
        self.stride = stride
        self.pad = pad
        self.needs_input_grad = True
        # A network sets this on inner layers, whose input nobody else holds:
        # forward then keeps x itself instead of a copy.
        self.input_is_private = False
        self.dW = None
        self.db = None
        self._ctx = None
        self._infer_ctx = None
        self._window = None  # ((fh, fw, stride, pad), its Window), built once

    def _arguments(self, x):
        """The one check of a call: x, and the parameters as they are now
        (the book's code may have rebound W or b); then the cores run."""
        w = self.W
        if not isinstance(w, np.ndarray) or w.ndim != 4 or w.dtype.kind != "f":
            w = V.float_array(w, "W", (4,), "4-D (FN, C, FH, FW)")
        fn, c, fh, fw = w.shape
        original = x
        x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
        _conv.check_channels(x, w, "W")
        dtype = w.dtype
        x = x.astype(dtype, copy=False)
        w = np.ascontiguousarray(w)
        b = np.ascontiguousarray(_bias(self.b, fn, dtype), dtype=dtype)
        if b.shape != (fn,):
            raise ValueError(f"b must have shape ({fn},) or be a scalar, got {b.shape}")
        key = (fh, fw, self.stride, self.pad)
        if self._window is None or self._window[0] != key:
            self._window = (key, _conv.conv_window(fh, fw, self.stride, self.pad, "W"))
        win = self._window[1]
        win.out_size(*x.shape[2:])  # a window larger than the padded image is refused here
        shared = isinstance(original, np.ndarray) and np.may_share_memory(x, original)
        return x, w, b, win, not shared

    def forward(self, x):
        x, w, b, win, fresh = self._arguments(x)
        out, self._ctx = _conv.forward_core(x, w, b, win, ctx=self._ctx,
                                            x_is_private=fresh or self.input_is_private)
        return out

    def infer(self, x, relu=False):
        """``forward`` that keeps nothing for backward (test-time prediction);
        its scratch memory is its own, so a pending backward is not disturbed.
        ``relu`` applies the ReLU that follows in the same pass."""
        x, w, b, win, _ = self._arguments(x)
        out, self._infer_ctx = _conv.forward_core(x, w, b, win, ctx=self._infer_ctx,
                                                  keep=False, relu=relu)
        return out

    def backward(self, dout):
        dx, self.dW, self.db = F.conv2d_backward(self._ctx, dout,
                                                 input_grad=self.needs_input_grad)
        return dx

    @property
    def plan(self):
        """The algorithm the last forward ran (see :func:`fastconv.ops.conv_plan`)."""
        return self._ctx.plan_name if self._ctx is not None else None

    def __repr__(self):
        fn, c, fh, fw = self.W.shape
        return (f"Convolution({c}->{fn}, {fh}x{fw}, stride={_shown(self.stride)}, "
                f"pad={_shown(self.pad)}, dtype={self.W.dtype})")


class Pooling:
    """Max or average pooling over pool_h x pool_w windows.

    Parameters
    ----------
    pool_h, pool_w : int
    stride : int or (h, w), default 2. The book's ``common/layers.py`` has
        stride=1 (read at its commits 0781cbef and 751d55dc), but every network
        in the book passes stride=2 for its 2x2 windows, which is what this
        default gives
    pad : int or (h, w), at most half the window
    mode : "max" or "avg". Average pooling divides by pool_h*pool_w, padding
        counting as zeros.

    ``forward(x)`` maps (N, C, H, W) to (N, C, OH, OW) with
    ``OH = (H + 2*pad - pool_h) // stride + 1``. The book's Pooling leaves
    ``pad`` out of that size and crashes when pad > 0; this one pads as meant.
    Padded cells never win a max. Keeps x's float dtype.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0, mode="max"):
        if mode not in ("max", "avg"):
            raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.mode = mode
        self.x_shape = None
        self.arg_max = None

    def forward(self, x):
        window = (self.pool_h, self.pool_w)
        if self.mode == "max":
            out, self.arg_max = F.max_pool2d(x, window, self.stride, self.pad,
                                             return_indices=True)
        else:
            out = F.avg_pool2d(x, window, self.stride, self.pad)
        self.x_shape = np.shape(x)
        return out

    def infer(self, x):
        """``forward`` without the indices backward would need."""
        window = (self.pool_h, self.pool_w)
        if self.mode == "max":
            return F.max_pool2d(x, window, self.stride, self.pad)
        return F.avg_pool2d(x, window, self.stride, self.pad)

    def backward(self, dout):
        if self.mode == "max":
            return F.max_pool2d_backward(dout, self.arg_max, self.x_shape)
        return F.avg_pool2d_backward(dout, self.x_shape, (self.pool_h, self.pool_w),
                                     self.stride, self.pad)

    def __repr__(self):
        return (f"Pooling({self.pool_h}, {self.pool_w}, stride={_shown(self.stride)}, "
                f"pad={_shown(self.pad)}, mode={self.mode!r})")


class Relu:
    """max(x, 0), elementwise; any shape, keeps the float dtype.

    ``inplace=True`` (as ``torch.nn.ReLU(inplace=True)``) overwrites the input
    in forward and ``dout`` in backward instead of allocating new arrays; a
    network sets it where it owns those arrays.
    """

    def __init__(self, inplace=False):
        self.inplace = inplace
        self.mask = None

    def forward(self, x):
        x = _as_float(x)
        self.mask = x > 0
        if self.inplace:
            return np.maximum(x, 0, out=x)
        return np.maximum(x, 0)

    def infer(self, x):
        """``forward`` without the mask backward would need."""
        x = _as_float(x)
        return np.maximum(x, 0, out=x) if self.inplace else np.maximum(x, 0)

    def backward(self, dout):
        # A product with the boolean mask, not np.where: numpy's masked
        # select is about 20x slower (measured on SimpleConvNet's 1.7M-value
        # maps). A NaN or inf in dout where x <= 0 therefore becomes NaN, not 0.
        if self.inplace and isinstance(dout, np.ndarray) and dout.flags.writeable:
            return np.multiply(dout, self.mask, out=dout)
        return dout * self.mask

    def __repr__(self):
        return "Relu(inplace=True)" if self.inplace else "Relu()"


class Sigmoid:
    """1 / (1 + exp(-x)), elementwise; any shape, keeps the float dtype."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        x = _as_float(x)
        # exp of a non-positive number never overflows, whatever the sign of x.
        e = np.exp(-np.abs(x))
        self.out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)

    def __repr__(self):
        return "Sigmoid()"


class Affine:
    """x @ W + b.

    Parameters
    ----------
    W : array (D, M), float32 or float64
    b : array (M,), or a scalar spread to all M outputs

    ``forward(x)`` takes x (N, D), or (N, ...) with D elements per sample
    (e.g. (N, C, H, W) feature maps, which it flattens), and returns (N, M).
    ``backward`` returns dx in x's original shape. Computes in W's dtype.
    """

    def __init__(self, W, b):
        self.W = W
        self.b = _bias(b, W.shape[1], W.dtype)
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        x = _as_float(x, self.W.dtype)
        if x.ndim < 1:
            raise ValueError(f"Affine expects x of shape (N, ...), got {x.shape}")
        self.original_x_shape = x.shape
        x = x.reshape(len(x), math.prod(x.shape[1:]))
        if x.shape[1] != self.W.shape[0]:
            raise ValueError(f"Affine expects {self.W.shape[0]} features per sample, "
                             f"got x of shape {self.original_x_shape}")
        self.x = x
        out = F.matmul(x, self.W)
        out += self.b
        return out

    def infer(self, x):
        """``forward`` that keeps no reference to x."""
        x = _as_float(x, self.W.dtype)
        if x.ndim < 1 or math.prod(x.shape[1:]) != self.W.shape[0]:
            raise ValueError(f"Affine expects {self.W.shape[0]} features per sample, "
                             f"got x of shape {x.shape}")
        out = F.matmul(x.reshape(len(x), self.W.shape[0]), self.W)
        out += self.b
        return out

    def backward(self, dout):
        dout = _as_float(dout, self.W.dtype)
        dx = F.matmul(dout, self.W.T)
        self.dW = F.matmul(self.x.T, dout)
        self.db = dout.sum(axis=0)
        return dx.reshape(self.original_x_shape)

    def __repr__(self):
        return f"Affine({self.W.shape[0]}->{self.W.shape[1]}, dtype={self.W.dtype})"


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss, averaged over the batch.

    ``forward(x, t)``: x (N, K) scores; t either (N,) (or (N, 1)) integer
    class labels in ``[0, K)`` or (N, K) one-hot (or any probability) rows. Returns the mean
    loss as a scalar of x's dtype. The log-softmax is computed as
    ``x - max - log(sum(exp(x - max)))``, which never overflows nor takes the
    log of zero. ``backward(dout=1)`` returns ``dout * (softmax(x) - t) / N``.
    """

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        x = _as_float(x)
        if x.ndim != 2:
            raise ValueError(f"SoftmaxWithLoss expects scores of shape (N, K), got {x.shape}")
        n, k = x.shape
        t = np.asarray(t)
        shifted = x - x.max(axis=1, keepdims=True)
        log_y = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.y = np.exp(log_y)
        if t.shape == x.shape:
            t = t.astype(x.dtype, copy=False)
            loss = -(t * log_y).sum() / n
        elif t.size == n and t.ndim <= 2:
            t = t.reshape(n)  # the book's gradient check passes labels as (N, 1)
            if t.dtype.kind not in "iu":
                raise TypeError(f"integer labels must have an integer dtype, got {t.dtype}")
            if t.size and (t.min() < 0 or t.max() >= k):
                raise ValueError(f"labels must lie in [0, {k}), got values in "
                                 f"[{t.min()}, {t.max()}]")
            loss = -log_y[np.arange(n), t].sum() / n
        else:
            raise ValueError(f"t must have shape ({n},) or {x.shape}, got {t.shape}")
        self.t = t
        self.loss = x.dtype.type(loss)
        return self.loss

    def backward(self, dout=1):
        n = self.y.shape[0]
        if self.t.ndim == 2:
            dx = self.y - self.t
        else:
            dx = self.y.copy()
            dx[np.arange(n), self.t] -= 1
        dx *= dout / n
        return dx

    def __repr__(self):
        return "SoftmaxWithLoss()"


class Dropout:
    """Inverted dropout: zero each input with probability ``dropout_ratio``.

    In training (``forward(x, train_flg=True)``) the kept values are scaled by
    ``1 / (1 - dropout_ratio)``, so that at test time the layer is the identity.
    The book's Dropout is not inverted (it scales by ``1 - dropout_ratio`` at
    test time instead); the expected outputs agree, the arithmetic does not.

    Parameters
    ----------
    dropout_ratio : float in [0, 1)
    seed, rng : where the masks come from; ``rng`` (a numpy Generator) wins
    mask : optional fixed boolean keep-mask. Given one, the layer is
        ``frozen``: every training forward reuses ``self.mask``.

    ``frozen`` may also be set to True after a forward: the next forwards then
    reuse the last mask (this makes finite-difference checks deterministic).
    """

    def __init__(self, dropout_ratio=0.5, *, seed=None, rng=None, mask=None):
        if isinstance(dropout_ratio, (str, bytes)) or not np.isscalar(dropout_ratio):
            raise TypeError(f"dropout_ratio must be a number in [0, 1), got {dropout_ratio!r}")
        if not 0 <= dropout_ratio < 1:
            raise ValueError(f"dropout_ratio must lie in [0, 1), got {dropout_ratio!r}")
        self.dropout_ratio = float(dropout_ratio)
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)
        self.frozen = mask is not None
        self._train = True

    def forward(self, x, train_flg=True):
        x = _as_float(x)
        self._train = train_flg
        if not train_flg:
            return x
        if not self.frozen or self.mask is None:
            self.mask = self.rng.random(x.shape) >= self.dropout_ratio
        elif self.mask.shape != x.shape:
            raise ValueError(f"the fixed dropout mask has shape {self.mask.shape}, "
                             f"x has shape {x.shape}")
        out = x * self.mask
        out *= 1 / (1 - self.dropout_ratio)
        return out

    def backward(self, dout):
        if not self._train:
            return dout
        dx = dout * self.mask
        dx *= 1 / (1 - self.dropout_ratio)
        return dx

    def __repr__(self):
        return f"Dropout(dropout_ratio={self.dropout_ratio})"


class BatchNormalization:
    """Batch normalisation (Ioffe and Szegedy, 2015).

    Parameters
    ----------
    gamma, beta : arrays (D,) -- per feature for x (N, D), per channel for
        x (N, C, H, W), with statistics over N, H and W as in
        ``torch.nn.BatchNorm2d`` (the book flattens 4-D input and normalises
        each of the C*H*W features separately)
    momentum : weight of the old running statistics
    running_mean, running_var : arrays (D,), default zeros and ones (the book
        starts the variance at zero, which blows up a test-mode forward before
        any training). Training updates them in place, with the biased batch
        variance as the book does.
    eps : added to the variance, 1e-6 (the book's ``10e-7``)

    ``forward(x, train_flg=True)`` normalises with the batch statistics in
    training and with the running ones otherwise. Computes in gamma's dtype.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None,
                 *, eps=1e-6):
        self.gamma = gamma
        self.beta = beta
        self.momentum = float(momentum)
        self.eps = float(eps)
        # In gamma's dtype, which they would otherwise upcast in test mode.
        self.running_mean = (np.zeros_like(gamma) if running_mean is None
                             else np.asarray(running_mean, dtype=gamma.dtype))
        self.running_var = (np.ones_like(gamma) if running_var is None
                            else np.asarray(running_var, dtype=gamma.dtype))
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None
        self._train = True
        self._axes = None

    def _layout(self, x):
        if x.ndim == 2:
            axes, shape = (0,), (1, -1)
        elif x.ndim == 4:
            axes, shape = (0, 2, 3), (1, -1, 1, 1)
        else:
            raise ValueError(f"BatchNormalization expects x of shape (N, D) or (N, C, H, W), "
                             f"got {x.shape}")
        if x.shape[1] != self.gamma.size:
            raise ValueError(f"x has {x.shape[1]} features/channels, gamma has {self.gamma.size}")
        return axes, shape

    def forward(self, x, train_flg=True):
        x = _as_float(x, self.gamma.dtype)
        axes, shape = self._layout(x)
        # An empty batch has no statistics: normalise it (to nothing) with the
        # running ones rather than fold NaN means into them.
        if train_flg and len(x):
            mu = x.mean(axis=axes, keepdims=True)
            xc = x - mu
            var = np.mean(xc * xc, axis=axes, keepdims=True)
            std = np.sqrt(var + self.eps)
            m = self.momentum
            self.running_mean *= m
            self.running_mean += (1 - m) * mu.reshape(-1)
            self.running_var *= m
            self.running_var += (1 - m) * var.reshape(-1)
        else:
            xc = x - self.running_mean.reshape(shape)
            std = np.sqrt(self.running_var.reshape(shape) + self.eps)
        self.xn = xc / std
        self.std = std
        self._train = train_flg and len(x) > 0
        self._axes = axes
        return self.gamma.reshape(shape) * self.xn + self.beta.reshape(shape)

    def backward(self, dout):
        dout = _as_float(dout, self.gamma.dtype)
        axes, xn = self._axes, self.xn
        shape = (1, -1) if xn.ndim == 2 else (1, -1, 1, 1)
        self.dbeta = dout.sum(axis=axes)
        self.dgamma = (dout * xn).sum(axis=axes)
        dxn = dout * self.gamma.reshape(shape)
        if not self._train:
            return dxn / self.std
        # The mean and the variance depend on every x: their two terms.
        return (dxn - dxn.mean(axis=axes, keepdims=True)
                - xn * np.mean(dxn * xn, axis=axes, keepdims=True)) / self.std

    def __repr__(self):
        return f"BatchNormalization({self.gamma.size}, momentum={self.momentum})"


def _channel_window_sum(a, before, after):
    """out[:, c] = a[:, c-before] + ... + a[:, c+after], missing channels as zero."""
    channels = a.shape[1]
    widths = [(0, 0)] * a.ndim
    widths[1] = (before, after)
    padded = np.pad(a, widths)
    out = padded[:, :channels].copy()
    for i in range(1, before + after + 1):
        out += padded[:, i:i + channels]
    return out


class LRN:
    """Local response normalisation across channels (AlexNet, section 3.3).

    ``b_c = a_c / (k + alpha/size * sum of a_j**2 over the size channels
    around c) ** beta``, the window running from ``c - size//2`` to
    ``c + (size-1)//2`` and clipped at the ends: the formula of
    ``torch.nn.LocalResponseNorm`` (whose default k is 1.0, not AlexNet's 2).

    ``forward(x)`` takes x (N, C, ...) and keeps its shape and float dtype.
    The backward is exact, including the terms through the neighbours' sums.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        if isinstance(size, (str, bytes)) or not np.isscalar(size) or int(size) != size \
                or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.size = int(size)
        # Python floats: a NumPy float64 scalar would upcast float32 arrays.
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)
        self.x = None
        self.denom = None
        self.scale = None

    def forward(self, x):
        x = _as_float(x)
        if x.ndim < 2:
            raise ValueError(f"LRN expects x of shape (N, C, ...), got {x.shape}")
        s = self.size
        self.denom = self.k + (self.alpha / s) * _channel_window_sum(x * x, s // 2, (s - 1) // 2)
        self.scale = self.denom ** -self.beta
        self.x = x
        return x * self.scale

    def backward(self, dout):
        s, x = self.size, self.x
        dx = dout * self.scale
        # Channel j enters the sums of channels j-(s-1)//2 .. j+s//2: the
        # mirror image of the forward window.
        t = dout * x * self.scale / self.denom
        dx += (-2 * self.alpha * self.beta / s) * x * _channel_window_sum(t, (s - 1) // 2, s // 2)
        return dx

    def __repr__(self):
        return f"LRN(size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k})"
