"""One sliding window: kernel, stride, padding and dilation, validated once.

Every op, layer and model that slides a window over an image builds a
:class:`Window` and asks it for the output size; the formula lives here and
nowhere else in Python (csrc/common.h has the C copy, ``fc_out_size``).
The argument order is PyTorch's: kernel, stride, padding, dilation.
"""
import math
import numbers
import operator
from dataclasses import dataclass

import numpy as np

from .validate import shown

__all__ = ["Window", "pair", "positive_int", "MAX_WINDOW_ARG"]

# Window arguments above 2**31 - 1 are refused: then every product the C
# kernels form from two of them, or from one of them and an image size, fits
# in int64 (found by fuzzing under UBSan).
MAX_WINDOW_ARG = 2**31 - 1


def _int(value, name):
    # bool is an int subclass, but stride=True is always a mistake.
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {shown(value)}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {shown(value)}") from None


def positive_int(value, name, *, integral_floats=False):
    """``value`` as a Python int of at least 1, checked the same way for every
    count fastconv takes (channels, sizes, batch sizes, repeats).

    TypeError for what is not a real number (``"3"``, None, True) and, unless
    ``integral_floats``, for a float; ValueError for 0 or less and, with
    ``integral_floats``, for a float that is not a whole number (2.5, inf).
    ``integral_floats`` is for the arguments the book's code passes as floats
    (its ``mini_batch_size`` computed by division, say).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive integer, got {shown(value)}")
    if not isinstance(value, (int, np.integer)):
        if not integral_floats:
            raise TypeError(f"{name} must be a positive integer, got {shown(value)}")
        if not math.isfinite(value) or int(value) != value:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def pair(value, name, minimum=None):
    """An int, or a pair of ints, as an (h, w) tuple of Python ints, each at
    least ``minimum`` (when given) and at most MAX_WINDOW_ARG."""
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {shown(value)}")
        h, w = _int(value[0], name), _int(value[1], name)
        given = tuple(value)
    else:
        h = w = _int(value, name)
        given = h
    if minimum is not None and min(h, w) < minimum:
        what = "a positive" if minimum == 1 else "a non-negative"
        raise ValueError(f"{name} must be {what} integer, got {given!r}")
    if max(h, w) > MAX_WINDOW_ARG:
        raise ValueError(f"{name} must be at most {MAX_WINDOW_ARG}, got {given!r}")
    return h, w


@dataclass(frozen=True)
class Window:
    """A validated 2-D sliding window; every field is an (h, w) pair of ints.

    Build it with :meth:`of`, which checks each argument and names it as the
    caller spelt it (``names``) in any error.
    """

    kernel: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    what: str = "kernel"  # how errors name the window ("filter", "pool window")

    @classmethod
    def of(cls, kernel, stride=1, padding=0, dilation=1, *, what="kernel",
           names=("kernel_size", "stride", "padding", "dilation")):
        """Validate and build: kernel, stride, dilation positive, padding >= 0."""
        return cls(pair(kernel, names[0], 1), pair(stride, names[1], 1),
                   pair(padding, names[2], 0), pair(dilation, names[3], 1), what)

    @property
    def span(self):
        """The (h, w) extent of the window on the input, dilation included."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    def out_size(self, h, w):
        """Output (OH, OW) on an (h, w) input: ``(H + 2P - D*(K-1) - 1) // S + 1``.

        Raises ValueError when the window does not fit in the padded input.
        """
        spans = self.span
        padded = (h + 2 * self.padding[0], w + 2 * self.padding[1])
        if spans[0] > padded[0] or spans[1] > padded[1]:
            raise ValueError(
                f"{self.what} {spans[0]}x{spans[1]} is larger than the padded input "
                f"{padded[0]}x{padded[1]}")
        return tuple((p - s) // st + 1 for p, s, st in zip(padded, spans, self.stride))

    def c_args(self):
        """kernel, stride, padding as six ints, the order of csrc/fastconv.h."""
        return (*self.kernel, *self.stride, *self.padding)
