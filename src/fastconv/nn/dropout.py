"""Inverted dropout and its layer type (``{"type": "dropout", ...}``)."""
import numpy as np

from .arrays import as_float
from .registry import LayerType, register

__all__ = ["Dropout", "DropoutType"]


class Dropout:
    """Inverted dropout: zero each input with probability ``dropout_ratio``.

    In training (``forward(x, train_flg=True)``) the kept values are scaled by
    ``1 / (1 - dropout_ratio)``, so that at test time the layer is the identity.
    The book's Dropout is not inverted (it scales by ``1 - dropout_ratio`` at
    test time instead); the expected outputs agree, the arithmetic does not.

    Parameters
    ----------
    dropout_ratio : float, default 0.5
        In [0, 1).
    seed : int, optional
        Seed of the masks' generator.
    rng : numpy.random.Generator, optional
        The masks' generator; wins over ``seed``.
    mask : ndarray, optional
        A fixed boolean keep-mask. Given one, the layer is ``frozen``: every
        training forward reuses ``self.mask``.

    Notes
    -----
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
        x = as_float(x)
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

    def infer(self, x):
        """The test-time forward: the identity (this dropout is inverted)."""
        return as_float(x)

    def backward(self, dout):
        if not self._train:
            return dout
        dx = dout * self.mask
        dx *= 1 / (1 - self.dropout_ratio)
        return dx

    def __repr__(self):
        return f"Dropout(dropout_ratio={self.dropout_ratio})"


@register
class DropoutType(LayerType):
    """``{"type": "dropout", "dropout_ratio": 0.5}``: a :class:`Dropout` drawing
    its masks from the net's generator."""

    kind, prefix = "dropout", "Dropout"
    layer_class = Dropout
    keys = {"dropout_ratio": 0.5}
    takes_train_flag = True

    def build(self, options, shape, make):
        return Dropout(options["dropout_ratio"], rng=make.rng)

    def onnx(self, graph, name, x, layer, shape):
        return graph.node("Identity", [x], name)  # inverted: the identity at test time

    def torch_module(self, nn, options, entry, eps):
        return nn.Dropout(Dropout(options["dropout_ratio"]).dropout_ratio)
