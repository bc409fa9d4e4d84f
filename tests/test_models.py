"""Models: backprop against finite differences, the C and NumPy backends against each
other, SimpleConvNet against PyTorch, the book's architectures, and safe checkpoints."""
import pickle

import numpy as np
import pytest

import bruteforce as bf
from fastconv import functional as F
from fastconv.train.gradcheck import gradient_check
from fastconv.nn import AlexNet, DeepConvNet, LeNet, Net, SimpleConvNet



def _conv(n, pad=1):
    return {"filter_num": n, "filter_size": 3, "pad": pad, "stride": 1}


# Small float64 configurations: name -> (constructor, input_dim, classes, batch).
# The point of each check is drawn by a fixed seed (GRADCHECK below).
SMALL = {
    # The book's ch07/gradient_check.py, weights and all (zero biases, std 0.01).
    "SimpleConvNet-book": (lambda seed: SimpleConvNet(
        (1, 10, 10), _conv(10, 0), hidden_size=10, output_size=10, weight_init_std=0.01,
        dtype=np.float64, seed=seed), (1, 10, 10), 10, 1),
    "SimpleConvNet": (lambda seed: SimpleConvNet(
        (1, 9, 9), {"filter_num": 4, "filter_size": 3, "pad": 1, "stride": 2}, hidden_size=8,
        output_size=5, weight_init_std=0.1, dtype=np.float64, seed=seed), (1, 9, 9), 5, 3),
    "DeepConvNet": (lambda seed: DeepConvNet(
        (1, 8, 8), _conv(2), _conv(2), _conv(3), _conv(3, 2), _conv(4), _conv(4),
        hidden_size=6, output_size=4, dtype=np.float64, seed=seed), (1, 8, 8), 4, 2),
    "LeNet": (lambda seed: LeNet(
        (1, 12, 12), output_size=4, conv_channels=(3, 4), hidden_sizes=(8, 6),
        dtype=np.float64, seed=seed), (1, 12, 12), 4, 2),
    "AlexNet": (lambda seed: AlexNet(
        (1, 15, 15), output_size=4, conv_channels=(2, 3, 3, 3, 2), hidden_size=6,
        conv1_size=3, conv1_stride=1, conv1_pad=1, dtype=np.float64, seed=seed),
        (1, 15, 15), 4, 2),
    "Net-batchnorm": (lambda seed: Net((2, 6, 6), [
        # A bias right before batch norm (or before a ReLU that passes the whole
        # batch) has an exactly zero gradient, which no relative error can judge;
        # so batch norm follows sigmoids here.
        {"type": "conv", "filter_num": 3, "filter_size": 3, "pad": 1},
        {"type": "sigmoid"}, {"type": "batchnorm"},
        {"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 2, "mode": "avg"},
        {"type": "lrn", "size": 3, "alpha": 0.5},
        {"type": "affine", "output_size": 5, "init": "xavier"},
        {"type": "sigmoid"}, {"type": "batchnorm"}, {"type": "dropout", "dropout_ratio": 0.3},
        {"type": "affine", "output_size": 3},
    ], dtype=np.float64, seed=seed), (2, 6, 6), 3, 4),
}


def small_problem(name, seed=0):
    """A net of SMALL at a generic point, with a batch for it.

    Zero biases put ReLUs exactly on their kink whenever all of a unit's inputs
    are zero (dropped, padded or dead), where backprop's one-sided derivative
    and a central difference disagree by design: the biases are drawn at
    random, except in the book's own configuration.
    """
    make, input_dim, classes, batch = SMALL[name]
    net = make(seed)
    rng = np.random.default_rng(seed + 100)
    if name != "SimpleConvNet-book":
        for key, p in net.params.items():
            if key.startswith(("b", "beta")):
                p[...] = rng.normal(0, 0.1, p.shape)
    x = rng.random((batch,) + input_dim)
    t = rng.integers(0, classes, batch)
    if name == "SimpleConvNet-book":
        t = np.array([[1]])  # as the book writes it
    return net, x, t


# name -> (seed, finite-difference step). ReLU and max pooling have kinks: when
# a step of h moves some unit across one, the central difference averages two
# slopes and no tolerance holds. Each seed picks a point where no step does
# (DeepConvNet's seed 0 does not: 6e-5). The book's own configuration is the
# most exposed: weights of std 0.01 keep its pre-activations within about 1e-3
# of zero, and most seeds cross a kink (seed 0 does not). The sigmoid and
# batch-norm net has no kinks but mixes small slopes with large curvature, so
# at h = 1e-4 its O(h^2) truncation error reaches 1e-6.
GRADCHECK = {"SimpleConvNet-book": (0, 1e-4), "SimpleConvNet": (0, 1e-4),
             "DeepConvNet": (1, 1e-4), "LeNet": (0, 1e-4), "AlexNet": (0, 1e-4),
             "Net-batchnorm": (0, 3e-5)}


@pytest.mark.parametrize("name", list(SMALL))
def test_gradient_matches_numerical_gradient(backend, name):
    seed, h = GRADCHECK[name]
    net, x, t = small_problem(name, seed)
    errors = gradient_check(net, x, t, h=h)
    assert set(errors) == set(net.params)
    worst = max(errors, key=errors.get)
    print(f"\ngradient check {name} [{backend}]: max relative error "
          f"{errors[worst]:.2e} ({worst})")
    assert errors[worst] < 1e-6, errors


@pytest.mark.parametrize("name", ["SimpleConvNet", "DeepConvNet", "LeNet", "AlexNet",
                                  "Net-batchnorm"])
def test_backends_agree(name):
    if "c" not in F.available_backends():
        pytest.skip("the C extension is not built")
    net, x, t = small_problem(name)
    results = {}
    for backend in ("c", "numpy"):  # before training passes move batch norm's statistics
        with F.use_backend(backend):
            results[backend + "-predict"] = net.predict(x)
    with net.fixed_dropout_masks():
        for backend in ("c", "numpy"):
            with F.use_backend(backend):
                results[backend] = net.loss_and_gradient(x, t)
    (loss_c, grads_c), (loss_np, grads_np) = results["c"], results["numpy"]
    assert np.isclose(loss_c, loss_np, rtol=1e-12)
    np.testing.assert_allclose(results["c-predict"], results["numpy-predict"], rtol=1e-12)
    for key in grads_np:
        np.testing.assert_allclose(grads_c[key], grads_np[key], rtol=1e-10, atol=1e-15)


def test_simpleconvnet_matches_torch(backend):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    net = SimpleConvNet((2, 11, 12), {"filter_num": 5, "filter_size": 3, "pad": 1, "stride": 1},
                        hidden_size=7, output_size=4, weight_init_std=0.3,
                        dtype=np.float64, seed=3)
    rng = np.random.default_rng(4)
    for key in ("b1", "b2", "b3"):
        net.params[key][...] = rng.normal(0, 0.1, net.params[key].shape)
    x, t = rng.random((6, 2, 11, 12)), rng.integers(0, 4, 6)

    p = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    h = tf.max_pool2d(tf.relu(tf.conv2d(torch.tensor(x), p["W1"], p["b1"], 1, 1)), 2, 2)
    h = tf.relu(tf.linear(h.flatten(1), p["W2"].T, p["b2"]))
    loss_t = tf.cross_entropy(tf.linear(h, p["W3"].T, p["b3"]), torch.tensor(t))
    loss_t.backward()

    loss, grads = net.loss_and_gradient(x, t)
    assert np.isclose(loss, loss_t.item(), rtol=1e-12)
    for key in net.params:
        np.testing.assert_allclose(grads[key], p[key].grad.numpy(), rtol=1e-9, atol=1e-14)



# --- the rounding bound of a whole network (bruteforce.NetBound) ----------------------

BOUND_NETS = {  # every layer type, at the sizes the other test files use
    "SimpleConvNet": lambda dtype: SimpleConvNet(weight_init_std="he", dtype=dtype, seed=1),
    "DeepConvNet": lambda dtype: DeepConvNet(dtype=dtype, seed=2),
    "LeNet": lambda dtype: LeNet(dtype=dtype, seed=3),
    "AlexNet": lambda dtype: AlexNet((1, 28, 28), output_size=10,
                                     conv_channels=(16, 32, 48, 48, 32), hidden_size=64,
                                     conv1_size=3, conv1_stride=1, conv1_pad=1,
                                     dtype=dtype, seed=4),
    "Net": lambda dtype: Net((1, 28, 28), [
        {"type": "conv", "filter_num": 6, "filter_size": 3, "pad": 1}, {"type": "batchnorm"},
        {"type": "relu"}, {"type": "pool", "pool_h": 3, "pool_w": 3, "stride": 2, "pad": 1},
        {"type": "lrn", "size": 4, "alpha": 0.5, "k": 1.0},
        {"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 1, "pad": 1, "mode": "avg"},
        {"type": "affine", "output_size": 20}, {"type": "batchnorm"}, {"type": "sigmoid"},
        {"type": "dropout"}, {"type": "affine", "output_size": 10}], dtype=dtype, seed=5),
}
_BOUNDS = {}


def _bound_problem(name, dtype):
    """The net with biases and batch-norm statistics away from their initial values,
    a batch, and its NetBound (computed once per net: it is the same on every backend)."""
    net = BOUND_NETS[name](dtype)
    rng = np.random.default_rng(6)
    for key, p in net.params.items():
        if key.startswith(("b", "beta")):
            p[...] = rng.normal(0, 0.1, p.shape)
    for layer in net.layers.values():
        if hasattr(layer, "running_var"):
            layer.running_mean[...] = rng.normal(0, 0.2, layer.running_mean.shape)
            layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
    x = rng.random((5, 1, 28, 28)).astype(dtype)
    if (name, dtype) not in _BOUNDS:
        _BOUNDS[name, dtype] = bf.NetBound(net, x)
    return net, x, _BOUNDS[name, dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(BOUND_NETS))
def test_net_bound_holds_on_every_path(backend, name, dtype):
    net, x, bound = _bound_problem(name, dtype)
    y = net.predict(x)
    bound.check(y, what="predict against the float64 evaluation")
    bound.check(np.concatenate([net.predict(x[i:i + 1]) for i in range(len(x))]), y,
                what="one sample at a time against the batch")
    # Not vacuous: in float32 it stays within 1e-3 of the largest score, in float64
    # within 1e-11 (the errors seen are a hundred times smaller).
    scale = np.abs(bound.exact).max()
    assert bound.of(dtype).max() < (1e-3 if dtype == np.float32 else 1e-11) * scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(BOUND_NETS))
def test_net_bound_fails_wrong_scores(name, dtype):
    """Mutants that the bound must kill: one score off by 1e-3 of the largest, the last
    layer's weights 1e-3 too large, a bias left out; in float64 also one weight 1e-4
    off. (In float32 a single weight 1e-4 off, a change of 1e-6 to 1e-4 of the scores
    depending on the layer, is within rounding of many nets and not required.)"""
    net, x, bound = _bound_problem(name, dtype)
    y = net.predict(x)
    bound.check(y)
    worst = np.unravel_index(np.argmax(np.abs(bound.exact)), y.shape)
    off = y.copy()
    off[worst] += 1e-3 * y[worst]
    mutants = {"a score off by 1e-3": off}
    last = [k for k in net.params if k.startswith("W")][-1]
    first_bias = next(k for k in net.params if k.startswith("b"))
    changes = {"last weights 1e-3 too large": (last, lambda p: p * (1 + 1e-3)),
               "first bias left out": (first_bias, np.zeros_like)}
    if dtype == np.float64:
        # In each layer the weight the loss is most sensitive to (one feeding a dead
        # unit would change nothing).
        # (On a copy: a training pass moves batch norm's running statistics.)
        grads = _bound_problem(name, dtype)[0].gradient(x, np.arange(len(x)) % y.shape[1])

        def nudge(key):
            def change(p):
                p = p.copy()
                p.flat[np.argmax(np.abs(grads[key]))] += 1e-4
                return p
            return change
        changes.update({f"{k} one weight 1e-4 off": (k, nudge(k))
                        for k in net.params if k.startswith("W")})
    for what, (key, change) in changes.items():
        saved = net.params[key].copy()
        net.params[key] = change(saved)
        try:
            mutants[what] = net.predict(x)
        finally:
            net.params[key] = saved
    for what, scores in mutants.items():
        with pytest.raises(AssertionError, match="exceeds the rounding bound"):
            bound.check(scores, what=what)

# --- architectures -------------------------------------------------------------------

def _book_order_loss_and_gradient(net, x, t):
    """Forward and backward through ``net.layers`` one by one, in the book's order."""
    h = x
    for layer in net.layers.values():
        h = layer.forward(h)
    loss = net.last_layer.forward(h, t)
    dout = net.last_layer.backward(1)
    for layer in reversed(net.layers.values()):
        dout = layer.backward(dout)
        if dout is None:
            break
    return loss, {name: getattr(layer, attr).copy() for name, (layer, attr) in net._grad_of.items()}


@pytest.mark.parametrize("special", ["none", "negative windows", "nan"])
def test_relu_before_max_pool_runs_after_it_with_the_same_results(backend, special):
    # Net runs Relu1 after Pool1; the book runs it before. Windows whose values
    # are all negative and NaN inputs are where the two orders could differ.
    net = SimpleConvNet((1, 8, 8), {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1},
                        hidden_size=6, output_size=4, weight_init_std=0.3, dtype=np.float64,
                        seed=5)
    names = list(net.layers)
    assert names[:3] == ["Conv1", "Relu1", "Pool1"]
    assert [type(l).__name__ for l in net._sequence[:3]] == ["Convolution", "Pooling", "Relu"]
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 1, 8, 8))
    if special == "negative windows":
        net.params["b1"][:] = [-50.0, 0.0, -0.5]  # channel 0 is negative everywhere
    if special == "nan":
        x[1, 0, 2, 3] = np.nan
    t = np.array([0, 3, 1])
    loss, grads = net.loss_and_gradient(x, t)
    grads = {k: v.copy() for k, v in grads.items()}
    book_loss, book_grads = _book_order_loss_and_gradient(net, x, t)
    np.testing.assert_array_equal(loss, book_loss)
    for name in grads:
        np.testing.assert_array_equal(grads[name], book_grads[name], err_msg=name)
    if special == "negative windows":
        assert np.all(grads["W1"][0] == 0) and grads["b1"][0] == 0


def test_simpleconvnet_is_the_books():
    net = SimpleConvNet(seed=0)
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {"W1": (30, 1, 5, 5), "b1": (30,), "W2": (30 * 12 * 12, 100),
                      "b2": (100,), "W3": (100, 10), "b3": (10,)}
    assert all(v.dtype == np.float32 for v in net.params.values())
    assert abs(net.params["W2"].std() - 0.01) < 1e-3
    assert not any(net.params[b].any() for b in ("b1", "b2", "b3"))


def test_deepconvnet_is_the_books():
    net = DeepConvNet(seed=0)
    convs = [l for l in net.layers.values() if type(l).__name__ == "Convolution"]
    assert [c.W.shape[0] for c in convs] == [16, 16, 32, 32, 64, 64]
    assert [c.pad for c in convs] == [(1, 1), (1, 1), (1, 1), (2, 2), (1, 1), (1, 1)]
    kinds = [type(l).__name__ for l in net.layers.values()]
    assert kinds[-5:] == ["Affine", "Relu", "Dropout", "Affine", "Dropout"]
    assert kinds.count("Pooling") == 3
    assert net.params["W7"].shape == (64 * 4 * 4, 50) and net.params["W8"].shape == (50, 10)
    assert len(net.params) == 16
    # He: sqrt(2 / fan_in) with the book's fan_in = 1*3*3, 16*3*3, ..., 64*4*4, 50.
    fan_in = [9, 144, 144, 288, 288, 576, 1024, 50]
    for i, n in enumerate(fan_in, 1):
        w = net.params[f"W{i}"]
        assert abs(w.std() / np.sqrt(2 / n) - 1) < 4 / np.sqrt(w.size), i


def test_lenet_shapes():
    net = LeNet(seed=0)
    assert {k: v.shape for k, v in net.params.items() if k.startswith("W")} == {
        "W1": (6, 1, 5, 5), "W2": (16, 6, 5, 5), "W3": (16 * 5 * 5, 120), "W4": (120, 84),
        "W5": (84, 10)}
    assert [l.mode for l in net.layers.values() if hasattr(l, "mode")] == ["avg", "avg"]
    assert LeNet((1, 32, 32), conv1_pad=0, seed=0).params["W3"].shape == (400, 120)


def test_alexnet_sizes_and_errors():
    net = AlexNet(output_size=7, conv_channels=(4, 4, 4, 4, 3), hidden_size=8, seed=0)
    assert net.params["W1"].shape == (4, 3, 11, 11)
    assert net.params["W6"].shape == (3 * 6 * 6, 8)   # the paper's 6x6 maps from 224x224
    assert net.predict(np.zeros((1, 3, 224, 224))).shape == (1, 7)
    kinds = [type(l).__name__ for l in net.layers.values()]
    assert kinds.count("LRN") == 2 and kinds.count("Dropout") == 2
    pools = [l for l in net.layers.values() if type(l).__name__ == "Pooling"]
    assert all((p.pool_h, p.stride) == (3, (2, 2)) for p in pools)
    with pytest.raises(ValueError, match=r"too small.*\(1, 28, 28\)|\(1, 28, 28\).*too small"):
        AlexNet((1, 28, 28), output_size=10, conv_channels=(4, 4, 4, 4, 4), hidden_size=8)
    mnist = AlexNet((1, 28, 28), output_size=10, conv_channels=(4, 4, 4, 4, 4), hidden_size=8,
                    conv1_size=3, conv1_stride=1, conv1_pad=1)
    assert mnist.predict(np.zeros((2, 1, 28, 28))).shape == (2, 10)


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="unknown layer type"):
        Net((1, 4, 4), [{"type": "convolution", "filter_num": 1, "filter_size": 3}])
    with pytest.raises(ValueError, match="unknown keys"):
        Net((1, 4, 4), [{"type": "conv", "filter_num": 1, "filtersize": 3}])
    with pytest.raises(ValueError, match="too small for this architecture"):
        Net((1, 4, 4), [{"type": "conv", "filter_num": 1, "filter_size": 5}])
    with pytest.raises(TypeError, match="dtype"):
        SimpleConvNet(dtype=np.int32)


# --- behaviour -------------------------------------------------------------------------

def test_accuracy_counts_every_sample():
    net = SimpleConvNet((1, 6, 6), _conv(3), hidden_size=5, output_size=3,
                        weight_init_std=0.5, seed=1)
    rng = np.random.default_rng(2)
    x, t = rng.random((105, 1, 6, 6)), rng.integers(0, 3, 105)
    expected = np.mean(np.argmax(net.predict(x), axis=1) == t)
    assert 0 < expected < 1
    for batch_size in (1, 10, 100, 1000):
        assert net.accuracy(x, t, batch_size) == pytest.approx(expected)
    assert net.accuracy(x, np.eye(3)[t]) == pytest.approx(expected)
    assert net.accuracy(x.reshape(105, 36), t) == pytest.approx(expected)  # flattened


def test_float32_is_kept_throughout():
    net = SimpleConvNet((1, 8, 8), _conv(3), hidden_size=5, output_size=3, seed=0)
    x = np.random.default_rng(0).random((4, 1, 8, 8))  # float64 data
    assert net.predict(x).dtype == np.float32
    loss, grads = net.loss_and_gradient(x, np.array([0, 1, 2, 0]))
    assert loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


def test_float32_and_float64_nets_share_their_weights():
    a = SimpleConvNet((1, 8, 8), _conv(3), seed=5)
    b = SimpleConvNet((1, 8, 8), _conv(3), seed=5, dtype=np.float64)
    for key in a.params:
        np.testing.assert_allclose(a.params[key], b.params[key], rtol=1e-7)


def test_dropout_masks_fixed_only_inside_the_block():
    net, x, t = small_problem("DeepConvNet")
    with net.fixed_dropout_masks():
        first = net.loss(x, t)
        assert all(net.loss(x, t) == first for _ in range(3))
    losses = {float(net.loss(x, t)) for _ in range(8)}
    assert len(losses) > 1
    assert net.predict(x).tolist() == net.predict(x).tolist()  # test mode: no dropout


def test_numerical_gradient_restores_batchnorm_statistics():
    net, x, t = small_problem("Net-batchnorm")
    norm = net.layers["BatchNorm1"]
    before = norm.running_mean.copy(), norm.running_var.copy()
    net.numerical_gradient(x, t)
    np.testing.assert_array_equal(norm.running_mean, before[0])
    np.testing.assert_array_equal(norm.running_var, before[1])


def test_repr():
    assert repr(SimpleConvNet(seed=0)) == (
        "SimpleConvNet(input_dim=(1, 28, 28), 6 layers, 433890 parameters, dtype=float32)")


# --- checkpoints -------------------------------------------------------------------------

@pytest.fixture
def net():
    return SimpleConvNet((1, 8, 8), _conv(3), hidden_size=5, output_size=3, seed=0)


def _snapshot(net):
    return {k: v.copy() for k, v in net.params.items()}


def test_save_load_round_trip(net, tmp_path):
    path = tmp_path / "params.npz"
    net.save_params(path)
    other = SimpleConvNet((1, 8, 8), _conv(3), hidden_size=5, output_size=3, seed=1)
    params_before = dict(other.params)
    other.load_params(path)
    for key in net.params:
        assert other.params[key] is params_before[key]  # in place: the layers see it
        np.testing.assert_array_equal(other.params[key], net.params[key])
    x = np.random.default_rng(0).random((2, 1, 8, 8))
    np.testing.assert_array_equal(other.predict(x), net.predict(x))
    wide = SimpleConvNet((1, 8, 8), _conv(3), hidden_size=5, output_size=3, seed=2,
                         dtype=np.float64)
    wide.save_params(tmp_path / "wide.npz")
    other.load_params(tmp_path / "wide.npz")  # float64 into float32 casts
    np.testing.assert_allclose(other.params["W1"], wide.params["W1"], rtol=1e-7)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_is_refused_and_never_run(net, tmp_path):
    marker = tmp_path / "marker"
    payload = pickle.dumps({"W1": _RunsCode(marker)})
    pickle.loads(payload)            # the payload does run code when unpickled...
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "params.pkl"
    path.write_bytes(payload)
    before = _snapshot(net)
    with pytest.raises(ValueError, match="not an .npz"):
        net.load_params(path)        # ...but not here
    assert not marker.exists()
    assert all(np.array_equal(net.params[k], before[k]) for k in before)


def test_an_object_array_in_an_npz_is_refused(net, tmp_path):
    marker = tmp_path / "marker"
    params = _snapshot(net)
    params["W1"] = np.array([_RunsCode(marker)], dtype=object)
    np.savez(tmp_path / "obj.npz", **params)
    with pytest.raises(ValueError, match="not a valid .npz"):
        net.load_params(tmp_path / "obj.npz")
    assert not marker.exists()


def test_damaged_or_mismatched_files_are_refused(net, tmp_path):
    good = tmp_path / "good.npz"
    net.save_params(good)
    before = _snapshot(net)
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
    np.save(tmp_path / "array.npy", before["W1"])

    def write(name, **changes):
        params = {**before, **changes}
        params = {k: v for k, v in params.items() if v is not None}
        np.savez(tmp_path / name, **params)
        return tmp_path / name

    cases = [
        (tmp_path / "truncated.npz", "not a valid .npz"),
        (tmp_path / "array.npy", "not an .npz"),
        (tmp_path / "missing_file.npz", "cannot read"),
        (write("shape.npz", W1=before["W1"][:1]), r"W1 has shape \(1, 1, 3, 3\)"),
        (write("missing.npz", b3=None), r"missing \['b3'\]"),
        (write("extra.npz", W9=np.zeros(2)), r"unexpected \['W9'\]"),
        (write("complex.npz", b1=before["b1"] + 1j), "does not cast"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            net.load_params(path)
        assert all(np.array_equal(net.params[k], before[k]) for k in before), path
