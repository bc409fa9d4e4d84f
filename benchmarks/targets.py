"""The project's speed and accuracy targets (issue 20), read off a bench run.

    fastconv bench --json run.json && python benchmarks/targets.py run.json

Prints a Markdown table: figure, measured ratio, target, met or missed. The
targets are the project's, not a user's question, so they live here and not
in the package that ``fastconv bench`` runs from.
"""
import json
import sys

__all__ = ["targets", "format_targets_table", "markdown"]


def markdown(head, cells):
    """A Markdown table of ``head`` and rows of ``cells``."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in cells])


def targets(result):
    """The figures that have a target, from a ``fastconv bench --json`` result.

    A list of dicts: ``figure`` (a name), ``value`` (the measured ratio, None
    when a side is missing), ``target`` (the largest acceptable ratio) and
    ``met`` (``value <= target``, None without a value). Only sections
    present in ``result`` contribute.
    """
    rows = []

    def add(figure, num, den, target):
        value = num / den if num is not None and den else None
        rows.append({"figure": figure, "value": value, "target": target,
                     "met": None if value is None else value <= target})

    for r in result.get("peak", []):
        if r["op"].startswith("six layers"):
            rows.append({"figure": f"DeepConvNet's six convolutions, {r['direction']}, "
                                   f"GFLOP/s / large SGEMM's", "value": r["of_sgemm"],
                         "target": 0.75, "floor": True, "met": r["of_sgemm"] >= 0.75})
    step_targets = {"SimpleConvNet": 0.35, "DeepConvNet": 0.50}
    for r in result.get("training", []):
        if r["model"] in step_targets:
            add(f"{r['model']} training step float32, fastconv C / PyTorch",
                r["c"], r["torch"], step_targets[r["model"]])
        add(f"{r['model']} training step, numpy imported first / fastconv first",
            r["c_numpy_first"], r["c_fastconv_first"], 1.05)
    for r in result.get("float64", []):
        add(f"{r['model']} training step float64, fastconv C / PyTorch", r["c"], r["torch"], 0.45)
    for r in result.get("forward", []):
        add(f"{r['model']} forward of {r['images']} images {r['dtype']}, C / NumPy backend",
            r["c"], r["numpy"], 0.15)
    for r in result.get("inference", []):
        add(f"{r['model']} inference of {r['images']} images, fastconv / onnxruntime",
            r["fastconv"], r["onnxruntime"], 0.8)
        add(f"{r['model']} inference of {r['images']} images, fastconv / PyTorch",
            r["fastconv"], r["torch"], 0.6)
    for r in result.get("commands", []):
        # Wall seconds against a limit: the "ratio" is the time over the limit.
        limit = {"book": 60.0, "fast": 15.0}[r["preset"]]
        add(f"fastconv train --preset {r['preset']}, wall seconds / {limit:.0f} s",
            r["seconds"], limit, 1.0)
        floor = {"book": 0.988, "fast": 0.99}[r["preset"]]
        rows.append({"figure": f"fastconv train --preset {r['preset']}, test accuracy",
                     "value": r["test_acc"], "target": floor, "floor": True,
                     "met": None if r["test_acc"] is None else r["test_acc"] >= floor})
    for r in result.get("kernels", []):
        if r["op"] in ("im2col", "col2im"):
            shape = "x".join(map(str, r["shape"]))
            add(f"{r['op']} {shape} k{r['kernel']} p{r['pad']}, C with allocation / copy",
                r["c_nt"], r["copy"], 1.3)
    return rows


def format_targets_table(rows):
    """A Markdown table of :func:`targets`: figure, measured ratio, target, met or missed."""
    verdict = {True: "met", False: "missed", None: "-"}
    return markdown(["figure", "measured", "target", "met"], [[
        r["figure"], "-" if r["value"] is None else f"{r['value']:.4g}",
        (">= " if r.get("floor") else "<= ") + f"{r['target']:.3g}",
        verdict[r["met"]]] for r in rows])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        print(format_targets_table(targets(json.load(f))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
