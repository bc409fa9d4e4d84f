"""The book's ways with a network: assigning params, its gradient check on float32,
and its Trainer's train_step() and fractional epochs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bruteforce as bf
import fastconv
from fastconv import SimpleConvNet, Trainer

SMALL = dict(input_dim=(1, 10, 10), hidden_size=10, output_size=10,
             conv_param={"filter_num": 4, "filter_size": 3, "pad": 0, "stride": 1})


def _forward(params, x):
    """SimpleConvNet's scores by brute force, from a dict of arrays (the oracle)."""
    w1, b1 = params["W1"], params["b1"]
    n, _, h, w = x.shape
    fn, c, fh, fw = w1.shape
    conv = np.zeros((n, fn, h - fh + 1, w - fw + 1))
    for i in range(h - fh + 1):
        for j in range(w - fw + 1):
            patch = x[:, :, i:i + fh, j:j + fw].reshape(n, -1)
            conv[:, :, i, j] = patch @ w1.reshape(fn, -1).T + b1
    r = np.maximum(conv, 0)
    oh, ow = r.shape[2] // 2, r.shape[3] // 2
    pool = r[:, :, :2 * oh, :2 * ow].reshape(n, fn, oh, 2, ow, 2).max(axis=(3, 5))
    hidden = np.maximum(pool.reshape(n, -1) @ params["W2"] + params["b2"], 0)
    return hidden @ params["W3"] + params["b3"]


# --- item 1: net.params[name] = array writes through --------------------------------

def test_assigned_params_are_what_the_layers_use():
    net = SimpleConvNet(**SMALL, seed=0)
    rng = np.random.default_rng(1)
    new = {k: rng.normal(0, 0.3, v.shape) for k, v in net.params.items()}  # float64
    x = rng.random((3, 1, 10, 10))
    for name, array in new.items():
        net.params[name] = array
    # The oracle on the values the float32 net holds (weights and input cast once),
    # each evaluation within its rounding bound.
    x32 = x.astype(np.float32)
    held = {k: v.astype(np.float32).astype(np.float64) for k, v in new.items()}
    bf.NetBound(net, x32).check(net.predict(x), _forward(held, x32.astype(np.float64)))
    assert net.layers["Conv1"].W is net.params["W1"]
    assert net.params["W1"].dtype == np.float32  # cast to the net's dtype


def test_the_books_load_params_pattern():
    """Assign every params entry, then set each layer's W and b from params (ch07/ch08)."""
    net = SimpleConvNet(**SMALL, seed=0, dtype=np.float64)
    rng = np.random.default_rng(2)
    new = {k: rng.normal(0, 0.3, v.shape) for k, v in net.params.items()}
    for key, val in new.items():
        net.params[key] = val
    for i, key in enumerate(["Conv1", "Affine1", "Affine2"]):
        net.layers[key].W = net.params["W" + str(i + 1)]
        net.layers[key].b = net.params["b" + str(i + 1)]
    x = rng.random((2, 1, 10, 10))
    bound = bf.NetBound(net, x)
    bound.check(net.predict(x), _forward(new, x))
    top2 = np.sort(bound.exact, axis=1)[:, -2:]  # no top class within rounding of a tie
    assert np.all(top2[:, 1] - top2[:, 0] > 2 * bound.of(np.float64).max(axis=1))
    assert net.accuracy(x, np.argmax(_forward(new, x), axis=1)) == 1.0


def test_a_layer_reassigned_directly_shows_in_params():
    net = SimpleConvNet(**SMALL, seed=0)
    w = np.ones_like(net.params["W2"])
    net.layers["Affine1"].W = w
    assert net.params["W2"] is w


def test_in_place_writes_and_optimisers_still_reach_the_layers():
    net = SimpleConvNet(**SMALL, seed=0)
    net.params["b1"][...] = 0.5
    net.params["b2"] += 1.0        # stored back: the same array
    assert np.all(net.layers["Conv1"].b == 0.5)
    assert np.all(net.layers["Affine1"].b == 1.0)
    before = {k: v.copy() for k, v in net.params.items()}
    grads = {k: np.ones_like(v) for k, v in net.params.items()}
    fastconv.SGD(lr=0.1).update(net.params, grads)
    for name, (layer, attr) in {"W1": ("Conv1", "W"), "b3": ("Affine2", "b")}.items():
        # One product lr * g and one subtraction on each side.
        bf.assert_sums_agree(getattr(net.layers[layer], attr), before[name] - 0.1,
                             np.abs(before[name]) + 0.1, 2)


def test_bad_assignments_are_refused_and_change_nothing():
    net = SimpleConvNet(**SMALL, seed=0)
    w1 = net.params["W1"].copy()
    with pytest.raises(ValueError, match=r"params\['W1'\] has shape \(4, 1, 3, 3\), cannot "
                                         r"assign an array of shape \(4, 1, 5, 5\)"):
        net.params["W1"] = np.zeros((4, 1, 5, 5))
    with pytest.raises(TypeError, match=r"params\['W1'\] must be a real numeric array, "
                                        r"got dtype <U1"):
        net.params["W1"] = np.full(w1.shape, "x")
    with pytest.raises(TypeError, match="complex"):
        net.params["W1"] = np.zeros(w1.shape, complex)
    with pytest.raises(KeyError, match="'W9' is not a parameter"):
        net.params["W9"] = np.zeros(3)
    with pytest.raises(TypeError, match="cannot be removed"):
        del net.params["W1"]
    np.testing.assert_array_equal(net.params["W1"], w1)
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]


@settings(max_examples=25, deadline=None)
@given(dtype=st.sampled_from([np.float32, np.float64]),
       source=st.sampled_from(["float32", "float64", "int64", "uint8"]),
       seed=st.integers(0, 2**32 - 1))
def test_any_numeric_dtype_is_cast_to_the_nets(dtype, source, seed):
    net = SimpleConvNet(**SMALL, seed=0, dtype=dtype)
    rng = np.random.default_rng(seed)
    value = (rng.normal(0, 3, net.params["W2"].shape)).astype(source)
    net.params["W2"] = value
    assert net.params["W2"].dtype == dtype
    np.testing.assert_array_equal(net.layers["Affine1"].W, value.astype(dtype))


# --- item 2: the book's gradient check on a float32 net ------------------------------

def _book_check(net, x, t):
    """ch07/gradient_check.py: the mean absolute difference per parameter."""
    grad_num = net.numerical_gradient(x, t)
    grad = net.gradient(x, t)
    return {k: float(np.abs(grad_num[k] - grad[k]).mean()) for k in grad_num}, grad_num


def test_numerical_gradient_of_a_float32_net_is_taken_in_float64():
    rng = np.random.default_rng(3)
    x, t = rng.random((1, 1, 10, 10)), np.array([1]).reshape((1, 1))
    net = SimpleConvNet(**SMALL, weight_init_std="he", seed=4)
    errors, grad_num = _book_check(net, x, t)
    assert all(g.dtype == np.float32 for g in grad_num.values())
    # The oracle: central differences of a float64 net holding the same values.
    net64 = SimpleConvNet(**SMALL, dtype=np.float64)
    for name, array in net.params.items():
        net64.params[name] = array
    x32 = x.astype(np.float32)
    for name, p in net64.params.items():
        expected = fastconv.numerical_gradient(lambda _: net64.loss(x32, t), p)
        # The same float64 differences of the same function, then one cast.
        np.testing.assert_array_equal(grad_num[name], expected.astype(np.float32),
                                      err_msg=name)
    # What the book's script prints: small against the gradients themselves
    # (before, float32 differences made them as large as the gradients). Derived:
    # float32 backprop through this net sums about 200 terms per value along its
    # forward and backward path (10 + 65 + 11 forward, 64 + 10 + 10 + ... backward),
    # 200 * eps32 = 2.4e-5 of the magnitudes; the float64 differences add
    # h^2/6 |f^(3)| + eps64 |f| / h, about 1e-9 here: 1e-4 leaves a factor 4 for the
    # magnitudes over the values, on average over each array.
    for name, err in errors.items():
        assert err < 1e-4 * np.abs(grad_num[name]).mean(), (name, err)


def test_gradient_check_on_float32_nets_with_dropout():
    rng = np.random.default_rng(5)
    x, t = rng.random((3, 1, 8, 8)), np.array([3, 7, 1])
    net = fastconv.Net((1, 8, 8), [
        {"type": "conv", "filter_num": 3, "filter_size": 3, "pad": 1},
        {"type": "relu"}, {"type": "pool"},
        {"type": "affine", "output_size": 12}, {"type": "relu"},
        {"type": "dropout", "dropout_ratio": 0.5},
        {"type": "affine", "output_size": 10}, {"type": "dropout", "dropout_ratio": 0.3},
    ], seed=6)
    assert net.dtype == np.float32
    errors = fastconv.gradient_check(net, x, t)
    assert set(errors) == set(net.params)
    # Errors of float32 backprop, not of float32 finite differences (~1 before).
    big = {k: e for k, e in errors.items() if e > 1e-3}
    assert not big, big


# --- item 6: Trainer.train_step() and fractional epochs ------------------------------

class Recorder:
    """A network that records the batches it is given; x holds sample ids."""

    def __init__(self):
        self.params = {"w": np.zeros(1)}
        self.batches = []

    def gradient(self, x, t):
        assert np.array_equal(x[:, 0], t)
        self.batches.append(t.tolist())
        return {"w": np.ones(1)}

    def loss(self, x, t):
        return float(len(self.batches))

    def accuracy(self, x, t):
        return 0.25


def _trainer(n=50, batch=10, epochs=1, **kw):
    ids = np.arange(n)
    net = Recorder()
    return net, Trainer(net, ids[:, None], ids, ids[:10, None], ids[:10], epochs=epochs,
                        mini_batch_size=batch, verbose=False, seed=0, **kw)


def test_train_step_without_arguments_samples_its_own_batch():
    net, trainer = _trainer()
    losses = [trainer.train_step() for _ in range(30)]
    assert trainer.current_iter == 30 and trainer.train_loss_list == losses
    assert all(len(b) == 10 and len(set(b)) == 10 for b in net.batches)
    assert all(0 <= i < 50 for b in net.batches for i in b)
    seen = {i for b in net.batches for i in b}
    assert len(seen) > 40  # random batches, not always the same ones
    # 30 SGD updates of -0.01: 30 roundings of partial sums up to 0.3 in magnitude.
    bf.assert_sums_agree(net.params["w"], -0.01 * 30, 0.3, 30)


def test_train_step_with_a_batch_still_records_nothing():
    net, trainer = _trainer()
    x = np.array([[3], [4]])
    trainer.train_step(x, np.array([3, 4]))
    assert net.batches == [[3, 4]] and trainer.train_loss_list == [] and trainer.current_iter == 0
    with pytest.raises(TypeError, match="both x and t, or neither"):
        trainer.train_step(x)


@pytest.mark.parametrize("epochs, updates, passes", [(2.5, 12, 3), (0.5, 2, 1), (2, 10, 2),
                                                     (0.1, 0, 0), (1.99, 9, 2)])
def test_fractional_epochs(epochs, updates, passes):
    net, trainer = _trainer(n=50, batch=10, epochs=epochs)
    assert trainer.max_iter == int(epochs * 5) == updates
    trainer.train()
    assert len(net.batches) == updates == trainer.current_iter
    assert trainer.current_epoch == passes == len(trainer.history)
    if passes:
        last = updates - 5 * (passes - 1)
        assert sorted(sum(net.batches[-last:], [])) == sorted(set(sum(net.batches[-last:], [])))
    assert trainer.final_test_acc == 0.25


@pytest.mark.parametrize("epochs, error", [(-1, ValueError), (float("nan"), ValueError),
                                           (float("inf"), ValueError), ("2", TypeError),
                                           (True, TypeError)])
def test_bad_epochs(epochs, error):
    with pytest.raises(error, match="epochs must be a"):
        _trainer(epochs=epochs)
