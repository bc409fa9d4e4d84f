"""One of the processes of plot_7_distributed.py (not an example itself).

Run as ``python _ddp_worker.py WORKDIR`` with RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT set. Each process rebuilds the fastconv net from WORKDIR/params.npz
as a PyTorch twin, first checks that the twin classifies the test images as
fastconv does, then trains its share of the images under
``DistributedDataParallel`` (gloo, CPU). Rank 0 writes WORKDIR/result.json.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import fastconv
from fastconv.interop.torch import twin

# The accuracy of the PyTorch copy may differ from the fastconv net's only where
# float32 rounding reorders the two best scores of an image: allow 2 of 1,000.
TOLERANCE = 0.002


def accuracy(model, x, t):
    """Fraction of the images whose top score in ``model`` is their label."""
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == t).mean())


def main(workdir):
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)          # one core per process
    torch.manual_seed(0)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    data = np.load(workdir / "data.npz")
    x_train, t_train, x_test, t_test = (data[k] for k in ("x_train", "t_train",
                                                          "x_test", "t_test"))
    net = fastconv.SimpleConvNet()
    net.load_params(workdir / "params.npz")
    model = twin(net).eval()

    # 1. The copy first: same accuracy as the fastconv net it came from.
    start_fastconv = float(net.accuracy(x_test, t_test))
    start_torch = accuracy(model, x_test, t_test)
    if abs(start_torch - start_fastconv) > TOLERANCE:
        raise SystemExit(f"rank {rank}: PyTorch copy {start_torch:.4f} against fastconv "
                         f"{start_fastconv:.4f}, more than {TOLERANCE} apart")

    # 2. Then data-parallel training: each process its half of the images, the
    #    gradients averaged across processes after every backward pass.
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    mine = np.arange(rank, len(x_train), world)
    rng = np.random.default_rng(0)     # the same order on every rank
    batch = 50                         # per process: 100 images per update in all
    history = []
    for epoch in range(1, 4):
        ddp.train()
        losses = []
        order = mine[rng.permutation(len(mine))]
        for begin in range(0, len(order), batch):
            pick = order[begin:begin + batch]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                ddp(torch.from_numpy(x_train[pick])), torch.from_numpy(t_train[pick]).long())
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        ddp.eval()
        history.append({"epoch": epoch, "loss": float(np.mean(losses)),
                        "test_acc": accuracy(ddp.module, x_test, t_test)})

    # Both processes must hold the same weights at the end.
    flat = torch.cat([p.detach().reshape(-1) for p in ddp.module.parameters()])
    largest = flat.clone()
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    equal = torch.tensor([float(torch.equal(largest, flat))])
    dist.all_reduce(equal, op=dist.ReduceOp.MIN)   # 1 only if every rank holds the largest
    same_weights = bool(equal.item() == 1.0)

    if rank == 0:
        back = fastconv.SimpleConvNet()
        back.load_state_dict_torch(ddp.module.state_dict())
        (workdir / "result.json").write_text(json.dumps({
            "processes": world,
            "backend": dist.get_backend(),
            "tolerance": TOLERANCE,
            "start_fastconv": start_fastconv,
            "start_torch": start_torch,
            "history": history,
            "end_torch": history[-1]["test_acc"],
            "end_back_in_fastconv": float(back.accuracy(x_test, t_test)),
            "same_weights_on_every_rank": same_weights,
        }, indent=1))
    dist.barrier()                     # leave the group together, not one rank first
    dist.destroy_process_group()
    (workdir / f"rank{rank}.finished").touch()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
