"""Mini-batch training of a network, with the book's Trainer interface."""
import contextlib
import math
import numbers
import signal
import threading
import time

import numpy as np

from .optim import get_optimizer
from ..ops.window import positive_int

__all__ = ["Trainer"]


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold back SIGINT (Ctrl-C) until the block is done, then deliver it.

    An update and its bookkeeping then happen entirely or not at all. Only the
    main thread receives signals, so elsewhere this does nothing.
    """
    # getsignal gives None for a handler set outside Python, which could not be restored.
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is None):
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)  # the previous handler raises KeyboardInterrupt


class Trainer:
    """Train ``network`` on (x_train, t_train) and evaluate on both sets every epoch.

    Every epoch is one pass over a fresh permutation of the training set: no
    sample repeats and the last, smaller batch is kept (the book draws
    batches with replacement). The accuracies are evaluated at the end of
    every epoch, also when the batch size does not divide the training set
    (the book then stops evaluating).

    Parameters
    ----------
    network : object
        Has ``params``, ``gradient(x, t)``, ``loss(x, t)`` and
        ``accuracy(x, t)``; ``loss_and_gradient(x, t)``, when present, saves
        a forward pass.
    x_train, t_train, x_test, t_test : ndarray
        Arrays indexed by sample on axis 0.
    epochs : float, default 20
        Number of passes over the training set; may be fractional, as in the
        book: the run makes ``int(epochs * iter_per_epoch)`` updates, the last
        pass stopping early (it is still evaluated and recorded).
    mini_batch_size : int, default 100
        Samples per update.
    optimizer : str or object, default "SGD"
        A name for :func:`fastconv.get_optimizer` ("SGD", "Adam", ...) or an
        object with ``update(params, grads)``.
    optimizer_param : dict, optional
        Keyword arguments of the optimiser, default ``{'lr': 0.01}``.
    evaluate_sample_num_per_epoch : int, optional
        Evaluate the per-epoch accuracies on the first this many samples of
        each set (None: all of them).
    verbose : bool, default True
        Print one line per epoch.
    seed : int, optional
        Seed of the shuffling.
    on_iteration : callable, optional
        Called as ``on_iteration(trainer, iteration, loss)`` after every update
        (iteration counts from 1 over the whole run).
    on_epoch : callable, optional
        Called as ``on_epoch(trainer, epoch, record)`` after every epoch's
        evaluation, with the record appended to ``history``.
    train_eval_samples : int, optional
        If given, the per-epoch training accuracy uses only the first this many
        training samples (a full pass over 60,000 MNIST images costs a third of
        an epoch), while the test accuracy still uses every test sample.
    batch_transform : callable, optional
        If given, ``batch_transform(x, rng)`` returns the batch actually trained
        on (data augmentation), with the trainer's generator.

    Attributes
    ----------
    train_loss_list : list of float
        The loss of every mini-batch, before its update.
    train_acc_list, test_acc_list : list of float
        Per epoch.
    epoch_loss_list : list of float
        Per epoch, the mean of its mini-batch losses.
    epoch_time_list : list of float
        Per epoch, seconds of training plus evaluation.
    history : list of dict
        Per epoch: epoch, loss, train_acc, test_acc, seconds.
    current_iter, current_epoch : int
        Completed updates and epochs.
    final_test_acc : float
        Set by ``train()``.

    Notes
    -----
    Ctrl-C (KeyboardInterrupt) or an exception from a callback propagates.
    Ctrl-C is held back while an update is applied and recorded, so the
    parameters, the optimiser's state and the lists always agree: they hold
    the completed iterations and epochs. ``train()`` may then be called again;
    it runs the interrupted epoch anew and the remaining ones.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20,
                 mini_batch_size=100, optimizer="SGD", optimizer_param=None,
                 evaluate_sample_num_per_epoch=None, verbose=True, *, seed=None,
                 on_iteration=None, on_epoch=None, train_eval_samples=None,
                 batch_transform=None):
        if len(x_train) != len(t_train) or len(x_test) != len(t_test):
            raise ValueError(f"x and t differ in length: train {len(x_train)} vs "
                             f"{len(t_train)}, test {len(x_test)} vs {len(t_test)}")
        if len(x_train) == 0:
            raise ValueError("the training set is empty")
        positive_int(mini_batch_size, "mini_batch_size", integral_floats=True)
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Real):
            raise TypeError(f"epochs must be a number, got {epochs!r}")
        if not math.isfinite(epochs) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative number, got {epochs!r}")
        self.network = network
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        self.epochs = int(epochs) if float(epochs).is_integer() else float(epochs)
        self.batch_size = int(mini_batch_size)
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.train_eval_samples = train_eval_samples
        self.batch_transform = batch_transform
        self.verbose = verbose
        self.on_iteration = on_iteration
        self.on_epoch = on_epoch
        if hasattr(optimizer, "update"):
            self.optimizer = optimizer
        else:
            param = {"lr": 0.01} if optimizer_param is None else dict(optimizer_param)
            self.optimizer = get_optimizer(optimizer, **param)
        self._rng = np.random.default_rng(seed)

        self.train_size = len(x_train)
        self.iter_per_epoch = math.ceil(self.train_size / self.batch_size)
        self.max_iter = int(self.epochs * self.iter_per_epoch)
        # Passes over the data, the last one possibly partial.
        self.num_passes = math.ceil(self.max_iter / self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0
        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []
        self.epoch_loss_list = []
        self.epoch_time_list = []
        self.history = []
        self.final_test_acc = None

    def _loss_and_gradient(self, x, t):
        net = self.network
        if hasattr(net, "loss_and_gradient"):
            loss, grads = net.loss_and_gradient(x, t)
        else:
            grads = net.gradient(x, t)
            loss = net.loss(x, t)
        return float(loss), grads

    def train_step(self, x=None, t=None):
        """One update.

        ``train_step(x, t)`` trains on the batch (x, t) and records nothing:
        :meth:`train` and :meth:`train_epoch` keep the lists. ``train_step()``,
        as in the book, draws ``mini_batch_size`` distinct training samples
        at random (with the trainer's generator), trains on them, appends the
        loss to ``train_loss_list`` and counts the update in ``current_iter``;
        it does not evaluate (the book's does at epoch boundaries; use
        :meth:`train_epoch` or :meth:`train` for that).

        Parameters
        ----------
        x, t : ndarray, optional
            A batch and its labels; both or neither.

        Returns
        -------
        float
            The batch loss before the update.
        """
        if (x is None) != (t is None):
            raise TypeError("train_step takes both x and t, or neither")
        if x is not None:
            loss, grads = self._loss_and_gradient(x, t)
            with _interrupts_deferred():
                self.optimizer.update(self.network.params, grads)
            return loss
        return self._step_on(self._rng.choice(
            self.train_size, min(self.batch_size, self.train_size), replace=False))

    def _step_on(self, batch):
        """One counted update on the training samples at indices ``batch``."""
        x = self.x_train[batch]
        if self.batch_transform is not None:
            x = self.batch_transform(x, self._rng)
        loss, grads = self._loss_and_gradient(x, self.t_train[batch])
        with _interrupts_deferred():
            self.optimizer.update(self.network.params, grads)
            self.train_loss_list.append(loss)
            self.current_iter += 1
        if self.on_iteration is not None:
            self.on_iteration(self, self.current_iter, loss)
        return loss

    def _evaluate(self):
        k = self.evaluate_sample_num_per_epoch
        x_train, t_train, x_test, t_test = self.x_train, self.t_train, self.x_test, self.t_test
        if k is not None:
            x_train, t_train, x_test, t_test = x_train[:k], t_train[:k], x_test[:k], t_test[:k]
        if self.train_eval_samples is not None:
            x_train, t_train = x_train[:self.train_eval_samples], t_train[:self.train_eval_samples]
        return (float(self.network.accuracy(x_train, t_train)),
                float(self.network.accuracy(x_test, t_test)))

    def train_epoch(self, max_batches=None):
        """One shuffled pass over the training set, then the evaluation.

        Parameters
        ----------
        max_batches : int, optional
            End the pass after that many updates (the last, partial pass of a
            fractional ``epochs``).

        Returns
        -------
        dict
            The epoch's record, as appended to ``history``.
        """
        start = time.perf_counter()
        order = self._rng.permutation(self.train_size)
        losses = []
        stop = self.train_size
        if max_batches is not None:
            stop = min(stop, int(max_batches) * self.batch_size)
        for begin in range(0, stop, self.batch_size):
            losses.append(self._step_on(order[begin:begin + self.batch_size]))
        train_acc, test_acc = self._evaluate()
        seconds = time.perf_counter() - start
        record = {"epoch": self.current_epoch + 1,
                  "loss": float(np.mean(losses)) if losses else float("nan"),
                  "train_acc": train_acc, "test_acc": test_acc, "seconds": seconds}
        with _interrupts_deferred():
            self.current_epoch += 1
            self.epoch_loss_list.append(record["loss"])
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)
            self.epoch_time_list.append(seconds)
            self.history.append(record)
        if self.verbose:
            print(f"epoch {self.current_epoch}/{self.num_passes}: loss {record['loss']:.4f}, "
                  f"train acc {train_acc:.4f}, test acc {test_acc:.4f}, {seconds:.1f} s",
                  flush=True)
        if self.on_epoch is not None:
            self.on_epoch(self, self.current_epoch, record)
        return record

    def train(self):
        """Run the epochs not yet done, then set ``final_test_acc``.

        ``final_test_acc`` is the accuracy on the whole test set (the last
        epoch's, unless the epochs evaluated a subset).

        Returns
        -------
        list of dict
            ``history``.
        """
        while self.current_epoch < self.num_passes:
            left = self.max_iter - self.current_epoch * self.iter_per_epoch
            self.train_epoch(left if left < self.iter_per_epoch else None)
        if self.test_acc_list and self.evaluate_sample_num_per_epoch is None:
            self.final_test_acc = self.test_acc_list[-1]
        else:
            self.final_test_acc = float(self.network.accuracy(self.x_test, self.t_test))
        if self.verbose:
            print(f"final test accuracy: {self.final_test_acc:.4f}", flush=True)
        return self.history
