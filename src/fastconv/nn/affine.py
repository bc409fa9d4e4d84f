"""The fully connected layer and its layer type (``{"type": "affine", ...}``)."""
import math

from ..ops.dense import matmul
from ..ops.window import positive_int
from .arrays import as_float, spread_bias
from .registry import LayerType, Param, register

__all__ = ["Affine", "AffineType"]


class Affine:
    """The fully connected layer ``x @ W + b``.

    Parameters
    ----------
    W : ndarray
        Weights (D, M), float32 or float64.
    b : ndarray or float
        Bias (M,), or a scalar spread to all M outputs.

    Notes
    -----
    ``forward(x)`` takes x (N, D), or (N, ...) with D elements per sample
    (e.g. (N, C, H, W) feature maps, which it flattens), and returns (N, M).
    ``backward`` returns dx in x's original shape. Computes in W's dtype.
    """

    def __init__(self, W, b):
        self.W = W
        self.b = spread_bias(b, W.shape[1], W.dtype)
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        x = as_float(x, self.W.dtype)
        if x.ndim < 1:
            raise ValueError(f"Affine expects x of shape (N, ...), got {x.shape}")
        self.original_x_shape = x.shape
        x = x.reshape(len(x), math.prod(x.shape[1:]))
        if x.shape[1] != self.W.shape[0]:
            raise ValueError(f"Affine expects {self.W.shape[0]} features per sample, "
                             f"got x of shape {self.original_x_shape}")
        self.x = x
        out = matmul(x, self.W)
        out += self.b
        return out

    def infer(self, x):
        """``forward`` that keeps no reference to x."""
        x = as_float(x, self.W.dtype)
        if x.ndim < 1 or math.prod(x.shape[1:]) != self.W.shape[0]:
            raise ValueError(f"Affine expects {self.W.shape[0]} features per sample, "
                             f"got x of shape {x.shape}")
        out = matmul(x.reshape(len(x), self.W.shape[0]), self.W)
        out += self.b
        return out

    def backward(self, dout):
        dout = as_float(dout, self.W.dtype)
        dx = matmul(dout, self.W.T)
        self.dW = matmul(self.x.T, dout)
        self.db = dout.sum(axis=0)
        return dx.reshape(self.original_x_shape)

    def __repr__(self):
        return f"Affine({self.W.shape[0]}->{self.W.shape[1]}, dtype={self.W.dtype})"


@register
class AffineType(LayerType):
    """``{"type": "affine", "output_size": M, "init": "he"}``: an :class:`Affine`
    from the flattened sample (D values) to M, weights (D, M) drawn with
    ``init``, zero biases."""

    kind, prefix = "affine", "Affine"
    layer_class = Affine
    keys = {"output_size": None, "init": "he"}
    params = (Param("W"), Param("b"))
    fresh_output = True

    def out_shape(self, options, shape, where):
        m = positive_int(options["output_size"], f"{where} output_size")
        return (m,), [(math.prod(shape), m), (m,)]

    def build(self, options, shape, make):
        d, m = math.prod(shape), options["output_size"]
        return Affine(make.weights((d, m), options["init"], d), make.zeros(m))

    def onnx(self, graph, name, x, layer, shape):
        if len(shape) > 1:
            x = graph.node("Flatten", [x], f"{name}.flat", axis=1)
        return graph.node("Gemm", [x, graph.const(f"{name}.W", layer.W),
                                   graph.const(f"{name}.b", layer.b)], name)

    def torch_module(self, nn, options, entry, eps):
        (d, m), _ = entry["params"]
        return nn.Linear(d, m)

    def torch_state(self, layer):
        return [("weight", layer.W, True), ("bias", layer.b, False)]
