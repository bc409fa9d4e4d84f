"""MNIST loading: the book's ``load_mnist`` with a checked IDX reader and a safe download.

``load_mnist(normalize=True, flatten=True, one_hot_label=False)`` returns
``((x_train, t_train), (x_test, t_test))`` exactly as in "Deep Learning from Scratch",
with these additions:

* ``data_dir=`` chooses the folder.  Without it the folder is ``$FASTCONV_DATA``, else the
  user's cache folder (see :func:`default_data_dir`).
* The four standard IDX files may be gzip-compressed (``*.gz``) or raw.  They are parsed
  with NumPy and validated: magic numbers, image size, counts, exact file lengths and
  label range.  The header is read first and checked, then exactly the bytes it promises
  (a raw file's size is checked before any of it is read), so a forged header or a
  decompression bomb is refused without reading or allocating more than the largest real
  file.  Anything wrong raises :class:`DatasetError` naming the file.
* Missing files are downloaded (``download=True``) from public mirrors.  Each download is
  streamed to a temporary file next to its destination, stops at the file's known size
  (:data:`MNIST_SIZES`) whatever the server announces, its decompressed content is checked
  against a known SHA-256, and only then is it renamed into place, so a partial or corrupt
  file is never left behind; the ``.part`` file of a download that was killed is removed
  by the next call.
* Parsed arrays are cached in-process; every call still returns fresh arrays that the
  caller may modify.
* No pickle is involved anywhere (the book's ``mnist.pkl`` cache runs code when loaded).

One difference from the book: one-hot labels are float32, not float64, so that a float32
network is never silently upcast by its loss.
"""
from __future__ import annotations

import functools
import gzip
import math
import os
import sys
import zlib
from pathlib import Path

import numpy as np

from .download import _download_one, _remove_stale_parts, download_mnist
from .idx import _file_key, _load_split, _parse_images, _parse_labels
from .mnist_files import (_COLS, _HOW_TO_POINT, _NUM_CLASSES, _ROWS, _SPLITS,
                          DOWNLOAD_TIMEOUT, MIRRORS, MNIST_FILES, MNIST_SHA256, MNIST_SIZES,
                          DatasetError, DatasetUnavailableError, _find, default_data_dir,
                          resolve_data_dir)


__all__ = [
    "DatasetError",
    "DatasetUnavailableError",
    "MIRRORS",
    "MNIST_FILES",
    "MNIST_SHA256",
    "MNIST_SIZES",
    "default_data_dir",
    "resolve_data_dir",
    "download_mnist",
    "load_mnist",
    "read_mnist_files",
    "mnist_from_arrays",
]


# ---------------------------------------------------------------------------------------
# The book's API


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    mirrors=None,
    progress: bool = False,
):
    """Load MNIST as ``((x_train, t_train), (x_test, t_test))``.

    Parameters
    ----------
    normalize : bool
        True: images are float32 in [0, 1] (pixel / 255).  False: uint8 in 0..255.
    flatten : bool
        True: images have shape ``(N, 784)``.  False: ``(N, 1, 28, 28)`` (NCHW).
    one_hot_label : bool
        False: labels are uint8 of shape ``(N,)`` with values 0..9, as in the book.
        True: labels are float32 of shape ``(N, 10)``, one 1.0 per row.  (The book uses
        float64; float32 keeps a float32 network from being silently upcast.)  The default
        is the book's.
    data_dir : str or path-like, optional
        Folder of the four IDX files (each raw or ``.gz``).  Default: ``$FASTCONV_DATA``,
        else :func:`default_data_dir`.
    download : bool
        Download missing files from the mirrors.  If False, missing files raise
        :class:`DatasetUnavailableError`.
    mirrors : sequence of str, optional
        Base URLs to download from, in order.  Default :data:`MIRRORS`.
    progress : bool
        Show a tqdm progress bar while downloading.

    Returns
    -------
    tuple
        ``((x_train, t_train), (x_test, t_test))`` with N = 60000 and 10000.  The arrays
        are fresh copies that the caller may modify; parsing is cached per process.

    Raises
    ------
    DatasetError
        A file is truncated, corrupt, or has the wrong magic, size, count or labels.
        The message names the file.
    DatasetUnavailableError
        Files are missing and ``download`` is False, or no mirror delivered a valid copy.
    """
    folder = resolve_data_dir(data_dir)
    _remove_stale_parts(folder)
    paths = {name: _find(folder, name) for name in MNIST_FILES}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        if not download:
            raise DatasetUnavailableError(
                f"MNIST files missing from {folder}: {', '.join(missing)} "
                f"(download=False). {_HOW_TO_POINT}"
            )
        mirrors = MIRRORS if mirrors is None else tuple(mirrors)
        for name in missing:
            paths[name] = _download_one(folder, name, mirrors, progress, DOWNLOAD_TIMEOUT)

    return mnist_from_arrays(read_mnist_files(paths), normalize, flatten, one_hot_label,
                             source=str(folder))


def read_mnist_files(paths) -> dict:
    """The raw arrays of the four MNIST files at ``paths``, checked as :func:`load_mnist` does.

    ``paths`` maps each name of :data:`MNIST_FILES` to its file, raw or gzip-compressed
    (by its ``.gz`` suffix). Returns ``{"train": (images, labels), "test": (images,
    labels)}``: uint8 images (N, 28, 28) and labels (N,), read-only (parsing is cached
    per process). Raises :class:`DatasetError` naming the file that is wrong.

    Parameters
    ----------
    paths : mapping
        As said above.

    Returns
    -------
    dict
        As said above.
    """
    splits = {}
    for split, (images_name, labels_name, expected) in _SPLITS.items():
        splits[split] = _load_split(
            _file_key(Path(paths[images_name])), _file_key(Path(paths[labels_name])),
            expected, split
        )
    return splits


def mnist_from_arrays(splits, normalize=True, flatten=True, one_hot_label=False, *,
                      source="MNIST"):
    """MNIST's raw arrays as :func:`load_mnist` returns them.

    ``splits`` is ``{"train": (images, labels), "test": (images, labels)}``: uint8 images
    of shape (N, 784) or (N, 28, 28) and uint8 labels (N,) in 0..9, with N = 60000 and
    10000 (what :func:`read_mnist_files` returns, or the arrays of the book's
    ``mnist.pkl``). They are checked first (a :class:`DatasetError` starting with
    ``source`` says what is wrong) and never modified; the results are new arrays.

    Parameters
    ----------
    splits : dict
        As said above.
    normalize, flatten, one_hot_label : bool
        As for :func:`load_mnist`.
    source : str, default "MNIST"
        Names the data in error messages.

    Returns
    -------
    tuple
        ``((x_train, t_train), (x_test, t_test))``.
    """
    result = []
    for split, (_, _, expected) in _SPLITS.items():
        images, labels = splits[split]
        for what, a, shapes in (("images", images, ((expected, _ROWS * _COLS),
                                                    (expected, _ROWS, _COLS))),
                                ("labels", labels, ((expected,),))):
            if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
                got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
                raise DatasetError(f"{source}: the {split} {what} are {got}, expected uint8")
            if a.shape not in shapes:
                raise DatasetError(f"{source}: the {split} {what} have shape {a.shape}, "
                                   f"expected {' or '.join(map(str, shapes))}")
        bad = np.flatnonzero(labels >= _NUM_CLASSES)
        if bad.size:
            i = int(bad[0])
            raise DatasetError(f"{source}: label {int(labels[i])} at index {i} of the {split} "
                               f"labels is outside 0..{_NUM_CLASSES - 1}")
        if normalize:
            x = images.astype(np.float32)
            x /= np.float32(255.0)
        else:
            x = images.copy()
        x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, _ROWS, _COLS)
        if one_hot_label:
            t = np.zeros((len(labels), _NUM_CLASSES), dtype=np.float32)
            t[np.arange(len(labels)), labels] = 1.0
        else:
            t = labels.copy()
        result.append((x, t))
    return tuple(result)
