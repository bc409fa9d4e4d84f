"""Max pooling's contract, case by case: ties, NaN, -inf, padding, overlap."""
import numpy as np
import pytest

import fastconv

nan, inf = np.nan, np.inf


def pool(x, *args, **kwargs):
    x = np.asarray(x, dtype=np.float64)[None, None]
    out, idx = fastconv.max_pool2d(x, *args, return_indices=True, **kwargs)
    return out[0, 0], idx[0, 0]


def test_ties_go_to_first_in_row_major_order(backend):
    out, idx = pool([[1, 5, 5], [5, 2, 5], [0, 0, 0]], 3)
    assert out[0, 0] == 5 and idx[0, 0] == 1


def test_tie_across_rows(backend):
    out, idx = pool([[0, 0], [7, 7]], 2)
    assert idx[0, 0] == 2


def test_nan_propagates_and_first_nan_wins(backend):
    out, idx = pool([[1, nan, 9], [nan, 2, 3], [4, 5, 6]], 3)
    assert np.isnan(out[0, 0]) and idx[0, 0] == 1


def test_nan_after_the_maximum_still_wins(backend):
    out, idx = pool([[9, 1], [2, nan]], 2)
    assert np.isnan(out[0, 0]) and idx[0, 0] == 3


def test_all_nan_window_points_inside(backend):
    out, idx = pool([[nan, nan], [nan, nan]], 2, padding=1)
    assert np.isnan(out).all()
    assert (idx >= 0).all() and (idx < 4).all()


def test_minus_inf_window_picks_first_real_cell(backend):
    out, idx = pool([[-inf, -inf], [-inf, -inf]], 2, 2, 0)
    assert out[0, 0] == -inf and idx[0, 0] == 0


def test_padding_never_wins_even_against_minus_inf(backend):
    # Every window touches padding and holds only -inf real cells.
    out, idx = pool(np.full((3, 3), -inf), 2, 2, 1)
    assert out.shape == (2, 2)
    assert (out == -inf).all()
    # Each window's first real cell, in its unpadded flat index.
    np.testing.assert_array_equal(idx, [[0, 1], [3, 4]])


def test_padding_never_wins_against_negative_values(backend):
    out, idx = pool([[-5, -4], [-3, -2]], 3, 1, 1)
    assert (out <= -2).all() and out[0, 0] == -2 and idx[0, 0] == 3
    assert out[0, 1] == -2 and out[1, 1] == -2


def test_plus_inf_wins(backend):
    out, idx = pool([[1, inf], [inf, 2]], 2)
    assert out[0, 0] == inf and idx[0, 0] == 1


def test_negative_zero_ties_with_zero(backend):
    out, idx = pool([[-0.0, 0.0]], (1, 2))
    assert idx[0, 0] == 0


def test_overlapping_windows_add_in_backward(backend):
    # The centre is the maximum of all four overlapping 2x2 windows.
    x = np.array([[0, 0, 0], [0, 9, 0], [0, 0, 0]], dtype=np.float64)[None, None]
    out, idx = fastconv.max_pool2d(x, 2, 1, return_indices=True)
    assert (idx == 4).all()
    dout = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]
    dx = fastconv.max_pool2d_backward(dout, idx, x.shape)
    assert dx[0, 0, 1, 1] == 10.0
    assert dx.sum() == 10.0


def test_indices_are_pytorch_flat_format(backend):
    x = np.zeros((1, 2, 4, 6))
    x[0, 1, 3, 5] = 1.0
    _, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    assert idx[0, 1, 1, 2] == 3 * 6 + 5


def test_avg_pool_counts_padding_in_divisor(backend):
    x = np.ones((1, 1, 2, 2))
    out = fastconv.avg_pool2d(x, 2, 2, 1)
    # Each corner window holds one real 1 and three padded zeros.
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 0.25))


def test_backward_rejects_out_of_range_indices(backend):
    dout = np.ones((1, 1, 2, 2))
    for bad in (-1, 16, 2**40):
        idx = np.zeros((1, 1, 2, 2), np.int64)
        idx[0, 0, 1, 1] = bad
        with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\) = \[0, 16\)"):
            fastconv.max_pool2d_backward(dout, idx, (1, 1, 4, 4))
