"""fastconv bench at two commits, in alternating runs: is a change inside the noise?

    python benchmarks/before_after.py OLD NEW [--rounds 2] [--threads 2] [--only training ...]

Builds each commit (a git worktree, installed into a venv of its own that
sees this interpreter's packages, torch and onnxruntime among them), then runs
``fastconv bench --json`` with the same options ``--rounds`` times per commit,
taking turns (OLD, NEW, OLD, NEW, ...), so that load from elsewhere hits both
alike. Prints, per figure, the median over rounds of each commit, NEW / OLD,
and the run-to-run spread of each commit (its largest over smallest round):
a NEW / OLD inside both spreads is noise.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (section, key of the row's name, figures worth comparing)
FIGURES = {"training": ("model", ("c",)), "kernels": ("op", ("c_1t", "c_nt")),
           "peak": ("op", ("ms",)), "inference": ("model", ("fastconv",)),
           "float64": ("model", ("c",)), "forward": ("model", ("c",))}


def build(commit, scratch):
    tree = scratch / commit
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=REPO,
                   check=True, capture_output=True)
    venv = scratch / f"venv-{commit}"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                    str(tree), f"-Cbuild-dir={scratch / ('build-' + commit)}"], check=True)
    return tree, py


def rows_of(result):
    """{(section, row name, shape, figure): milliseconds} of one bench JSON."""
    out = {}
    for section, (key, figures) in FIGURES.items():
        for row in result.get(section, []):
            shape = "x".join(map(str, row["shape"])) if isinstance(row.get("shape"), list) \
                else row.get("shape", row.get("batch", ""))
            for fig in figures:
                if row.get(fig) is not None:
                    out[(section, row[key], str(shape), fig)] = row[fig]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", action="append", default=None)
    args = parser.parse_args()
    only = args.only or ["training", "kernels"]
    scratch = Path(tempfile.mkdtemp(prefix="fastconv-before-after-"))
    commits = [subprocess.run(["git", "rev-parse", "--short", c], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
               for c in (args.old, args.new)]
    pythons = {}
    try:
        for c in commits:
            pythons[c] = build(c, scratch)[1]
        runs = {c: [] for c in commits}
        for r in range(args.rounds):
            for c in commits:
                out = scratch / f"{c}-{r}.json"
                cmd = [str(pythons[c]), "-m", "fastconv", "bench", "--threads", str(args.threads),
                       "--repeats", str(args.repeats), "--json", str(out)]
                for section in only:
                    cmd += ["--only", section]
                print(f"== round {r + 1}: {c}", file=sys.stderr, flush=True)
                subprocess.run(cmd, cwd=scratch, check=True, stdout=subprocess.DEVNULL)
                runs[c].append(rows_of(json.loads(out.read_text())))
    finally:
        for c in commits:
            subprocess.run(["git", "worktree", "remove", "--force", str(scratch / c)], cwd=REPO,
                           capture_output=True)
    old, new = commits
    print(f"{args.rounds} alternating rounds per commit, {args.threads} threads, medians of "
          f"{args.repeats} turns within each run; milliseconds\n")
    print(f"| section | row | shape | figure | {old} | {new} | {new} / {old} | "
          f"spread {old} | spread {new} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in runs[old][0]:
        if not all(key in run for run in runs[old] + runs[new]):
            continue
        a = [run[key] for run in runs[old]]
        b = [run[key] for run in runs[new]]
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {' | '.join(key)} | {ma:.2f} | {mb:.2f} | {mb / ma:.3f} | "
              f"{max(a) / min(a):.3f} | {max(b) / min(b):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
