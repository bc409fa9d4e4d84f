"""Layers, the layer-type registry, Net and the model zoo.

Each module holds one family of layers with its layer types
(:mod:`.conv`, :mod:`.pooling`, :mod:`.affine`, :mod:`.activations`,
:mod:`.dropout`, :mod:`.normalization`), registered in :mod:`.registry`;
:mod:`.net` builds a network from their specs, :mod:`.zoo` writes the book's.
"""
from .activations import Relu, Sigmoid
from .affine import Affine
from .conv import Convolution
from .dropout import Dropout
from .loss import SoftmaxWithLoss, softmax
from .net import Net
from .normalization import LRN, BatchNormalization
from .params import ParamDict
from .pooling import Pooling
from .zoo import MODEL_NAMES, AlexNet, DeepConvNet, LeNet, SimpleConvNet, make_model

__all__ = ["Convolution", "Pooling", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss",
           "Dropout", "BatchNormalization", "LRN", "Net", "ParamDict", "SimpleConvNet",
           "DeepConvNet", "LeNet", "AlexNet", "MODEL_NAMES", "make_model", "softmax"]
