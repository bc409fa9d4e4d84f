"""fastconv: im2col convolution and pooling in C/OpenMP, with the CNNs of
"Deep Learning from Scratch" (chapters 7 and 8) on top.

The compiled kernels are reached through :mod:`fastconv.functional`; a pure
NumPy backend gives the same results (``set_backend("numpy")``). Plots
(:mod:`fastconv.cli.plots`), the command line and the benchmarks are imported only
when used, so ``import fastconv`` stays light.
"""
from . import _runtime  # noqa: F401  (environment defaults, before numpy loads)
from ._config import build_config, show_config
from .io.mnist import load_mnist
from .functional import (
    available_backends,
    avg_pool2d,
    avg_pool2d_backward,
    col2im,
    conv2d,
    conv2d_input_grad,
    conv2d_weight_grad,
    fold,
    fork_limits_threads,
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
    use_num_threads,
)
from .train import gradient_check, numerical_gradient
from .nn import (LRN, AlexNet, Affine, BatchNormalization, Convolution, DeepConvNet, Dropout,
                 LeNet, Net, Pooling, Relu, Sigmoid, SimpleConvNet, SoftmaxWithLoss)
from .nn.activations import LeakyRelu
from .train import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from .train import Trainer

__version__ = "0.1.0"

__all__ = [
    # ops
    "im2col", "col2im", "unfold", "fold", "conv2d", "conv2d_weight_grad", "conv2d_input_grad",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    # backends and threads
    "set_backend", "get_backend", "use_backend", "available_backends",
    "set_num_threads", "get_num_threads", "use_num_threads", "openmp_enabled",
    "fork_limits_threads",
    # layers
    "Convolution", "Pooling", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout",
    "BatchNormalization", "LRN", "LeakyRelu",
    # models, training
    "Net", "SimpleConvNet", "DeepConvNet", "LeNet", "AlexNet",
    "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get_optimizer",
    "Trainer", "numerical_gradient", "gradient_check",
    # data
    "load_mnist",
    # installation
    "show_config", "build_config",
]
