"""README.md is the front page: short, its set-up lines where CI reads them,
and its examples run as written."""
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
if not README.is_file():
    pytest.skip("needs the source tree (README.md)", allow_module_level=True)
TEXT = README.read_text()


def block(marker):
    m = re.search(rf"<!-- {marker} -->\n```(?:python|bash)\n(.*?)```", TEXT, re.S)
    assert m, f"README.md has no code block after <!-- {marker} -->"
    return m.group(1)


def test_front_page_is_short_and_keeps_its_commands():
    assert len(TEXT.splitlines()) <= 200
    assert block("test-command").strip().endswith("python -m pytest")
    assert "python -m sphinx -W" in block("docs-command")
    assert "fastconv train" in TEXT.split("<!-- test-command -->")[0]


def test_every_figure_table_names_date_machine_and_threads():
    for section in ("## Results", "## Benchmarks"):
        body = TEXT.split(section, 1)[1].split("\n## ", 1)[0]
        assert re.search(r"20\d\d-\d\d-\d\d", body), section
        assert re.search(r"\d threads?", body), section
        assert re.search(r"AVX", body), section


def test_library_example_runs_as_written():
    exec(compile(block("example-library"), "README.md", "exec"), {})


def test_book_example_runs_as_written_but_shorter(mnist_dir, tmp_path, monkeypatch):
    # The 20 epochs become a fiftieth of one (12 updates); nothing else changes.
    code = block("example-book")
    assert code.count("epochs=20") == 1
    monkeypatch.setenv("FASTCONV_DATA", str(mnist_dir))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code.replace("epochs=20", "epochs=0.02"), "README.md", "exec"), namespace)
    assert namespace["network"].params["W1"].shape == (30, 1, 5, 5)
    saved = np.load(tmp_path / "params.npz")
    np.testing.assert_array_equal(saved["W1"], namespace["network"].params["W1"])
