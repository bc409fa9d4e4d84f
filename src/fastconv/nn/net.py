"""Net: a sequential network built from layer specs, and what it computes.

A net is described by data: its input shape and a list of layer specs (dicts,
one per layer, ``{"type": kind, ...}``; :mod:`fastconv.nn.registry` lists the
kinds and their keys). It builds the layers and their parameters, named as
the book names them (``W1, b1, W2, ...`` in order of the weight layers,
``gamma1, beta1, ...`` for batch norm), and runs ``predict``, ``loss`` and
``gradient`` over the list. A softmax with cross-entropy loss always ends it.
"""
import math

import numpy as np

from . import blocked_pass, numerical, registry, rewrites
from .loss import SoftmaxWithLoss, softmax
from .arrays import samples
from .params import Maker, build_layers
from ..ops.window import positive_int

__all__ = ["Net"]

# See Net.__init__. On 10,000 MNIST images (2 threads, benchmarks/README.md)
# DeepConvNet took 2.25-2.38 s in chunks whose largest map was 8-12 MB, 3.3 s
# at 17 MB (a layer's input and output then outgrow the 32 MB L3 cache).
_TEST_CHUNK_BYTES = 8 << 20


class Net:
    """A sequential network built from layer specs (see :mod:`fastconv.nn.registry`).

    ``params`` maps names to the arrays the layers use (a
    :class:`~fastconv.nn.ParamDict`: assigning an entry writes through);
    ``layers`` and ``layer_types`` map names to layers and their
    :class:`~fastconv.nn.registry.LayerType`; ``last_layer`` is the
    SoftmaxWithLoss. A malformed spec raises ValueError (TypeError for a
    non-integer size), as does a feature map shrinking below 1x1.

    Parameters
    ----------
    input_dim : tuple of int
        Shape of one sample, (C, H, W) or (D,).
    layer_specs : list of dict
        E.g. ``{"type": "conv", "filter_num": 30, "filter_size": 5}``.
    dtype : numpy dtype, default numpy.float32
        Or ``np.float64`` (for gradient checks).
    seed : int, optional
        Seed of the generator of the weights and dropout masks.
    """

    def __init__(self, input_dim, layer_specs, *, dtype=np.float32, seed=None):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.layer_specs = [dict(spec) for spec in layer_specs]
        try:
            entries = registry.walk(input_dim, self.layer_specs)
        except registry.ShapeError as exc:
            raise ValueError(f"{type(self).__name__}: {exc}; input_dim {tuple(input_dim)} is "
                             f"too small for this architecture") from None
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{type(self).__name__}: {exc}") from None
        self.input_dim = tuple(int(d) for d in input_dim)
        self._rng = np.random.default_rng(seed)
        self.last_layer = SoftmaxWithLoss()
        # _grad_of: parameter name -> (layer, name of its gradient attribute)
        self.layers, self.layer_types, self.params, self._grad_of = build_layers(
            entries, Maker(self.dtype, self._rng))
        self.output_shape = entries[-1]["out"] if entries else self.input_dim
        # Test-mode prediction runs in chunks whose largest map stays below
        # _TEST_CHUNK_BYTES, so that a layer's input and output stay in cache.
        largest = max([math.prod(self.input_dim)] + [math.prod(e["out"]) for e in entries])
        self._test_chunk = max(1, _TEST_CHUNK_BYTES // (largest * self.dtype.itemsize))
        self._sequence, self._kind_of, self._inference = rewrites.prepare(self.layers,
                                                                          self.layer_types)
        self._test_pass = blocked_pass.Pass(self._inference, self._kind_of)

    # -- forward and backward ------------------------------------------------

    def _input(self, x):
        return samples(x, self.input_dim, self.dtype)

    def predict(self, x, train_flg=False):
        """Scores (N, output_size) before the softmax, in the net's dtype.

        x is (N,) + input_dim, or (N, prod(input_dim)), cast to the net's dtype.
        ``train_flg`` switches dropout on and batch norm to batch statistics. In
        test mode the layers keep nothing for backward (their ``infer``), maps
        stay channel-blocked between convolutions (``fastconv.nn.blocked_pass``)
        and a large x runs in chunks of a few hundred samples (any N fits in memory).
        """
        x = self._input(x)
        if train_flg:
            return self._forward(x, train_flg, keep=True)
        n, chunk = len(x), self._test_chunk
        if n <= chunk:
            return self._forward(x, False, keep=False)
        out = np.empty((n,) + tuple(self.output_shape), dtype=self.dtype)
        for start in range(0, n, chunk):
            out[start:start + chunk] = self._forward(x[start:start + chunk], False, keep=False)
        return out

    def _forward(self, x, train_flg, keep):
        if not keep:  # test time: each layer's infer, a ReLU fused where it can be
            return self._test_pass.run(x)
        for layer in self._sequence:
            kind = self._kind_of[id(layer)]
            x = layer.forward(x, train_flg) if kind.takes_train_flag else layer.forward(x)
        return x

    def loss(self, x, t, train_flg=True):
        """Mean cross-entropy loss; t integer labels (N,) or one-hot (N, K). The
        layers keep what :meth:`gradient`'s backward needs, in either mode."""
        if len(np.shape(x)) and np.shape(x)[0] == 0:
            raise ValueError("x holds no samples: the mean loss of an empty batch is undefined")
        return self.last_layer.forward(self._forward(self._input(x), train_flg, keep=True), t)

    def accuracy(self, x, t, batch_size=None):
        """Fraction of the samples whose top score is their label (test mode).

        Every sample counts (the book's skips the last partial batch but divides
        by N). ``batch_size``: None lets :meth:`predict` chunk (fastest), an int
        predicts that many at a time as the book does; the result is the same.
        """
        t = np.asarray(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        n = len(t)
        if n == 0:
            raise ValueError("accuracy of an empty batch")
        if len(x) != n:
            raise ValueError(f"x holds {len(x)} samples but t holds {n} labels")
        if batch_size is None:
            batch_size = n
        batch_size = positive_int(batch_size, "batch_size", integral_floats=True)
        correct = 0
        for start in range(0, n, int(batch_size)):
            y = self.predict(x[start:start + int(batch_size)], train_flg=False)
            correct += int(np.sum(np.argmax(y, axis=1) == t[start:start + int(batch_size)]))
        return correct / n

    def loss_and_gradient(self, x, t):
        """The training-mode loss and its gradient, from one forward and one backward pass."""
        loss = self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self._sequence):
            dout = layer.backward(dout)
            if dout is None:  # a first layer that skips its input gradient
                break
        return loss, {name: getattr(layer, attr) for name, (layer, attr) in self._grad_of.items()}

    def gradient(self, x, t):
        """Gradient of :meth:`loss` by backprop: dict with the keys and shapes of ``params``."""
        return self.loss_and_gradient(x, t)[1]

    # -- finite differences (fastconv.nn.numerical) ----------------------------

    def fixed_dropout_masks(self):
        """Context manager: each Dropout keeps one mask (:mod:`fastconv.nn.numerical`)."""
        return numerical.fixed_dropout_masks(self)

    def numerical_gradient(self, x, t, h=1e-4):
        """:meth:`loss`' gradient by central differences in float64 (:mod:`.numerical`)."""
        return numerical.net_numerical_gradient(self, x, t, h)

    def _float64_copy(self):
        return numerical.float64_copy(self, Net)

    # -- the net elsewhere: files, the book's pickles, pictures, ONNX, torch ----

    def save_params(self, file_name="params.npz"):
        """``params`` to an .npz at ``file_name``, atomically (:mod:`fastconv.io.checkpoint`)."""
        from ..io import checkpoint
        checkpoint.save_npz(file_name, self.params)

    def load_params(self, file_name="params.npz"):
        """:meth:`save_params`' file into ``params``, in place, all checked first."""
        from ..io import checkpoint
        expected = {name: (p.shape, p.dtype) for name, p in self.params.items()}
        for name, array in checkpoint.read_npz(file_name, expected).items():
            self.params[name][...] = array

    def load_book_params(self, file_name="params.pkl"):
        """The book's pickled weights, run nothing (:mod:`fastconv.nn.book_weights`)."""
        from .book_weights import load_book_params
        load_book_params(self, file_name)

    def predict_images(self, images, batch_size=100):
        """Probabilities (N, K), float64, of pictures (:mod:`fastconv.io.pictures`)."""
        from ..io.pictures import images_to_inputs
        x = images_to_inputs(images, self.input_dim)
        if len(x) == 0:
            return np.empty((0, math.prod(self.output_shape)))
        return np.concatenate([softmax(self.predict(x[i:i + batch_size]))
                               for i in range(0, len(x), batch_size)])

    def to_onnx(self, path, batch=None):
        """Write the net (test mode) as ONNX; see :func:`fastconv.interop.onnx.to_onnx`."""
        from ..interop.onnx import to_onnx
        return to_onnx(self, path, batch=batch)

    def state_dict_torch(self):
        """The parameters as the torch twin names them (:mod:`fastconv.interop.torch`)."""
        from ..interop.torch import state_dict
        return state_dict(self)

    def load_state_dict_torch(self, state_dict):
        """A torch twin's ``state_dict()`` into ``params`` (:mod:`fastconv.interop.torch`)."""
        from ..interop.torch import load_state_dict
        load_state_dict(self, state_dict)

    @classmethod
    def from_card(cls, card, dtype=None):
        """A :class:`Net` (random weights) from a model card's dict (see
        :mod:`fastconv.nn.card`) that has ``input_dim`` and ``layer_specs``;
        ``dtype`` overrides the card's. Raises ValueError on malformed specs."""
        try:
            return Net(card["input_dim"], card["layer_specs"],
                       dtype=dtype or card.get("dtype", "float32"))
        except (TypeError, KeyError) as exc:
            raise ValueError(f"the card's layer_specs are malformed: {exc}") from None

    def __repr__(self):
        n = sum(p.size for p in self.params.values())
        return (f"{type(self).__name__}(input_dim={self.input_dim}, {len(self.layers)} layers, "
                f"{n} parameters, dtype={self.dtype})")
