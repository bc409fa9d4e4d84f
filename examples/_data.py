"""Small MNIST subsets for the examples (not an example itself).

The examples read the real MNIST files from ``$FASTCONV_DATA`` (the docs build
sets it to ``../shared/data/mnist`` beside the checkout when it is unset) and never
download: a missing folder is an error that says where to point.
"""
import os
from pathlib import Path

import numpy as np

import fastconv

_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def data_dir():
    """The MNIST folder: ``$FASTCONV_DATA``, else ``../shared/data/mnist``."""
    return Path(os.environ.get("FASTCONV_DATA") or _DEFAULT)


def mnist_subset(n_train=5000, n_test=1000, seed=0):
    """The first ``n_test`` test images and ``n_train`` training images drawn at random.

    Images are float32 (N, 1, 28, 28) in [0, 1]; labels uint8 (N,).
    """
    (x_train, t_train), (x_test, t_test) = fastconv.load_mnist(
        flatten=False, data_dir=data_dir(), download=False)
    pick = np.random.default_rng(seed).permutation(len(x_train))[:n_train]
    return (x_train[pick], t_train[pick]), (x_test[:n_test], t_test[:n_test])
