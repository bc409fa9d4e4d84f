"""The scripts beside the package (benchmarks/, scripts/, examples/) keep up with it.

Moving a module once left two benchmark scripts importing names that no longer
existed, and nothing ran them. Here every ``from fastconv... import name`` and
``fastconv.name`` in those scripts must resolve, and the profilers run on tiny
sizes.
"""
import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for folder in ("benchmarks", "scripts", "examples")
                 for p in (ROOT / folder).glob("*.py"))


def _unresolved(path):
    """The fastconv names ``path`` imports or reads that do not exist."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = {}                       # local name -> module it stands for
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "fastconv":
                    try:
                        importlib.import_module(a.name)
                    except ImportError as exc:
                        missing.append(f"import {a.name}: {exc}")
                    aliases[a.asname or "fastconv"] = a.asname and a.name or "fastconv"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "fastconv":
            try:
                module = importlib.import_module(node.module)
            except ImportError as exc:
                missing.append(f"from {node.module}: {exc}")
                continue
            for a in node.names:
                if hasattr(module, a.name):
                    if isinstance(getattr(module, a.name), type(module)):
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                    continue
                try:
                    importlib.import_module(f"{node.module}.{a.name}")
                except ImportError:
                    missing.append(f"from {node.module} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and isinstance(node.ctx, ast.Load):
            module = importlib.import_module(aliases[node.value.id])
            if not hasattr(module, node.attr):
                missing.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return missing


def test_there_are_scripts_to_check():
    assert {p.parent.name for p in SCRIPTS} == {"benchmarks", "scripts", "examples"}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_uses_only_names_fastconv_has(path):
    assert _unresolved(path) == []


def test_the_check_sees_a_stale_name(tmp_path):
    stale = tmp_path / "stale.py"
    stale.write_text("import fastconv\nfrom fastconv import models\n"
                     "from fastconv.layers import Convolution\nfastconv.no_such_thing()\n")
    assert len(_unresolved(stale)) == 3


@pytest.mark.parametrize("args", [
    ["benchmarks/profile_step.py", "SimpleConvNet", "--steps", "1", "--batch", "4",
     "--threads", "1"],
    ["benchmarks/profile_step.py", "DeepConvNet", "--predict", "8", "--steps", "1",
     "--threads", "1"],
    ["benchmarks/blocked_vs_direct.py", "--threads", "1", "--batch", "2", "--turns", "1"],
    ["benchmarks/blocked_pass.py", "--threads", "1", "--images", "300", "--turns", "1"],
], ids=["profile-step", "profile-predict", "blocked-vs-direct", "blocked-pass"])
def test_profilers_run(args):
    run = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "ms" in run.stdout
