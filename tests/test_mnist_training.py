"""The book's result: SimpleConvNet learns MNIST, on the real 60,000 training images.

One epoch of SimpleConvNet with He's initial weights (Adam lr 0.001, batch
100, float32) on the C backend, seed 0. This is the
end-to-end check that the kernels, layers, optimiser and trainer together
learn; it is marked slow but must run (never skip) wherever the suite runs.
Run with ``pytest -s`` to see the accuracy and time.

Why He's weights and not the book's std 0.01: with the book's, one epoch
reaches 0.9612 here (PyTorch, from the same weights and batch order: 0.9617),
because tiny initial weights make the first epoch slow. He's
sqrt(2/fan_in), which the book's chapter 6 recommends for ReLU, reached
0.9815 in one epoch (measured 2026-11-27). The run is deterministic (seed 0,
results independent of the thread count).
"""

import time

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv.io.mnist import load_mnist
from fastconv.nn import SimpleConvNet
from fastconv.train.trainer import Trainer

# The bound; measured 0.9815 (seed 0, 1 epoch, He init).
MIN_ACCURACY = 0.97


@pytest.mark.slow
def test_one_epoch_of_simpleconvnet_learns_mnist(mnist_dir):
    assert "c" in fastconv.available_backends(), \
        "the compiled C extension is missing; this test needs the C backend"
    (x_train, t_train), (x_test, t_test) = load_mnist(flatten=False, data_dir=mnist_dir,
                                                      download=False)
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert x_train.dtype == np.float32

    with F.use_backend("c"):
        network = SimpleConvNet(weight_init_std="he", dtype=np.float32, seed=0)
        trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=1,
                          mini_batch_size=100, optimizer="Adam",
                          optimizer_param={"lr": 0.001}, verbose=False, seed=0,
                          train_eval_samples=1000)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        accuracy = float(network.accuracy(x_test, t_test))

    print(f"\nSimpleConvNet (He init), 1 epoch on 60000 MNIST images (Adam lr 0.001, batch 100, "
          f"float32, C backend, {F.get_num_threads()} threads): test accuracy "
          f"{accuracy:.4f} on {len(x_test)} images, {seconds:.1f} s")

    assert trainer.current_epoch == 1 and trainer.current_iter == 600
    assert len(trainer.train_loss_list) == 600
    assert np.all(np.isfinite(trainer.train_loss_list))
    # The epoch's test accuracy was measured on all 10,000 images too.
    assert trainer.final_test_acc == pytest.approx(accuracy)
    assert accuracy >= MIN_ACCURACY, \
        f"test accuracy {accuracy:.4f} after one epoch, expected >= {MIN_ACCURACY}"
