"""64-bit indexing: results with more than 2**31 elements, on the C backend.

Each test allocates one array of about 8.6 GB (float32, just over 2**31
elements) and checks entries on both sides of flat index 2**31 (and byte
offset 2**33) against the definition, computed directly from the small
input. A kernel with a 32-bit index anywhere would write those entries into
the wrong place, or crash. Peak memory stays under ~9.5 GB; each test skips
itself when /proc/meminfo's MemAvailable is short of what it needs.

Marked slow (a minute or so on 2 cores); run with ``-m slow`` alone.
"""
import numpy as np
import pytest

import fastconv

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif("c" not in fastconv.available_backends(),
                       reason="the C extension is not built"),
]

GB = 1 << 30
LIMIT = 2**31


def mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def need(nbytes):
    """Skip unless nbytes plus 1.5 GB of headroom are available."""
    avail = mem_available()
    if avail is None:
        pytest.skip("cannot read MemAvailable from /proc/meminfo")
    if avail < nbytes + 1.5 * GB:
        pytest.skip(f"needs {(nbytes + 1.5 * GB) / GB:.1f} GB of available memory, "
                    f"{avail / GB:.1f} GB available")


@pytest.fixture
def c_backend():
    with fastconv.use_backend("c"):
        yield


def sample_positions(rng, total, count, beyond=LIMIT):
    """Flat positions: the edges of 2**31, the last one, and random ones on both sides."""
    fixed = [0, beyond - 1, beyond, beyond + 1, total - 1]
    below = rng.integers(0, beyond, count // 2)
    above = rng.integers(beyond, total, count - count // 2)
    return np.unique(np.concatenate([fixed, below, above]).astype(np.int64))


def coverage(size, k, out):
    """How many of the ``out`` windows (stride 1, no padding) cover each position."""
    pos = np.arange(size)
    return np.minimum(pos, out - 1) - np.maximum(pos - k + 1, 0) + 1


def test_im2col_and_col2im_beyond_2_to_the_31(c_backend):
    # 1024x1024 input, 48x48 filter: 977*977 rows of 2304 columns = 2.2e9 elements.
    h = w = 1024
    k = 48
    oh = ow = h - k + 1
    rows, cols = oh * ow, k * k
    total = rows * cols
    assert total > LIMIT
    need(total * 4)
    rng = np.random.default_rng(0)
    # Small integers: every col2im sum below is exact in float32.
    x = rng.integers(0, 8, (1, 1, h, w)).astype(np.float32)

    col = fastconv.im2col(x, k, k)
    assert col.shape == (rows, cols) and col.dtype == np.float32

    flat = sample_positions(rng, total, 1000)
    r, c = np.divmod(flat, cols)
    o_h, o_w = np.divmod(r, ow)
    i, j = np.divmod(c, k)
    want = x[0, 0, o_h + i, o_w + j]
    got = col[r, c]
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"{bad.size} of {flat.size} sampled entries wrong, first at flat "
                           f"index {flat[bad[0]]}: {got[bad[0]]} != {want[bad[0]]}")
    # Whole rows on both sides of the boundary, and the very last row.
    for row in (LIMIT // cols, LIMIT // cols + 1, rows - 1):
        a, b = divmod(row, ow)
        np.testing.assert_array_equal(col[row], x[0, 0, a:a + k, b:b + k].ravel())

    # col2im reads every one of those entries back: col2im(im2col(x)) = x * coverage.
    back = fastconv.col2im(col, x.shape, k, k)
    del col
    cover = coverage(h, k, oh)[:, None] * coverage(w, k, ow)[None, :]
    np.testing.assert_array_equal(back[0, 0], x[0, 0] * cover)


def test_max_pool_forward_and_backward_beyond_2_to_the_31(c_backend):
    # One plane of 65536 x 32832 = 2,151,677,952 float32: the flat argmax of the
    # windows in the last 32 window rows lies beyond 2**31.
    h, w = 65536, 32832
    kh, kw = 4, 64
    total = h * w
    assert total > LIMIT
    need(total * 4)
    rng = np.random.default_rng(1)
    x = np.empty((1, 1, h, w), np.float32)
    rows = rng.standard_normal(h).astype(np.float32)
    cols = rng.standard_normal(w).astype(np.float32)
    np.add(rows[:, None], cols[None, :], out=x[0, 0])

    out, idx = fastconv.max_pool2d(x, (kh, kw), return_indices=True)
    oh, ow = h // kh, w // kw
    assert out.shape == idx.shape == (1, 1, oh, ow)

    first_beyond = LIMIT // w // kh            # first window row whose cells pass 2**31
    wi = np.concatenate([rng.integers(0, oh, 500), rng.integers(first_beyond, oh, 500),
                         [oh - 1]])
    wj = np.concatenate([rng.integers(0, ow, 1000), [ow - 1]])
    beyond = 0
    for a, b in zip(wi, wj):
        window = x[0, 0, a * kh:(a + 1) * kh, b * kw:(b + 1) * kw]
        m = int(np.argmax(window))              # first maximum, row-major
        want_idx = (a * kh + m // kw) * w + b * kw + m % kw
        assert idx[0, 0, a, b] == want_idx, (a, b, idx[0, 0, a, b], want_idx)
        assert out[0, 0, a, b] == window.ravel()[m]
        beyond += want_idx >= LIMIT
    assert beyond >= 400, "the sample must reach past index 2**31"
    del x, window           # the last window is a view: it would keep x's 8.6 GB alive

    dout = rng.uniform(1, 2, out.shape).astype(np.float32)   # never zero
    dx = fastconv.max_pool2d_backward(dout, idx, (1, 1, h, w))
    assert dx.shape == (1, 1, h, w) and dx.dtype == np.float32
    flat = dx.reshape(-1)
    # Windows do not overlap, so every gradient lands alone on its own index...
    np.testing.assert_array_equal(flat[idx.ravel()], dout.ravel())
    # ...and nothing else is written (this reads all 2.15e9 entries).
    assert np.count_nonzero(flat) == dout.size
