"""
Outgrowing one machine: continue training in PyTorch with torch.distributed
===========================================================================

A net trained with fastconv can go on training where PyTorch's tools are:
here two CPU processes (the ``gloo`` backend, as on a cluster of CPU nodes)
continue a SimpleConvNet with ``DistributedDataParallel``. Before any update,
each process checks that its PyTorch copy has the fastconv net's accuracy on
the test images, within 0.2 percentage points (the two compute the same
scores up to float32 rounding, which can only reorder an image's two best
scores when they are that close). At the end, both processes hold the same
weights, and the weights go back into a fastconv net, which must score what
PyTorch scored.

The two processes run ``_ddp_worker.py``, started here with the rendezvous
in environment variables (``MASTER_ADDR=127.0.0.1`` and a free port), as
``torchrun`` would set them:

.. literalinclude:: ../../examples/_ddp_worker.py
   :language: python
   :lines: 10-
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import fastconv

from _data import mnist_subset

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

# %%
# fastconv first: one epoch on 3,000 training images.

(x_train, t_train), (x_test, t_test) = mnist_subset(n_train=3000, n_test=1000)
net = fastconv.SimpleConvNet(weight_init_std="he", seed=0)
fastconv.Trainer(net, x_train, t_train, x_test, t_test, epochs=1, optimizer="Adam",
                 optimizer_param={"lr": 0.003}, verbose=False, seed=0).train()
print(f"fastconv net: test accuracy {net.accuracy(x_test, t_test):.4f}")

workdir = Path(tempfile.mkdtemp())
net.save_params(workdir / "params.npz")
np.savez(workdir / "data.npz", x_train=x_train, t_train=t_train, x_test=x_test, t_test=t_test)

# %%
# Two processes, one core each.

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
           OMP_NUM_THREADS="1")
start = time.perf_counter()
workers = [subprocess.Popen([sys.executable, str(HERE / "_ddp_worker.py"), str(workdir)],
                            env=dict(env, RANK=str(rank))) for rank in range(2)]
try:
    codes = [w.wait(timeout=600) for w in workers]
finally:
    for w in workers:
        if w.poll() is None:
            w.kill()
# A rank that finished its work (it marks that after leaving the group) may
# still be aborted by PyTorch's own teardown; say so, and fail only for a rank
# that did not get there.
for rank, code in enumerate(codes):
    if code and (workdir / f"rank{rank}.finished").exists():
        print(f"rank {rank} finished its work, then exited with {code} in PyTorch's teardown")
    elif code:
        raise RuntimeError(f"the workers exited with {codes}; rank {rank} did not finish")
result = json.loads((workdir / "result.json").read_text())
print(f"{result['processes']} processes ({result['backend']}), "
      f"{time.perf_counter() - start:.1f} s")
print(f"before training: fastconv {result['start_fastconv']:.4f}, "
      f"PyTorch copy {result['start_torch']:.4f} (tolerance {result['tolerance']})")
for record in result["history"]:
    print(f"epoch {record['epoch']}: mean loss {record['loss']:.4f}, "
          f"test accuracy {record['test_acc']:.4f}")
print(f"same weights on both processes: {result['same_weights_on_every_rank']}")
print(f"back in fastconv: {result['end_back_in_fastconv']:.4f} "
      f"(PyTorch: {result['end_torch']:.4f})")
assert abs(result["start_torch"] - result["start_fastconv"]) <= result["tolerance"]
assert abs(result["end_back_in_fastconv"] - result["end_torch"]) <= result["tolerance"]
assert result["same_weights_on_every_rank"]

out = os.environ.get("FASTCONV_EXAMPLE_RESULT")
if out:  # tests/test_distributed_example.py reads it
    Path(out).write_text(json.dumps(result))

# %%
# Test accuracy on the 1,000 images: the fastconv net, then each epoch of
# data-parallel training in PyTorch.

fig, ax = plt.subplots(figsize=(7, 3.5))
epochs = [0] + [r["epoch"] for r in result["history"]]
ax.plot(epochs, [result["start_torch"]] + [r["test_acc"] for r in result["history"]], "o-",
        label="PyTorch, 2 processes (gloo)")
ax.plot([0], [result["start_fastconv"]], "s", ms=10, mfc="none", label="fastconv, 1 epoch")
ax.set_xticks(epochs)
ax.set_xlabel("epochs of distributed training")
ax.set_ylabel("test accuracy (1,000 images)")
ax.legend(loc="lower right")
fig.tight_layout()
