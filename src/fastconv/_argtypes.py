"""argparse types shared by the command line and the benchmarks.

Each is a function of the option's text that returns the value or raises
argparse.ArgumentTypeError, which argparse reports as a usage error (one line,
exit status 2) naming the option.
"""
import argparse
import math

__all__ = ["number", "positive_int", "non_negative_int", "positive_float", "int_in_range",
           "thread_count"]


def number(convert, accept, what):
    """An argparse type: ``convert(text)``, refused unless ``accept(value)``.

    ``what`` completes the message "expected {what}, got '{text}'".
    """
    def parse(text):
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


def int_in_range(low, high):
    """An argparse type for an integer in ``[low, high]``."""
    return number(int, lambda v: low <= v <= high, f"an integer from {low} to {high}")


non_negative_int = number(int, lambda v: v >= 0, "a non-negative integer")
positive_int = number(int, lambda v: v >= 1, "a positive integer")
positive_float = number(float, lambda v: v > 0 and math.isfinite(v), "a positive number")


def thread_count(text):
    """An argparse type for ``--threads``: a positive integer that
    :func:`fastconv.set_num_threads` accepts on this machine."""
    from ._runtime import max_threads_allowed
    limit = max_threads_allowed()
    return int_in_range(1, limit)(text)
