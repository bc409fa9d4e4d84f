"""MNIST from its public mirrors: streamed to a temporary file, bounded by
the file's known size, checked against its SHA-256, renamed into place."""
from __future__ import annotations

import functools
import gzip
import math
import os
import sys
import zlib
from pathlib import Path

import numpy as np

from .mnist_files import (_CHUNK, _GZIP_MAGIC, _HOW_TO_POINT, DOWNLOAD_TIMEOUT, MIRRORS,
                          MNIST_FILES, MNIST_SHA256, MNIST_SIZES, DatasetError,
                          DatasetUnavailableError, _find, resolve_data_dir)


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

    Parameters
    ----------
    data_dir : str or path-like, optional
        The folder.
    mirrors : sequence of str, optional
        Base URLs, default :data:`MIRRORS`.
    progress : bool, default False
        Show a tqdm progress bar.
    timeout : float, default 30.0
        Seconds per connection attempt.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    DatasetUnavailableError
        If a file cannot be obtained from any mirror.
    """
    folder = resolve_data_dir(data_dir)
    mirrors = MIRRORS if mirrors is None else tuple(mirrors)
    _remove_stale_parts(folder)
    for name in MNIST_FILES:
        if _find(folder, name) is None:
            _download_one(folder, name, mirrors, progress, timeout)
    return folder
