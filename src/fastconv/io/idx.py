"""The IDX files of MNIST, read and checked: header first, then exactly the
bytes it promises, so a forged header or a decompression bomb is refused."""
from __future__ import annotations

import functools
import gzip
import math
import os
import sys
import zlib
from pathlib import Path

import numpy as np

from .mnist_files import (_CHUNK, _GZIP_MAGIC, _IMAGES_HEADER, _IMAGES_MAGIC, _LABELS_HEADER,
                          _LABELS_MAGIC, _COLS, _NUM_CLASSES, _ROWS, _SPLITS, DatasetError)

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
