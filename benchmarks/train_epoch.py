"""Wall time and peak memory of `fastconv train` with the book's settings.

    python benchmarks/train_epoch.py --data ../shared/data/mnist [--epochs 1] [--threads 2]

Runs the real command in a child process, so the peak RSS is that of the
whole training run (data, network, evaluation, plots), as a user sees it.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--model", default="simple")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="more options passed to fastconv train")
    args = p.parse_args()
    out = tempfile.mkdtemp(prefix="fastconv-bench-")
    cmd = [sys.executable, "-m", "fastconv", "train", "--data", args.data, "--model", args.model,
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--out", out,
           "--quiet", *args.extra]
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    start = time.perf_counter()
    if timer:
        proc = subprocess.run([timer, "-v", *cmd], capture_output=True, text=True)
        peak_kb = next((int(line.split(":")[1]) for line in proc.stderr.splitlines()
                        if "Maximum resident set size" in line), None)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"fastconv train failed:\n{proc.stderr}")
    with open(os.path.join(out, "history.json")) as f:
        history = json.load(f)
    print(proc.stdout.strip())
    print(f"{time.strftime('%Y-%m-%d')} {platform.machine()} {os.cpu_count()} cores, "
          f"{args.threads} threads, model {args.model}, {args.epochs} epochs")
    print(f"wall time of the command: {wall:.1f} s; training loop {history['wall_seconds']:.1f} s; "
          f"per epoch {[round(h['seconds'], 1) for h in history['history']]}")
    print(f"peak RSS: {peak_kb / 1024:.0f} MB" if peak_kb else "peak RSS: unknown")
    print(f"final test accuracy: {history['final_test_acc']:.4f}")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
