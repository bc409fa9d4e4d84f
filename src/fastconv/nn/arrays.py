"""How layers take the arrays they are given."""
import math

import numpy as np

__all__ = ["as_float", "shown", "spread_bias", "samples"]


def as_float(x, dtype=None):
    """x as an array of ``dtype``, or of its own float dtype (float64 for ints).

    Strings, objects and complex numbers are refused rather than cast: a cast
    would fail obscurely, or silently drop the imaginary part.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be a real numeric array, got dtype {x.dtype}")
    if dtype is not None:
        return x.astype(dtype, copy=False)
    if x.dtype.kind != "f":
        return x.astype(np.float64)
    return x


def shown(value):
    """An int or (h, w) argument as a repr shows it: 2 for (2, 2)."""
    h, w = value if isinstance(value, (tuple, list)) else (value, value)
    return h if h == w else (h, w)


def spread_bias(b, size, dtype):
    """A bias as given, or a scalar one (the book's ``Convolution(W, 0)``)
    spread to one value per unit."""
    if np.ndim(b) == 0:
        return np.full(size, b, dtype=dtype)
    return b


def samples(x, input_dim, dtype):
    """A batch for a net taking ``input_dim`` samples: (N,) + input_dim in
    ``dtype``; flattened images (N, prod(input_dim)), as load_mnist gives
    them, are reshaped."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be a real numeric array, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"x must have shape (N,) + {input_dim}, got {x.shape}")
    if x.dtype != dtype:
        x = x.astype(dtype)
    if x.ndim == 2 and len(input_dim) > 1 and x.shape[1] == math.prod(input_dim):
        x = x.reshape((-1,) + input_dim)
    if x.shape[1:] != input_dim:
        raise ValueError(f"x must have shape (N,) + {input_dim}, got {x.shape}")
    return x
