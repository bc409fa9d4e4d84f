"""The layer types: everything about one kind of layer, defined once.

A :class:`LayerType` knows its spec (``{"type": ..., key: value}``) and how
to check it, the shape it maps a sample to, its parameters (names, shapes,
initialisation, gradient attributes), how to build the layer, and its ONNX
nodes and torch module. :class:`~fastconv.nn.net.Net`, the model card, ONNX
export and the torch twin all ask the type, never the layer's class. A new
kind of layer is a class and its type, registered with :func:`register`,
usually side by side in one module. (The built-in types register when
:mod:`fastconv.nn` loads, which any import of this module does first.)
"""
from ..ops.window import positive_int

__all__ = ["LayerType", "Param", "ShapeError", "map_out", "register", "get", "kinds", "walk",
           "param_names", "MAX_LAYERS"]

MAX_LAYERS = 10_000

_TYPES = {}


class ShapeError(ValueError):
    """A layer's window does not fit the feature map it gets."""


def map_out(window, shape, where):
    """(OH, OW) of ``window`` on a (C, H, W) ``shape``; ShapeError naming ``where``
    when the window does not fit."""
    h, w = shape[1:]
    try:
        return window.out_size(h, w)
    except ValueError as exc:
        raise ShapeError(f"{where} gets a {h}x{w} map, too small for it: {exc}") from None


class Param:
    """One learnable array of a layer: its attribute on the layer, the
    attribute holding its gradient after backward, and the prefix of its
    name in a net's ``params`` (``W`` -> ``W1``, ``W2``, ...)."""

    def __init__(self, attr, grad=None, prefix=None):
        self.attr = attr
        self.grad = grad or "d" + attr
        self.prefix = prefix or attr

    def __repr__(self):
        return f"Param({self.attr!r})"


class LayerType:
    """One kind of layer. Subclasses set the class attributes and override
    what differs; the defaults describe a parameter-free, shape-keeping layer.

    Class attributes
    ----------------
    kind : the spec's ``"type"``, lower case
    prefix : the layer's name in a net, numbered (``"Conv"`` -> ``Conv1``)
    keys : the optional spec keys and their defaults
    params : the layer's :class:`Param` s, in the order nets number them
    needs_maps : the input must be (C, H, W) feature maps
    takes_train_flag : ``forward(x, train_flg)`` (dropout, batch norm)
    fresh_output : forward returns a new array nobody else holds, so a ReLU
        right after may overwrite it
    fuses_relu : ``infer(x, relu=True)`` applies a ReLU that follows
    layer_class : the class of the layers it builds (what the exporters expect)

    The layers a type builds have ``forward(x)`` (or ``forward(x, train_flg)``),
    ``backward(dout)`` and ``infer(x)``: the test-time forward that keeps
    nothing for a backward pass.
    """

    kind = None
    prefix = None
    keys = {}
    params = ()
    needs_maps = False
    takes_train_flag = False
    fresh_output = False
    fuses_relu = False
    layer_class = object

    def check(self, spec, where):
        """The spec's keys against :attr:`keys`; returns the spec with defaults."""
        unknown = set(spec) - set(self.keys) - {"type"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} in {self.kind} spec {spec} "
                             f"({where})")
        return {**self.keys, **{k: v for k, v in spec.items() if k != "type"}}

    def out_shape(self, options, shape, where):
        """(the shape of one sample after the layer, its parameters' shapes)."""
        return shape, []

    def build(self, options, shape, make):
        """The layer for checked ``options`` on samples of ``shape``.

        ``make`` draws what a net owns: ``make.weights(shape, init, fan_in)``,
        ``make.zeros(shape)``, ``make.ones(shape)`` in the net's dtype, and
        ``make.rng`` (a numpy Generator).
        """
        raise NotImplementedError

    def onnx(self, graph, name, x, layer, shape):
        """Add the layer's nodes to ``graph`` (test mode); returns the output's name.

        ``graph.node(op, inputs, name, **attributes)`` and
        ``graph.const(name, array)`` build it; ``shape`` is one sample's input shape.
        """
        raise ValueError(f"layer {name} ({self.kind}) has no ONNX counterpart")

    def torch_module(self, nn, options, entry, eps):
        """The ``torch.nn`` module of the twin (``nn`` is ``torch.nn``)."""
        raise ValueError(f"layer type {self.kind} has no torch counterpart")

    def torch_state(self, layer):
        """(state-dict suffix, array in the layer, transposed?) of the twin's module."""
        return []

    def __repr__(self):
        return f"<layer type {self.kind!r}>"


def register(cls):
    """Class decorator: make a :class:`LayerType` subclass known by its kind."""
    if not cls.kind or cls.kind in _TYPES:
        raise ValueError(f"layer type {cls.kind!r} is missing or already registered")
    _TYPES[cls.kind] = cls()
    return cls


def get(kind, spec=None):
    """The registered type of ``kind`` (ValueError naming the known ones)."""
    found = _TYPES.get(str(kind).lower())
    if found is None:
        raise ValueError(f"unknown layer type {kind!r}{f' in {spec}' if spec else ''}; "
                         f"expected one of {kinds()}")
    return found


def kinds():
    """The registered kinds, sorted."""
    return sorted(_TYPES)


def walk(input_dim, layer_specs):
    """Follow the specs without building anything: one entry per layer.

    Returns a list of dicts ``{"type", "spec", "options", "in", "out",
    "params"}``: the kind, the spec as given and with its defaults, one
    sample's shape in and out (tuples) and the parameters' shapes, in the
    order nets create them. Raises ValueError for anything malformed (a
    non-integer size, an unknown key, a map shrinking below 1x1).
    """
    shape = tuple(positive_int(d, "input_dim entry") for d in input_dim)
    if len(shape) not in (1, 3):
        raise ValueError(f"input_dim must be (C, H, W) or (D,), got {tuple(input_dim)}")
    if len(layer_specs) > MAX_LAYERS:
        raise ValueError(f"layer_specs holds {len(layer_specs)} layers, more than {MAX_LAYERS}")
    entries, counts = [], {}
    for i, spec in enumerate(layer_specs):
        if not isinstance(spec, dict):
            raise ValueError(f"layer_specs[{i}] must be an object, got {spec!r}")
        kind = get(spec.get("type", ""), spec)
        counts[kind.kind] = counts.get(kind.kind, 0) + 1
        # Named as the net names the layer, and where it is in the list.
        where = f"layer {kind.prefix}{counts[kind.kind]} (layer_specs[{i}], {kind.kind})"
        if kind.needs_maps and len(shape) != 3:
            raise ValueError(f"{where} needs (C, H, W) feature maps, gets shape {shape}")
        options = kind.check(spec, where)
        out, params = kind.out_shape(options, shape, where)
        entries.append({"type": kind.kind, "spec": spec, "options": options, "in": shape,
                        "out": tuple(out), "params": [tuple(p) for p in params]})
        shape = tuple(out)
    return entries


def param_names(entries):
    """The names a net gives the parameters of :func:`walk`'s entries, with
    their shapes: ``{"W1": (30, 1, 5, 5), "b1": (30,), ...}``."""
    names, counts = {}, {}
    for entry in entries:
        for param, shape in zip(get(entry["type"]).params, entry["params"]):
            counts[param.prefix] = counts.get(param.prefix, 0) + 1
            names[f"{param.prefix}{counts[param.prefix]}"] = shape
    return names

