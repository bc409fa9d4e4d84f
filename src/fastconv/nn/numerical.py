"""Finite differences: the gradient of a scalar function, and of a net's loss.

The reference a net's backprop is checked against (the book's
``numerical_gradient``), always computed in float64.
"""
import contextlib

import numpy as np

__all__ = ["numerical_gradient", "net_numerical_gradient", "fixed_dropout_masks",
           "float64_copy"]


def numerical_gradient(f, x, h=1e-4):
    """Central-difference gradient of the scalar function ``f`` at ``x``.

    Parameters
    ----------
    f : callable
        Takes x and returns a scalar. It is called with ``x`` itself, perturbed
        in place one element at a time, so it may also read x through another
        reference (a network's parameter dict).
    x : ndarray
        Writable float array of any shape; restored exactly on return, also
        when f raises.
    h : float, default 1e-4
        The step. The difference is divided by the step actually taken, which in
        float32 is not exactly ``2*h``.

    Returns
    -------
    ndarray
        Array of x's shape and dtype: ``(f(x + h e_i) - f(x - h e_i)) / (2h)``.
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError(f"x must be a float ndarray, got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')}".rstrip())
    grad = np.zeros_like(x)
    # The iterator only yields indices: writes go through x[i], so that f sees them.
    it = np.nditer(x, flags=["multi_index", "refs_ok", "zerosize_ok"])
    for _ in it:
        i = it.multi_index
        original = x[i]
        try:
            x[i] = original + h
            upper = x[i]
            f_upper = f(x)
            x[i] = original - h
            lower = x[i]
            f_lower = f(x)
        finally:
            x[i] = original
        grad[i] = (f_upper - f_lower) / (upper - lower)
    return grad


@contextlib.contextmanager
def fixed_dropout_masks(net):
    """Within this block, each Dropout of ``net`` draws one mask and then keeps it.

    Makes the training-mode loss a deterministic function of the parameters,
    as a finite-difference check needs.
    """
    drops = [layer for name, layer in net.layers.items()
             if net.layer_types[name].kind == "dropout" and not layer.frozen]
    for layer in drops:
        layer.mask, layer.frozen = None, True
    try:
        yield net
    finally:
        for layer in drops:
            layer.frozen = False


def net_numerical_gradient(net, x, t, h=1e-4):
    """Gradient of ``net.loss(x, t)`` by central differences (slow; for checking).

    Always computed in float64: a float32 net is copied to a float64 one
    (same specs, parameters and batch-norm statistics), since in float32 a
    step of 1e-4 changes the loss by about its own rounding error. The result
    has the dtype of ``params``. Each Dropout draws one mask at the start and
    keeps it throughout (a new draw, not the net's last mask), and the
    batch-norm running statistics are restored afterwards.
    """
    x = net._input(x)
    if net.dtype != np.float64:
        grads = net_numerical_gradient(net._float64_copy(), x, t, h)
        return {name: g.astype(net.dtype) for name, g in grads.items()}
    norms = [layer for name, layer in net.layers.items()
             if net.layer_types[name].kind == "batchnorm"]
    saved = [(layer.running_mean.copy(), layer.running_var.copy()) for layer in norms]
    try:
        with fixed_dropout_masks(net):
            return {name: numerical_gradient(lambda _: net.loss(x, t), p, h)
                    for name, p in net.params.items()}
    finally:
        for layer, (mean, var) in zip(norms, saved):
            layer.running_mean[...] = mean
            layer.running_var[...] = var


def float64_copy(net, build):
    """A float64 net computing the same function as ``net``; ``build(input_dim,
    layer_specs, dtype=...)`` makes the plain net (:class:`fastconv.Net`)."""
    twin = build(net.input_dim, net.layer_specs, dtype=np.float64)
    for name, array in net.params.items():
        twin.params[name] = array
    for name, mine in net.layers.items():
        its, kind = twin.layers[name], net.layer_types[name].kind
        if kind == "batchnorm":
            its.running_mean[...] = mine.running_mean
            its.running_var[...] = mine.running_var
            its.momentum, its.eps = mine.momentum, mine.eps
        elif kind == "dropout":
            its.mask = None if mine.mask is None else mine.mask.copy()
            its.frozen = mine.frozen
    return twin

