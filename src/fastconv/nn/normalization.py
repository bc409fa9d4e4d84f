"""Normalisation layers and their layer types: batch norm (``batchnorm``) and
local response normalisation (``lrn``)."""
import numpy as np

from .arrays import as_float
from .registry import LayerType, Param, register
from ..ops.window import positive_int

__all__ = ["BatchNormalization", "LRN", "BatchNormType", "LRNType"]


class BatchNormalization:
    """Batch normalisation (Ioffe and Szegedy, 2015).

    Parameters
    ----------
    gamma, beta : ndarray
        Scale and shift (D,): per feature for x (N, D), per channel for
        x (N, C, H, W), with statistics over N, H and W as in
        ``torch.nn.BatchNorm2d`` (the book flattens 4-D input and normalises
        each of the C*H*W features separately).
    momentum : float, default 0.9
        Weight of the old running statistics.
    running_mean, running_var : ndarray, optional
        Shape (D,), default zeros and ones (the book starts the variance at
        zero, which blows up a test-mode forward before any training). Training
        updates them in place, with the biased batch variance as the book does.
    eps : float, default 1e-6
        Added to the variance (the book's ``10e-7``).

    Notes
    -----
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
        x = as_float(x, self.gamma.dtype)
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

    def infer(self, x):
        """The test-mode forward (running statistics), keeping nothing."""
        x = as_float(x, self.gamma.dtype)
        _, shape = self._layout(x)
        std = np.sqrt(self.running_var.reshape(shape) + self.eps)
        return (self.gamma.reshape(shape) * ((x - self.running_mean.reshape(shape)) / std)
                + self.beta.reshape(shape))

    def backward(self, dout):
        dout = as_float(dout, self.gamma.dtype)
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

    Parameters
    ----------
    size : int, default 5
        Number of channels in the window.
    alpha, beta, k : float
        The formula's constants, default 1e-4, 0.75 and 2.0.

    Notes
    -----
    ``forward(x)`` takes x (N, C, ...) and keeps its shape and float dtype.
    The backward is exact, including the terms through the neighbours' sums.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        self.size = positive_int(size, "size", integral_floats=True)
        # Python floats: a NumPy float64 scalar would upcast float32 arrays.
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)
        self.x = None
        self.denom = None
        self.scale = None

    def forward(self, x):
        x = as_float(x)
        if x.ndim < 2:
            raise ValueError(f"LRN expects x of shape (N, C, ...), got {x.shape}")
        s = self.size
        self.denom = self.k + (self.alpha / s) * _channel_window_sum(x * x, s // 2, (s - 1) // 2)
        self.scale = self.denom ** -self.beta
        self.x = x
        return x * self.scale

    def infer(self, x):
        """``forward`` that keeps nothing for backward."""
        x = as_float(x)
        if x.ndim < 2:
            raise ValueError(f"LRN expects x of shape (N, C, ...), got {x.shape}")
        s = self.size
        denom = self.k + (self.alpha / s) * _channel_window_sum(x * x, s // 2, (s - 1) // 2)
        return x * denom ** -self.beta

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


@register
class BatchNormType(LayerType):
    """``{"type": "batchnorm", "momentum": 0.9}``: a :class:`BatchNormalization`
    per channel of image maps (per feature of vectors), gamma ones, beta zeros."""

    kind, prefix = "batchnorm", "BatchNorm"
    layer_class = BatchNormalization
    keys = {"momentum": 0.9}
    params = (Param("gamma"), Param("beta"))
    takes_train_flag = fresh_output = True

    def out_shape(self, options, shape, where):
        return shape, [(shape[0],), (shape[0],)]

    def build(self, options, shape, make):
        c = shape[0]
        return BatchNormalization(make.ones(c), make.zeros(c), momentum=options["momentum"])

    def onnx(self, graph, name, x, layer, shape):
        return _batchnorm_onnx(graph, name, x, layer, 1 + len(shape))

    def torch_module(self, nn, options, entry, eps):
        norm = nn.BatchNorm2d if len(entry["in"]) == 3 else nn.BatchNorm1d
        # torch weighs the new statistics by momentum, fastconv the old ones.
        return norm(entry["in"][0], eps=eps, momentum=round(1.0 - float(options["momentum"]), 12))

    def torch_state(self, layer):
        return [("weight", layer.gamma, False), ("bias", layer.beta, False),
                ("running_mean", layer.running_mean, False),
                ("running_var", layer.running_var, False)]


@register
class LRNType(LayerType):
    """``{"type": "lrn", "size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}``: an :class:`LRN`."""

    kind, prefix = "lrn", "LRN"
    layer_class = LRN
    keys = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}

    def build(self, options, shape, make):
        return LRN(**options)

    def onnx(self, graph, name, x, layer, shape):
        return _lrn_onnx(graph, name, x, layer, shape[0])

    def torch_module(self, nn, options, entry, eps):
        lrn = LRN(**options)
        return nn.LocalResponseNorm(lrn.size, lrn.alpha, lrn.beta, lrn.k)


# ONNX's BatchNormalization takes (N, C, ...); on (N, D) some runtimes refuse
# it, so the test-mode formula is written out. ONNX's LRN centres an even
# window one channel later than fastconv (and PyTorch) do, so an even size
# becomes its formula: a 1x1 Conv summing the squares over a band of channels,
# then Add, Pow and Div.

def _batchnorm_onnx(g, name, x, layer, ndim):
    if ndim == 4:
        return g.node("BatchNormalization",
                      [x, g.const(f"{name}.gamma", layer.gamma),
                       g.const(f"{name}.beta", layer.beta),
                       g.const(f"{name}.running_mean", layer.running_mean),
                       g.const(f"{name}.running_var", layer.running_var)],
                      name, epsilon=float(layer.eps))
    # BatchNormalization's input is (N, C, ...); on (N, D) some runtimes
    # refuse it, so write the test-mode formula out.
    std = np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
    centred = g.node("Sub", [x, g.const(f"{name}.running_mean", layer.running_mean)],
                     f"{name}.centred")
    scaled = g.node("Mul", [centred, g.const(f"{name}.scale", layer.gamma / std)],
                    f"{name}.scaled")
    return g.node("Add", [scaled, g.const(f"{name}.beta", layer.beta)], name)


def _lrn_onnx(g, name, x, layer, channels):
    s = layer.size
    if s % 2:
        return g.node("LRN", [x], name, size=s, alpha=layer.alpha, beta=layer.beta,
                      bias=layer.k)
    # band[c, j] = 1 when channel j lies in c's window, c - s//2 .. c + (s-1)//2.
    c = np.arange(channels)
    offset = c[None, :] - c[:, None]
    band = ((offset >= -(s // 2)) & (offset <= (s - 1) // 2)).astype(np.float64)
    squares = g.node("Mul", [x, x], f"{name}.squares")
    sums = g.node("Conv", [squares, g.const(f"{name}.band", band[:, :, None, None])],
                  f"{name}.sums", kernel_shape=[1, 1])
    scaled = g.node("Mul", [sums, g.const(f"{name}.alpha", np.array(layer.alpha / s))],
                    f"{name}.scaled")
    shifted = g.node("Add", [scaled, g.const(f"{name}.k", np.array(layer.k))], f"{name}.denom")
    powered = g.node("Pow", [shifted, g.const(f"{name}.beta", np.array(layer.beta))],
                     f"{name}.power")
    return g.node("Div", [x, powered], name)
