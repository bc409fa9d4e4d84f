"""Training recipes: a model, an optimiser, a schedule and augmentation, by name.

``fastconv train --preset NAME`` runs one of :data:`RECIPES`, and the same
objects train from Python::

    from fastconv.train import RECIPES
    recipe = RECIPES["fast"]
    net = recipe.model()
    trainer = recipe.trainer(net, (x_train, t_train), (x_test, t_test))
    trainer.train()

Any field can be changed with :meth:`Recipe.replace` (an option given on the
command line wins over its preset's value the same way).
"""
import dataclasses

import numpy as np

from ..nn.zoo import make_model
from .augment import random_shift
from .schedules import schedule
from .trainer import Trainer

__all__ = ["Recipe", "RECIPES", "MAX_SHIFT"]

# A 28-pixel digit shifted any further is gone from the picture.
MAX_SHIFT = 27


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train a net on MNIST.

    Parameters
    ----------
    name : str
        The recipe's name (``"book"``, ``"fast"``).
    epochs, batch_size : int
        Passes over the training set, and samples per update.
    optimizer : str
        One of :data:`fastconv.train.optim.OPTIMIZER_NAMES`.
    lr : float
        The (initial) learning rate.
    lr_schedule : str, default "constant"
        ``"constant"``, ``"cosine"`` (per epoch) or ``"cosine-steps"`` (before
        every update), see :mod:`fastconv.train.schedules`.
    augment : int, default 0
        Shift each training image by up to this many pixels (0: none).
    init : str, default "book"
        ``"book"`` (SimpleConvNet's std 0.01) or ``"he"``.
    results : str, default ""
        What the recipe reached, as measured (see the docs' results table).
    """

    name: str
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    lr_schedule: str = "constant"
    augment: int = 0
    init: str = "book"
    results: str = ""

    def replace(self, **changes):
        """A copy with the given fields changed (None values are ignored).

        Parameters
        ----------
        **changes
            Field names and their new values.

        Returns
        -------
        Recipe
            The changed copy.
        """
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def model(self, name="simple", dtype=np.float32, seed=0):
        """A fresh net of the model ``name``, initialised as the recipe says.

        Parameters
        ----------
        name : str, default "simple"
            A name for :func:`fastconv.nn.make_model`.
        dtype : numpy dtype, default numpy.float32
            The net's dtype.
        seed : int, default 0
            Seed of the initial weights.

        Returns
        -------
        Net
            The untrained network.
        """
        return make_model(name, np.dtype(dtype), seed, self.init)

    def trainer(self, network, train, test, *, seed=0, on_iteration=None, on_epoch=None,
                train_eval_samples=10000, verbose=False):
        """A :class:`~fastconv.Trainer` for ``network`` with this recipe's optimiser, schedule and augmentation.

        Parameters
        ----------
        network : Net
            The net to train.
        train, test : tuple of ndarray
            ``(x, t)`` each.
        seed : int, default 0
            Seed of the shuffling and augmentation.
        on_iteration, on_epoch : callable, optional
            As for :class:`~fastconv.Trainer`; they run after the schedule's own
            callbacks.
        train_eval_samples : int, default 10000
            Training samples evaluated per epoch.
        verbose : bool, default False
            Print one line per epoch.

        Returns
        -------
        Trainer
            Ready to ``train()``.
        """
        rate = schedule(self.lr_schedule, self.lr, self.epochs)

        def iteration(trainer, index, loss):
            rate.on_iteration(trainer, index, loss)
            if on_iteration is not None:
                on_iteration(trainer, index, loss)

        def epoch(trainer, index, record):
            record["lr"] = trainer.optimizer.lr  # the rate this epoch ended with
            rate.on_epoch(trainer, index, record)
            if on_epoch is not None:
                on_epoch(trainer, index, record)

        shift = self.augment
        augment = (lambda x, rng: random_shift(x, shift, rng)) if shift else None
        (x_train, t_train), (x_test, t_test) = train, test
        return Trainer(network, x_train, t_train, x_test, t_test, epochs=self.epochs,
                       mini_batch_size=self.batch_size, optimizer=self.optimizer,
                       optimizer_param={"lr": self.lr}, verbose=verbose, seed=seed,
                       on_iteration=iteration, on_epoch=epoch,
                       train_eval_samples=min(len(x_train), train_eval_samples),
                       batch_transform=augment)


#: The recipes ``fastconv train --preset`` offers. "fast" was chosen by runs on
#: the real MNIST files (benchmarks/README.md, "The fast preset").
RECIPES = {
    "book": Recipe("book", epochs=20, batch_size=100, optimizer="adam", lr=0.001,
                   results="SimpleConvNet: 98.99% test accuracy, 117-129 s on 2 threads "
                           "(AVX-512 EPYC, 2026-12-02, issue 20's measurement)"),
    "fast": Recipe("fast", epochs=3, batch_size=100, optimizer="adam", lr=0.003,
                   lr_schedule="cosine-steps", augment=1, init="he",
                   results="SimpleConvNet: 99.07% test accuracy, 21 s on 2 threads "
                           "(AVX-512 EPYC, 2026-12-02, issue 20's measurement)"),
}
