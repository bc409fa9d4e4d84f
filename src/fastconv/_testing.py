"""Hooks for fastconv's own tests and benchmarks: nothing here is public API.

They reach into the runtime and the planner the way no user call does: force
every kernel call to split over threads, read the size of the last OpenMP team,
force one convolution plan, or cap the direct kernels at their baseline build.
"""
import contextlib

from . import _runtime as R
from .ops import conv_plans

__all__ = ["force_parallel_split", "last_team_size", "use_conv_plan", "force_baseline_isa",
           "cap_isa"]


@contextlib.contextmanager
def force_parallel_split():
    """Split every call, however small, over all threads (grain 1), so that
    small inputs exercise the multi-threaded code paths (this thread only)."""
    token = R.grain.set(1)
    try:
        yield
    finally:
        R.grain.reset(token)


def last_team_size(reset=False):
    """The team size of the last parallel region any kernel ran (0 if none
    ran since the last reset). ``reset=True`` clears it and returns the value
    it had."""
    if R.ext is None:
        return 0
    value = R.ext.last_team()
    if reset:
        R.ext.reset_team()
    return value


def use_conv_plan(plan):
    """Inside the block, the calling thread's convolutions run ``plan``
    (``"direct"``, ``"blocked"``, ``"per_image"`` or ``"rows"``) wherever it
    can serve the call; ``"direct"`` and ``"blocked"`` still need the C backend
    and stride 1 (``"blocked"`` also float32 and padding <= kernel - 1)."""
    return conv_plans.forced(plan)


@contextlib.contextmanager
def force_baseline_isa():
    """Inside the block the direct kernels run their baseline build, whatever
    the CPU and FASTCONV_ISA allow (process-wide: not for concurrent tests)."""
    R.ext.conv_force_baseline(True)
    try:
        yield
    finally:
        R.ext.conv_force_baseline(False)


@contextlib.contextmanager
def cap_isa(level):
    """Inside the block the direct and the blocked kernels use at most the
    instruction set ``level`` (0 baseline, 1 AVX2, 2 AVX-512, or its name), as
    FASTCONV_ISA would; afterwards FASTCONV_ISA's cap (or none) again
    (process-wide: not for concurrent tests)."""
    if isinstance(level, str):
        level = R.ISAS.index(level)
    R.ext.conv_cap_isa(level)
    try:
        yield
    finally:
        cap = R.isa_cap()
        R.ext.conv_cap_isa(R.ISAS.index(cap) if cap else 1 << 30)
