"""Your own digit pictures as MNIST inputs.

MNIST's digits were made by scaling each scanned digit into a 20x20 box
(keeping its aspect ratio, anti-aliased) and placing it in a 28x28 field so
that its centre of mass lies at the centre; ink is bright on black. A digit
photographed or drawn on white paper looks nothing like that until it is
brought to the same form, which :func:`digit_to_input` does:

1. gray levels in [0, 1], whatever the file's mode and bit depth, with
   transparency resolved (:func:`load_image` says how);
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
# Transparency (see load_image). A colour is "uniform" over the visible
# pixels when no pixel's premultiplied colour (alpha * gray) is further than
# this from alpha times their mean: the rounding of a colour stored in 8 bits
# and un-premultiplied on export, as HTML canvases do, with a margin.
UNIFORM_COLOUR = 2 / 255
# The pixels bordering the transparent part are "one colour" when nine in ten
# are within this of their median; a paper this close to white or black is
# taken as white or black.
PAPER_TOLERANCE = 0.05
# ITU-R 601 luma, as Pillow's own "L" conversion, in thousandths.
_LUMA = (299, 587, 114)


class ImageError(ValueError):
    """A file that cannot become a digit input (a ValueError)."""


def load_image(path, max_pixels=MAX_PIXELS):
    """The picture at ``path`` as a 2-D float32 array of gray levels in [0, 1].

    PNG, JPEG, BMP, TIFF, GIF and anything else Pillow reads, in any mode;
    the first frame of an animation. The EXIF orientation is applied. Gray
    levels are taken by each mode's true range, never rounded to 8 bits:

    - ``1``, ``L``, ``P`` (through its palette), ``RGB``, ``CMYK`` (as
      ``(1 - C)(1 - K)``, ...), ``YCbCr``, ``HSV``: luma
      ``0.299 R + 0.587 G + 0.114 B`` of 8-bit channels, divided by 255
      (``YCbCr`` is its Y; ``LAB`` is the sRGB gray of its lightness L*);
    - ``I;16`` (any byte order): divided by 65535;
    - ``I`` (32-bit integers) and ``F`` (floats): divided by the smallest of
      1, 255 and 65535 that bounds every value, when none is negative;
      otherwise by their own range (the least value 0, the greatest 1).
      NaN or infinite values are refused.

    Pillow itself hands 16-bit colour (``RGB``/``RGBA``/``LA`` PNGs) over in
    8 bits, the high byte of each channel.

    Transparency (an alpha channel, a palette's alpha, or a colour marked
    transparent) is resolved into gray levels, with ``a`` the opacity and
    ``v`` the gray of each pixel:

    - where the visible pixels (``a > 0``) are all of one colour (within
      ``UNIFORM_COLOUR``, premultiplied), the alpha is the ink: ``1 - a``
      (white strokes on a transparent canvas, as drawing apps and HTML
      canvases save them, or black ones, or any single colour);
    - otherwise the colour is composited onto paper, ``a v + (1 - a) P``.
      Where no pixel is fully transparent, ``P`` is the colour of the least
      opaque pixels (translucent paper stays that paper). Where the pixels
      bordering the fully transparent part are opaque, the transparent part
      continues them: ``P`` is their colour if nine in ten of them share it
      and most visible pixels do too (a picture with its own paper, pasted on
      a transparent sheet), else white or black, whichever is nearer their
      median (a picture whose paper colour was marked transparent).
      Otherwise (translucent edges: strokes on a transparent canvas) ``P``
      is white or black, whichever is farther from the alpha-weighted mean
      colour of the visible pixels. A paper colour within
      ``PAPER_TOLERANCE`` of white or black is taken as white or black.

    A fully transparent picture becomes white paper (and :func:`load_digit`
    refuses it as blank). Raises ImageError when the file is missing, not a
    picture, larger than ``max_pixels`` pixels (checked on the header, before
    decoding) or damaged.

    Parameters
    ----------
    path : str or path-like
        The picture file.
    max_pixels : int, default MAX_PIXELS
        Larger pictures are refused.

    Returns
    -------
    ndarray
        2-D float32 gray levels in [0, 1].
    """
    return _read(path, max_pixels)[0]


def _read(path, max_pixels):
    """load_image's gray levels and whether the picture is fully transparent."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("reading pictures needs Pillow: pip install pillow") from exc
    path = os.fspath(path)
    try:
        # From a file object, not the path: Pillow then never maps the file
        # into memory, which (Pillow 13) scrambles an uncompressed TIFF whose
        # orientation tag turns it a quarter turn (5 to 8).
        with open(path, "rb") as file, Image.open(file) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageError(f"{path}: {width}x{height} pixels is more than the "
                                 f"{max_pixels} allowed")
            if width == 0 or height == 0:
                raise ImageError(f"{path}: the picture is empty ({width}x{height})")
            im.load()
            im = _upright(im)
            value, alpha = _planes(im)
    except ImageError as exc:
        if str(exc).startswith(path):
            raise
        raise ImageError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not a picture") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not a picture Pillow can read") from None
    except Image.DecompressionBombError as exc:  # Pillow's own, larger, cap
        raise ImageError(f"{path}: more than the {max_pixels} pixels allowed "
                         f"({_one_line(exc)})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports truncated and damaged files as any of these.
        raise ImageError(f"{path}: cannot decode the picture ({_one_line(exc)})") from None
    gray, transparent = _flatten(value, alpha)
    return gray.astype(np.float32), transparent


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _upright(im):
    """``im`` turned as its EXIF orientation says (Pillow removes the tag once
    it has applied it, as its TIFF reader may do on load)."""
    from PIL import ImageOps
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block leaves the picture readable
        return im
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        turned = ImageOps.exif_transpose(im)
        if turned is not None:
            return turned
    return im


def _luma(rgb, top):
    """Gray levels of (..., 3) integer channels in [0, top]. The numerator is
    an exact integer, so a gray colour (k, k, k) gives exactly k / top."""
    rgb = np.asarray(rgb)
    gray = rgb[..., 0] * float(_LUMA[0])
    gray += rgb[..., 1] * float(_LUMA[1])
    gray += rgb[..., 2] * float(_LUMA[2])
    gray /= 1000.0 * top
    return gray


def _by_range(values, mode):
    """``I`` and ``F`` levels in [0, 1] (the rule in load_image's docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ImageError(f"the {mode} picture holds NaN or infinite values")
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0:
        for top in (1.0, 255.0, 65535.0):
            if hi <= top:
                return values / top
    if hi == lo:
        return np.zeros_like(values)
    return (values - lo) / (hi - lo)


def _lab_gray(lightness):
    """The sRGB gray level of CIE lightness L* (Pillow's LAB stores L* * 255 / 100)."""
    lstar = np.asarray(lightness, dtype=np.float64) * (100.0 / 255.0)
    y = np.where(lstar > 8.0, ((lstar + 16.0) / 116.0) ** 3, lstar * (27.0 / 24389.0))
    gray = np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055)
    return np.clip(gray, 0.0, 1.0)


def _planes(im):
    """(gray, alpha) of a loaded Pillow picture: float64 arrays in [0, 1];
    alpha is None when every pixel is opaque."""
    mode = im.mode
    alpha = None
    key_values = None  # the raw values a transparency key is compared with
    if mode.startswith("I;16"):
        raw = np.asarray(im)
        value = raw.astype(np.float64) / 65535.0
        key_values = raw
    elif mode in ("I", "F"):
        raw = np.asarray(im)
        value = _by_range(raw, mode)
        key_values = raw if mode == "I" else None
    elif mode in ("1", "L"):
        raw = np.asarray(im.convert("L") if mode == "1" else im)
        value = raw.astype(np.float64) / 255.0
        key_values = raw
    elif mode in ("RGB", "RGBX"):
        raw = np.asarray(im)[..., :3]
        value = _luma(raw, 255)
        key_values = raw
    elif mode == "CMYK":
        inks = 255 - np.asarray(im).astype(np.int64)
        value = _luma(inks[..., :3] * inks[..., 3:], 255 * 255)
    elif mode == "YCbCr":
        value = np.asarray(im)[..., 0].astype(np.float64) / 255.0
    elif mode == "LAB":
        value = _lab_gray(np.asarray(im)[..., 0])
    elif mode == "LA" or mode == "La":
        la = np.asarray(im.convert("LA") if mode == "La" else im)
        value = la[..., 0].astype(np.float64) / 255.0
        alpha = la[..., 1]
    else:  # RGBA, RGBa, P, PA, HSV and anything newer: through Pillow's RGBA
        rgba = np.asarray(im if mode == "RGBA" else im.convert("RGBA"))
        value = _luma(rgba[..., :3], 255)
        alpha = rgba[..., 3]
    if alpha is not None:
        alpha = None if alpha.min() == 255 else alpha.astype(np.float64) / 255.0
    elif key_values is not None:
        alpha = _keyed_alpha(key_values, im.info.get("transparency"), mode)
    return value, alpha


def _keyed_alpha(raw, key, mode):
    """Opacity from a colour marked transparent (a PNG tRNS entry), or None."""
    if key is None or isinstance(key, (bytes, bytearray)):
        return None
    key = np.atleast_1d(np.asarray(key, dtype=np.int64))
    if mode == "1":
        key = np.where(key > 0, 255, 0)
    elif raw.dtype == np.uint8 and key.max() > 255:
        key = key >> 8  # a 16-bit key of a picture Pillow hands over in 8 bits
    channels = raw.shape[2] if raw.ndim == 3 else 1
    if key.size != channels:
        return None
    raw = raw.reshape(raw.shape[:2] + (channels,))
    hit = np.all(raw == key.astype(raw.dtype), axis=-1)
    if not hit.any():
        return None
    return (~hit).astype(np.float64)


def _flatten(value, alpha):
    """Gray levels of the picture whose colour is ``value`` and opacity
    ``alpha`` (the rule in load_image's docstring), and whether it is fully
    transparent. Works on whole arrays, never on copies of the visible part:
    fully transparent pixels weigh nothing in an alpha-weighted sum."""
    if alpha is None or alpha.min() >= 1.0:
        return value, False
    weight = float(alpha.sum())
    if weight == 0.0:
        return np.ones_like(value), True
    spread = value * alpha
    mean = float(spread.sum()) / weight
    np.subtract(value, mean, out=spread)
    np.abs(spread, out=spread)
    spread *= alpha
    uniform = float(spread.max()) <= UNIFORM_COLOUR
    del spread
    if uniform:
        return 1.0 - alpha, False
    paper = _paper_under(value, alpha)
    if paper is None:
        paper = 1.0 if mean <= 0.5 else 0.0
    gray = value - paper
    gray *= alpha
    gray += paper
    return gray, False


def _paper_under(value, alpha):
    """The paper level behind the transparent part: the colour of the least
    opaque pixels when every pixel is visible; else from the visible pixels
    bordering the fully transparent ones when those are opaque; None when
    they are translucent."""
    least = float(alpha.min())
    if least > 0:
        return _snap(float(np.median(value[alpha <= least + 0.5 / 255])))
    clear = alpha == 0
    beside = np.zeros_like(clear)
    beside[1:] |= clear[:-1]
    beside[:-1] |= clear[1:]
    beside[:, 1:] |= clear[:, :-1]
    beside[:, :-1] |= clear[:, 1:]
    ring = beside & ~clear
    if not ring.any() or np.mean(alpha[ring] >= 1.0) < 0.9:
        return None
    colours = value[ring]
    median = float(np.median(colours))
    if _snap(median) != median:
        return _snap(median)
    one_colour = np.mean(np.abs(colours - median) <= PAPER_TOLERANCE) >= 0.9
    like_it = np.abs(value - median) <= PAPER_TOLERANCE
    like_it &= ~clear
    most = np.count_nonzero(like_it) >= 0.5 * np.count_nonzero(~clear)
    if one_colour and most:
        return median
    return 1.0 if median > 0.5 else 0.0


def _snap(level):
    """A paper level within PAPER_TOLERANCE of white or black is white or black."""
    for extreme in (0.0, 1.0):
        if abs(level - extreme) <= PAPER_TOLERANCE:
            return extreme
    return level


def digit_to_input(gray, size=28, box=20):
    """A gray picture of one digit as a ``(size, size)`` float32 MNIST-style input.

    Parameters
    ----------
    gray : ndarray
        2-D array in [0, 1] (either polarity).
    size : int, default 28
        Side of the result.
    box : int, default 20
        Side of the square the digit is scaled into.

    Returns
    -------
    ndarray
        Shape (size, size), float32, ink 1 on paper 0.

    Raises
    ------
    ImageError
        When the picture holds no ink (a uniform picture).
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
    """:func:`load_image` then :func:`digit_to_input`; errors name the file.

    Parameters
    ----------
    path : str or path-like
        The picture file.
    size, box : int
        As for :func:`digit_to_input`.
    max_pixels : int, default MAX_PIXELS
        As for :func:`load_image`.

    Returns
    -------
    ndarray
        Shape (size, size), float32.
    """
    gray, transparent = _read(path, max_pixels)
    if transparent:
        raise ImageError(f"{os.fspath(path)}: the picture holds no digit: it is blank "
                         f"(fully transparent)")
    try:
        return digit_to_input(gray, size, box)
    except ImageError as exc:
        raise ImageError(f"{os.fspath(path)}: {exc}") from None


def images_to_inputs(images, input_dim=(1, 28, 28)):
    """Pictures as an (N,) + input_dim float32 batch.

    Parameters
    ----------
    images : sequence
        Paths, or 2-D gray arrays in [0, 1].
    input_dim : tuple of int, default (1, 28, 28)
        Must be (1, S, S): one gray channel, square; the digit is scaled into a
        box of 5/7 of the side (20 of 28, as MNIST).

    Returns
    -------
    ndarray
        Shape (N,) + input_dim, float32.
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
