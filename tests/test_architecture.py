"""The package's shape: imports run one way, nobody reads another module's
private names, and the output-size formula lives in one place per language."""
import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "fastconv"
CSRC = PKG.parents[1] / "csrc"
if not PKG.is_dir():
    pytest.skip("needs the source tree (src/fastconv)", allow_module_level=True)

# Lower strata may never import higher ones (the csrc -> _ext ->
# functional -> layers -> models -> trainer -> cli).
STRATA = ["functional", "layers", "models", "trainer", "cli"]


def _modules():
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in PKG.glob("*.py")}


def _imports(tree):
    """(module, names) for every import of a fastconv module, lazy ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                yield node.module.split(".")[0], [a.name for a in node.names]
            else:
                for alias in node.names:
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastconv"):
            parts = node.module.split(".")
            yield (parts[1] if len(parts) > 1 else "__init__"), [a.name for a in node.names]


def test_no_import_cycles():
    graph = {name: {m for m, _ in _imports(tree)} - {name}
             for name, tree in _modules().items() if name != "__init__"}
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_imports_run_down_the_strata():
    for name, tree in _modules().items():
        if name not in STRATA:
            continue
        higher = set(STRATA[STRATA.index(name) + 1:])
        for module, _ in _imports(tree):
            assert module not in higher, f"{name} imports {module}, a higher stratum"


def test_only_the_runtime_loads_the_extension_and_only_functional_the_reference():
    for name, tree in _modules().items():
        for module, _ in _imports(tree):
            if module == "_ext":
                assert name in ("_runtime", "_config"), f"{name} imports _ext"
            if module == "reference":
                assert name == "functional", f"{name} imports the NumPy backend"


def test_no_private_names_cross_modules():
    for name, tree in _modules().items():
        aliases = {}
        for module, names in _imports(tree):
            for imported in names:
                assert not (imported.startswith("_") and not imported.startswith("__")), \
                    f"{name} imports the private name {imported} from {module}"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                pytest.fail(f"{name} reads {node.value.id}.{node.attr}")


def test_the_output_size_formula_lives_in_one_place_per_language():
    # "(H + 2 * pad - span) // stride + 1" in one line, however its parts are spelt.
    py = re.compile(r"2\s*\*.*//\s*\w+.*\+\s*1")
    # Docstrings may state it (``...``); code may not repeat it.
    found = [p.name for p in PKG.glob("*.py")
             if any(py.search(line) and "``" not in line for line in p.read_text().splitlines())]
    assert found == [], found
    assert "def out_size" in (PKG / "ops" / "window.py").read_text()
    c = re.compile(r"\+\s*2\s*\*\s*\w+\s*-.*\)\s*/\s*\w+\s*\+\s*1")
    found = [p.name for p in sorted(CSRC.glob("*")) if c.search(p.read_text())]
    assert found == ["common.h"], found
