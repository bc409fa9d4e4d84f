"""Your own digit pictures as MNIST inputs.

MNIST's digits were made by scaling each scanned digit into a 20x20 box
(keeping its aspect ratio, anti-aliased) and placing it in a 28x28 field so
that its centre of mass lies at the centre; ink is bright on black. A digit
photographed or drawn on white paper looks nothing like that until it is
brought to the same form, which :func:`digit_to_input` does:

1. grayscale (transparent pixels count as white paper);
2. invert when the background (the median of the border pixels) is light;
3. stretch so that the background is 0 and the darkest ink 1;
4. crop to the bounding box of the ink;
5. scale the longer side to 20 pixels (of a 28-pixel field), keeping the
   aspect ratio;
6. paste into the field with the centre of mass at its centre.

Pillow reads the files; it is imported only when a file is read.
"""
import os

import numpy as np

__all__ = ["MAX_PIXELS", "load_image", "digit_to_input", "load_digit", "images_to_inputs",
           "ImageError"]

# Bigger pictures are refused from their header, before any decoding: a
# 100-byte PNG may declare a billion pixels.
MAX_PIXELS = 30_000_000
# After the contrast stretch: what counts as ink for the bounding box, and
# the least contrast a picture must have to hold a digit at all.
INK_LEVEL = 0.2
MIN_CONTRAST = 0.1


class ImageError(ValueError):
    """A file that cannot become a digit input (a ValueError)."""


def load_image(path, max_pixels=MAX_PIXELS):
    """The picture at ``path`` as a 2-D float32 array of gray levels in [0, 1].

    PNG, JPEG, BMP and anything else Pillow reads. Raises ImageError when the
    file is missing, not a picture, larger than ``max_pixels`` pixels (checked
    on the header, before decoding) or damaged.
    """
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("reading pictures needs Pillow: pip install pillow") from exc
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageError(f"{path}: {width}x{height} pixels is more than the "
                                 f"{max_pixels} allowed")
            if width == 0 or height == 0:
                raise ImageError(f"{path}: the picture is empty ({width}x{height})")
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(paper, rgba)
            gray = np.asarray(im.convert("L"), dtype=np.float32) / np.float32(255)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not a picture") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not a picture Pillow can read") from None
    except Image.DecompressionBombError as exc:  # Pillow's own, larger, cap
        raise ImageError(f"{path}: more than the {max_pixels} pixels allowed ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports truncated and damaged files as any of these.
        raise ImageError(f"{path}: cannot decode the picture ({exc})") from None
    return gray


def digit_to_input(gray, size=28, box=20):
    """A gray picture of one digit as a ``(size, size)`` float32 MNIST-style input.

    ``gray`` is a 2-D array in [0, 1] (either polarity); ``box`` is the side
    of the square the digit is scaled into. Raises ImageError when the picture
    holds no ink (a uniform picture).
    """
    from PIL import Image

    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2 or gray.size == 0:
        raise ImageError(f"expected a non-empty 2-D gray picture, got shape {gray.shape}")
    if not np.all(np.isfinite(gray)):
        raise ImageError("the picture holds NaN or infinite values")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 0.5:
        gray, background = 1.0 - gray, 1.0 - background
    peak = float(gray.max())
    if peak - background < MIN_CONTRAST:
        raise ImageError("the picture holds no digit: it is blank (no ink against the "
                         "background)")
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    rows = np.flatnonzero(ink.max(axis=1) > INK_LEVEL)
    cols = np.flatnonzero(ink.max(axis=0) > INK_LEVEL)
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = ink.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    # LANCZOS averages when it shrinks, as MNIST's anti-aliasing did.
    small = Image.fromarray(ink.astype(np.float32)).resize(
        (new_w, new_h), Image.Resampling.LANCZOS)
    small = np.clip(np.asarray(small, dtype=np.float64), 0.0, 1.0)
    mass = small.sum()
    cy = (small.sum(axis=1) @ np.arange(new_h)) / mass
    cx = (small.sum(axis=0) @ np.arange(new_w)) / mass
    # MNIST's centres of mass sit at pixel (14, 14) of the 28x28 field.
    top = int(np.clip(round(size / 2 - cy), 0, size - new_h))
    left = int(np.clip(round(size / 2 - cx), 0, size - new_w))
    field = np.zeros((size, size), dtype=np.float32)
    field[top:top + new_h, left:left + new_w] = small
    return field


def load_digit(path, size=28, box=20, max_pixels=MAX_PIXELS):
    """:func:`load_image` then :func:`digit_to_input`: a (size, size) float32 array.

    Errors name the file.
    """
    gray = load_image(path, max_pixels)
    try:
        return digit_to_input(gray, size, box)
    except ImageError as exc:
        raise ImageError(f"{os.fspath(path)}: {exc}") from None


def images_to_inputs(images, input_dim=(1, 28, 28)):
    """Pictures (paths, or 2-D gray arrays in [0, 1]) as an (N,) + input_dim float32 batch.

    ``input_dim`` must be (1, S, S): one gray channel, square; the digit is
    scaled into a box of 5/7 of the side (20 of 28, as MNIST).
    """
    input_dim = tuple(input_dim)
    if len(input_dim) != 3 or input_dim[0] != 1 or input_dim[1] != input_dim[2]:
        raise ValueError(f"pictures become (1, S, S) inputs; this network takes {input_dim}")
    size = input_dim[1]
    box = max(1, round(size * 20 / 28))
    batch = np.empty((len(images), 1, size, size), dtype=np.float32)
    for i, image in enumerate(images):
        if isinstance(image, (str, bytes, os.PathLike)):
            batch[i, 0] = load_digit(image, size, box)
        else:
            batch[i, 0] = digit_to_input(image, size, box)
    return batch
