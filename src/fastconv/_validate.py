"""Argument checking shared by every public op in :mod:`fastconv.functional`.

Everything here runs before any kernel touches memory, so that a bad call ends
in a ValueError or TypeError that names the argument and the value, and never
in a crash or a silently wrong result. Sizes are checked with Python's
unbounded ints, so an absurd shape is refused instead of overflowing.
"""
import operator
import sys

import numpy as np

__all__ = [
    "MAX_WINDOW_ARG", "out_array", "pair", "single_int", "positive_pair", "nonnegative_pair",
    "float_array", "shape4",
    "out_size", "check_output_fits", "index_array",
]


def _int(value, name):
    # bool is an int subclass, but stride=True is always a mistake.
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None


# Window arguments (kernel, stride, padding, dilation) above 2**31 - 1 are
# refused: then every product the C kernels form from two of them, or from one
# of them and an image size, fits in int64 (found by fuzzing under UBSan).
MAX_WINDOW_ARG = 2**31 - 1


def pair(value, name):
    """An int, or a pair of ints, as a (h, w) tuple of Python ints."""
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {tuple(value)!r}")
        h, w = _int(value[0], name), _int(value[1], name)
    else:
        h = w = _int(value, name)
    if max(h, w) > MAX_WINDOW_ARG:
        shown = value if isinstance(value, (tuple, list)) else h
        raise ValueError(f"{name} must be at most {MAX_WINDOW_ARG}, got {shown!r}")
    return h, w


def single_int(value, name):
    """A positive int (not a pair), for the book's separate filter_h/filter_w."""
    if isinstance(value, (tuple, list, np.ndarray)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return positive_pair(value, name)[0]


def positive_pair(value, name):
    h, w = pair(value, name)
    if h < 1 or w < 1:
        shown = value if isinstance(value, (tuple, list)) else h
        raise ValueError(f"{name} must be a positive integer, got {shown!r}")
    return h, w


def nonnegative_pair(value, name):
    h, w = pair(value, name)
    if h < 0 or w < 0:
        shown = value if isinstance(value, (tuple, list)) else h
        raise ValueError(f"{name} must be a non-negative integer, got {shown!r}")
    return h, w


def float_array(x, name, ndims, layout):
    """x as a C-contiguous, native-endian float32 or float64 array.

    float32 and float64 keep their type; any other real dtype (ints, bools,
    float16) becomes float64. ``ndims`` is the set of accepted ranks and
    ``layout`` names them in the error message.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype.itemsize in (4, 8):
        dtype = arr.dtype.newbyteorder("=")
    elif kind in "fiub":
        dtype = np.dtype(np.float64)
    else:
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim not in ndims:
        raise ValueError(f"{name} must be a {layout} array, got shape {arr.shape}")
    # Byte-swapped, Fortran-ordered and strided inputs are copied once here;
    # the kernels then only ever see one memory layout.
    return np.ascontiguousarray(arr, dtype=dtype)


def index_array(indices, name, shape):
    """indices as a C-contiguous native int64 array of exactly ``shape``."""
    arr = np.asarray(indices)
    if arr.dtype.kind != "i" or arr.dtype.itemsize != 8:
        raise TypeError(f"{name} must have dtype int64, got {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of dout {tuple(shape)}, got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.dtype(np.int64).newbyteorder("="))


def shape4(shape, name):
    """A 4-D (N, C, H, W) shape: N may be 0, the rest must be positive."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple (N, C, H, W), got {shape!r}") from None
    if len(dims) != 4:
        raise ValueError(f"{name} must have 4 entries (N, C, H, W), got {dims!r}")
    dims = tuple(_int(d, name) for d in dims)
    if dims[0] < 0 or min(dims[1:]) < 1:
        raise ValueError(f"{name} must have N >= 0 and C, H, W >= 1, got {dims!r}")
    return dims


def out_size(size, kernel, stride, pad, dilation=(1, 1), what="filter"):
    """Output (OH, OW) of a sliding window; refuses windows that do not fit."""
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padded = [s + 2 * p for s, p in zip(size, pad)]
    if spans[0] > padded[0] or spans[1] > padded[1]:
        raise ValueError(
            f"{what} {spans[0]}x{spans[1]} is larger than the padded input "
            f"{padded[0]}x{padded[1]}")
    return tuple((p - s) // st + 1 for p, s, st in zip(padded, spans, stride))


def check_output_fits(shape, itemsize, name="output"):
    """Refuse a result whose byte size does not fit in a signed 64-bit index.

    Zero-sized dimensions count as 1, so that an empty batch of absurd planes
    is refused as well: its per-plane index arithmetic would overflow too.
    """
    count = 1
    for d in shape:
        count *= max(int(d), 1)
    if count * itemsize > sys.maxsize:
        raise ValueError(
            f"{name} of shape {tuple(int(d) for d in shape)} would need "
            f"{count * itemsize} bytes, more than this platform can index")
    return count


def out_array(out, shape, dtype, name="out"):
    """A caller's output buffer, or a new one: it must match exactly, since a
    kernel writes straight into its memory."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or None, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous array")
    return out
