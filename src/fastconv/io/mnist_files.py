"""MNIST's four files: names, mirrors, sizes, checksums, errors, and the folder
they are looked for in."""
from __future__ import annotations

import functools
import gzip
import math
import os
import sys
import zlib
from pathlib import Path

import numpy as np


#: Public mirrors, tried in order.  Each holds the four ``*.gz`` files at the same names.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The four standard file names (without ``.gz``), in the order they are loaded.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: SHA-256 of each file's *decompressed* content.  Content rather than the .gz bytes,
#: because mirrors may re-compress a file without changing what it holds.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Size in bytes of each file's *decompressed* content; a download stops beyond it.
MNIST_SIZES = {
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}

#: Seconds a download may wait on one socket operation before a mirror counts as dead.
DOWNLOAD_TIMEOUT = 30.0

_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_IMAGES_HEADER = 16
_LABELS_HEADER = 8
_ROWS = _COLS = 28
_NUM_CLASSES = 10
_SPLITS = {
    # split: (images file, labels file, expected count)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"

_HOW_TO_POINT = (
    "Point fastconv at a folder that holds the four MNIST files "
    "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte; each raw or .gz) with load_mnist(data_dir=...), "
    "`fastconv train --data DIR`, or the FASTCONV_DATA environment variable."
)


class DatasetError(ValueError):
    """A dataset file is corrupt, truncated or not what it claims to be.

    The message names the offending file.
    """


class DatasetUnavailableError(DatasetError):
    """The dataset files are missing and could not be downloaded.

    The message says what each mirror did and how to point fastconv at a folder.
    """


# ---------------------------------------------------------------------------------------
# Folders


def default_data_dir() -> Path:
    """The per-user cache folder for MNIST.

    * Linux and other Unix: ``$XDG_CACHE_HOME/fastconv/mnist``, else ``~/.cache/fastconv/mnist``;
    * macOS: ``~/Library/Caches/fastconv/mnist``;
    * Windows: ``%LOCALAPPDATA%\\fastconv\\mnist``.

    The folder is not created here; a download creates it.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        root = Path(base) if base else Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec says a relative value is invalid and must be ignored.
        root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "fastconv" / "mnist"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The MNIST folder to use.

    ``data_dir`` if given, else ``$FASTCONV_DATA``, else
    :func:`default_data_dir`.  ``~`` is expanded.

    Parameters
    ----------
    data_dir : str or path-like, optional
        An explicit folder.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("FASTCONV_DATA")
    if env:
        return Path(env).expanduser()
    return default_data_dir()


def _find(folder: Path, name: str) -> Path | None:
    # Raw first: it needs no decompression, and a user who unpacked the files meant it.
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None
