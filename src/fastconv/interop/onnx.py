"""ONNX export of a trained net, for runtimes outside Python and NumPy.

Needs the ``onnx`` package (``pip install fastconv[onnx]``), imported only
here; ``import fastconv`` never loads it. The graph is the net in test mode:
input ``"input"`` of shape (batch,) + input_dim, output ``"logits"`` (the
scores of ``net.predict``, before the softmax), opset 17, float32 whatever
the net's dtype (ONNX Runtime has no float64 convolution).

Each layer type writes its own nodes (``LayerType.onnx``): conv -> Conv;
affine -> Flatten + Gemm; max pool -> MaxPool (padding never wins, as ONNX
defines it); avg pool -> AveragePool(count_include_pad=1), as fastconv counts
padded zeros; batchnorm -> BatchNormalization with the running statistics
(or, on (N, D) input, the same arithmetic as Sub/Mul/Add); dropout ->
Identity (fastconv's dropout is inverted, the identity in test mode); relu,
sigmoid -> Relu, Sigmoid; lrn -> LRN for odd sizes, its formula for even
ones. A type without a counterpart raises ValueError naming the layer.
"""

import numpy as np

from ..io.checkpoint import atomic_path
from ..nn import registry
from ..ops.window import positive_int

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


def onnx_model(net, batch=None):
    """The ``onnx.ModelProto`` of ``net`` (checked with ``onnx.checker``).

    Parameters
    ----------
    net : Net
        The network, in test mode.
    batch : int, optional
        None gives a dynamic first dimension named ``"batch"``; an int fixes it.

    Returns
    -------
    onnx.ModelProto
        The checked model.

    Raises
    ------
    ValueError
        For a layer without an ONNX counterpart.
    """
    onnx, helper, numpy_helper = _import_onnx()
    if batch is not None:
        batch = positive_int(batch, "batch", integral_floats=True)
    dtype = np.dtype(np.float32)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    g = _Graph(helper, numpy_helper, dtype)
    x, shape = "input", tuple(net.input_dim)
    for entry, (name, layer) in zip(registry.walk(net.input_dim, net.layer_specs),
                                    net.layers.items()):
        kind = net.layer_types[name]
        if not isinstance(layer, kind.layer_class):  # a layer swapped in by hand
            raise ValueError(f"layer {name} ({type(layer).__name__}) has no ONNX "
                             f"counterpart; export knows the layers of the types "
                             f"{', '.join(registry.kinds())}")
        x = kind.onnx(g, name, x, layer, shape)
        shape = entry["out"]
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
    """Write ``net`` (test mode) to ``path`` as an ONNX model.

    Input ``"input"``: (batch,) + net.input_dim, float32, pixels as the net was
    trained on (MNIST: [0, 1]); output ``"logits"``: (batch, output_size), equal
    to ``net.predict`` within rounding. Needs ``onnx``.

    Parameters
    ----------
    net : Net
        The network.
    path : str or path-like
        The file to write (atomically).
    batch : int, optional
        None (default) leaves the batch dimension free; an int fixes it.

    Returns
    -------
    path-like
        ``path``.
    """
    onnx, _, _ = _import_onnx()
    model = onnx_model(net, batch)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)
    return path
