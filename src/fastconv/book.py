"""Run the book's own scripts on fastconv: ``python -m fastconv.book ch07/train_convnet.py``.

Before the script runs, modules stand in for the book's helpers in
``sys.modules``, with the book's names and signatures and fastconv behind
them:

- ``common.layers``: ``Convolution``, ``Pooling``, ``Affine``, ``Relu``,
  ``Sigmoid``, ``SoftmaxWithLoss`` are fastconv's layers; ``Dropout`` and
  ``BatchNormalization`` keep the book's arithmetic (dropout scaled by
  ``1 - dropout_ratio`` at test time; batch norm of 4-D input per C*H*W
  feature, its running variance starting at zero), so the book's own
  networks and weights give the book's results.
  Like the book's module it also offers ``common.functions``' names and
  ``im2col``/``col2im``.
- ``common.util``: ``im2col``, ``col2im`` (the compiled kernels),
  ``smooth_curve``, ``shuffle_dataset``, ``conv_output_size``.
- ``common.functions``: ``sigmoid``, ``relu``, ``softmax``,
  ``cross_entropy_error``, ... (plain NumPy, as small as the book's).
- ``common.gradient``: ``numerical_gradient(f, x)``.
- ``common.optimizer``: fastconv's ``SGD``, ``Momentum``, ``Nesterov``,
  ``AdaGrad``, ``RMSprop``, ``Adam``; like the book's, they also step a dict
  of Python numbers (ch06's ``optimizer_compare_naive.py``), see
  :mod:`fastconv.optim`.
- ``common.trainer``: a ``Trainer`` that trains and prints as the book's
  ("train loss:...", "=== epoch:1, train acc:..., test acc:... ===" and the
  final test accuracy).
- ``dataset.mnist``: ``load_mnist(normalize, flatten, one_hot_label)`` looks
  for MNIST where a reader of the book keeps it, in the ``dataset/`` folder of
  the script's book: first the four ``.gz`` files the book's loader downloads
  there (``train-images-idx3-ubyte.gz``, ...), read and checked by fastconv's
  IDX reader; else the ``mnist.pkl`` the book's loader caches them in, read
  by the restricted unpickler of :mod:`fastconv.book_params` (NumPy arrays
  only: a pickle naming anything else is refused before it runs) and checked
  as a dict of the book's four uint8 arrays. Without either, it reads them
  with :func:`fastconv.load_mnist` from ``$FASTCONV_DATA``, else fastconv's
  cache (downloading there with checksums when missing). (The book's own
  loader reads only its pickle, which it first makes from the ``.gz`` files,
  downloading those that are missing.) What comes back is the book's:
  images float32 in [0, 1] (uint8 without ``normalize``), (N, 784) or
  (N, 1, 28, 28); labels uint8, or one-hot rows (float32 here, float64 in
  the book). A broken file in the book's folder is an error naming it
  (``python -m fastconv.book`` prints it as one line and exits with 1), not
  a reason to look elsewhere.

Modules of the book that are not replaced (``common.multi_layer_net``, ...)
are still found in the book's folder, next to the script's folder, and use
the replacements. The script runs as ``__main__`` from its own folder (the
book's scripts open ``params.pkl`` and ``../dataset/...`` relative to it),
with that folder first on ``sys.path`` and its parent after it, as the
book's ``sys.path.append(os.pardir)`` expects.

``--float32`` makes the parameter layers compute in float32 on float32
copies of the book's float64 weights (the weights themselves stay float64
and are updated as usual): training runs on fastconv's float32 kernels.
Finite-difference gradient checks need the default float64.
"""
import argparse
import contextlib
import functools
import math
import os
import runpy
import sys
import types

import numpy as np

from . import functional as F
from . import nn as _layers
from .train import optim as _optim
from .nn.numerical import numerical_gradient as _numerical_gradient
from .train.trainer import Trainer as _Trainer

__all__ = ["install", "installed", "run", "main", "MODULES"]

MODULES = ("common", "common.functions", "common.util", "common.layers", "common.gradient",
           "common.optimizer", "common.trainer", "dataset", "dataset.mnist")


# --- common.functions ---------------------------------------------------------------

def identity_function(x):
    return x


def step_function(x):
    return (np.asarray(x) > 0).astype(int)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_grad(x):
    s = sigmoid(x)
    return s * (1 - s)


def relu(x):
    return np.maximum(x, 0)


def relu_grad(x):
    return (np.asarray(x) >= 0).astype(np.asarray(x).dtype)


def softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))  # no overflow
    return e / np.sum(e, axis=-1, keepdims=True)


def sum_squared_error(y, t):
    return 0.5 * np.sum((y - t) ** 2)


def cross_entropy_error(y, t):
    """Mean cross-entropy of probabilities y (N, K) or (K,); t labels or one-hot rows.

    Adds 1e-7 inside the log, as the book does, so that log(0) stays finite.
    """
    y, t = np.asarray(y), np.asarray(t)
    if y.ndim == 1:
        y, t = y.reshape(1, -1), t.reshape(1, -1)
    if t.size == y.size:
        t = t.argmax(axis=1)
    n = y.shape[0]
    return -np.sum(np.log(y[np.arange(n), t.reshape(n)] + 1e-7)) / n


def softmax_loss(X, t):
    return cross_entropy_error(softmax(X), t)


# --- common.util --------------------------------------------------------------------

def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """The book's im2col, on fastconv's kernel (float32 input stays float32)."""
    return F.im2col(input_data, filter_h, filter_w, stride, pad)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The book's col2im, on fastconv's kernel."""
    return F.col2im(col, input_shape, filter_h, filter_w, stride, pad)


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    return (input_size + 2 * pad - filter_size) / stride + 1


def shuffle_dataset(x, t):
    """x and t in one random order (NumPy's global generator, as the book)."""
    order = np.random.permutation(x.shape[0])
    return x[order], t[order]


def smooth_curve(x, window_len=11, beta=2):
    """A loss curve smoothed by a Kaiser window (as the book's plots), same length.

    The ends are extended by reversed copies of ``window_len - 1`` values.
    """
    x = np.asarray(x, dtype=float)
    k = window_len - 1
    padded = np.concatenate([x[k:0:-1], x, x[:-k - 1:-1]])
    window = np.kaiser(window_len, beta)
    y = np.convolve(window / window.sum(), padded, mode="valid")
    return y[k // 2:len(y) - k // 2]


# --- common.layers: the two whose arithmetic the book's weights depend on ---------------

class Dropout:
    """The book's (non-inverted) dropout.

    Training: keep each value with probability ``1 - dropout_ratio`` (mask
    drawn from NumPy's global generator), unscaled. Test: multiply every
    value by ``1 - dropout_ratio``. fastconv's own :class:`fastconv.Dropout`
    is inverted instead; the book's weights assume this one.
    """

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        if train_flg:
            self.mask = np.random.rand(*np.shape(x)) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


class BatchNormalization(_layers.BatchNormalization):
    """The book's batch norm: 4-D input is normalised per C*H*W feature (gamma of
    that size), not per channel as fastconv's :class:`fastconv.BatchNormalization`,
    and the running variance starts at zero, as the book's (fastconv's starts at
    one): a test-mode forward early in training, before the running statistics
    have settled, gives the book's outputs."""

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        if running_var is None:
            running_var = np.zeros(np.shape(gamma))
        super().__init__(gamma, beta, momentum, running_mean, running_var)

    def forward(self, x, train_flg=True):
        x = np.asarray(x)
        self.input_shape = x.shape
        out = super().forward(x.reshape(len(x), -1), train_flg)
        return out.reshape(x.shape)

    def backward(self, dout):
        dout = np.asarray(dout)
        return super().backward(dout.reshape(len(dout), -1)).reshape(self.input_shape)


class _Float32Compute:
    """Mixin: forward and backward run on float32 copies of W and b, taken at
    each forward; the book's own (float64) arrays stay in place otherwise."""

    def forward(self, x):
        self._master = (self.W, self.b)
        self._copies = (np.asarray(self.W, np.float32), np.asarray(self.b, np.float32))
        with self._swapped():
            return super().forward(np.asarray(x, np.float32))

    def backward(self, dout):
        with self._swapped():
            return super().backward(dout)

    @contextlib.contextmanager
    def _swapped(self):
        self.W, self.b = self._copies
        try:
            yield
        finally:
            self.W, self.b = self._master


class _Float32Convolution(_Float32Compute, _layers.Convolution):
    pass


class _Float32Affine(_Float32Compute, _layers.Affine):
    pass


# --- common.trainer -----------------------------------------------------------------

class Trainer(_Trainer):
    """The book's Trainer: ``train_step()`` draws a random batch (with NumPy's global
    generator, with replacement), updates, records and prints the loss, and at every
    epoch boundary evaluates and prints the accuracies; ``train()`` runs
    ``int(epochs * train_size / mini_batch_size)`` steps, then prints the test accuracy.

    Where the batch size does not divide the training set, the book stops
    evaluating after the first epoch; this one evaluates whenever an epoch's
    worth of iterations has passed. A network with ``loss_and_gradient`` (any
    fastconv model) gives the batch loss from the same pass as its gradient
    (before the update); otherwise, as in the book, ``loss`` is called after
    the update.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20,
                 mini_batch_size=100, optimizer="SGD", optimizer_param={"lr": 0.01},
                 evaluate_sample_num_per_epoch=None, verbose=True):
        super().__init__(network, x_train, t_train, x_test, t_test, epochs=epochs,
                         mini_batch_size=mini_batch_size, optimizer=optimizer,
                         optimizer_param=optimizer_param,
                         evaluate_sample_num_per_epoch=evaluate_sample_num_per_epoch,
                         verbose=verbose)
        self.iter_per_epoch = max(self.train_size / self.batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)

    def train_step(self):
        batch = np.random.choice(self.train_size, self.batch_size)
        x, t = self.x_train[batch], self.t_train[batch]
        if hasattr(self.network, "loss_and_gradient"):
            loss, grads = self.network.loss_and_gradient(x, t)
            self.optimizer.update(self.network.params, grads)
        else:
            grads = self.network.gradient(x, t)
            self.optimizer.update(self.network.params, grads)
            loss = self.network.loss(x, t)
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))
        i, per = self.current_iter, self.iter_per_epoch
        if i == 0 or math.floor(i / per) != math.floor((i - 1) / per):
            self.current_epoch += 1
            train_acc, test_acc = self._evaluate()
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)
            if self.verbose:
                print(f"=== epoch:{self.current_epoch}, train acc:{train_acc}, "
                      f"test acc:{test_acc} ===")
        self.current_iter += 1

    def train(self):
        for _ in range(self.max_iter):
            self.train_step()
        self.final_test_acc = float(self.network.accuracy(self.x_test, self.t_test))
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print(f"test acc:{self.final_test_acc}")


# --- dataset.mnist ------------------------------------------------------------------

#: The book's pickle of MNIST (dataset/mnist.py's save_file) and its keys, in the
#: order of the four files.
BOOK_PICKLE = "mnist.pkl"
BOOK_KEYS = ("train_img", "train_label", "test_img", "test_label")


def load_mnist(normalize=True, flatten=True, one_hot_label=False, *, book_root=None):
    """The book's load_mnist: MNIST from ``book_root/dataset`` (its four ``.gz``
    files, else its ``mnist.pkl``), else ``$FASTCONV_DATA``, else fastconv's cache.

    Images are float32 in [0, 1] (uint8 without ``normalize``), (N, 784) or
    (N, 1, 28, 28); labels uint8, or one-hot rows (float32). The stand-in
    module's ``load_mnist`` is this with the running script's book as
    ``book_root``. Raises :class:`fastconv.datasets.DatasetError` naming the
    file when a file of the book's folder is corrupt, truncated or, for the
    pickle, not the book's dict of four uint8 arrays or not made of NumPy
    arrays alone (refused unrun).
    """
    from .datasets import (MNIST_FILES, DatasetUnavailableError, mnist_from_arrays,
                           read_mnist_files)
    from .datasets import load_mnist as _load
    flags = dict(normalize=normalize, flatten=flatten, one_hot_label=one_hot_label)
    folder = os.path.join(os.fspath(book_root), "dataset") if book_root else None
    if folder:
        gz = {name: os.path.join(folder, name + ".gz") for name in MNIST_FILES}
        if all(os.path.isfile(p) for p in gz.values()):
            return mnist_from_arrays(read_mnist_files(gz), source=folder, **flags)
        pickled = os.path.join(folder, BOOK_PICKLE)
        if os.path.isfile(pickled):
            return mnist_from_arrays(_read_book_pickle(pickled), source=pickled, **flags)
    try:
        return _load(**flags)
    except DatasetUnavailableError as exc:
        if not folder:
            raise
        raise DatasetUnavailableError(
            f"MNIST is not in the book's folder {folder} (neither the four .gz files nor "
            f"{BOOK_PICKLE}), and:\n{exc}") from None


def _read_book_pickle(path):
    """{"train": (images, labels), "test": (...)} from the book's mnist.pkl, unpickled
    with NumPy arrays allowed and nothing else."""
    from .book_params import BookParamsError, read_pickled_arrays
    from .datasets import DatasetError
    try:
        data = read_pickled_arrays(path)
    except BookParamsError as exc:
        raise DatasetError(str(exc)) from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} holds a {type(data).__name__}, expected the book's dict "
                           f"of {', '.join(BOOK_KEYS)}")
    missing = [key for key in BOOK_KEYS if key not in data]
    if missing:
        raise DatasetError(f"{path}: expected the book's dict of {', '.join(BOOK_KEYS)}; "
                           f"it has no {', '.join(map(repr, missing))}")
    return {"train": (data["train_img"], data["train_label"]),
            "test": (data["test_img"], data["test_label"])}


def init_mnist():
    """Nothing to do: fastconv.load_mnist fetches and caches the files when needed."""


# --- installing the modules -------------------------------------------------------------

def _book_load_mnist(book_root):
    """load_mnist with the book's signature, looking in ``book_root`` first."""
    @functools.wraps(load_mnist)
    def load(normalize=True, flatten=True, one_hot_label=False):
        return load_mnist(normalize, flatten, one_hot_label, book_root=book_root)
    return load


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
                  Convolution=_Float32Convolution if float32 else _layers.Convolution,
                  Affine=_Float32Affine if float32 else _layers.Affine,
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

    ``book_root`` is the book's top folder (holding ``common/`` and
    ``dataset/``), where modules that are not replaced are found. Returns
    the modules by name.
    """
    made = _build(os.fspath(book_root) if book_root else None, float32)
    sys.modules.update(made)
    return made


@contextlib.contextmanager
def installed(book_root=None, *, float32=False):
    """:func:`install` for the duration of a ``with`` block; sys.modules is then restored."""
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
    """Run a book script as ``__main__`` on the stand-in modules; returns its globals.

    The script's folder comes first on ``sys.path`` and its parent after it;
    with ``chdir`` the working directory is the script's folder meanwhile.
    ``sys.path``, ``sys.argv``, the working directory and ``sys.modules``
    are restored afterwards.
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
    from .datasets import DatasetError
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
