"""Argument checking shared by every public op in :mod:`fastconv.ops`.

Everything here runs before any kernel touches memory, so that a bad call ends
in a ValueError or TypeError that names the argument and the value, and never
in a crash or a silently wrong result. Sizes are checked with Python's
unbounded ints, so an absurd shape is refused instead of overflowing.
"""
import operator
import sys

import numpy as np

__all__ = ["float_array", "index_array", "shape4", "check_output_fits", "out_array",
           "no_overlap"]


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
            raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}: "
                            f"{exc}") from None
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


def shown(value, limit=80):
    """``repr(value)`` short enough for a one-line error: an array by its
    shape and dtype, anything else cut at ``limit`` characters."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shape4(shape, name, letters="NCHW", empty_batch=True):
    """A 4-D shape of Python ints: the first entry may be 0 when
    ``empty_batch``, the others must be positive. A string, floats or another
    length raise TypeError or ValueError naming ``name``."""
    layout = f"({', '.join(letters)})"
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__"):
        raise TypeError(f"{name} must be a tuple {layout} of ints, got {shown(shape)}")
    dims = tuple(shape)
    if len(dims) != 4:
        raise ValueError(f"{name} must have 4 entries {layout}, got {shown(shape)}")
    dims = tuple(_dim(d, name, layout) for d in dims)
    if dims[0] < (0 if empty_batch else 1) or min(dims[1:]) < 1:
        first = ">= 0" if empty_batch else ">= 1"
        raise ValueError(f"{name} must have {letters[0]} {first} and {', '.join(letters[1:])} "
                         f">= 1, got {dims!r}")
    return dims


def _dim(value, name, layout):
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple {layout} of ints, got an entry "
                        f"{shown(value)}") from None


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


def no_overlap(arrays):
    """Refuse arrays (a dict name -> array) of which two may share memory: the
    kernels read and write them in an order that assumes they do not."""
    items = [(k, a) for k, a in arrays.items() if isinstance(a, np.ndarray)]
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError(f"{name_a} and {name_b} may share memory; pass separate "
                                 f"arrays (a kernel writing one would change the other)")


def out_array(out, shape, dtype, name="out", inputs=None):
    """A caller's output buffer, or a new one: it must match exactly, since a
    kernel writes straight into its memory, and must not overlap any of
    ``inputs`` (a dict name -> array)."""
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
    for other, array in (inputs or {}).items():
        if isinstance(array, np.ndarray) and np.may_share_memory(out, array):
            raise ValueError(f"{name} may share memory with {other}; pass a separate array "
                             f"(the kernel would read values it has already overwritten)")
    return out
