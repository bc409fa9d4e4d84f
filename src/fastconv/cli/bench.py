"""``fastconv bench``: how fast fastconv is on this machine."""
import contextlib

from ..io.checkpoint import atomic_path
from . import common as C

__all__ = ["add_parser", "run"]


def add_parser(sub):
    from .. import bench
    p = sub.add_parser("bench", help="time the C kernels against NumPy and PyTorch")
    bench.add_arguments(p)
    p.set_defaults(run=run)


def run(args):
    from .. import bench

    if args.json is None:
        return bench.run(args)
    target = args.json
    with contextlib.ExitStack() as stack:
        # The JSON goes to a temporary file beside the target, made now (so an
        # unwritable target is refused before the benchmarks run) and renamed
        # over the target only when they are done.
        try:
            args.json = stack.enter_context(atomic_path(target))
        except OSError as exc:
            raise C.CliError(f"cannot write --json {target}: {C.reason(exc)}") from None
        return bench.run(args)
