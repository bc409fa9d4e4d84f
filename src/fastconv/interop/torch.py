"""A fastconv net's twin in PyTorch: the same layers as a ``torch.nn.Sequential``.

The twin has one module per layer spec, in order, and an ``nn.Flatten``
right before a Linear that follows image maps. So SimpleConvNet becomes::

    Sequential(0: Conv2d(1, 30, 5), 1: ReLU, 2: MaxPool2d(2, 2), 3: Flatten,
               4: Linear(4320, 100), 5: ReLU, 6: Linear(100, 10))

and its ``state_dict`` holds ``0.weight``, ``0.bias``, ``4.weight``, ...
Counterparts: conv -> Conv2d (same (FN, C, FH, FW) weights), affine ->
Linear (weight transposed to (M, D)), max pool -> MaxPool2d (padding never
wins in either), avg pool -> AvgPool2d(count_include_pad=True), batchnorm ->
BatchNorm2d/1d (same eps; torch's momentum is 1 - fastconv's), dropout ->
Dropout (both inverted), lrn -> LocalResponseNorm (the same formula).
In eval mode the twin computes what ``net.predict`` does. In training mode
they differ where the libraries do: torch's running variance is unbiased.

:func:`state_dict` and :func:`load_state_dict` need no PyTorch;
:func:`sequential` and :func:`twin` import it.
"""
import numpy as np

from ..nn import registry
from ..nn.normalization import BatchNormalization

__all__ = ["sequential", "twin", "state_dict", "load_state_dict"]


def _layout(input_dim, layer_specs):
    """(index in the Sequential, walk entry) per layer spec, and the module count."""
    index, placed = 0, []
    for entry in registry.walk(input_dim, layer_specs):
        if entry["type"] == "affine" and len(entry["in"]) > 1:
            index += 1  # the Flatten
        placed.append((index, entry))
        index += 1
    return placed, index


def sequential(input_dim, layer_specs, torch=None):
    """A fresh ``torch.nn.Sequential`` (torch's own initial weights) for these specs.

    Each layer type makes its module (``LayerType.torch_module``).

    Parameters
    ----------
    input_dim : tuple of int
        As for :class:`fastconv.Net`.
    layer_specs : list of dict
        As for :class:`fastconv.Net`.
    torch : module, optional
        The ``torch`` module; imported when None.

    Returns
    -------
    torch.nn.Sequential
        One module per layer spec, with an ``nn.Flatten`` before a Linear that
        follows image maps.
    """
    if torch is None:
        import torch
    nn = torch.nn
    modules = []
    eps = BatchNormalization(np.ones(1), np.zeros(1)).eps
    for index, entry in _layout(input_dim, layer_specs)[0]:
        if len(modules) < index:
            modules.append(nn.Flatten())
        kind = registry.get(entry["type"])
        modules.append(kind.torch_module(nn, entry["options"], entry, eps))
    return nn.Sequential(*modules)


def _slots(net):
    """(state-dict name, array in the net, transposed?) for every array the twin holds."""
    placed, _ = _layout(net.input_dim, net.layer_specs)
    return [(f"{index}.{suffix}", array, transposed)
            for (index, _), (name, layer) in zip(placed, net.layers.items())
            for suffix, array, transposed in net.layer_types[name].torch_state(layer)]


def _batchnorm_counters(net):
    placed, _ = _layout(net.input_dim, net.layer_specs)
    return [f"{index}.num_batches_tracked" for index, entry in placed
            if entry["type"] == "batchnorm"]


def state_dict(net):
    """The twin's state dict for ``net``, as NumPy arrays (copies); see the module doc.

    Parameters
    ----------
    net : Net
        The network.

    Returns
    -------
    dict
        Names as the twin's ``state_dict()`` has them -> ndarray.
    """
    out = {name: np.ascontiguousarray(array.T if transposed else array).copy()
           for name, array, transposed in _slots(net)}
    for name in _batchnorm_counters(net):
        out[name] = np.array(0, dtype=np.int64)
    return out


def _as_array(value, name):
    if hasattr(value, "detach"):  # a torch tensor, possibly on a device or needing grad
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"state_dict[{name!r}] must be a real numeric array, got dtype "
                        f"{array.dtype}")
    return array


def load_state_dict(net, state):
    """Copy a twin's state dict (tensors or arrays) into ``net``, in place.

    ``num_batches_tracked`` entries may be present or not.

    Parameters
    ----------
    net : Net
        The network to load into.
    state : mapping
        Names -> tensors or arrays, as the twin's ``state_dict()``.

    Raises
    ------
    ValueError
        On missing or unexpected names or a shape mismatch, before changing
        anything.
    """
    if not hasattr(state, "items"):
        raise TypeError(f"state_dict must be a mapping of names to arrays, "
                        f"got {type(state).__name__}")
    slots = _slots(net)
    counters = set(_batchnorm_counters(net))
    given = {name: _as_array(value, name) for name, value in state.items()
             if name not in counters}
    expected = {name for name, _, _ in slots}
    missing, extra = sorted(expected - set(given)), sorted(set(given) - expected)
    if missing or extra:
        raise ValueError(f"state_dict names do not match this network's twin "
                         f"(missing {missing}, unexpected {extra})")
    for name, array, transposed in slots:
        needed = array.shape[::-1] if transposed else array.shape
        if given[name].shape != needed:
            raise ValueError(f"state_dict[{name!r}] has shape {given[name].shape}, "
                             f"this network needs {needed}")
    for name, array, transposed in slots:
        array[...] = given[name].T if transposed else given[name]


def twin(net, torch=None):
    """The PyTorch twin of ``net`` holding its weights, in eval mode and the net's dtype.

    Parameters
    ----------
    net : Net
        The network.
    torch : module, optional
        The ``torch`` module; imported when None.

    Returns
    -------
    torch.nn.Sequential
        See :func:`sequential`; ``model(x)`` equals ``net.predict(x)`` within
        rounding.
    """
    if torch is None:
        import torch
    model = sequential(net.input_dim, net.layer_specs, torch)
    model = model.to(torch.float64 if net.dtype == np.float64 else torch.float32)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(net).items()})
    return model.eval()
