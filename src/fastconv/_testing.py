"""Hooks for fastconv's own tests and benchmarks: nothing here is public API.

They reach into the runtime and the planner the way no user call does: force
every kernel call to split over threads, read the size of the last OpenMP team,
force one convolution plan, or cap the direct kernels at their baseline build.
"""
import contextlib

from . import _runtime as R
from .ops import conv_plans

__all__ = ["force_parallel_split", "last_team_size", "use_conv_plan", "force_baseline_isa"]


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
    (``"direct"``, ``"per_image"`` or ``"rows"``) wherever it can serve the
    call; ``"direct"`` still needs the C backend and stride 1."""
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
