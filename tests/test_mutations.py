"""scripts/mutations.py must stay runnable: every mutant's anchor text is found
exactly once in the file it patches (a rewrite of that file had left one
mutant without an anchor, and the script reported it only when run)."""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "mutations.py"

if not SCRIPT.is_file():  # an installed wheel tested outside the checkout
    pytest.skip("scripts/mutations.py is not beside these tests", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("fastconv_mutations", SCRIPT)
mutations = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutations)


@pytest.mark.parametrize("name, path, text, replacement, tests", mutations.MUTANTS,
                         ids=[m[0] for m in mutations.MUTANTS])
def test_every_mutant_still_applies(name, path, text, replacement, tests):
    source = (REPO / path).read_text()
    assert source.count(text) == 1, f"{name}: its anchor is in {path} {source.count(text)} times"
    assert replacement != text
    for arg in tests:
        if arg.startswith("tests/"):
            assert (REPO / arg).is_file(), f"{name}: no test file {arg}"
