"""ONNX export and the PyTorch twin, checked against fastconv's own ``predict``
on real MNIST test images, for every model fastconv builds and a custom Net
with every layer type. ONNX Runtime and PyTorch are the independent
implementations; their tests skip where they are not installed.
"""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bruteforce as bf
import fastconv
from fastconv import cli
from fastconv.interop import onnx as export
from fastconv.interop import torch as torch_twin
from fastconv.nn import card as modelcard
from fastconv.train.optim import Adam

from test_cli import run_cli

REPO = Path(__file__).resolve().parents[1]

CUSTOM_SPECS = [
    {"type": "conv", "filter_num": 6, "filter_size": 3, "pad": 1},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "pool", "pool_h": 3, "pool_w": 3, "stride": 2, "pad": 1},   # padding never wins
    {"type": "lrn", "size": 4, "alpha": 0.5, "beta": 0.75, "k": 1.0},    # even window
    {"type": "conv", "filter_num": 8, "filter_size": (3, 2), "stride": (2, 1), "pad": (0, 1)},
    {"type": "lrn", "size": 3, "alpha": 0.3},                            # odd window
    {"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 1, "pad": 1, "mode": "avg"},
    {"type": "affine", "output_size": 20},
    {"type": "batchnorm"},                                               # on (N, D)
    {"type": "sigmoid"},
    {"type": "dropout", "dropout_ratio": 0.3},
    {"type": "affine", "output_size": 10},
]
MODELS = ["simple", "deep", "lenet", "alexnet", "custom"]


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    (x_train, t_train), (x_test, _) = fastconv.load_mnist(flatten=False, data_dir=mnist_dir)
    return x_train[:400], t_train[:400], x_test[:200]


def make(name):
    if name == "custom":
        return fastconv.Net((1, 28, 28), CUSTOM_SPECS, seed=3)
    return fastconv.nn.make_model(name)  # AlexNet: the command line's variant for 28x28 digits


@pytest.fixture(scope="module")
def nets(mnist):
    """Each model after a few Adam steps on MNIST: biases and batch-norm running
    statistics are no longer their initial zeros and ones."""
    x, t, _ = mnist
    built = {}
    for name in MODELS:
        net = make(name)
        opt = Adam(lr=0.003)
        for i in range(0, 400, 100):
            _, grads = net.loss_and_gradient(x[i:i + 100], t[i:i + 100])
            opt.update(net.params, grads)
        built[name] = net
    return built


_BOUNDS = {}
BOUND_ROWS = 50  # NetBound costs ten float64 backward passes: on the first 50 images


def bound_of(net, x):
    """bruteforce.NetBound of net on x[:BOUND_ROWS], once per net and batch. ONNX
    Runtime and torch sum in their own orders: each side's scores are within its own
    rounding bound of the exact ones."""
    key = (id(net), id(x))
    if key not in _BOUNDS:
        _BOUNDS[key] = (net, x, bf.NetBound(net, x[:BOUND_ROWS]))
    return _BOUNDS[key][2]


def check(net, x, got, expected, what="scores"):
    """got against expected (two evaluations of net on x) on the bounded rows."""
    rows = min(len(got), BOUND_ROWS)
    bound_of(net, x).check(got[:rows], expected[:rows], rows=slice(0, rows), what=what)


# --- ONNX ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_onnx_equals_predict_on_mnist(name, nets, mnist, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net, x = nets[name], mnist[2]
    path = net.to_onnx(tmp_path / f"{name}.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = net.predict(x)
    # One file, any batch size.
    for batch in (len(x), 1, 7):
        got = session.run(["logits"], {"input": x[:batch]})[0]
        assert got.shape == (batch, 10) and got.dtype == np.float32
        check(net, x, got, expected[:batch], what=f"ONNX, batch {batch}")
    got = session.run(["logits"], {"input": x})[0]
    bound = bound_of(net, x)
    print(f"\n{name}: largest |ONNX - fastconv| {np.abs(got - expected).max():.3g} "
          f"(logits up to {np.abs(expected).max():.3g}, bound up to "
          f"{2 * bound.of(np.float32).max():.3g})")
    # The same class wherever the two best scores are further apart than rounding reaches.
    top2 = np.sort(bound.exact, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * bound.of(np.float32).max(axis=1)
    assert clear.mean() > 0.9
    picked = np.arange(BOUND_ROWS)[clear]
    assert np.array_equal(got.argmax(axis=1)[picked], expected.argmax(axis=1)[picked])


def test_onnx_of_a_float64_net_is_float32(nets, mnist, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net64 = fastconv.nn.make_model("simple", np.float64)
    for name, value in nets["simple"].params.items():
        net64.params[name][...] = value
    path = net64.to_onnx(tmp_path / "s64.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": mnist[2]})[0]
    # The float32 graph holds the same (float32) values: its rounding, and predict's.
    check(net64, mnist[2], got, net64.predict(mnist[2]))


def test_onnx_fixed_batch(nets, mnist, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = nets["lenet"].to_onnx(tmp_path / "fixed.onnx", batch=5)
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [5, 1, 28, 28]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = mnist[2][:5]
    bf.NetBound(nets["lenet"], x).check(session.run(None, {"input": x})[0],
                                        nets["lenet"].predict(x))
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"input": mnist[2][:3]})
    for bad, error in ((0, ValueError), (-1, ValueError), (2.5, ValueError), (True, TypeError)):
        with pytest.raises(error, match="batch must be a positive integer"):
            export.onnx_model(nets["lenet"], batch=bad)


class Square:
    """A layer fastconv's exporter does not know."""

    def forward(self, x):
        return x * x


def test_a_layer_without_onnx_counterpart_is_named(tmp_path):
    pytest.importorskip("onnx")
    net = fastconv.Net((1, 8, 8), [{"type": "conv", "filter_num": 2, "filter_size": 3},
                                   {"type": "relu"}, {"type": "affine", "output_size": 3}])
    net.layers["Relu1"] = Square()
    with pytest.raises(ValueError, match=r"layer Relu1 \(Square\) has no ONNX counterpart"):
        net.to_onnx(tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_export_without_onnx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=re.escape("pip install 'fastconv[onnx]'")):
        fastconv.SimpleConvNet().to_onnx(tmp_path / "x.onnx")
    net = fastconv.SimpleConvNet()
    net.save_params(tmp_path / "params.npz")
    modelcard.write_card(tmp_path, net, "simple")
    status, out, err = run_cli(["export", "--params", tmp_path / "params.npz",
                                "--onnx", tmp_path / "x.onnx"])
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "fastconv[onnx]" in err, err


def test_import_fastconv_loads_no_optional_package():
    code = ("import sys, fastconv; print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', "
            "'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", ["deep", "custom"])
def test_cli_export_needs_only_the_run_folder(name, nets, mnist, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = nets[name]
    net.save_params(tmp_path / "params.npz")
    modelcard.write_card(tmp_path, net, name)
    # Batch-norm running statistics are not parameters: a custom net's export
    # from the folder uses the fresh ones, so compare with a net loaded the same way.
    loaded = fastconv.Net.from_card(modelcard.read_card(tmp_path))
    loaded.load_params(tmp_path / "params.npz")
    out_file = tmp_path / "m.onnx"
    status, out, err = run_cli(["export", "--params", tmp_path / "params.npz",
                                "--onnx", out_file])
    assert status == 0, err
    assert f"wrote {out_file}" in out and "(batch, 1, 28, 28)" in out
    session = ort.InferenceSession(str(out_file), providers=["CPUExecutionProvider"])
    check(loaded, mnist[2], session.run(None, {"input": mnist[2]})[0], loaded.predict(mnist[2]))


# --- PyTorch ------------------------------------------------------------------------

def test_state_dict_torch_layout_without_torch(nets):
    net = nets["simple"]
    sd = net.state_dict_torch()
    assert list(sd) == ["0.weight", "0.bias", "4.weight", "4.bias", "6.weight", "6.bias"]
    np.testing.assert_array_equal(sd["0.weight"], net.params["W1"])
    np.testing.assert_array_equal(sd["4.weight"], net.params["W2"].T)
    np.testing.assert_array_equal(sd["6.bias"], net.params["b3"])
    sd["0.weight"][...] = 0  # a copy: the net keeps its weights
    assert np.any(net.params["W1"] != 0)


@pytest.mark.parametrize("name", MODELS)
def test_torch_twin_equals_predict_on_mnist(name, nets, mnist):
    torch = pytest.importorskip("torch")
    net, x = nets[name], mnist[2]
    model = torch_twin.sequential(net.input_dim, net.layer_specs)
    # Same names, shapes and order as the twin's own state dict.
    sd = net.state_dict_torch()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in sd.items()}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    model.eval()
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    check(net, x, got, net.predict(x), what="torch twin")


@pytest.mark.parametrize("name", MODELS)
def test_torch_weights_into_fastconv(name, mnist):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net, x = make(name), mnist[2][:50]
    model = torch_twin.sequential(net.input_dim, net.layer_specs)
    with torch.no_grad():  # running statistics worth carrying over
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    model.eval()
    net.load_state_dict_torch(model.state_dict())
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    bf.NetBound(net, x).check(net.predict(x), expected, what="fastconv with torch's weights")


def test_load_state_dict_torch_refuses_mismatches_and_changes_nothing(nets):
    net = make("simple")
    before = {k: v.copy() for k, v in net.params.items()}
    good = nets["simple"].state_dict_torch()
    missing = dict(good)
    del missing["4.bias"]
    with pytest.raises(ValueError, match=r"missing \['4.bias'\]"):
        net.load_state_dict_torch(missing)
    with pytest.raises(ValueError, match=r"unexpected \['9.weight'\]"):
        net.load_state_dict_torch({**good, "9.weight": np.zeros(3)})
    wrong = {**good, "4.weight": good["4.weight"].T}  # fastconv's layout, not torch's
    with pytest.raises(ValueError, match=r"'4.weight'.*\(4320, 100\).*\(100, 4320\)"):
        net.load_state_dict_torch(wrong)
    with pytest.raises(TypeError, match="real numeric"):
        net.load_state_dict_torch({**good, "0.bias": np.array(["x"] * 30)})
    with pytest.raises(TypeError, match="mapping"):
        net.load_state_dict_torch([("0.weight", good["0.weight"])])
    for name, value in before.items():
        np.testing.assert_array_equal(net.params[name], value)
    net.load_state_dict_torch(good)
    for name, value in nets["simple"].params.items():
        np.testing.assert_array_equal(net.params[name], value)


def readme_block(marker):
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\n```(?:python|bash)\n(.*?)```", text, re.S)
    assert m, f"README.md has no code block after <!-- {marker} -->"
    return m.group(1)


def test_readme_torch_recipe_works_as_written(nets, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    code = readme_block("torch-recipe")
    assert len(code.strip().splitlines()) <= 12
    net = nets["simple"]
    (tmp_path / "runs" / "simple").mkdir(parents=True)
    net.save_params(tmp_path / "runs" / "simple" / "params.npz")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    x = namespace["x"]
    bf.NetBound(net, x.numpy()).check(namespace["logits"].numpy(), net.predict(x.numpy()))


def test_bench_twins_are_built_from_the_specs():
    torch = pytest.importorskip("torch")
    from fastconv import bench
    for name in ("SimpleConvNet", "DeepConvNet"):
        net = getattr(fastconv, name)()
        model = bench.children._torch_model(torch, name)
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
            {k: v.shape for k, v in net.state_dict_torch().items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_twin_carries_weights_running_statistics_and_dtype(dtype, nets, mnist):
    torch = pytest.importorskip("torch")
    net = fastconv.Net((1, 28, 28), CUSTOM_SPECS, dtype=dtype)
    source = nets["custom"]
    for name, value in source.params.items():
        net.params[name][...] = value
    for mine, theirs in zip(net.layers.values(), source.layers.values()):
        if isinstance(mine, fastconv.BatchNormalization):
            mine.running_mean[...], mine.running_var[...] = theirs.running_mean, theirs.running_var
    model = torch_twin.twin(net)
    assert not model.training
    assert next(model.parameters()).dtype == (torch.float64 if dtype == np.float64
                                              else torch.float32)
    x = mnist[2].astype(dtype)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    check(net, x, got, net.predict(x), what=f"torch twin in {np.dtype(dtype)}")
