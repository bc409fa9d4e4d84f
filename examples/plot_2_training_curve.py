"""
A training curve
================

SimpleConvNet trained with the ``fast`` recipe (He weights, Adam with a cosine
decay before every update, shifts of up to one pixel) on 5,000 MNIST training
images for 3 epochs, evaluated on the first 1,000 test images after every
epoch. The full recipe (60,000 images) reaches about 99.1% (see
:doc:`/training`); this subset gets a few points less in a few seconds.
"""
import time

import matplotlib.pyplot as plt
import numpy as np

from fastconv.train import RECIPES

from _data import mnist_subset

(x_train, t_train), (x_test, t_test) = mnist_subset(n_train=5000, n_test=1000)
recipe = RECIPES["fast"]
print(recipe)
net = recipe.model("simple", seed=0)
trainer = recipe.trainer(net, (x_train, t_train), (x_test, t_test), seed=0)
trainer.verbose = False
start = time.perf_counter()
trainer.train()
print(f"trained in {time.perf_counter() - start:.1f} s")
for record in trainer.history:
    print({k: round(v, 4) for k, v in record.items()})

# %%
# The loss of every mini-batch (smoothed over 10) and the accuracies per epoch.

fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
loss = np.asarray(trainer.train_loss_list)
smooth = np.convolve(loss, np.ones(10) / 10, mode="valid")
ax_loss.plot(loss, color="0.8", lw=0.8, label="mini-batch")
ax_loss.plot(np.arange(9, len(loss)), smooth, color="C0", label="mean of 10")
ax_loss.set_xlabel("update")
ax_loss.set_ylabel("cross-entropy loss")
ax_loss.set_yscale("log")
ax_loss.legend()
epochs = np.arange(1, len(trainer.test_acc_list) + 1)
ax_acc.plot(epochs, trainer.train_acc_list, "o-", label="train (5,000)")
ax_acc.plot(epochs, trainer.test_acc_list, "s-", label="test (1,000)")
ax_acc.set_xlabel("epoch")
ax_acc.set_ylabel("accuracy")
ax_acc.set_xticks(epochs)
ax_acc.legend()
fig.tight_layout()
