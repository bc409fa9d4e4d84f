"""
Filters and feature maps of a trained net
=========================================

SimpleConvNet's 30 first-layer filters before and after one epoch on 5,000
MNIST images, and what the trained filters make of one test digit. The
layers of a net are plain objects (``net.layers``), so the maps are the output
of the first convolution, read by running the layers one at a time.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastconv

from _data import mnist_subset

(x_train, t_train), (x_test, t_test) = mnist_subset(n_train=5000, n_test=1000)
net = fastconv.SimpleConvNet(weight_init_std="he", seed=0)
before = net.params["W1"].copy()
trainer = fastconv.Trainer(net, x_train, t_train, x_test, t_test, epochs=1,
                           optimizer="Adam", optimizer_param={"lr": 0.003},
                           verbose=False, seed=0)
trainer.train()
print(f"test accuracy on 1,000 images after one epoch: {net.accuracy(x_test, t_test):.3f}")


def grid(filters, title, fig, spec):
    """Draw (30, 1, 5, 5) filters as a 3x10 grid of gray squares."""
    sub = spec.subgridspec(3, 10, wspace=0.1, hspace=0.1)
    for i, w in enumerate(filters[:, 0]):
        ax = fig.add_subplot(sub[i // 10, i % 10])
        ax.imshow(w, cmap="gray_r", interpolation="nearest")
        ax.set_axis_off()
        if i == 0:
            ax.set_title(title, loc="left", fontsize=10)


fig = plt.figure(figsize=(10, 4))
outer = fig.add_gridspec(2, 1, hspace=0.3)
grid(before, "conv1 filters at initialisation (He)", fig, outer[0])
grid(net.params["W1"], "conv1 filters after one epoch", fig, outer[1])

# %%
# The first layer's 30 maps of one test digit: the convolution's output
# (24x24 each), before the ReLU.

digit = x_test[:1]
print("layers:", [type(layer).__name__ for layer in net.layers.values()])
conv1 = next(iter(net.layers.values()))
maps = conv1.forward(digit)
print("conv1 output", maps.shape, maps.dtype)

fig, axes = plt.subplots(3, 11, figsize=(11, 3.3))
axes[0, 0].imshow(digit[0, 0], cmap="gray_r")
axes[0, 0].set_title(f"label {t_test[0]}", fontsize=9)
for ax in axes.flat:
    ax.set_axis_off()
for i in range(30):
    ax = axes[i // 10, 1 + i % 10]
    ax.imshow(maps[0, i], cmap="RdBu_r", vmin=-np.abs(maps[0]).max(), vmax=np.abs(maps[0]).max())
fig.tight_layout()
