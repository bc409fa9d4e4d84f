"""Finite-difference gradients, and a check of a network's backprop against them."""
import contextlib
import inspect

import numpy as np

from ..nn.numerical import numerical_gradient

__all__ = ["numerical_gradient", "relative_error", "gradient_check"]


def relative_error(a, b, tiny=1e-300):
    """Largest elementwise ``|a - b| / max(|a| + |b|, tiny)``.

    Parameters
    ----------
    a, b : ndarray
        Arrays of one shape.
    tiny : float, default 1e-300
        Floor of the denominator.

    Returns
    -------
    float
        The largest relative error; 0.0 for empty arrays.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), tiny)))


def gradient_check(network, x, t, h=1e-4):
    """Compare ``network.gradient`` with ``network.numerical_gradient``.

    The backprop gradient is the network's own, in its dtype. The finite
    differences of every :class:`fastconv.Net` net are taken in float64,
    on a float64 copy of a float32 net (in float32 they would be mostly
    rounding), so on a float32 net the errors reflect float32 backprop: about
    1e-7 relative where the gradient is not tiny. When the network has
    ``fixed_dropout_masks`` (every :class:`fastconv.Net` net does), both
    gradients see the same dropout masks. Max pooling and ReLU have kinks:
    an entry whose step ``h`` crosses one shows a large error in any dtype.

    Parameters
    ----------
    network : object
        A net with ``gradient(x, t)`` and ``numerical_gradient(x, t)``.
    x, t : ndarray
        A batch of inputs and their labels.
    h : float, default 1e-4
        The finite-difference step.

    Returns
    -------
    dict
        Parameter name -> largest elementwise relative error (see
        :func:`relative_error`).
    """
    fixed = getattr(network, "fixed_dropout_masks", None)
    with fixed() if fixed is not None else contextlib.nullcontext():
        analytic = network.gradient(x, t)
        if "h" in inspect.signature(network.numerical_gradient).parameters:
            numeric = network.numerical_gradient(x, t, h=h)
        else:  # a book-style network
            numeric = network.numerical_gradient(x, t)
    return {name: relative_error(analytic[name], numeric[name]) for name in numeric}
