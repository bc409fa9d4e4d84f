"""Softmax with the cross-entropy loss: the end of every net."""
import numpy as np

from .arrays import as_float

__all__ = ["SoftmaxWithLoss", "softmax"]


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss, averaged over the batch.

    Notes
    -----
    ``forward(x, t)``: x (N, K) scores; t either (N,) (or (N, 1)) integer
    class labels in ``[0, K)`` or (N, K) one-hot (or any probability) rows.
    Returns the mean loss as a scalar of x's dtype. The log-softmax is computed
    as ``x - max - log(sum(exp(x - max)))``, which never overflows nor takes
    the log of zero. ``backward(dout=1)`` returns ``dout * (softmax(x) - t) / N``.
    """

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        x = as_float(x)
        if x.ndim != 2:
            raise ValueError(f"SoftmaxWithLoss expects scores of shape (N, K), got {x.shape}")
        n, k = x.shape
        t = np.asarray(t)
        shifted = x - x.max(axis=1, keepdims=True)
        log_y = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.y = np.exp(log_y)
        if t.shape == x.shape:
            t = t.astype(x.dtype, copy=False)
            loss = -(t * log_y).sum() / n
        elif t.size == n and t.ndim <= 2:
            t = t.reshape(n)  # the book's gradient check passes labels as (N, 1)
            if t.dtype.kind not in "iu":
                raise TypeError(f"integer labels must have an integer dtype, got {t.dtype}")
            if t.size and (t.min() < 0 or t.max() >= k):
                raise ValueError(f"labels must lie in [0, {k}), got values in "
                                 f"[{t.min()}, {t.max()}]")
            loss = -log_y[np.arange(n), t].sum() / n
        else:
            raise ValueError(f"t must have shape ({n},) or {x.shape}, got {t.shape}")
        self.t = t
        self.loss = x.dtype.type(loss)
        return self.loss

    def backward(self, dout=1):
        n = self.y.shape[0]
        if self.t.ndim == 2:
            dx = self.y - self.t
        else:
            dx = self.y.copy()
            dx[np.arange(n), self.t] -= 1
        dx *= dout / n
        return dx

    def __repr__(self):
        return "SoftmaxWithLoss()"


def softmax(scores):
    """Row-wise softmax of scores, in float64.

    Parameters
    ----------
    scores : ndarray
        Shape (N, K).

    Returns
    -------
    ndarray
        Probabilities (N, K), float64 (shifted by each row's maximum, so it
        never overflows).
    """
    scores = np.asarray(scores, dtype=np.float64)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
