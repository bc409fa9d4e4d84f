"""MNIST loading: the book's ``load_mnist`` with a checked IDX reader and a safe download.

``load_mnist(normalize=True, flatten=True, one_hot_label=False)`` returns
``((x_train, t_train), (x_test, t_test))`` exactly as in "Deep Learning from Scratch",
with these additions:

* ``data_dir=`` chooses the folder.  Without it the folder is ``$FASTCONV_DATA``, else the
  user's cache folder (see :func:`default_data_dir`).
* The four standard IDX files may be gzip-compressed (``*.gz``) or raw.  They are parsed
  with NumPy and validated: magic numbers, image size, counts, exact file lengths and
  label range.  Anything wrong raises :class:`DatasetError` naming the file.
* Missing files are downloaded (``download=True``) from public mirrors.  Each download is
  streamed to a temporary file next to its destination, its decompressed content is checked
  against a known SHA-256, and only then is it renamed into place, so a partial or corrupt
  file is never left behind.
* Parsed arrays are cached in-process; every call still returns fresh arrays that the
  caller may modify.
* No pickle is involved anywhere (the book's ``mnist.pkl`` cache runs code when loaded).

One difference from the book: one-hot labels are float32, not float64, so that a float32
network is never silently upcast by its loss.
"""

from __future__ import annotations

import functools
import gzip
import os
import sys
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "DatasetError",
    "DatasetUnavailableError",
    "MIRRORS",
    "MNIST_FILES",
    "MNIST_SHA256",
    "default_data_dir",
    "resolve_data_dir",
    "download_mnist",
    "load_mnist",
]

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
    """The folder to use: ``data_dir`` if given, else ``$FASTCONV_DATA``, else
    :func:`default_data_dir`.  ``~`` is expanded."""
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


# ---------------------------------------------------------------------------------------
# IDX parsing


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        if path.name.endswith(".gz"):
            try:
                return gzip.GzipFile(fileobj=f, mode="rb").read()
            except (gzip.BadGzipFile, EOFError, zlib.error) as e:
                raise DatasetError(f"{path}: corrupt or truncated gzip stream ({e})") from None
        return f.read()


def _header(path: Path, data: bytes, size: int, magic: int, what: str) -> list[int]:
    if len(data) < size:
        raise DatasetError(
            f"{path}: {len(data)} bytes is too short for an IDX {what} header ({size} bytes); "
            "the file is truncated or not an IDX file"
        )
    fields = [int.from_bytes(data[i : i + 4], "big") for i in range(0, size, 4)]
    if fields[0] != magic:
        hint = ""
        if data[:2] == _GZIP_MAGIC:
            hint = "; it looks gzip-compressed, so give it a .gz suffix"
        raise DatasetError(
            f"{path}: bad magic number 0x{fields[0]:08x}, expected 0x{magic:08x} "
            f"(IDX {what}){hint}"
        )
    return fields


def _check_length(path: Path, data: bytes, expected: int, layout: str) -> None:
    # An exact length catches both truncation and appended junk before any reshape sees it.
    if len(data) < expected:
        raise DatasetError(
            f"{path}: file is truncated: {len(data)} bytes, but its header promises "
            f"{expected} ({layout})"
        )
    if len(data) > expected:
        raise DatasetError(
            f"{path}: {len(data) - expected} unexpected trailing bytes: {len(data)} bytes, "
            f"but its header promises {expected} ({layout})"
        )


def _parse_images(path: Path) -> np.ndarray:
    data = _read_bytes(path)
    _, count, rows, cols = _header(path, data, _IMAGES_HEADER, _IMAGES_MAGIC, "images")
    if (rows, cols) != (_ROWS, _COLS):
        raise DatasetError(f"{path}: images are {rows}x{cols}, expected {_ROWS}x{_COLS}")
    _check_length(
        path,
        data,
        _IMAGES_HEADER + count * rows * cols,
        f"{_IMAGES_HEADER}-byte header + {count} images of {rows}x{cols}",
    )
    return np.frombuffer(data, dtype=np.uint8, offset=_IMAGES_HEADER).reshape(count, rows, cols)


def _parse_labels(path: Path) -> np.ndarray:
    data = _read_bytes(path)
    _, count = _header(path, data, _LABELS_HEADER, _LABELS_MAGIC, "labels")
    _check_length(
        path, data, _LABELS_HEADER + count, f"{_LABELS_HEADER}-byte header + {count} labels"
    )
    labels = np.frombuffer(data, dtype=np.uint8, offset=_LABELS_HEADER)
    bad = np.flatnonzero(labels >= _NUM_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise DatasetError(
            f"{path}: label {int(labels[i])} at index {i} is outside 0..{_NUM_CLASSES - 1}"
        )
    return labels


def _file_key(path: Path) -> tuple:
    # Resolved, so that symlinks to one file share a cache entry; size and mtime, so that a
    # replaced file misses the cache instead of going stale.
    real = path.resolve()
    st = real.stat()
    return (str(real), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_split(images_key: tuple, labels_key: tuple, expected: int, split: str):
    images_path, labels_path = Path(images_key[0]), Path(labels_key[0])
    images = _parse_images(images_path)
    labels = _parse_labels(labels_path)
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; the counts must agree"
        )
    if len(images) != expected:
        raise DatasetError(
            f"{images_path}: wrong count: {len(images)} images, but the MNIST {split} set "
            f"has {expected}"
        )
    # Read-only so that the cached arrays cannot be changed through a returned view.
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


# ---------------------------------------------------------------------------------------
# Download


def _content_sha256(path: Path) -> tuple[str, bool]:
    """SHA-256 of the file's content (decompressed if it is gzip) and whether it was gzip."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
        try:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise DatasetError(f"corrupt or truncated gzip stream ({e})") from None
    return h.hexdigest(), is_gzip


def _fetch(url: str, dest, name: str, progress: bool, timeout: float) -> None:
    """Stream ``url`` into the open binary file ``dest``."""
    import urllib.request

    bar = None
    request = urllib.request.Request(url, headers={"User-Agent": "fastconv"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # the bar is a nicety; never fail a download for it
                tqdm = None
            if tqdm is not None:
                bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name)
        try:
            received = 0
            while chunk := response.read(_CHUNK):
                dest.write(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise DatasetError(f"connection closed after {received} of {total} bytes")


def _download_one(
    folder: Path, name: str, mirrors, progress: bool, timeout: float
) -> Path:
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetUnavailableError(
            f"MNIST file {name} is missing from {folder}, and the folder cannot be created "
            f"for a download ({e}). {_HOW_TO_POINT}"
        ) from None

    failures = []
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += name + ".gz"
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        except OSError as e:
            raise DatasetUnavailableError(
                f"MNIST file {name} is missing from {folder}, and the folder is not writable "
                f"({e}). {_HOW_TO_POINT}"
            ) from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, name, progress, timeout)
            digest, is_gzip = _content_sha256(tmp)
            if digest != MNIST_SHA256[name]:
                raise DatasetError(
                    f"checksum mismatch: content sha256 {digest}, expected {MNIST_SHA256[name]}"
                )
            final = folder / (name + ".gz" if is_gzip else name)
            # Atomic on one filesystem (the temp file lives in the same folder), so a reader
            # sees either no file or the whole verified file.
            os.replace(tmp, final)
            return final
        except Exception as e:
            failures.append(f"  {url}: {type(e).__name__}: {e}")
        finally:
            # Also runs on KeyboardInterrupt, so an interrupted download leaves nothing.
            if tmp.exists():
                try:
                    tmp.unlink()
                except OSError:
                    pass

    tried = "\n".join(failures) if failures else "  (no mirrors were given)"
    raise DatasetUnavailableError(
        f"MNIST file {name} is missing from {folder} and could not be downloaded:\n"
        f"{tried}\n{_HOW_TO_POINT}"
    )


def download_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    mirrors=None,
    progress: bool = False,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Download whichever of the four MNIST files are missing from the folder.

    ``data_dir`` is resolved as in :func:`load_mnist`.  ``mirrors`` is a sequence of base
    URLs, tried in order for each file (default :data:`MIRRORS`).  Each file is verified
    against :data:`MNIST_SHA256` before it is moved into place.  Returns the folder.

    Raises :class:`DatasetUnavailableError` if a file cannot be obtained from any mirror.
    """
    folder = resolve_data_dir(data_dir)
    mirrors = MIRRORS if mirrors is None else tuple(mirrors)
    for name in MNIST_FILES:
        if _find(folder, name) is None:
            _download_one(folder, name, mirrors, progress, timeout)
    return folder


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
        float64; float32 keeps a float32 network from being silently upcast.)
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
    ((x_train, t_train), (x_test, t_test)) with N = 60000 and 10000.  The arrays are fresh
    copies that the caller may modify; parsing is cached per process.

    Raises
    ------
    DatasetError
        A file is truncated, corrupt, or has the wrong magic, size, count or labels.
        The message names the file.
    DatasetUnavailableError
        Files are missing and ``download`` is False, or no mirror delivered a valid copy.
    """
    folder = resolve_data_dir(data_dir)
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

    result = []
    for split, (images_name, labels_name, expected) in _SPLITS.items():
        images, labels = _load_split(
            _file_key(paths[images_name]), _file_key(paths[labels_name]), expected, split
        )
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
