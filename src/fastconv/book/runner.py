"""Putting the stand-ins in place and running a book script on them."""
import argparse
import contextlib
import os
import runpy
import sys
import types

import numpy as np

from ..nn.numerical import numerical_gradient as _numerical_gradient
from ..train import optim as _optim
from .. import nn as _layers
from .common import (BatchNormalization, Dropout, Float32Affine, Float32Convolution, Trainer,
                     col2im, conv_output_size, cross_entropy_error, identity_function, im2col,
                     relu, relu_grad, shuffle_dataset, sigmoid, sigmoid_grad, smooth_curve,
                     softmax, softmax_loss, step_function, sum_squared_error)
from .mnist import _book_load_mnist, init_mnist

__all__ = ["install", "installed", "run", "main", "MODULES"]

MODULES = ("common", "common.functions", "common.util", "common.layers", "common.gradient",
           "common.optimizer", "common.trainer", "dataset", "dataset.mnist")


def _module(name, path, doc, **names):
    module = types.ModuleType(name, doc)
    module.__dict__.update(names)
    if path is not None:
        module.__path__ = path
    return module


def _build(book_root, float32):
    def folder(name):
        d = os.path.join(book_root, name) if book_root else None
        return [d] if d and os.path.isdir(d) else []

    functions = dict(np=np, identity_function=identity_function, step_function=step_function,
                     sigmoid=sigmoid, sigmoid_grad=sigmoid_grad, relu=relu, relu_grad=relu_grad,
                     softmax=softmax, sum_squared_error=sum_squared_error,
                     cross_entropy_error=cross_entropy_error, softmax_loss=softmax_loss)
    util = dict(np=np, im2col=im2col, col2im=col2im, conv_output_size=conv_output_size,
                shuffle_dataset=shuffle_dataset, smooth_curve=smooth_curve)
    layers = dict(functions, im2col=im2col, col2im=col2im,
                  Convolution=Float32Convolution if float32 else _layers.Convolution,
                  Affine=Float32Affine if float32 else _layers.Affine,
                  Pooling=_layers.Pooling, Relu=_layers.Relu, Sigmoid=_layers.Sigmoid,
                  SoftmaxWithLoss=_layers.SoftmaxWithLoss, Dropout=Dropout,
                  BatchNormalization=BatchNormalization)
    optimizer = {cls.__name__: cls for cls in (_optim.SGD, _optim.Momentum, _optim.Nesterov,
                                                _optim.AdaGrad, _optim.RMSprop, _optim.Adam)}
    mnist = dict(np=np, load_mnist=_book_load_mnist(book_root), init_mnist=init_mnist,
                 train_num=60000,
                 test_num=10000, img_dim=(1, 28, 28), img_size=784)
    made = {
        "common": _module("common", folder("common"), "fastconv's stand-in for the book's common"),
        "common.functions": _module("common.functions", None, "fastconv.book", **functions),
        "common.util": _module("common.util", None, "fastconv.book", **util),
        "common.layers": _module("common.layers", None, "fastconv.book", **layers),
        "common.gradient": _module("common.gradient", None, "fastconv.book", np=np,
                                   numerical_gradient=_numerical_gradient,
                                   numerical_gradient_2d=_numerical_gradient),
        "common.optimizer": _module("common.optimizer", None, "fastconv.book", np=np,
                                    **optimizer),
        "common.trainer": _module("common.trainer", None, "fastconv.book", np=np,
                                  Trainer=Trainer, **optimizer),
        "dataset": _module("dataset", folder("dataset"), "fastconv's stand-in for the book's "
                                                         "dataset"),
        "dataset.mnist": _module("dataset.mnist", None, "fastconv.book", **mnist),
    }
    for name, module in made.items():
        if "." in name:
            parent, child = name.rsplit(".", 1)
            setattr(made[parent], child, module)
    return made


def install(book_root=None, *, float32=False):
    """Put the stand-ins for the book's modules into ``sys.modules`` (replacing any).

    Parameters
    ----------
    book_root : str or path-like, optional
        The book's top folder (holding ``common/`` and ``dataset/``), where
        modules that are not replaced are found.
    float32 : bool, default False
        Parameter layers compute on float32 copies of the weights.

    Returns
    -------
    dict
        The installed modules by name.
    """
    made = _build(os.fspath(book_root) if book_root else None, float32)
    sys.modules.update(made)
    return made


@contextlib.contextmanager
def installed(book_root=None, *, float32=False):
    """Context manager: :func:`install` for the duration of a ``with`` block; sys.modules is then restored.

    Parameters
    ----------
    book_root : str or path-like, optional
        As for :func:`install`.
    float32 : bool, default False
        As for :func:`install`.

    Yields
    ------
    dict
        The installed modules by name.
    """
    saved = {name: sys.modules.get(name) for name in MODULES}
    try:
        yield install(book_root, float32=float32)
    finally:
        for name in list(sys.modules):
            if name.split(".")[0] in ("common", "dataset") and name not in saved:
                del sys.modules[name]  # modules of the book loaded through the stand-ins
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def run(script, args=(), *, chdir=True, float32=False):
    """Run a book script as ``__main__`` on the stand-in modules.

    The script's folder comes first on ``sys.path`` and its parent after it.
    ``sys.path``, ``sys.argv``, the working directory and ``sys.modules`` are
    restored afterwards.

    Parameters
    ----------
    script : str or path-like
        The script to run.
    args : sequence of str
        Its command-line arguments (``sys.argv[1:]``).
    chdir : bool, default True
        Run from the script's folder.
    float32 : bool, default False
        As for :func:`install`.

    Returns
    -------
    dict
        The script's globals.
    """
    script = os.path.abspath(os.fspath(script))
    if not os.path.isfile(script):
        raise FileNotFoundError(f"no such script: {script}")
    folder = os.path.dirname(script)
    root = os.path.dirname(folder)
    saved_path, saved_argv, saved_cwd = list(sys.path), list(sys.argv), os.getcwd()
    loaded_before = set(sys.modules)
    sys.path[:0] = [folder]
    sys.path.append(root)
    sys.argv = [script, *args]
    try:
        if chdir:
            os.chdir(folder)
        with installed(root, float32=float32):
            return runpy.run_path(script, run_name="__main__")
    finally:
        os.chdir(saved_cwd)
        sys.path[:], sys.argv[:] = saved_path, saved_argv
        # The script's own modules (simple_convnet, ...): another book folder
        # may hold a different module of the same name.
        for name in set(sys.modules) - loaded_before:
            where = getattr(sys.modules[name], "__file__", None) or ""
            if os.path.abspath(where).startswith(root + os.sep):
                del sys.modules[name]


def main(argv=None):
    """The command ``python -m fastconv.book [--float32] [--no-chdir] SCRIPT [ARGS...]``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: the script's own ``sys.exit`` code, or 0 when it ends
        normally. A missing script (status 2) and missing or broken MNIST
        files (status 1) end in a one-line error through ``SystemExit``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m fastconv.book",
        description="Run a script of 'Deep Learning from Scratch' unchanged, with fastconv "
                    "behind the book's common/ and dataset/ modules.")
    parser.add_argument("--float32", action="store_true",
                        help="compute convolutions and affine layers in float32 (faster; "
                             "the book's weights stay float64)")
    parser.add_argument("--no-chdir", action="store_true",
                        help="stay in the current folder instead of the script's")
    parser.add_argument("script", help="the book's script, e.g. ch07/train_convnet.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    options = parser.parse_args(argv)
    if not os.path.isfile(options.script):
        parser.exit(2, f"{parser.prog}: error: no such script: {options.script}\n")
    from ..io.mnist import DatasetError
    try:
        run(options.script, options.args, chdir=not options.no_chdir, float32=options.float32)
    except SystemExit as exc:  # the script's own sys.exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except DatasetError as exc:  # MNIST missing or broken: the message says which file
        sys.stdout.flush()
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
