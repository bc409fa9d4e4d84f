"""The model card: ``model.json``, everything needed to rebuild a trained net.

``fastconv train`` writes it beside ``params.npz``; ``eval``, ``predict``,
``export`` and ``viz`` read it, so that a run's folder alone describes the
network. A card is a JSON object::

    {"format": "fastconv.model", "version": 1,
     "model": "simple", "class": "SimpleConvNet",
     "input_dim": [1, 28, 28], "layer_specs": [{"type": "conv", ...}, ...],
     "dtype": "float32", "output_shape": [10],
     "params": {"W1": [30, 1, 5, 5], "b1": [30], ...},
     "input": "NCHW pixels scaled to [0, 1], ink bright on a dark background"}

``input_dim`` and ``layer_specs`` are the arguments of :class:`fastconv.Net`
(see :mod:`fastconv.models`); ``params`` lists the arrays of the .npz.
Cards written before version 1 hold only ``model`` and ``dtype``; they still
load, through the named model's default architecture.
"""
import json
import math
import numbers
import os

from .ops.window import Window

__all__ = ["FILE_NAME", "card", "write_card", "read_card", "layer_shapes",
           "MAX_PARAMETERS"]

FILE_NAME = "model.json"
FORMAT = "fastconv.model"
VERSION = 1
# A card is a small hand-editable file: a typo such as output_size 10000000
# must not make the loader draw gigabytes of random weights before the
# parameter file turns out not to match.
MAX_PARAMETERS = 2 ** 28
MAX_LAYERS = 10_000
INPUT_NOTE = "NCHW pixels scaled to [0, 1], ink bright on a dark background"


def _pair(v, what):
    values = list(v) if isinstance(v, (tuple, list)) else [v, v]
    if len(values) != 2 or not all(_is_int(a) for a in values):
        raise ValueError(f"{what} must be an integer or a pair of integers, got {v!r}")
    return tuple(int(a) for a in values)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive(value, what):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def layer_shapes(input_dim, layer_specs):
    """Walk the specs without building anything: one entry per layer.

    Returns a list of dicts ``{"type", "spec", "in", "out", "params"}``: the
    lowercase layer type, the spec, the shape of one sample going in and out
    (tuples) and the shapes of the layer's parameters, in the order
    :class:`fastconv.Net` creates them. Raises ValueError for a spec this walk
    cannot follow (non-integer sizes, a map shrinking below 1x1). Net itself
    checks the rest when it is built.
    """
    shape = tuple(_positive(d, "input_dim entry") for d in input_dim)
    if len(shape) not in (1, 3):
        raise ValueError(f"input_dim must be (C, H, W) or (D,), got {tuple(input_dim)}")
    if len(layer_specs) > MAX_LAYERS:
        raise ValueError(f"layer_specs holds {len(layer_specs)} layers, more than {MAX_LAYERS}")
    walk = []
    for i, spec in enumerate(layer_specs):
        if not isinstance(spec, dict):
            raise ValueError(f"layer_specs[{i}] must be an object, got {spec!r}")
        kind = str(spec.get("type", "")).lower()
        where = f"layer_specs[{i}] ({kind})"
        params, out = [], shape
        if kind in ("conv", "pool") and len(shape) != 3:
            raise ValueError(f"{where} needs (C, H, W) feature maps, gets shape {shape}")
        if kind in ("conv", "pool"):
            if kind == "conv":
                fh, fw = _pair(spec.get("filter_size"), f"{where} filter_size")
                stride = _pair(spec.get("stride", 1), f"{where} stride")
                channels = _positive(spec.get("filter_num"), f"{where} filter_num")
                params = [(channels, shape[0], fh, fw), (channels,)]
            else:
                fh, fw = (_positive(spec.get(k, 2), f"{where} {k}") for k in ("pool_h", "pool_w"))
                stride = _pair(spec.get("stride", 2), f"{where} stride")
                channels = shape[0]
            pad = _pair(spec.get("pad", 0), f"{where} pad")
            for s in stride:
                _positive(s, f"{where} stride")
            try:
                oh, ow = Window.of((fh, fw), stride, pad).out_size(shape[1], shape[2])
            except ValueError as exc:
                raise ValueError(f"{where} gets a {shape[1]}x{shape[2]} map: {exc}") from None
            out = (channels, oh, ow)
        elif kind == "affine":
            m = _positive(spec.get("output_size"), f"{where} output_size")
            params = [(math.prod(shape), m), (m,)]
            out = (m,)
        elif kind == "batchnorm":
            params = [(shape[0],), (shape[0],)]
        elif kind not in ("relu", "sigmoid", "dropout", "lrn"):
            raise ValueError(f"{where}: unknown layer type {spec.get('type')!r}")
        walk.append({"type": kind, "spec": spec, "in": shape, "out": out, "params": params})
        shape = out
    return walk


def _param_names(walk):
    names, counts = {}, {}
    for entry in walk:
        prefixes = ("gamma", "beta") if entry["type"] == "batchnorm" else ("W", "b")
        for prefix, shape in zip(prefixes, entry["params"]):
            counts[prefix] = counts.get(prefix, 0) + 1
            names[f"{prefix}{counts[prefix]}"] = list(shape)
    return names


def card(net, model=None):
    """The card of ``net`` (a :class:`fastconv.Net`) as a JSON-ready dict.

    ``model`` is a short name (the command line's ``simple``, ``deep``...);
    by default the class name in lower case.
    """
    walk = layer_shapes(net.input_dim, net.layer_specs)
    return {
        "format": FORMAT, "version": VERSION,
        "model": model or type(net).__name__.lower(),
        "class": type(net).__name__,
        "input_dim": list(net.input_dim),
        "layer_specs": [_jsonable(spec) for spec in net.layer_specs],
        "dtype": str(net.dtype),
        "output_shape": list(net.output_shape),
        "params": _param_names(walk),
        "input": INPUT_NOTE,
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # a NumPy scalar
        return value.item()
    return value


def write_card(folder, net, model=None):
    """Write ``folder/model.json`` for ``net`` (atomically); returns its path."""
    path = os.path.join(os.fspath(folder), FILE_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(card(net, model), f, indent=1)
    os.replace(tmp, path)
    return path


def read_card(path):
    """The card at ``path`` (a model.json, or the folder holding one) as a dict.

    Raises ValueError when the file is missing, not JSON, not an object, or
    describes an architecture that cannot be followed or that holds more than
    ``MAX_PARAMETERS`` parameters. Old cards (``model`` and ``dtype`` only)
    pass unchanged.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, FILE_NAME)
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"cannot read {path}: expected a JSON object, got {type(data).__name__}")
    dtype = data.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"{path}: dtype must be 'float32' or 'float64', got {dtype!r}")
    if "layer_specs" in data or "input_dim" in data:
        specs, dims = data.get("layer_specs"), data.get("input_dim")
        if not isinstance(specs, list) or not isinstance(dims, list):
            raise ValueError(f"{path}: input_dim and layer_specs must both be lists, got "
                             f"{dims!r} and {type(specs).__name__}")
        try:
            walk = layer_shapes(dims, specs)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        total = sum(math.prod(s) for entry in walk for s in entry["params"])
        if total > MAX_PARAMETERS:
            raise ValueError(f"{path}: the architecture holds {total} parameters, more than "
                             f"{MAX_PARAMETERS}")
    return data
