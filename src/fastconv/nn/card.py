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
(see :mod:`fastconv.nn.registry`); ``params`` lists the arrays of the .npz.
Cards written before version 1 hold only ``model`` and ``dtype``; they still
load, through the named model's default architecture.
"""
import json
import math
import os

from ..io.checkpoint import atomic_write
from . import registry

__all__ = ["FILE_NAME", "card", "write_card", "read_card", "MAX_PARAMETERS"]

FILE_NAME = "model.json"
FORMAT = "fastconv.model"
VERSION = 1
# A card is a small hand-editable file: a typo such as output_size 10000000
# must not make the loader draw gigabytes of random weights before the
# parameter file turns out not to match.
MAX_PARAMETERS = 2 ** 28
INPUT_NOTE = "NCHW pixels scaled to [0, 1], ink bright on a dark background"


def card(net, model=None):
    """The card of ``net`` as a JSON-ready dict.

    Parameters
    ----------
    net : Net
        The network.
    model : str, optional
        A short name (the command line's ``simple``, ``deep``, ...); by default
        the class name in lower case.

    Returns
    -------
    dict
        Model name, ``input_dim``, layer specs, dtype and parameter shapes.
    """
    entries = registry.walk(net.input_dim, net.layer_specs)
    return {
        "format": FORMAT, "version": VERSION,
        "model": model or type(net).__name__.lower(),
        "class": type(net).__name__,
        "input_dim": list(net.input_dim),
        "layer_specs": [_jsonable(spec) for spec in net.layer_specs],
        "dtype": str(net.dtype),
        "output_shape": list(net.output_shape),
        "params": {k: list(v) for k, v in registry.param_names(entries).items()},
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
    """Write ``folder/model.json`` for ``net`` (atomically).

    Parameters
    ----------
    folder : str or path-like
        Where to write.
    net : Net
        The network.
    model : str, optional
        As for :func:`card`.

    Returns
    -------
    pathlib.Path
        The card's path.
    """
    path = os.path.join(os.fspath(folder), FILE_NAME)
    with atomic_write(path, "w") as f:
        json.dump(card(net, model), f, indent=1)
    return path


def read_card(path):
    """The card at ``path`` as a dict.

    Old cards (``model`` and ``dtype`` only) pass unchanged.

    Parameters
    ----------
    path : str or path-like
        A model.json, or the folder holding one.

    Returns
    -------
    dict
        The card.

    Raises
    ------
    ValueError
        When the file is missing, not JSON, not an object, or describes an
        architecture that cannot be followed or that holds more than
        ``MAX_PARAMETERS`` parameters.
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
            entries = registry.walk(dims, specs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        total = sum(math.prod(s) for entry in entries for s in entry["params"])
        if total > MAX_PARAMETERS:
            raise ValueError(f"{path}: the architecture holds {total} parameters, more than "
                             f"{MAX_PARAMETERS}")
    return data

