"""The ``fastconv`` command line: ``train``, ``eval``, ``viz``, ``predict``, ``export``,
``bench``, ``convert`` and ``serve``.

One handler in :func:`main` turns every failure a user can cause into one line
on stderr, never a traceback: a usage error (a bad option or option value)
exits with status 2, any other error (a missing or damaged file, an output
folder that cannot be written, fastconv's own ValueError or TypeError, an
OSError) with status 1. Output folders are checked before any work starts,
and a command that fails leaves no empty output folder behind. Every file is
written atomically (a failed write keeps the previous file); if the trained
parameters still cannot be saved, they go to the temporary folder and the
error says where. Ctrl-C during training saves a checkpoint first (exit
status 130).
"""
import sys

from . import bench, common, convert, evaluate, export, predict, serve, train, viz
from .common import MODELS, CliError, UsageError

__all__ = ["main", "build_parser", "MODELS", "CliError", "UsageError"]

COMMANDS = (train, evaluate, viz, predict, export, bench, convert, serve)


def build_parser():
    """The parser of every command (each command module adds its own)."""
    parser = common.Parser(
        prog="fastconv",
        description="Train and inspect the CNNs of 'Deep Learning from Scratch' on MNIST, "
                    "on C/OpenMP kernels.")
    sub = parser.add_subparsers(dest="command",
                                metavar="{train,eval,viz,predict,export,bench,convert,serve}",
                                required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


# What a user can cause, and fastconv reports as such: its own errors (ValueError and
# TypeError subclasses, as the library raises them) and the operating system's.
_USER_ERRORS = (CliError, ValueError, TypeError, OSError, MemoryError)


def _one_line(exc):
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + text if text else ''}"
    return text or type(exc).__name__


# What each command imports beyond the library; they come with fastconv[cli].
_EXTRAS = {"train": ("tqdm", "matplotlib"), "eval": ("matplotlib",), "viz": ("matplotlib",),
           "serve": ("PIL",)}


def _missing_extras(command):
    missing = []
    for name in _EXTRAS.get(command, ()):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return missing


def main(argv=None):
    """Run the command line; returns the exit status.

    0 on success, 1 for an error, 2 for a usage error (argparse's exit with
    SystemExit(2)), 130 after Ctrl-C. Errors are one line on stderr.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = _missing_extras(args.command)
    if missing:
        print(f"fastconv {args.command}: error: needs {' and '.join(missing)}, which come with "
              "the cli extra: pip install 'fastconv[cli]'", file=sys.stderr)
        return 1
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as exc:
        print(f"fastconv {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return getattr(exc, "status", 1)
