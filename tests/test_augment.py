"""random_shift against a loop that moves each image by its drawn offset."""
import numpy as np
import pytest

from fastconv.train.augment import random_shift


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_shift_moves_each_image_by_its_offset(dtype):
    x = np.random.default_rng(0).random((6, 2, 7, 5)).astype(dtype)
    out = random_shift(x, 2, np.random.default_rng(1))
    # Replay the generator to learn the offsets it drew (same order of draws).
    rng = np.random.default_rng(1)
    dy, dx = rng.integers(0, 5, size=6) - 2, rng.integers(0, 5, size=6) - 2
    assert out.dtype == dtype and out.shape == x.shape
    for i in range(6):
        want = np.zeros_like(x[i])
        for r in range(7):
            for c in range(5):
                sr, sc = r + dy[i], c + dx[i]
                if 0 <= sr < 7 and 0 <= sc < 5:
                    want[:, r, c] = x[i, :, sr, sc]
        np.testing.assert_array_equal(out[i], want)


def test_zero_shift_is_a_copy():
    x = np.ones((2, 1, 4, 4), np.float32)
    out = random_shift(x, 0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, x)
    assert out is not x


def test_rejects_non_4d():
    with pytest.raises(ValueError, match="x must be a 4-D"):
        random_shift(np.zeros((3, 4)), 1, np.random.default_rng(0))
