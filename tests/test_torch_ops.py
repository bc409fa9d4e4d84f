"""The ops against torch.nn.functional, when PyTorch is installed."""
import numpy as np
import pytest

import fastconv
import bruteforce as bf

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def on_magnitudes(fn, *args):
    """fn on |float arrays| in float64 (NumPy backend): the scale of a rounding bound."""
    args = [np.abs(a.astype(np.float64)) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
            else a for a in args]
    with fastconv.use_backend("numpy"):
        return fn(*args)


def _terms(kernel):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return kh * kw

CASES = [  # kernel, dilation, padding, stride
    (3, 1, 1, 1), ((2, 3), (2, 1), (1, 0), (2, 1)), (1, 1, 0, 2), ((4, 2), 1, (2, 1), (1, 3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,dilation,padding,stride", CASES)
def test_unfold_fold(backend, dtype, kernel, dilation, padding, stride):
    x = np.random.default_rng(0).standard_normal((2, 3, 10, 9)).astype(dtype)
    got = fastconv.unfold(x, kernel, dilation, padding, stride)
    want = TF.unfold(torch.from_numpy(x), kernel, dilation, padding, stride).numpy()
    np.testing.assert_array_equal(got, want)
    y = np.random.default_rng(1).standard_normal(got.shape).astype(dtype)
    got = fastconv.fold(y, (10, 9), kernel, dilation, padding, stride)
    want = TF.fold(torch.from_numpy(y), (10, 9), kernel, dilation, padding, stride).numpy()
    # Sums of at most kh*kw blocks, added in torch's order and in ours.
    bf.assert_sums_agree(got, want, on_magnitudes(fastconv.fold, y, (10, 9), kernel, dilation,
                                                  padding, stride), _terms(kernel))


POOLS = [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 1)), (2, 1, 1)]


@pytest.mark.parametrize("kernel,stride,padding", POOLS)
def test_max_pool2d_with_indices(backend, kernel, stride, padding):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 8))
    out, idx = fastconv.max_pool2d(x, kernel, stride, padding, return_indices=True)
    t = torch.from_numpy(x).requires_grad_()
    t_out, t_idx = TF.max_pool2d(t, kernel, stride, padding, return_indices=True)
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())
    dout = rng.standard_normal(out.shape)
    t_out.backward(torch.from_numpy(dout))
    # A cell that wins several overlapping windows sums their gradients (<= kh*kw).
    bf.assert_sums_agree(fastconv.max_pool2d_backward(dout, idx, x.shape), t.grad.numpy(),
                         on_magnitudes(fastconv.max_pool2d_backward, dout, idx, x.shape),
                         _terms(kernel))


@pytest.mark.parametrize("kernel,stride,padding", POOLS)
def test_avg_pool2d(backend, kernel, stride, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8))
    t = torch.from_numpy(x).requires_grad_()
    t_out = TF.avg_pool2d(t, kernel, stride, padding)
    out = fastconv.avg_pool2d(x, kernel, stride, padding)
    # kh*kw - 1 additions and a division (or a reciprocal and a product).
    bf.assert_sums_agree(out, t_out.detach().numpy(),
                         on_magnitudes(fastconv.avg_pool2d, x, kernel, stride, padding),
                         _terms(kernel) + 1)
    dout = rng.standard_normal(out.shape)
    t_out.backward(torch.from_numpy(dout))
    got = fastconv.avg_pool2d_backward(dout, x.shape, kernel, stride, padding)
    bf.assert_sums_agree(got, t.grad.numpy(),
                         on_magnitudes(fastconv.avg_pool2d_backward, dout, x.shape, kernel,
                                       stride, padding), _terms(kernel) + 1)


def test_max_pool2d_nan_differs_from_torch_only_in_which_nan(backend):
    # Both propagate NaN and point at a NaN cell. fastconv's contract (DESIGN.md)
    # picks the first NaN in row-major order; PyTorch's CPU kernel keeps
    # updating on every NaN and so reports the last one.
    x = np.array([[[[1.0, np.nan], [np.nan, 2.0]]]])
    out, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    t_out, t_idx = TF.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    assert np.isnan(out).all() and torch.isnan(t_out).all()
    assert idx.item() == 1
    assert np.isnan(x.ravel()[t_idx.item()])
