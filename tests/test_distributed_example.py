"""examples/plot_7_distributed.py, run as the docs build runs it: a fastconv net
continued in PyTorch by two processes (torch.distributed, gloo), whose PyTorch copy
must first have the fastconv net's accuracy within the example's stated tolerance."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plot_7_distributed.py"


def test_distributed_example_keeps_the_accuracy_then_trains(mnist_dir, tmp_path):
    result_file = tmp_path / "result.json"
    env = dict(os.environ, FASTCONV_DATA=str(mnist_dir), MPLBACKEND="Agg",
               FASTCONV_EXAMPLE_RESULT=str(result_file))
    run = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(result_file.read_text())

    assert result["processes"] == 2 and result["backend"] == "gloo"
    # The claim: the PyTorch copy starts with the fastconv net's accuracy, within
    # 2 images of the 1,000 (float32 rounding can swap two nearly equal scores).
    assert result["tolerance"] == 0.002
    assert abs(result["start_torch"] - result["start_fastconv"]) <= result["tolerance"]
    # Then it trains: three epochs on both processes, which end with the same weights,
    # and those weights back in fastconv score what PyTorch scored.
    assert len(result["history"]) == 3
    assert result["same_weights_on_every_rank"]
    assert abs(result["end_back_in_fastconv"] - result["end_torch"]) <= result["tolerance"]
    # Training went on from the fastconv net rather than from scratch or backwards:
    # one epoch on 3,000 images leaves room that three more epochs fill.
    assert result["end_torch"] > result["start_torch"]
