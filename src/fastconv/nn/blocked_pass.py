"""A net's test-time pass with its feature maps in the channel-blocked layout.

Between a convolution and the next, the maps go through ReLUs and pooling
windows, which do not care about the layout; converting them to NCHW after
every convolution and back before the next cost DeepConvNet's inference
about a fifth of its time (benchmarks/README.md). Here a run of
convolutions, ReLUs and poolings that the blocked kernels serve (float32,
stride-1 convolutions, the C backend) stays blocked (:mod:`fastconv.ops.blocked`)
and is converted once, before the first layer that needs NCHW. The values are
those of the layer-by-layer pass with the blocked plan; the tests compare the
two, and with the NumPy backend.
"""
import contextlib
import contextvars

import numpy as np

from ..ops import blocked as B
from .activations import Relu
from .per_thread import PerThread

__all__ = ["Pass", "switched_off"]

_on = contextvars.ContextVar("fastconv_blocked_pass", default=True)

# What may follow a convolution for its output to stay blocked.
_KEEPS_BLOCKED = ("conv", "relu", "pool")


@contextlib.contextmanager
def switched_off():
    """Inside the block, nets run their test-time pass layer by layer, in
    NCHW (tests and benchmarks compare the two)."""
    token = _on.set(False)
    try:
        yield
    finally:
        _on.reset(token)


class Pass:
    """The test-time pass over ``inference`` ((layer, fuse a ReLU?) pairs, from
    :func:`fastconv.nn.rewrites.prepare`) with each layer's kind in
    ``kind_of``; every layer's scratch memory is kept from call to call."""

    def __init__(self, inference, kind_of):
        self._steps = [(layer, relu, kind_of[id(layer)].kind) for layer, relu in inference]
        self._scratch = PerThread(dict)   # layer id -> Scratch, for each Python thread
        # A convolution given NCHW maps enters the blocked layout only if another
        # convolution follows before a layer that needs NCHW: what the pass saves
        # is the conversions between two convolutions. Alone (SimpleConvNet's),
        # its blocked pooling and the conversion after it cost more than the
        # blocked kernel gains (benchmarks/README.md).
        kinds = [kind for _, _, kind in self._steps]
        self._enters = []
        for i, kind in enumerate(kinds):
            rest = kinds[i + 1:]
            stop = next((j for j, k in enumerate(rest) if k not in _KEEPS_BLOCKED), len(rest))
            self._enters.append(kind == "conv" and "conv" in rest[:stop])

    def _is_relu(self, i):
        return i < len(self._steps) and self._steps[i][2] == "relu" \
            and type(self._steps[i][0]) is Relu

    def _blocked_step(self, i, x):
        """Layer i's output in the blocked layout and the number of layers it
        ran (a pooling takes the ReLU after it along), or (None, 0)."""
        layer, relu, kind = self._steps[i]
        if kind == "conv":
            if not isinstance(x, B.BlockedMaps) and not self._enters[i]:
                return None, 0
            return layer._infer_blocked(x, relu, self._scratch_of(layer)), 1
        if not isinstance(x, B.BlockedMaps):
            return None, 0
        if self._is_relu(i):
            return B.relu(x), 1
        if kind == "pool":
            fuse = self._is_relu(i + 1)
            return B.pool(x, layer._window(), layer.mode, self._scratch_of(layer),
                          relu=fuse), 1 + fuse
        return None, 0

    def _scratch_of(self, layer):
        mine = self._scratch.get()
        scratch = mine.get(id(layer))
        if scratch is None:
            scratch = mine[id(layer)] = B.Scratch()
        return scratch

    def run(self, x):
        """The scores of a batch ``x`` already in the net's shape and dtype."""
        on = _on.get() and isinstance(x, np.ndarray) and x.dtype == np.float32
        i = 0
        while i < len(self._steps):
            out, ran = self._blocked_step(i, x) if on else (None, 0)
            if out is None:
                layer, relu, _ = self._steps[i]
                if isinstance(x, B.BlockedMaps):
                    x = x.to_nchw()
                out, ran = (layer.infer(x, relu=True) if relu else layer.infer(x)), 1
            x, i = out, i + ran
        return x.to_nchw() if isinstance(x, B.BlockedMaps) else x
