"""Time `import fastconv` beyond `import numpy`, median of fresh interpreters."""
import statistics
import subprocess
import sys

CODE = """
import time, sys
t0 = time.perf_counter(); import numpy; t1 = time.perf_counter()
import fastconv; t2 = time.perf_counter()
heavy = [m for m in ("matplotlib", "tqdm", "torch", "urllib.request") if m in sys.modules]
print(t1 - t0, t2 - t1, ",".join(heavy) or "-")
"""


def main(runs=11):
    numpy_s, extra_s, heavy = [], [], set()
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                             check=True).stdout.split()
        numpy_s.append(float(out[0]))
        extra_s.append(float(out[1]))
        heavy.add(out[2])
    print(f"import numpy: median {1e3 * statistics.median(numpy_s):.1f} ms")
    print(f"import fastconv beyond numpy: median {1e3 * statistics.median(extra_s):.1f} ms "
          f"over {runs} fresh interpreters")
    print(f"heavy modules imported: {', '.join(sorted(heavy))}")


if __name__ == "__main__":
    main()
