"""LeakyRelu, the layer type added to prove that a type is defined once
(nn/activations.py, exported from fastconv/__init__.py): the layer against
finite differences and torch, and a net with a leaky_relu spec through
training, files, ONNX and the torch twin."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bruteforce as bf
import fastconv
from fastconv.nn import card as modelcard
from fastconv.train.gradcheck import numerical_gradient, relative_error

SPECS = [{"type": "conv", "filter_num": 6, "filter_size": 3, "pad": 1},
         {"type": "leaky_relu", "negative_slope": 0.1},
         {"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 2},
         {"type": "affine", "output_size": 16},
         {"type": "leaky_relu"},
         {"type": "affine", "output_size": 10}]


def leaky_net(dtype=np.float32, seed=0):
    return fastconv.Net((1, 12, 12), SPECS, dtype=dtype, seed=seed)


@settings(max_examples=30, deadline=None)
@given(slope=st.floats(-2, 2), seed=st.integers(0, 2**31 - 1))
def test_the_layer_is_its_formula_and_its_gradient(slope, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # away from the kink, for the differences
    layer = fastconv.LeakyRelu(slope)
    out = layer.forward(x)
    assert np.array_equal(out, np.where(x > 0, x, slope * x))  # one product: exact form
    assert np.array_equal(layer.infer(x), out)
    dout = rng.standard_normal(x.shape)
    dx = layer.backward(dout)
    assert np.array_equal(dx, np.where(x > 0, dout, slope * dout))
    numeric = numerical_gradient(lambda v: float((fastconv.LeakyRelu(slope).forward(v)
                                                  * dout).sum()), x.copy())
    # Central differences of a piecewise-linear function away from its kink are
    # exact up to rounding: 2 eps |f| / h with h = 1e-4.
    bound = 4 * np.finfo(np.float64).eps * (np.abs(dout).sum() * 10) / 1e-4
    assert np.max(np.abs(numeric - dx)) <= bound
    with np.errstate(invalid="ignore"):  # 0 * -inf, as torch's leaky_relu: NaN
        keep = fastconv.LeakyRelu(slope).forward(np.array([np.nan, -np.inf, np.inf]))
    assert np.isnan(keep[0]) and keep[2] == np.inf


def test_the_layer_refuses_a_slope_that_is_not_a_number():
    for bad in ("0.1", None, np.nan, [0.1], True):
        with pytest.raises(TypeError, match="negative_slope"):
            fastconv.LeakyRelu(bad)


def test_the_spec_is_checked_and_named():
    with pytest.raises(ValueError, match=r"unknown keys \['slope'\]"):
        fastconv.Net((4,), [{"type": "leaky_relu", "slope": 0.1}])
    net = leaky_net()
    assert [type(l).__name__ for l in net.layers.values()].count("LeakyRelu") == 2
    assert net.layers["LeakyRelu1"].negative_slope == 0.1
    assert net.layers["LeakyRelu2"].negative_slope == 0.01  # the spec's default


def test_a_net_with_it_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((40, 1, 12, 12)).astype(np.float32)
    t = rng.integers(0, 10, 40)
    net = leaky_net(np.float64)
    grads = net.gradient(x[:4], t[:4])
    numeric = net.numerical_gradient(x[:4], t[:4])
    for name in grads:
        assert relative_error(grads[name], numeric[name]) < 1e-5, name
    net32 = leaky_net()
    first = net32.loss(x, t)
    optimizer = fastconv.Adam(lr=0.01)
    for _ in range(100):
        optimizer.update(net32.params, net32.gradient(x, t))
    assert net32.loss(x, t) < 0.5 * first
    net32.save_params(tmp_path / "params.npz")
    modelcard.write_card(tmp_path, net32, "leaky")
    again = fastconv.Net.from_card(modelcard.read_card(tmp_path))
    again.load_params(tmp_path / "params.npz")
    assert np.array_equal(again.predict(x), net32.predict(x))


def test_onnx_runtime_gives_predict(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = leaky_net()
    x = np.random.default_rng(2).random((8, 1, 12, 12)).astype(np.float32)
    net.to_onnx(tmp_path / "leaky.onnx")
    session = ort.InferenceSession(str(tmp_path / "leaky.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    assert np.max(np.abs(got - net.predict(x))) <= 1e-5
    bf.NetBound(net, x).check(got, net.predict(x))


def test_the_torch_twin_gives_predict():
    torch = pytest.importorskip("torch")
    from fastconv.interop import torch as twin
    net = leaky_net(np.float64)
    model = twin.twin(net)
    assert [type(m).__name__ for m in model].count("LeakyReLU") == 2
    x = np.random.default_rng(3).random((5, 1, 12, 12))
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    bf.NetBound(net, x).check(got, net.predict(x))
