"""The model card (model.json): the run folder alone rebuilds the network for
``eval``, ``viz``, ``predict`` and ``export``.

Oracles: the parameter file itself (names and shapes), and the same network
built by its class and loaded the usual way.
"""
import json

import numpy as np
import pytest

import fastconv
from fastconv import cli
from fastconv.nn import card as modelcard

from test_cli import assert_one_line_error, run_cli

CUSTOM = [
    {"type": "conv", "filter_num": 5, "filter_size": 5, "pad": 2, "init": 0.1},
    {"type": "relu"},
    {"type": "pool", "pool_h": 4, "pool_w": 4, "stride": 4, "mode": "avg"},
    {"type": "batchnorm", "momentum": 0.8},
    {"type": "affine", "output_size": 10, "init": "xavier"},
]


def roundtrip(card):
    return json.loads(json.dumps(card))


@pytest.mark.parametrize("name", ["simple", "deep", "lenet", "alexnet", "custom"])
def test_card_rebuilds_the_same_network(name):
    net = (fastconv.Net((1, 28, 28), CUSTOM, seed=1) if name == "custom"
           else fastconv.nn.make_model(name))
    card = roundtrip(modelcard.card(net, name))
    assert card["format"] == "fastconv.model" and card["version"] == 1
    assert card["model"] == name and card["class"] == type(net).__name__
    assert card["input_dim"] == [1, 28, 28] and card["dtype"] == "float32"
    assert card["output_shape"] == [10]
    assert card["params"] == {k: list(v.shape) for k, v in net.params.items()}
    rebuilt = fastconv.Net.from_card(card)
    assert rebuilt.layer_specs == card["layer_specs"]
    assert list(rebuilt.layers) == list(net.layers)
    for key, value in net.params.items():
        rebuilt.params[key][...] = value
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(rebuilt.predict(x), net.predict(x))
    assert fastconv.Net.from_card(card, np.float64).dtype == np.float64


def test_train_writes_a_full_card_and_the_folder_is_enough(mnist_dir, tmp_path):
    out = tmp_path / "run"
    status, _, err = run_cli(["train", "--model", "lenet", "--data", mnist_dir, "--out", out,
                              "--limit", "200", "--epochs", "1", "--quiet", "--threads", "2"])
    assert status == 0, err
    card = json.loads((out / "model.json").read_text())
    assert card["model"] == "lenet" and card["class"] == "LeNet"
    assert card["layer_specs"] == roundtrip(fastconv.nn.make_model("lenet").layer_specs)
    with np.load(out / "params.npz") as saved:
        assert card["params"] == {k: list(saved[k].shape) for k in saved.files}

    # The same network built by its class and loaded: the oracle for eval.
    net = fastconv.nn.make_model("lenet")
    net.load_params(out / "params.npz")
    _, (x_test, t_test) = fastconv.load_mnist(flatten=False, data_dir=mnist_dir)
    expected = float(np.mean(net.predict(x_test).argmax(axis=1) == t_test))
    params = out / "params.npz"
    status, stdout, err = run_cli(["eval", "--params", params, "--data", mnist_dir])
    assert status == 0, err
    assert stdout.startswith(f"lenet: test accuracy {expected:.4f}")
    status, _, err = run_cli(["viz", "--params", params, "--data", mnist_dir])
    assert status == 0, err
    picture = out / "filters.png"  # any picture will do for predict
    status, stdout, err = run_cli(["predict", "--params", params, picture])
    assert status == 0, err
    assert stdout.startswith(f"{picture}: ")
    if _has("onnx"):
        status, _, err = run_cli(["export", "--params", params, "--onnx", out / "m.onnx"])
        assert status == 0, err


def _has(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


def test_a_custom_net_runs_from_its_card(mnist_dir, tmp_path):
    net = fastconv.Net((1, 28, 28), CUSTOM, seed=2)
    (x, t), (x_test, t_test) = fastconv.load_mnist(flatten=False, data_dir=mnist_dir)
    fastconv.Trainer(net, x[:300], t[:300], x[:10], t[:10], epochs=1, mini_batch_size=50,
                     optimizer="Adam", verbose=False).train()
    net.save_params(tmp_path / "params.npz")
    modelcard.write_card(tmp_path, net, model="mynet")
    # Batch norm's running statistics are not saved with the parameters:
    # compare with the net as the parameter file alone restores it.
    loaded = fastconv.Net((1, 28, 28), CUSTOM)
    loaded.load_params(tmp_path / "params.npz")
    expected = float(np.mean(loaded.predict(x_test).argmax(axis=1) == t_test))
    status, stdout, err = run_cli(["eval", "--params", tmp_path / "params.npz",
                                   "--data", mnist_dir])
    assert status == 0, err
    assert stdout.startswith(f"mynet: test accuracy {expected:.4f}")


def test_old_cards_still_load(mnist_dir, tmp_path):
    net = fastconv.nn.make_model("lenet")
    net.save_params(tmp_path / "params.npz")
    (tmp_path / "model.json").write_text('{"model": "lenet", "dtype": "float32"}')
    status, stdout, err = run_cli(["eval", "--params", tmp_path / "params.npz",
                                   "--data", mnist_dir])
    assert status == 0, err
    assert stdout.startswith("lenet: test accuracy")


def test_an_explicit_model_wins_over_the_card(mnist_dir, tmp_path):
    net = fastconv.nn.make_model("simple")
    net.save_params(tmp_path / "params.npz")
    modelcard.write_card(tmp_path, net, "simple")
    status, _, err = run_cli(["eval", "--params", tmp_path / "params.npz", "--model", "lenet",
                              "--data", mnist_dir])
    assert_one_line_error(status, err, "into the lenet model")


BAD_CARDS = {
    "specs not a list": ({"input_dim": [1, 28, 28], "layer_specs": {}}, "must both be lists"),
    "no input_dim": ({"layer_specs": []}, "must both be lists"),
    "unknown type": ({"input_dim": [1, 28, 28], "layer_specs": [{"type": "conv3d"}]},
                     "unknown layer type 'conv3d'"),
    "spec not an object": ({"input_dim": [1, 28, 28], "layer_specs": [5]},
                           "layer_specs[0] must be an object"),
    "size not a number": ({"input_dim": [1, 28, 28], "layer_specs": [
        {"type": "conv", "filter_num": 3, "filter_size": "x"}]}, "filter_size must be"),
    "map shrinks": ({"input_dim": [1, 28, 28], "layer_specs": [
        {"type": "conv", "filter_num": 3, "filter_size": 40}]}, "larger than the padded input"),
    "huge": ({"input_dim": [1, 28, 28], "layer_specs": [
        {"type": "affine", "output_size": 10 ** 12}]}, "more than 268435456"),
    "bad input_dim": ({"input_dim": [1, 0, 28], "layer_specs": []}, "input_dim entry"),
    "unknown key": ({"input_dim": [1, 28, 28], "layer_specs": [
        {"type": "relu", "inplace": True}]}, "unknown keys ['inplace']"),
    "bad dtype": ({"input_dim": [1, 28, 28], "layer_specs": [], "dtype": "float16"},
                  "dtype must be"),
}


@pytest.mark.parametrize("case", BAD_CARDS, ids=list(BAD_CARDS))
def test_bad_cards_are_one_line_errors(case, tmp_path):
    content, message = BAD_CARDS[case]
    fastconv.nn.make_model("simple").save_params(tmp_path / "params.npz")
    (tmp_path / "model.json").write_text(json.dumps(content))
    for command in (["eval", "--data", tmp_path / "none", "--no-download"],
                    ["export", "--onnx", tmp_path / "x.onnx"]):
        status, _, err = run_cli([command[0], "--params", tmp_path / "params.npz",
                                  *command[1:]])
        assert_one_line_error(status, err, "model.json", message)


def test_read_card_takes_a_folder_and_refuses_non_objects(tmp_path):
    net = fastconv.nn.make_model("simple")
    path = modelcard.write_card(tmp_path, net, "simple")
    assert modelcard.read_card(tmp_path) == modelcard.read_card(path)
    (tmp_path / "model.json").write_text("[1]")
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        modelcard.read_card(tmp_path)
