"""
Handing a trained net to ONNX Runtime and PyTorch
=================================================

A SimpleConvNet trained for one epoch on 3,000 MNIST images, then

1. exported to ONNX (:meth:`fastconv.Net.to_onnx`) and run by ONNX Runtime;
2. rebuilt in PyTorch as a ``torch.nn.Sequential`` with the same weights
   (:func:`fastconv.interop.torch.twin`);
3. brought back: weights changed in PyTorch load into a fresh fastconv net
   (:meth:`fastconv.Net.load_state_dict_torch`).

All three compute the scores ``net.predict`` computes, within float32
rounding: the largest differences are printed and drawn below.
"""
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as ort
import torch

import fastconv
from fastconv.interop.torch import twin

from _data import mnist_subset

(x_train, t_train), (x_test, t_test) = mnist_subset(n_train=3000, n_test=1000)
net = fastconv.SimpleConvNet(weight_init_std="he", seed=0)
fastconv.Trainer(net, x_train, t_train, x_test, t_test, epochs=1, optimizer="Adam",
                 optimizer_param={"lr": 0.003}, verbose=False, seed=0).train()
scores = net.predict(x_test)
print(f"fastconv: accuracy {net.accuracy(x_test, t_test):.3f} on 1,000 test images")

# %%
# ONNX: the graph takes ``input`` (batch, 1, 28, 28) and returns ``logits``.

path = os.path.join(tempfile.mkdtemp(), "simple.onnx")
net.to_onnx(path)
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
print("inputs:", [(i.name, i.shape) for i in session.get_inputs()])
onnx_scores = session.run(None, {"input": x_test})[0]
print(f"ONNX Runtime: largest difference {np.abs(onnx_scores - scores).max():.2e}, "
      f"same class for {np.mean(onnx_scores.argmax(1) == scores.argmax(1)):.1%} of images")

# %%
# PyTorch: the twin is an ordinary module, in eval mode here.

model = twin(net).eval()
print(model)
with torch.no_grad():
    torch_scores = model(torch.from_numpy(x_test)).numpy()
print(f"PyTorch: largest difference {np.abs(torch_scores - scores).max():.2e}, "
      f"same class for {np.mean(torch_scores.argmax(1) == scores.argmax(1)):.1%} of images")

# %%
# And back: a few SGD steps in PyTorch, then the weights in a new fastconv net.

optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
model.train()
for start in range(0, 500, 100):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x_train[start:start + 100])),
                                             torch.from_numpy(t_train[start:start + 100]).long())
    loss.backward()
    optimizer.step()
model.eval()
back = fastconv.SimpleConvNet()
back.load_state_dict_torch(model.state_dict())
with torch.no_grad():
    after = model(torch.from_numpy(x_test)).numpy()
print(f"after PyTorch's steps, fastconv and PyTorch differ by at most "
      f"{np.abs(back.predict(x_test) - after).max():.2e}")

# %%
# How far apart the scores are, image by image (largest of the 10 scores).

fig, ax = plt.subplots(figsize=(8, 3.5))
bins = np.logspace(-9, -4, 40)
for other, label in ((onnx_scores, "ONNX Runtime"), (torch_scores, "PyTorch twin")):
    ax.hist(np.abs(other - scores).max(axis=1) + 1e-12, bins=bins, alpha=0.6, label=label)
ax.set_xscale("log")
ax.set_xlabel("largest |score difference| from net.predict, per image")
ax.set_ylabel("images")
ax.legend()
fig.tight_layout()
