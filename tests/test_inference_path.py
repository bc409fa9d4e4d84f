"""The test-time path: Net.predict keeps nothing for backward, yet computes what the
training forward computes, and a pending backward is not disturbed by it; max pooling
without indices; the products that run on one BLAS thread."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import bruteforce as bf
from fastconv import _runtime
from fastconv import functional as F
from fastconv.nn import DeepConvNet, LeNet, Net, SimpleConvNet, blocked_pass

# Small shapes of each model: every conv plan, max pooling, dropout, ReLU after pooling.
MODELS = {
    "SimpleConvNet": lambda dtype: SimpleConvNet(dtype=dtype, seed=1),
    "DeepConvNet": lambda dtype: DeepConvNet(dtype=dtype, seed=2),
    "LeNet": lambda dtype: LeNet(dtype=dtype, seed=3),
    # Layers with no test-time shortcut of their own.
    "batchnorm-lrn-sigmoid": lambda dtype: Net((1, 28, 28), [
        {"type": "conv", "filter_num": 6, "filter_size": 3, "pad": 1},
        {"type": "batchnorm"}, {"type": "relu"}, {"type": "pool"}, {"type": "lrn", "size": 3},
        {"type": "affine", "output_size": 12}, {"type": "sigmoid"}, {"type": "dropout"},
        {"type": "affine", "output_size": 10}], dtype=dtype, seed=4),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(MODELS))
def test_predict_equals_the_training_forward_in_test_mode(backend, name, dtype):
    net = MODELS[name](dtype)
    x = np.random.default_rng(0).random((6, 1, 28, 28)).astype(dtype)
    # Layer by layer in NCHW; the pass in the blocked layout, which may run a
    # convolution on other kernels than training does, is compared with this
    # path in tests/test_blocked_pass.py.
    with blocked_pass.switched_off():
        fast = net.predict(x)
    kept = net._forward(net._input(x), train_flg=False, keep=True)
    assert fast.dtype == dtype and fast.shape == (6, 10)
    # The same kernels in the same order: bit for bit.
    assert fast.tobytes() == kept.tobytes()


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_between_loss_and_gradient_changes_nothing(backend, name):
    rng = np.random.default_rng(1)
    x, other = rng.random((2, 4, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 4)
    net_a, net_b = MODELS[name](np.float32), MODELS[name](np.float32)
    for net in (net_a, net_b):
        for layer in net.layers.values():  # the same dropout masks in both
            if hasattr(layer, "rng"):
                layer.rng = np.random.default_rng(5)
    net_a.loss(x, t)
    net_b.loss(x, t)
    net_b.predict(other)  # test mode on other images, between forward and backward
    grads = []
    for net in (net_a, net_b):
        dout = net.last_layer.backward(1)
        for layer in reversed(net._sequence):
            dout = layer.backward(dout)
            if dout is None:
                break
        grads.append({k: getattr(layer, attr).copy()
                      for k, (layer, attr) in net._grad_of.items()})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        assert grads[0][k].tobytes() == grads[1][k].tobytes(), k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [(2, 2, 0), (3, 2, 1), (2, 1, 0)], ids=str)
def test_max_pool_without_indices_gives_the_same_values(backend, dtype, window):
    k, s, p = window
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 9, 8)).astype(dtype)
    x[0, 0, 0, :2] = np.nan                       # NaN wins its windows
    x[1, 1] = np.round(x[1, 1])                   # many ties
    x[2, 2, :3, :3] = -np.inf
    values, _ = F.max_pool2d(x, k, s, p, return_indices=True)
    alone = F.max_pool2d(x, k, s, p)
    assert alone.dtype == dtype
    np.testing.assert_array_equal(alone, values)


def _blas_threads():
    from threadpoolctl import threadpool_info
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_single_thread_is_scoped_reentrant_and_thread_safe():
    before = _blas_threads()
    if not before:
        pytest.skip("numpy's BLAS is not one threadpoolctl can control")
    with _runtime.blas_single_thread():
        assert _blas_threads() == [1] * len(before)
        with _runtime.blas_single_thread():
            assert _blas_threads() == [1] * len(before)
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before
    # Eight threads entering and leaving in every interleaving leave it as it was.
    barrier = threading.Barrier(8)
    errors = []

    def worker():
        try:
            barrier.wait()
            for _ in range(200):
                with _runtime.blas_single_thread():
                    np.ones((8, 8)) @ np.ones((8, 8))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert _blas_threads() == before


@pytest.mark.parametrize("shape", [((3, 4), (4, 5)), ((300, 600), (600, 200))], ids=str)
def test_matmul_is_numpys_product(any_backend, shape):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(shape[0]), rng.standard_normal(shape[1])
    before = _blas_threads()
    # Both sum a.shape[1] products (BLAS may block them differently on one thread).
    bf.assert_sums_agree(F.matmul(a, b), a @ b, np.abs(a) @ np.abs(b), a.shape[1])
    out = np.empty((shape[0][0], shape[1][1]))
    assert F.matmul(a, b, out=out) is out
    assert _blas_threads() == before


@pytest.mark.parametrize("name", ["SimpleConvNet", "DeepConvNet"])
def test_predict_in_chunks_and_accuracy_batches_agree(backend, name):
    net = MODELS[name](np.float32)
    rng = np.random.default_rng(3)
    x = rng.random((11, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 11)
    whole = net.predict(x)
    bound = bf.NetBound(net, x)  # BLAS blocks each batch size differently
    assert net._test_chunk >= 100  # a few hundred samples of 28x28 maps per chunk
    net._test_chunk = 4  # 4 + 4 + 3
    chunked = net.predict(x)
    assert chunked.shape == whole.shape and chunked.dtype == whole.dtype
    bound.check(chunked, whole, what="chunks of 4 against the whole batch")
    per_sample = np.concatenate([net.predict(x[i:i + 1]) for i in range(len(x))])
    bound.check(per_sample, whole, what="one sample at a time against the whole batch")
    expected = float(np.mean(np.argmax(whole, axis=1) == t))
    # Every batching picks the same top class where no sample's two best scores lie
    # within rounding of each other, which holds here: so accuracies are equal exactly.
    top2 = np.sort(bound.exact, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 2 * bound.of(np.float32).max(axis=1))
    assert net.accuracy(x, t) == net.accuracy(x, t, batch_size=3) == expected


FORK_WHILE_HELD = """
import os, threading
from threadpoolctl import threadpool_info
from fastconv import _runtime as R

def blas():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

before = blas()
inside, release = threading.Event(), threading.Event()

def hold():
    with R.blas_single_thread():
        inside.set()
        release.wait()

holder = threading.Thread(target=hold)
holder.start()
inside.wait()
pid = os.fork()  # another thread holds the lock and BLAS is at one thread
if pid == 0:
    ok = blas() == before
    with R.blas_single_thread():
        ok = ok and blas() == [1] * len(before)
    ok = ok and blas() == before
    os._exit(0 if ok else 3)
release.set()
holder.join()
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), blas() == before, len(before))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_blas_single_thread_in_a_child_forked_while_held():
    proc = subprocess.run([sys.executable, "-c", FORK_WHILE_HELD], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    status, parent_restored, libraries = proc.stdout.split()
    if libraries == "0":
        pytest.skip("numpy's BLAS is not one threadpoolctl can control")
    assert (status, parent_restored) == ("0", "True"), proc.stdout


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_from_python_threads_at_once_gives_each_its_own_answer(backend, name):
    # One net, four Python threads predicting different images at once: each
    # must get its own images' scores (one scratch buffer per layer made
    # DeepConvNet return other threads' scores in 38 of 80 calls). Within the
    # rounding bound, not bit for bit: under some OpenBLAS kernel families
    # (Haswell) a product's bits depend on how many BLAS threads it got, and
    # concurrent calls change that.
    import copy
    import pickle
    net = MODELS[name](np.float32)
    xs = [np.random.default_rng(i).random((5, 1, 28, 28)).astype(np.float32) for i in range(4)]
    want = [net.predict(x) for x in xs]
    bounds = [bf.NetBound(net, x) for x in xs]
    barrier = threading.Barrier(4)
    got, errors = [[] for _ in xs], []

    def worker(i):
        try:
            barrier.wait()
            for _ in range(5):
                got[i].append(net.predict(xs[i]))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for i, scores in enumerate(got):
        assert len(scores) == 5
        for s in scores:
            bounds[i].check(s, want[i], what=f"thread {i} against its images alone")
    # Copies and pickles leave the scratch behind and predict the same.
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert np.array_equal(twin.predict(xs[0]), want[0])
