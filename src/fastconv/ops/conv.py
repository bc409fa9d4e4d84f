"""2-D convolution and its two gradients, checked at the door.

Each public function validates every argument, identically whichever plan
will run, then calls a core. The cores (:func:`forward_core`,
:func:`backward_core`) take arrays that are already checked: the Convolution
layer checks its input once and calls them directly. Which algorithm runs is
:mod:`.conv_plans`' choice; :func:`conv_plan` names it.
"""
import contextlib
import threading

import numpy as np

from . import conv_plans as P
from . import validate as V
from .patches import TORCH_NAMES
from .window import Window

__all__ = ["conv2d", "conv2d_forward", "conv2d_backward", "conv2d_weight_grad",
           "conv2d_input_grad", "conv_plan", "ConvContext", "conv_window", "check_channels",
           "forward_core",
           "backward_core"]


def conv_plan(input_shape, weight_shape, dtype, stride=1, padding=0):
    """The algorithm fastconv runs for this convolution (see :mod:`fastconv.ops.conv_plans`).

    The choice depends on the backend, the dtype, the stride, the shapes and
    the CPU, never on the values.

    Parameters
    ----------
    input_shape : tuple of int
        (N, C, H, W).
    weight_shape : tuple of int
        (FN, C, KH, KW).
    dtype : numpy dtype or str
        The computation's float type.
    stride, padding : int or tuple of int
        As for :func:`conv2d`.

    Returns
    -------
    str
        ``"direct"``, ``"blocked"``, ``"per_image"`` or ``"rows"``.
    """
    win = Window.of(weight_shape[2:], stride, padding, names=TORCH_NAMES)
    return P.choose(tuple(input_shape), tuple(weight_shape), dtype, win).name


class ConvContext:
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`.

    The plan, the window, the input (direct plan) or its patch matrix, and
    scratch buffers that a layer keeps between steps (refilling memory already
    in use beats fresh pages on this VM: benchmarks/README.md).
    """

    def __init__(self):
        self.plan = self.window = self.weight = self.x = self.cols = self.x_shape = None
        self._buffers = {}

    @property
    def plan_name(self):
        return None if self.plan is None else self.plan.name

    def buffer(self, name, shape, dtype):
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf


# Scratch memory of the calls whose context nobody sees (conv2d and its two
# gradients), per thread: the next such call refills it instead of
# taking fresh pages, which cost the blocked plan's one-off calls a third of
# their time on 2026-12-02 (benchmarks/README.md). No plan returns memory of a
# context, so results are never shared; above the cap the memory is let go.
_one_off = threading.local()
_ONE_OFF_BYTES = 64 << 20


@contextlib.contextmanager
def _one_off_context():
    ctx = getattr(_one_off, "ctx", None)
    if ctx is None:
        ctx = _one_off.ctx = ConvContext()
    try:
        yield ctx
    finally:
        ctx.plan = ctx.window = ctx.weight = ctx.x = ctx.cols = ctx.x_shape = None
        if sum(b.nbytes for b in ctx._buffers.values()) > _ONE_OFF_BYTES:
            ctx._buffers.clear()


def conv_window(kh, kw, stride, padding, source):
    """The window of every conv op, named alike in every error (source: the
    argument the kernel size came from)."""
    return Window.of((kh, kw), stride, padding, what="filter",
                     names=(f"{source}'s KH, KW", "stride", "padding", "dilation"))


def check_channels(x, w, name):
    """x's channels against the filters' (``name`` is how the caller calls them)."""
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but {name} expects {w.shape[1]} "
                         f"(x shape {x.shape}, {name} shape {w.shape})")


def _conv_inputs(x, weight, bias, stride, padding):
    """Validate a forward call, identically for every plan."""
    original = x
    w = V.float_array(weight, "weight", (4,), "4-D (FN, C, KH, KW)")
    V.shape4(w.shape, "weight's shape", "FCHW", empty_batch=False)
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    V.shape4(x.shape, "x's shape")  # as conv2d_input_grad's input_shape: C, H, W >= 1
    fn, c, kh, kw = w.shape
    check_channels(x, w, "weight")
    win = conv_window(kh, kw, stride, padding, "weight")
    n, _, h, wd = x.shape
    oh, ow = win.out_size(h, wd)
    V.check_output_fits((n, fn, oh, ow), x.itemsize)
    dtype = np.result_type(x, w)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    b = None
    if bias is not None:
        b = V.float_array(bias, "bias", (0, 1), f"({fn},)").astype(dtype, copy=False)
        if b.ndim == 0:  # the book passes a scalar bias (apply_filter.py)
            b = np.full(fn, b, dtype=dtype)
        if b.shape != (fn,):
            raise ValueError(f"bias must have shape ({fn},) or be a scalar, got {b.shape}")
    return original, x, w, b, win




def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation of a batch with a filter bank, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : ndarray
        Input of shape (N, C, H, W).
    weight : ndarray
        Filters of shape (FN, C, KH, KW), every dimension at least 1.
    bias : ndarray or float, optional
        Shape (FN,), a scalar, or None.
    stride, padding : int or tuple of int
        One int or an (h, w) pair each.

    Returns
    -------
    ndarray
        Shape (N, FN, OH, OW) in the common float type of x and weight, with
        ``OH = (H + 2*pad_h - KH) // stride_h + 1``. :func:`conv_plan` says which
        algorithm computes it; all give the same values up to rounding.
    """
    with _one_off_context() as ctx:
        return conv2d_forward(x, weight, bias, stride, padding, ctx=ctx, keep=False)[0]




def conv2d_forward(x, weight, bias=None, stride=1, padding=0, *, ctx=None, keep=True,
                   x_is_private=False, relu=False):
    """:func:`conv2d` that also returns the :class:`ConvContext` its backward needs.

    Parameters
    ----------
    x : ndarray
        Input of shape (N, C, H, W).
    weight : ndarray
        Filters of shape (FN, C, KH, KW).
    bias : ndarray or float, optional
        Shape (FN,), a scalar, or None.
    stride, padding : int or tuple of int
        As for :func:`conv2d`.
    ctx : ConvContext, optional
        The previous call's context, to reuse its scratch memory.
    keep : bool, default True
        The context holds what backward reads; on the direct plan that is a
        private copy of x (when x is the caller's array), so writes to x after
        this call cannot change the gradients.
    x_is_private : bool, default False
        A promise that nobody writes to x before backward (a network's inner
        layers): skips that copy.
    relu : bool, default False
        Return ``max(out, 0)`` instead (NaN kept, as ``numpy.maximum``), written
        in the same pass on the direct plan; for test-time prediction, with
        ``keep=False``.

    Returns
    -------
    out : ndarray
        As :func:`conv2d`.
    ctx : ConvContext
        For :func:`conv2d_backward`.
    """
    if relu and keep:
        raise ValueError("relu=True is for prediction: conv2d_backward has no ReLU; "
                         "pass keep=False")
    original, x, w, b, win = _conv_inputs(x, weight, bias, stride, padding)
    private = x_is_private or not (isinstance(original, np.ndarray)
                                   and np.may_share_memory(x, original))
    return forward_core(x, w, b, win, ctx=ctx, keep=keep, x_is_private=private, relu=relu)


def forward_core(x, w, b, win, *, ctx=None, keep=True, x_is_private=False, relu=False):
    """:func:`conv2d_forward` of checked arrays: x (N, C, H, W) and w (FN, C,
    KH, KW) of one float dtype, b (FN,) of it or None, and their window."""
    ctx = ctx if ctx is not None else ConvContext()
    plan = P.choose(x.shape, w.shape, x.dtype, win)
    ctx.plan, ctx.window, ctx.weight, ctx.x_shape, ctx.x, ctx.cols = plan, win, w, x.shape, \
        None, None
    out = plan.forward(x, w, b, win, ctx, keep, relu)
    if keep and plan.keeps_input:
        ctx.x = x if x_is_private else x.copy()
    return out, ctx


def conv2d_backward(ctx, grad_output, *, input_grad=True):
    """Gradients of :func:`conv2d_forward`'s call.

    Parameters
    ----------
    ctx : ConvContext
        What the forward call returned.
    grad_output : ndarray
        Shape (N, FN, OH, OW), cast to the forward's dtype.
    input_grad : bool, default True
        False skips dx (a first layer: nobody needs it, and it is the costliest
        part).

    Returns
    -------
    dx : ndarray or None
        Shape (N, C, H, W); None when ``input_grad`` is false.
    dweight : ndarray
        Shape (FN, C, KH, KW).
    dbias : ndarray
        The sum over N, OH and OW, shape (FN,).
    """
    if ctx is None or ctx.plan is None or (ctx.x is None and ctx.cols is None):
        raise ValueError("conv2d_backward needs the context of a conv2d_forward call "
                         "made with keep=True")
    n = ctx.x_shape[0]
    oh, ow = ctx.window.out_size(*ctx.x_shape[2:])
    d = V.float_array(grad_output, "grad_output", (4,), "4-D (N, FN, OH, OW)")
    expected = (n, ctx.weight.shape[0], oh, ow)
    if d.shape != expected:
        raise ValueError(f"grad_output must have shape {expected}, got {d.shape}")
    return backward_core(ctx, d.astype(ctx.weight.dtype, copy=False), input_grad=input_grad)


def backward_core(ctx, d, *, input_grad=True):
    """:func:`conv2d_backward` of a checked grad_output in the forward's dtype."""
    plan, w, win = ctx.plan, ctx.weight, ctx.window
    dw = plan.weight_grad(ctx.x, ctx.cols, d, w.shape, win)
    db = d.sum(axis=(0, 2, 3))
    dx = plan.input_grad(d, w, ctx.x_shape, win, ctx) if input_grad else None
    return dx, dw, db


def conv2d_weight_grad(x, grad_output, weight_shape, stride=1, padding=0):
    """Gradient of :func:`conv2d`'s output with respect to its weight.

    Parameters
    ----------
    x : ndarray
        The forward input, (N, C, H, W).
    grad_output : ndarray
        Gradient of the output, (N, FN, OH, OW).
    weight_shape : tuple of int
        (FN, C, KH, KW), positive.
    stride, padding : int or tuple of int
        As given to :func:`conv2d`.

    Returns
    -------
    ndarray
        Shape (FN, C, KH, KW): the sum over the batch, as ``torch.nn.grad.conv2d_weight``.
    """
    fn, c, kh, kw = V.shape4(weight_shape, "weight_shape", "FCHW", empty_batch=False)
    win = conv_window(kh, kw, stride, padding, "weight_shape")
    x = V.float_array(x, "x", (4,), "4-D (N, C, H, W)")
    V.shape4(x.shape, "x's shape")
    d = V.float_array(grad_output, "grad_output", (4,), "4-D (N, FN, OH, OW)")
    n, _, h, wd = x.shape
    oh, ow = win.out_size(h, wd)
    if x.shape[1] != c or d.shape != (n, fn, oh, ow):
        raise ValueError(f"grad_output must have shape {(n, fn, oh, ow)} and x {c} channels "
                         f"for weight_shape {(fn, c, kh, kw)}; got grad_output {d.shape}, "
                         f"x {x.shape}")
    dtype = np.result_type(x, d)
    x, d = x.astype(dtype, copy=False), d.astype(dtype, copy=False)
    plan = P.choose(x.shape, (fn, c, kh, kw), dtype, win)
    with _one_off_context() as ctx:
        return plan.weight_grad(x, None, d, (fn, c, kh, kw), win, ctx)


def conv2d_input_grad(grad_output, weight, input_shape, stride=1, padding=0):
    """Gradient of :func:`conv2d`'s output with respect to its input.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the output, (N, FN, OH, OW).
    weight : ndarray
        Filters of shape (FN, C, KH, KW).
    input_shape : tuple of int
        (N, C, H, W) of the forward input.
    stride, padding : int or tuple of int
        As given to :func:`conv2d`.

    Returns
    -------
    ndarray
        Shape (N, C, H, W), as ``torch.nn.grad.conv2d_input``. Input rows or
        columns that no window reached (stride larger than the window) get 0.
    """
    w = V.float_array(weight, "weight", (4,), "4-D (FN, C, KH, KW)")
    fn, wc, kh, kw = V.shape4(w.shape, "weight's shape", "FCHW", empty_batch=False)
    n, c, h, wd = V.shape4(input_shape, "input_shape")
    V.check_output_fits((n, c, h, wd), 8, "input_shape")
    win = conv_window(kh, kw, stride, padding, "weight")
    oh, ow = win.out_size(h, wd)
    d = V.float_array(grad_output, "grad_output", (4,), "4-D (N, FN, OH, OW)")
    if wc != c or d.shape != (n, fn, oh, ow):
        raise ValueError(f"grad_output must have shape {(n, fn, oh, ow)} for weight "
                         f"{w.shape} and input_shape {(n, c, h, wd)}; got {d.shape}")
    dtype = np.result_type(d, w)
    d, w = d.astype(dtype, copy=False), w.astype(dtype, copy=False)
    plan = P.choose((n, c, h, wd), w.shape, dtype, win)
    with _one_off_context() as ctx:
        return plan.input_grad(d, w, (n, c, h, wd), win, ctx)
