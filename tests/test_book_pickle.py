"""The book's pickled parameter files: read without running anything, loaded with
the book's dropout accounted for, and converted to .npz by ``fastconv convert``."""
import collections
import os
import pickle
import sys

import numpy as np
import pytest

import bruteforce as bf
import fastconv
from fastconv import DeepConvNet, SimpleConvNet
from fastconv.io.book_pickle import BookParamsError, read_book_params
from fastconv.cli import main


def book_pickle(path, params, protocol=None):
    """Save as the book's save_params does: pickle.dump of a dict of float64 arrays."""
    with open(path, "wb") as f:
        pickle.dump({k: np.asarray(v, np.float64) for k, v in params.items()}, f,
                    protocol=protocol)
    return path


def he_params(shapes, seed):
    """Random weights as the book's constructors draw them (He's scale, zero... or not)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        fan_in = np.prod(shape[1:]) if len(shape) == 4 else shape[0]
        scale = np.sqrt(2.0 / fan_in) if name.startswith("W") else 0.1
        out[name] = scale * rng.standard_normal(shape)
    return out


# --- the book's test-time forward, brute force (the oracle) -------------------------

def _conv(x, w, b, pad):
    n, c, h, wd = x.shape
    fn, _, fh, fw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - fh + 1, wd + 2 * pad - fw + 1
    out = np.broadcast_to(b[None, :, None, None], (n, fn, oh, ow)).copy()
    for i in range(fh):
        for j in range(fw):
            part = np.tensordot(xp[:, :, i:i + oh, j:j + ow], w[:, :, i, j], axes=([1], [1]))
            out += part.transpose(0, 3, 1, 2)  # (n, oh, ow, fn) -> (n, fn, oh, ow)
    return out


def _pool(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _relu(a):
    return np.maximum(a, 0)


def as_loaded(params, dtype):
    """The book's values as a net of ``dtype`` holds them (cast once; the dropout
    factors 1/2 and 1/4 are powers of two and change no bit), back in float64: the
    oracle evaluates the very function the net computes."""
    return {k: np.asarray(v).astype(dtype).astype(np.float64) for k, v in params.items()}


def clear_top_class(bound, dtype):
    """Samples whose two best exact scores lie further apart than two evaluations'
    rounding can reach: their top class cannot depend on the summation order."""
    top2 = np.sort(bound.exact, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0] > bound.of(dtype).max(axis=1) + bound.of(np.float64).max(axis=1)


def book_deep_scores(p, x, masks=None, ratio=0.5):
    """ch08 DeepConvNet's scores: at test time (masks None) its dropout multiplies by
    1 - ratio; in training it multiplies by the keep-masks, unscaled."""
    h = x.astype(np.float64)
    for k, pad in ((1, 1), (2, 1)):
        h = _relu(_conv(h, p[f"W{k}"], p[f"b{k}"], pad))
    h = _pool(h)
    for k, pad in ((3, 1), (4, 2)):
        h = _relu(_conv(h, p[f"W{k}"], p[f"b{k}"], pad))
    h = _pool(h)
    for k in (5, 6):
        h = _relu(_conv(h, p[f"W{k}"], p[f"b{k}"], 1))
    h = _pool(h)
    h = _relu(h.reshape(len(h), -1) @ p["W7"] + p["b7"])
    h = h * (1 - ratio) if masks is None else h * masks[0]
    y = h @ p["W8"] + p["b8"]
    return y * (1 - ratio) if masks is None else y * masks[1]


def book_simple_scores(p, x):
    h = _pool(_relu(_conv(x.astype(np.float64), p["W1"], p["b1"], 0)))
    h = _relu(h.reshape(len(h), -1) @ p["W2"] + p["b2"])
    return h @ p["W3"] + p["b3"]


DEEP_SHAPES = {name: a.shape for name, a in DeepConvNet(seed=0).params.items()}
SIMPLE_SHAPES = {name: a.shape for name, a in SimpleConvNet(seed=0).params.items()}


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    _, (x, t) = fastconv.load_mnist(flatten=False, data_dir=mnist_dir, download=False)
    return x, t


# --- reading ------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_the_books_pickles_at_every_protocol(tmp_path, protocol):
    params = he_params(SIMPLE_SHAPES, seed=protocol)
    path = book_pickle(tmp_path / "params.pkl", params, protocol)
    got = read_book_params(path)
    assert list(got) == list(params)
    for name, array in params.items():
        assert got[name].dtype == np.float64
        np.testing.assert_array_equal(got[name], array)


@pytest.mark.parametrize("protocol", [2, 3])
def test_reads_numpy_1_pickles(tmp_path, protocol):
    """NumPy 1.x wrote numpy.core.multiarray where 2.x writes numpy._core.multiarray."""
    params = {"W1": np.arange(6.0).reshape(2, 3), "b1": np.array([0.5, -1.0])}
    data = pickle.dumps(params, protocol=protocol)
    assert b"numpy._core.multiarray" in data
    path = tmp_path / "old.pkl"
    path.write_bytes(data.replace(b"numpy._core.", b"numpy.core."))
    got = read_book_params(path)
    np.testing.assert_array_equal(got["W1"], params["W1"])
    np.testing.assert_array_equal(got["b1"], params["b1"])


def test_ordered_dicts_scalars_and_fortran_arrays_are_read(tmp_path):
    params = collections.OrderedDict(W1=np.asfortranarray(np.arange(6.0).reshape(2, 3)),
                                     b1=np.float64(2.5), n=np.arange(3, dtype=np.int32))
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(params, protocol=protocol))
        got = read_book_params(path)
        np.testing.assert_array_equal(got["W1"], params["W1"])
        assert got["b1"].shape == () and got["b1"] == 2.5
        assert got["n"].dtype == np.int32


class RunsACommand:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_a_pickle_that_would_run_a_command_is_refused_unrun(tmp_path):
    marker = tmp_path / "MARKER"
    payload = pickle.dumps({"W1": RunsACommand(marker)})
    pickle.loads(payload)                       # the payload does run a command...
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(BookParamsError, match=r"refused: the pickle refers to "
                                              r"(posix|os|nt)\.system"):
        read_book_params(path)                  # ...but not here
    assert not marker.exists()
    net = SimpleConvNet(seed=0)
    w1 = net.params["W1"].copy()
    with pytest.raises(ValueError, match="refused"):
        net.load_book_params(path)
    assert not marker.exists()
    np.testing.assert_array_equal(net.params["W1"], w1)


def test_a_pickle_naming_a_module_that_runs_code_on_import_is_refused_unimported(
        tmp_path, monkeypatch):
    marker = tmp_path / "IMPORTED"
    (tmp_path / "sneaky_module_xyz.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "sneaky.pkl"
    # protocol 2: GLOBAL 'sneaky_module_xyz f', then call it with no arguments
    path.write_bytes(b"\x80\x02csneaky_module_xyz\nf\n)R}q\x00X\x02\x00\x00\x00W1q\x01K\x01s.")
    with pytest.raises(BookParamsError, match="sneaky_module_xyz.f"):
        read_book_params(path)
    assert not marker.exists() and "sneaky_module_xyz" not in sys.modules


@pytest.mark.parametrize("value", [collections.Counter(a=1), complex(1, 2),
                                   np.array([1 + 2j]), np.array(["a"]),
                                   np.array([1.0, None], dtype=object)],
                         ids=["Counter", "complex", "complex-array", "str-array",
                              "object-array"])
def test_other_globals_and_non_numeric_values_are_refused(tmp_path, value):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps({"W1": np.zeros(2), "x": value}))
    with pytest.raises(BookParamsError, match="refused|not a numeric array"):
        read_book_params(path)


def test_ndarray_is_not_callable_from_a_pickle(tmp_path):
    """numpy.ndarray is admitted only as _reconstruct's argument: a pickle calling
    ndarray((2**40,)) to allocate memory is refused."""
    path = tmp_path / "alloc.pkl"
    path.write_bytes(b"\x80\x02cnumpy\nndarray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85\x85R.")
    with pytest.raises(BookParamsError):
        read_book_params(path)


@pytest.mark.parametrize("content, message", [
    (pickle.dumps([np.zeros(2)]), "holds a list, expected a dict"),
    (pickle.dumps({1: np.zeros(2)}), "names must be str"),
    (b"PK\x03\x04 not a pickle", "not a readable pickle"),
    (pickle.dumps({"W1": np.zeros(4)})[:-7], "not a readable pickle"),
    (b"", "not a readable pickle"),
])
def test_files_that_are_not_dicts_of_arrays(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(BookParamsError, match=message):
        read_book_params(path)


def test_a_missing_file(tmp_path):
    with pytest.raises(BookParamsError, match="cannot read"):
        read_book_params(tmp_path / "nope.pkl")


# --- loading into a network -----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simple_convnet_gives_the_books_scores(tmp_path, mnist_test, dtype):
    params = he_params(SIMPLE_SHAPES, seed=1)
    net = SimpleConvNet(seed=0, dtype=dtype)
    net.load_book_params(book_pickle(tmp_path / "params.pkl", params))
    x = mnist_test[0][:300]
    expected = book_simple_scores(as_loaded(params, dtype), x)
    got = net.predict(x)
    # The book's float64 loops and the net: each within its own rounding bound.
    bf.NetBound(net, x).check(got, expected, what="the book's scores")
    for name in params:  # no dropout: the book's values as they are, cast once
        np.testing.assert_array_equal(net.params[name], params[name].astype(dtype))


@pytest.fixture(scope="module")
def deep_case(mnist_test):
    """Random He weights for the book's DeepConvNet and its test-time scores on 100 images."""
    params = he_params(DEEP_SHAPES, seed=2)
    x, t = mnist_test[0][:100], mnist_test[1][:100]
    return params, x, t, book_deep_scores(params, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_deep_convnet_gives_the_books_test_time_scores(tmp_path, deep_case, dtype):
    params, x, t, expected = deep_case
    net = DeepConvNet(seed=0, dtype=dtype)
    net.load_book_params(book_pickle(tmp_path / "deep_convnet_params.pkl", params))
    got = net.predict(x, train_flg=False)
    if dtype != np.float64:
        expected = book_deep_scores(as_loaded(params, dtype), x)
    bound = bf.NetBound(net, x)
    bound.check(got, expected, what="the book's test-time scores")
    # The same top class wherever rounding cannot change it; the accuracy differs by at
    # most the share of the other samples.
    clear = clear_top_class(bound, dtype)
    assert clear.mean() > 0.9
    assert np.array_equal(np.argmax(got, axis=1)[clear], np.argmax(expected, axis=1)[clear])
    book_accuracy = np.mean(np.argmax(expected, axis=1) == t)
    assert abs(net.accuracy(x, t) - book_accuracy) <= np.mean(~clear)
    # The same values assigned as they are (no account of the dropout) give other scores.
    naive = DeepConvNet(seed=0, dtype=dtype)
    for name, array in params.items():
        naive.params[name] = array
    with pytest.raises(AssertionError, match="exceeds the rounding bound"):
        bound.check(naive.predict(x), expected)


def test_deep_convnet_gives_the_books_training_scores_too(tmp_path, mnist_test):
    """In training mode the book keeps activations unscaled; with the same masks the
    converted net (inverted dropout, scaled weights) computes the same scores."""
    params = he_params(DEEP_SHAPES, seed=3)
    net = DeepConvNet(seed=0, dtype=np.float64)
    net.load_book_params(book_pickle(tmp_path / "p.pkl", params))
    x = mnist_test[0][:50]
    rng = np.random.default_rng(4)
    masks = [rng.random((50, 50)) > 0.5, rng.random((50, 10)) > 0.5]
    net.layers["Dropout1"].mask, net.layers["Dropout2"].mask = masks
    net.layers["Dropout1"].frozen = net.layers["Dropout2"].frozen = True
    bf.NetBound(net, x, train_flg=True).check(net.predict(x, train_flg=True),
                                              book_deep_scores(params, x, masks=masks),
                                              what="training-mode scores")


def test_loading_checks_names_and_shapes_before_changing_anything(tmp_path):
    net = DeepConvNet(seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    simple = book_pickle(tmp_path / "simple.pkl", he_params(SIMPLE_SHAPES, seed=0))
    with pytest.raises(ValueError, match=r"parameter names do not match this network "
                                         r"\(missing \['W4'"):
        net.load_book_params(simple)
    shapes = dict(DEEP_SHAPES, W8=(50, 11))
    with pytest.raises(ValueError, match=r"W8 has shape \(50, 11\), this network needs "
                                         r"\(50, 10\)"):
        net.load_book_params(book_pickle(tmp_path / "bad.pkl", he_params(shapes, seed=0)))
    for name, array in before.items():
        np.testing.assert_array_equal(net.params[name], array)


def test_dropout_with_nothing_to_fold_into_is_refused(tmp_path):
    net = fastconv.Net((6,), [{"type": "dropout"}, {"type": "affine", "output_size": 3}])
    path = book_pickle(tmp_path / "p.pkl", {"W1": np.ones((6, 3)), "b1": np.zeros(3)})
    with pytest.raises(ValueError, match="cannot match the book's dropout at Dropout1"):
        net.load_book_params(path)


# --- fastconv convert -------------------------------------------------------------------

@pytest.mark.parametrize("model, shapes", [("simple", SIMPLE_SHAPES), ("deep", DEEP_SHAPES)])
def test_convert_writes_an_npz_that_loads_into_the_model(tmp_path, capsys, model, shapes):
    params = he_params(shapes, seed=5)
    pkl = book_pickle(tmp_path / "book.pkl", params)
    out = tmp_path / "out.npz"
    assert main(["convert", "--model", model, str(pkl), str(out)]) == 0
    assert "out.npz" in capsys.readouterr().out
    direct = SimpleConvNet(seed=1) if model == "simple" else DeepConvNet(seed=1)
    direct.load_book_params(pkl)
    converted = SimpleConvNet(seed=2) if model == "simple" else DeepConvNet(seed=2)
    converted.load_params(out)
    x = np.random.default_rng(0).random((4, 1, 28, 28))
    np.testing.assert_array_equal(converted.predict(x), direct.predict(x))
    with np.load(out, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(params)
        assert f["W1"].dtype == np.float64


def test_convert_refuses_a_malicious_pickle_in_one_line(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"W1": RunsACommand(marker)}))
    assert main(["convert", "--model", "simple", str(pkl), str(tmp_path / "o.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "o.npz").exists()


def test_convert_of_the_wrong_model_says_so(tmp_path, capsys):
    pkl = book_pickle(tmp_path / "book.pkl", he_params(SIMPLE_SHAPES, seed=0))
    assert main(["convert", "--model", "deep", str(pkl), str(tmp_path / "o.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "parameter names do not match" in err
