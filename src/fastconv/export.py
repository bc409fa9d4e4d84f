"""ONNX export of a trained net, for runtimes outside Python and NumPy.

Needs the ``onnx`` package (``pip install fastconv[onnx]``), imported only
here; ``import fastconv`` never loads it. The graph is the net in test mode:
input ``"input"`` of shape (batch,) + input_dim, output ``"logits"`` (the
scores of ``net.predict``, before the softmax), opset 17, float32 whatever
the net's dtype (ONNX Runtime has no float64 convolution).

Counterparts: conv -> Conv; affine -> Flatten + Gemm; max pool -> MaxPool
(padding never wins, as ONNX defines it); avg pool ->
AveragePool(count_include_pad=1), as fastconv counts padded zeros;
batchnorm -> BatchNormalization with the running statistics (or, on
(N, D) input, the same arithmetic as Sub/Div/Mul/Add); dropout -> Identity
(fastconv's dropout is inverted, the identity in test mode); relu, sigmoid
-> Relu, Sigmoid; lrn -> LRN for odd sizes. ONNX's LRN centres an even
window one channel later than fastconv (and PyTorch) do, so an even size
becomes its formula: a 1x1 Conv summing the squares over a band of channels,
then Add, Pow and Div. A layer object of any other class raises ValueError
naming it.
"""
import os

import numpy as np

from .ops.window import Window
from .layers import (LRN, Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu,
                     Sigmoid)

__all__ = ["OPSET", "to_onnx", "onnx_model"]

OPSET = 17
# The IR version of ONNX 1.13, which opset 17 came with: runtimes of that age
# and later read the file.
IR_VERSION = 8


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: "
                          "pip install 'fastconv[onnx]' (or pip install onnx)") from exc
    return onnx, helper, numpy_helper


def _pair(v):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v), int(v))


class _Graph:
    """Nodes and initializers under construction, with fresh tensor names."""

    def __init__(self, helper, numpy_helper, dtype):
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.nodes, self.initializers = [], []

    def const(self, name, array):
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.dtype)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(self.helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _batchnorm(g, name, x, layer, ndim):
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


def _lrn(g, name, x, layer, channels):
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


def onnx_model(net, batch=None):
    """The ``onnx.ModelProto`` of ``net`` (checked with ``onnx.checker``).

    ``batch`` None gives a dynamic first dimension named ``"batch"``; an int
    fixes it. Raises ValueError for a layer without an ONNX counterpart.
    """
    onnx, helper, numpy_helper = _import_onnx()
    if batch is not None and (isinstance(batch, bool) or int(batch) != batch or batch < 1):
        raise ValueError(f"batch must be a positive integer or None, got {batch!r}")
    dtype = np.dtype(np.float32)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    g = _Graph(helper, numpy_helper, dtype)
    x, shape = "input", tuple(net.input_dim)
    for name, layer in net.layers.items():
        if isinstance(layer, Convolution):
            fn, _, fh, fw = layer.W.shape
            (sh, sw), (ph, pw) = _pair(layer.stride), _pair(layer.pad)
            x = g.node("Conv", [x, g.const(f"{name}.W", layer.W), g.const(f"{name}.b", layer.b)],
                       name, kernel_shape=[fh, fw], strides=[sh, sw], pads=[ph, pw, ph, pw])
            shape = (fn, *Window.of((fh, fw), (sh, sw), (ph, pw)).out_size(*shape[1:]))
        elif isinstance(layer, Affine):
            if len(shape) > 1:
                x = g.node("Flatten", [x], f"{name}.flat", axis=1)
            x = g.node("Gemm", [x, g.const(f"{name}.W", layer.W), g.const(f"{name}.b", layer.b)],
                       name)
            shape = (layer.W.shape[1],)
        elif isinstance(layer, Pooling):
            window = [int(layer.pool_h), int(layer.pool_w)]
            (sh, sw), (ph, pw) = _pair(layer.stride), _pair(layer.pad)
            attrs = {"kernel_shape": window, "strides": [sh, sw], "pads": [ph, pw, ph, pw]}
            if layer.mode == "max":
                x = g.node("MaxPool", [x], name, **attrs)
            else:
                x = g.node("AveragePool", [x], name, count_include_pad=1, **attrs)
            shape = (shape[0], *Window.of(window, (sh, sw), (ph, pw)).out_size(*shape[1:]))
        elif isinstance(layer, Relu):
            x = g.node("Relu", [x], name)
        elif isinstance(layer, Sigmoid):
            x = g.node("Sigmoid", [x], name)
        elif isinstance(layer, Dropout):
            x = g.node("Identity", [x], name)
        elif isinstance(layer, BatchNormalization):
            x = _batchnorm(g, name, x, layer, 1 + len(shape))
        elif isinstance(layer, LRN):
            x = _lrn(g, name, x, layer, shape[0])
        else:
            raise ValueError(f"layer {name} ({type(layer).__name__}) has no ONNX counterpart; "
                             f"export supports Convolution, Affine, Pooling, Relu, Sigmoid, "
                             f"Dropout, BatchNormalization and LRN")
    g.nodes.append(helper.make_node("Identity", [x], ["logits"], name="logits"))
    first = "batch" if batch is None else int(batch)
    graph = helper.make_graph(
        g.nodes, type(net).__name__, [helper.make_tensor_value_info("input", elem,
                                                                    [first, *net.input_dim])],
        [helper.make_tensor_value_info("logits", elem, [first, *shape])], g.initializers)
    model = helper.make_model(graph, producer_name="fastconv",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx(net, path, batch=None):
    """Write ``net`` (test mode) to ``path`` as an ONNX model; returns the path.

    Input ``"input"``: (batch,) + net.input_dim, float32, pixels as
    the net was trained on (MNIST: [0, 1]); output ``"logits"``: (batch,
    output_size), equal to ``net.predict`` within rounding. ``batch`` None
    (default) leaves the batch dimension free. Needs ``onnx``.
    """
    onnx, _, _ = _import_onnx()
    model = onnx_model(net, batch)
    path = os.fspath(path)
    tmp = path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, path)
    return path
