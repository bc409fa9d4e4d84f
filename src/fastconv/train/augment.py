"""Data augmentation for image batches."""
import numpy as np

__all__ = ["random_shift"]


def random_shift(x, max_shift, rng):
    """Shift each image of x (N, C, H, W) by its own random offset.

    Offsets are drawn uniformly from ``[-max_shift, max_shift]`` on each axis;
    pixels shifted in from outside are zeros (MNIST's background). Returns a
    new array of x's dtype and shape. A digit moved by a pixel or two is still
    the same digit, so this enlarges the training set for free.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a 4-D (N, C, H, W) array, got shape {x.shape}")
    if max_shift == 0 or len(x) == 0:
        return x.copy()
    n, c, h, w = x.shape
    s = int(max_shift)
    padded = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)))
    dy = rng.integers(0, 2 * s + 1, size=n)
    dx = rng.integers(0, 2 * s + 1, size=n)
    rows = (dy[:, None] + np.arange(h))[:, None, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, None, :]
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]
