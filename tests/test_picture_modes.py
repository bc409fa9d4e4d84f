"""Pictures as people save them (issue 21, item 4): every mode Pillow opens,
every bit depth, transparency, EXIF orientation.

The oracle is the plain 8-bit gray picture. Each real MNIST test digit is
drawn once as an ink map ``D`` (larger than 28x28, as a photo or a drawing
would be) and then saved in every mode and format that can hold it. Read back
through :func:`fastconv.io.pictures.images_to_inputs` (what ``fastconv predict``
and ``Net.predict_images`` call), every file must give the input of the 8-bit
``L`` PNG of the same picture:

- bit for bit up to float rounding when the file holds the same 8-bit levels
  in another form (a palette, three equal channels, CMYK, 16 bits as
  ``k * 257``, floats as ``k / 255``, an opaque alpha, ...);
- within a derived bound when it holds more precision (16-bit, float), or
  colour ink (see :func:`assert_same_input`).

Renderings are built so that the preprocessing's discrete decisions cannot
tell the encodings apart: the paper is exactly 0 or 1 and the darkest ink
exactly the other (both exact in every encoding), and no ink level sits within
3/255 of ``INK_LEVEL`` (the bounding-box threshold). The one decision left,
the whole-pixel placement by centre of mass, may differ by one pixel only
where the reference's centre sits within the propagated error of a half pixel.
"""
import functools
import re
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import fastconv  # noqa: E402
from fastconv.io import pictures as imaging  # noqa: E402
from fastconv.io.pictures import ImageError, images_to_inputs, load_image  # noqa: E402

from test_cli import run_cli  # noqa: E402
from test_predict import png_chunk  # noqa: E402

Q8 = 0.5 / 255      # rounding of a level to 8 bits
Q16 = 0.5 / 65535   # to 16 bits
QF32 = 2.0 ** -25   # float32 rounding of a value in [0, 1]
# Float32 arithmetic in the shrink (a few dozen products and sums of values
# <= 1) and the float32 field: far below any rendering difference.
F32_SLACK = 2e-6
EXACT = 1e-9        # same 8-bit levels: the gray maps differ by float rounding only


# --- the digits ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits(mnist_dir):
    _, (x, t) = fastconv.load_mnist(flatten=False, data_dir=mnist_dir)
    return x[:, 0].astype(np.float64), t


def ink_map(digit, height=112, width=112):
    """An MNIST digit as a larger ink map D in [0, 1]: bilinear (no overshoot),
    paper exactly 0 on the border, darkest ink exactly 1, and no level within
    3/255 of INK_LEVEL."""
    big = Image.fromarray(digit.astype(np.float32), "F").resize((width, height),
                                                                Image.Resampling.BILINEAR)
    d = np.clip(np.asarray(big, dtype=np.float64), 0.0, 1.0)
    d[0, :] = d[-1, :] = d[:, 0] = d[:, -1] = 0.0
    d /= d.max()
    level, gap = imaging.INK_LEVEL, 3 / 255
    near = np.abs(d - level) < gap
    d[near] = np.where(d[near] < level, level - gap, level + gap)
    return d


def to8(x):
    return np.floor(np.asarray(x) * 255 + 0.5).astype(np.uint8)


def to16(x):
    return np.floor(np.asarray(x) * 65535 + 0.5).astype(np.uint16)


# --- the oracle's bound ---------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def lanczos_gain(max_in=256, max_out=20):
    """max over sizes n_in <= max_in -> n_out <= max_out and over output pixels of
    sum |w|, the 1-D weights of Pillow's LANCZOS resize (read off by resizing an
    identity matrix: row i becomes the weights of input pixel i)."""
    gain = 0.0
    for n_in in range(1, max_in + 1):
        eye = Image.fromarray(np.eye(n_in, dtype=np.float32), "F")
        for n_out in range(1, max_out + 1):
            w = np.asarray(eye.resize((n_out, n_in), Image.Resampling.LANCZOS), np.float64)
            gain = max(gain, float(np.abs(w).sum(axis=0).max()))
    return gain


def centre(a):
    mass = a.sum()
    return ((a.sum(axis=1) @ np.arange(a.shape[0])) / mass,
            (a.sum(axis=0) @ np.arange(a.shape[1])) / mass)


def assert_same_input(out, ref, eps, what=""):
    """``out`` and ``ref`` are the preprocessed inputs of two pictures whose ink
    maps (after the contrast stretch) differ by at most ``eps`` per pixel.

    With the same bounding box (guaranteed by the renderings), the stretch is
    exact (paper and darkest ink are exact in every encoding), so the ink
    crops differ by eps; the LANCZOS shrink is linear, separable, with 1-D
    weights of absolute sum at most G, so the shrunk crops differ by at most
    G**2 * eps; clipping to [0, 1] does not increase a difference. Then they
    are placed by their centres of mass: where the reference's centre sits
    within the shift that error can cause of a half pixel (|dc| <= e * sum|y - c|
    / (mass - 784 e)), the placement may differ by one pixel along that axis.
    """
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out.shape == ref.shape
    bound = lanczos_gain() ** 2 * eps + F32_SLACK
    cy, cx = centre(ref)
    mass = ref.sum()
    ys, xs = np.mgrid[:ref.shape[0], :ref.shape[1]]
    shifts = []
    for c, grid in ((cy, ys), (cx, xs)):
        residual = ref.shape[0] / 2 - c  # what the placement rounded away, in [-0.5, 0.5]
        spread = bound * np.abs(grid - c).sum() / (mass - ref.size * bound)
        near_half = 0.5 - abs(residual) <= spread
        shifts.append((0, int(np.sign(residual))) if near_half else (0,))
    errors = {}
    for dy in shifts[0]:
        for dx in shifts[1]:
            errors[dy, dx] = float(np.abs(np.roll(out, (-dy, -dx), axis=(0, 1)) - ref).max())
    best = min(errors, key=errors.get)
    assert errors[best] <= bound, (f"{what}: inputs differ by {errors[best]:.3g} > bound "
                                   f"{bound:.3g} (eps {eps:.3g}; shifts tried {errors})")


def read(path):
    """The 28x28 input ``fastconv predict`` makes of the file at ``path``."""
    return images_to_inputs([path])[0, 0]


# --- writers: one picture, every mode -------------------------------------------------
#
# Exact writers take the 8-bit gray levels g8 (uint8) and store those levels
# in another form; precise writers take the true gray map g (float) and store
# it with more precision than 8 bits, returning the largest error of the gray
# levels Pillow then hands over, against g.

def png16(path, planes, colour_type, trns=None):
    """A 16-bit PNG (Pillow writes none but I;16): planes uint16 (H, W) or (H, W, C)."""
    planes = np.asarray(planes, dtype=">u2")
    h, w = planes.shape[:2]
    rows = planes.reshape(h, -1)
    raw = b"".join(b"\0" + rows[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    chunks = [png_chunk(b"IHDR", ihdr)]
    if trns is not None:
        chunks.append(png_chunk(b"tRNS", np.asarray(trns, ">u2").tobytes()))
    chunks += [png_chunk(b"IDAT", zlib.compress(raw)), png_chunk(b"IEND", b"")]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(chunks))
    return path


def shuffled_gray_palette(g8, seed=0):
    """g8 as a P picture whose palette is a permutation of the 256 grays: index
    i shows gray perm[i], so reading the indices as levels would be wrong."""
    perm = np.random.default_rng(seed).permutation(256).astype(np.uint8)
    inverse = np.argsort(perm).astype(np.uint8)
    im = Image.fromarray(inverse[g8], "L").convert("P")
    im.putpalette(np.repeat(perm, 3).tobytes(), "RGB")
    return im


def cmyk_black(g8):
    k = np.zeros(g8.shape + (4,), np.uint8)
    k[..., 3] = 255 - g8
    return Image.fromarray(k, "CMYK")


def cmyk_process(g8):
    k = np.zeros(g8.shape + (4,), np.uint8)
    k[..., :3] = (255 - g8)[..., None]
    return Image.fromarray(k, "CMYK")


def save(im, path, **options):
    im.save(path, **options)
    return path


EXACT_WRITERS = {
    "L.png": lambda g8, p: save(Image.fromarray(g8, "L"), p),
    "L.tif": lambda g8, p: save(Image.fromarray(g8, "L"), p),
    "L.bmp": lambda g8, p: save(Image.fromarray(g8, "L"), p),
    "L.gif": lambda g8, p: save(Image.fromarray(g8, "L"), p),
    "LA.png": lambda g8, p: save(Image.merge("LA", (Image.fromarray(g8, "L"),
                                                    Image.new("L", g8.shape[::-1], 255))), p),
    "P.png": lambda g8, p: save(shuffled_gray_palette(g8), p),
    "P.tif": lambda g8, p: save(shuffled_gray_palette(g8), p),
    "PA.tif": lambda g8, p: save(shuffled_gray_palette(g8).convert("PA"), p),
    "RGB.png": lambda g8, p: save(Image.fromarray(g8, "L").convert("RGB"), p),
    "RGB.tif": lambda g8, p: save(Image.fromarray(g8, "L").convert("RGB"), p),
    "RGBA.png": lambda g8, p: save(Image.fromarray(g8, "L").convert("RGBA"), p),
    "CMYK-black.tif": lambda g8, p: save(cmyk_black(g8), p),
    "CMYK-process.tif": lambda g8, p: save(cmyk_process(g8), p),
    "I;16.png": lambda g8, p: save(Image.fromarray(g8.astype(np.uint16) * 257), p),
    "I;16B.tif": lambda g8, p: save(Image.frombytes("I;16B", g8.shape[::-1],
                                                    (g8.astype(">u2") * 257).tobytes()), p),
    "I;16L.tif": lambda g8, p: save(Image.frombytes("I;16L", g8.shape[::-1],
                                                    (g8.astype("<u2") * 257).tobytes()), p),
    "I-8bit.tif": lambda g8, p: save(Image.fromarray(g8.astype(np.int32)), p),
    "I-16bit.tif": lambda g8, p: save(Image.fromarray(g8.astype(np.int32) * 257), p),
    "I-16bit.pgm": lambda g8, p: save(Image.fromarray(g8.astype(np.uint16) * 257), p),
    "F-255.tif": lambda g8, p: save(Image.fromarray(g8.astype(np.float32)), p),
    "F-01.tif": lambda g8, p: save(Image.fromarray(g8.astype(np.float32) / np.float32(255)), p),
    "RGB16.png": lambda g8, p: png16(p, np.repeat(g8[..., None], 3, -1).astype(np.uint16) * 257,
                                     2),
    "LA16.png": lambda g8, p: png16(p, np.stack([g8.astype(np.uint16) * 257,
                                                 np.full(g8.shape, 65535, np.uint16)], -1), 4),
}


def _pillow_reads_its_own_ycbcr_tiff():
    """Pillow 12 writes a YCbCr TIFF it then reads as truncated (seen with the
    wheel tests' pinned 12.3.0; 13.0 reads it back): that case needs a Pillow
    that can make the file at all."""
    import io as _io
    buffer = _io.BytesIO()
    Image.new("L", (4, 4), 7).convert("YCbCr").save(buffer, "TIFF")
    try:
        Image.open(_io.BytesIO(buffer.getvalue())).load()
    except OSError:
        return False
    return True


if _pillow_reads_its_own_ycbcr_tiff():
    EXACT_WRITERS["YCbCr.tif"] = lambda g8, p: save(Image.fromarray(g8, "L").convert("YCbCr"), p)

# The colour of a ballpoint pen: the picture is white paper with this ink
# blended in, each channel rounded to 8 bits.
BLUE = np.array([20, 40, 170])


def luminance(rgb):
    return np.asarray(rgb, np.float64) @ [0.299, 0.587, 0.114] / 255


def blue_ink(d):
    rgb = 255 + (BLUE - 255) * np.asarray(d)[..., None]
    return np.floor(rgb + 0.5).astype(np.uint8)


def blue_palette(d):
    """The ink map as a P picture: index i is paper blended with i/255 of the pen."""
    im = Image.fromarray(to8(d), "L").convert("P")
    im.putpalette(blue_ink(np.arange(256) / 255).tobytes(), "RGB")
    return im


def cie_lab_gray(code):
    """The sRGB gray of an 8-bit CIE L* code (L* = code * 100 / 255), by the
    CIE and sRGB definitions."""
    lstar = np.asarray(code, np.float64) * 100 / 255
    y = np.where(lstar > 8, ((lstar + 16) / 116) ** 3, lstar * 27 / 24389)
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)


# An 8-bit L* code is coarser than an 8-bit gray level in the light tones:
# Pillow's LAB conversion lands within one code step of the gray level.
LAB_STEP = float(np.diff(cie_lab_gray(np.arange(256))).max())

# Precise writers: (g, path, d) -> (path, error of the ink map against D).
# A colour ink of contrast c (white minus the pen's gray) stretches a gray
# error e into e / c.
BLUE_CONTRAST = 1 - luminance(BLUE)
PRECISE_WRITERS = {
    "I;16.png": lambda g, p, d: (save(Image.fromarray(to16(g)), p), Q16),
    "I;16B.tif": lambda g, p, d: (save(Image.frombytes("I;16B", g.shape[::-1],
                                                       to16(g).astype(">u2").tobytes()), p), Q16),
    "I;16L.tif": lambda g, p, d: (save(Image.frombytes("I;16L", g.shape[::-1],
                                                       to16(g).astype("<u2").tobytes()), p), Q16),
    "I.tif": lambda g, p, d: (save(Image.fromarray(to16(g).astype(np.int32)), p), Q16),
    "I.pgm": lambda g, p, d: (save(Image.fromarray(to16(g)), p), Q16),
    "F.tif": lambda g, p, d: (save(Image.fromarray(g.astype(np.float32)), p), QF32),
    # Pillow keeps the high byte of each 16-bit channel: h/255 against the
    # 16-bit value (256 h + l)/65535 is off by (h - l)/65535, at most 255/65535.
    "RGB16.png": lambda g, p, d: (png16(p, np.repeat(to16(g)[..., None], 3, -1), 2),
                                  255 / 65535 + Q16),
    "LAB.tif": lambda g, p, d: (save(Image.fromarray(to8(g), "L").convert("LAB"), p),
                                LAB_STEP + Q8),
    "RGB-blue.png": lambda g, p, d: (save(Image.fromarray(blue_ink(d), "RGB"), p),
                                     Q8 / BLUE_CONTRAST),
    "P-blue.png": lambda g, p, d: (save(blue_palette(d), p),
                                   (Q8 + Q8) / BLUE_CONTRAST),  # index, then the palette
}


def render(d, light_ink):
    """The picture's true gray map: dark ink on white paper, or light on black."""
    return d if light_ink else 1 - d


def levels8(d, light_ink):
    d8 = to8(d)
    return d8 if light_ink else 255 - d8


@pytest.fixture(scope="module")
def seven(digits):
    """The first MNIST test digit, a 7, at 112x112, and its two 8-bit references."""
    x, t = digits
    assert t[0] == 7
    return ink_map(x[0])


def references(d, folder):
    """The inputs of the 8-bit L PNGs of d, dark on white and light on black
    (the same up to float rounding: the two are checked against each other)."""
    dark = read(save(Image.fromarray(levels8(d, False), "L"), folder / "ref-dark.png"))
    light = read(save(Image.fromarray(levels8(d, True), "L"), folder / "ref-light.png"))
    assert_same_input(light, dark, EXACT, "the two polarities")
    return dark


# --- every mode, the same 8-bit levels --------------------------------------------------

@pytest.mark.parametrize("light_ink", [False, True], ids=["dark-on-white", "light-on-black"])
@pytest.mark.parametrize("name", sorted(EXACT_WRITERS))
def test_every_mode_holding_the_8bit_levels_reads_as_the_8bit_picture(digits, tmp_path, name,
                                                                      light_ink):
    x, _ = digits
    for i in (0, 1, 2):
        d = ink_map(x[i])
        ref = references(d, tmp_path)
        path = EXACT_WRITERS[name](levels8(d, light_ink), tmp_path / f"{i}-{name}")
        assert_same_input(read(path), ref, EXACT, f"digit {i} {name}")


# Blue ballpoint ink is drawn on white paper only.
@pytest.mark.parametrize("name, light_ink", [
    (name, light) for name in sorted(PRECISE_WRITERS) for light in (False, True)
    if not (name.endswith("-blue.png") and light)])
def test_deeper_and_colour_pictures_read_within_the_quantisation_bound(digits, tmp_path, name,
                                                                       light_ink):
    x, _ = digits
    for i in (0, 1, 2):
        d = ink_map(x[i])
        ref = references(d, tmp_path)
        path, err = PRECISE_WRITERS[name](render(d, light_ink), tmp_path / f"{i}-{name}", d)
        # The 8-bit reference is itself within Q8 of D.
        assert_same_input(read(path), ref, err + Q8, f"digit {i} {name}")


@pytest.mark.parametrize("fmt", ["png", "tif", "bmp"])
@pytest.mark.parametrize("light_ink", [False, True], ids=["dark-on-white", "light-on-black"])
def test_one_bit_pictures_read_as_the_8bit_picture_of_the_same_pixels(digits, tmp_path, fmt,
                                                                      light_ink):
    x, _ = digits
    d = (ink_map(x[3]) > 0.5).astype(np.float64)
    ref = read(save(Image.fromarray(levels8(d, light_ink), "L"), tmp_path / "ref.png"))
    bits = Image.fromarray(levels8(d, light_ink) > 127)
    assert bits.mode == "1"
    path = save(bits, tmp_path / f"bits.{fmt}")
    assert Image.open(path).mode == "1"
    assert_same_input(read(path), ref, EXACT, fmt)


# --- the two reported cases -------------------------------------------------------------

def test_reported_16bit_grayscale_png_of_a_seven_dark_on_white(seven, tmp_path):
    d = seven
    eight = read(save(Image.fromarray(levels8(d, False), "L"), tmp_path / "7-8bit.png"))
    sixteen_path = save(Image.fromarray(to16(1 - d)), tmp_path / "7-16bit.png")
    assert Image.open(sixteen_path).mode == "I;16"
    sixteen = read(sixteen_path)
    print(f"\nmean ink: 8-bit {eight.mean():.3f}, 16-bit {sixteen.mean():.3f}")
    assert_same_input(sixteen, eight, Q16 + Q8, "16-bit 7")
    # And the 8-bit levels stored in 16 bits give the 8-bit input itself.
    same = read(save(Image.fromarray(levels8(d, False).astype(np.uint16) * 257),
                     tmp_path / "7-16bit-of-8.png"))
    assert_same_input(same, eight, EXACT, "16-bit 7 of 8-bit levels")


def white_on_transparent(d8):
    """How HTML canvases and drawing apps save white strokes: colour 255, alpha the stroke."""
    rgba = np.full(d8.shape + (4,), 255, np.uint8)
    rgba[..., 3] = d8
    return Image.fromarray(rgba, "RGBA")


def test_reported_white_ink_on_a_transparent_canvas(seven, tmp_path):
    d = seven
    ref = references(d, tmp_path)
    path = save(white_on_transparent(to8(d)), tmp_path / "7-canvas.png")
    assert_same_input(read(path), ref, EXACT, "white on transparent")


# --- transparency -----------------------------------------------------------------------

def rgba(colour, alpha):
    colour = np.broadcast_to(np.asarray(colour, np.uint8), alpha.shape + (3,))
    return Image.fromarray(np.dstack([colour, alpha]).astype(np.uint8), "RGBA")


def canvas_export(colour, d8):
    """An HTML canvas's toDataURL of a stroke of ``colour``: stored premultiplied
    in 8 bits, un-premultiplied on export (the colour of faint pixels drifts),
    transparent pixels black."""
    a = d8.astype(np.int64)[..., None]
    premultiplied = np.floor(np.asarray(colour) * a / 255 + 0.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        rgb = np.where(a > 0, np.floor(premultiplied * 255 / np.maximum(a, 1) + 0.5), 0)
    return rgba(np.clip(rgb, 0, 255).astype(np.uint8), d8)


def garbage_under_transparency(d8):
    """White strokes; fully transparent pixels hold random colours (never seen)."""
    rng = np.random.default_rng(5)
    colour = np.where((d8 > 0)[..., None], 255,
                      rng.integers(0, 256, d8.shape + (3,))).astype(np.uint8)
    return rgba(colour, d8)


def on_transparent_sheet(g8, pad=30):
    """An opaque picture (paper and ink) pasted on a larger transparent canvas."""
    h, w = g8.shape
    out = np.zeros((h + 2 * pad, w + 3 * pad, 4), np.uint8)
    out[pad:pad + h, 2 * pad:2 * pad + w, :3] = g8[..., None]
    out[pad:pad + h, 2 * pad:2 * pad + w, 3] = 255
    return Image.fromarray(out, "RGBA")


def translucent_paper(g8, light_ink):
    """Opaque ink (every level but the paper's) on paper at a third opacity."""
    paper = 0 if light_ink else 255
    alpha = np.where(g8 == paper, 85, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([np.repeat(g8[..., None], 3, -1), alpha]), "RGBA")


def la(lum, alpha):
    return Image.merge("LA", (Image.fromarray(np.broadcast_to(lum, alpha.shape).astype(np.uint8),
                                              "L"), Image.fromarray(alpha, "L")))


def alpha_palette(d8):
    """PNG-8 of an alpha-only drawing: palette index i is white with alpha i."""
    im = Image.fromarray(d8, "L").convert("P")
    im.putpalette(np.column_stack([np.full((256, 3), 255), np.arange(256)]).astype(
        np.uint8).tobytes(), "RGBA")
    return im


def white_pa(d8):
    im = Image.new("P", d8.shape[::-1], 0)
    im.putpalette([255, 255, 255] * 256)
    im = im.convert("PA")
    im.putalpha(Image.fromarray(d8, "L"))
    return im


def keyed(g8, light_ink):
    """g8 as a shuffled-palette P picture, and the index of its paper colour
    (to be marked transparent)."""
    im = shuffled_gray_palette(g8)
    paper = 0 if light_ink else 255
    perm = np.frombuffer(bytes(im.getpalette()[0::3]), np.uint8)
    return im, int(np.flatnonzero(perm == paper)[0])


# name -> (d8, light_ink, folder) -> path; each a picture of the ink map d8 that
# must read exactly as the 8-bit picture.
TRANSPARENT = {
    "RGBA white on transparent": lambda d8, light, f: save(white_on_transparent(d8),
                                                           f / "a.png"),
    "RGBA black on transparent": lambda d8, light, f: save(rgba((0, 0, 0), d8), f / "a.png"),
    "RGBA blue on transparent": lambda d8, light, f: save(rgba(BLUE, d8), f / "a.png"),
    "RGBA canvas export, white": lambda d8, light, f: save(canvas_export((255, 255, 255), d8),
                                                           f / "a.png"),
    "RGBA canvas export, red": lambda d8, light, f: save(canvas_export((200, 30, 90), d8),
                                                         f / "a.png"),
    "RGBA colour under full transparency": lambda d8, light, f: save(
        garbage_under_transparency(d8), f / "a.png"),
    "RGBA tif white on transparent": lambda d8, light, f: save(white_on_transparent(d8),
                                                               f / "a.tif"),
    "LA white on transparent": lambda d8, light, f: save(la(255, d8), f / "a.png"),
    "LA black on transparent": lambda d8, light, f: save(la(0, d8), f / "a.png"),
    "LA white strokes, black transparent": lambda d8, light, f: save(
        la(np.where(d8 > 0, 255, 0), d8), f / "a.png"),
    "PA white on transparent": lambda d8, light, f: save(white_pa(d8), f / "a.tif"),
    "P alpha palette": lambda d8, light, f: save(alpha_palette(d8), f / "a.png"),
}


def keyed_writers():
    """Pictures whose paper colour is marked transparent (binary alpha): reading
    them as the opaque picture is right."""
    def p_trns(g8, light, f):
        im, index = keyed(g8, light)
        return save(im, f / "k.png", transparency=index)

    def p_gif(g8, light, f):
        im, index = keyed(g8, light)
        return save(im, f / "k.gif", transparency=index)

    return {
        "P tRNS paper": p_trns,
        "P gif transparent paper": p_gif,
        "L tRNS paper": lambda g8, light, f: save(Image.fromarray(g8, "L"), f / "k.png",
                                                  transparency=0 if light else 255),
        "RGB tRNS paper": lambda g8, light, f: save(
            Image.fromarray(g8, "L").convert("RGB"), f / "k.png",
            transparency=(0, 0, 0) if light else (255, 255, 255)),
        "I;16 tRNS paper": lambda g8, light, f: png16(f / "k.png", g8.astype(np.uint16) * 257, 0,
                                                      trns=[0 if light else 65535]),
        "RGB16 tRNS paper": lambda g8, light, f: png16(
            f / "k.png", np.repeat(g8[..., None], 3, -1).astype(np.uint16) * 257, 2,
            trns=[0] * 3 if light else [65535] * 3),
        "RGBA opaque picture on a transparent sheet": lambda g8, light, f: save(
            on_transparent_sheet(g8), f / "k.png"),
        "LA opaque picture on a transparent sheet": lambda g8, light, f: save(
            on_transparent_sheet(g8).convert("LA"), f / "k.png"),
        "RGBA translucent paper, opaque ink": lambda g8, light, f: save(
            translucent_paper(g8, light), f / "k.png"),
        "RGBA half transparent everywhere": lambda g8, light, f: save(
            Image.fromarray(np.dstack([np.repeat(g8[..., None], 3, -1),
                                       np.full(g8.shape, 128, np.uint8)]), "RGBA"),
            f / "k.png"),
    }


KEYED = keyed_writers()


@pytest.mark.parametrize("name", sorted(TRANSPARENT))
def test_alpha_is_the_ink_where_the_colour_is_uniform(digits, tmp_path, name):
    x, _ = digits
    for i in (0, 4):
        d = ink_map(x[i])
        ref = references(d, tmp_path)
        path = TRANSPARENT[name](to8(d), False, tmp_path)
        assert_same_input(read(path), ref, EXACT, f"digit {i} {name}")


@pytest.mark.parametrize("light_ink", [False, True], ids=["dark-on-white", "light-on-black"])
@pytest.mark.parametrize("name", sorted(KEYED))
def test_transparent_paper_reads_as_the_opaque_picture(digits, tmp_path, name, light_ink):
    x, _ = digits
    for i in (0, 4):
        d = ink_map(x[i])
        ref = references(d, tmp_path)
        path = KEYED[name](levels8(d, light_ink), light_ink, tmp_path)
        assert_same_input(read(path), ref, EXACT, f"digit {i} {name}")


def test_strokes_of_varying_colour_on_a_transparent_canvas_are_composited_onto_black(digits,
                                                                                    tmp_path):
    """White strokes whose colour also fades at the edges (composited against
    black before export), and strokes in two light colours: not one colour, so
    the colour is composited onto the paper farther from it, black. Each reads
    as the float picture of that composite, alpha * gray (float32-exact)."""
    x, _ = digits
    d8 = to8(ink_map(x[0]))
    a = d8 / 255
    yellow = np.array([255, 230, 60])
    left = (np.arange(d8.shape[1]) < d8.shape[1] // 2)[None, :, None]
    two = np.where(left, np.array([255, 255, 255]), yellow).astype(np.uint8)
    cases = {
        "halo": (rgba(np.repeat(d8[..., None], 3, -1), d8), a * a),
        "two colours": (rgba(two, d8), a * np.where(left[..., 0], 1.0, luminance(yellow))),
    }
    for name, (im, composite) in cases.items():
        out = read(save(im, tmp_path / f"{name}.png"))
        ref = read(save(Image.fromarray(composite.astype(np.float32)), tmp_path / f"{name}.tif"))
        assert_same_input(out, ref, 2 * QF32, name)


# --- EXIF orientation -------------------------------------------------------------------

# How the stored pixels relate to the upright picture, for each EXIF
# orientation (TIFF 6.0 / EXIF 2.3: the tag says how to turn the stored
# picture to show it upright, so the stored one is the inverse turn).
STORED = {
    2: np.fliplr,                        # shown mirrored left-right
    3: lambda a: np.rot90(a, 2),         # shown turned 180 degrees
    4: np.flipud,                        # shown mirrored top-bottom
    5: lambda a: a.T,                    # mirrored, then turned 270 degrees clockwise
    6: lambda a: np.rot90(a, 1),         # shown turned 90 degrees clockwise
    7: lambda a: a[::-1, ::-1].T,        # mirrored, then turned 90 degrees clockwise
    8: lambda a: np.rot90(a, -1),        # shown turned 270 degrees clockwise
}


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif"])
@pytest.mark.parametrize("orientation", sorted(STORED))
def test_exif_orientation_is_applied(digits, tmp_path, fmt, orientation):
    x, _ = digits
    d = ink_map(x[0], 112, 80)  # not square: a turn changes the shape
    g8 = levels8(d, False)
    stored = np.ascontiguousarray(STORED[orientation](g8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"tiffinfo": {0x0112: orientation}} if fmt == "tif" else {"exif": exif}
    if fmt == "jpg":
        options["quality"] = 100
    path = save(Image.fromarray(stored, "L"), tmp_path / f"turned.{fmt}", **options)
    upright = save(Image.fromarray(g8, "L"), tmp_path / f"upright.{fmt}",
                   **({"quality": 100} if fmt == "jpg" else {}))
    got, want = read(path), read(upright)
    if fmt == "jpg":  # lossy: the same picture, compressed in another orientation
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99
    else:
        assert_same_input(got, want, EXACT, f"orientation {orientation}")


# --- JPEG CMYK ------------------------------------------------------------------------

def test_cmyk_jpeg_reads_the_gray_of_its_decoded_inks(digits, tmp_path):
    """Lossy, so the oracle is its own decoded CMYK (Adobe's inverted storage is
    Pillow's to undo): gray = luminance of ((1 - C)(1 - K), (1 - M)(1 - K), (1 - Y)(1 - K))."""
    x, _ = digits
    d = ink_map(x[0])
    for name, im in (("black", cmyk_black(levels8(d, False))),
                     ("process", cmyk_process(levels8(d, False)))):
        path = save(im, tmp_path / f"{name}.jpg", quality=95)
        with Image.open(path) as back:
            assert back.mode == "CMYK"
            c = np.asarray(back, np.float64) / 255
        rgb = (1 - c[..., :3]) * (1 - c[..., 3:])
        want = rgb @ [0.299, 0.587, 0.114]
        np.testing.assert_allclose(load_image(path), want, atol=1e-6)
        ref = read(save(Image.fromarray(levels8(d, False), "L"), tmp_path / "ref.png"))
        assert np.corrcoef(read(path).ravel(), ref.ravel())[0, 1] > 0.99, name


# --- the documented rules for I and F -------------------------------------------------

SCALING_RULES = [
    ([0, 1], [0.0, 1.0]),                      # F within [0, 1]: as it is
    ([0, 0.25, 1], [0.0, 0.25, 1.0]),
    ([0, 255], [0.0, 1.0]),                    # within [0, 255]: 8-bit levels
    ([0, 51, 255.0], [0.0, 0.2, 1.0]),
    ([0, 300, 65535], [0.0, 300 / 65535, 1.0]),  # within [0, 65535]: 16-bit levels
    ([-1, 0, 1], [0.0, 0.5, 1.0]),             # outside all three: its own range
    ([0, 1e6], [0.0, 1.0]),
]


# Integer pictures hold integers: mode I takes the rules whose values are whole.
@pytest.mark.parametrize("mode, values, expected", [
    (mode, values, expected) for mode in ("F", "I") for values, expected in SCALING_RULES
    if mode == "F" or all(v == int(v) for v in values)])
def test_float_and_integer_pictures_are_scaled_by_the_documented_rule(tmp_path, mode, values,
                                                                      expected):
    dtype = np.float32 if mode == "F" else np.int32
    row = np.asarray(values, dtype)[None, :]
    path = save(Image.fromarray(row), tmp_path / "r.tif")
    assert Image.open(path).mode == mode
    np.testing.assert_allclose(load_image(path), np.asarray(expected)[None, :], atol=1e-7)


def test_sixteen_bit_gray_is_scaled_by_65535_whatever_its_byte_order(tmp_path):
    values = np.array([[0, 257, 32768, 65535]])
    want = values / 65535
    for mode, dtype in (("I;16", "<u2"), ("I;16B", ">u2"), ("I;16L", "<u2")):
        path = save(Image.frombytes(mode, (4, 1), values.astype(dtype).tobytes()),
                    tmp_path / f"{mode}.tif")
        np.testing.assert_allclose(load_image(path), want, atol=1e-7, err_msg=mode)


# --- blank, transparent and broken pictures --------------------------------------------

def blanks(folder):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    out = {
        "white.png": Image.new("RGBA", (40, 40), (255, 255, 255, 255)),
        "transparent.png": Image.fromarray(np.dstack([noise, np.zeros((40, 40), np.uint8)]),
                                           "RGBA"),
        "transparent-la.png": Image.new("LA", (40, 40), (0, 0)),
        "veiled.png": Image.new("RGBA", (40, 40), (0, 0, 255, 128)),
        "gray16.png": Image.fromarray(np.full((40, 40), 40000, np.uint16)),
        "gray-f.tif": Image.fromarray(np.full((40, 40), 0.3, np.float32)),
        "gray-i.tif": Image.fromarray(np.full((40, 40), 70000, np.int32)),
        "cmyk.tif": Image.new("CMYK", (40, 40), (0, 0, 0, 90)),
    }
    paths = {name: save(im, folder / name) for name, im in out.items()}
    invisible = Image.new("P", (40, 40), 3)
    invisible.putpalette([0, 0, 0] * 256)
    paths["invisible-palette.png"] = save(invisible, folder / "invisible-palette.png",
                                          transparency=3)
    return paths


def test_blank_and_fully_transparent_pictures_are_refused_in_one_line(tmp_path):
    for name, path in blanks(tmp_path).items():
        with pytest.raises(ImageError, match="blank") as info:
            read(path)
        message = str(info.value)
        assert name in message and "\n" not in message, message


def test_a_float_picture_holding_nan_is_refused_in_one_line(tmp_path):
    values = np.zeros((20, 20), np.float32)
    values[5, 5] = np.nan
    path = save(Image.fromarray(values), tmp_path / "nan.tif")
    with pytest.raises(ImageError, match="NaN") as info:
        read(path)
    assert "nan.tif" in str(info.value) and "\n" not in str(info.value)


# --- random renderings ------------------------------------------------------------------

ALL_WRITERS = [("exact", n) for n in sorted(EXACT_WRITERS)] + \
              [("precise", n) for n in sorted(PRECISE_WRITERS)] + \
              [("transparent", n) for n in sorted(TRANSPARENT)] + \
              [("keyed", n) for n in sorted(KEYED)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 999), writer=st.sampled_from(ALL_WRITERS), light_ink=st.booleans(),
       height=st.integers(40, 200), aspect=st.floats(0.6, 1.4),
       pad=st.tuples(*[st.integers(0, 40)] * 4))
def test_any_digit_in_any_mode_at_any_size(digits, tmp_path_factory, index, writer, light_ink,
                                           height, aspect, pad):
    x, _ = digits
    kind, name = writer
    width = max(30, int(height * aspect))
    d = np.pad(ink_map(x[index], height, width), ((pad[0], pad[1]), (pad[2], pad[3])))
    folder = tmp_path_factory.mktemp("any")
    ref = references(d, folder)
    what = f"digit {index} {name} {'light' if light_ink else 'dark'} {d.shape}"
    if kind == "exact":
        out, eps = read(EXACT_WRITERS[name](levels8(d, light_ink), folder / name)), EXACT
    elif kind == "precise":
        if name.endswith("-blue.png"):
            light_ink = False
        path, err = PRECISE_WRITERS[name](render(d, light_ink), folder / name, d)
        out, eps = read(path), err + Q8
    elif kind == "transparent":
        out, eps = read(TRANSPARENT[name](to8(d), light_ink, folder)), EXACT
    else:
        out, eps = read(KEYED[name](levels8(d, light_ink), light_ink, folder)), EXACT
    assert_same_input(out, ref, eps, what)


# --- a trained network sees the same digit in every mode -------------------------------

def fresh(folder, name):
    sub = folder / re.sub(r"[^\w.;-]+", "_", name)
    sub.mkdir()
    return sub


@pytest.fixture(scope="module")
def trained(mnist_dir):
    """SimpleConvNet after one epoch on 10,000 training images (a few seconds)."""
    (x, t), _ = fastconv.load_mnist(flatten=False, data_dir=mnist_dir)
    net = fastconv.SimpleConvNet(weight_init_std="he", seed=0)
    fastconv.Trainer(net, x[:10000], t[:10000], x[:100], t[:100], epochs=1, optimizer="Adam",
                     optimizer_param={"lr": 0.001}, verbose=False, seed=0).train()
    return net


def test_a_trained_net_predicts_the_same_digit_from_every_mode(trained, digits, tmp_path):
    x, t = digits
    hits = 0
    n = 12
    for i in range(n):
        d = ink_map(x[i])
        folder = tmp_path / str(i)
        folder.mkdir()
        paths = [save(Image.fromarray(levels8(d, False), "L"), folder / "ref.png")]
        for light in (False, True):
            paths += [EXACT_WRITERS[name](levels8(d, light), folder / f"{light}{name}")
                      for name in sorted(EXACT_WRITERS)]
            paths += [PRECISE_WRITERS[name](render(d, light), folder / f"{light}{name}", d)[0]
                      for name in sorted(PRECISE_WRITERS) if not (light and "blue" in name)]
            paths += [KEYED[name](levels8(d, light), light, fresh(folder, f"{light}{name}"))
                      for name in sorted(KEYED)]
        paths += [TRANSPARENT[name](to8(d), False, fresh(folder, name))
                  for name in sorted(TRANSPARENT)]
        paths.append(save(cmyk_black(levels8(d, False)), folder / "cmyk.jpg", quality=95))
        probs = trained.predict_images(paths)
        predicted = probs.argmax(axis=1)
        assert np.all(predicted == predicted[0]), (i, dict(zip(map(str, paths), predicted)))
        hits += predicted[0] == t[i]
    assert hits >= n - 2  # the net recognises these digits, or the comparison means little


def test_cli_predict_reads_the_two_reported_pictures_as_their_8bit_twins(trained, seven,
                                                                         tmp_path):
    trained.save_params(tmp_path / "params.npz")  # no model card: --model says what it is
    d = seven
    paths = [save(Image.fromarray(levels8(d, False), "L"), tmp_path / "7-8bit.png"),
             save(Image.fromarray(to16(1 - d)), tmp_path / "7-16bit.png"),
             save(white_on_transparent(to8(d)), tmp_path / "7-canvas.png")]
    status, out, err = run_cli(["predict", "--params", tmp_path / "params.npz",
                                "--model", "simple", *paths])
    assert status == 0, err
    guesses = [re.match(r"^.+: (\d) ", line).group(1) for line in out.splitlines()]
    assert guesses == ["7", "7", "7"], out
