"""The package's shape: every module has a stratum, imports run down them and
never in a circle, nobody reads another subpackage's private names, and the
output-size formula lives in one place per language."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "fastconv"
CSRC = PKG.parents[1] / "csrc"
if not PKG.is_dir():
    pytest.skip("needs the source tree (src/fastconv)", allow_module_level=True)

# Each top-level module or subpackage, by stratum: a module may import its own
# stratum's others (no cycle) and anything lower, never higher.
STRATA = [
    {"_runtime", "_config", "_argtypes", "_ext"},
    {"ops"},
    {"_testing", "functional", "io"},
    {"nn"},
    {"train", "interop"},
    {"book", "bench", "serve"},
    {"cli"},
    {"__init__", "__main__"},
]
# Net's thin methods that the book's API and README name hand the net to the
# exporters above it: the only imports that run upward, each inside its method.
FACADES = {("nn.net", "interop")}


def _modules():
    """Dotted name (relative to fastconv) -> parsed module, for every .py file."""
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return found


def _resolve(name, node):
    """The fastconv-relative dotted module an ImportFrom in module ``name`` names."""
    if node.level == 0:
        return node.module[len("fastconv."):] if node.module.startswith("fastconv.") else (
            "__init__" if node.module == "fastconv" else None)
    package = name.split(".")
    is_package = (PKG / Path(*package) / "__init__.py").is_file()
    base = package if is_package else package[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else [])) or "__init__"


def _is_module(dotted):
    if dotted == "_ext":  # the compiled extension
        return True
    path = PKG / Path(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(name, tree):
    """(module, imported names, lazy?) for every import of a fastconv module;
    ``from . import x`` of a module x counts as an import of x."""
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("fastconv"))):
            continue
        target = _resolve(name, node)
        if target is None:
            continue
        lazy = id(node) not in top
        plain = []
        for alias in node.names:
            sub = alias.name if target == "__init__" else f"{target}.{alias.name}"
            if _is_module(sub):
                yield sub, [], lazy
            else:
                plain.append(alias.name)
        if plain:
            yield target, plain, lazy


def _unit(name):
    return name.split(".")[0]


def _stratum(unit):
    for i, units in enumerate(STRATA):
        if unit in units:
            return i
    return None


def test_every_module_has_a_stratum():
    missing = sorted({_unit(n) for n in _modules()} - set().union(*STRATA))
    assert missing == [], f"give these a stratum in STRATA: {missing}"


def test_imports_run_down_the_strata():
    wrong = []
    for name, tree in _modules().items():
        here = _stratum(_unit(name))
        for target, names, _ in _imports(name, tree):
            there = _stratum(_unit(target))
            if target == "__init__" and all(n == "__version__" for n in names):
                continue  # the one version string, read where it is reported
            if there is not None and there > here and (name, _unit(target)) not in FACADES:
                wrong.append(f"{name} imports {target}")
    assert wrong == [], wrong


def test_the_facade_imports_are_lazy():
    tree = _modules()["nn.net"]
    for target, _, lazy in _imports("nn.net", tree):
        if _unit(target) == "interop":
            assert lazy, f"nn.net imports {target} at module level"


def test_no_import_cycles():
    graph = {}
    for name, tree in _modules().items():
        graph[name] = {t for t, n, _ in _imports(name, tree)
                       if t in _modules() and t != name and n != ["__version__"]}
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                # A package and its own modules (its __init__ re-exporting them) are one.
                if not (nxt.startswith(node + ".") or node.startswith(nxt + ".")):
                    pytest.fail("import cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_only_the_runtime_loads_the_extension_and_only_ops_the_reference():
    for name, tree in _modules().items():
        for target, _, _ in _imports(name, tree):
            if target == "_ext":
                assert name in ("_runtime", "_config"), f"{name} imports _ext"
            if target == "ops.reference":
                assert name.startswith("ops."), f"{name} imports the NumPy backend"


def test_no_private_names_cross_subpackages():
    wrong = []
    for name, tree in _modules().items():
        for target, names, _ in _imports(name, tree):
            if _unit(target) == _unit(name) or target == "_testing":
                continue
            wrong += [f"{name} imports {n} from {target}" for n in names
                      if n.startswith("_") and not n.startswith("__") and n != "_ext"]
    assert wrong == [], wrong


def test_no_module_is_over_450_lines_and_net_is_short():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}, long
    tree = _modules()["nn.net"]
    net = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Net")
    assert net.end_lineno - net.lineno + 1 < 200


def test_importing_fastconv_loads_no_heavy_library():
    code = ("import sys, fastconv; print(sorted(m for m in ('matplotlib', 'PIL', 'onnx', "
            "'onnxruntime', 'torch', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_output_size_formula_lives_in_one_place_per_language():
    # "(H + 2 * pad - span) // stride + 1" in one line, however its parts are spelt.
    py = re.compile(r"2\s*\*.*//\s*\w+.*\+\s*1")
    # Docstrings may state it (``...``); code may not repeat it.
    found = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
             if any(py.search(line) and "``" not in line for line in p.read_text().splitlines())]
    assert found == [], found
    assert "def out_size" in (PKG / "ops" / "window.py").read_text()
    c = re.compile(r"\+\s*2\s*\*\s*\w+\s*-.*\)\s*/\s*\w+\s*\+\s*1")
    found = [p.name for p in sorted(CSRC.glob("*")) if c.search(p.read_text())]
    assert found == ["common.h"], found


def test_test_hooks_stay_out_of_the_public_header():
    # An extension function that only fastconv._testing calls is a test hook:
    # the C functions it reaches are declared in csrc/testing.h, never in the
    # header a caller of the kernels reads.
    pyx = (PKG / "_ext.pyx").read_text()
    bodies = dict(re.findall(r"^def (\w+)\(.*?\n((?:    .*\n|\n)*)", pyx, re.M))
    callers = {name: set() for name in bodies}
    for path in PKG.rglob("*.py"):
        for name in set(re.findall(r"\bext\.(\w+)", path.read_text())) & set(callers):
            callers[name].add(path.relative_to(PKG).as_posix())
    hooks = {name for name, users in callers.items() if users == {"_testing.py"}}
    assert {"last_team", "reset_team", "conv_force_baseline"} <= hooks
    public = (CSRC / "fastconv.h").read_text()
    testing = (CSRC / "testing.h").read_text()
    for name in sorted(hooks):
        for fn in re.findall(r"\b(fc_\w+)\(", bodies[name]):
            assert not re.search(rf"\b{fn}\(", public), f"{fn} (test hook {name}) in fastconv.h"
            assert re.search(rf"\b{fn}\(", testing), f"{fn} (test hook {name}) not in testing.h"
