"""conv2d and its two gradients: the direct kernel (C backend, float32 and float64, stride 1)
against brute-force loops, the NumPy backend, adjoint identities, PyTorch, both of
its instruction-set builds, and every thread count."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import functional as F
from fastconv.nn import Convolution
import bruteforce as bf
from conftest import running_on
from fastconv._testing import last_team_size
from fastconv._testing import cap_isa, use_conv_plan

try:
    from fastconv import _ext
except ImportError:  # pragma: no cover - the NumPy-only install
    _ext = None

needs_direct = pytest.mark.skipif(_ext is None or not _ext.conv_available(),
                                  reason="direct convolution not compiled in")



def magnitudes(x, weight, bias, d, stride, pad):
    """The three ops on absolute values (float64, NumPy backend), with the number of
    terms of each sum: the scale of each rounding bound (bruteforce.assert_sums_agree).
    Forward: C*kh*kw products and the bias; weight gradient: N*OH*OW products;
    input gradient: at most FN*kh*kw products."""
    ax, aw, ad = (np.abs(np.asarray(a, dtype=np.float64)) for a in (x, weight, d))
    ab = None if bias is None else np.abs(np.asarray(bias, dtype=np.float64))
    n, c, _, _ = x.shape
    fn, _, kh, kw = weight.shape
    with fastconv.use_backend("numpy"):
        return ((F.conv2d(ax, aw, ab, stride, pad), c * kh * kw + 1),
                (F.conv2d_weight_grad(ax, ad, weight.shape, stride, pad),
                 n * d.shape[2] * d.shape[3]),
                (F.conv2d_input_grad(ad, aw, x.shape, stride, pad), fn * kh * kw))


def assert_conv_results_agree(ours, theirs, x, weight, bias, d, stride, pad):
    """(out, dW, dx) of two implementations, each within its rounding bound."""
    for what, a, b, (scale, terms) in zip(("forward", "weight grad", "input grad"), ours,
                                          theirs, magnitudes(x, weight, bias, d, stride, pad)):
        bf.assert_sums_agree(a, b, scale, terms, what=what)

CASES = [  # (n, c, h, w, fn, kh, kw, stride, pad)
    (2, 3, 7, 6, 5, 3, 3, 1, 1),
    (1, 1, 9, 9, 30, 5, 5, 1, 0),
    (3, 4, 6, 8, 7, 3, 2, 1, (2, 1)),
    (2, 5, 5, 5, 4, 1, 1, 1, 0),
    (2, 2, 8, 7, 3, 3, 3, 2, 1),      # stride 2: the patch-matrix path
    (1, 6, 4, 4, 9, 4, 4, 1, 3),      # padding beyond k-1 for the input gradient
]


def _data(case, dtype, seed=0):
    n, c, h, w, fn, kh, kw, stride, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((fn, c, kh, kw)).astype(dtype)
    bias = rng.standard_normal(fn).astype(dtype)
    return x, weight, bias, stride, pad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_conv2d_and_gradients_match_loops(backend, dtype, case):
    x, weight, bias, stride, pad = _data(case, dtype)
    out = F.conv2d(x, weight, bias, stride, pad)
    assert out.dtype == dtype and out.flags.c_contiguous
    bf.assert_sum_close(out, bf.conv2d, (x, weight, bias, stride, pad),
                        x.shape[1] * weight.shape[2] * weight.shape[3] + 1)
    # Gradients of <conv2d(x, w), d>: the loops' adjoints, written out.
    d = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dw = F.conv2d_weight_grad(x, d, weight.shape, stride, pad)
    dx = F.conv2d_input_grad(d, weight, x.shape, stride, pad)
    assert dw.shape == weight.shape and dx.shape == x.shape
    assert dw.dtype == dtype and dx.dtype == dtype
    fn, _, kh, kw = weight.shape

    def rows(d):
        return d.transpose(0, 2, 3, 1).reshape(-1, fn)

    def weight_grad(x, d):
        return (rows(d).T @ bf.im2col(x, kh, kw, stride, pad)).reshape(weight.shape)

    def input_grad(d, weight):
        return bf.col2im(rows(d) @ weight.reshape(fn, -1), x.shape, kh, kw, stride, pad)

    # Sums of N*OH*OW and of at most FN*kh*kw products (float64 oracle on magnitudes).
    bf.assert_sum_close(dw, weight_grad, (x, d), d.shape[0] * d.shape[2] * d.shape[3])
    bf.assert_sum_close(dx, input_grad, (d, weight), fn * kh * kw)


geometry = st.fixed_dictionaries({
    "n": st.integers(1, 5), "c": st.integers(1, 9), "h": st.integers(1, 13),
    "w": st.integers(1, 13), "fn": st.integers(1, 10), "kh": st.integers(1, 5),
    "kw": st.integers(1, 5), "ph": st.integers(0, 3), "pw": st.integers(0, 3),
    "seed": st.integers(0, 2**32 - 1), "dtype": st.sampled_from([np.float32, np.float64]),
})


@needs_direct
@settings(max_examples=150, deadline=None)
@given(geometry)
def test_property_direct_kernel_agrees_with_numpy(g):
    assume(g["h"] + 2 * g["ph"] >= g["kh"] and g["w"] + 2 * g["pw"] >= g["kw"])
    dtype = g["dtype"]
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["n"], g["c"], g["h"], g["w"])).astype(dtype)
    weight = rng.standard_normal((g["fn"], g["c"], g["kh"], g["kw"])).astype(dtype)
    bias = rng.standard_normal(g["fn"]).astype(dtype)
    pad = (g["ph"], g["pw"])
    d = None
    results = {}
    for backend in ("c", "numpy"):
        # The C run is forced onto the direct kernel, below its size threshold too.
        with fastconv.use_backend(backend), use_conv_plan("direct"):
            out = F.conv2d(x, weight, bias, 1, pad)
            d = np.random.default_rng(g["seed"] + 1).standard_normal(out.shape).astype(dtype)
            results[backend] = (out, F.conv2d_weight_grad(x, d, weight.shape, 1, pad),
                                F.conv2d_input_grad(d, weight, x.shape, 1, pad))
            if backend == "c":
                assert F.conv_plan(x.shape, weight.shape, dtype, 1, pad) == "direct"
    assert all(a.dtype == dtype for a in results["c"])
    assert_conv_results_agree(results["c"], results["numpy"], x, weight, bias, d, 1, pad)
    # Adjoint identities in float64: <conv(x), d> = <w, dW> + <b, sum d> = <x, dx> + <b, sum d>.
    # Each side within what the rounding of out, dW, dx (weighted by |d|, |w|, |x|) and
    # the float64 dot products (size * eps64 * sum of magnitudes) explain.
    out, dw, dx = (a.astype(np.float64) for a in results["c"])
    d64, w64, x64, b64 = (a.astype(np.float64) for a in (d, weight, x, bias))
    (s_out, n_out), (s_w, n_w), (s_x, n_x) = magnitudes(x, weight, bias, d, 1, pad)
    eps, eps64 = np.finfo(dtype).eps, np.finfo(np.float64).eps
    lhs = np.vdot(out, d64) - np.vdot(b64, d64.sum(axis=(0, 2, 3)))
    dots = eps64 * (out.size + d.size) * (np.vdot(s_out, np.abs(d64)) + 1e-300)
    for rhs, size, own in ((np.vdot(w64, dw), weight.size, np.vdot(np.abs(w64), n_w * eps * s_w)),
                           (np.vdot(x64, dx), x.size, np.vdot(np.abs(x64), n_x * eps * s_x))):
        allowed = np.vdot(np.abs(d64), n_out * eps * s_out) + own + 2 * dots
        assert abs(lhs - rhs) <= allowed, (lhs, rhs, allowed)


@needs_direct
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("baseline", [False, True], ids=["detected", "baseline"])
def test_direct_kernel_bits_do_not_depend_on_threads(baseline, dtype):
    # The layer shapes of DeepConvNet's second block, at a batch that leaves a
    # partial chunk of images and a partial block of filters.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 16, 14, 14)).astype(dtype)
    weight = rng.standard_normal((30, 16, 3, 3)).astype(dtype)
    d = rng.standard_normal((7, 30, 14, 14)).astype(dtype)
    _ext.conv_force_baseline(baseline)
    try:
        results = []
        for threads in (1, 2, 3):
            with running_on(f"c-{threads}t"):
                results.append((F.conv2d(x, weight, None, 1, 1),
                                F.conv2d_weight_grad(x, d, weight.shape, 1, 1),
                                F.conv2d_input_grad(d, weight, x.shape, 1, 1)))
                assert F.conv_plan(x.shape, weight.shape, dtype, 1, 1) == "direct"
                assert threads == 1 or last_team_size() == threads
        assert _ext.conv_isa() in (("baseline",) if baseline else ("avx2", "baseline"))
    finally:
        _ext.conv_force_baseline(False)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.dtype == dtype and a.tobytes() == b.tobytes()


@needs_direct
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_instruction_set_builds_agree(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 8, 11, 9)).astype(dtype)
    weight = rng.standard_normal((13, 8, 3, 3)).astype(dtype)
    d = rng.standard_normal((5, 13, 11, 9)).astype(dtype)
    # Whatever FASTCONV_ISA caps the rest of the run at (CI's second numerics run
    # sets baseline), this test compares the builds the CPU can run.
    with cap_isa("avx512"):
        if _ext.conv_isa() != "avx2":
            pytest.skip("this CPU has no AVX2+FMA: only the baseline build can run here")
    runs = []
    for baseline in (False, True):
        _ext.conv_force_baseline(baseline)
        try:
            with fastconv.use_backend("c"), use_conv_plan("direct"), cap_isa("avx512"):
                runs.append((F.conv2d(x, weight, None, 1, 1),
                             F.conv2d_weight_grad(x, d, weight.shape, 1, 1),
                             F.conv2d_input_grad(d, weight, x.shape, 1, 1)))
        finally:
            _ext.conv_force_baseline(False)
    assert_conv_results_agree(runs[0], runs[1], x, weight, None, d, 1, 1)


@needs_direct
@pytest.mark.parametrize("shape", [(100, 16, 28, 28, 16, 1), (100, 32, 14, 14, 32, 2),
                                   (100, 1, 28, 28, 30, 0)],
                         ids=["deep-conv2", "deep-conv4", "simple-conv1"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_direct_path_matches_patch_matrix_path(shape, dtype):
    n, c, h, w, fn, pad = shape
    k = 5 if c == 1 else 3
    rng = np.random.default_rng(5)
    x = rng.random((n, c, h, w)).astype(dtype)
    weight = (rng.standard_normal((fn, c, k, k)) * 0.1).astype(dtype)
    bias = rng.standard_normal(fn).astype(dtype)
    direct, patches = Convolution(weight, bias, 1, pad), Convolution(weight, bias, 1, pad)
    with fastconv.use_backend("c"):
        with use_conv_plan("direct"):  # AVX-512 runs conv4 on the blocked plan by default
            y1 = direct.forward(x)
        with use_conv_plan("per_image"):
            y2 = patches.forward(x)
        assert direct.plan == "direct" and patches.plan == "per_image"
        g = rng.standard_normal(y1.shape).astype(dtype)
        dx1, dx2 = direct.backward(g), patches.backward(g)
    assert y1.dtype == dx1.dtype == direct.dW.dtype == dtype
    assert_conv_results_agree((y1, direct.dW, dx1), (y2, patches.dW, dx2), x, weight, bias,
                              g, 1, pad)
    # db: a sum of N*OH*OW values of g.
    bf.assert_sums_agree(direct.db, patches.db, np.abs(g.astype(np.float64)).sum(axis=(0, 2, 3)),
                         n * g.shape[2] * g.shape[3], what="bias grad")


def test_conv_against_torch(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    for stride, pad in ((1, 1), (1, 2), (2, 1)):
        x = rng.standard_normal((3, 6, 12, 10)).astype(np.float32)
        weight = rng.standard_normal((8, 6, 3, 3)).astype(np.float32)
        bias = rng.standard_normal(8).astype(np.float32)
        tx, tw = torch.from_numpy(x), torch.from_numpy(weight)
        expected = torch.nn.functional.conv2d(tx, tw, torch.from_numpy(bias), stride, pad)
        out = F.conv2d(x, weight, bias, stride, pad)
        d = rng.standard_normal(out.shape).astype(np.float32)
        td = torch.from_numpy(d)
        # torch sums in its own order: each side within its own rounding bound.
        assert_conv_results_agree(
            (out, F.conv2d_weight_grad(x, d, weight.shape, stride, pad),
             F.conv2d_input_grad(d, weight, x.shape, stride, pad)),
            (expected.numpy(),
             torch.nn.grad.conv2d_weight(tx, weight.shape, td, stride, pad).numpy(),
             torch.nn.grad.conv2d_input(x.shape, tw, td, stride, pad).numpy()),
            x, weight, bias, d, stride, pad)


def test_conv_errors():
    x = np.zeros((2, 3, 5, 5), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="x has 2 channels but weight expects 3"):
        F.conv2d(x[:, :2], w)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\) or be a scalar, got \(3,\)"):
        F.conv2d(x, w, np.zeros(3))
    with pytest.raises(ValueError, match="weight must be a 4-D"):
        F.conv2d(x, w[0])
    with pytest.raises(ValueError, match="filter 7x7 is larger than the padded input 5x5"):
        F.conv2d(x, np.zeros((4, 3, 7, 7), np.float32))
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"grad_output must have shape \(2, 4, 3, 3\)"):
        F.conv2d_weight_grad(x, np.zeros((2, 4, 4, 4)), w.shape)
    with pytest.raises(ValueError, match=r"grad_output must have shape \(2, 4, 3, 3\)"):
        F.conv2d_input_grad(np.zeros((2, 4, 4, 4)), w, x.shape)
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        F.conv2d(np.full((2, 3, 5, 5), "a"), w)


@needs_direct
def test_weight_grad_of_a_large_batch_matches_numpy_at_every_thread_count():
    # 300 images are 75 chunks of 4, more than the 64 the kernel keeps partial
    # sums for at once: the second wave must add onto the first, in order.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 3, 12, 12)).astype(np.float32)
    d = rng.standard_normal((300, 5, 12, 12)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        with running_on(f"c-{threads}t"):
            results.append(F.conv2d_weight_grad(x, d, (5, 3, 3, 3), 1, 1))
            assert threads == 1 or last_team_size() == threads
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    with fastconv.use_backend("numpy"):
        expected = F.conv2d_weight_grad(x, d, (5, 3, 3, 3), 1, 1)
    scale, terms = magnitudes(x, np.zeros((5, 3, 3, 3)), None, d, 1, 1)[1]
    bf.assert_sums_agree(results[0], expected, scale, terms, what="weight grad")


@needs_direct
@pytest.mark.parametrize("threads", [1, 2])
def test_direct_layer_gradients_against_float64_differences_and_torch(threads):
    # The float32 layer on the direct plan, checked against oracles that share
    # none of its code: central differences of a float64 loss computed by the
    # NumPy backend (exact for a loss linear in each argument), and torch.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 12, 12)).astype(np.float32)
    weight = (rng.standard_normal((5, 4, 3, 3)) * 0.3).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    layer = Convolution(weight, bias, 1, 1)
    with running_on(f"c-{threads}t"):
        out = layer.forward(x)
        g = rng.standard_normal(out.shape).astype(np.float32)
        dx = layer.backward(g)
        assert layer.plan == "direct" and (threads == 1 or last_team_size() == threads)
    g64 = g.astype(np.float64)

    def loss(x_, w_, b_):
        with fastconv.use_backend("numpy"):
            return float(np.sum(F.conv2d(x_, w_, b_, 1, 1) * g64))

    x64, w64, b64 = (a.astype(np.float64) for a in (x, weight, bias))
    h = 0.5  # the loss is linear in each argument: any step is exact
    # Each float32 gradient within its own sums' bound; each difference within twice the
    # float64 loss's rounding (out.size + C*9 + 1 terms, on magnitudes, the steps included)
    # over 2h.
    (s_out, n_out), (s_w, n_w), (s_x, n_x) = magnitudes(x, weight, bias, g, 1, 1)
    with fastconv.use_backend("numpy"):
        big = F.conv2d(np.abs(x64) + h, np.abs(w64) + h, np.abs(b64) + h, 1, 1)
    step_error = (out.size + n_out) * np.finfo(np.float64).eps * np.sum(big * np.abs(g64)) / h
    own = {"b": (np.abs(g64).sum(axis=(0, 2, 3)), g.shape[0] * g.shape[2] * g.shape[3]),
           "W": (s_w, n_w), "x": (s_x, n_x)}
    for name, arr, got in (("b", b64, layer.db), ("W", w64, layer.dW), ("x", x64, dx)):
        numeric = np.empty_like(arr)
        for i in np.ndindex(arr.shape):
            saved = arr[i]
            arr[i] = saved + h
            up = loss(x64, w64, b64)
            arr[i] = saved - h
            down = loss(x64, w64, b64)
            arr[i] = saved
            numeric[i] = (up - down) / (2 * h)
        assert got.dtype == np.float32, name
        scale, terms = own[name]
        bound = terms * np.finfo(np.float32).eps * scale + step_error
        excess = np.abs(got - numeric) - bound
        assert np.all(excess <= 0), (name, excess.max())
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x64, requires_grad=True)
    tw = torch.tensor(w64, requires_grad=True)
    tb = torch.tensor(b64, requires_grad=True)
    torch.nn.functional.conv2d(tx, tw, tb, padding=1).backward(torch.tensor(g64))
    for name, ours, theirs in (("b", layer.db, tb.grad), ("W", layer.dW, tw.grad),
                               ("x", dx, tx.grad)):
        bf.assert_sums_agree(ours, theirs.numpy(), *own[name], what=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("plan", ["direct", "per_image", "rows"])
def test_forward_with_relu_is_maximum_of_forward(backend, plan, dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 5, 9, 9)).astype(dtype)
    x[0, 0, 4, 4] = np.nan  # a NaN stays NaN, as numpy.maximum keeps it
    weight = rng.standard_normal((6, 5, 3, 3)).astype(dtype)
    bias = rng.standard_normal(6).astype(dtype)
    with use_conv_plan(plan):
        plain = F.conv2d(x, weight, bias, 1, 1)
        fused, ctx = F.conv2d_forward(x, weight, bias, 1, 1, keep=False, relu=True)
    expected = np.maximum(plain, 0)
    assert np.isnan(expected).any()
    assert fused.dtype == dtype
    assert fused.tobytes() == expected.tobytes()
    with pytest.raises(ValueError, match="keep=False"):
        F.conv2d_forward(x, weight, bias, 1, 1, relu=True)


@pytest.mark.parametrize("shape", [(7, 16, 14, 14, 32), (3, 2, 9, 9, 5), (5, 8, 6, 6, 8)])
def test_one_off_calls_reuse_scratch_but_never_share_results(backend, shape):
    # conv2d and its gradients refill per-thread scratch memory from call to
    # call (ops/conv.py): an earlier result must not change, and Python threads
    # calling at once must each get their own answer.
    import threading
    n, c, h, w, fn = shape
    rng = np.random.default_rng(11)
    xs = rng.standard_normal((4, n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((fn, c, 3, 3)).astype(np.float32)
    d = rng.standard_normal((4, n, fn, h, w)).astype(np.float32)

    def three(i):
        return (F.conv2d(xs[i], weight, None, 1, 1),
                F.conv2d_input_grad(d[i], weight, xs[i].shape, 1, 1),
                F.conv2d_weight_grad(xs[i], d[i], weight.shape, 1, 1))

    first = [three(i) for i in range(4)]
    copies = [tuple(a.copy() for a in r) for r in first]
    again = [three(i) for i in range(4)]
    for r, c_, a in zip(first, copies, again):
        for got, kept, redo in zip(r, c_, a):
            assert np.array_equal(got, kept) and np.array_equal(redo, kept)
    results = [None] * 4

    def worker(i):
        for _ in range(3):
            results[i] = three(i)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, kept in zip(results, copies):
        for got, want in zip(r, kept):
            assert np.array_equal(got, want)
