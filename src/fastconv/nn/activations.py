"""Elementwise activations and their layer types (``relu``, ``sigmoid``, ``leaky_relu``)."""
import numpy as np

from .arrays import as_float
from .registry import LayerType, register

__all__ = ["Relu", "Sigmoid", "LeakyRelu", "ReluType", "SigmoidType", "LeakyReluType"]


class Relu:
    """The rectifier max(x, 0), elementwise; any shape, keeps the float dtype.

    Parameters
    ----------
    inplace : bool, default False
        As ``torch.nn.ReLU(inplace=True)``: overwrite the input in forward and
        ``dout`` in backward instead of allocating new arrays; a network sets it
        where it owns those arrays.
    """

    def __init__(self, inplace=False):
        self.inplace = inplace
        self.mask = None

    def forward(self, x):
        x = as_float(x)
        self.mask = x > 0
        if self.inplace:
            return np.maximum(x, 0, out=x)
        return np.maximum(x, 0)

    def infer(self, x):
        """``forward`` without the mask backward would need."""
        x = as_float(x)
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
    """The logistic function 1 / (1 + exp(-x)), elementwise; any shape, keeps the float dtype.
    """

    def __init__(self):
        self.out = None

    def forward(self, x):
        x = as_float(x)
        # exp of a non-positive number never overflows, whatever the sign of x.
        e = np.exp(-np.abs(x))
        self.out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def infer(self, x):
        """``forward`` that keeps nothing for backward."""
        x = as_float(x)
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))

    def backward(self, dout):
        return dout * self.out * (1 - self.out)

    def __repr__(self):
        return "Sigmoid()"


@register
class ReluType(LayerType):
    """``{"type": "relu"}``: a :class:`Relu`."""

    kind, prefix = "relu", "Relu"
    layer_class = Relu

    def build(self, options, shape, make):
        return Relu()

    def onnx(self, graph, name, x, layer, shape):
        return graph.node("Relu", [x], name)

    def torch_module(self, nn, options, entry, eps):
        return nn.ReLU()


@register
class SigmoidType(LayerType):
    """``{"type": "sigmoid"}``: a :class:`Sigmoid`."""

    kind, prefix = "sigmoid", "Sigmoid"
    layer_class = Sigmoid

    def build(self, options, shape, make):
        return Sigmoid()

    def onnx(self, graph, name, x, layer, shape):
        return graph.node("Sigmoid", [x], name)

    def torch_module(self, nn, options, entry, eps):
        return nn.Sigmoid()


class LeakyRelu:
    """The leaky rectifier, as ``torch.nn.LeakyReLU``: ``x`` where x > 0, else ``negative_slope * x``.

    Any shape; keeps the float dtype. A NaN stays NaN.

    Parameters
    ----------
    negative_slope : float, default 0.01
        The slope for negative inputs.
    """

    def __init__(self, negative_slope=0.01):
        if isinstance(negative_slope, (bool, str, bytes)) or not np.isscalar(negative_slope) \
                or not np.isfinite(negative_slope):
            raise TypeError(f"negative_slope must be a finite number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self.mask = None

    def _apply(self, x, mask):
        out = x * self.negative_slope
        np.copyto(out, x, where=mask)
        return out

    def forward(self, x):
        x = as_float(x)
        self.mask = x > 0
        return self._apply(x, self.mask)

    def infer(self, x):
        """``forward`` without the mask backward would need."""
        x = as_float(x)
        return self._apply(x, x > 0)

    def backward(self, dout):
        return self._apply(as_float(dout), self.mask)

    def __repr__(self):
        return f"LeakyRelu(negative_slope={self.negative_slope})"


@register
class LeakyReluType(LayerType):
    """``{"type": "leaky_relu", "negative_slope": 0.01}``: a :class:`LeakyRelu`."""

    kind, prefix = "leaky_relu", "LeakyRelu"
    layer_class = LeakyRelu
    keys = {"negative_slope": 0.01}

    def build(self, options, shape, make):
        return LeakyRelu(options["negative_slope"])

    def onnx(self, graph, name, x, layer, shape):
        return graph.node("LeakyRelu", [x], name, alpha=layer.negative_slope)

    def torch_module(self, nn, options, entry, eps):
        return nn.LeakyReLU(float(options["negative_slope"]))
