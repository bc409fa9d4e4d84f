"""The stand-ins for the book's ``common`` modules: functions, util, layers
(the two whose arithmetic the book's weights depend on, and float32 compute),
gradient and trainer, with the book's names and fastconv behind them."""
import contextlib
import math

import numpy as np

from .. import functional as F
from .. import nn as _layers
from ..train.trainer import Trainer as _Trainer

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


class Float32Compute:
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


class Float32Convolution(Float32Compute, _layers.Convolution):
    pass


class Float32Affine(Float32Compute, _layers.Affine):
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
