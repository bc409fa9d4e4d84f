"""Feature maps kept in the channel-blocked layout from one layer to the next.

The blocked convolution plan (:class:`fastconv.ops.conv_plans.Blocked`) takes
NCHW and gives NCHW, converting at both ends of every call. A network's
test-time pass does not need that: a convolution's blocked output can go
straight into a ReLU (elementwise: any layout), a pooling window (each
channel block pooled lane by lane, csrc/pool_blocked.c) and the next
convolution, and be converted once, before a layer that needs NCHW. Every
value is the one the NCHW path computes with the blocked plan: the same
kernels, and pooling with pooling.c's comparisons and summation order.

Only the network's pass uses this (:mod:`fastconv.nn.blocked_pass`); the
public ops keep NCHW.
"""
import numpy as np

from .. import _runtime as R
from .conv_plans import BLOCKED_NCHW_MAX_CHANNELS, PLANS, _ceil

__all__ = ["BlockedMaps", "serves_conv", "conv", "pool", "relu"]


class BlockedMaps:
    """Maps of logical shape (N, C, H, W) stored as (N, ceil(C/cb), H, W, cb)
    float32 in ``data`` (flat), the lanes past C zero."""

    __slots__ = ("data", "shape", "cb")

    def __init__(self, data, shape, cb):
        self.data, self.shape, self.cb = data, tuple(shape), cb

    def to_nchw(self):
        """A fresh (N, C, H, W) float32 array."""
        out = np.empty(self.shape, dtype=np.float32)
        R.ext.blocked_to_nchw(self.data, self.cb, R.threads_for(out.size), out)
        return out


class Scratch:
    """One layer's buffers for the blocked pass, reused from call to call."""

    def __init__(self):
        self._buffers = {}

    def get(self, name, size, avoid=None):
        """A flat float32 buffer of ``size`` values, never the array ``avoid``
        (the input: a layer used twice in a row must not write over it)."""
        size = max(int(size), 1)
        buf = self._buffers.get(name)
        if buf is None or buf.size != size or buf is avoid:
            buf = self._buffers[name] = np.empty(size, dtype=np.float32)
        return buf


def serves_conv(x_shape, w_shape, dtype, win):
    """Can the blocked kernels run this convolution?"""
    return PLANS["blocked"].serves(x_shape, w_shape, dtype, win)


def conv(x, w, b, win, relu, scratch):
    """Convolution of NCHW ``x`` (ndarray) or :class:`BlockedMaps` by checked
    float32 ``w`` (FN, C, KH, KW) and ``b`` (FN,) or None; blocked out."""
    isa = R.ext.blocked_isa()
    cb = R.ext.blocked_cb(isa)
    fn, c, kh, kw = w.shape
    ph, pw = win.padding
    if isinstance(x, BlockedMaps) and c <= BLOCKED_NCHW_MAX_CHANNELS:
        # A block of one or a few channels and zeros: read as NCHW (blocks of
        # one), as the blocked plan does, not 16 lanes of which most are zero.
        x = x.to_nchw()
    n, _, h, wd = x.shape
    if isinstance(x, BlockedMaps):
        cbi, xin = cb, x.data
    else:
        if c <= BLOCKED_NCHW_MAX_CHANNELS:  # read as NCHW: blocks of one channel
            cbi, xin = 1, np.ascontiguousarray(x).reshape(-1)
        else:
            cbi = cb
            xin = scratch.get("x", n * _ceil(c, cb) * cb * h * wd)
            R.ext.blocked_from_nchw(np.ascontiguousarray(x), cb, R.threads_for(x.size), xin)
    oh, ow = win.out_size(h, wd)
    nt = R.threads_for(n * fn * oh * ow)
    wp = scratch.get("w", R.ext.blocked_packed_size(fn, c, kh, kw, cbi, cb))
    R.ext.blocked_pack_weight(np.ascontiguousarray(w), cbi, cb, wp)
    ws = scratch.get("ws", R.ext.conv2d_blocked_workspace(n, c, h, wd, cbi, fn, kh, kw,
                                                         ph, pw, isa, nt))
    out = scratch.get("out", n * _ceil(fn, cb) * cb * oh * ow, avoid=xin)
    bias = None if b is None else np.ascontiguousarray(b, dtype=np.float32)
    R.ext.conv2d_blocked(xin, n, c, h, wd, cbi, wp, bias, fn, kh, kw, ph, pw, relu, isa, nt,
                         ws, out)
    return BlockedMaps(out, (n, fn, oh, ow), cb)


def pool(maps, win, mode, scratch, relu=False):
    """Max (``mode="max"``) or average pooling of blocked maps by ``win``
    (a pooling window: padding at most half of it), then ``relu`` applies
    :func:`relu` in the same pass."""
    n, c, h, w = maps.shape
    if h < 1 or w < 1:
        raise ValueError(f"x must have H, W >= 1 to be pooled, got shape {maps.shape}")
    oh, ow = win.out_size(h, w)
    cb = maps.cb
    out = scratch.get("out", n * _ceil(c, cb) * cb * oh * ow, avoid=maps.data)
    (kh, kw), (sh, sw), (ph, pw) = win.kernel, win.stride, win.padding
    R.ext.blocked_pool(maps.data, n, c, h, w, cb, kh, kw, sh, sw, ph, pw,
                       0 if mode == "max" else 1, relu, R.threads_for(n * c * oh * ow), out)
    return BlockedMaps(out, (n, c, oh, ow), cb)


def relu(maps):
    """np.maximum(x, 0) in place (the zero lanes stay zero)."""
    np.maximum(maps.data, 0, out=maps.data)
    return maps
