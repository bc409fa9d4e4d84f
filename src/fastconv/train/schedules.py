"""Learning-rate schedules, as Trainer callbacks.

A schedule is an object with ``on_iteration(trainer, iteration, loss)`` and
``on_epoch(trainer, epoch, record)`` that sets ``trainer.optimizer.lr`` for
what comes next. :class:`Constant` leaves it; :class:`CosineEpochs` decays it
once per epoch, :class:`CosineSteps` before every update.
"""
import math

__all__ = ["cosine_lr", "Constant", "CosineEpochs", "CosineSteps", "SCHEDULES", "schedule"]


def cosine_lr(base_lr, epoch, epochs):
    """The cosine-decayed learning rate for the epoch after ``epoch`` of ``epochs``.

    ``base_lr * (1 + cos(pi * epoch / epochs)) / 2``: ``base_lr`` at epoch 0,
    half of it halfway, 0 after the last epoch (Loshchilov and Hutter's SGDR
    schedule without restarts). The learning rate is set once per epoch.

    Parameters
    ----------
    base_lr : float
        The learning rate at epoch 0.
    epoch : int
        Completed epochs, from 0 to ``epochs``.
    epochs : int
        All epochs of the run.

    Returns
    -------
    float
        The learning rate.
    """
    if not epochs > 0:
        raise ValueError(f"epochs must be positive, got {epochs!r}")
    if not 0 <= epoch <= epochs:
        raise ValueError(f"epoch must be in [0, {epochs}], got {epoch!r}")
    return base_lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


class Constant:
    """The optimiser's learning rate throughout."""

    name = "constant"

    def __init__(self, base_lr, epochs):
        self.base_lr, self.epochs = base_lr, epochs

    def on_iteration(self, trainer, iteration, loss):
        pass

    def on_epoch(self, trainer, epoch, record):
        pass


class CosineEpochs(Constant):
    """``base_lr`` decayed by a cosine to 0 over the epochs, set after each epoch."""

    name = "cosine"

    def on_epoch(self, trainer, epoch, record):
        trainer.optimizer.lr = cosine_lr(self.base_lr, epoch, self.epochs)


class CosineSteps(Constant):
    """``base_lr`` decayed by a cosine to 0 over all updates, set before each one."""

    name = "cosine-steps"

    def on_iteration(self, trainer, iteration, loss):
        total = max(trainer.max_iter, 1)
        trainer.optimizer.lr = cosine_lr(self.base_lr, min(iteration, total), total)


#: The schedules by name, as ``fastconv train --lr-schedule`` offers them.
SCHEDULES = {cls.name: cls for cls in (Constant, CosineEpochs, CosineSteps)}


def schedule(name, base_lr, epochs):
    """The schedule called ``name`` (one of :data:`SCHEDULES`) from ``base_lr``."""
    try:
        return SCHEDULES[name](base_lr, epochs)
    except KeyError:
        raise ValueError(f"unknown learning-rate schedule {name!r}; choose one of "
                         f"{', '.join(SCHEDULES)}") from None
