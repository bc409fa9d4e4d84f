"""Networks: a generic sequential Net, and the book's CNNs built as layer specs.

A :class:`Net` is described by data: its input shape and a list of layer
specs (dicts). It creates the layers and their parameters, named as the book
names them (``W1, b1, W2, ...`` in order of the weight layers, ``gamma1,
beta1, ...`` for batch norm), and runs ``predict``, ``loss`` and ``gradient``
over the list. :class:`SimpleConvNet`, :class:`DeepConvNet`, :class:`LeNet`
and :class:`AlexNet` only write the specs.

Layer specs (``type`` and the listed keys; the others are optional)::

    {"type": "conv", "filter_num": 30, "filter_size": 5, "stride": 1, "pad": 0, "init": "he"}
    {"type": "affine", "output_size": 100, "init": "he"}
    {"type": "pool", "pool_h": 2, "pool_w": 2, "stride": 2, "pad": 0, "mode": "max"}
    {"type": "relu"}   {"type": "sigmoid"}
    {"type": "dropout", "dropout_ratio": 0.5}
    {"type": "batchnorm", "momentum": 0.9}
    {"type": "lrn", "size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}

``init`` is a standard deviation, ``"he"`` (sqrt(2/fan_in), for ReLU) or
``"xavier"`` (sqrt(1/fan_in), for sigmoid); fan_in is the number of inputs
of one unit (C*FH*FW for a convolution). Weights are drawn from a normal
distribution, biases and beta start at zero, gamma at one. A softmax with
cross-entropy loss always ends the net.
"""
import collections.abc
import contextlib
import math

import numpy as np

from . import checkpoint
from .ops.window import Window
from .gradcheck import numerical_gradient as _numerical_gradient
from .layers import (LRN, Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu,
                     Sigmoid, SoftmaxWithLoss)

__all__ = ["Net", "SimpleConvNet", "DeepConvNet", "LeNet", "AlexNet", "MODEL_NAMES",
           "make_model", "ParamDict"]

_SPEC_KEYS = {
    "conv": {"filter_num", "filter_size", "stride", "pad", "init"},
    "affine": {"output_size", "init"},
    "pool": {"pool_h", "pool_w", "stride", "pad", "mode"},
    "relu": set(),
    "sigmoid": set(),
    "dropout": {"dropout_ratio"},
    "batchnorm": {"momentum"},
    "lrn": {"size", "alpha", "beta", "k"},
}
_LAYER_PREFIX = {"conv": "Conv", "affine": "Affine", "pool": "Pool", "relu": "Relu",
                 "sigmoid": "Sigmoid", "dropout": "Dropout", "batchnorm": "BatchNorm",
                 "lrn": "LRN"}


def _count(value, name):
    """A positive int from a spec or input_dim (TypeError for 28.5 or True)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class ParamDict(collections.abc.MutableMapping):
    """A network's learnable parameters by name: a live view of its layers' arrays.

    ``params[name]`` is the array the layer computes with, also after the
    layer's attribute was reassigned (as the book's ``load_params`` does).
    ``params[name] = value`` writes ``value`` into that array: it must have
    the parameter's shape (else ValueError naming both shapes) and a real
    numeric dtype (else TypeError), and is cast to the network's dtype.
    In-place updates (``params[name] -= lr * g``, ``params[name][...] = a``)
    change the layer's array directly, as in the book. The names are fixed:
    an unknown name raises KeyError, deleting one TypeError.
    """

    def __init__(self, dtype):
        self._dtype = np.dtype(dtype)
        self._slots = {}  # name -> (layer, attribute holding the array)

    def _bind(self, name, layer, attr):
        self._slots[name] = (layer, attr)

    def __getitem__(self, name):
        layer, attr = self._slots[name]
        return getattr(layer, attr)

    def __setitem__(self, name, value):
        if name not in self._slots:
            raise KeyError(f"{name!r} is not a parameter of this network; "
                           f"its parameters are {', '.join(self._slots)}")
        layer, attr = self._slots[name]
        current = getattr(layer, attr)
        if value is current:  # what ``params[name] -= g`` stores back
            return
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"params[{name!r}] must be a real numeric array, "
                            f"got dtype {array.dtype}")
        if array.shape != np.shape(current):
            raise ValueError(f"params[{name!r}] has shape {np.shape(current)}, "
                             f"cannot assign an array of shape {array.shape}")
        if (isinstance(current, np.ndarray) and current.dtype == self._dtype
                and current.flags.writeable):
            # Same memory, so optimiser state and other holders stay valid.
            np.copyto(current, array, casting="unsafe")
        else:
            setattr(layer, attr, np.array(array, dtype=self._dtype))

    def __delitem__(self, name):
        raise TypeError(f"a network's parameters cannot be removed (tried {name!r})")

    def __iter__(self):
        return iter(self._slots)

    def __len__(self):
        return len(self._slots)

    def __repr__(self):
        shapes = ", ".join(f"{k!r}: {np.shape(v)}" for k, v in self.items())
        return f"ParamDict({{{shapes}}}, dtype={self._dtype})"


# See Net.__init__. On 10,000 MNIST images (2 threads, benchmarks/README.md)
# DeepConvNet took 2.25-2.38 s in chunks whose largest map was 8-12 MB, 3.3 s
# at 17 MB (a layer's input and output then outgrow the 32 MB L3 cache).
_TEST_CHUNK_BYTES = 8 << 20


def _init_std(init, fan_in):
    if isinstance(init, str):
        if init.lower() in ("he", "relu"):
            return math.sqrt(2.0 / fan_in)
        if init.lower() in ("xavier", "sigmoid"):
            return math.sqrt(1.0 / fan_in)
        raise ValueError(f"init must be a number, 'he' or 'xavier', got {init!r}")
    return float(init)


class Net:
    """A sequential network built from layer specs (see the module docstring).

    Parameters
    ----------
    input_dim : shape of one sample, (C, H, W) or (D,)
    layer_specs : list of dicts
    dtype : np.float32 (default, fast) or np.float64 (for gradient checks)
    seed : seed of the np.random.default_rng that draws the weights and the
        dropout masks

    Attributes
    ----------
    params : :class:`ParamDict` name -> array, the learnable parameters: the
        very arrays the layers use, and assigning an entry writes through
    layers : dict name -> layer, in order ("Conv1", "Relu1", "Pool1", ...)
    last_layer : the SoftmaxWithLoss
    output_shape : shape of one sample's output scores

    Raises ValueError when a spec is malformed or a feature map would shrink
    below 1x1.
    """

    def __init__(self, input_dim, layer_specs, *, dtype=np.float32, seed=None):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_dim = tuple(_count(d, "input_dim entries") for d in input_dim)
        if len(self.input_dim) not in (1, 3):
            raise ValueError(f"input_dim must be (C, H, W) or (D,), got {input_dim!r}")
        self.layer_specs = [dict(spec) for spec in layer_specs]
        self._rng = np.random.default_rng(seed)
        self.params = ParamDict(self.dtype)
        self.layers = {}
        self._grad_of = {}  # parameter name -> (layer, name of its gradient attribute)
        self.last_layer = SoftmaxWithLoss()
        shape = self.input_dim
        counts = {}
        largest_map = math.prod(shape)  # values per sample of the largest activation
        for spec in self.layer_specs:
            kind = self._check_spec(spec)
            counts[kind] = counts.get(kind, 0) + 1
            name = f"{_LAYER_PREFIX[kind]}{counts[kind]}"
            layer, shape = self._make_layer(kind, spec, shape, name)
            self.layers[name] = layer
            largest_map = max(largest_map, math.prod(shape))
        self.output_shape = shape
        # Test-mode prediction runs in chunks whose largest map stays below
        # _TEST_CHUNK_BYTES, so that a layer's input and output stay in cache.
        self._test_chunk = max(1, _TEST_CHUNK_BYTES // (largest_map * self.dtype.itemsize))
        # Nobody asks for the gradient of the input images; skipping it in the
        # first convolution saves a matrix product and a col2im per step.
        first = next(iter(self.layers.values()), None)
        if isinstance(first, Convolution):
            first.needs_input_grad = False
        for layer in self.layers.values():
            if isinstance(layer, Convolution) and layer is not first:
                layer.input_is_private = True
        # A ReLU right after a layer that returns a fresh array may overwrite
        # it (and, in backward, the fresh gradient it is handed).
        previous = None
        for layer in self.layers.values():
            if isinstance(layer, Relu) and isinstance(previous, (Convolution, Affine,
                                                                   BatchNormalization)):
                layer.inplace = True
            previous = layer
        # The order forward runs the layers in. A ReLU right before a max
        # pooling runs after it: ReLU is monotone, so max(relu(x)) = relu(max(x))
        # and every gradient is unchanged (a window whose maximum is <= 0 passes
        # no gradient either way), but the ReLU then sees a quarter of the
        # values (about a tenth of SimpleConvNet's step: benchmarks/README.md).
        self._sequence = list(self.layers.values())
        for i in range(len(self._sequence) - 1):
            relu, pool = self._sequence[i], self._sequence[i + 1]
            if isinstance(relu, Relu) and isinstance(pool, Pooling) and pool.mode == "max":
                self._sequence[i], self._sequence[i + 1] = pool, relu

    @staticmethod
    def _check_spec(spec):
        kind = str(spec.get("type", "")).lower()
        if kind not in _SPEC_KEYS:
            raise ValueError(f"unknown layer type {spec.get('type')!r} in {spec}; "
                             f"expected one of {sorted(_SPEC_KEYS)}")
        unknown = set(spec) - _SPEC_KEYS[kind] - {"type"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} in {kind} spec {spec}")
        return kind

    def _new_param(self, prefix, layer, attr):
        """Name layer.<attr> as the next parameter "<prefix><k>"; the layer
        leaves its gradient in layer.d<attr>."""
        index = sum(1 for k in self.params if k.rstrip("0123456789") == prefix) + 1
        name = f"{prefix}{index}"
        self.params._bind(name, layer, attr)
        self._grad_of[name] = (layer, "d" + attr)

    def _weights(self, shape, init, fan_in):
        # Drawn in float64 and then cast, so a float32 and a float64 net of
        # the same seed hold the same weights up to rounding.
        return (_init_std(init, fan_in) * self._rng.standard_normal(shape)).astype(self.dtype)

    def _spatial_out(self, name, shape, window):
        h, w = shape[1:]
        try:
            return window.out_size(h, w)
        except ValueError:
            raise ValueError(
                f"{type(self).__name__}: layer {name} ({window.kernel[0]}x{window.kernel[1]} "
                f"window, stride {window.stride}, pad {window.padding}) gets a {h}x{w} feature "
                f"map, too small for it; input_dim {self.input_dim} is too small for this "
                f"architecture") from None

    def _make_layer(self, kind, spec, shape, name):
        if kind in ("conv", "pool", "lrn") and len(shape) != 3:
            raise ValueError(f"layer {name} needs (C, H, W) feature maps, gets shape {shape}")
        if kind == "conv":
            fn = _count(spec["filter_num"], f"{name}: filter_num")
            window = Window.of(spec["filter_size"], spec.get("stride", 1), spec.get("pad", 0),
                               names=[f"{name}: {k}" for k in ("filter_size", "stride", "pad",
                                                               "dilation")])
            oh, ow = self._spatial_out(name, shape, window)
            (fh, fw), stride, pad = window.kernel, window.stride, window.padding
            c = shape[0]
            W = self._weights((fn, c, fh, fw), spec.get("init", "he"), c * fh * fw)
            layer = Convolution(W, np.zeros(fn, self.dtype), stride, pad)
            self._new_param("W", layer, "W")
            self._new_param("b", layer, "b")
            return layer, (fn, oh, ow)
        if kind == "affine":
            d, m = math.prod(shape), _count(spec["output_size"], f"{name}: output_size")
            W = self._weights((d, m), spec.get("init", "he"), d)
            layer = Affine(W, np.zeros(m, self.dtype))
            self._new_param("W", layer, "W")
            self._new_param("b", layer, "b")
            return layer, (m,)
        if kind == "pool":
            window = Window.of((spec.get("pool_h", 2), spec.get("pool_w", 2)),
                               spec.get("stride", 2), spec.get("pad", 0),
                               names=[f"{name}: {k}" for k in ("pool_h/pool_w", "stride", "pad",
                                                               "dilation")])
            oh, ow = self._spatial_out(name, shape, window)
            layer = Pooling(*window.kernel, window.stride, window.padding,
                            mode=spec.get("mode", "max"))
            return layer, (shape[0], oh, ow)
        if kind == "batchnorm":
            c = shape[0]
            layer = BatchNormalization(np.ones(c, self.dtype), np.zeros(c, self.dtype),
                                       momentum=spec.get("momentum", 0.9))
            self._new_param("gamma", layer, "gamma")
            self._new_param("beta", layer, "beta")
            return layer, shape
        if kind == "dropout":
            return Dropout(spec.get("dropout_ratio", 0.5), rng=self._rng), shape
        if kind == "lrn":
            return LRN(**{k: v for k, v in spec.items() if k != "type"}), shape
        return (Relu() if kind == "relu" else Sigmoid()), shape

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
        keep nothing for a backward pass (no ReLU masks, pooling indices or
        patch matrices; :meth:`loss` is the forward pass that backward
        follows), and a large x is run in chunks of a few hundred samples, so
        any N fits in memory: each sample's scores do not depend on the others.
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
        fused = None  # a ReLU already applied by the convolution before it
        for i, layer in enumerate(self._sequence):
            if layer is fused:
                continue
            if not keep and isinstance(layer, Convolution):
                after = self._sequence[i + 1] if i + 1 < len(self._sequence) else None
                fused = after if isinstance(after, Relu) else None
                x = layer.infer(x, relu=fused is not None)
                continue
            if not keep and hasattr(layer, "infer"):
                x = layer.infer(x)
                continue
            # Without ``keep``, a layer with no ``infer`` gets its attributes
            # back afterwards, so that a pending backward still sees the
            # forward it belongs to (its forward only rebinds attributes).
            saved = None if keep else dict(vars(layer))
            if isinstance(layer, (Dropout, BatchNormalization)):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
            if saved is not None:
                vars(layer).clear()
                vars(layer).update(saved)
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
        batch_size = int(batch_size)
        correct = 0
        for start in range(0, n, batch_size):
            y = self.predict(x[start:start + batch_size], train_flg=False)
            correct += int(np.sum(np.argmax(y, axis=1) == t[start:start + batch_size]))
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

    # -- finite differences --------------------------------------------------

    @contextlib.contextmanager
    def fixed_dropout_masks(self):
        """Within this block, each Dropout draws one mask and then keeps it.

        Makes the training-mode loss a deterministic function of the
        parameters, as a finite-difference check needs.
        """
        drops = [l for l in self.layers.values() if isinstance(l, Dropout) and not l.frozen]
        for layer in drops:
            layer.mask, layer.frozen = None, True
        try:
            yield self
        finally:
            for layer in drops:
                layer.frozen = False

    def numerical_gradient(self, x, t, h=1e-4):
        """Gradient of :meth:`loss` by central differences (slow; for checking).

        Always computed in float64: a float32 net is copied to a float64 one
        (same specs, parameters and batch-norm statistics), since in float32
        a step of 1e-4 changes the loss by about its own rounding error. The
        result has the dtype of ``params``. Each Dropout draws one mask at the
        start and keeps it throughout (a new draw, not the net's last mask),
        and the batch-norm running statistics are restored afterwards.
        """
        x = self._input(x)
        if self.dtype != np.float64:
            grads = self._float64_copy().numerical_gradient(x, t, h)
            return {name: g.astype(self.dtype) for name, g in grads.items()}
        norms = [l for l in self.layers.values() if isinstance(l, BatchNormalization)]
        saved = [(l.running_mean.copy(), l.running_var.copy()) for l in norms]
        try:
            with self.fixed_dropout_masks():
                return {name: _numerical_gradient(lambda _: self.loss(x, t), p, h)
                        for name, p in self.params.items()}
        finally:
            for layer, (mean, var) in zip(norms, saved):
                layer.running_mean[...] = mean
                layer.running_var[...] = var

    def _float64_copy(self):
        """A float64 :class:`Net` computing the same function as this one."""
        twin = Net(self.input_dim, self.layer_specs, dtype=np.float64)
        for name, array in self.params.items():
            twin.params[name] = array
        for mine, its in zip(self.layers.values(), twin.layers.values()):
            if isinstance(mine, BatchNormalization):
                its.running_mean[...] = mine.running_mean
                its.running_var[...] = mine.running_var
                its.momentum, its.eps = mine.momentum, mine.eps
            elif isinstance(mine, Dropout):
                its.mask = None if mine.mask is None else mine.mask.copy()
                its.frozen = mine.frozen
        return twin

    # -- parameters on disk --------------------------------------------------

    def save_params(self, file_name="params.npz"):
        """Write ``params`` to an uncompressed .npz at exactly ``file_name``.

        No suffix is added (``"mynet"`` and the book's ``"params.pkl"`` are
        written under those names, with .npz content), so :meth:`load_params`
        of the same name reads it back. The file is replaced atomically: if
        the write fails, a previous file of that name is left as it was. A
        folder is refused (:class:`~fastconv.checkpoint.CheckpointError`).
        """
        checkpoint.save_npz(file_name, self.params)

    def load_params(self, file_name="params.npz"):
        """Read parameters saved by :meth:`save_params` into ``params``, in place.

        The file must be an .npz holding exactly the names of ``params``, each
        with the same shape and a dtype that casts to the net's (float64 into
        a float32 net is fine). It is read with ``allow_pickle=False``: a
        pickle (such as the book's ``.pkl``), a truncated or foreign file or
        an object array raises :class:`~fastconv.checkpoint.CheckpointError`
        (a ValueError), and nothing in it is executed. Names, shapes and sizes
        are checked before any array data is read, and nothing is changed
        unless every array passes.
        """
        expected = {name: (p.shape, p.dtype) for name, p in self.params.items()}
        for name, array in checkpoint.read_npz(file_name, expected).items():
            self.params[name][...] = array

    # -- the book's pickled parameters ----------------------------------------

    def load_book_params(self, file_name="params.pkl"):
        """Load a parameter file of the book's ``save_params`` (a pickle) into ``params``.

        The file is read by :func:`fastconv.book_params.read_book_params`,
        which runs nothing in it. It must hold exactly the names of
        ``params`` with their shapes; values are cast to the net's dtype.
        The book's Dropout is not inverted: at test time it scales its
        input by ``1 - dropout_ratio``, where this net's Dropout passes it
        unchanged. So the parameters of the layer whose output reaches each
        Dropout (through ReLUs, poolings and other Dropouts only, which all
        commute with a positive factor) are scaled by ``1 - dropout_ratio``:
        this net then computes the book's scores, in test and in training
        mode (for DeepConvNet, W7, b7, W8 and b8 are halved). Nothing is
        changed unless every array passes. Raises ValueError otherwise.
        """
        from .book_params import read_book_params

        loaded = read_book_params(file_name)
        missing = sorted(set(self.params) - set(loaded))
        extra = sorted(set(loaded) - set(self.params))
        if missing or extra:
            raise ValueError(f"{file_name}: parameter names do not match this network "
                             f"(missing {missing}, unexpected {extra})")
        for name, array in loaded.items():
            if array.shape != self.params[name].shape:
                raise ValueError(f"{file_name}: {name} has shape {array.shape}, "
                                 f"this network needs {self.params[name].shape}")
        factors = self._book_dropout_factors()
        for name, array in loaded.items():
            self.params[name] = array * factors.get(name, 1.0)

    def _book_dropout_factors(self):
        """Parameter name -> the factor that turns the book's values into this net's."""
        owner = {}  # id(layer) -> its parameter names
        for name, (layer, _) in self._grad_of.items():
            owner.setdefault(id(layer), []).append(name)
        layers = list(self.layers.items())
        factors = {}
        for i, (name, layer) in enumerate(layers):
            if not isinstance(layer, Dropout):
                continue
            j = i - 1
            while j >= 0 and isinstance(layers[j][1], (Relu, Pooling, Dropout)):
                j -= 1
            if j < 0 or not isinstance(layers[j][1], (Convolution, Affine)):
                raise ValueError(f"cannot match the book's dropout at {name}: no convolution "
                                 f"or affine layer feeds it through ReLUs and poolings only")
            for param in owner[id(layers[j][1])]:
                factors[param] = factors.get(param, 1.0) * (1.0 - layer.dropout_ratio)
        return factors

    # -- taking the net elsewhere ------------------------------------------------

    def predict_images(self, images, batch_size=100):
        """Class probabilities (N, output_size), float64, for pictures of digits.

        ``images`` is a list of paths (PNG, JPEG, BMP, ...; read with Pillow)
        or 2-D gray arrays in [0, 1]. Each is brought to MNIST's form first
        (light backgrounds inverted, cropped to the ink, scaled into 20x20,
        centred by mass in 28x28: :func:`fastconv.imaging.digit_to_input`).
        A bad file raises :class:`fastconv.imaging.ImageError` (a ValueError)
        naming it. The net must take (1, S, S) inputs.
        """
        from .imaging import images_to_inputs
        x = images_to_inputs(images, self.input_dim)
        if len(x) == 0:
            return np.empty((0, math.prod(self.output_shape)))
        scores = np.concatenate([self.predict(x[i:i + batch_size])
                                 for i in range(0, len(x), batch_size)]).astype(np.float64)
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        return probs / probs.sum(axis=1, keepdims=True)

    def to_onnx(self, path, batch=None):
        """Write the net (test mode) as an ONNX model; see :func:`fastconv.export.to_onnx`.

        Needs the ``onnx`` package (``pip install fastconv[onnx]``).
        """
        from .export import to_onnx
        return to_onnx(self, path, batch=batch)

    def state_dict_torch(self):
        """The parameters as the twin of :func:`fastconv.torch_twin.sequential` expects them.

        A dict of NumPy arrays named ``"0.weight"``, ``"0.bias"``, ... as in
        a ``torch.nn.Sequential`` with one module per layer spec and an
        ``nn.Flatten`` before the first Linear after image maps. Linear
        weights are transposed (M, D); batch norms add ``running_mean``,
        ``running_var`` and ``num_batches_tracked``. Needs no PyTorch.
        """
        from .torch_twin import state_dict
        return state_dict(self)

    def load_state_dict_torch(self, state_dict):
        """Copy a PyTorch twin's ``state_dict()`` (tensors or arrays) into ``params``.

        The inverse of :meth:`state_dict_torch`; batch-norm running statistics
        go into the layers. Raises ValueError on missing or unexpected names
        or a shape mismatch, before changing anything.
        """
        from .torch_twin import load_state_dict
        load_state_dict(self, state_dict)

    @classmethod
    def from_card(cls, card, dtype=None):
        """A :class:`Net` (random weights) from a model card's dict (see
        :mod:`fastconv.modelcard`) that has ``input_dim`` and ``layer_specs``;
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


class SimpleConvNet(Net):
    """The book's chapter 7 CNN: conv - relu - pool - affine - relu - affine - softmax.

    Parameters
    ----------
    input_dim : (C, H, W), default (1, 28, 28)
    conv_param : dict with filter_num (30), filter_size (5), pad (0), stride (1);
        missing keys take these defaults
    hidden_size, output_size : widths of the two affine layers
    weight_init_std : standard deviation of every weight (biases start at 0),
        or ``"he"`` for sqrt(2/fan_in) per layer, as the book's chapter 6
        advises for ReLU networks (much faster first epochs)
    dtype, seed : see :class:`Net`

    The pooling is 2x2 with stride 2. Parameters: W1, b1 (conv), W2, b2, W3, b3.
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
    are 2x2 with stride 2; dropout ratios are 0.5. conv_param_1 .. conv_param_6
    override these per layer (dicts with filter_num, filter_size, pad, stride).
    Weights use He initialisation, sqrt(2 / fan_in) with fan_in the inputs of
    one unit: for the default input it gives the book's numbers (1*3*3,
    16*3*3, ..., 64*4*4, hidden_size). Parameters W1..W8, b1..b8.
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

    The first convolution pads by ``conv1_pad`` (2), so that a 28x28 MNIST
    image gives the 28x28 maps that the original gets from its 32x32 input;
    use ``conv1_pad=0`` with input_dim (1, 32, 32) for the original sizes.
    ``conv_channels`` and ``hidden_sizes`` set the widths. Weights use
    Xavier initialisation, sqrt(1 / fan_in). Parameters W1..W5, b1..b5.
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
    LRN is size 5, alpha 1e-4, beta 0.75, k 2.

    The defaults are the paper's sizes for a 3x224x224 input (conv1 11x11,
    stride 4, pad 2; widths 96-256-384-384-256; 4096 hidden units; 1000
    classes): about 62 million parameters. For MNIST choose smaller ones, e.g.
    ``AlexNet((1, 28, 28), output_size=10, conv_channels=(32, 64, 96, 96, 64),
    hidden_size=256, conv1_size=3, conv1_stride=1, conv1_pad=1)``. A
    configuration whose feature maps shrink below 1x1 raises ValueError.
    Weights use He initialisation. Parameters W1..W8, b1..b8.
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

    ``init="he"`` gives SimpleConvNet He's initial weights instead of the
    book's std 0.01 (the other models use He's already). Raises ValueError
    for an unknown name or init.
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
