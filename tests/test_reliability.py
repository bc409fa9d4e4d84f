"""The reliability issue's probes, kept as tests: each call here once hung, read
past a buffer, gave a silently wrong answer or an obscure error."""
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bruteforce as bf
import fastconv
from fastconv import functional as F
from fastconv._testing import use_conv_plan
from fastconv.nn import Convolution
from fastconv.nn import Net, SimpleConvNet
from fastconv.train.trainer import Trainer

needs_c = pytest.mark.skipif("c" not in fastconv.available_backends(),
                             reason="the C extension is not built")


# --- 1. a fork after another library's parallel region ---------------------------

_FORK_AFTER_FOREIGN_OPENMP = """
import ctypes, multiprocessing, sys
import numpy as np
import fastconv

def foreign_parallel_region():
    # What torch (or any library on the same libgomp) does: a parallel
    # region fastconv never sees. {how}
{body}

def work(seed):
    x = np.random.default_rng(seed).random((64, 8, 32, 32))
    col = fastconv.im2col(x, 3, 3, pad=1)
    return fastconv.get_num_threads(), float(col.sum())

if __name__ == "__main__":
    foreign_parallel_region()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(work, [0, 1])
    want = [float(fastconv.im2col(np.random.default_rng(s).random((64, 8, 32, 32)),
                                  3, 3, pad=1).sum()) for s in (0, 1)]
    assert [r[1] for r in results] == want, (results, want)
    print("threads in children:", sorted({{r[0] for r in results}}))
"""


_GOMP_STANDIN = """
        try:
            gomp = ctypes.CDLL("libgomp.so.1")
        except OSError:  # no system libgomp (the arm64 test root): the wheel's own copy
            import fastconv
            with open("/proc/self/maps") as maps:
                gomp = ctypes.CDLL(next(line.split()[-1] for line in maps if "libgomp" in line))
        counter = []
        fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: counter.append(1))
        gomp.GOMP_parallel(fn, None, 2, 0)
        assert len(counter) == 2, counter
"""
_TORCH = """
        import torch
        torch.set_num_threads(2)
        torch.relu(torch.rand(2000, 2000))
"""


@needs_c
@pytest.mark.skipif(sys.platform != "linux", reason="libgomp and fork: Linux")
@pytest.mark.parametrize("neighbour", ["libgomp stand-in", "torch"])
def test_fork_after_another_librarys_parallel_region_does_not_hang(neighbour):
    if neighbour == "torch":
        pytest.importorskip("torch")
        how, body = "Here torch itself.", _TORCH
    else:
        how, body = "Here a ctypes call into libgomp.", _GOMP_STANDIN
    body = textwrap.indent(textwrap.dedent(body).strip(), " " * 4)
    code = _FORK_AFTER_FOREIGN_OPENMP.format(how=how, body=body)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2"})
    except subprocess.TimeoutExpired:
        pytest.fail("a fork-started child hung in its first fastconv call")
    assert proc.returncode == 0, proc.stderr
    assert "threads in children: [1]" in proc.stdout


# --- 2. every path of an op validates alike -------------------------------------

ZERO_KERNEL_CALLS = {
    "conv2d": lambda x, w: F.conv2d(x, w),
    "conv2d strided": lambda x, w: F.conv2d(x, w, stride=2),
    "conv2d_weight_grad": lambda x, w: F.conv2d_weight_grad(
        x, np.ones((3, 4, 3, 6), x.dtype), w.shape),
    "conv2d_input_grad": lambda x, w: F.conv2d_input_grad(
        np.ones((3, 4, 3, 6), x.dtype), w, x.shape),
}


@pytest.mark.parametrize("backend_name", ["c", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("call", list(ZERO_KERNEL_CALLS), ids=list(ZERO_KERNEL_CALLS))
@pytest.mark.parametrize("kernel", [(4, 1, 0, 0), (4, 1, 0, 3), (0, 1, 3, 3), (4, 0, 3, 3)])
def test_empty_kernels_are_refused_on_every_path(backend_name, dtype, call, kernel):
    if backend_name not in fastconv.available_backends():
        pytest.skip("the C extension is not built")
    x = np.ones((3, 1, 3, 6), dtype)
    w = np.zeros(kernel, dtype)
    with fastconv.use_backend(backend_name), pytest.raises(ValueError, match=r"must have F"):
        ZERO_KERNEL_CALLS[call](x, w)


# --- 3, 4. no output may overlap an input -----------------------------------------

@pytest.mark.parametrize("backend_name", ["c", "numpy"])
def test_out_overlapping_the_input_is_refused(backend_name):
    if backend_name not in fastconv.available_backends():
        pytest.skip("the C extension is not built")
    buf = np.random.default_rng(0).random(100)
    x = buf[:16].reshape(1, 1, 4, 4)
    with fastconv.use_backend(backend_name):
        with pytest.raises(ValueError, match="may share memory"):
            fastconv.im2col(x, 2, 2, out=buf[:36].reshape(9, 4))
        with pytest.raises(ValueError, match="may share memory"):
            fastconv.unfold(x, 2, out=buf[10:46].reshape(1, 4, 9))
        # A separate buffer of the same shape is still fine, and right.
        col = fastconv.im2col(x, 2, 2, out=np.empty((9, 4)))
        np.testing.assert_array_equal(col, fastconv.im2col(x.copy(), 2, 2))


@pytest.mark.parametrize("backend_name", ["c", "numpy"])
@pytest.mark.parametrize("pair", [("param", "grad"), ("param", "m"), ("grad", "v"),
                                  ("m", "v"), ("grad", "m")])
def test_adam_refuses_any_two_overlapping_arrays(backend_name, pair):
    if backend_name not in fastconv.available_backends():
        pytest.skip("the C extension is not built")
    rng = np.random.default_rng(1)
    arrays = {k: rng.random(1000) for k in ("param", "grad", "m", "v")}
    arrays[pair[1]] = arrays[pair[0]][::-1] if pair[1] != "param" else arrays[pair[0]]
    with fastconv.use_backend(backend_name), pytest.raises(ValueError, match="share memory"):
        F.adam_update(arrays["param"], arrays["grad"], arrays["m"], arrays["v"], 0.01)


# --- 5. thread counts libgomp cannot create ----------------------------------------

def test_absurd_thread_counts_are_refused():
    limit = fastconv._runtime.max_threads_allowed()
    with pytest.raises(ValueError, match="at most"):
        fastconv.set_num_threads(20000 if limit < 20000 else limit + 1)
    with fastconv.use_num_threads(min(limit, 4)):
        assert fastconv.get_num_threads() == (min(limit, 4) if fastconv.openmp_enabled() else 1)


# --- 6. backward does not see the caller's later writes -----------------------------

@pytest.mark.parametrize("plan", ["direct", "per_image", "rows"])
def test_convolution_gradients_ignore_later_writes_to_x(plan):
    if plan == "direct" and "c" not in fastconv.available_backends():
        pytest.skip("the C extension is not built")
    rng = np.random.default_rng(2)
    x = rng.random((2, 3, 16, 16), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 4, 16, 16)).astype(np.float32)
    results = []
    for scribble in (False, True):
        layer = Convolution(w, np.zeros(4, np.float32), 1, 1)
        xs = x.copy()
        with fastconv.use_backend("c" if plan == "direct" else "numpy"), use_conv_plan(plan):
            layer.forward(xs)
        assert layer.plan == plan
        if scribble:
            xs[...] = 1e6
        results.append((layer.backward(g), layer.dW))
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][0], results[1][0])


# --- 11. the gradient functions check their shape arguments --------------------------

X = np.ones((2, 3, 5, 5))
D = np.ones((2, 4, 3, 3))


@pytest.mark.parametrize("call,exc,pattern", [
    (lambda: F.conv2d_weight_grad(X, D, "4333"), TypeError, "weight_shape must be a tuple"),
    (lambda: F.conv2d_weight_grad(X, D, (4, 3, 3.0, 3)), TypeError, "got an entry 3.0"),
    (lambda: F.conv2d_weight_grad(X, D, (4, 3, 0, 3)), ValueError, "must have F >= 1"),
    (lambda: F.conv2d_weight_grad(X, D, (4, 3, -3, 3)), ValueError, "must have F >= 1"),
    (lambda: F.conv2d_weight_grad(X, D, (4, 3, 3)), ValueError, "must have 4 entries"),
    (lambda: F.conv2d_input_grad(D, np.ones((4, 3, 3, 3)), (2, 3, 5.0, 5)), TypeError,
     "got an entry 5.0"),
    (lambda: F.conv2d_input_grad(D, np.ones((4, 3, 3, 3)), (2, 3, -5, 5)), ValueError,
     "input_shape must have N >= 0"),
])
def test_gradient_shape_arguments_are_validated(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# --- 12. models and trainer: clear errors, not arithmetic ones -----------------------

@pytest.mark.parametrize("spec,exc", [
    ({"type": "conv", "filter_num": 0, "filter_size": 3}, ValueError),
    ({"type": "conv", "filter_num": 4, "filter_size": 0}, ValueError),
    ({"type": "conv", "filter_num": 4, "filter_size": 3, "stride": 0}, ValueError),
    ({"type": "conv", "filter_num": 4.5, "filter_size": 3}, TypeError),
    ({"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 0}, ValueError),
    ({"type": "affine", "output_size": 0}, ValueError),
])
def test_bad_layer_specs_raise_clear_errors(spec, exc):
    with pytest.raises(exc, match="Conv1|Pool1|Affine1"):
        Net((1, 8, 8), [spec])


@pytest.mark.parametrize("input_dim,exc", [((0, 28, 28), ValueError), ((1, 28.5, 28), TypeError),
                                           ((1, 28), ValueError)])
def test_bad_input_dim_is_refused(input_dim, exc):
    with pytest.raises(exc, match="input_dim"):
        SimpleConvNet(input_dim=input_dim)


@pytest.mark.parametrize("kwargs,exc", [({"mini_batch_size": math.inf}, ValueError),
                                        ({"mini_batch_size": "10"}, TypeError),
                                        ({"epochs": math.inf}, ValueError)])
def test_trainer_refuses_infinite_sizes(kwargs, exc):
    x, t = np.zeros((4, 1, 28, 28), np.float32), np.zeros(4, int)
    with pytest.raises(exc):
        Trainer(SimpleConvNet(seed=0), x, t, x, t, verbose=False, **kwargs)


def test_loss_of_an_empty_batch_is_an_error_not_nan():
    net = SimpleConvNet(seed=0)
    with pytest.raises(ValueError, match="no samples"):
        net.loss(np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, int))


# --- the book's spellings (issue 11, items 5 and 7) ---------------------------------

def test_scalar_bias_as_the_book_passes_it():
    # apply_filter.py builds Convolution(w, 0); Affine takes one the same way.
    rng = np.random.default_rng(5)
    w = rng.standard_normal((1, 1, 3, 3))
    x = rng.standard_normal((1, 1, 6, 6))
    for backend_name in fastconv.available_backends():
        with fastconv.use_backend(backend_name):
            out = Convolution(w, 0).forward(x)
            # The scalar becomes the same bias array: the same kernel on the same values.
            np.testing.assert_array_equal(out, Convolution(w, np.zeros(1)).forward(x))
            small = Convolution(w.astype(np.float32), 0.5).forward(x[:, :, :3, :3])
            assert small.shape == (1, 1, 1, 1) and small.dtype == np.float32
    from fastconv.nn import Affine
    a = rng.standard_normal((4, 3))
    # Four products and the bias, each side rounded in its own order.
    got = Affine(a, 2.0).forward(np.ones((2, 4)))
    bf.assert_sums_agree(got, np.ones((2, 4)) @ a + 2, np.ones((2, 4)) @ np.abs(a) + 2, 5)


def test_im2col_and_col2im_take_the_books_argument_names():
    x = np.arange(2 * 3 * 5 * 5, dtype=np.float64).reshape(2, 3, 5, 5)
    col = fastconv.im2col(input_data=x, filter_h=3, filter_w=2, stride=2, pad=1)
    np.testing.assert_array_equal(col, fastconv.im2col(x, 3, 2, 2, 1))
    back = fastconv.col2im(col=col, input_shape=x.shape, filter_h=3, filter_w=2, stride=2,
                           pad=1)
    np.testing.assert_array_equal(back, fastconv.col2im(col, x.shape, 3, 2, 2, 1))
