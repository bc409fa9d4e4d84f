"""The ``fastconv`` command line: ``train``, ``eval``, ``viz`` and ``bench``."""
import argparse
import sys

__all__ = ["main"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastconv",
        description="Train and inspect the CNNs of 'Deep Learning from Scratch' on MNIST, "
                    "on C/OpenMP kernels.")
    sub = parser.add_subparsers(dest="command", metavar="{bench}", required=True)
    from . import bench
    p = sub.add_parser("bench", help="time the C kernels against NumPy and PyTorch")
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
