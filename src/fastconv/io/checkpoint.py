"""Files on disk: atomic writes, and parameter files (.npz) read within bounds.

:func:`atomic_write` (or :func:`atomic_path`, for writers that want a file name)
is how fastconv writes every file (parameters, JSON, PNG):
into a temporary file in the destination's folder, flushed and fsync'd, then
renamed over the destination. A failed write (a full disk, an exception in
the caller) leaves the previous file as it was and no temporary file behind.

:func:`save_npz` writes arrays as an ordinary uncompressed ``.npz`` to exactly
the path given (no suffix is added). :func:`read_npz` reads one back without
pickle and checks every member's name, shape, dtype and declared size before
reading any array data, so a small hostile file cannot make it allocate what
its headers claim.
"""
import contextlib
import errno
import math
import os
import secrets
import zipfile
import zlib

import numpy as np

__all__ = ["CheckpointError", "atomic_path", "atomic_write", "save_npz", "read_npz"]

_ZIP_MAGIC = b"PK\x03\x04"
_NPY_SUFFIX = ".npy"
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A parameter file is damaged, hostile or does not fit: the message names the file."""


def _fspath(path, what):
    # An int would be taken as an open file descriptor by open().
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a path: expected str, bytes or os.PathLike "
                        f"object, not {type(path).__name__}")
    path = os.fspath(path)
    return os.fsdecode(path)


def _sync_folder(folder):
    # The rename is durable once the folder's entry is on disk; some systems
    # (Windows, some network file systems) cannot open a folder: best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """A fresh temporary file's path, beside ``path``, that replaces ``path`` on success.

    For writers that want a file name rather than a file object. When the
    ``with`` block ends normally the temporary file is fsync'd and renamed
    over ``path``; if anything fails, including the rename, it is removed and
    ``path`` is left as it was. A new file gets the permissions ``open()``
    would give it; an existing one keeps its own. A symlink is written
    through, not replaced. Raises IsADirectoryError if ``path`` is a folder,
    and OSError at once if its folder cannot take a new file.

    Parameters
    ----------
    path : str or path-like
        The file to replace.

    Yields
    ------
    pathlib.Path
        The temporary file's path, to write to.
    """
    path = _fspath(path, "path")
    if os.path.islink(path):
        path = os.path.realpath(path)
    folder, name = os.path.split(os.path.abspath(path))
    if not name or path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "Is a folder, not a file", path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # 0o666 & ~umask, as open() gives
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "No free temporary name", folder)
    try:
        try:
            with contextlib.suppress(OSError):
                os.chmod(fd if os.chmod in os.supports_fd else tmp,
                         os.stat(path).st_mode & 0o7777)
        finally:
            os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_WRONLY | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(folder)


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """Open a temporary file that replaces ``path`` when the ``with`` block succeeds.

    ``mode`` is ``"wb"`` or ``"w"`` (text, with ``encoding``). The file is
    flushed, fsync'd and renamed over ``path`` only if the block ends
    normally; otherwise ``path`` is left as it was and no temporary file
    remains (see :func:`atomic_path`, which this uses).

    Parameters
    ----------
    path : str or path-like
        The file to replace.
    mode : {"wb", "w"}
        Binary or text.
    encoding : str, optional
        Of a text file.

    Yields
    ------
    file object
        The open temporary file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            yield f


def save_npz(file_name, arrays):
    """Write ``arrays`` (a mapping of name to array) as an uncompressed .npz.

    The file is exactly ``file_name``, whatever its suffix, and is replaced
    atomically (see :func:`atomic_write`). Object arrays are refused
    (ValueError): they would need pickle to load. A ``file_name`` that is a
    folder (or ends with a separator) raises :class:`CheckpointError`, one
    that is not a str or path-like TypeError.

    Parameters
    ----------
    file_name : str or path-like
        The file to write.
    arrays : mapping
        Name -> array.
    """
    path = _fspath(file_name, "file_name")
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder; give a file name, such as "
                              f"{os.path.join(path, 'params.npz')}")
    arrays = {str(name): np.asarray(value) for name, value in arrays.items()}
    for name, value in arrays.items():
        if value.dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype object, which an .npz can only hold "
                             f"as a pickle; convert it to a numeric dtype")
    with atomic_write(path) as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, value in arrays.items():
                with archive.open(name + _NPY_SUFFIX, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)


def _read_header(member):
    """(shape, fortran_order, dtype, header length) of an .npy member, or None if the
    member is not an .npy. Reads only the header."""
    try:
        version = np.lib.format.read_magic(member)
    except ValueError:
        return None
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    return shape, fortran, dtype, member.tell()


def _plan(archive, file_name, expected):
    """Check every member's name and header against the zip and ``expected``;
    return {name: (info, shape, fortran_order, dtype, header length)}."""
    plan = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(_NPY_SUFFIX):
            raise CheckpointError(f"{file_name} is not a valid .npz parameter file: "
                                  f"member {name!r} is not an array")
        name = name[:-len(_NPY_SUFFIX)]
        if name in plan:
            raise CheckpointError(f"{file_name}: member {name!r} appears more than once")
        plan[name] = info
    if expected is not None:
        missing = sorted(set(expected) - set(plan))
        extra = sorted(set(plan) - set(expected))
        if missing or extra:
            raise CheckpointError(f"{file_name}: parameter names do not match this network "
                                  f"(missing {missing}, unexpected {extra})")
    for name, info in plan.items():
        with archive.open(info) as member:
            header = _read_header(member)
        if header is None:
            raise CheckpointError(f"{file_name} is not a valid .npz parameter file: "
                                  f"member {name!r} is not an array")
        shape, fortran, dtype, offset = header
        if dtype.hasobject:
            raise CheckpointError(f"{file_name} is not a valid .npz parameter file: Object "
                                  f"arrays cannot be loaded when allow_pickle=False "
                                  f"(member {name!r})")
        if expected is not None:
            want_shape, want_dtype = expected[name]
            if tuple(shape) != tuple(want_shape):
                raise CheckpointError(f"{file_name}: {name} has shape {tuple(shape)}, "
                                      f"this network needs {tuple(want_shape)}")
            if not np.can_cast(dtype, want_dtype, casting="same_kind"):
                raise CheckpointError(f"{file_name}: {name} has dtype {dtype}, "
                                      f"which does not cast to {np.dtype(want_dtype)}")
        # The zip's declared size bounds what the member can inflate to (zipfile
        # stops there), so comparing it with the header's promise before reading
        # keeps a forged header from making numpy allocate what it claims.
        needed = math.prod(shape) * dtype.itemsize
        holds = info.file_size - offset
        if needed != holds:
            raise CheckpointError(f"{file_name}: member {name!r} declares shape "
                                  f"{tuple(shape)} of {dtype}, {needed} bytes, but the zip "
                                  f"says it holds {holds}")
        plan[name] = (info, shape, fortran, dtype, offset)
    return plan


def _read_member(archive, info, shape, fortran, dtype, offset):
    data = np.empty(math.prod(shape) * dtype.itemsize, dtype=np.uint8)
    with archive.open(info) as member:
        member.read(offset)
        view, done = memoryview(data), 0
        while done < len(data):
            # In slices: a zip member's readinto reads into a temporary bytes first.
            got = member.readinto(view[done:done + _CHUNK])
            if not got:
                raise EOFError(f"member {info.filename!r} ends after {done} of "
                               f"{len(data)} bytes")
            done += got
        if member.read(1):
            raise ValueError(f"member {info.filename!r} is longer than its header says")
    order = "F" if fortran else "C"
    return data.view(dtype).reshape(shape, order=order)


def read_npz(file_name, expected=None):
    """Every array of the .npz ``file_name``, as a dict of name to array.

    ``expected`` (optional) maps each name the file must hold, and no other,
    to ``(shape, dtype)``; a member must have that shape and a dtype that
    casts to that one (``same_kind``). Names, headers and the sizes they
    declare are all checked against the zip's own sizes before any array
    data is read. The file is never unpickled: a pickle (such as the book's
    ``.pkl``) or an object array is refused without running anything.

    Raises :class:`CheckpointError` (a ValueError) naming the file for
    anything wrong with it, TypeError if ``file_name`` is not a path.

    Parameters
    ----------
    file_name : str or path-like
        The .npz file.
    expected : dict, optional
        Name -> ``(shape, dtype)``, as said above.

    Returns
    -------
    dict
        Name -> ndarray.

    Raises
    ------
    CheckpointError
        A ValueError naming the file, for anything wrong with it.
    TypeError
        If ``file_name`` is not a path.
    """
    file_name = _fspath(file_name, "file_name")
    try:
        with open(file_name, "rb") as f:
            magic = f.read(len(_ZIP_MAGIC))
    except OSError as exc:
        raise CheckpointError(f"cannot read parameter file {file_name}: {exc}") from exc
    if magic != _ZIP_MAGIC:
        raise CheckpointError(f"{file_name} is not an .npz parameter file (a pickle, such as "
                              f"the book's .pkl, is refused: loading one could run code)")
    try:
        with zipfile.ZipFile(file_name) as archive:
            plan = _plan(archive, file_name, expected)
            return {name: _read_member(archive, *entry) for name, entry in plan.items()}
    except CheckpointError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError,
            NotImplementedError, RuntimeError, OverflowError, MemoryError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression.
        raise CheckpointError(f"{file_name} is not a valid .npz parameter file: "
                              f"{exc}") from exc
