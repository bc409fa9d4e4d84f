"""The targets of two `fastconv bench --json` runs side by side, as a Markdown table.

    python benchmarks/targets_summary.py run1.json run2.json

A target counts as met when it is met in both runs, missed when missed in both, and
"met in one run" otherwise; a figure missing from a run shows as "-".
"""
import json
import sys

from targets import targets


def _cell(row):
    if row is None or row["value"] is None:
        return "-"
    return f"{row['value']:.4g} ({'met' if row['met'] else 'missed'})"


def summary(runs):
    by_figure = [{r["figure"]: r for r in targets(run)} for run in runs]
    figures = list(dict.fromkeys(f for run in by_figure for f in run))
    lines = ["| figure | target | " + " | ".join(f"run {i + 1}" for i in range(len(runs)))
             + " | verdict |", "|---|---|" + "---|" * len(runs) + "---|"]
    for figure in figures:
        rows = [run.get(figure) for run in by_figure]
        known = [r for r in rows if r is not None and r["met"] is not None]
        first = next(r for r in rows if r is not None)
        target = first["target"]
        sign = ">=" if first.get("floor") else "<="
        if not known:
            verdict = "-"
        elif all(r["met"] for r in known):
            verdict = "**met**"
        elif not any(r["met"] for r in known):
            verdict = "missed"
        else:
            verdict = "met in one run"
        lines.append(f"| {figure} | {sign} {target:g} | "
                     + " | ".join(_cell(r) for r in rows) + f" | {verdict} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runs = []
    for path in sys.argv[1:]:
        with open(path) as f:
            runs.append(json.load(f))
    print(summary(runs))
