"""Property fuzzing of the C kernels: garbage in, a NumPy-equal result or a clean error out.

Hypothesis draws shapes (zeros and ones included), window arguments (valid ones,
and garbage: negative, zero, huge, beyond int64, floats, None, strings,
bools, wrong-length tuples, numpy scalars and arrays), array dtypes (float32/64,
float16, ints, unsigned, bool, big-endian), layouts (Fortran, strided,
reversed, transposed, read-only) and values (NaN, inf, huge, subnormal, ties).

Property, for every public op called on the C backend:
* it raises ValueError or TypeError (with a message), or
* it returns what the NumPy backend returns: bit for bit for im2col, unfold
  and max pooling (values and indices); within a summation-order bound for
  col2im, fold and the pooling sums. Where the NumPy backend would have to
  materialise an absurd padding, a direct index-arithmetic oracle (Python
  ints, no padding) stands in for it.

Nothing else may escape, and nothing may crash. FASTCONV_FUZZ_EXAMPLES sets
the number of examples per test (default 200; scripts/asan.sh uses more).

Memory: calls whose result would be indexable but larger than 16 MiB are not
attempted (they would be allocated for real); results too large to index at
all must be refused with ValueError.

No escape hatches: an OverflowError, a wrong value or a refusal of arguments
the harness knows to be valid fails the test. The once-known bugs (int64
window arguments, empty shapes with unindexable planes, empty x with a huge
pooling padding) are fixed and kept as regression tests at the bottom.
Under scripts/asan.sh, UBSan would report any int64 overflow as it happens.
"""
import math
import os
import sys
import warnings

try:
    import resource
except ImportError:  # not on Windows
    resource = None

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

import fastconv
from fastconv.ops import validate as _validate
from fastconv.ops.window import pair


class V:
    """The argument checks functional applies, as the harness needs them."""
    positive_pair = staticmethod(lambda value, name: pair(value, name, 1))
    nonnegative_pair = staticmethod(lambda value, name: pair(value, name, 0))
    shape4 = staticmethod(_validate.shape4)

EXAMPLES = int(os.environ.get("FASTCONV_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

needs_c = pytest.mark.skipif("c" not in fastconv.available_backends(),
                             reason="the C extension is not built")
pytestmark = [needs_c, pytest.mark.filterwarnings("ignore")]

MAX_OUT_BYTES = 1 << 24          # larger indexable results are not attempted
MAX_NUMPY_CELLS = 1 << 20        # beyond this the NumPy backend's padding is too big


@pytest.fixture(autouse=True)
def memory_cap():
    """A runaway allocation must end as a MemoryError here, not OOM-kill the machine:
    cap the address space at what the process uses now + 6 GiB. (Not under ASan,
    which reserves terabytes of shadow address space.)"""
    if resource is None or "asan" in os.environ.get("LD_PRELOAD", ""):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    cap = vm + (6 << 30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# --- strategies -----------------------------------------------------------------

DTYPES = ["<f4", ">f4", "<f8", ">f8", "<f2", ">f2", "|i1", "<i4", ">i8", "|u1", "<u8", "|b1"]
VALUES = ["normal", "ints", "specials", "huge", "subnormal"]
LAYOUTS = ["c", "fortran", "strided", "reversed", "transposed", "readonly"]
GARBAGE_ARRAYS = ["none", "str", "object", "complex", "0-d", "5-d", "nested list", "ragged"]

GARBAGE_ARGS = [
    0, -1, -3, 2**31, 2**32 + 1, 2**62, 2**63 - 1, 2**63, 2**64, -2**63,
    1.0, 2.5, float("nan"), float("inf"), None, "2", b"2", True, False, 2 + 0j,
    (1,), (1, 2, 3), (2, None), (2**62, 1), (1, 2**63 - 1), (2**62 - 1, 2**62), [2, 2],
    np.int64(2), np.uint64(2**63), np.float32(2.0), np.array([2, 1]), np.array(2),
    np.array([[1, 2]]), np.bool_(True), np.int8(-1),
]


def sometimes_garbage(valid, rate=8):
    """``valid`` most of the time, one of GARBAGE_ARGS ``rate`` percent of the time."""
    return st.integers(0, 99).flatmap(
        lambda r: st.sampled_from(GARBAGE_ARGS) if r < rate else valid)


def size_arg(lo, hi):
    return st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))


# Huge windows that still fit: kernel far larger than the input, padding to match.
HUGE_WINDOW = st.sampled_from([2**20, 2**31 - 1, 2**31, 2**32, 2**40, 2**61, 2**62, 2**63 - 1])


@st.composite
def array_spec(draw):
    return {"dtype": draw(st.sampled_from(DTYPES)), "values": draw(st.sampled_from(VALUES)),
            "layout": draw(st.sampled_from(LAYOUTS)), "seed": draw(st.integers(0, 2**32 - 1)),
            "garbage": draw(st.sampled_from(GARBAGE_ARRAYS))
            if draw(st.integers(0, 99)) < 4 else None}


def make_array(shape, spec):
    """An array of ``shape`` as ``spec`` says (or garbage in its place)."""
    g = spec["garbage"]
    if g is not None:
        return {"none": None, "str": "abc", "object": object(),
                "complex": np.ones(shape, complex), "0-d": np.float64(1.0),
                "5-d": np.zeros((1,) + tuple(shape)), "nested list": np.ones(shape).tolist(),
                "ragged": [[1.0, 2.0], [3.0]]}[g]
    dt = np.dtype(spec["dtype"])
    native = dt.newbyteorder("=")
    rng = np.random.default_rng(spec["seed"])
    n = math.prod(shape)
    if dt.kind == "b":
        v = rng.random(n) < 0.5
    elif dt.kind in "iu":
        info = np.iinfo(native)
        v = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=native)
    else:
        f = np.finfo(native)
        big, tiny, sub = float(f.max), float(f.tiny), float(f.smallest_subnormal)
        kind = spec["values"]
        if kind == "normal":
            v = rng.standard_normal(n)
        elif kind == "ints":
            v = rng.integers(-3, 4, n).astype(float)
        elif kind == "specials":
            v = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, big, -big,
                            tiny, sub, -sub], n)
        elif kind == "huge":
            v = rng.choice([-1.0, 1.0], n) * big * rng.uniform(0.25, 1.0, n)
        else:
            v = rng.integers(-5, 6, n) * sub
    v = np.asarray(v).astype(native).reshape(shape).astype(dt)
    layout = spec["layout"]
    if layout == "fortran":
        v = np.asfortranarray(v)
    elif layout == "strided" and v.ndim:
        base = np.zeros(shape[:-1] + (2 * shape[-1],), dt)
        base[..., ::2] = v
        v = base[..., ::2]
    elif layout == "reversed" and v.ndim:
        v = v[..., ::-1].copy()[..., ::-1]
    elif layout == "transposed":
        v = np.ascontiguousarray(v.T).T
    elif layout == "readonly":
        v = v.copy()
        v.flags.writeable = False
    return v


# --- normalised arguments (for guards and oracles; V is what the ops use) ----------

def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 -- the op itself will raise; nothing to guard
        return None


def _dims(a):
    """The shape the op will see, for guards (None for things that are not arrays)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.shape(a)
    except Exception:  # noqa: BLE001 -- ragged lists: the op refuses them
        return None


def _out(size, k, s, p, d=1):
    span = d * (k - 1) + 1
    if span > size + 2 * p:
        return None
    return (size + 2 * p - span) // s + 1


def _window_params(kernel, stride, pad, dilation=1):
    k = _try(V.positive_pair, kernel, "k")
    s = _try(V.positive_pair, stride, "s") if stride is not None else k
    p = _try(V.nonnegative_pair, pad, "p")
    d = _try(V.positive_pair, dilation, "d")
    if None in (k, s, p, d):
        return None
    return k, s, p, d


# --- oracles ------------------------------------------------------------------------

def _axis(count, k, s, p, d, size):
    """Input coordinate of window cell i of output o, in Python ints; and inside-ness."""
    o = np.arange(count, dtype=object)[:, None]
    i = np.arange(k, dtype=object)[None, :]
    pos = o * s - p + i * d
    inside = ((pos >= 0) & (pos < size)).astype(bool)
    return np.where(inside, pos, 0).astype(np.int64), inside


def _gather(x, k, s, p, d):
    """(n, c, oh, kh, ow, kw) window values of x, zero outside, without padding x."""
    n, c, h, w = x.shape
    oh, ow = _out(h, k[0], s[0], p[0], d[0]), _out(w, k[1], s[1], p[1], d[1])
    if x.size == 0:           # no values: do not build (possibly huge) index arrays
        return np.zeros((n, c, oh, k[0], ow, k[1]), x.dtype)
    ih, inh = _axis(oh, k[0], s[0], p[0], d[0], h)
    iw, inw = _axis(ow, k[1], s[1], p[1], d[1], w)
    mask = inh[:, :, None, None] & inw[None, None, :, :]
    vals = x[:, :, ih[:, :, None, None], iw[None, None, :, :]]
    return np.where(mask, vals, x.dtype.type(0))


def _scatter(vals, shape, k, s, p, d):
    """Adjoint of _gather: sum (n, c, oh, kh, ow, kw) values into ``shape``, in float64."""
    n, c, h, w = shape
    oh, ow = vals.shape[2], vals.shape[4]
    ih, inh = _axis(oh, k[0], s[0], p[0], d[0], h)
    iw, inw = _axis(ow, k[1], s[1], p[1], d[1], w)
    out = np.zeros(shape, np.float64)
    grids = np.broadcast_arrays(
        np.arange(n)[:, None, None, None, None, None],
        np.arange(c)[None, :, None, None, None, None],
        ih[None, None, :, :, None, None], iw[None, None, None, None, :, :],
        (inh[:, :, None, None] & inw[None, None, :, :])[None, None])
    m = grids[4] & np.ones(vals.shape, bool)
    np.add.at(out, (grids[0][m], grids[1][m], grids[2][m], grids[3][m]),
              vals.astype(np.float64)[m])
    return out


def _bounds(count, k, s, p, size):
    return [(max(o * s - p, 0), min(o * s - p + k, size)) for o in range(count)]


def direct_max_pool(x, k, s, p):
    n, c, h, w = x.shape
    rows = _bounds(_out(h, k[0], s[0], p[0]), k[0], s[0], p[0], h)
    cols = _bounds(_out(w, k[1], s[1], p[1]), k[1], s[1], p[1], w)
    out = np.empty((n, c, len(rows), len(cols)), x.dtype)
    idx = np.empty(out.shape, np.int64)
    for b in range(n):
        for ch in range(c):
            for i, (h0, h1) in enumerate(rows):
                for j, (w0, w1) in enumerate(cols):
                    flat = x[b, ch, h0:h1, w0:w1].ravel()
                    nan = np.flatnonzero(np.isnan(flat))
                    a = int(nan[0]) if nan.size else int(np.argmax(flat))
                    out[b, ch, i, j] = flat[a]
                    idx[b, ch, i, j] = (h0 + a // (w1 - w0)) * w + w0 + a % (w1 - w0)
    return out, idx


def direct_avg_pool(x, k, s, p):
    n, c, h, w = x.shape
    rows = _bounds(_out(h, k[0], s[0], p[0]), k[0], s[0], p[0], h)
    cols = _bounds(_out(w, k[1], s[1], p[1]), k[1], s[1], p[1], w)
    out = np.zeros((n, c, len(rows), len(cols)))
    area = k[0] * k[1]
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].astype(np.float64).sum(axis=(2, 3)) / area
    return out


def direct_avg_pool_backward(dout, shape, k, s, p):
    n, c, h, w = shape
    rows = _bounds(dout.shape[2], k[0], s[0], p[0], h)
    cols = _bounds(dout.shape[3], k[1], s[1], p[1], w)
    dx = np.zeros(shape)
    area = k[0] * k[1]
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            dx[:, :, h0:h1, w0:w1] += (dout[:, :, i, j].astype(np.float64) / area)[:, :, None, None]
    return dx


# --- comparisons ----------------------------------------------------------------------

def assert_identical(got, want):
    """Same dtype, shape and bits (NaN payloads and -0.0 included)."""
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if got.dtype.kind == "f":
        unsigned = np.dtype(f"u{got.dtype.itemsize}")
        g, w = got.view(unsigned), np.ascontiguousarray(want).view(unsigned)
        bad = np.flatnonzero(g.ravel() != w.ravel())
        assert bad.size == 0, f"{bad.size} differ, first at {bad[0]}: {got.ravel()[bad[0]]!r} " \
                              f"vs {want.ravel()[bad[0]]!r}"
    else:
        np.testing.assert_array_equal(got, want)


def assert_sum_close(got, want, abs_sum, dtype, scale=1):
    """``got`` (in ``dtype``) equals the sum ``want`` up to summation order.

    ``abs_sum`` is the same sum over the absolute values of the finite terms: it
    bounds the rounding error, and where it nears the overflow threshold the
    order decides between inf and a finite number, so those cells are skipped.
    ``scale`` times abs_sum is the largest intermediate: average pooling sums in
    the input dtype and only then divides by the window area.
    """
    assert got.dtype == dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    f = np.finfo(dtype)
    g, w, a = (np.asarray(v, np.float64) for v in (got, want, abs_sum))
    check = a * float(scale) <= float(f.max) / 8
    nonfinite = check & ~np.isfinite(w)
    np.testing.assert_array_equal(np.isnan(g[nonfinite]), np.isnan(w[nonfinite]))
    both = nonfinite & ~np.isnan(w)
    np.testing.assert_array_equal(g[both], w[both])
    fin = check & np.isfinite(w)
    err = np.abs(g[fin] - w[fin])
    bound = 64 * float(f.eps) * a[fin] + 64 * float(f.smallest_subnormal)
    assert np.all(err <= bound), (
        f"max error {err.max()} vs bound {bound[np.argmax(err - bound)]}")


def _padded_cells(n, c, h, w, p):
    """Cells the NumPy backend allocates to pad the input (numpy refuses absurd
    padded shapes even when n or c is 0)."""
    return max(n, 1) * max(c, 1) * (h + 2 * p[0]) * (w + 2 * p[1])


def _finite_abs(a):
    return np.where(np.isfinite(a), np.abs(a), 0)


# --- the harness ----------------------------------------------------------------------

def call_c(fn, *args, valid=False, **kwargs):
    """Call on the C backend; None if it raised a ValueError/TypeError with a
    message. ``valid`` says the harness found every argument acceptable: then a
    refusal is itself a failure (fastconv must not refuse good input)."""
    with fastconv.use_backend("c"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = fn(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            assert str(exc), f"{type(exc).__name__} without a message"
            assert not valid, f"a valid call was refused: {type(exc).__name__}: {exc}"
            note(f"refused: {type(exc).__name__}: {exc}")
            event(f"{fn.__name__}: {type(exc).__name__}")
            return None
    event(f"{fn.__name__}: result")
    return result


def _real_array(a):
    """Whether the op will take ``a`` as an array (a real dtype, not ragged)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(a).dtype.kind in "fiub"
    except Exception:  # noqa: BLE001 -- ragged lists: the op refuses them
        return False


def _single_int(v):
    return not isinstance(v, (tuple, list, np.ndarray))


def call_numpy(fn, *args, **kwargs):
    with fastconv.use_backend("numpy"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def guard_bytes(nbytes):
    """Skip results that are indexable but too big to allocate here for real."""
    if nbytes is not None:
        assume(not MAX_OUT_BYTES < nbytes <= sys.maxsize)


def as_float(a):
    """What the ops compute on: float32/float64 stay, the rest becomes float64."""
    a = np.asarray(a)
    if a.dtype.kind == "f" and a.dtype.itemsize in (4, 8):
        return np.ascontiguousarray(a, a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a, np.float64)


# --- forward ops ------------------------------------------------------------------------

side = st.one_of(st.integers(2, 8), st.integers(0, 8))
shape4 = st.tuples(st.integers(0, 3), st.integers(0, 3), side, side)


@FUZZ
@given(st.data())
def test_fuzz_forward_ops(data):
    op = data.draw(st.sampled_from(["im2col", "unfold", "max_pool2d", "avg_pool2d"]), label="op")
    shape = data.draw(shape4, label="shape")
    if op == "unfold" and data.draw(st.booleans(), label="unbatched"):
        shape = shape[1:]
    x = make_array(shape, data.draw(array_spec(), label="x"))
    huge = data.draw(st.integers(0, 99), label="huge?") < 10
    if op == "im2col":
        fh = data.draw(sometimes_garbage(st.integers(1, 4)), label="filter_h")
        fw = data.draw(sometimes_garbage(st.integers(1, 4)), label="filter_w")
        stride = data.draw(sometimes_garbage(size_arg(1, 4)), label="stride")
        pad = data.draw(sometimes_garbage(size_arg(0, 3)), label="pad")
        if huge:
            big = data.draw(HUGE_WINDOW, label="huge")
            stride, pad = big, data.draw(st.sampled_from([big // 2, big, 0]), label="pad")
        run_im2col(x, fh, fw, stride, pad)
    elif op == "unfold":
        kernel = data.draw(sometimes_garbage(size_arg(1, 4)), label="kernel_size")
        dilation = data.draw(sometimes_garbage(size_arg(1, 3)), label="dilation")
        pad = data.draw(sometimes_garbage(size_arg(0, 3)), label="padding")
        stride = data.draw(sometimes_garbage(size_arg(1, 4)), label="stride")
        if huge:
            big = data.draw(HUGE_WINDOW, label="huge")
            dilation, pad, stride = 1, big, big
        run_unfold(x, kernel, dilation, pad, stride)
    else:
        kernel = data.draw(sometimes_garbage(size_arg(1, 4)), label="kernel_size")
        k = _try(V.positive_pair, kernel, "k") or (1, 1)
        stride = data.draw(sometimes_garbage(st.one_of(st.none(), size_arg(1, 4))), label="stride")
        pad = data.draw(sometimes_garbage(st.tuples(st.integers(0, k[0] // 2),
                                                    st.integers(0, k[1] // 2))), label="padding")
        if huge:
            big = data.draw(HUGE_WINDOW, label="huge")
            kernel, pad = big, data.draw(st.sampled_from([big // 2, (big - 1) // 2]), label="pad")
            stride = data.draw(st.sampled_from([None, 1, 2, big]), label="stride")
        run_pool(op, x, kernel, stride, pad)


def run_im2col(x, fh, fw, stride, pad):
    kh, kw = _try(V.positive_pair, fh, "f"), _try(V.positive_pair, fw, "f")
    s, p = _try(V.positive_pair, stride, "s"), _try(V.nonnegative_pair, pad, "p")
    dims = _dims(x)
    valid = False
    if None not in (kh, kw, s, p) and dims is not None and len(dims) == 4:
        n, c, h, w = dims
        oh, ow = _out(h, kh[0], s[0], p[0]), _out(w, kw[0], s[1], p[1])
        if oh is not None and ow is not None:
            nbytes = n * oh * ow * c * kh[0] * kw[0] * 8
            guard_bytes(nbytes)
            valid = (nbytes <= MAX_OUT_BYTES and _real_array(x) and _single_int(fh)
                     and _single_int(fw))
    got = call_c(fastconv.im2col, x, fh, fw, stride=stride, pad=pad, valid=valid)
    if got is None:
        return
    x = as_float(x)
    k = (V.positive_pair(fh, "f")[0], V.positive_pair(fw, "f")[0])
    s, p = V.positive_pair(stride, "s"), V.nonnegative_pair(pad, "p")
    n, c, h, w = x.shape

    def check():
        if got.size == 0:
            oh, ow = _out(h, k[0], s[0], p[0]), _out(w, k[1], s[1], p[1])
            assert got.shape == (n * oh * ow, c * k[0] * k[1]) and got.dtype == x.dtype
            return
        if _padded_cells(n, c, h, w, p) + got.size <= MAX_NUMPY_CELLS:
            assert_identical(got, call_numpy(fastconv.im2col, x, *k, stride=s, pad=p))
        vals = _gather(x, k, s, p, (1, 1))
        assert_identical(got, np.ascontiguousarray(
            vals.transpose(0, 2, 4, 1, 3, 5)).reshape(got.shape))
    check()


def run_unfold(x, kernel, dilation, pad, stride):
    params = _window_params(kernel, stride, pad, dilation)
    dims = _dims(x)
    valid = False
    if params and dims is not None and len(dims) in (3, 4):
        k, s, p, d = params
        n, c, h, w = (1,) * (4 - len(dims)) + tuple(dims)
        oh, ow = _out(h, k[0], s[0], p[0], d[0]), _out(w, k[1], s[1], p[1], d[1])
        if oh is not None and ow is not None:
            nbytes = n * c * k[0] * k[1] * oh * ow * 8
            guard_bytes(nbytes)
            valid = nbytes <= MAX_OUT_BYTES and _real_array(x) and stride is not None
    got = call_c(fastconv.unfold, x, kernel, dilation=dilation, padding=pad, stride=stride,
                 valid=valid)
    if got is None:
        return
    x = as_float(x)
    k, s, p, d = _window_params(kernel, stride, pad, dilation)
    x4 = x[None] if x.ndim == 3 else x
    n, c, h, w = x4.shape

    def check():
        if got.size == 0:
            oh = _out(h, k[0], s[0], p[0], d[0])
            ow = _out(w, k[1], s[1], p[1], d[1])
            want_shape = (n, c * k[0] * k[1], oh * ow)
            assert got.shape == (want_shape[1:] if x.ndim == 3 else want_shape)
            assert got.dtype == x.dtype
            return
        if _padded_cells(n, c, h, w, p) + got.size <= MAX_NUMPY_CELLS:
            assert_identical(got, call_numpy(fastconv.unfold, x, k, dilation=d, padding=p,
                                              stride=s))
        vals = _gather(x4, k, s, p, d)
        want = np.ascontiguousarray(vals.transpose(0, 1, 3, 5, 2, 4)).reshape(
            n, c * k[0] * k[1], -1) if vals.size else np.zeros(
            (n, c * k[0] * k[1], vals.shape[2] * vals.shape[4]), x.dtype)
        assert_identical(got, want[0] if x.ndim == 3 else want)
    check()


def run_pool(op, x, kernel, stride, pad):
    params = _window_params(kernel, stride, pad)
    fn = fastconv.max_pool2d if op == "max_pool2d" else fastconv.avg_pool2d
    extra = {"return_indices": True} if op == "max_pool2d" else {}
    got = call_c(fn, x, kernel, stride, pad, **extra)
    if got is None:
        return
    x = as_float(x)
    k, s, p, _ = params
    n, c, h, w = x.shape
    cheap = _padded_cells(n, c, h, w, p) * (1 + k[0] * k[1]) <= MAX_NUMPY_CELLS

    def check():
        if op == "max_pool2d":
            out, idx = got
            if cheap:
                want_out, want_idx = call_numpy(fn, x, k, s, p, return_indices=True)
            else:
                want_out, want_idx = direct_max_pool(x, k, s, p)
            assert_identical(out, want_out)
            assert_identical(idx, want_idx)
        else:
            if cheap:
                want = call_numpy(fn, x, k, s, p)
                abs_sum = call_numpy(fn, _finite_abs(x), k, s, p)
            else:
                want = direct_avg_pool(x, k, s, p)
                abs_sum = direct_avg_pool(_finite_abs(x), k, s, p)
            assert_sum_close(got, want, abs_sum, x.dtype, scale=k[0] * k[1])
    check()


# --- adjoint ops ---------------------------------------------------------------------------

@FUZZ
@given(st.data())
def test_fuzz_adjoint_ops(data):
    op = data.draw(st.sampled_from(["col2im", "fold", "max_pool2d_backward",
                                    "avg_pool2d_backward"]), label="op")
    n, c = data.draw(st.integers(0, 3), label="n"), data.draw(st.integers(1, 3), label="c")
    h, w = data.draw(st.integers(1, 7), label="h"), data.draw(st.integers(1, 7), label="w")
    spec = data.draw(array_spec(), label="values")
    shape = (n, c, h, w)
    if data.draw(st.integers(0, 99), label="garbage shape?") < 10:
        shape = data.draw(st.sampled_from([
            None, "abcd", (n, c, h), (n, c, h, w, 1), (n, 0, h, w), (-1, c, h, w),
            (n, c, 2**40, 2**40), (2**62, c, h, w), (n, c, 2**31, 1), (n, c, h, 1.5),
            (n, c, np.int64(h), w), np.array(shape), (True, c, h, w)]), label="input_shape")
    if op == "max_pool2d_backward":
        run_max_pool_backward(data, shape, spec)
        return
    kernel = data.draw(sometimes_garbage(size_arg(1, 4), rate=10), label="kernel")
    stride = data.draw(sometimes_garbage(size_arg(1, 4), rate=10), label="stride")
    if op == "avg_pool2d_backward":
        k = _try(V.positive_pair, kernel, "k") or (1, 1)
        pad = data.draw(sometimes_garbage(st.tuples(st.integers(0, k[0] // 2),
                                                    st.integers(0, k[1] // 2)), rate=10),
                        label="padding")
        if data.draw(st.integers(0, 99), label="huge?") < 10:
            big = data.draw(HUGE_WINDOW, label="huge")
            kernel, pad, stride = big, big // 2, data.draw(st.sampled_from([1, big]))
        run_avg_pool_backward(data, shape, kernel, stride, pad, spec)
        return
    pad = data.draw(sometimes_garbage(size_arg(0, 3), rate=10), label="pad")
    dilation = data.draw(sometimes_garbage(size_arg(1, 3), rate=10), label="dilation") \
        if op == "fold" else 1
    if data.draw(st.integers(0, 99), label="huge?") < 10:
        big = data.draw(HUGE_WINDOW, label="huge")
        pad, stride = big, big
    run_col2im_fold(data, op, shape, kernel, stride, pad, dilation, spec)


def _input_shape_bytes(shape):
    dims = _try(V.shape4, shape, "input_shape")
    return None if dims is None else math.prod(dims) * 8


def _cols_shape(op, shape, kernel, stride, pad, dilation):
    """The shape the columns must have, or None if the arguments are invalid."""
    dims = _try(V.shape4, shape, "s")
    params = _window_params(kernel, stride, pad, dilation)
    if dims is None or params is None:
        return None
    (n, c, h, w), (k, s, p, d) = dims, params
    oh, ow = _out(h, k[0], s[0], p[0], d[0]), _out(w, k[1], s[1], p[1], d[1])
    if oh is None or ow is None:
        return None
    cols = (n * oh * ow, c * k[0] * k[1]) if op == "col2im" else (n, c * k[0] * k[1], oh * ow)
    return cols if max(cols) <= 1 << 16 and math.prod(cols) <= 1 << 16 else None


def run_col2im_fold(data, op, shape, kernel, stride, pad, dilation, spec):
    guard_bytes(_input_shape_bytes(shape))
    cols_shape = _cols_shape(op, shape, kernel, stride, pad, dilation)
    if cols_shape is None or data.draw(st.integers(0, 99), label="wrong cols?") < 5:
        cols_shape = data.draw(st.sampled_from([(0, 0), (3, 4), (1, 9, 16), (2, 2, 2, 2), (5,)]),
                               label="cols shape")
    cols = make_array(cols_shape, spec)
    if op == "col2im":
        if isinstance(kernel, tuple) and len(kernel) == 2:
            fh, fw = kernel
        else:
            fh = fw = kernel
        got = call_c(fastconv.col2im, cols, shape, fh, fw, stride=stride, pad=pad)
        # As functional does: a pair given as filter_h counts as its first entry
        # (BUG_FILTER_PAIR in test_bad_input.py).
        kernel = (_try(V.positive_pair, fh, "f") or (fh,))[0], \
            (_try(V.positive_pair, fw, "f") or (fw,))[0]
    else:
        output_size = shape[2:] if isinstance(shape, tuple) and len(shape) == 4 else shape
        got = call_c(fastconv.fold, cols, output_size, kernel, dilation=dilation, padding=pad,
                     stride=stride)
    if got is None:
        return
    cols = as_float(cols)
    k, s, p, d = _window_params(kernel, stride, pad, dilation)
    dims = got.shape
    if op == "fold" and cols.ndim == 2:
        cols = cols[None]
        dims = (1,) + dims
    n, c, h, w = dims
    if cols.size == 0:          # nothing to sum: all zeros (or empty)
        assert not np.any(got) and got.dtype == cols.dtype
        return
    if op == "col2im":
        oh, ow = _out(h, k[0], s[0], p[0]), _out(w, k[1], s[1], p[1])
        vals = cols.reshape(n, oh, ow, c, k[0], k[1]).transpose(0, 3, 1, 4, 2, 5)
    else:
        oh, ow = _out(h, k[0], s[0], p[0], d[0]), _out(w, k[1], s[1], p[1], d[1])
        vals = cols.reshape(n, c, k[0], k[1], oh, ow).transpose(0, 1, 4, 2, 5, 3)

    def check():
        want = _scatter(vals, (n, c, h, w), k, s, p, d)
        abs_sum = _scatter(_finite_abs(vals), (n, c, h, w), k, s, p, d)
        assert_sum_close(got.reshape(n, c, h, w), want, abs_sum, cols.dtype)
        if _padded_cells(n, c, h, w, p) <= MAX_NUMPY_CELLS:
            if op == "col2im":
                ref = call_numpy(fastconv.col2im, cols, (n, c, h, w), *k, stride=s, pad=p)
            else:
                ref = call_numpy(fastconv.fold, cols, (h, w), k, dilation=d, padding=p,
                                 stride=s)
            assert_sum_close(got.reshape(n, c, h, w), ref.reshape(n, c, h, w), abs_sum,
                             cols.dtype)
    check()


def run_avg_pool_backward(data, shape, kernel, stride, pad, spec):
    guard_bytes(_input_shape_bytes(shape))
    dims = _try(V.shape4, shape, "s")
    params = _window_params(kernel, stride, pad)
    dout_shape = (1, 1, 1, 1)
    if dims is not None and params is not None:
        (n, c, h, w), (k, s, p, _) = dims, params
        oh, ow = _out(h, k[0], s[0], p[0]), _out(w, k[1], s[1], p[1])
        if oh is not None and ow is not None and max(oh, ow) <= 1 << 16 \
                and n * c * oh * ow <= 1 << 16:
            dout_shape = (n, c, oh, ow)
    if data.draw(st.integers(0, 99), label="wrong dout?") < 5:
        dout_shape = data.draw(st.sampled_from([(0, 1, 1, 1), (1, 1, 2), (2, 1, 1, 1)]))
    dout = make_array(dout_shape, spec)
    got = call_c(fastconv.avg_pool2d_backward, dout, shape, kernel, stride, pad)
    if got is None:
        return
    dout = as_float(dout)
    k, s, p, _ = params
    n, c, h, w = got.shape

    def check():
        want = direct_avg_pool_backward(dout, got.shape, k, s, p)
        abs_sum = direct_avg_pool_backward(_finite_abs(dout), got.shape, k, s, p)
        assert_sum_close(got, want, abs_sum, dout.dtype)
        if _padded_cells(n, c, h, w, p) * (1 + k[0] * k[1]) <= MAX_NUMPY_CELLS:
            ref = call_numpy(fastconv.avg_pool2d_backward, dout, got.shape, k, s, p)
            assert_sum_close(got, ref, abs_sum, dout.dtype)
    check()


INDEX_GARBAGE = ["out of range", "negative", "huge", "int32", "uint64", "float", "big-endian",
                 "strided", "wrong shape", "none", "list"]


def run_max_pool_backward(data, shape, spec):
    guard_bytes(_input_shape_bytes(shape))
    dims = _try(V.shape4, shape, "s") or (1, 1, 2, 2)
    n, c, h, w = dims
    oh, ow = data.draw(st.integers(0, 4), label="oh"), data.draw(st.integers(0, 4), label="ow")
    rng = np.random.default_rng(spec["seed"])
    hw = max(h * w, 1) if h * w < 2**62 else 2**62
    idx = rng.integers(0, hw, size=(n, c, oh, ow), dtype=np.int64) if n * c < 2**16 else \
        np.zeros((1, 1, 1, 1), np.int64)
    # dout's shape when idx gives none: that of the indices as drawn, which stay
    # small even when (n, c) is astronomically large.
    base_shape = idx.shape
    how = data.draw(st.sampled_from(INDEX_GARBAGE + ["valid"] * 6), label="indices")
    if how == "out of range" and idx.size:
        idx.flat[0] = hw
    elif how == "negative" and idx.size:
        idx.flat[-1] = -1
    elif how == "huge" and idx.size:
        idx.flat[0] = 2**63 - 1
    elif how == "int32":
        idx = idx.astype(np.int32)
    elif how == "uint64":
        idx = idx.astype(np.uint64)
    elif how == "float":
        idx = idx.astype(float)
    elif how == "big-endian":
        idx = idx.astype(">i8")
    elif how == "strided":
        base = np.zeros(idx.shape[:-1] + (2 * idx.shape[-1],), np.int64)
        base[..., ::2] = idx
        idx = base[..., ::2]
    elif how == "wrong shape":
        idx = idx[..., :-1] if idx.ndim and idx.shape[-1] else idx[None]
    elif how == "none":
        idx = None
    elif how == "list":
        idx = idx.tolist()
    dout = make_array(np.shape(idx) if how not in ("none", "list", "wrong shape")
                      else base_shape, spec)
    got = call_c(fastconv.max_pool2d_backward, dout, idx, shape)
    if got is None:
        return
    dout = as_float(dout)
    idx = np.asarray(idx)
    want = call_numpy(fastconv.max_pool2d_backward, dout, idx, got.shape)
    abs_sum = call_numpy(fastconv.max_pool2d_backward, _finite_abs(dout), idx, got.shape)
    assert_sum_close(got, want, abs_sum, dout.dtype)


# --- regressions: bugs the fuzzer found, since fixed ----------------------------------------

X = np.arange(1, 26, dtype=np.float64).reshape(1, 1, 5, 5)


@pytest.mark.parametrize("call", [
    lambda: fastconv.im2col(X, 3, 3, stride=2**63),
    lambda: fastconv.unfold(X, 1, dilation=2**63),
    lambda: fastconv.col2im(np.ones((1, 9)), (1, 1, 5, 5), 3, 3, stride=2**63),
    lambda: fastconv.max_pool2d(X, 2, stride=2**63),
], ids=["im2col stride", "unfold dilation", "col2im stride", "max_pool2d stride"])
def test_fixed_window_argument_beyond_int64_is_a_value_error(call):
    with fastconv.use_backend("c"):
        with pytest.raises((ValueError, TypeError)):
            call()


def _near_int64_case(op):
    """Arguments whose padded size exceeds INT64_MAX though the result is tiny."""
    if op == "im2col":    # rows: padding, x[0, 0, 0, 0], padding
        got = fastconv.im2col(X, 1, 1, stride=2**62, pad=(2**62, 0))
        return got, np.array([[0.0], [1.0], [0.0]])
    if op == "unfold":    # blocks: a padding row, x's first row, a padding row
        got = fastconv.unfold(X, 1, padding=(2**62, 0), stride=(2**62, 1))
        return got, np.concatenate([np.zeros(5), X[0, 0, 0], np.zeros(5)]).reshape(1, 1, 15)
    got, idx = fastconv.max_pool2d(X, 2**63 - 1, padding=2**62 - 1, return_indices=True)
    return (got, idx), (np.full((1, 1, 1, 1), 25.0), np.full((1, 1, 1, 1), 24))


@pytest.mark.parametrize("op", ["im2col", "unfold"])
def test_fixed_padding_near_int64_gives_the_right_result_or_a_value_error(op):
    with fastconv.use_backend("c"):
        try:
            got, want = _near_int64_case(op)
        except ValueError:
            return
    np.testing.assert_array_equal(got, want)


def test_max_pool_padding_near_int64_gives_the_right_result_or_a_value_error():
    """Right today only because the signed overflow in FC_OUT_SIZE wraps back:
    scripts/asan.sh (UBSan) reports it; the int64 fix should refuse such padding."""
    with fastconv.use_backend("c"):
        try:
            (out, idx), (want_out, want_idx) = _near_int64_case("max_pool2d")
        except ValueError:
            return
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("op", ["avg_pool2d", "avg_pool2d_backward"])
def test_fixed_avg_pool_huge_window_area(op):
    k, p = 2**32, 2**31
    with fastconv.use_backend("c"):
        try:
            if op == "avg_pool2d":
                got = fastconv.avg_pool2d(X, k, padding=p)
                want = direct_avg_pool(X, (k, k), (k, k), (p, p))
            else:
                dout = np.ones((1, 1, 1, 1))
                got = fastconv.avg_pool2d_backward(dout, X.shape, k, padding=p)
                want = direct_avg_pool_backward(dout, X.shape, (k, k), (k, k), (p, p))
        except ValueError:
            return
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_fixed_empty_max_pool_with_huge_padding():
    with fastconv.use_backend("c"):
        out, idx = fastconv.max_pool2d(np.zeros((0, 1, 1, 1)), 2**20, padding=2**19,
                                       return_indices=True)
    assert out.shape == idx.shape == (0, 1, 1, 1)


def test_oracles_agree_with_the_numpy_backend_on_ordinary_cases():
    """The direct oracles used above for absurd windows are themselves right."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    x[0, 1, 2, 3] = np.nan
    for k, s, p in [((3, 2), (1, 2), (1, 1)), ((2, 2), (2, 2), (0, 1)), ((3, 3), (3, 1), (1, 0))]:
        with fastconv.use_backend("numpy"):
            out, idx = fastconv.max_pool2d(x, k, s, p, return_indices=True)
            avg = fastconv.avg_pool2d(x, k, s, p)
            col = fastconv.im2col(x, *k, stride=s, pad=p)
            back = fastconv.avg_pool2d_backward(avg, x.shape, k, s, p)
        mo, mi = direct_max_pool(x, k, s, p)
        assert_identical(mo, out)
        assert_identical(mi, idx)
        np.testing.assert_allclose(direct_avg_pool(x, k, s, p), avg, rtol=1e-12)
        np.testing.assert_allclose(direct_avg_pool_backward(avg, x.shape, k, s, p), back,
                                   rtol=1e-12)
        vals = _gather(x, k, s, p, (1, 1))
        assert_identical(np.ascontiguousarray(vals.transpose(0, 2, 4, 1, 3, 5)).reshape(
            col.shape), col)
        with fastconv.use_backend("numpy"):
            c2 = fastconv.col2im(col, x.shape, *k, stride=s, pad=p)
        np.testing.assert_allclose(_scatter(vals, x.shape, k, s, p, (1, 1)), c2, rtol=1e-12)


# --- the convolution family, the direct kernel's entry points included -----------------

@FUZZ
@given(st.data())
def test_fuzz_conv2d_family(data):
    """conv2d and its two gradients on the C backend: zero and huge sizes, any
    stride and padding. Stride-1 float32 calls with enough output pixels run the
    direct kernel; every call must refuse cleanly or equal the NumPy backend."""
    n, c, h, w = (data.draw(st.integers(0, 3), label="n"),
                  *(data.draw(st.integers(0, 9), label=a) for a in "chw"))
    fn, kh, kw = (data.draw(st.integers(0, 5), label=a) for a in ("fn", "kh", "kw"))
    wc = data.draw(st.sampled_from([c, c + 1]), label="weight channels")
    stride = data.draw(st.one_of(st.just(1), st.integers(0, 3), HUGE_WINDOW), label="stride")
    pad = data.draw(st.one_of(st.integers(0, 3), st.integers(0, 40), HUGE_WINDOW), label="pad")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((fn, wc, kh, kw)).astype(dtype)
    bias = rng.standard_normal(fn).astype(dtype)
    valid = (min(c, h, w, fn, kh, kw) >= 1 and wc == c and stride >= 1
             and pad <= 40 and stride <= 3 and kh <= h + 2 * pad and kw <= w + 2 * pad)
    if stride >= 1 and kh >= 1 and kw >= 1:
        oh, ow = _out(h, kh, stride, pad), _out(w, kw, stride, pad)
        if oh is not None and ow is not None:
            # The output, and the patch matrix the patch-path gradients build.
            guard_bytes(max(n, 1) * max(fn, c * kh * kw, 1) * oh * ow * 8)
    out = call_c(fastconv.conv2d, x, weight, bias, stride, pad, valid=valid)
    if out is None:
        return
    if out.size == 0:  # an empty batch or filter bank: nothing to compare but the shape
        assert out.shape == (n, fn, _out(h, kh, stride, pad), _out(w, kw, stride, pad))
        return
    # The C call above ran; the NumPy oracle would pad the input for real.
    assume(_padded_cells(n, c, h, w, (pad, pad)) <= MAX_NUMPY_CELLS)
    want = call_numpy(fastconv.conv2d, x, weight, bias, stride, pad)
    scale = call_numpy(fastconv.conv2d, np.abs(x), np.abs(weight), np.abs(bias), stride, pad)
    terms = c * kh * kw + 1
    bound = 4 * terms * np.finfo(dtype).eps * scale + np.finfo(dtype).tiny
    assert out.shape == want.shape and out.dtype == want.dtype
    assert np.all(np.abs(out - want) <= bound)
    d = rng.standard_normal(out.shape).astype(dtype)
    dw = call_c(fastconv.conv2d_weight_grad, x, d, weight.shape, stride, pad, valid=True)
    dx = call_c(fastconv.conv2d_input_grad, d, weight, x.shape, stride, pad, valid=True)
    dw_want = call_numpy(fastconv.conv2d_weight_grad, x, d, weight.shape, stride, pad)
    dx_want = call_numpy(fastconv.conv2d_input_grad, d, weight, x.shape, stride, pad)
    dw_scale = call_numpy(fastconv.conv2d_weight_grad, np.abs(x), np.abs(d), weight.shape,
                          stride, pad)
    dx_scale = call_numpy(fastconv.conv2d_input_grad, np.abs(d), np.abs(weight), x.shape,
                          stride, pad)
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(dw - dw_want) <= 4 * (n * out.shape[2] * out.shape[3] + 1) * eps
                  * dw_scale + np.finfo(dtype).tiny)
    assert np.all(np.abs(dx - dx_want) <= 4 * (fn * kh * kw + 1) * eps * dx_scale
                  + np.finfo(dtype).tiny)
