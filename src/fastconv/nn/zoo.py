"""The book's networks and two classics, each written as layer specs for :class:`Net`."""
import numpy as np

from .net import Net

__all__ = ["SimpleConvNet", "DeepConvNet", "LeNet", "AlexNet", "MODEL_NAMES", "make_model"]


class SimpleConvNet(Net):
    """The book's chapter 7 CNN: conv - relu - pool - affine - relu - affine - softmax.

    The pooling is 2x2 with stride 2. Parameters: W1, b1 (conv), W2, b2, W3, b3.

    Parameters
    ----------
    input_dim : tuple of int, default (1, 28, 28)
        (C, H, W) of one sample.
    conv_param : dict, optional
        ``filter_num`` (30), ``filter_size`` (5), ``pad`` (0), ``stride`` (1);
        missing keys take these defaults.
    hidden_size, output_size : int
        Widths of the two affine layers, default 100 and 10.
    weight_init_std : float or str, default 0.01
        Standard deviation of every weight (biases start at 0), or ``"he"`` for
        sqrt(2/fan_in) per layer, as the book's chapter 6 advises for ReLU
        networks (much faster first epochs).
    dtype : numpy dtype, default numpy.float32
        See :class:`~fastconv.Net`.
    seed : int, optional
        See :class:`~fastconv.Net`.
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param=None, hidden_size=100,
                 output_size=10, weight_init_std=0.01, *, dtype=np.float32, seed=None):
        conv = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1, **(conv_param or {})}
        std = weight_init_std
        super().__init__(input_dim, [
            {"type": "conv", **conv, "init": std},
            {"type": "relu"},
            {"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 2},
            {"type": "affine", "output_size": hidden_size, "init": std},
            {"type": "relu"},
            {"type": "affine", "output_size": output_size, "init": std},
        ], dtype=dtype, seed=seed)


_DEEP_CONV_PARAMS = [(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]


class DeepConvNet(Net):
    """The book's chapter 8 CNN (about 99.4% on MNIST).

    conv16 - relu - conv16 - relu - pool - conv32 - relu - conv32 - relu - pool -
    conv64 - relu - conv64 - relu - pool - affine(hidden_size) - relu - dropout -
    affine(output_size) - dropout - softmax.

    Convolutions are 3x3 with pad 1, except the second 32 one (pad 2); pools
    are 2x2 with stride 2; dropout ratios are 0.5. Weights use He
    initialisation, sqrt(2 / fan_in) with fan_in the inputs of one unit: for the
    default input it gives the book's numbers (1*3*3, 16*3*3, ..., 64*4*4,
    hidden_size). Parameters W1..W8, b1..b8.

    Parameters
    ----------
    input_dim : tuple of int, default (1, 28, 28)
        (C, H, W) of one sample.
    conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6 : dict, optional
        Override the six convolutions (``filter_num``, ``filter_size``, ``pad``,
        ``stride``).
    hidden_size, output_size : int
        Widths of the two affine layers, default 50 and 10.
    dtype : numpy dtype, default numpy.float32
        See :class:`~fastconv.Net`.
    seed : int, optional
        See :class:`~fastconv.Net`.
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param_1=None, conv_param_2=None,
                 conv_param_3=None, conv_param_4=None, conv_param_5=None, conv_param_6=None,
                 hidden_size=50, output_size=10, *, dtype=np.float32, seed=None):
        given = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5,
                 conv_param_6]
        specs = []
        for i, ((filters, pad), param) in enumerate(zip(_DEEP_CONV_PARAMS, given)):
            conv = {"filter_num": filters, "filter_size": 3, "pad": pad, "stride": 1,
                    **(param or {})}
            specs += [{"type": "conv", **conv, "init": "he"}, {"type": "relu"}]
            if i % 2:
                specs.append({"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 2})
        specs += [
            {"type": "affine", "output_size": hidden_size, "init": "he"},
            {"type": "relu"},
            {"type": "dropout", "dropout_ratio": 0.5},
            {"type": "affine", "output_size": output_size, "init": "he"},
            {"type": "dropout", "dropout_ratio": 0.5},
        ]
        super().__init__(input_dim, specs, dtype=dtype, seed=seed)


class LeNet(Net):
    """LeNet-5 (LeCun et al., 1998), with sigmoid units and average pooling.

    conv(6, 5x5) - sigmoid - avgpool 2 - conv(16, 5x5) - sigmoid - avgpool 2 -
    affine 120 - sigmoid - affine 84 - sigmoid - affine(output_size) - softmax.
    Weights use Xavier initialisation, sqrt(1 / fan_in). Parameters W1..W5,
    b1..b5.

    Parameters
    ----------
    input_dim : tuple of int, default (1, 28, 28)
        (C, H, W) of one sample.
    output_size : int, default 10
        Number of classes.
    conv_channels : tuple of int, default (6, 16)
        Widths of the two convolutions.
    hidden_sizes : tuple of int, default (120, 84)
        Widths of the two hidden affine layers.
    conv1_pad : int, default 2
        Padding of the first convolution, so that a 28x28 MNIST image gives the
        28x28 maps that the original gets from its 32x32 input; use
        ``conv1_pad=0`` with input_dim (1, 32, 32) for the original sizes.
    dtype : numpy dtype, default numpy.float32
        See :class:`~fastconv.Net`.
    seed : int, optional
        See :class:`~fastconv.Net`.
    """

    def __init__(self, input_dim=(1, 28, 28), output_size=10, conv_channels=(6, 16),
                 hidden_sizes=(120, 84), conv1_pad=2, *, dtype=np.float32, seed=None):
        c1, c2 = conv_channels
        h1, h2 = hidden_sizes
        avgpool = {"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 2, "mode": "avg"}
        super().__init__(input_dim, [
            {"type": "conv", "filter_num": c1, "filter_size": 5, "pad": conv1_pad,
             "init": "xavier"},
            {"type": "sigmoid"}, avgpool,
            {"type": "conv", "filter_num": c2, "filter_size": 5, "init": "xavier"},
            {"type": "sigmoid"}, avgpool,
            {"type": "affine", "output_size": h1, "init": "xavier"}, {"type": "sigmoid"},
            {"type": "affine", "output_size": h2, "init": "xavier"}, {"type": "sigmoid"},
            {"type": "affine", "output_size": output_size, "init": "xavier"},
        ], dtype=dtype, seed=seed)


class AlexNet(Net):
    """AlexNet (Krizhevsky et al., 2012), on one device.

    conv1 - relu - LRN - maxpool - conv2(5x5, pad 2) - relu - LRN - maxpool -
    conv3 - relu - conv4 - relu - conv5 - relu - maxpool (3x3 pad 1 convs) -
    dropout - affine(hidden_size) - relu - dropout - affine(hidden_size) - relu -
    affine(output_size) - softmax. Max pooling overlaps: 3x3 windows, stride 2.
    LRN is size 5, alpha 1e-4, beta 0.75, k 2. Weights use He initialisation.
    Parameters W1..W8, b1..b8.

    The defaults are the paper's sizes for a 3x224x224 input: about 62 million
    parameters. For MNIST choose smaller ones, e.g.
    ``AlexNet((1, 28, 28), output_size=10, conv_channels=(32, 64, 96, 96, 64),
    hidden_size=256, conv1_size=3, conv1_stride=1, conv1_pad=1)``.

    Parameters
    ----------
    input_dim : tuple of int, default (3, 224, 224)
        (C, H, W) of one sample.
    output_size : int, default 1000
        Number of classes.
    conv_channels : tuple of int, default (96, 256, 384, 384, 256)
        Widths of the five convolutions.
    hidden_size : int, default 4096
        Width of the two hidden affine layers.
    conv1_size, conv1_stride, conv1_pad : int
        The first convolution's window, stride and padding (11, 4 and 2).
    dropout_ratio : float, default 0.5
        Of both dropout layers.
    dtype : numpy dtype, default numpy.float32
        See :class:`~fastconv.Net`.
    seed : int, optional
        See :class:`~fastconv.Net`.

    Raises
    ------
    ValueError
        For a configuration whose feature maps shrink below 1x1.
    """

    def __init__(self, input_dim=(3, 224, 224), output_size=1000,
                 conv_channels=(96, 256, 384, 384, 256), hidden_size=4096,
                 conv1_size=11, conv1_stride=4, conv1_pad=2, dropout_ratio=0.5,
                 *, dtype=np.float32, seed=None):
        c1, c2, c3, c4, c5 = conv_channels
        relu, lrn = {"type": "relu"}, {"type": "lrn", "size": 5, "alpha": 1e-4, "beta": 0.75,
                                        "k": 2.0}
        pool = {"type": "pool", "pool_h": 3, "pool_w": 3, "stride": 2}
        drop = {"type": "dropout", "dropout_ratio": dropout_ratio}

        def conv(n, size, stride=1, pad=1):
            return {"type": "conv", "filter_num": n, "filter_size": size, "stride": stride,
                    "pad": pad, "init": "he"}

        super().__init__(input_dim, [
            conv(c1, conv1_size, conv1_stride, conv1_pad), relu, lrn, pool,
            conv(c2, 5, pad=2), relu, lrn, pool,
            conv(c3, 3), relu, conv(c4, 3), relu, conv(c5, 3), relu, pool,
            drop, {"type": "affine", "output_size": hidden_size, "init": "he"}, relu,
            drop, {"type": "affine", "output_size": hidden_size, "init": "he"}, relu,
            {"type": "affine", "output_size": output_size, "init": "he"},
        ], dtype=dtype, seed=seed)


#: The names :func:`make_model` knows, as the command line offers them.
MODEL_NAMES = ("simple", "deep", "lenet", "alexnet")


def make_model(name, dtype=np.float32, seed=0, init="book"):
    """The network called ``name`` (one of :data:`MODEL_NAMES`) for 1x28x28 MNIST digits.

    Parameters
    ----------
    name : str
        ``"simple"``, ``"deep"``, ``"lenet"`` or ``"alexnet"``.
    dtype : numpy dtype, default numpy.float32
        The net's dtype.
    seed : int, default 0
        Seed of the initial weights.
    init : str, default "book"
        ``"he"`` gives SimpleConvNet He's initial weights instead of the book's
        std 0.01 (the other models use He's already).

    Returns
    -------
    Net
        The untrained network.

    Raises
    ------
    ValueError
        For an unknown name or init.
    """
    if init not in ("book", "he"):
        raise ValueError(f"init must be 'book' or 'he', got {init!r}")
    if name == "simple":
        return SimpleConvNet(weight_init_std="he" if init == "he" else 0.01,
                             dtype=dtype, seed=seed)
    if name == "deep":
        return DeepConvNet(dtype=dtype, seed=seed)
    if name == "lenet":
        return LeNet(input_dim=(1, 28, 28), dtype=dtype, seed=seed)
    if name == "alexnet":
        # The paper's widths and 11x11 stride-4 first layer are for 224x224
        # photos; a 28x28 digit gets a 3x3 first layer and narrower layers.
        return AlexNet((1, 28, 28), output_size=10, conv_channels=(32, 64, 96, 96, 64),
                       hidden_size=256, conv1_size=3, conv1_stride=1, conv1_pad=1,
                       dtype=dtype, seed=seed)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
