"""A net's parameters: the live dict of its layers' arrays, and how they start."""
import collections.abc
import math

import numpy as np

from . import registry

__all__ = ["ParamDict", "init_std", "Maker", "build_layers"]


class ParamDict(collections.abc.MutableMapping):
    """A network's learnable parameters by name: a live view of its layers' arrays.

    ``params[name]`` is the array the layer computes with, also after the
    layer's attribute was reassigned (as the book's ``load_params`` does).
    ``params[name] = value`` writes ``value`` into that array: it must have
    the parameter's shape (else ValueError naming both shapes) and a real
    numeric dtype (else TypeError), and is cast to the network's dtype.
    In-place updates (``params[name] -= lr * g``, ``params[name][...] = a``)
    change the layer's array directly, as in the book. The names are fixed:
    an unknown name raises KeyError, deleting one TypeError.

    Parameters
    ----------
    dtype : numpy dtype
        The network's dtype, which assigned values are cast to.
    """

    def __init__(self, dtype):
        self._dtype = np.dtype(dtype)
        self._slots = {}  # name -> (layer, attribute holding the array)

    def bind(self, name, layer, attr):
        """Make ``name`` the array ``layer.<attr>`` (a net does this as it builds).

        Parameters
        ----------
        name : str
            The parameter's name (``"W1"``, ...).
        layer : object
            The layer holding it.
        attr : str
            The layer's attribute.
        """
        self._slots[name] = (layer, attr)

    def layer_of(self, name):
        """The layer holding parameter ``name``.

        Parameters
        ----------
        name : str
            The parameter's name.

        Returns
        -------
        object
            The layer.
        """
        return self._slots[name][0]

    def __getitem__(self, name):
        layer, attr = self._slots[name]
        return getattr(layer, attr)

    def __setitem__(self, name, value):
        if name not in self._slots:
            raise KeyError(f"{name!r} is not a parameter of this network; "
                           f"its parameters are {', '.join(self._slots)}")
        layer, attr = self._slots[name]
        current = getattr(layer, attr)
        if value is current:  # what ``params[name] -= g`` stores back
            return
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"params[{name!r}] must be a real numeric array, "
                            f"got dtype {array.dtype}")
        if array.shape != np.shape(current):
            raise ValueError(f"params[{name!r}] has shape {np.shape(current)}, "
                             f"cannot assign an array of shape {array.shape}")
        if (isinstance(current, np.ndarray) and current.dtype == self._dtype
                and current.flags.writeable):
            # Same memory, so optimiser state and other holders stay valid.
            np.copyto(current, array, casting="unsafe")
        else:
            setattr(layer, attr, np.array(array, dtype=self._dtype))

    def __delitem__(self, name):
        raise TypeError(f"a network's parameters cannot be removed (tried {name!r})")

    def __iter__(self):
        return iter(self._slots)

    def __len__(self):
        return len(self._slots)

    def __repr__(self):
        shapes = ", ".join(f"{k!r}: {np.shape(v)}" for k, v in self.items())
        return f"ParamDict({{{shapes}}}, dtype={self._dtype})"


def init_std(init, fan_in):
    """The standard deviation ``init`` means for a unit of ``fan_in`` inputs."""
    if isinstance(init, str):
        if init.lower() in ("he", "relu"):
            return math.sqrt(2.0 / fan_in)
        if init.lower() in ("xavier", "sigmoid"):
            return math.sqrt(1.0 / fan_in)
        raise ValueError(f"init must be a number, 'he' or 'xavier', got {init!r}")
    return float(init)


class Maker:
    """What a layer type draws its arrays from when a net builds it: weights
    from the net's generator, zeros and ones, all in the net's dtype."""

    def __init__(self, dtype, rng):
        self.dtype, self.rng = np.dtype(dtype), rng

    def weights(self, shape, init, fan_in):
        # Drawn in float64 and then cast, so a float32 and a float64 net of
        # the same seed hold the same weights up to rounding.
        return (init_std(init, fan_in) * self.rng.standard_normal(shape)).astype(self.dtype)

    def zeros(self, shape):
        return np.zeros(shape, self.dtype)

    def ones(self, shape):
        return np.ones(shape, self.dtype)


def build_layers(entries, make):
    """The layers of :func:`~fastconv.nn.registry.walk`'s entries, named as the
    book names them: ``(layers, types, params, grad_of)`` with layers and types
    by name ("Conv1", ...), the :class:`ParamDict` (W1, b1, ...) and, per
    parameter, (its layer, the attribute its gradient is left in)."""
    layers, types, params, grad_of, counts = {}, {}, ParamDict(make.dtype), {}, {}
    for entry in entries:
        kind = registry.get(entry["type"])
        counts[kind.kind] = counts.get(kind.kind, 0) + 1
        name = f"{kind.prefix}{counts[kind.kind]}"
        layers[name] = layer = kind.build(entry["options"], entry["in"], make)
        types[name] = kind
        for param in kind.params:
            index = sum(1 for k in params if k.rstrip("0123456789") == param.prefix) + 1
            params.bind(f"{param.prefix}{index}", layer, param.attr)
            grad_of[f"{param.prefix}{index}"] = (layer, param.grad)
    return layers, types, params, grad_of
