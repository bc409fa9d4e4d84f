"""Tests for fastconv.io.mnist: the real MNIST files, corrupt IDX files, folder lookup and
the checksummed download (from local HTTP servers only; nothing here touches the internet)."""
import functools
import gzip
import http.server
import re
import shutil
import socket
import sys
import threading

import numpy as np
import pytest

import fastconv.io.mnist as datasets
from fastconv.io.mnist import (
    MNIST_FILES,
    DatasetError,
    DatasetUnavailableError,
    default_data_dir,
    download_mnist,
    load_mnist,
    resolve_data_dir,
)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path_factory):
    """No test may see the user's data settings or reach a real mirror by accident."""
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
    monkeypatch.setattr(datasets, "MIRRORS", (f"http://127.0.0.1:{_closed_port()}/",))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def real(mnist_dir):
    return load_mnist(normalize=False, data_dir=mnist_dir, download=False)


# ---------------------------------------------------------------------------------------
# Real data


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot", [True, False])
def test_shapes_and_dtypes(mnist_dir, normalize, flatten, one_hot):
    (x, t), (xt, tt) = load_mnist(normalize, flatten, one_hot, data_dir=mnist_dir, download=False)
    for xs, ts, n in ((x, t, 60000), (xt, tt, 10000)):
        assert xs.shape == ((n, 784) if flatten else (n, 1, 28, 28))
        assert xs.dtype == (np.float32 if normalize else np.uint8)
        assert ts.shape == ((n, 10) if one_hot else (n,))
        assert ts.dtype == (np.float32 if one_hot else np.uint8)
        if normalize:
            assert xs.min() == 0.0 and xs.max() == 1.0


def test_label_counts(real):
    (_, t), (_, tt) = real
    assert np.bincount(t, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(tt, minlength=10).tolist() == TEST_COUNTS


def test_mean_pixel(mnist_dir):
    (x, _), _ = load_mnist(data_dir=mnist_dir, download=False)
    assert round(float(x.mean(dtype=np.float64)), 6) == 0.130660


def test_normalize_is_pixel_over_255(mnist_dir, real):
    (x, _), (xt, _) = load_mnist(normalize=True, data_dir=mnist_dir, download=False)
    (xu, _), (xtu, _) = real
    assert np.array_equal(x, xu.astype(np.float32) / np.float32(255))
    assert np.array_equal(xt, xtu.astype(np.float32) / np.float32(255))


def test_one_hot_consistent(mnist_dir, real):
    (_, t1), (_, tt1) = load_mnist(one_hot_label=True, data_dir=mnist_dir, download=False)
    (_, t), (_, tt) = real
    for oh, lab in ((t1, t), (tt1, tt)):
        assert set(np.unique(oh).tolist()) == {0.0, 1.0}
        assert (oh.sum(axis=1) == 1.0).all()
        assert np.array_equal(oh.argmax(axis=1), lab)


def test_flatten_false_is_reshape(mnist_dir, real):
    (x4, _), (xt4, _) = load_mnist(normalize=False, flatten=False, data_dir=mnist_dir, download=False)
    (x, _), (xt, _) = real
    assert x4.shape == (60000, 1, 28, 28) and xt4.shape == (10000, 1, 28, 28)
    assert np.array_equal(x4.reshape(60000, 784), x)
    assert np.array_equal(xt4.reshape(10000, 784), xt)


def test_returns_fresh_writable_arrays(mnist_dir):
    for normalize in (False, True):
        (x, t), _ = load_mnist(normalize=normalize, data_dir=mnist_dir, download=False)
        assert x.flags.writeable and t.flags.writeable
        x[:] = 7
        t[:] = 3
        (x2, t2), _ = load_mnist(normalize=normalize, data_dir=mnist_dir, download=False)
        assert not np.all(x2 == 7) and not np.all(t2 == 3)


def test_data_dir_accepts_str_and_tilde(mnist_dir, monkeypatch, real):
    monkeypatch.setenv("HOME", str(mnist_dir.parent))
    (x, _), _ = load_mnist(normalize=False, data_dir="~/" + mnist_dir.name, download=False)
    assert np.array_equal(x, real[0][0])


def test_raw_files(mnist_dir, tmp_path, real):
    for name in MNIST_FILES:
        with gzip.open(mnist_dir / (name + ".gz"), "rb") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    (x, t), (xt, tt) = load_mnist(normalize=False, data_dir=tmp_path, download=False)
    (rx, rt), (rxt, rtt) = real
    assert np.array_equal(x, rx)
    assert np.array_equal(t, rt)
    assert np.array_equal(xt, rxt)
    assert np.array_equal(tt, rtt)


def test_replaced_file_is_not_served_from_cache(mnist_dir, tmp_path):
    for name in MNIST_FILES:
        shutil.copy(mnist_dir / (name + ".gz"), tmp_path / (name + ".gz"))
    load_mnist(data_dir=tmp_path, download=False)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_mnist(data_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------------------
# Corrupt files (small synthetic IDX files)


def idx_images(n, rows=28, cols=28, magic=0x803, extra=b"", cut=0):
    rng = np.random.default_rng(n)
    header = np.array([magic, n, rows, cols], dtype=">u4").tobytes()
    body = rng.integers(0, 256, n * rows * cols, dtype=np.uint8).tobytes()
    data = header + body + extra
    return data[: len(data) - cut]


def idx_labels(labels, magic=0x801, extra=b"", cut=0):
    labels = np.asarray(labels, dtype=np.uint8)
    data = np.array([magic, len(labels)], dtype=">u4").tobytes() + labels.tobytes() + extra
    return data[: len(data) - cut]


def write_set(folder, images=None, labels=None, gz=True):
    """Write a small train set (5 images) and test set (3 images); override train files."""
    files = {
        "train-images-idx3-ubyte": idx_images(5) if images is None else images,
        "train-labels-idx1-ubyte": idx_labels([0, 1, 2, 3, 9]) if labels is None else labels,
        "t10k-images-idx3-ubyte": idx_images(3),
        "t10k-labels-idx1-ubyte": idx_labels([4, 5, 6]),
    }
    paths = {}
    for name, data in files.items():
        path = folder / (name + ".gz" if gz else name)
        path.write_bytes(gzip.compress(data) if gz else data)
        paths[name] = path
    return paths


def expect_error(folder, path, pattern):
    with pytest.raises(DatasetError) as info:
        load_mnist(data_dir=folder, download=False)
    msg = str(info.value)
    assert type(info.value) is DatasetError
    assert isinstance(info.value, ValueError)
    assert str(path.resolve()) in msg or str(path) in msg, msg
    assert re.search(pattern, msg), msg
    return msg


IMG = "train-images-idx3-ubyte"
LBL = "train-labels-idx1-ubyte"


@pytest.mark.parametrize("gz", [True, False])
def test_small_valid_files_fail_on_count(tmp_path, gz):
    paths = write_set(tmp_path, gz=gz)
    expect_error(tmp_path, paths[IMG], r"wrong count: 5 images.*60000")


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("cut", [1, 784])
def test_truncated_images(tmp_path, gz, cut):
    paths = write_set(tmp_path, images=idx_images(5, cut=cut), gz=gz)
    expect_error(tmp_path, paths[IMG], r"truncated")


def test_truncated_labels(tmp_path):
    paths = write_set(tmp_path, labels=idx_labels([0, 1, 2, 3, 4], cut=2))
    expect_error(tmp_path, paths[LBL], r"truncated")


@pytest.mark.parametrize("nbytes", [0, 3, 15])
def test_truncated_header(tmp_path, nbytes):
    paths = write_set(tmp_path, images=idx_images(5)[:nbytes])
    expect_error(tmp_path, paths[IMG], r"too short .*header")


def test_wrong_magic_images(tmp_path):
    paths = write_set(tmp_path, images=idx_images(5, magic=0x801))
    expect_error(tmp_path, paths[IMG], r"bad magic number 0x00000801, expected 0x00000803")


def test_wrong_magic_labels(tmp_path):
    paths = write_set(tmp_path, labels=idx_labels([0] * 5, magic=0x08000000))
    expect_error(tmp_path, paths[LBL], r"bad magic number 0x08000000, expected 0x00000801")


def test_gzip_without_gz_suffix(tmp_path):
    paths = write_set(tmp_path, gz=False)
    paths[IMG].write_bytes(gzip.compress(idx_images(5)))
    expect_error(tmp_path, paths[IMG], r"bad magic.*looks gzip-compressed")


@pytest.mark.parametrize("rows, cols", [(28, 27), (32, 32), (1, 784)])
def test_wrong_dims(tmp_path, rows, cols):
    paths = write_set(tmp_path, images=idx_images(5, rows=rows, cols=cols))
    expect_error(tmp_path, paths[IMG], rf"images are {rows}x{cols}, expected 28x28")


def test_count_mismatch(tmp_path):
    paths = write_set(tmp_path, labels=idx_labels([0, 1, 2, 3]))
    msg = expect_error(tmp_path, paths[IMG], r"5 images but .* 4 labels")
    assert str(paths[LBL].resolve()) in msg


@pytest.mark.parametrize(
    "mangle",
    [
        lambda gz: b"this is not gzip at all",
        lambda gz: gz[: len(gz) // 2],  # stream cut short
        lambda gz: gz[:-8] + bytes(8),  # CRC and length trailer zeroed
        lambda gz: gz[:30] + bytes(b ^ 0xFF for b in gz[30:60]) + gz[60:],  # deflate data flipped
    ],
    ids=["not-gzip", "cut", "bad-crc", "flipped"],
)
def test_bad_gzip(tmp_path, mangle):
    paths = write_set(tmp_path)
    paths[IMG].write_bytes(mangle(paths[IMG].read_bytes()))
    expect_error(tmp_path, paths[IMG], r"gzip")


def test_label_out_of_range(tmp_path):
    paths = write_set(tmp_path, labels=idx_labels([0, 1, 10, 3, 255]))
    expect_error(tmp_path, paths[LBL], r"label 10 at index 2 is outside 0\.\.9")


@pytest.mark.parametrize("which", [IMG, LBL])
def test_trailing_bytes(tmp_path, which):
    kwargs = {"images": idx_images(5, extra=b"\0\0\0")} if which == IMG else {
        "labels": idx_labels([0, 1, 2, 3, 4], extra=b"\0\0\0")
    }
    paths = write_set(tmp_path, **kwargs)
    expect_error(tmp_path, paths[which], r"3 unexpected trailing bytes")


def _real_train_with(tmp_path, mnist_dir):
    """A folder whose train files are links to the real ones (the parsed split is cached)."""
    for name in MNIST_FILES[:2]:
        (tmp_path / (name + ".gz")).symlink_to(mnist_dir / (name + ".gz"))
    return tmp_path


def test_corrupt_real_test_labels(tmp_path, mnist_dir):
    folder = _real_train_with(tmp_path, mnist_dir)
    data = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (folder / "t10k-images-idx3-ubyte.gz").symlink_to(mnist_dir / "t10k-images-idx3-ubyte.gz")
    bad = folder / "t10k-labels-idx1-ubyte"
    bad.write_bytes(data[:-1])
    expect_error(folder, bad, r"truncated: 10007 bytes, but its header promises 10008")


def test_small_real_format_test_set_fails_on_count(tmp_path, mnist_dir):
    folder = _real_train_with(tmp_path, mnist_dir)
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_images(3))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_labels([1, 2, 3]))
    expect_error(folder, folder / "t10k-images-idx3-ubyte", r"wrong count: 3 images.*test set has 10000")


# ---------------------------------------------------------------------------------------
# Folder lookup


def test_lookup_order(tmp_path, monkeypatch):
    arg, env, xdg = tmp_path / "arg", tmp_path / "env", tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    assert resolve_data_dir() == default_data_dir() == xdg / "fastconv" / "mnist"
    monkeypatch.setenv("FASTCONV_DATA", str(env))
    assert resolve_data_dir() == env
    assert resolve_data_dir(arg) == arg
    assert resolve_data_dir(str(arg)) == arg


def test_lookup_order_in_load_mnist(tmp_path, monkeypatch, mnist_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "xdg" / "fastconv" / "mnist"
    cache.mkdir(parents=True)
    for name in MNIST_FILES:
        (cache / (name + ".gz")).symlink_to(mnist_dir / (name + ".gz"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (x, _), _ = load_mnist(download=False)  # the cache folder
    assert x.shape == (60000, 784)

    monkeypatch.setenv("FASTCONV_DATA", str(empty))  # the environment beats the cache
    with pytest.raises(DatasetUnavailableError, match=re.escape(str(empty))):
        load_mnist(download=False)

    load_mnist(data_dir=cache, download=False)  # the argument beats the environment
    monkeypatch.setenv("FASTCONV_DATA", str(cache))
    with pytest.raises(DatasetUnavailableError, match=re.escape(str(empty))):
        load_mnist(data_dir=empty, download=False)


def test_default_dir_linux(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_data_dir() == tmp_path / ".cache" / "fastconv" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_data_dir() == tmp_path / ".cache" / "fastconv" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert default_data_dir() == tmp_path / "c" / "fastconv" / "mnist"


def test_default_dir_macos_and_windows(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_data_dir() == tmp_path / "Library" / "Caches" / "fastconv" / "mnist"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert default_data_dir() == tmp_path / "Local" / "fastconv" / "mnist"


# ---------------------------------------------------------------------------------------
# Download from local HTTP servers


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _stop(server):
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def good_mirror(mnist_dir):
    """Serves the real files; records the paths requested."""

    class Handler(_Quiet):
        def do_GET(self):
            self.server.requests.append(self.path)
            super().do_GET()

    server, url = _serve(functools.partial(Handler, directory=str(mnist_dir)))
    yield server, url
    _stop(server)


def _bytes_mirror(make_body):
    """A mirror that answers every request with make_body(path) (corrupt files)."""

    class Handler(_Quiet):
        def do_GET(self):
            self.server.requests.append(self.path)
            body = make_body(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return _serve(Handler)


@pytest.fixture(
    params=[
        lambda path: gzip.compress(b"\0\0\x08\x03 not the content you are looking for"),
        lambda path: b"\x1f\x8b" + bytes(range(256)) * 8,
        lambda path: b"<html>Access denied</html>",
    ],
    ids=["wrong-content", "bad-gzip", "html"],
)
def bad_mirror(request):
    server, url = _bytes_mirror(request.param)
    yield server, url
    _stop(server)


@pytest.fixture
def short_mirror(mnist_dir):
    """Promises the full file but closes the connection halfway."""

    class Handler(_Quiet):
        def do_GET(self):
            self.server.requests.append(self.path)
            data = (mnist_dir / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True

    server, url = _serve(Handler)
    yield server, url
    _stop(server)


def _assert_empty(folder):
    leftovers = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert leftovers == [], leftovers


def test_download(tmp_path, good_mirror, real):
    server, url = good_mirror
    folder = tmp_path / "new" / "mnist"  # created on demand
    (x, t), (xt, tt) = load_mnist(normalize=False, data_dir=folder, mirrors=[url])
    assert sorted(p.name for p in folder.iterdir()) == sorted(n + ".gz" for n in MNIST_FILES)
    assert np.array_equal(x, real[0][0])
    assert np.array_equal(t, real[0][1])
    assert np.array_equal(xt, real[1][0])
    assert np.array_equal(tt, real[1][1])


def test_download_only_missing(tmp_path, good_mirror, mnist_dir, capsys):
    server, url = good_mirror
    for name in MNIST_FILES[:3]:
        (tmp_path / (name + ".gz")).symlink_to(mnist_dir / (name + ".gz"))
    server.requests.clear()
    assert download_mnist(tmp_path, mirrors=[url], progress=True) == tmp_path
    assert server.requests == ["/t10k-labels-idx1-ubyte.gz"]
    assert (tmp_path / "t10k-labels-idx1-ubyte.gz").is_file()
    assert "t10k-labels-idx1-ubyte" in capsys.readouterr().err  # the tqdm bar
    server.requests.clear()
    load_mnist(data_dir=tmp_path, mirrors=[url])
    assert server.requests == []


def test_corrupt_mirror_rejected(tmp_path, bad_mirror):
    server, url = bad_mirror
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist(data_dir=tmp_path, mirrors=[url])
    msg = str(info.value)
    assert url + "train-images-idx3-ubyte.gz" in msg
    assert re.search(r"checksum mismatch|gzip", msg), msg
    _assert_empty(tmp_path)


def test_short_read_rejected(tmp_path, short_mirror):
    server, url = short_mirror
    with pytest.raises(DatasetUnavailableError, match=r"connection closed after|IncompleteRead"):
        load_mnist(data_dir=tmp_path, mirrors=[url])
    _assert_empty(tmp_path)


def test_next_mirror_wins(tmp_path, bad_mirror, good_mirror, real):
    bad, bad_url = bad_mirror
    good, good_url = good_mirror
    (x, _), _ = load_mnist(normalize=False, data_dir=tmp_path, mirrors=[bad_url, good_url])
    assert np.array_equal(x, real[0][0])
    assert len(bad.requests) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n + ".gz" for n in MNIST_FILES)


def test_missing_on_mirror_tries_next(tmp_path, good_mirror, real):
    empty = tmp_path / "empty"
    empty.mkdir()
    server, url = _serve(functools.partial(_Quiet, directory=str(empty)))  # answers 404
    try:
        dest = tmp_path / "dest"
        (x, _), _ = load_mnist(normalize=False, data_dir=dest, mirrors=[url, good_mirror[1]])
    finally:
        _stop(server)
    assert np.array_equal(x, real[0][0])


def test_all_mirrors_fail(tmp_path, bad_mirror):
    _, bad_url = bad_mirror
    refused = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist(data_dir=tmp_path, mirrors=[refused, bad_url])
    msg = str(info.value)
    assert str(tmp_path) in msg
    assert refused + "train-images-idx3-ubyte.gz: URLError" in msg
    assert bad_url + "train-images-idx3-ubyte.gz" in msg
    for hint in ("data_dir=", "--data DIR", "FASTCONV_DATA"):
        assert hint in msg
    _assert_empty(tmp_path)


def test_default_mirrors_are_used(tmp_path):
    # The autouse fixture points MIRRORS at a closed port: the default list is what is tried.
    with pytest.raises(DatasetUnavailableError, match=re.escape(datasets.MIRRORS[0])):
        load_mnist(data_dir=tmp_path)


def test_download_false(tmp_path, good_mirror):
    server, url = good_mirror
    server.requests.clear()
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist(data_dir=tmp_path, download=False, mirrors=[url])
    msg = str(info.value)
    assert server.requests == []
    assert str(tmp_path) in msg and "download=False" in msg
    for name in MNIST_FILES:
        assert name in msg
    for hint in ("data_dir=", "--data DIR", "FASTCONV_DATA"):
        assert hint in msg
    _assert_empty(tmp_path)


def test_import_is_lazy():
    # Loaded on its own, so that what the rest of the package imports does not count here.
    import subprocess

    code = (
        "import sys; import fastconv.io.mnist; "
        "print(sorted(m for m in ('urllib.request', 'http.client', 'tqdm') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------
# Bounded reading: a file is refused by its header and size before its data is read


def _peak_while_refused(call, pattern):
    """The peak of Python and NumPy allocations while ``call()`` raises DatasetError."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=pattern) as info:
            call()
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


def _gzip_bomb(path, head, zero_bytes):
    """``head`` then ``zero_bytes`` zeros, gzip-compressed: one member per MiB of zeros (all
    the same member), so a file that inflates to hundreds of MB costs nothing to build."""
    mib = 1 << 20
    one = gzip.compress(bytes(mib), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(head))
        for _ in range(zero_bytes // mib):
            f.write(one)
    return path


def _gz_set(folder, **override):
    paths = write_set(folder)
    for name, data in override.items():
        paths[name].write_bytes(data)
    return paths


def test_gzip_bomb_after_a_valid_header_is_not_read_whole(tmp_path):
    # A valid 60000-image header: its 47 MB are read, and then no more than a little.
    paths = write_set(tmp_path)
    header = np.array([0x803, 60000, 28, 28], dtype=">u4").tobytes()
    _gzip_bomb(paths[IMG], header, 400 << 20)
    assert paths[IMG].stat().st_size < 1 << 20
    peak, msg = _peak_while_refused(lambda: load_mnist(data_dir=tmp_path, download=False),
                                    r"trailing bytes")
    assert str(paths[IMG]) in msg or str(paths[IMG].resolve()) in msg
    assert peak < 100 << 20, f"{peak} bytes allocated for a 47 MB file"


def test_gzip_header_promising_too_many_images_is_refused_before_reading(tmp_path):
    paths = write_set(tmp_path)
    header = np.array([0x803, 2**31 - 1, 28, 28], dtype=">u4").tobytes()
    _gzip_bomb(paths[IMG], header, 300 << 20)
    peak, msg = _peak_while_refused(lambda: load_mnist(data_dir=tmp_path, download=False),
                                    r"2147483647 images.*train set has 60000")
    assert peak < 16 << 20, f"{peak} bytes allocated to refuse a header"


def test_gzip_labels_promising_too_many_are_refused_before_reading(tmp_path):
    paths = write_set(tmp_path)
    header = np.array([0x801, 2**31 - 1], dtype=">u4").tobytes()
    _gzip_bomb(paths[LBL], header, 300 << 20)
    peak, msg = _peak_while_refused(lambda: load_mnist(data_dir=tmp_path, download=False),
                                    r"train-labels-idx1-ubyte.*2147483647 labels")
    assert peak < 16 << 20, f"{peak} bytes allocated to refuse a header"


@pytest.mark.parametrize("extra", [1, 300 << 20])
def test_raw_file_longer_than_its_header_is_refused_by_its_size(tmp_path, extra):
    paths = write_set(tmp_path, gz=False)
    with open(paths[IMG], "r+b") as f:  # sparse: no disk is used for the zeros
        f.truncate(16 + 5 * 784 + extra)
    peak, msg = _peak_while_refused(lambda: load_mnist(data_dir=tmp_path, download=False),
                                    rf"{extra} unexpected trailing bytes")
    assert str(paths[IMG]) in msg or str(paths[IMG].resolve()) in msg
    assert peak < 16 << 20, f"{peak} bytes allocated to refuse a file by its size"


def test_gzip_trailing_bytes_are_counted_up_to_a_bound(tmp_path):
    paths = write_set(tmp_path)
    _gzip_bomb(paths[IMG], idx_images(5), 8 << 20)
    expect_error(tmp_path, paths[IMG], r"more than \d+ unexpected trailing bytes")


# ---------------------------------------------------------------------------------------
# Bounded download


def _endless_mirror(total):
    """A mirror that sends ``total`` junk bytes with no Content-Length, then closes."""

    class Handler(_Quiet):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            self.server.requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            block = b"\x1f\x8b" + bytes(65534)
            sent = 0
            try:
                while sent < total:
                    self.wfile.write(block)
                    sent += len(block)
            except OSError:  # the client hung up, as it should
                pass
            self.server.sent = sent

    return _serve(Handler)


def _lying_mirror(length):
    """A mirror whose Content-Length announces ``length`` bytes."""

    class Handler(_Quiet):
        def do_GET(self):
            self.server.requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            try:
                self.wfile.write(bytes(65536))
            except OSError:
                pass

    return _serve(Handler)


def _all_but_test_labels(folder, mnist_dir):
    for name in MNIST_FILES[:3]:
        (folder / (name + ".gz")).symlink_to(mnist_dir / (name + ".gz"))


def test_download_without_content_length_stops_at_the_known_size(tmp_path, mnist_dir):
    _all_but_test_labels(tmp_path, mnist_dir)
    server, url = _endless_mirror(40 << 20)
    try:
        with pytest.raises(DatasetUnavailableError) as info:
            download_mnist(tmp_path, mirrors=[url])
    finally:
        _stop(server)
    msg = str(info.value)
    cap = datasets.MNIST_SIZES["t10k-labels-idx1-ubyte"]
    assert re.search(r"more than (\d+) bytes", msg), msg
    limit = int(re.search(r"more than (\d+) bytes", msg).group(1))
    assert cap <= limit < 2 * cap + 4096, (limit, cap)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n + ".gz" for n in MNIST_FILES[:3])


def test_download_refuses_an_oversized_content_length(tmp_path, mnist_dir):
    _all_but_test_labels(tmp_path, mnist_dir)
    server, url = _lying_mirror(300 << 20)
    try:
        with pytest.raises(DatasetUnavailableError, match=r"announces 314572800 bytes"):
            download_mnist(tmp_path, mirrors=[url])
    finally:
        _stop(server)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n + ".gz" for n in MNIST_FILES[:3])


def test_known_sizes_match_the_real_files(mnist_dir):
    for name in MNIST_FILES:
        with gzip.open(mnist_dir / (name + ".gz"), "rb") as f:
            assert len(f.read()) == datasets.MNIST_SIZES[name], name


def test_interrupted_download_leaves_no_part_file_on_the_next_run(tmp_path, good_mirror, real):
    server, url = good_mirror
    # What a download killed mid-way (SIGKILL, power cut) leaves behind.
    for name in ("t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"):
        (tmp_path / f".{name}.k1ll3d.part").write_bytes(b"\x1f\x8b half a file")
    (tmp_path / "notes.part").write_text("not ours")  # not a download: kept
    (_, t), _ = load_mnist(normalize=False, data_dir=tmp_path, mirrors=[url])
    assert np.array_equal(t, real[0][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [n + ".gz" for n in MNIST_FILES] + ["notes.part"])


def test_a_live_download_part_file_is_left_alone(tmp_path, good_mirror):
    import fcntl

    server, url = good_mirror
    live = tmp_path / ".t10k-labels-idx1-ubyte.l1ve.part"
    with open(live, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running download holds it
        download_mnist(tmp_path, mirrors=[url])
        assert live.exists()
    assert (tmp_path / "t10k-labels-idx1-ubyte.gz").is_file()
