"""Run the book's own scripts on fastconv: ``python -m fastconv.book ch07/train_convnet.py``.

Before the script runs, modules stand in for the book's helpers in
``sys.modules``, with the book's names and signatures and fastconv behind
them:

- ``common.layers``: ``Convolution``, ``Pooling``, ``Affine``, ``Relu``,
  ``Sigmoid``, ``SoftmaxWithLoss`` are fastconv's layers; ``Dropout`` and
  ``BatchNormalization`` keep the book's arithmetic (dropout scaled by
  ``1 - dropout_ratio`` at test time; batch norm of 4-D input per C*H*W
  feature, its running variance starting at zero), so the book's own
  networks and weights give the book's results.
  Like the book's module it also offers ``common.functions``' names and
  ``im2col``/``col2im``.
- ``common.util``: ``im2col``, ``col2im`` (the compiled kernels),
  ``smooth_curve``, ``shuffle_dataset``, ``conv_output_size``.
- ``common.functions``: ``sigmoid``, ``relu``, ``softmax``,
  ``cross_entropy_error``, ... (plain NumPy, as small as the book's).
- ``common.gradient``: ``numerical_gradient(f, x)``.
- ``common.optimizer``: fastconv's ``SGD``, ``Momentum``, ``Nesterov``,
  ``AdaGrad``, ``RMSprop``, ``Adam``; like the book's, they also step a dict
  of Python numbers (ch06's ``optimizer_compare_naive.py``), see
  :mod:`fastconv.optim`.
- ``common.trainer``: a ``Trainer`` that trains and prints as the book's
  ("train loss:...", "=== epoch:1, train acc:..., test acc:... ===" and the
  final test accuracy).
- ``dataset.mnist``: ``load_mnist(normalize, flatten, one_hot_label)`` looks
  for MNIST where a reader of the book keeps it, in the ``dataset/`` folder of
  the script's book: first the four ``.gz`` files the book's loader downloads
  there (``train-images-idx3-ubyte.gz``, ...), read and checked by fastconv's
  IDX reader; else the ``mnist.pkl`` the book's loader caches them in, read
  by the restricted unpickler of :mod:`fastconv.io.book_pickle` (NumPy arrays
  only: a pickle naming anything else is refused before it runs) and checked
  as a dict of the book's four uint8 arrays. Without either, it reads them
  with :func:`fastconv.load_mnist` from ``$FASTCONV_DATA``, else fastconv's
  cache (downloading there with checksums when missing). (The book's own
  loader reads only its pickle, which it first makes from the ``.gz`` files,
  downloading those that are missing.) What comes back is the book's:
  images float32 in [0, 1] (uint8 without ``normalize``), (N, 784) or
  (N, 1, 28, 28); labels uint8, or one-hot rows (float32 here, float64 in
  the book). A broken file in the book's folder is an error naming it
  (``python -m fastconv.book`` prints it as one line and exits with 1), not
  a reason to look elsewhere.

Modules of the book that are not replaced (``common.multi_layer_net``, ...)
are still found in the book's folder, next to the script's folder, and use
the replacements. The script runs as ``__main__`` from its own folder (the
book's scripts open ``params.pkl`` and ``../dataset/...`` relative to it),
with that folder first on ``sys.path`` and its parent after it, as the
book's ``sys.path.append(os.pardir)`` expects.

``--float32`` makes the parameter layers compute in float32 on float32
copies of the book's float64 weights (the weights themselves stay float64
and are updated as usual): training runs on fastconv's float32 kernels.
Finite-difference gradient checks need the default float64.
"""
from .mnist import load_mnist
from .runner import MODULES, install, installed, main, run

__all__ = ["install", "installed", "run", "main", "MODULES", "load_mnist"]
