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
from fastconv.book_params import read_book_params

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
