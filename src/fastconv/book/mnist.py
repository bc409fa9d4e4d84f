"""The stand-in for the book's ``dataset.mnist``: MNIST where the reader keeps it."""
import functools
import os

# --- dataset.mnist ------------------------------------------------------------------

#: The book's pickle of MNIST (dataset/mnist.py's save_file) and its keys, in the
#: order of the four files.
BOOK_PICKLE = "mnist.pkl"
BOOK_KEYS = ("train_img", "train_label", "test_img", "test_label")


def load_mnist(normalize=True, flatten=True, one_hot_label=False, *, book_root=None):
    """The book's load_mnist, reading MNIST where a reader of the book keeps it.

    From ``book_root/dataset`` (its four ``.gz`` files, else its
    ``mnist.pkl``), else ``$FASTCONV_DATA``, else fastconv's cache.

    Images are float32 in [0, 1] (uint8 without ``normalize``), (N, 784) or
    (N, 1, 28, 28); labels uint8, or one-hot rows (float32). The stand-in
    module's ``load_mnist`` is this with the running script's book as
    ``book_root``. Raises :class:`fastconv.io.mnist.DatasetError` naming the
    file when a file of the book's folder is corrupt, truncated or, for the
    pickle, not the book's dict of four uint8 arrays or not made of NumPy
    arrays alone (refused unrun).

    Parameters
    ----------
    normalize, flatten, one_hot_label : bool
        As for :func:`fastconv.load_mnist`.
    book_root : str or path-like, optional
        The book's top folder.

    Returns
    -------
    tuple
        ``((x_train, t_train), (x_test, t_test))``.
    """
    from ..io.mnist import (MNIST_FILES, DatasetUnavailableError, mnist_from_arrays,
                           read_mnist_files)
    from ..io.mnist import load_mnist as _load
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
    from ..io.book_pickle import BookParamsError, read_pickled_arrays
    from ..io.mnist import DatasetError
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
