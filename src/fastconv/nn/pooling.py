"""The pooling layer and its layer type (``{"type": "pool", ...}``)."""
from ..ops import pooling as P
from ..ops.window import Window, pair, positive_int
from .arrays import shown
from .registry import LayerType, map_out, register

__all__ = ["Pooling", "PoolType"]


class Pooling:
    """Max or average pooling over pool_h x pool_w windows.

    Parameters
    ----------
    pool_h, pool_w : int
        Height and width of the window.
    stride : int or tuple of int, default 2
        The book's ``common/layers.py`` has stride=1 (read at its commits
        0781cbef and 751d55dc), but every network in the book passes stride=2
        for its 2x2 windows, which is what this default gives.
    pad : int or tuple of int, default 0
        At most half the window.
    mode : {"max", "avg"}
        Average pooling divides by pool_h*pool_w, padding counting as zeros.

    Notes
    -----
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
        self._win = None  # ((pool_h, pool_w, stride, pad), its Window), built once

    def _window(self):
        key = (self.pool_h, self.pool_w, self.stride, self.pad)
        if self._win is None or self._win[0] != key:
            self._win = (key, P.pool_window((self.pool_h, self.pool_w), self.stride, self.pad))
        return self._win[1]

    def forward(self, x):
        win, x = self._window(), P.pool_input(x)
        if self.mode == "max":
            out, self.arg_max = P.max_pool2d_core(x, win, return_indices=True)
        else:
            out = P.avg_pool2d_core(x, win)
        self.x_shape = x.shape
        return out

    def infer(self, x):
        """``forward`` without the indices backward would need."""
        win, x = self._window(), P.pool_input(x)
        if self.mode == "max":
            return P.max_pool2d_core(x, win, return_indices=False)[0]
        return P.avg_pool2d_core(x, win)

    def backward(self, dout):
        if self.mode == "max":
            return P.max_pool2d_backward(dout, self.arg_max, self.x_shape)
        return P.avg_pool2d_backward(dout, self.x_shape, (self.pool_h, self.pool_w),
                                     self.stride, self.pad)

    def __repr__(self):
        return (f"Pooling({self.pool_h}, {self.pool_w}, stride={shown(self.stride)}, "
                f"pad={shown(self.pad)}, mode={self.mode!r})")


@register
class PoolType(LayerType):
    """``{"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 2, "pad": 0,
    "mode": "max"}``: a :class:`Pooling` (``mode`` ``"max"`` or ``"avg"``)."""

    kind, prefix = "pool", "Pool"
    layer_class = Pooling
    keys = {"pool_h": 2, "pool_w": 2, "stride": 2, "pad": 0, "mode": "max"}
    needs_maps = True

    def _window(self, options, where):
        for key in ("pool_h", "pool_w"):
            positive_int(options[key], f"{where} {key}")
        return Window.of((options["pool_h"], options["pool_w"]), options["stride"],
                         options["pad"], names=[f"{where} {k}" for k in
                                                ("pool_h/pool_w", "stride", "pad", "dilation")])

    def out_shape(self, options, shape, where):
        oh, ow = map_out(self._window(options, where), shape, where)
        return (shape[0], oh, ow), []

    def build(self, options, shape, make):
        window = self._window(options, "")
        return Pooling(*window.kernel, window.stride, window.padding, mode=options["mode"])

    def onnx(self, graph, name, x, layer, shape):
        window = [int(layer.pool_h), int(layer.pool_w)]
        (sh, sw), (ph, pw) = pair(layer.stride, "stride"), pair(layer.pad, "pad")
        attrs = {"kernel_shape": window, "strides": [sh, sw], "pads": [ph, pw, ph, pw]}
        if layer.mode == "max":  # padding never wins, as ONNX defines MaxPool
            return graph.node("MaxPool", [x], name, **attrs)
        return graph.node("AveragePool", [x], name, count_include_pad=1, **attrs)

    def torch_module(self, nn, options, entry, eps):
        window = (int(options["pool_h"]), int(options["pool_w"]))
        stride, pad = pair(options["stride"], "stride"), pair(options["pad"], "pad")
        if options["mode"] == "max":
            return nn.MaxPool2d(window, stride, pad)
        return nn.AvgPool2d(window, stride, pad, count_include_pad=True)
