"""fastconv: im2col convolution and pooling in C/OpenMP, with the CNNs of
"Deep Learning from Scratch" (chapters 7 and 8) on top.

The compiled kernels are reached through :mod:`fastconv.functional`; a pure
NumPy backend gives the same results (``set_backend("numpy")``).
"""
from .functional import (
    avg_pool2d,
    avg_pool2d_backward,
    available_backends,
    col2im,
    fold,
    get_backend,
    get_num_threads,
    im2col,
    max_pool2d,
    max_pool2d_backward,
    openmp_enabled,
    set_backend,
    set_num_threads,
    unfold,
    use_backend,
)

__version__ = "0.1.0"

__all__ = [
    "im2col", "col2im", "unfold", "fold",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "set_backend", "get_backend", "use_backend", "available_backends",
    "set_num_threads", "get_num_threads", "openmp_enabled",
]
