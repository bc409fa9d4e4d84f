"""Read the book's pickled parameter files (``params.pkl``, ``deep_convnet_params.pkl``) safely.

The book saves a network with ``pickle.dump`` of its ``params`` dict (names
to float64 NumPy arrays). An ordinary ``pickle.load`` runs whatever code a
pickle names, so such a file from anyone but yourself is a program. The
reader here is an unpickler that resolves only the few globals a pickled
dict of NumPy arrays refers to (under NumPy 1.x and 2.x names, pickle
protocols 2 to 5) and refuses every other one before anything is imported
or called. The result must be a dict of str to numeric arrays.

Use :meth:`fastconv.Net.load_book_params` to load such a file into a
network (it also accounts for the book's dropout), or ``fastconv convert``
to turn it into an ``.npz``. :func:`read_pickled_arrays` is the same
unpickler for the book's other pickle of arrays, its ``dataset/mnist.pkl``
(which ``python -m fastconv.book`` reads when a reader's folder holds it).
"""
import collections
import io
import os
import pickle

import numpy as np

__all__ = ["read_book_params", "read_pickled_arrays", "BookParamsError"]

# The largest parameter file is 1.7 MB (DeepConvNet), the book's mnist.pkl
# 55 MB; a file beyond this is not one of the book's, and reading it whole
# would be the risk.
MAX_BYTES = 1 << 30


class BookParamsError(ValueError):
    """A file that is not a safe pickled dict of numeric arrays."""


class _NdarrayType:
    """What ``numpy.ndarray`` resolves to: a marker for ``_reconstruct``, not
    the class itself, so that a pickle cannot call ``ndarray(shape)`` to
    allocate whatever it likes."""


_NDARRAY = _NdarrayType()
# The functions NumPy's own pickles name, found from NumPy itself rather than
# by importing the module a pickle names.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]


def _reconstruct(subtype, shape, typecode):
    # NumPy pickles an array as an empty (0,) array, then sets its state.
    if subtype is not _NDARRAY or tuple(shape) != (0,):
        raise BookParamsError(f"unexpected array reconstruction {subtype!r}, {shape!r}")
    return _RECONSTRUCT(np.ndarray, (0,), typecode)


def _frombuffer(buffer, dtype, shape, order):
    # Protocol 5's form of an array: its bytes, dtype, shape and order.
    if not isinstance(buffer, (bytes, bytearray, pickle.PickleBuffer)):
        raise BookParamsError(f"unexpected array buffer of type {type(buffer).__name__}")
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise BookParamsError(f"unexpected array dtype {dtype!r}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise BookParamsError(f"unexpected NumPy scalar of dtype {dtype!r}")
    return _SCALAR(dtype, data)


def _latin1_encode(text, encoding="utf-8"):
    # Protocol 2 stores bytes as latin-1 text re-encoded by codecs.encode.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise BookParamsError(f"unexpected codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_module}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_module}.multiarray", "scalar")] = _scalar
    _ALLOWED[(f"{_module}.numeric", "_frombuffer")] = _frombuffer


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise BookParamsError(f"refused: the pickle refers to {module}.{name}, which a "
                                  f"file of NumPy arrays does not need (nothing in it was "
                                  f"run)") from None

    def persistent_load(self, pid):
        raise BookParamsError("refused: the pickle uses persistent ids")


def _read_bytes(file_name):
    file_name = os.fspath(file_name)  # an int would be taken as an open file descriptor
    try:
        with open(file_name, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise BookParamsError(f"cannot read {file_name}: {exc}") from exc
    if len(data) > MAX_BYTES:
        raise BookParamsError(f"{file_name} is larger than {MAX_BYTES} bytes, "
                              f"too large for one of the book's pickles")
    return file_name, data


def read_pickled_arrays(file_name):
    """What a pickle of NumPy arrays holds, read without running anything.

    The restricted unpickler resolves only the globals that pickled NumPy
    arrays, NumPy scalars and ``collections.OrderedDict`` need, and refuses
    any other before it is imported or called, so the result is built of
    arrays, numbers, strings and containers. Its shape is the caller's to
    check (:func:`read_book_params` wants a dict of str to numeric arrays).

    Parameters
    ----------
    file_name : str or path-like
        The pickle file.

    Returns
    -------
    object
        The unpickled arrays, numbers, strings and containers.

    Raises
    ------
    BookParamsError
        A ValueError with a one-line message naming the file, when it cannot be
        read, is not a pickle (truncated, empty, another format) or refers to
        any other global.
    """
    file_name, data = _read_bytes(file_name)
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except BookParamsError as exc:
        raise BookParamsError(f"{file_name}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError, UnicodeDecodeError) as exc:
        raise BookParamsError(f"{file_name} is not a readable pickle of NumPy arrays: "
                              f"{type(exc).__name__}: {exc}") from None


def read_book_params(file_name):
    """The dict of arrays in one of the book's pickled parameter files.

    Parameters
    ----------
    file_name : str or path-like
        A file written by the book's ``save_params`` (``pickle.dump`` of a dict
        of str to NumPy arrays).

    Returns
    -------
    dict
        Str to ndarray, in the file's order, with the arrays' own shapes and
        dtypes (the book's are float64).

    Raises
    ------
    BookParamsError
        A ValueError, when the file cannot be read, is not a pickle, refers to
        any global beyond the NumPy and ``collections`` names that pickled
        arrays need (refused before it is imported or called), or holds
        anything other than a dict of str to numeric (integer or float) arrays.
    """
    file_name = os.fspath(file_name)
    obj = read_pickled_arrays(file_name)
    if not isinstance(obj, dict):
        raise BookParamsError(f"{file_name} holds a {type(obj).__name__}, expected a dict "
                              f"of parameter names to arrays")
    arrays = {}
    for name, value in obj.items():
        if not isinstance(name, str):
            raise BookParamsError(f"{file_name}: parameter names must be str, got {name!r}")
        if not isinstance(value, (np.ndarray, np.generic)) or value.dtype.kind not in "fiu":
            what = getattr(value, "dtype", type(value).__name__)
            raise BookParamsError(f"{file_name}: parameter {name!r} is not a numeric array "
                                  f"(got {what})")
        arrays[name] = np.asarray(value)
    return arrays
