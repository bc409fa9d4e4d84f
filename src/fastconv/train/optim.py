"""Gradient-descent optimisers with the book's names and defaults (chapter 6).

Each optimiser has ``update(params, grads)``, which changes the arrays of the
``params`` dict in place (layers hold references to them) from the arrays of
``grads`` with the same keys. The state (velocities, squared-gradient sums)
is kept per key and created on the key's first update, in the parameter's
dtype: float32 parameters stay float32.

Like the book's optimisers, they also take entries that are not float arrays
(its ``optimizer_compare_naive.py`` optimises a dict of two Python floats).
Such an entry is stepped as a float64 array of its shape, with the same
arithmetic, and the dict entry is then rebound to the result:

- a Python or NumPy number (int, float, bool, NumPy scalar) becomes a NumPy
  float64 scalar (a ``float``), as the book's ``params[key] -= ...`` rebinds it
  to a new number;
- an integer or boolean array (0-d too), or a list, becomes a new float64
  array; the book's in-place update raises on an integer array (NumPy will not
  write a float result into it), and the original array is left as it was, so
  a layer still holding it does not see the update.

Float arrays (0-d included) are updated in place as before, float32 and
float64 on the same code as without this rule. Anything that is not a real
number (a string, None, a complex or object array) is refused with a
TypeError naming its key.
"""
import math

import numpy as np

from ..ops import dense as F

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get_optimizer",
           "OPTIMIZER_NAMES"]


def _entries(params):
    """(key, array) for each entry of ``params``, for an update to change in place.

    Float arrays are yielded themselves. Any other real number or numeric array
    is yielded as a float64 copy, which replaces the entry once every key has
    been stepped (a number as a float64 scalar)."""
    replaced = {}
    for key, p in params.items():
        if isinstance(p, np.ndarray) and p.dtype.kind == "f":
            yield key, p
            continue
        try:
            value = np.asarray(p)
        except Exception:  # ragged lists and the like
            value = None
        if value is None or value.dtype.kind not in "biuf":
            what = type(p).__name__ + (f" of dtype {value.dtype}" if value is not None
                                       and isinstance(p, np.ndarray) else "")
            raise TypeError(f"params[{key!r}] must be a real number or a numeric array, "
                            f"got {what}")
        copy = value.astype(np.float64)  # always a new array
        replaced[key] = (copy, isinstance(p, (np.ndarray, list, tuple)))
        yield key, copy
    for key, (copy, array) in replaced.items():
        params[key] = copy if array else copy[()]


class _Optimizer:
    def _state(self, store, key, param):
        if key not in store:
            store[key] = np.zeros_like(param)
        return store[key]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if isinstance(v, (int, float)) and k != "iter")
        return f"{type(self).__name__}({args})"


class SGD(_Optimizer):
    """Plain gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    """

    def __init__(self, lr=0.01):
        self.lr = float(lr)

    def update(self, params, grads):
        for key, p in _entries(params):
            p -= self.lr * grads[key]


class Momentum(_Optimizer):
    """Momentum: ``v = momentum * v - lr * g; p += v``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    momentum : float, default 0.9
        Weight of the previous velocity.
    """

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.v = {}

    def update(self, params, grads):
        for key, p in _entries(params):
            v = self._state(self.v, key, p)
            v *= self.momentum
            v -= self.lr * grads[key]
            p += v


class Nesterov(Momentum):
    """Nesterov's accelerated gradient, in the form that needs no look-ahead.

    ``v = momentum * v - lr * g; p += momentum * v - lr * g``, which is
    ``torch.optim.SGD(nesterov=True)`` with its buffer scaled by ``-lr``.
    The book writes the step as ``p += momentum**2 * v - (1 + momentum) * lr * g``
    with the new ``v``, which is this step only if ``v`` is the old one; this
    follows Sutskever et al. (2013).

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    momentum : float, default 0.9
        Weight of the previous velocity.
    """

    def update(self, params, grads):
        for key, p in _entries(params):
            v = self._state(self.v, key, p)
            step = self.lr * grads[key]
            v *= self.momentum
            v -= step
            p += self.momentum * v
            p -= step


class AdaGrad(_Optimizer):
    """AdaGrad: ``h += g*g; p -= lr * g / (sqrt(h) + eps)``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    eps : float, default 1e-7
        As the book's.
    """

    def __init__(self, lr=0.01, *, eps=1e-7):
        self.lr = float(lr)
        self.eps = float(eps)
        self.h = {}

    def update(self, params, grads):
        for key, p in _entries(params):
            g = grads[key]
            h = self._state(self.h, key, p)
            h += g * g
            p -= self.lr * g / (np.sqrt(h) + self.eps)


class RMSprop(_Optimizer):
    """RMSprop: ``h = decay_rate*h + (1-decay_rate)*g*g; p -= lr * g / (sqrt(h) + eps)``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    decay_rate : float, default 0.99
        Weight of the old mean square.
    eps : float, default 1e-7
        As the book's.
    """

    def __init__(self, lr=0.01, decay_rate=0.99, *, eps=1e-7):
        self.lr = float(lr)
        self.decay_rate = float(decay_rate)
        self.eps = float(eps)
        self.h = {}

    def update(self, params, grads):
        for key, p in _entries(params):
            g = grads[key]
            h = self._state(self.h, key, p)
            h *= self.decay_rate
            h += (1 - self.decay_rate) * g * g
            p -= self.lr * g / (np.sqrt(h) + self.eps)


class Adam(_Optimizer):
    """Adam (Kingma and Ba, 2015), in the book's form.

    With ``i`` the number of ``update`` calls so far (counted once per call,
    for all keys): ``m += (1-beta1)*(g - m); v += (1-beta2)*(g*g - v);
    p -= lr_i * m / (sqrt(v) + eps)`` with
    ``lr_i = lr * sqrt(1 - beta2**i) / (1 - beta1**i)``. That is the paper's
    bias-corrected update with eps applied to the uncorrected ``sqrt(v)``
    (section 2's "efficient" version), so it differs from
    ``torch.optim.Adam`` only in where eps enters.

    Parameters
    ----------
    lr : float, default 0.001
        The learning rate.
    beta1, beta2 : float
        Decay rates of the two moments, default 0.9 and 0.999.
    eps : float, default 1e-7
        As the book's.
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, *, eps=1e-7):
        self.lr = float(lr)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.eps = float(eps)
        self.iter = 0
        self.m = {}
        self.v = {}

    def update(self, params, grads):
        self.iter += 1
        lr_t = self.lr * math.sqrt(1 - self.beta2 ** self.iter) / (1 - self.beta1 ** self.iter)
        for key, p in _entries(params):
            m = self._state(self.m, key, p)
            v = self._state(self.v, key, p)
            # Fused in C: one pass over memory instead of numpy's ten (benchmarks/README.md).
            F.adam_update(p, grads[key], m, v, lr_t, self.beta1, self.beta2, self.eps)


_OPTIMIZERS = {cls.__name__.lower(): cls
               for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam)}


#: The optimisers by the names :func:`get_optimizer` and the command line take.
OPTIMIZER_NAMES = tuple(_OPTIMIZERS)


def get_optimizer(name, **kwargs):
    """The optimiser called ``name``, built with ``kwargs``.

    Parameters
    ----------
    name : str
        Any case: "sgd", "Adam", "momentum", "nesterov", "adagrad", "rmsprop".
    **kwargs
        The optimiser's arguments (``lr``, ``momentum``, ...).

    Returns
    -------
    object
        An optimiser with ``update(params, grads)``.
    """
    try:
        cls = _OPTIMIZERS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of "
                         f"{', '.join(c.__name__ for c in _OPTIMIZERS.values())}") from None
    return cls(**kwargs)
