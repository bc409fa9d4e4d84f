"""Your own pictures of digits: MNIST-style preprocessing, ``Net.predict_images``
and ``fastconv predict``.

The oracle is MNIST itself: its test digits are already in the form the
preprocessing produces, so they must come through it almost unchanged, and
re-rendered as a reader's pictures (larger, offset, inverted on light paper,
PNG/BMP/JPEG) they must be recognised as well as when fed directly.
"""
import io
import json
import re
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import fastconv  # noqa: E402
from fastconv.io import pictures as imaging  # noqa: E402
from fastconv.nn import card as modelcard  # noqa: E402
from fastconv.io.pictures import ImageError, digit_to_input, load_digit  # noqa: E402

from test_cli import run_cli  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def centre_of_mass(a):
    ys, xs = np.mgrid[:a.shape[0], :a.shape[1]]
    return (a * ys).sum() / a.sum(), (a * xs).sum() / a.sum()


def save(array01, path):
    Image.fromarray(np.clip(np.asarray(array01) * 255 + 0.5, 0, 255).astype(np.uint8)).save(path)
    return path


# --- the preprocessing, on synthetic pictures ---------------------------------------

@settings(max_examples=40, deadline=None)
@given(h=st.integers(3, 60), w=st.integers(3, 60), top=st.integers(0, 30),
       left=st.integers(0, 30), light=st.booleans(), paper=st.floats(0.0, 0.3),
       seed=st.integers(0, 2 ** 16))
def test_any_blob_becomes_an_mnist_shaped_input(h, w, top, left, light, paper, seed):
    rng = np.random.default_rng(seed)
    blob = rng.random((h, w))
    blob[0, :] = blob[-1, :] = blob[:, 0] = blob[:, -1] = 1.0  # the ink reaches its box
    canvas = np.zeros((h + top + 5, w + left + 5))
    canvas[top:top + h, left:left + w] = blob
    picture = paper + (1 - paper) * canvas
    if light:
        picture = 1 - picture
    out = digit_to_input(picture)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    rows = np.flatnonzero(out.max(axis=1) > 0.05)
    cols = np.flatnonzero(out.max(axis=0) > 0.05)
    extent_h, extent_w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    # The longer side is scaled to 20 pixels, the other keeps the aspect ratio.
    assert max(extent_h, extent_w) in (19, 20)
    longer = max(h, w)
    assert abs(min(extent_h, extent_w) - 20 * min(h, w) / longer) <= 2
    # Centred by mass, up to the whole-pixel shift.
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 + 1e-5 and abs(cx - 14) <= 0.5 + 1e-5  # float32 sums


def test_polarity_offset_and_paper_do_not_matter():
    rng = np.random.default_rng(1)
    digit = np.zeros((40, 30))
    digit[5:35, 12:18] = 1.0
    digit[5:10, 5:25] = rng.random((5, 20))
    reference = digit_to_input(digit)
    dark_on_white = 1 - digit
    moved = np.ones((90, 70))
    moved[33:73, 21:51] = dark_on_white
    grey_paper = 0.2 + 0.6 * digit  # ink 0.8 on 0.2 paper: stretched to 0..1
    for picture in (dark_on_white, moved, grey_paper):
        np.testing.assert_allclose(digit_to_input(picture), reference, atol=2e-6)


def test_mnist_digits_come_through_almost_unchanged(mnist_test):
    x, _ = mnist_test
    corr = np.array([np.corrcoef(digit_to_input(img).ravel(), img.ravel())[0, 1]
                     for img in x[:300, 0]])
    assert np.median(corr) > 0.995
    assert np.mean(corr > 0.98) > 0.95


def test_transparent_background_counts_as_paper(tmp_path):
    ink = np.zeros((30, 20))
    ink[3:27, 8:12] = 1.0
    rgba = np.zeros((30, 20, 4), dtype=np.uint8)
    rgba[..., 3] = (ink * 255).astype(np.uint8)  # black ink, transparent elsewhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    np.testing.assert_allclose(load_digit(tmp_path / "t.png"), digit_to_input(ink), atol=1e-6)


# --- bad files ----------------------------------------------------------------------

def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data)))


def png_header_only(width, height):
    """A 60-byte PNG that declares width x height gray pixels and holds almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (PNG_MAGIC + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 8))
            + png_chunk(b"IEND", b""))


def bad_files(tmp_path):
    (tmp_path / "text.png").write_text("not a picture")
    (tmp_path / "huge.png").write_bytes(png_header_only(100_000, 100_000))
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(
        good, "PNG")
    (tmp_path / "truncated.png").write_bytes(good.getvalue()[:200])
    save(np.ones((30, 30)), tmp_path / "blank.png")
    (tmp_path / "folder.png").mkdir()
    return {
        "text.png": "not a picture",
        "huge.png": "10000000000 pixels",
        "truncated.png": "cannot decode",
        "blank.png": "blank",
        "folder.png": "folder",
        "missing.png": "no such file",
    }


def test_bad_files_raise_image_error_naming_them(tmp_path):
    for name, reason in bad_files(tmp_path).items():
        with pytest.raises(ImageError, match=re.escape(reason)) as info:
            load_digit(tmp_path / name)
        assert name in str(info.value)
        assert isinstance(info.value, ValueError)


def test_pixel_cap_is_checked_before_decoding(tmp_path):
    save(np.eye(50), tmp_path / "small.png")
    assert load_digit(tmp_path / "small.png").shape == (28, 28)
    with pytest.raises(ImageError, match="50x50 pixels is more than the 2499 allowed"):
        imaging.load_image(tmp_path / "small.png", max_pixels=2499)
    # Refused from the header: decoding would fail on the missing data instead.
    (tmp_path / "huge.png").write_bytes(png_header_only(8000, 8000))
    with pytest.raises(ImageError, match="8000x8000 pixels is more than the 30000000"):
        imaging.load_image(tmp_path / "huge.png")
    with pytest.raises(ImageError, match="cannot decode"):
        imaging.load_image(tmp_path / "huge.png", max_pixels=10 ** 8)


def test_inputs_need_one_square_gray_channel():
    with pytest.raises(ValueError, match=r"\(1, S, S\).*\(3, 28, 28\)"):
        imaging.images_to_inputs([np.eye(5)], (3, 28, 28))
    with pytest.raises(ImageError, match="2-D"):
        digit_to_input(np.zeros((0, 4)))
    with pytest.raises(ImageError, match="NaN"):
        digit_to_input(np.full((4, 4), np.nan))


# --- a trained network on re-rendered MNIST digits ------------------------------------

@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    _, (x, t) = fastconv.load_mnist(flatten=False, data_dir=mnist_dir)
    return x, t


@pytest.fixture(scope="module")
def trained(mnist_dir):
    """SimpleConvNet with He's weights after one epoch on 10,000 training images."""
    (x, t), _ = fastconv.load_mnist(flatten=False, data_dir=mnist_dir)
    net = fastconv.SimpleConvNet(weight_init_std="he", seed=0)
    trainer = fastconv.Trainer(net, x[:10000], t[:10000], x[:100], t[:100], epochs=1,
                               optimizer="Adam", optimizer_param={"lr": 0.001}, verbose=False,
                               seed=0)
    trainer.train()
    return net


def render(digit, rng, path):
    """An MNIST digit as a reader's picture: 1.5-4x larger, bicubic, somewhere on a
    bigger sheet, dark ink on light paper half of the time, in path's format."""
    side = int(round(28 * rng.choice([1.5, 2.0, 3.0, 4.0])))
    big = Image.fromarray((digit * 255).astype(np.uint8)).resize((side, side),
                                                                Image.Resampling.BICUBIC)
    ink = np.asarray(big, dtype=np.float64) / 255
    sheet = np.zeros((int(side * rng.uniform(1.2, 1.8)), int(side * rng.uniform(1.2, 1.8))))
    top = rng.integers(0, sheet.shape[0] - side + 1)
    left = rng.integers(0, sheet.shape[1] - side + 1)
    sheet[top:top + side, left:left + side] = ink
    if rng.random() < 0.5:
        paper, pen = rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.25)
    else:
        paper, pen = rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)
    return save(paper + (pen - paper) * sheet, path)


def test_rerendered_digits_are_recognised_as_well_as_direct_ones(trained, mnist_test,
                                                                 tmp_path):
    x, t = mnist_test
    n = 1000
    rng = np.random.default_rng(0)
    paths = [render(x[i, 0], rng, tmp_path / f"{i}{('.png', '.png', '.bmp', '.jpg')[i % 4]}")
             for i in range(n)]
    probs = trained.predict_images(paths)
    assert probs.shape == (n, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-12)
    direct = trained.accuracy(x[:n], t[:n])
    rendered = float(np.mean(probs.argmax(axis=1) == t[:n]))
    print(f"\naccuracy on {n} MNIST test digits: fed directly {direct:.3f}, "
          f"re-rendered {rendered:.3f}")
    assert direct > 0.9  # the net learned something, or the comparison means nothing
    assert abs(rendered - direct) <= 0.01


def test_predict_images_equals_predict_on_the_preprocessed_inputs(trained, mnist_test):
    x, _ = mnist_test
    pictures = [1 - x[i, 0] for i in range(5)]  # arrays, dark ink on white
    probs = trained.predict_images(pictures)
    scores = trained.predict(imaging.images_to_inputs(pictures)).astype(np.float64)
    expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    assert trained.predict_images([]).shape == (0, 10)


# --- the command line ---------------------------------------------------------------

@pytest.fixture(scope="module")
def run_folder(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    trained.save_params(folder / "params.npz")
    modelcard.write_card(folder, trained, model="simple")
    return folder


@pytest.fixture(scope="module")
def pictures(mnist_test, tmp_path_factory):
    x, t = mnist_test
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(7)
    return [render(x[i, 0], rng, folder / f"digit{i}.png") for i in range(4)], t[:4]


LINE = re.compile(r"^(.+): (\d) (\d\.\d{3}), (\d) (\d\.\d{3}), (\d) (\d\.\d{3})$")


def test_cli_predict_prints_the_top_three(trained, run_folder, pictures):
    paths, _ = pictures
    status, out, err = run_cli(["predict", "--params", run_folder / "params.npz", *paths])
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == len(paths)
    probs = trained.predict_images(paths)
    for line, path, p in zip(lines, paths, probs):
        m = LINE.match(line)
        assert m, line
        assert m.group(1) == str(path)
        classes = [int(m.group(i)) for i in (2, 4, 6)]
        shown = [float(m.group(i)) for i in (3, 5, 7)]
        assert classes == list(np.argsort(-p, kind="stable")[:3])
        np.testing.assert_allclose(shown, p[classes], atol=5e-4 + 1e-12)


def test_cli_predict_json_and_show(trained, run_folder, pictures, tmp_path):
    paths, _ = pictures
    show = tmp_path / "show.png"
    status, out, err = run_cli(["predict", "--params", run_folder / "params.npz", "--json",
                                "--top", "5", "--show", show, *paths])
    assert status == 0, err
    rows = json.loads(out)
    probs = trained.predict_images(paths)
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    for row, p in zip(rows, probs):
        assert len(row["top"]) == 5
        classes = [k for k, _ in row["top"]]
        assert classes == list(np.argsort(-p, kind="stable")[:5])
        np.testing.assert_allclose([v for _, v in row["top"]], p[classes], rtol=1e-12)
    assert show.read_bytes()[:8] == PNG_MAGIC


def test_cli_predict_bad_files_one_line(run_folder, tmp_path):
    for name, reason in bad_files(tmp_path).items():
        status, out, err = run_cli(["predict", "--params", run_folder / "params.npz",
                                    tmp_path / name])
        assert status == 1, (name, err)
        assert out == ""
        assert len(err.splitlines()) == 1, err
        assert err.startswith("fastconv predict: error: ") and name in err and reason in err
