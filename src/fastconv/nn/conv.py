"""The convolution layer and its layer type (``{"type": "conv", ...}``)."""
import numpy as np

from ..ops import blocked as _blocked
from ..ops import conv as _conv
from ..ops import validate as V
from ..ops.window import Window, pair, positive_int
from .arrays import shown, spread_bias
from .per_thread import PerThread
from .registry import LayerType, Param, map_out, register

__all__ = ["Convolution", "ConvType"]


class Convolution:
    """2-D convolution (cross-correlation) of a batch with a bank of filters.

    Parameters
    ----------
    W : ndarray
        The filters, (FN, C, FH, FW), float32 or float64.
    b : ndarray or float
        One bias per filter, (FN,); a scalar is spread to all filters.
    stride, pad : int or tuple of int
        One int or an (h, w) pair each.

    Notes
    -----
    ``forward(x)`` takes x (N, C, H, W) and returns (N, FN, OH, OW) with
    ``OH = (H + 2*pad - FH) // stride + 1``, in W's dtype. It is
    :func:`fastconv.ops.conv2d_forward`, which also chooses the algorithm
    (:func:`fastconv.ops.conv_plan`); ``backward`` is
    :func:`fastconv.ops.conv2d_backward`. The layer keeps only the
    context between the two, and backward's result never depends on writes
    the caller makes to x after forward.

    Set ``needs_input_grad = False`` on a first layer: ``backward`` then
    computes only ``dW`` and ``db`` and returns None, skipping the costliest
    half of the pass (as PyTorch does for inputs that need no gradient).
    """

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = spread_bias(b, W.shape[0], W.dtype)
        self.stride = stride
        self.pad = pad
        self.needs_input_grad = True
        # A network sets this on inner layers, whose input nobody else holds:
        # forward then keeps x itself instead of a copy.
        self.input_is_private = False
        self.dW = None
        self.db = None
        self._ctx = None
        self._infer_ctx = PerThread(_conv.ConvContext)  # test-time scratch, per thread
        self._window = None  # ((fh, fw, stride, pad), its Window), built once

    def _arguments(self, x):
        """The one check of a call: x, and the parameters as they are now
        (the book's code may have rebound W or b); then the cores run."""
        original = x
        x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
        w, b, win = self._parameters(x)
        x = x.astype(w.dtype, copy=False)
        shared = isinstance(original, np.ndarray) and np.may_share_memory(x, original)
        return x, w, b, win, not shared

    def _parameters(self, x):
        """W, b and the window, checked against x (anything with a 4-D ``shape``)."""
        w = self.W
        if not isinstance(w, np.ndarray) or w.ndim != 4 or w.dtype.kind != "f":
            w = V.float_array(w, "W", (4,), "4-D (FN, C, FH, FW)")
        fn, c, fh, fw = w.shape
        _conv.check_channels(x, w, "W")
        dtype = w.dtype
        w = np.ascontiguousarray(w)
        b = np.ascontiguousarray(spread_bias(self.b, fn, dtype), dtype=dtype)
        if b.shape != (fn,):
            raise ValueError(f"b must have shape ({fn},) or be a scalar, got {b.shape}")
        key = (fh, fw, self.stride, self.pad)
        if self._window is None or self._window[0] != key:
            self._window = (key, _conv.conv_window(fh, fw, self.stride, self.pad, "W"))
        win = self._window[1]
        win.out_size(*x.shape[2:])  # a window larger than the padded image is refused here
        return w, b, win

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
        out, _ = _conv.forward_core(x, w, b, win, ctx=self._infer_ctx.get(), keep=False,
                                    relu=relu)
        return out

    def _infer_blocked(self, x, relu, scratch):
        """``infer`` into the channel-blocked layout, for a net's test-time
        pass (:mod:`fastconv.nn.blocked_pass`): x is NCHW float32 or
        :class:`~fastconv.ops.blocked.BlockedMaps`. None where the blocked
        kernels do not serve the call (the caller then runs ``infer``)."""
        if isinstance(x, np.ndarray):
            if x.dtype != np.float32 or x.ndim != 4:
                return None
        w, b, win = self._parameters(x)
        if not _blocked.serves_conv(x.shape, w.shape, w.dtype, win):
            return None
        return _blocked.conv(x, w, b, win, relu, scratch)

    def backward(self, dout):
        dx, self.dW, self.db = _conv.conv2d_backward(self._ctx, dout,
                                                 input_grad=self.needs_input_grad)
        return dx

    @property
    def plan(self):
        """The algorithm the last forward ran (see :func:`fastconv.ops.conv_plan`)."""
        return self._ctx.plan_name if self._ctx is not None else None

    def __repr__(self):
        fn, c, fh, fw = self.W.shape
        return (f"Convolution({c}->{fn}, {fh}x{fw}, stride={shown(self.stride)}, "
                f"pad={shown(self.pad)}, dtype={self.W.dtype})")


@register
class ConvType(LayerType):
    """``{"type": "conv", "filter_num": FN, "filter_size": K, "stride": 1, "pad": 0,
    "init": "he"}``: a :class:`Convolution` with weights (FN, C, K, K) drawn
    with ``init`` (a std, ``"he"`` or ``"xavier"``) and zero biases."""

    kind, prefix = "conv", "Conv"
    layer_class = Convolution
    keys = {"filter_num": None, "filter_size": None, "stride": 1, "pad": 0, "init": "he"}
    params = (Param("W"), Param("b"))
    needs_maps = fresh_output = fuses_relu = True

    def _window(self, options, where):
        return Window.of(options["filter_size"], options["stride"], options["pad"],
                         names=[f"{where} {k}" for k in ("filter_size", "stride", "pad",
                                                         "dilation")])

    def out_shape(self, options, shape, where):
        fn = positive_int(options["filter_num"], f"{where} filter_num")
        window = self._window(options, where)
        oh, ow = map_out(window, shape, where)
        return (fn, oh, ow), [(fn, shape[0], *window.kernel), (fn,)]

    def build(self, options, shape, make):
        window = self._window(options, "")
        fn, c = options["filter_num"], shape[0]
        fh, fw = window.kernel
        W = make.weights((fn, c, fh, fw), options["init"], c * fh * fw)
        return Convolution(W, make.zeros(fn), window.stride, window.padding)

    def onnx(self, graph, name, x, layer, shape):
        fn, _, fh, fw = layer.W.shape
        (sh, sw), (ph, pw) = pair(layer.stride, "stride"), pair(layer.pad, "pad")
        return graph.node("Conv", [x, graph.const(f"{name}.W", layer.W),
                                   graph.const(f"{name}.b", layer.b)],
                          name, kernel_shape=[fh, fw], strides=[sh, sw], pads=[ph, pw, ph, pw])

    def torch_module(self, nn, options, entry, eps):
        (fn, c, fh, fw), _ = entry["params"]
        return nn.Conv2d(c, fn, (fh, fw), stride=pair(options["stride"], "stride"),
                         padding=pair(options["pad"], "pad"))

    def torch_state(self, layer):
        return [("weight", layer.W, False), ("bias", layer.b, False)]
