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


def _open_stream(path: Path):
    """(content stream, underlying file): the content is decompressed if the name ends
    in .gz, else the file itself."""
    raw = open(path, "rb")
    if not path.name.endswith(".gz"):
        return raw, raw
    return gzip.GzipFile(fileobj=raw, mode="rb"), raw


def _read_exactly(path: Path, stream, size: int) -> bytearray:
    """Up to ``size`` bytes of ``stream``, fewer only at its end; a corrupt gzip stream
    raises DatasetError. Memory grows with what arrives, never with what is promised."""
    buf = bytearray(min(size, _CHUNK))
    done = 0
    try:
        while done < size:
            if done == len(buf):
                buf.extend(bytes(min(size - len(buf), len(buf))))  # at most doubles
            got = stream.readinto(memoryview(buf)[done:min(len(buf), done + _CHUNK)])
            if not got:
                break
            done += got
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: corrupt or truncated gzip stream ({e})") from None
    del buf[done:]
    return buf


def _read_idx(path: Path, header_size: int, magic: int, what: str, expected: int, split: str):
    """The IDX file at ``path``: its header fields and exactly the body they promise.

    The header is read and checked first (magic, image size, count at most the split's
    ``expected``); then a raw file's size must equal what the header promises before any
    of its body is read, and a gzip stream is read for exactly that many bytes and must
    end there. So a forged header or a decompression bomb costs at most the largest
    legitimate file, and anything wrong raises DatasetError naming the file.
    """
    stream, raw = _open_stream(path)
    with raw:
        head = _read_exactly(path, stream, header_size)
        fields = _header(path, bytes(head), header_size, magic, what)
        count, dims = fields[1], fields[2:]
        if what == "images" and tuple(dims) != (_ROWS, _COLS):
            rows, cols = dims
            raise DatasetError(f"{path}: images are {rows}x{cols}, expected {_ROWS}x{_COLS}")
        item = math.prod(dims)
        expected_size = header_size + count * item
        layout = (f"{header_size}-byte header + {count} images of {_ROWS}x{_COLS}"
                  if what == "images" else f"{header_size}-byte header + {count} labels")
        if stream is raw:
            _check_length(path, os.fstat(raw.fileno()).st_size, expected_size, layout)
        if count > expected:
            raise DatasetError(
                f"{path}: wrong count: the header promises {count} {what}, but the MNIST "
                f"{split} set has {expected}"
            )
        body = _read_exactly(path, stream, count * item)
        if len(body) < count * item:
            _check_length(path, header_size + len(body), expected_size, layout)
        extra = len(_read_exactly(path, stream, _CHUNK + 1))
        if extra:
            more = "more than " if extra > _CHUNK else ""
            extra = min(extra, _CHUNK)
            raise DatasetError(
                f"{path}: {more}{extra} unexpected trailing bytes after the {expected_size} "
                f"that its header promises ({layout})"
            )
    return fields, np.frombuffer(body, dtype=np.uint8)


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


def _check_length(path: Path, size: int, expected: int, layout: str) -> None:
    # An exact length catches both truncation and appended junk before any reshape sees it.
    if size < expected:
        raise DatasetError(
            f"{path}: file is truncated: {size} bytes, but its header promises "
            f"{expected} ({layout})"
        )
    if size > expected:
        raise DatasetError(
            f"{path}: {size - expected} unexpected trailing bytes: {size} bytes, "
            f"but its header promises {expected} ({layout})"
        )


def _parse_images(path: Path, expected: int, split: str) -> np.ndarray:
    (_, count, rows, cols), body = _read_idx(
        path, _IMAGES_HEADER, _IMAGES_MAGIC, "images", expected, split
    )
    return body.reshape(count, rows, cols)


def _parse_labels(path: Path, expected: int, split: str) -> np.ndarray:
    _, labels = _read_idx(path, _LABELS_HEADER, _LABELS_MAGIC, "labels", expected, split)
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
    images = _parse_images(images_path, expected, split)
    labels = _parse_labels(labels_path, expected, split)
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


def _download_limit(name: str) -> int:
    """The most bytes a mirror may send for ``name``: its known size, plus what gzip can
    add to incompressible data (zlib's bound is under 1/1024 of it, plus a few bytes)
    and room for a gzip header that carries a file name. A raw copy fits as well."""
    size = MNIST_SIZES[name]
    return size + size // 1024 + 4096


def _content_sha256(f, name: str) -> tuple[str, bool]:
    """SHA-256 of the open file ``f``'s content (decompressed if it is gzip) and whether
    it was gzip. Stops once the content outgrows the known size of ``name``."""
    import hashlib

    h = hashlib.sha256()
    f.seek(0)
    is_gzip = f.read(2) == _GZIP_MAGIC
    f.seek(0)
    content = gzip.GzipFile(fileobj=f, mode="rb") if is_gzip else f
    size, seen = MNIST_SIZES[name], 0
    try:
        while chunk := content.read(_CHUNK):
            h.update(chunk)
            seen += len(chunk)
            if seen > size:
                raise DatasetError(f"content is longer than the {size} bytes of {name}")
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DatasetError(f"corrupt or truncated gzip stream ({e})") from None
    return h.hexdigest(), is_gzip


def _fetch(url: str, dest, name: str, progress: bool, timeout: float) -> None:
    """Stream ``url`` into the open binary file ``dest``, refusing more than
    :func:`_download_limit` bytes whether or not the server announces a length."""
    import urllib.request

    bar = None
    limit = _download_limit(name)
    request = urllib.request.Request(url, headers={"User-Agent": "fastconv"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > limit:
            raise DatasetError(
                f"the mirror announces {total} bytes, more than the {limit} that "
                f"{name}.gz can take"
            )
        if progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # the bar is a nicety; never fail a download for it
                tqdm = None
            if tqdm is not None:
                bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name)
        try:
            received = 0
            while chunk := response.read(min(_CHUNK, limit + 1 - received)):
                received += len(chunk)
                if received > limit:
                    raise DatasetError(
                        f"the mirror sent more than {limit} bytes, the most that {name}.gz "
                        f"can take; stopped there"
                    )
                dest.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise DatasetError(f"connection closed after {received} of {total} bytes")


def _lock(f) -> bool:
    """Take an exclusive lock on the open file ``f`` without waiting; False if another
    process holds one. Where there is no flock (Windows), an open file cannot be
    deleted anyway, so True."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove_stale_parts(folder: Path) -> None:
    """Remove the ``.part`` files that killed downloads left in ``folder``.

    A running download holds a lock on its ``.part`` file for as long as it writes it,
    so a file that can be locked is stale. Only the names this module gives its own
    partial files are touched.
    """
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for entry in names:
        if not (entry.endswith(".part") and
                any(entry.startswith(f".{name}.") for name in MNIST_FILES)):
            continue
        path = folder / entry
        try:
            with open(path, "rb") as f:
                if _lock(f):
                    path.unlink()
        except OSError:
            pass  # gone already, or not ours to remove


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
            # Made under a name the cleanup ignores, locked, then renamed to .part: a
            # cleanup in another process never sees an unlocked file of a live download.
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".new", dir=folder)
        except OSError as e:
            raise DatasetUnavailableError(
                f"MNIST file {name} is missing from {folder}, and the folder is not writable "
                f"({e}). {_HOW_TO_POINT}"
            ) from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w+b") as out:
                _lock(out)  # tells _remove_stale_parts in other processes: still running
                part = tmp.with_suffix(".part")
                os.rename(tmp, part)  # the lock belongs to the open file and stays
                tmp = part
                _fetch(url, out, name, progress, timeout)
                out.flush()
                os.fsync(out.fileno())  # on disk before the rename makes it visible
                digest, is_gzip = _content_sha256(out, name)
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
            # Also runs on KeyboardInterrupt, so an interrupted download leaves nothing;
            # what a killed process leaves, the next run removes (_remove_stale_parts).
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
    _remove_stale_parts(folder)
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
    """The raw arrays of the four MNIST files at ``paths``, checked as :func:`load_mnist`
    checks them.

    ``paths`` maps each name of :data:`MNIST_FILES` to its file, raw or gzip-compressed
    (by its ``.gz`` suffix). Returns ``{"train": (images, labels), "test": (images,
    labels)}``: uint8 images (N, 28, 28) and labels (N,), read-only (parsing is cached
    per process). Raises :class:`DatasetError` naming the file that is wrong.
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
    """``((x_train, t_train), (x_test, t_test))`` as :func:`load_mnist` returns them, from
    MNIST's raw arrays.

    ``splits`` is ``{"train": (images, labels), "test": (images, labels)}``: uint8 images
    of shape (N, 784) or (N, 28, 28) and uint8 labels (N,) in 0..9, with N = 60000 and
    10000 (what :func:`read_mnist_files` returns, or the arrays of the book's
    ``mnist.pkl``). They are checked first (a :class:`DatasetError` starting with
    ``source`` says what is wrong) and never modified; the results are new arrays.
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
