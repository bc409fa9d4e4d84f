"""The convolution algorithms, one object each, and the planner that picks one.

Every plan computes the same cross-correlation and both of its gradients:

- ``direct``: the C kernel with no patch matrix (stride 1, C backend);
- ``blocked``: the channel-blocked C kernels (float32, stride 1, C backend;
  csrc/conv_blocked.h), with NCHW converted at the plan's edges;
- ``per_image``: unfold per image, one (FN, CKK) x (CKK, L) product per image;
- ``rows``: the book's single (N*OH*OW, CKK) patch matrix and one product.

:func:`choose` looks at the backend, dtype, stride and shapes, never at the
values. The arrays a plan gets are checked already (:mod:`.conv` does that at
the door), so the plans call the unchecked cores of :mod:`.patches`.
"""
import contextlib
import contextvars

import numpy as np

from .. import _runtime as R
from .patches import col2im_core, fold_core, im2col_core, unfold_core

__all__ = ["BLOCKED_MIN_CHANNEL_PRODUCT", "BLOCKED_NCHW_MAX_CHANNELS", "DIRECT_MIN_PIXELS", "PER_IMAGE_MIN_PIXELS", "PLANS",
           "choose", "forced"]

# The direct kernel computes a padded grid of positions; on 8x8 maps a third
# of it is waste, and alone the patch-matrix path was a little faster there
# (benchmarks/conv_layouts.py). But that path's product wakes numpy's BLAS
# workers, whose spinning then slows every OpenMP kernel of the step when numpy
# was imported before fastconv (DeepConvNet: 1.44x); on the direct kernel from
# 8x8 up, the step was as fast in either import order (benchmarks/README.md).
DIRECT_MIN_PIXELS = 64
# At or above this many output pixels per image, one product per image on
# PyTorch's unfold layout gives NCHW directly and wins; below it the book's
# single product wins despite the transposes around it (conv_layouts.py).
PER_IMAGE_MIN_PIXELS = 256
# Values of scratch per image beyond which the patch path (with its own size
# checks) takes over; any real network's layers are far below it.
_DIRECT_SCRATCH_LIMIT = 1 << 28


def _direct_fits(image, fn, padding):
    c, h, w = image
    padded = (h + 2 * padding[0]) * (w + 2 * padding[1])
    return (c + fn + 4) * padded <= _DIRECT_SCRATCH_LIMIT


class PerImage:
    """One product per image on PyTorch's unfold layout: NCHW comes out directly."""

    name = "per_image"
    keeps_input = False  # backward reads the patch matrix, kept in ctx.cols

    def serves(self, x_shape, w_shape, dtype, win):
        return True

    def forward(self, x, w, b, win, ctx, keep, relu=False):
        n, c, _, _ = x.shape
        fn, _, kh, kw = w.shape
        oh, ow = win.out_size(*x.shape[2:])
        cols = unfold_core(x, win, ctx.buffer("cols", (n, c * kh * kw, oh * ow), x.dtype))
        out = np.matmul(w.reshape(fn, -1), cols)                             # (N, FN, L)
        if b is not None:
            out += b[:, None]
        if keep:
            ctx.cols = cols
        out = out.reshape(n, fn, oh, ow)
        return np.maximum(out, 0, out=out) if relu else out

    def patches(self, x, win):
        return unfold_core(x, win)

    def weight_grad(self, x, cols, d, w_shape, win, ctx=None):
        if cols is None:
            cols = self.patches(x, win)
        n, fn = d.shape[:2]
        dmat = d.reshape(n, fn, d.shape[2] * d.shape[3])                     # (N, FN, L)
        # One product per image: numpy's stacked matmul leaves BLAS for a slow
        # loop when the second operand is transposed (measured 20x).
        dw = np.zeros((fn, cols.shape[1]), dtype=d.dtype)
        part = np.empty_like(dw)
        for i in range(n):
            dw += np.dot(dmat[i], cols[i].T, out=part)
        return dw.reshape(w_shape)

    def input_grad(self, d, w, x_shape, win, ctx=None):
        n, c = x_shape[:2]
        fn, _, kh, kw = w.shape
        dmat = d.reshape(n, fn, d.shape[2] * d.shape[3])
        out = ctx.buffer("dcols", (n, c * kh * kw, dmat.shape[2]), d.dtype) if ctx else None
        dcols = np.matmul(np.ascontiguousarray(w.reshape(fn, -1).T), dmat, out=out)
        return fold_core(dcols, x_shape, win)


class Rows:
    """The book's single patch matrix: one large product for the whole batch."""

    name = "rows"
    keeps_input = False

    def serves(self, x_shape, w_shape, dtype, win):
        return True

    def forward(self, x, w, b, win, ctx, keep, relu=False):
        n = x.shape[0]
        fn = w.shape[0]
        oh, ow = win.out_size(*x.shape[2:])
        cols = im2col_core(x, win)                                           # (N*L, CKK)
        prod = cols @ w.reshape(fn, -1).T                                    # (N*L, FN)
        # Back to NCHW in memory, the bias added on the way: ReLU's mask and
        # product on a transposed view were several times slower than on
        # contiguous maps (benchmarks/README.md).
        out = np.empty((n, fn, oh, ow), dtype=prod.dtype)
        nchw = prod.reshape(n, oh, ow, fn).transpose(0, 3, 1, 2)
        if b is not None:
            np.add(nchw, b[:, None, None], out=out)
        else:
            out[...] = nchw
        if keep:
            ctx.cols = cols
        return np.maximum(out, 0, out=out) if relu else out

    def patches(self, x, win):
        return im2col_core(x, win)

    def weight_grad(self, x, cols, d, w_shape, win, ctx=None):
        if cols is None:
            cols = self.patches(x, win)
        fn = w_shape[0]
        return (d.transpose(0, 2, 3, 1).reshape(-1, fn).T @ cols).reshape(w_shape)

    def input_grad(self, d, w, x_shape, win, ctx=None):
        fn = w.shape[0]
        dmat = d.transpose(0, 2, 3, 1).reshape(-1, fn)                      # (N*L, FN)
        return col2im_core(dmat @ w.reshape(fn, -1), x_shape, win)


class Direct:
    """The C kernel with no patch matrix: stride 1, float32 or float64."""

    name = "direct"
    keeps_input = True  # backward reads x itself

    def serves(self, x_shape, w_shape, dtype, win):
        return (R.use_c() and np.dtype(dtype) in (np.float32, np.float64)
                and win.stride == (1, 1) and R.ext.conv_available()
                and _direct_fits(x_shape[1:], w_shape[0], win.padding))

    def forward(self, x, w, b, win, ctx, keep, relu=False):
        n = x.shape[0]
        fn = w.shape[0]
        oh, ow = win.out_size(*x.shape[2:])
        out = np.empty((n, fn, oh, ow), dtype=x.dtype)
        if out.size:
            R.ext.conv2d(x, w, b, *win.padding, relu, R.threads_for(out.size), out)
        return out

    def weight_grad(self, x, cols, d, w_shape, win, ctx=None):
        dw = np.empty(w_shape, dtype=x.dtype)
        if dw.size:
            R.ext.conv2d_weight_grad(x, d, *win.padding, R.threads_for(d.size), dw)
        # The kernel also multiplies the zeros of grad_output's padding columns
        # by input pixels: with finite inputs those terms are exact zeros, but
        # 0 * inf is NaN. A finite dW therefore is the true sum; a non-finite
        # one is recomputed from the true terms alone (a look at dW, not x).
        if not np.isfinite(dw).all():
            return PLANS["per_image"].weight_grad(x, None, d, w_shape, win)
        return dw

    def input_grad(self, d, w, x_shape, win, ctx=None):
        c = x_shape[1]
        fn, _, kh, kw = w.shape
        full = (kh - 1 - win.padding[0], kw - 1 - win.padding[1])
        # The input gradient is the full correlation of grad_output with the
        # flipped filters, channels and filters swapped: the forward kernel
        # again, with padding k-1-p, when the window covers the padding
        # (p <= k-1). With fewer than 4 channels most of its 4-filter blocks
        # would be padding.
        if min(full) >= 0 and c >= 4 and _direct_fits((fn,) + d.shape[2:], c, full):
            flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
            dx = np.empty(x_shape, dtype=d.dtype)
            if dx.size:
                R.ext.conv2d(d, flipped, None, *full, False, R.threads_for(dx.size), dx)
            return dx
        return PLANS["per_image"].input_grad(d, w, x_shape, win, ctx)


# Up to this many input channels the blocked plan reads NCHW as it is (cbi = 1:
# a first layer's images, no conversion and no padding of 1 or 3 channels to a
# block of 8 or 16); above it, x is converted to the blocked layout.
BLOCKED_NCHW_MAX_CHANNELS = 4
# Values in any one blocked array (input, output, workspace) beyond which the
# blocked plan steps aside: channel padding to a block can inflate a tensor 16x.
_BLOCKED_ARRAY_LIMIT = 1 << 28


# By default the blocked plan takes float32 layers whose C*FN (input times
# output channels) reaches this, per the blocked kernels' instruction set, on
# maps of at least DIRECT_MIN_PIXELS outputs and with x converted to the
# blocked layout (C > BLOCKED_NCHW_MAX_CHANNELS). benchmarks/blocked_vs_direct.py
# (2026-12-02, 2 threads, batch 100, forward + backward of each layer,
# direct/blocked): AVX-512 conv5 (32->64) 1.68, conv6 (64->64) 2.12; capped
# at AVX2 1.41, 1.61. conv3 (16->32) and conv4 (32->32) are faster blocked on
# AVX-512 too (1.23, 1.39; in a later run 1.22, 1.27), so AVX-512 takes them
# (DeepConvNet's whole step, the two thresholds interleaved in one process:
# 0.84 and 0.91 of the step with them direct, in two runs); capped at AVX2
# they were 1.06, 1.03 (noise) and stay direct. conv2 (16->16, 0.99 / 0.86;
# later 0.97) and the first layers (0.55-0.73) are slower blocked: the two
# NCHW<->blocked conversions around a small reduction cost what the kernels
# gain. The baseline build was not measured: never chosen by default.
BLOCKED_MIN_CHANNEL_PRODUCT = {"avx512": 16 * 32, "avx2": 32 * 64}


def _ceil(a, b):
    return -(-a // b)


class _BlockedKept:
    """What the blocked plan's backward reads (held in ``ctx.cols``): the input
    in the layout the weight gradient wants (NCHW for cbi = 1, else the blocked
    copy the forward made, so backward converts x no second time), the isa
    and block size that layout was made for, the context whose scratch it
    reuses, and the blocked grad_output the weight gradient converted (for the
    input gradient of the same backward)."""

    __slots__ = ("x", "cbi", "isa", "cb", "ctx", "dout", "dout_b")

    def __init__(self, x, cbi, isa, cb, ctx):
        self.x, self.cbi, self.isa, self.cb, self.ctx = x, cbi, isa, cb, ctx
        self.dout = self.dout_b = None


def _scratch(ctx, name, size):
    """A flat float32 buffer of at least one value: the context's, reused
    across steps, or a fresh one when there is no context (one-off calls)."""
    size = max(int(size), 1)
    if ctx is None:
        return np.empty(size, dtype=np.float32)
    return ctx.buffer(name, (size,), np.float32)


class Blocked:
    """The channel-blocked C kernels (csrc/conv_blocked.c): float32, stride 1,
    padding at most kernel - 1. NCHW goes in and comes out; the blocked
    layout lives only inside the plan. Keeping it between the layers of a Net
    (blocked pooling/ReLU, a conversion only before the first affine layer)
    is the next step (issue 20: "keep the blocked layout between layers")."""

    name = "blocked"
    keeps_input = False  # backward reads its own copy of x, kept in ctx.cols

    def serves(self, x_shape, w_shape, dtype, win):
        if not (R.use_c() and np.dtype(dtype) == np.float32 and win.stride == (1, 1)
                and win.dilation == (1, 1) and R.ext.blocked_available()):
            return False
        n, c, h, w = x_shape
        fn, _, kh, kw = w_shape
        ph, pw = win.padding
        # The input gradient is a forward with padding k-1-p (the kernels
        # need p <= k-1), and every size must be at least 1.
        if ph > kh - 1 or pw > kw - 1 or min(x_shape) < 1 or min(w_shape) < 1:
            return False
        oh, ow = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
        if oh < 1 or ow < 1:
            return False
        cb = 16  # the widest block any isa uses: the bound for all of them
        biggest = max(n * _ceil(c, cb) * cb * h * w, n * _ceil(fn, cb) * cb * oh * ow,
                      8 * _ceil(fn, cb) * cb * _ceil(c, cb) * cb * kh * kw)
        return biggest <= _BLOCKED_ARRAY_LIMIT

    @staticmethod
    def _layout(c):
        isa = R.ext.blocked_isa()
        cb = R.ext.blocked_cb(isa)
        return isa, cb, (1 if c <= BLOCKED_NCHW_MAX_CHANNELS else cb)

    @staticmethod
    def _to_blocked(a, isa, cb, nthreads, ctx, name):
        n, c, h, w = a.shape
        out = _scratch(ctx, name, n * _ceil(c, cb) * cb * h * w)
        R.ext.blocked_from_nchw(np.ascontiguousarray(a), cb, nthreads, out)
        return out

    def forward(self, x, w, b, win, ctx, keep, relu=False):
        n, c, h, wd = x.shape
        fn, _, kh, kw = w.shape
        ph, pw = win.padding
        oh, ow = win.out_size(h, wd)
        isa, cb, cbi = self._layout(c)
        nt = R.threads_for(n * fn * oh * ow)
        x = np.ascontiguousarray(x)
        if cbi == 1:
            # The first layer reads the NCHW images as they are; backward needs
            # them unchanged, and the caller may write to x: a private copy.
            xin = x
            if keep:
                xin = ctx.buffer("blocked_x", x.shape, np.float32)
                np.copyto(xin, x)
        else:
            xin = self._to_blocked(x, isa, cb, nt, ctx, "blocked_x")
        wp = _scratch(ctx, "blocked_w", R.ext.blocked_packed_size(fn, c, kh, kw, cbi, cb))
        R.ext.blocked_pack_weight(np.ascontiguousarray(w), cbi, cb, wp)
        ws = _scratch(ctx, "blocked_ws", R.ext.conv2d_blocked_workspace(
            n, c, h, wd, cbi, fn, kh, kw, ph, pw, isa, nt))
        ob = _scratch(ctx, "blocked_out", n * _ceil(fn, cb) * cb * oh * ow)
        bias = None if b is None else np.ascontiguousarray(b, dtype=np.float32)
        R.ext.conv2d_blocked(xin.reshape(-1), n, c, h, wd, cbi, wp, bias, fn, kh, kw, ph, pw,
                             relu, isa, nt, ws, ob)
        # The public ops and the layers keep NCHW (see the class docstring).
        out = np.empty((n, fn, oh, ow), dtype=np.float32)
        R.ext.blocked_to_nchw(ob, cb, nt, out)
        if keep:
            ctx.cols = _BlockedKept(xin, cbi, isa, cb, ctx)
        return out

    def weight_grad(self, x, cols, d, w_shape, win, ctx=None):
        fn, c, kh, kw = w_shape
        ph, pw = win.padding
        if isinstance(cols, _BlockedKept):
            kept = cols
        else:  # a one-off conv2d_weight_grad: x is the caller's NCHW array
            isa, cb, cbi = self._layout(c)
            nt = R.threads_for(x.size)
            xin = (np.ascontiguousarray(x) if cbi == 1
                   else self._to_blocked(x, isa, cb, nt, ctx, "blocked_x"))
            kept = _BlockedKept(xin, cbi, isa, cb, ctx)
        n, _, oh, ow = d.shape
        h, wd = oh + kh - 1 - 2 * ph, ow + kw - 1 - 2 * pw
        isa, cb, cbi, ctx = kept.isa, kept.cb, kept.cbi, kept.ctx
        nt = R.threads_for(d.size)
        dout_b = self._to_blocked(d, isa, cb, nt, ctx, "blocked_dout")
        ws = _scratch(ctx, "blocked_ws_dw", R.ext.conv2d_blocked_weight_grad_workspace(
            n, c, h, wd, cbi, fn, kh, kw, ph, pw, isa, nt))
        dw = np.empty(w_shape, dtype=np.float32)
        # db: backward_core sums d itself for every plan (the kernel could
        # fuse it: pass an (FN,) array instead of None).
        R.ext.conv2d_blocked_weight_grad(kept.x.reshape(-1), dout_b, n, c, h, wd, cbi, fn,
                                         kh, kw, ph, pw, isa, nt, ws, dw.reshape(-1), None)
        kept.dout, kept.dout_b = d, dout_b
        return dw

    def input_grad(self, d, w, x_shape, win, ctx=None):
        n, c, h, wd = x_shape
        fn, _, kh, kw = w.shape
        ph, pw = win.padding
        if c <= BLOCKED_NCHW_MAX_CHANNELS:
            # A block of output lanes per pixel for 1..4 channels: 15/16 of
            # the work wasted (README of the kernels: 0.06 of SGEMM).
            return PLANS["direct"].input_grad(d, w, x_shape, win, ctx)
        kept = ctx.cols if ctx is not None and isinstance(ctx.cols, _BlockedKept) else None
        isa, cb = (kept.isa, kept.cb) if kept is not None else self._layout(c)[:2]
        nt = R.threads_for(n * c * h * wd)
        if kept is not None and kept.dout is d:  # converted by this backward's weight_grad
            dout_b = kept.dout_b
        else:
            dout_b = self._to_blocked(d, isa, cb, nt, ctx, "blocked_dout")
        if kept is not None:
            kept.dout = kept.dout_b = None
        wpt = _scratch(ctx, "blocked_wt", R.ext.blocked_packed_size(c, fn, kh, kw, cb, cb))
        R.ext.blocked_pack_weight_grad_input(np.ascontiguousarray(w), cb, wpt)
        ws = _scratch(ctx, "blocked_ws_dx", R.ext.conv2d_blocked_grad_input_workspace(
            n, c, h, wd, fn, kh, kw, ph, pw, isa, nt))
        dxb = _scratch(ctx, "blocked_dx", n * _ceil(c, cb) * cb * h * wd)
        R.ext.conv2d_blocked_grad_input(dout_b, n, c, h, wd, wpt, fn, kh, kw, ph, pw, isa, nt,
                                        ws, dxb)
        dx = np.empty(x_shape, dtype=np.float32)
        R.ext.blocked_to_nchw(dxb, cb, nt, dx)
        return dx


PLANS = {plan.name: plan for plan in (Direct(), Blocked(), PerImage(), Rows())}

# Per thread (a context variable): one Python thread's forced plan must not
# change another's convolutions midway.
_forced = contextvars.ContextVar("fastconv_forced_conv_plan", default=None)


@contextlib.contextmanager
def forced(name):
    """Inside the block, the calling thread's convolutions run the plan
    ``name`` wherever it serves the call (tests and benchmarks)."""
    if name not in PLANS:
        raise ValueError(f"plan must be one of {sorted(PLANS)}, got {name!r}")
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def choose(x_shape, w_shape, dtype, win):
    """The plan object for this convolution: by backend, dtype, stride and size."""
    direct = PLANS["direct"]
    serves = direct.serves(x_shape, w_shape, dtype, win)
    name = _forced.get()
    if name is not None and PLANS[name].serves(x_shape, w_shape, dtype, win):
        return PLANS[name]
    oh, ow = win.out_size(*x_shape[2:])
    if serves and oh * ow >= DIRECT_MIN_PIXELS:
        c, fn = x_shape[1], w_shape[0]
        blocked = PLANS["blocked"]
        if c > BLOCKED_NCHW_MAX_CHANNELS and blocked.serves(x_shape, w_shape, dtype, win):
            least = BLOCKED_MIN_CHANNEL_PRODUCT.get(R.ext.blocked_isa_name(R.ext.blocked_isa()))
            if least is not None and c * fn >= least:
                return blocked
        return direct
    return PLANS["per_image"] if oh * ow >= PER_IMAGE_MIN_PIXELS else PLANS["rows"]

