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

from . import numerical, registry, rewrites
from .loss import SoftmaxWithLoss, softmax
from .params import Maker, ParamDict

__all__ = ["Net"]

# See Net.__init__. On 10,000 MNIST images (2 threads, benchmarks/README.md)
# DeepConvNet took 2.25-2.38 s in chunks whose largest map was 8-12 MB, 3.3 s
# at 17 MB (a layer's input and output then outgrow the 32 MB L3 cache).
_TEST_CHUNK_BYTES = 8 << 20


class Net:
    """A sequential network built from layer specs (see :mod:`fastconv.nn.registry`).

    Parameters
    ----------
    input_dim : shape of one sample, (C, H, W) or (D,)
    layer_specs : list of dicts, e.g. ``{"type": "conv", "filter_num": 30,
        "filter_size": 5}``
    dtype : np.float32 (default, fast) or np.float64 (for gradient checks)
    seed : seed of the np.random.default_rng that draws the weights and the
        dropout masks

    Attributes
    ----------
    params : :class:`~fastconv.nn.params.ParamDict` name -> array, the
        learnable parameters: the very arrays the layers use; assigning an
        entry writes through
    layers : dict name -> layer, in order ("Conv1", "Relu1", "Pool1", ...)
    layer_types : dict name -> its :class:`~fastconv.nn.registry.LayerType`
    last_layer : the SoftmaxWithLoss
    output_shape : shape of one sample's output scores

    Raises ValueError (TypeError for a non-integer size) when a spec is
    malformed or a feature map would shrink below 1x1.
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
        self.params = ParamDict(self.dtype)
        self.layers, self.layer_types = {}, {}
        self._grad_of = {}  # parameter name -> (layer, name of its gradient attribute)
        self.last_layer = SoftmaxWithLoss()
        make, counts = Maker(self.dtype, self._rng), {}
        for entry in entries:
            kind = registry.get(entry["type"])
            counts[kind.kind] = counts.get(kind.kind, 0) + 1
            name = f"{kind.prefix}{counts[kind.kind]}"
            layer = kind.build(entry["options"], entry["in"], make)
            self.layers[name], self.layer_types[name] = layer, kind
            for param in kind.params:
                index = sum(1 for k in self.params if k.rstrip("0123456789") == param.prefix)
                self.params.bind(f"{param.prefix}{index + 1}", layer, param.attr)
                self._grad_of[f"{param.prefix}{index + 1}"] = (layer, param.grad)
        self.output_shape = entries[-1]["out"] if entries else self.input_dim
        # Test-mode prediction runs in chunks whose largest map stays below
        # _TEST_CHUNK_BYTES, so that a layer's input and output stay in cache.
        largest = max([math.prod(self.input_dim)] + [math.prod(e["out"]) for e in entries])
        self._test_chunk = max(1, _TEST_CHUNK_BYTES // (largest * self.dtype.itemsize))
        self._sequence, self._kind_of = rewrites.prepare(self.layers, self.layer_types)

    # -- forward and backward ------------------------------------------------

    def _input(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"x must be a real numeric array, got dtype {x.dtype}")
        if x.ndim < 1:
            raise ValueError(f"x must have shape (N,) + {self.input_dim}, got {x.shape}")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if x.ndim == 2 and len(self.input_dim) > 1 and x.shape[1] == math.prod(self.input_dim):
            x = x.reshape((-1,) + self.input_dim)  # flattened images, as load_mnist gives
        if x.shape[1:] != self.input_dim:
            raise ValueError(f"x must have shape (N,) + {self.input_dim}, got {x.shape}")
        return x

    def predict(self, x, train_flg=False):
        """Scores (N, output_size) before the softmax, in the net's dtype.

        x is (N,) + input_dim, or (N, prod(input_dim)) flattened; other
        dtypes are cast to the net's. ``train_flg`` switches dropout on and
        batch norm to batch statistics. In test mode (the default) the layers
        keep nothing for a backward pass (their ``infer``; :meth:`loss` is the
        forward pass that backward follows), and a large x is run in chunks of
        a few hundred samples, so any N fits in memory: each sample's scores
        do not depend on the others.
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
        fused = None  # a ReLU already applied by the layer before it
        for i, layer in enumerate(self._sequence):
            kind = self._kind_of[id(layer)]
            if layer is fused:
                continue
            if not keep:
                after = self._sequence[i + 1] if i + 1 < len(self._sequence) else None
                if kind.fuses_relu and after is not None and self._kind_of[id(after)].kind == "relu":
                    fused = after
                    x = layer.infer(x, relu=True)
                else:
                    x = layer.infer(x)
            elif kind.takes_train_flag:
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t, train_flg=True):
        """Mean cross-entropy loss of the batch; t as integer labels (N,) or one-hot (N, K).

        The layers keep what :meth:`gradient`'s backward pass needs, in either mode.
        """
        if len(np.shape(x)) and np.shape(x)[0] == 0:
            raise ValueError("x holds no samples: the mean loss of an empty batch is undefined")
        return self.last_layer.forward(self._forward(self._input(x), train_flg, keep=True), t)

    def accuracy(self, x, t, batch_size=None):
        """Fraction of the samples whose top score is their label (test mode).

        Every sample counts: the book's version skips the last partial batch
        but still divides by N. ``batch_size`` None lets :meth:`predict` choose
        its chunks (the fastest); a positive int predicts that many at a time,
        as the book's ``batch_size=100``. The result does not depend on it.
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
        elif isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
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

    def predict_proba(self, x):
        """Class probabilities (N, output_size), float64: the softmax of :meth:`predict`."""
        return softmax(self.predict(x))

    # -- finite differences (fastconv.nn.numerical) ----------------------------

    def fixed_dropout_masks(self):
        """Context manager: within it each Dropout draws one mask and keeps it,
        so the training-mode loss is a deterministic function of the parameters."""
        return numerical.fixed_dropout_masks(self)

    def numerical_gradient(self, x, t, h=1e-4):
        """Gradient of :meth:`loss` by central differences, always computed in
        float64 (see :func:`fastconv.nn.numerical.net_numerical_gradient`)."""
        return numerical.net_numerical_gradient(self, x, t, h)

    def _float64_copy(self):
        return numerical.float64_copy(self, Net)

    # -- the net elsewhere: files, the book's pickles, pictures, ONNX, torch ----

    def save_params(self, file_name="params.npz"):
        """Write ``params`` to an .npz at exactly ``file_name``, atomically
        (:func:`fastconv.io.checkpoint.save_npz`)."""
        from ..io import checkpoint
        checkpoint.save_npz(file_name, self.params)

    def load_params(self, file_name="params.npz"):
        """Read parameters saved by :meth:`save_params` into ``params``, in place,
        checked before anything changes (:func:`fastconv.io.checkpoint.read_npz`)."""
        from ..io import checkpoint
        expected = {name: (p.shape, p.dtype) for name, p in self.params.items()}
        for name, array in checkpoint.read_npz(file_name, expected).items():
            self.params[name][...] = array

    def load_book_params(self, file_name="params.pkl"):
        """Load the book's pickled parameters, read without running them, with
        the book's dropout scaling (:func:`fastconv.nn.book_weights.load_book_params`)."""
        from .book_weights import load_book_params
        load_book_params(self, file_name)

    def predict_images(self, images, batch_size=100):
        """Class probabilities (N, output_size), float64, for pictures of digits
        (:func:`fastconv.io.pictures.images_to_inputs` brings each to MNIST's form)."""
        from ..io.pictures import images_to_inputs
        x = images_to_inputs(images, self.input_dim)
        if len(x) == 0:
            return np.empty((0, math.prod(self.output_shape)))
        return np.concatenate([self.predict_proba(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)])

    def to_onnx(self, path, batch=None):
        """Write the net (test mode) as ONNX; see :func:`fastconv.interop.onnx.to_onnx`."""
        from ..interop.onnx import to_onnx
        return to_onnx(self, path, batch=batch)

    def state_dict_torch(self):
        """The parameters as its PyTorch twin names them
        (:func:`fastconv.interop.torch.state_dict`); needs no PyTorch."""
        from ..interop.torch import state_dict
        return state_dict(self)

    def load_state_dict_torch(self, state_dict):
        """Copy a PyTorch twin's ``state_dict()`` into ``params``
        (:func:`fastconv.interop.torch.load_state_dict`)."""
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
