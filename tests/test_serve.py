"""``fastconv serve`` over HTTP: the page, the API and every way to misuse it.

A server runs in-process on port 0 (nothing leaves this machine) for a small
net of random weights with two convolutions, read from a folder with its
model card as ``fastconv train`` writes one. The answers are checked against
independent oracles: ``fastconv predict --json`` on the same picture, and the
convolutions done by brute force in NumPy.
"""
import base64
import contextlib
import glob
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

PIL = pytest.importorskip("PIL.Image")

from fastconv import cli  # noqa: E402
from fastconv.io.pictures import images_to_inputs  # noqa: E402
from fastconv.nn import Net, SimpleConvNet  # noqa: E402
from fastconv.nn.card import write_card  # noqa: E402
from fastconv.serve import MAX_BODY, make_server  # noqa: E402

SPECS = [
    {"type": "conv", "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "relu"},
    {"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 2},
    {"type": "conv", "filter_num": 6, "filter_size": 3}, {"type": "relu"},
    {"type": "affine", "output_size": 10},
]


def png(array):
    """The PNG file of a uint8 gray picture."""
    buffer = io.BytesIO()
    PIL.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def stroke_picture():
    """Black ink on white paper: a slanted bar, a digit-like shape."""
    img = np.full((120, 90), 255, dtype=np.uint8)
    for row in range(15, 105):
        col = 30 + row // 4
        img[row, col:col + 12] = 0
    return img


GOOD = png(stroke_picture())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as train leaves it: params.npz and model.json."""
    folder = tmp_path_factory.mktemp("run")
    net = Net((1, 28, 28), SPECS, seed=3)
    net.save_params(folder / "params.npz")
    write_card(folder, net, model="tiny")
    return folder


@contextlib.contextmanager
def serving(network, **options):
    server = make_server(network, port=0, quiet=True, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    net = Net((1, 28, 28), SPECS)
    net.load_params(run_dir / "params.npz")
    saves = tmp_path_factory.mktemp("outside") / "kept"
    with serving(net, save_dir=saves, model="tiny") as srv:
        yield srv


def request(server, method, path, body=None, headers=None, timeout=10):
    """(status, headers, parsed JSON or raw bytes) of one request, sent as given
    (http.client does not tidy the path)."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        data = answer.read()
        kind = answer.getheader("Content-Type", "")
        parsed = json.loads(data) if data and kind == "application/json" else data
        return answer.status, answer, parsed
    finally:
        conn.close()


def predict(server, body=GOOD, kind="image/png"):
    return request(server, "POST", "/api/predict", body, {"Content-Type": kind})


def assert_still_good(server):
    """The server answers a good request after a bad one."""
    status, _, data = predict(server)
    assert status == 200, data
    assert data["prediction"] == data["top"][0][0]


def assert_error(status, data, expected, fragment=""):
    assert status == expected, (status, data)
    assert isinstance(data, dict) and isinstance(data.get("error"), str), data
    assert fragment in data["error"], data


def raw_request(server, data, read_timeout=10, shut=False):
    """Send ``data`` bytes on a fresh socket; the status line and the rest."""
    with socket.create_connection(server.server_address[:2], timeout=read_timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def host_header(server):
    return f"Host: 127.0.0.1:{server.server_address[1]}\r\n".encode()


# --- the page --------------------------------------------------------------------

def test_the_page_has_every_part(server):
    status, answer, page = request(server, "GET", "/")
    assert status == 200 and answer.getheader("Content-Type").startswith("text/html")
    text = page.decode("utf-8")
    assert re.search(r'<canvas id="pad"', text)
    for part in ("prediction", "probabilities", "input-view", "feature-maps", "clear", "upload"):
        assert f'id="{part}"' in text, part
    assert "default-src 'self'" in answer.getheader("Content-Security-Policy")


@pytest.mark.parametrize("path, kind", [("/app.js", "text/javascript"),
                                        ("/style.css", "text/css"),
                                        ("/index.html", "text/html")])
def test_the_assets_are_served_and_need_no_network(server, path, kind):
    status, answer, data = request(server, "GET", path)
    assert status == 200 and answer.getheader("Content-Type").startswith(kind)
    text = data.decode("utf-8")
    # Offline: no address of another host anywhere (CDN, fonts, analytics).
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path


def test_head_gives_the_headers_only(server):
    status, answer, data = request(server, "HEAD", "/app.js")
    assert status == 200 and data == b""
    assert int(answer.getheader("Content-Length")) > 1000


def test_the_model_is_described(server):
    status, _, info = request(server, "GET", "/api/model")
    assert status == 200
    assert info["model"] == "tiny" and info["classes"] == 10
    assert info["convolutions"] == ["Conv1", "Conv2"]
    assert info["filters"]["shape"] == [4, 3, 3] and info["save"] is True


# --- the answer, against independent oracles -------------------------------------

def planes(entry):
    raw = np.frombuffer(base64.b64decode(entry["data"]), dtype=np.uint8)
    return raw.reshape(entry["shape"])


def stretched(stack):
    """Each plane from its own least to greatest value, in 0..255 (as the page draws)."""
    stack = np.asarray(stack, dtype=np.float64)
    lo = stack.min(axis=(-2, -1), keepdims=True)
    span = stack.max(axis=(-2, -1), keepdims=True) - lo
    return np.rint(np.divide(stack - lo, span, out=np.zeros_like(stack), where=span > 0) * 255)


def conv_relu(x, w, b, pad):
    """Brute-force convolution then ReLU of one (C, H, W) image."""
    x = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(1, 2))
    out = np.einsum("chwij,fcij->fhw", windows, w.astype(np.float64)) + b[:, None, None]
    return np.maximum(out, 0)


def test_a_reading_matches_predict_and_brute_force(server, run_dir, tmp_path, capsys):
    status, _, reading = predict(server)
    assert status == 200
    picture = tmp_path / "digit.png"
    picture.write_bytes(GOOD)
    # fastconv predict --json, in-process, on the same file, is the oracle of the answer.
    assert cli.main(["predict", "--params", str(run_dir / "params.npz"), "--json",
                     "--top", "10", str(picture)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert [k for k, _ in reading["top"]] == [k for k, _ in row["top"]]
    np.testing.assert_allclose([p for _, p in reading["top"]], [p for _, p in row["top"]],
                               rtol=1e-12)
    assert reading["prediction"] == row["top"][0][0]
    assert sum(reading["probabilities"]) == pytest.approx(1)
    # The input is predict's preprocessing of the picture.
    x = images_to_inputs([str(picture)])[0]
    np.testing.assert_array_equal(planes(reading["input"]), stretched(x))
    # Each convolution's maps after its ReLU, by brute force from the saved weights.
    with np.load(run_dir / "params.npz") as p:
        w1, b1, w2, b2 = p["W1"], p["b1"], p["W2"], p["b2"]
    conv1 = conv_relu(x, w1, b1, pad=1)
    pooled = conv1.reshape(4, 14, 2, 14, 2).max(axis=(2, 4))
    conv2 = conv_relu(pooled, w2, b2, pad=0)
    maps = {m["name"]: planes(m) for m in reading["feature_maps"]}
    assert list(maps) == ["Conv1", "Conv2"]
    assert maps["Conv1"].shape == (4, 28, 28) and maps["Conv2"].shape == (6, 12, 12)
    # float32 layers against float64 loops: a level may round the other way.
    for name, oracle in (("Conv1", conv1), ("Conv2", conv2)):
        assert np.abs(maps[name].astype(int) - stretched(oracle)).max() <= 1, name
    _, _, info = request(server, "GET", "/api/model")
    np.testing.assert_array_equal(planes(info["filters"]), stretched(w1[:, 0]))


def test_readings_in_parallel_agree(server):
    answers = [None] * 6

    def one(i):
        answers[i] = predict(server)[2]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(a == answers[0] for a in answers), "concurrent readings differ"


# --- bad requests: each answered, and the server still works ---------------------

@pytest.mark.parametrize("body, fragment", [
    (b"hello, not a picture", "not a PNG"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 200, "not a picture Pillow can read"),
    (png(stroke_picture())[:150], "the picture"),          # truncated
    (png(np.full((50, 50), 255)), "blank"),                # no ink
])
def test_a_body_that_is_not_a_digit_is_400(server, body, fragment):
    status, _, data = predict(server, body)
    assert_error(status, data, 400, fragment)
    assert "fastconv-serve-" not in data["error"]  # no temporary path leaks out
    assert_still_good(server)


def test_a_body_over_2_mb_is_413_unread(server):
    # The header promises 3 MB and only a few bytes follow: a server that
    # tried to read the body would wait for the rest, past this timeout.
    head = (b"POST /api/predict HTTP/1.1\r\n" + host_header(server) +
            b"Content-Type: image/png\r\nContent-Length: %d\r\n\r\n" % (3 * MAX_BODY // 2))
    status, body = raw_request(server, head + GOOD[:100], read_timeout=5)
    assert status == 413 and b"at most" in body
    assert_still_good(server)


def test_a_body_of_exactly_2_mb_is_read(server):
    # Right at the limit: read, and refused only for what it holds.
    status, _, data = predict(server, b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_BODY - 8))
    assert_error(status, data, 400)
    # One byte more is refused from the header alone (no byte of it sent: a
    # client still writing a refused body may see its connection reset).
    head = (b"POST /api/predict HTTP/1.1\r\n" + host_header(server) +
            b"Content-Type: image/png\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1))
    status, body = raw_request(server, head, read_timeout=5)
    assert status == 413 and "error" in json.loads(body)
    assert_still_good(server)


@pytest.mark.parametrize("headers, expected", [
    (b"Content-Type: image/png\r\n", 411),                                   # no length
    (b"Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n", 411),
    (b"Content-Type: image/png\r\nContent-Length: -5\r\n", 400),
    (b"Content-Type: image/png\r\nContent-Length: lots\r\n", 400),
    (b"Content-Type: text/plain\r\nContent-Length: 10\r\n", 415),
    (b"Content-Length: 10\r\n", 415),
])
def test_bad_body_headers(server, headers, expected):
    head = b"POST /api/predict HTTP/1.1\r\n" + host_header(server) + headers + b"\r\n"
    status, body = raw_request(server, head + b"0123456789", read_timeout=5)
    assert status == expected, body
    assert "error" in json.loads(body)
    assert_still_good(server)


def test_a_body_shorter_than_its_length_is_400(server):
    head = (b"POST /api/predict HTTP/1.1\r\n" + host_header(server) +
            b"Content-Type: image/png\r\nContent-Length: 5000\r\n\r\n")
    status, body = raw_request(server, head + GOOD[:100], shut=True)
    assert status == 400 and b"shorter" in body
    assert_still_good(server)


@pytest.mark.parametrize("method, path, allow", [
    ("GET", "/api/predict", "POST"), ("PUT", "/api/predict", "POST"),
    ("DELETE", "/api/save", "POST"), ("OPTIONS", "/api/predict", "POST"),
    ("POST", "/", "GET, HEAD"), ("PUT", "/app.js", "GET, HEAD"),
    ("DELETE", "/api/model", "GET, HEAD"), ("PATCH", "/index.html", "GET, HEAD"),
    ("HEAD", "/api/save", "POST"),
])
def test_other_methods_are_405(server, method, path, allow):
    status, answer, data = request(server, method, path)
    if method == "HEAD":  # the headers only
        assert status == 405 and data == b""
    else:
        assert_error(status, data, 405)
    assert answer.getheader("Allow") == allow
    assert_still_good(server)


PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fastconv"


@pytest.mark.parametrize("path", [
    "/nothing", "/api", "/api/", "/api/predict/x", "/assets/app.js", "/app.js/",
    "/../pyproject.toml", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E%2Fserve%2Fhandler.py", "/..%2f..%2fpyproject.toml", "/assets/../handler.py",
    "/handler.py", "/serve/handler.py", "/__init__.py", "//etc/passwd", "/etc/passwd",
    f"/{PACKAGE}/serve/handler.py", "/%00", "/app.js%00.png", "/./app.js", "/APP.JS",
    "http://127.0.0.1/etc/passwd",
])
def test_nothing_outside_the_assets_can_be_read(server, path):
    status, _, data = request(server, "GET", path,
                              headers={"Host": f"127.0.0.1:{server.server_address[1]}"})
    assert_error(status, data, 404)
    assert_still_good(server)


def test_only_this_servers_name_is_answered(server):
    # A page on another site whose name resolves to 127.0.0.1 (DNS rebinding).
    status, _, data = request(server, "GET", "/api/model", headers={"Host": "evil.example:80"})
    assert_error(status, data, 403)
    for name in ("localhost", "127.0.0.1"):
        status, _, _ = request(server, "GET", "/api/model",
                               headers={"Host": f"{name}:{server.server_address[1]}"})
        assert status == 200, name


def test_a_malformed_request_line_leaves_the_server_working(server):
    for line, expected in ((b"GARBAGE", 400), (b"GET / HTTP/1.1 and more", 400),
                           (b"GET / HTTP/1.x", 400), (b"GET / HTTP/7.0", 505),
                           (b"GET /" + b"a" * 70000 + b" HTTP/1.1", 414),
                           (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200, 431)):
        status, body = raw_request(server, line + b"\r\n\r\n")
        assert status == expected, line[:40]
        assert "error" in json.loads(body)
    assert_still_good(server)


# --- keeping drawings ------------------------------------------------------------

def save(server, label, body=GOOD):
    path = "/api/save" if label is None else f"/api/save?label={label}"
    return request(server, "POST", path, body, {"Content-Type": "image/png"})


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


@pytest.mark.parametrize("query", [
    None, "", "a", "10", "-1", "3.0", "03", "%203", "3%00", "..", "../3", "3/../..",
    "%2e%2e%2f3", "/tmp/3", "%D9%A3",  # the Arabic-Indic digit three: a digit, not 0-9
    "3&label=4",
])
def test_save_takes_only_one_digit(server, query):
    root = Path(server.drawings.root)
    before = files_under(root.parent)
    status, _, data = save(server, query)
    assert_error(status, data, 400, "label")
    assert files_under(root.parent) == before
    assert_still_good(server)


def test_save_refuses_a_picture_without_a_digit(server):
    root = Path(server.drawings.root)
    before = files_under(root.parent)
    status, _, data = save(server, "4", png(np.zeros((40, 40))))
    assert_error(status, data, 400, "blank")
    status, _, data = save(server, "4", b"not a png")
    assert_error(status, data, 400)
    assert files_under(root.parent) == before


def test_saved_drawings_are_scored_by_predict_json(server, run_dir, capsys):
    root = Path(server.drawings.root)
    kept = []
    for label, picture in (("7", GOOD), ("7", png(255 - stroke_picture()[:, ::-1])),
                           ("0", GOOD)):
        status, _, data = save(server, label, picture)
        assert status == 200, data
        kept.append(data["saved"])
        assert data["saved"].startswith(f"{label}/") and data["saved"].endswith(".png")
    assert data["saved_counts"]["7"] >= 2
    # Only the pictures, inside --save-dir, one folder per label; no temporary files.
    assert set(kept) <= set(files_under(root))
    assert all(re.fullmatch(r"[0-9]/drawing-[0-9-]+-[0-9a-f]{8}\.png", f)
               for f in files_under(root))
    assert files_under(root.parent) == [f"kept/{f}" for f in files_under(root)]
    # The layout the module promises: predict --json over DIR/*/*.png, the label
    # in each path's folder, the same answer as the page gave.
    assert cli.main(["predict", "--params", str(run_dir / "params.npz"), "--json", "--top", "1",
                     *sorted(glob.glob(str(root / "*" / "*.png")))]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(files_under(root))
    scores = {Path(r["path"]).relative_to(root).as_posix(): r["top"][0] for r in rows}
    status, _, reading = predict(server, GOOD)
    # (a batch of three may sum in another order than the page's batch of one)
    assert scores[kept[0]][0] == reading["top"][0][0]
    assert scores[kept[0]][1] == pytest.approx(reading["top"][0][1], rel=1e-5)
    assert [Path(r["path"]).parent.name for r in rows] == [f.split("/")[0]
                                                           for f in files_under(root)]


def test_a_failed_save_leaves_nothing(server):
    root = Path(server.drawings.root)
    before = files_under(root.parent)
    with mock.patch("fastconv.io.checkpoint.os.replace", side_effect=OSError(28, "No space")):
        status, _, data = save(server, "5")
    assert_error(status, data, 500, "cannot save")
    assert files_under(root.parent) == before  # neither the picture nor a temporary file
    assert save(server, "5")[0] == 200
    assert_still_good(server)


def test_saving_is_off_without_save_dir():
    with serving(SimpleConvNet()) as srv:
        status, _, info = request(srv, "GET", "/api/model")
        assert info["save"] is False
        status, _, data = save(srv, "3")
        assert_error(status, data, 403, "--save-dir")
        assert_still_good(srv)


# --- the command ---------------------------------------------------------------

def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def assert_one_line(result, expected_status, *fragments):
    status, _, err = result
    assert status == expected_status, (status, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastconv serve: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_bad_options_are_one_line(run_dir, tmp_path):
    params = run_dir / "params.npz"
    assert_one_line(run_cli(["serve", "--params", params, "--port", "70000"]), 2, "--port")
    assert_one_line(run_cli(["serve", "--params", params, "--port", "x"]), 2, "--port")
    assert_one_line(run_cli(["serve"]), 2, "--params")
    assert_one_line(run_cli(["serve", "--params", tmp_path / "none.npz"]), 1, "not found")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "params.npz").write_bytes(b"PK\x03\x04 not really")
    assert_one_line(run_cli(["serve", "--params", broken / "params.npz"]), 1, "cannot load")
    (broken / "model.json").write_text("{not json")
    assert_one_line(run_cli(["serve", "--params", broken / "params.npz"]), 1, "model.json")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert_one_line(run_cli(["serve", "--params", params, "--port", "0",
                              "--save-dir", a_file]), 1, "--save-dir")
    assert_one_line(run_cli(["serve", "--params", params, "--port", "0",
                              "--host", "no-such-host.invalid"]), 1, "cannot listen")


def test_a_busy_port_is_one_line(run_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = run_cli(["serve", "--params", run_dir / "params.npz",
                                  "--port", port, "--save-dir", tmp_path / "new" / "kept"])
    assert_one_line((status, "", err), 1, "cannot listen", str(port))
    assert not (tmp_path / "new").exists()  # the folder it made for nothing is gone


def test_the_command_serves_on_127_0_0_1_and_stops_on_ctrl_c(run_dir, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastconv", "serve", "--params", str(run_dir / "params.npz"),
         "--port", "0", "--save-dir", str(tmp_path / "kept")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C stops\)", line)
        assert match, line
        assert "tiny" in line  # the model card beside the parameters was read

        class Where:
            server_address = ("127.0.0.1", int(match.group(2)))

        assert_still_good(Where)
        status, _, info = request(Where, "GET", "/api/model")
        assert info["model"] == "tiny" and info["save"] is True
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped" in err
