"""``python -m fastconv.book SCRIPT``: scripts written in the book's style (its imports,
its calls, its folder layout) run unchanged on fastconv's stand-in modules.

The scripts below are small stand-ins written here, not the book's files."""
import os
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv
from fastconv import book
from fastconv.io.book_pickle import read_book_params

# A network class in the book's style: a params dict of float64 arrays shared with
# layers from common.layers, an OrderedDict of layers, pickle for save/load.
SIMPLE_CONVNET = '''
import sys, os
sys.path.append(os.pardir)
import pickle
import numpy as np
from collections import OrderedDict
from common.layers import *
from common.gradient import numerical_gradient


class SimpleConvNet:
    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                 hidden_size=100, output_size=10, weight_init_std=0.01):
        fn, fs = conv_param['filter_num'], conv_param['filter_size']
        side = (input_dim[1] - fs + 2 * conv_param['pad']) // conv_param['stride'] + 1
        pooled = fn * (side // 2) * (side // 2)
        self.params = {}
        self.params['W1'] = weight_init_std * np.random.randn(fn, input_dim[0], fs, fs)
        self.params['b1'] = np.zeros(fn)
        self.params['W2'] = weight_init_std * np.random.randn(pooled, hidden_size)
        self.params['b2'] = np.zeros(hidden_size)
        self.params['W3'] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params['b3'] = np.zeros(output_size)
        self.layers = OrderedDict()
        self.layers['Conv1'] = Convolution(self.params['W1'], self.params['b1'],
                                           conv_param['stride'], conv_param['pad'])
        self.layers['Relu1'] = Relu()
        self.layers['Pool1'] = Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers['Affine1'] = Affine(self.params['W2'], self.params['b2'])
        self.layers['Relu2'] = Relu()
        self.layers['Affine2'] = Affine(self.params['W3'], self.params['b3'])
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last_layer.forward(self.predict(x), t)

    def accuracy(self, x, t, batch_size=100):
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        hits = 0.0
        for i in range(int(x.shape[0] / batch_size)):
            y = self.predict(x[i * batch_size:(i + 1) * batch_size])
            hits += np.sum(np.argmax(y, axis=1) == t[i * batch_size:(i + 1) * batch_size])
        return hits / x.shape[0]

    def numerical_gradient(self, x, t):
        f = lambda w: self.loss(x, t)
        return {key: numerical_gradient(f, self.params[key]) for key in self.params}

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for i, key in enumerate(['Conv1', 'Affine1', 'Affine2']):
            grads['W' + str(i + 1)] = self.layers[key].dW
            grads['b' + str(i + 1)] = self.layers[key].db
        return grads

    def save_params(self, file_name="params.pkl"):
        with open(file_name, 'wb') as f:
            pickle.dump(dict(self.params), f)

    def load_params(self, file_name="params.pkl"):
        with open(file_name, 'rb') as f:
            params = pickle.load(f)
        for key, val in params.items():
            self.params[key] = val
        for i, key in enumerate(['Conv1', 'Affine1', 'Affine2']):
            self.layers[key].W = self.params['W' + str(i + 1)]
            self.layers[key].b = self.params['b' + str(i + 1)]
'''

# ch07's training script, on a slice of MNIST so that the test is quick.
TRAIN_CONVNET = '''
import sys, os
sys.path.append(os.pardir)
import numpy as np
import matplotlib.pyplot as plt
from dataset.mnist import load_mnist
from simple_convnet import SimpleConvNet
from common.trainer import Trainer

(x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)
x_train, t_train = x_train[:600], t_train[:600]
x_test, t_test = x_test[:200], t_test[:200]

max_epochs = 2
network = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                        hidden_size=100, output_size=10, weight_init_std=0.01)
trainer = Trainer(network, x_train, t_train, x_test, t_test,
                  epochs=max_epochs, mini_batch_size=100,
                  optimizer='Adam', optimizer_param={'lr': 0.001},
                  evaluate_sample_num_per_epoch=100)
trainer.train()

network.save_params("params.pkl")
print("Saved Network Parameters!")

x = np.arange(max_epochs)
plt.plot(x, trainer.train_acc_list, marker='o', label='train', markevery=2)
plt.plot(x, trainer.test_acc_list, marker='s', label='test', markevery=2)
plt.legend(loc='lower right')
plt.show()
'''

# ch07's gradient check: the book's numbers are mean absolute differences.
GRADIENT_CHECK = '''
import numpy as np
from simple_convnet import SimpleConvNet

np.random.seed(4)  # ours, not the book's: a draw whose h=1e-4 steps cross no ReLU or pool kink

network = SimpleConvNet(input_dim=(1, 10, 10),
                        conv_param={'filter_num': 10, 'filter_size': 3, 'pad': 0, 'stride': 1},
                        hidden_size=10, output_size=10, weight_init_std=0.01)
X = np.random.rand(100).reshape((1, 1, 10, 10))
T = np.array([1]).reshape((1, 1))
grad_num = network.numerical_gradient(X, T)
grad = network.gradient(X, T)
for key, val in grad_num.items():
    print(key, np.abs(grad_num[key] - grad[key]).mean(), np.abs(grad[key]).mean())
'''

# ch08's DeepConvNet in the book's style (a list of layers, the book's dropout).
DEEP_CONVNET = '''
import sys, os
sys.path.append(os.pardir)
import pickle
import numpy as np
from common.layers import *


class DeepConvNet:
    def __init__(self, hidden_size=50, output_size=10):
        convs = [(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]
        fan_in = np.array([9, 144, 144, 288, 288, 576, 1024, hidden_size])
        scales = np.sqrt(2.0 / fan_in)
        self.params = {}
        channels = 1
        for i, (fn, pad) in enumerate(convs):
            self.params['W' + str(i + 1)] = scales[i] * np.random.randn(fn, channels, 3, 3)
            self.params['b' + str(i + 1)] = np.zeros(fn)
            channels = fn
        self.params['W7'] = scales[6] * np.random.randn(64 * 4 * 4, hidden_size)
        self.params['b7'] = np.zeros(hidden_size)
        self.params['W8'] = scales[7] * np.random.randn(hidden_size, output_size)
        self.params['b8'] = np.zeros(output_size)
        self.layers = []
        for i, (fn, pad) in enumerate(convs):
            self.layers.append(Convolution(self.params['W' + str(i + 1)],
                                           self.params['b' + str(i + 1)], 1, pad))
            self.layers.append(Relu())
            if i % 2:
                self.layers.append(Pooling(pool_h=2, pool_w=2, stride=2))
        self.layers.append(Affine(self.params['W7'], self.params['b7']))
        self.layers.append(Relu())
        self.layers.append(Dropout(0.5))
        self.layers.append(Affine(self.params['W8'], self.params['b8']))
        self.layers.append(Dropout(0.5))
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x, train_flg=False):
        for layer in self.layers:
            x = layer.forward(x, train_flg) if isinstance(layer, Dropout) else layer.forward(x)
        return x

    def load_params(self, file_name="params.pkl"):
        with open(file_name, 'rb') as f:
            params = pickle.load(f)
        for key, val in params.items():
            self.params[key] = val
        for i, idx in enumerate((0, 2, 5, 7, 10, 12, 15, 18)):
            self.layers[idx].W = self.params['W' + str(i + 1)]
            self.layers[idx].b = self.params['b' + str(i + 1)]
'''

# ch08's misclassified_mnist.py, first part: the test accuracy of saved weights.
DEEP_ACCURACY = '''
import sys, os
sys.path.append(os.pardir)
import numpy as np
from deep_convnet import DeepConvNet
from dataset.mnist import load_mnist

(x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)
x_test, t_test = x_test[:200], t_test[:200]
network = DeepConvNet()
network.load_params("deep_convnet_params.pkl")
classified = []
acc = 0.0
for i in range(int(x_test.shape[0] / 100)):
    y = np.argmax(network.predict(x_test[i * 100:(i + 1) * 100], train_flg=False), axis=1)
    classified.append(y)
    acc += np.sum(y == t_test[i * 100:(i + 1) * 100])
print("test accuracy:" + str(acc / x_test.shape[0]))
np.save("classified.npy", np.concatenate(classified))
'''

# What the stand-in modules are made of.
MODULES = '''
import sys, os
sys.path.append(os.pardir)
import numpy as np
from common.layers import *
from common.util import im2col, col2im, smooth_curve, shuffle_dataset
from common.functions import softmax, cross_entropy_error, sigmoid
from common.gradient import numerical_gradient
from common.optimizer import SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam
from common.trainer import Trainer
from common.helper import twice
import fastconv
assert Convolution is fastconv.Convolution and Pooling is fastconv.Pooling
assert Affine is fastconv.Affine and Adam is fastconv.Adam
assert np is not None and callable(im2col) and callable(softmax)
print("helper", twice(21))
print("cwd", os.path.basename(os.getcwd()))
print("argv", sys.argv[1:])
'''


def make_book(root, scripts):
    """A folder laid out as the book's: root/ch07/<script>.py; root/common/helper.py."""
    (root / "common").mkdir(parents=True, exist_ok=True)
    (root / "common" / "helper.py").write_text(
        "from common.functions import sigmoid\n\ndef twice(x):\n    return 2 * x\n")
    for path, text in scripts.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return root


def run_book(script, cwd, mnist_dir, *args):
    env = dict(os.environ, FASTCONV_DATA=str(mnist_dir), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "fastconv.book", *args, str(script)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_train_convnet_runs_unchanged_and_prints_as_the_book(tmp_path, mnist_dir):
    root = make_book(tmp_path / "book", {
        "ch07/simple_convnet.py": SIMPLE_CONVNET,
        "ch07/train_convnet.py": TRAIN_CONVNET})
    done = run_book("ch07/train_convnet.py", root, mnist_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    losses = [l for l in lines if l.startswith("train loss:")]
    assert len(losses) == 12  # 2 epochs of 600 / 100 iterations
    assert all(re.fullmatch(r"train loss:\d+\.\d+(e-?\d+)?", l) for l in losses), losses
    epochs = [l for l in lines if l.startswith("===")]
    assert [re.fullmatch(r"=== epoch:(\d), train acc:(0\.\d+|1\.0), test acc:(0\.\d+|1\.0) ===",
                         l).group(1) for l in epochs[:-1]] == ["1", "2"]
    assert epochs[-1] == "=============== Final Test Accuracy ==============="
    assert re.fullmatch(r"test acc:0\.\d+", lines[lines.index(epochs[-1]) + 1])
    assert lines[-1] == "Saved Network Parameters!"
    # Written where the book's script writes it: in its own folder.
    params = read_book_params(root / "ch07" / "params.pkl")
    assert {k: v.shape for k, v in params.items()} == {
        "W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,),
        "W3": (100, 10), "b3": (10,)}
    assert all(v.dtype == np.float64 for v in params.values())
    # The final accuracy printed is that of the saved weights on the 200 test images.
    net = fastconv.SimpleConvNet(dtype=np.float64)
    net.load_book_params(root / "ch07" / "params.pkl")
    _, (x_test, t_test) = fastconv.load_mnist(flatten=False, data_dir=mnist_dir, download=False)
    printed = float(lines[lines.index(epochs[-1]) + 1].split(":")[1])
    assert printed == net.accuracy(x_test[:200], t_test[:200])


def test_the_books_gradient_check_prints_small_errors(tmp_path, mnist_dir):
    root = make_book(tmp_path / "book", {
        "ch07/simple_convnet.py": SIMPLE_CONVNET,
        "ch07/gradient_check.py": GRADIENT_CHECK})
    done = run_book(root / "ch07" / "gradient_check.py", tmp_path, mnist_dir)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert [r[0] for r in rows] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for name, error, size in rows:
        # float64 throughout, as the book; W1 meets ReLU/max-pooling kinks at h=1e-4.
        assert float(error) < (0.1 if name == "W1" else 1e-6) * float(size), (name, error)


def test_deep_convnet_scripts_give_fastconvs_converted_predictions(tmp_path, mnist_dir):
    root = make_book(tmp_path / "book", {
        "ch08/deep_convnet.py": DEEP_CONVNET,
        "ch08/misclassified_mnist.py": DEEP_ACCURACY})
    rng = np.random.default_rng(0)
    shapes = {k: v.shape for k, v in fastconv.DeepConvNet(seed=0).params.items()}
    params = {k: rng.normal(0, np.sqrt(2 / np.prod(s[1:] if len(s) == 4 else s[:1])), s)
              if k.startswith("W") else rng.normal(0, 0.1, s) for k, s in shapes.items()}
    with open(root / "ch08" / "deep_convnet_params.pkl", "wb") as f:
        pickle.dump(params, f)
    done = run_book(root / "ch08" / "misclassified_mnist.py", tmp_path, mnist_dir)
    assert done.returncode == 0, done.stderr
    book_classes = np.load(root / "ch08" / "classified.npy")
    net = fastconv.DeepConvNet(dtype=np.float64)
    net.load_book_params(root / "ch08" / "deep_convnet_params.pkl")
    _, (x_test, t_test) = fastconv.load_mnist(flatten=False, data_dir=mnist_dir, download=False)
    ours = np.argmax(net.predict(x_test[:200]), axis=1)
    np.testing.assert_array_equal(book_classes, ours)
    assert done.stdout.strip() == f"test accuracy:{np.mean(ours == t_test[:200])}"


def test_modules_are_fastconvs_and_the_books_other_modules_still_load(tmp_path, mnist_dir):
    root = make_book(tmp_path / "book", {"ch07/modules.py": MODULES})
    done = run_book(root / "ch07" / "modules.py", tmp_path, mnist_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["helper 42", "cwd ch07", "argv []"]
    done = run_book(root / "ch07" / "modules.py", tmp_path, mnist_dir, "--no-chdir")
    assert "cwd " + tmp_path.name in done.stdout.splitlines(), done.stderr


def test_a_missing_script_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fastconv.book", str(tmp_path / "nope.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no such script" in done.stderr


def test_run_in_process_restores_the_interpreter(tmp_path, mnist_dir, monkeypatch, capsys):
    monkeypatch.setenv("FASTCONV_DATA", str(mnist_dir))
    root = make_book(tmp_path / "book", {"ch07/modules.py": MODULES})
    path, cwd = list(sys.path), os.getcwd()
    book.run(root / "ch07" / "modules.py", ["--flag"])
    assert capsys.readouterr().out.splitlines() == ["helper 42", "cwd ch07", "argv ['--flag']"]
    assert sys.path == path and os.getcwd() == cwd
    assert not any(name.split(".")[0] in ("common", "dataset") for name in sys.modules)


def test_float32_mode_trains_on_float32_and_keeps_the_books_arrays(tmp_path, mnist_dir):
    root = make_book(tmp_path / "book", {
        "ch07/simple_convnet.py": SIMPLE_CONVNET,
        "ch07/train_convnet.py": TRAIN_CONVNET})
    done = run_book("ch07/train_convnet.py", root, mnist_dir, "--float32")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "Saved Network Parameters!"
    params = read_book_params(root / "ch07" / "params.pkl")
    assert all(v.dtype == np.float64 for v in params.values())  # the book's own arrays
    with book.installed(float32=True) as modules:
        layers = modules["common.layers"]
        w = np.random.default_rng(0).normal(size=(4, 1, 3, 3))
        conv = layers.Convolution(w, np.zeros(4))
        x = np.random.default_rng(1).random((2, 1, 6, 6))
        out = conv.forward(x)
        assert out.dtype == np.float32 and conv.W is w
        np.testing.assert_allclose(out, fastconv.Convolution(w, np.zeros(4)).forward(x),
                                   rtol=1e-5, atol=1e-6)
        conv.backward(np.ones_like(out))
        assert conv.dW.dtype == np.float32 and conv.W is w


# --- the stand-in modules, one by one --------------------------------------------------

def test_books_dropout_scales_at_test_time_and_not_in_training():
    with book.installed() as modules:
        Dropout = modules["common.layers"].Dropout
        np.random.seed(0)
        layer = Dropout(0.3)
        x = np.random.rand(50, 40) + 1
        np.testing.assert_allclose(layer.forward(x, train_flg=False), 0.7 * x)
        y = layer.forward(x, train_flg=True)
        kept = y != 0
        np.testing.assert_array_equal(y[kept], x[kept])  # not scaled up
        assert 0.6 < kept.mean() < 0.8
        np.testing.assert_array_equal(layer.backward(np.ones_like(x)), kept.astype(float))


def test_books_batch_norm_normalises_each_feature_of_4d_input():
    with book.installed() as modules:
        BN = modules["common.layers"].BatchNormalization
        rng = np.random.default_rng(0)
        x = rng.normal(3, 2, (20, 2, 3, 3))
        layer = BN(np.ones(18), np.zeros(18))
        out = layer.forward(x, train_flg=True)
        flat = x.reshape(20, -1)
        expected = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-6)
        np.testing.assert_allclose(out.reshape(20, -1), expected, rtol=1e-9, atol=1e-9)
        assert layer.backward(np.ones_like(out)).shape == x.shape


@pytest.fixture
def books_own_layers(tmp_path):
    """The book's own common/layers.py (with its common/functions.py and util.py),
    imported as ``common`` from a copy while the test runs; sys.modules and
    sys.path are restored afterwards."""
    import shutil
    from pathlib import Path
    source = Path(__file__).resolve().parents[2] / "shared" / "book" / "common"
    if not source.is_dir():
        pytest.fail(f"the book's repository is not at {source.parent}")
    shutil.copytree(source, tmp_path / "book" / "common")
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "common"}
    sys.path.insert(0, str(tmp_path / "book"))
    try:
        import common.layers
        yield common.layers
    finally:
        sys.path.remove(str(tmp_path / "book"))
        for k in [k for k in sys.modules if k.split(".")[0] == "common"]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.mark.parametrize("shape", [(8, 5), (6, 2, 3, 3)])
def test_books_batch_norm_keeps_the_books_running_statistics(books_own_layers, shape):
    """The book starts the running variance at zero (fastconv's own layer at one), so
    the test-mode outputs of a net trained a few steps (ch06/batch_norm_test.py
    evaluates after the first) are the book's only if the stand-in does too."""
    with book.installed() as modules:
        ours_cls = modules["common.layers"].BatchNormalization
    d = int(np.prod(shape[1:]))
    rng = np.random.default_rng(5)
    gamma, beta = rng.uniform(0.5, 2, d), rng.normal(0, 1, d)
    ours = ours_cls(gamma.copy(), beta.copy())
    theirs = books_own_layers.BatchNormalization(gamma.copy(), beta.copy())
    eps = np.finfo(np.float64).eps
    for step in range(4):
        x = rng.normal(2, 3, shape)
        if step:  # a test-mode forward between training steps, as the book's evaluations
            probe = rng.normal(2, 3, shape)
            want = theirs.forward(probe, train_flg=False)
            # a few roundings of each output's terms apart at most
            np.testing.assert_allclose(ours.forward(probe, train_flg=False), want,
                                       rtol=16 * eps, atol=16 * eps)
        want = theirs.forward(x, train_flg=True)
        np.testing.assert_allclose(ours.forward(x, train_flg=True), want, rtol=16 * eps,
                                   atol=16 * eps)
        np.testing.assert_allclose(ours.running_var, theirs.running_var, rtol=16 * eps)
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean, rtol=16 * eps,
                                   atol=16 * eps * 3)


def test_books_functions_util_and_trainer_evaluations():
    with book.installed() as m:
        f, u = m["common.functions"], m["common.util"]
        y = f.softmax(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1000.0]]))
        np.testing.assert_allclose(y.sum(axis=1), 1.0)
        assert f.cross_entropy_error(y, np.array([2, 2])) == pytest.approx(
            -(np.log(y[0, 2] + 1e-7) + np.log(1 + 1e-7)) / 2)
        x = np.random.default_rng(0).random((2, 3, 7, 7))
        np.testing.assert_array_equal(u.im2col(x, 3, 3, 2, 1), fastconv.im2col(x, 3, 3, 2, 1))
        assert u.conv_output_size(28, 5) == 24
        curve = np.full(30, 2.5)
        np.testing.assert_allclose(u.smooth_curve(curve), curve)
        assert len(u.smooth_curve(np.arange(40.0))) == 40

        class Constant:
            params = {"w": np.zeros(1)}

            def gradient(self, x, t):
                return {"w": np.zeros(1)}

            def loss(self, x, t):
                return 0.5

            def accuracy(self, x, t):
                return 1.0

        xs = np.zeros((130, 1))
        trainer = m["common.trainer"].Trainer(Constant(), xs, np.zeros(130, int), xs,
                                              np.zeros(130, int), epochs=3,
                                              mini_batch_size=20, verbose=False)
        trainer.train()
        # 130 / 20 = 6.5 iterations an epoch: 19 steps; evaluated at 0, 7, 13 (the book
        # only at 0, as 6.5 never divides an iteration count).
        assert trainer.current_iter == 19 and trainer.current_epoch == 3
        assert len(trainer.train_acc_list) == 3 and len(trainer.train_loss_list) == 19


# --- where the stand-in finds MNIST: the reader's book folder first (issue 21, item 2) ---

GZ_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")  # the book's key_file
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # ../shared/data/mnist

SHOW_MNIST = '''
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, flatten=False,
                                                  one_hot_label=True)
print(x_train.shape, x_train.dtype, float(x_train.max()), t_train.shape)
print(np.bincount(t_test.argmax(axis=1)).tolist())
'''


def offline_env(tmp_path):
    """Only the book's folder can serve MNIST: no FASTCONV_DATA, fastconv's cache an
    empty folder, and every proxy a closed port on this machine, so that a download
    attempt fails at once without reaching the network."""
    env = {k: v for k, v in os.environ.items()
           if k != "FASTCONV_DATA" and "proxy" not in k.lower()}
    dead = "http://127.0.0.1:9"
    env.update(MPLBACKEND="Agg", XDG_CACHE_HOME=str(tmp_path / "cache"),
               MPLCONFIGDIR=str(tmp_path / "mplconfig"), http_proxy=dead, https_proxy=dead,
               HTTP_PROXY=dead, HTTPS_PROXY=dead)
    return env


def book_dataset(root, mnist_dir, gz=GZ_NAMES, pkl=None):
    """root/dataset as a reader's: links to some of the real .gz files, and pkl's bytes
    (or the file it names) as mnist.pkl."""
    folder = root / "dataset"
    folder.mkdir(parents=True, exist_ok=True)
    for name in gz:
        (folder / name).symlink_to(mnist_dir / name)
    if isinstance(pkl, bytes):
        (folder / "mnist.pkl").write_bytes(pkl)
    elif pkl is not None:
        (folder / "mnist.pkl").symlink_to(pkl)
    return root


@pytest.fixture
def no_download(tmp_path, monkeypatch):
    """In this process: fastconv's cache an empty folder and no mirror to download from,
    so that a miss is an error here, never a download."""
    from fastconv.io import mnist as datasets
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.setattr(datasets, "MIRRORS", ())


def stand_in_mnist(root, **flags):
    with book.installed(root) as modules:
        return modules["dataset.mnist"].load_mnist(**flags)


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.fixture(scope="module")
def raw_mnist(mnist_dir):
    """The book's pickled dict: uint8 images (N, 784) and uint8 labels."""
    (x, t), (xt, tt) = fastconv.load_mnist(normalize=False, data_dir=mnist_dir, download=False)
    return {"train_img": x, "train_label": t, "test_img": xt, "test_label": tt}


def test_a_readers_book_folder_serves_mnist(tmp_path, mnist_dir):
    """The issue's case: the four .gz files in the book's dataset/, FASTCONV_DATA unset."""
    root = make_book(tmp_path / "book", {"ch03/show.py": SHOW_MNIST})
    (root / "dataset").mkdir()
    for name in GZ_NAMES:
        (root / "dataset" / name).write_bytes((mnist_dir / name).read_bytes())
    env = offline_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "fastconv.book", "ch03/show.py"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["(60000, 1, 28, 28) float32 1.0 (60000, 10)",
                                        str(TEST_COUNTS)]
    assert not (tmp_path / "cache" / "fastconv").exists()  # nothing fetched or cached


def _idx_labels(path, labels):
    path.write_bytes((0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big")
                     + labels.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz, pkl, served_by", [
    (GZ_NAMES, True, "gz"),           # the .gz files first, the pickle unread
    ((), True, "pkl"),                # else the book's pickle
    (GZ_NAMES[:3], True, "pkl"),      # three .gz files are not a data set
    ((), False, "FASTCONV_DATA"),     # else the usual places
    (GZ_NAMES[1:], False, "FASTCONV_DATA"),
])
def test_the_books_folder_comes_first_then_its_pickle_then_fastconv_data(
        tmp_path, mnist_dir, raw_mnist, monkeypatch, no_download, gz, pkl, served_by):
    # Each source holds other labels, so the labels say which one served.
    shift = {"gz": 0, "FASTCONV_DATA": 1, "pkl": 2}
    data = tmp_path / "fastconv_data"
    data.mkdir()
    for name in GZ_NAMES[::2]:
        (data / name).symlink_to(mnist_dir / name)
    _idx_labels(data / "train-labels-idx1-ubyte", (raw_mnist["train_label"] + 1) % 10)
    _idx_labels(data / "t10k-labels-idx1-ubyte", (raw_mnist["test_label"] + 1) % 10)
    monkeypatch.setenv("FASTCONV_DATA", str(data))
    content = None
    if pkl:
        shifted = dict(raw_mnist, train_label=(raw_mnist["train_label"] + 2) % 10,
                       test_label=(raw_mnist["test_label"] + 2) % 10)
        content = pickle.dumps(shifted, -1)  # as the book's init_mnist writes it
    root = book_dataset(tmp_path / "book", mnist_dir, gz, content)
    (x, t), (xt, tt) = stand_in_mnist(root, normalize=False)
    k = shift[served_by]
    np.testing.assert_array_equal(t, (raw_mnist["train_label"] + k) % 10)
    np.testing.assert_array_equal(tt, (raw_mnist["test_label"] + k) % 10)
    np.testing.assert_array_equal(x, raw_mnist["train_img"])
    np.testing.assert_array_equal(xt, raw_mnist["test_img"])


@pytest.fixture(scope="module")
def books_own_loader(tmp_path_factory, mnist_dir):
    """The book's own dataset/mnist.py, imported from a copy whose folder holds links to
    the four .gz files; its init_mnist has written its mnist.pkl there."""
    import contextlib
    import importlib.util
    import io
    from pathlib import Path
    source = Path(__file__).resolve().parents[2] / "shared" / "book" / "dataset" / "mnist.py"
    if not source.is_file():
        pytest.fail(f"the book's repository is not at {source.parents[1]}")
    root = book_dataset(tmp_path_factory.mktemp("books_loader"), mnist_dir)
    (root / "dataset" / "mnist.py").write_text(source.read_text(encoding="utf-8"),
                                               encoding="utf-8")
    spec = importlib.util.spec_from_file_location("fastconv_tests_books_mnist",
                                                  root / "dataset" / "mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with contextlib.redirect_stdout(io.StringIO()):
        module.init_mnist()  # reads the .gz files (nothing to download) and pickles them
    return module, root / "dataset" / "mnist.pkl"


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot_label", [False, True])
def test_the_stand_in_returns_what_the_books_loader_returns(
        tmp_path, mnist_dir, books_own_loader, no_download, normalize, flatten,
        one_hot_label):
    loader, books_pickle = books_own_loader
    flags = dict(normalize=normalize, flatten=flatten, one_hot_label=one_hot_label)
    theirs = loader.load_mnist(**flags)
    from_gz = stand_in_mnist(book_dataset(tmp_path / "gz", mnist_dir), **flags)
    # The pickle the book's own init_mnist wrote, through the restricted unpickler.
    from_pkl = stand_in_mnist(book_dataset(tmp_path / "pkl", mnist_dir, (), books_pickle),
                              **flags)
    for ours in (from_gz, from_pkl):
        for (x, t), (bx, bt) in zip(ours, theirs):
            assert (x.dtype, x.shape) == (bx.dtype, bx.shape)  # float32 / uint8, as the book
            np.testing.assert_array_equal(x, bx)
            assert t.shape == bt.shape
            # One-hot rows are float32 in fastconv (float64 in the book): same values.
            assert t.dtype == (np.float32 if one_hot_label else bt.dtype)
            np.testing.assert_array_equal(t, bt)


def test_a_pickle_in_the_books_folder_that_would_run_a_command_is_refused(
        tmp_path, no_download):
    from fastconv.io.mnist import DatasetError
    marker = tmp_path / "MARKER"
    content = pickle.dumps({"train_img": RunsACommand(marker)}, -1)
    root = make_book(tmp_path / "book", {"ch03/show.py": SHOW_MNIST})
    book_dataset(root, None, (), content)
    with pytest.raises(DatasetError, match=r"mnist\.pkl.*refused: the pickle refers to "
                                           r"(posix|os|nt)\.system"):
        stand_in_mnist(root)
    assert not marker.exists()
    done = subprocess.run([sys.executable, "-m", "fastconv.book", "ch03/show.py"], cwd=root,
                          env=offline_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "refused" in done.stderr, done.stderr
    assert done.stderr.startswith("python -m fastconv.book: error: ")
    assert not marker.exists()


def _bad_pickles():
    zeros = {"train_img": np.zeros((60000, 784), np.uint8),
             "train_label": np.zeros(60000, np.uint8),
             "test_img": np.zeros((10000, 784), np.uint8),
             "test_label": np.zeros(10000, np.uint8)}
    label_10 = dict(zeros, test_label=np.full(10000, 10, np.uint8))
    return [
        ("truncated", pickle.dumps(zeros, -1)[:-100], "not a readable pickle"),
        ("empty", b"", "not a readable pickle"),
        ("a list", pickle.dumps([zeros["test_label"]], -1), "holds a list"),
        ("no test labels", pickle.dumps({k: v for k, v in zeros.items() if k != "test_label"},
                                        -1), "test_label"),
        ("float images", pickle.dumps(dict(zeros, train_img=np.zeros((60000, 784))), -1),
         "uint8"),
        ("too few images", pickle.dumps(dict(zeros, train_img=zeros["train_img"][:100]), -1),
         r"\(60000, 784\)"),
        ("label 10", pickle.dumps(label_10, -1), r"label 10 .*outside 0\.\.9"),
    ]


@pytest.mark.parametrize("what, content, message", _bad_pickles(),
                         ids=[case[0] for case in _bad_pickles()])
def test_a_broken_pickle_in_the_books_folder_is_one_clear_line(
        tmp_path, no_download, what, content, message):
    from fastconv.io.mnist import DatasetError
    root = book_dataset(tmp_path / "book", None, (), content)
    with pytest.raises(DatasetError, match=message) as caught:
        stand_in_mnist(root)
    assert "\n" not in str(caught.value) and "mnist.pkl" in str(caught.value)


def test_a_truncated_gz_in_the_books_folder_is_one_clear_line(tmp_path, mnist_dir,
                                                              no_download):
    from fastconv.io.mnist import DatasetError
    root = make_book(tmp_path / "book", {"ch03/show.py": SHOW_MNIST})
    book_dataset(root, mnist_dir, GZ_NAMES[:3])
    whole = (mnist_dir / GZ_NAMES[3]).read_bytes()
    (root / "dataset" / GZ_NAMES[3]).write_bytes(whole[:len(whole) // 2])
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz.*truncated") as caught:
        stand_in_mnist(root)
    assert "\n" not in str(caught.value)
    done = subprocess.run([sys.executable, "-m", "fastconv.book", "ch03/show.py"], cwd=root,
                          env=offline_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "t10k-labels-idx1-ubyte.gz" in done.stderr, \
        done.stderr
