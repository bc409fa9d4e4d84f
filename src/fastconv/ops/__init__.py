"""fastconv's operations: checked public ops over unchecked cores, on either backend.

Layouts are NCHW. Windows follow PyTorch: kernel, stride, padding, dilation,
each an int or an ``(h, w)`` pair (:class:`~fastconv.ops.window.Window`).
float32 and float64 inputs keep their dtype; other real dtypes become
float64. Every public op validates all of its arguments, identically on
every path, before choosing one; the layers call the ``*_core`` functions
with arrays they have checked once.

- :mod:`.patches`: im2col, col2im (the book's layout), unfold, fold (PyTorch's);
- :mod:`.pooling`: max pooling with argmax indices, average pooling;
- :mod:`.conv`: conv2d and its gradients; :mod:`.conv_plans` the algorithms
  and the planner;
- :mod:`.dense`: the layers' matrix products and the fused Adam step;
- :mod:`.reference`: the NumPy backend, the oracle of the tests.
"""
from .._runtime import (available_backends, fork_limits_threads, get_backend,
                        get_num_threads, openmp_enabled, set_backend, set_num_threads,
                        use_backend, use_num_threads)
from .conv import (ConvContext, conv2d, conv2d_backward, conv2d_forward, conv2d_input_grad,
                   conv2d_weight_grad, conv_plan)
from .dense import adam_update, matmul
from .patches import col2im, fold, im2col, unfold
from .pooling import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

__all__ = [
    "im2col", "col2im", "unfold", "fold",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "conv2d", "conv2d_weight_grad", "conv2d_input_grad", "conv_plan",
    "conv2d_forward", "conv2d_backward", "ConvContext", "adam_update", "matmul",
    "set_backend", "get_backend", "use_backend", "available_backends",
    "set_num_threads", "get_num_threads", "use_num_threads", "openmp_enabled",
    "fork_limits_threads",
]
