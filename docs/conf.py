"""Sphinx configuration of fastconv's documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (the gallery's
examples run during it), then ``python -m sphinx -W -b doctest docs
docs/_build/doctest`` for the code blocks of the pages and docstrings.
No network: intersphinx is not used, and the examples read MNIST from
``$FASTCONV_DATA`` (default: ``../shared/data/mnist`` beside the checkout).
"""
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
# The examples and the doctests read MNIST from here; never download.
os.environ.setdefault("FASTCONV_DATA", str((REPO.parent / "shared" / "data" / "mnist").resolve()))
# So that the gallery's scripts can import their small helper, examples/_data.py.
sys.path.insert(0, str(REPO / "examples"))

import fastconv  # noqa: E402

project = "fastconv"
author = "fastconv developers"
copyright = f"{time.strftime('%Y')}, fastconv developers"
release = version = fastconv.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["fastconv.css"]

# --- API reference ----------------------------------------------------------------
autosummary_generate = True          # the stubs under api/generated/ (not in git)
autosummary_imported_members = True
autodoc_default_options = {}
autodoc_typehints = "none"           # the numpydoc Parameters section says the types
add_module_names = False
numpydoc_show_class_members = False  # each class page lists its own methods (template)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# numpydoc's docstring checks on every object autodoc documents, failing the build
# (-W) on any finding. All checks except:
# - ES01 (no extended summary) and EX01 (no Examples section): short docstrings are
#   fine where the summary says it all; examples live in the pages and the gallery.
# - SA01 (no See Also): the pages link related names.
# - GL01, GL02 (summary starts on the first line / closing quotes' line): the house
#   style starts the summary on the line after the quotes in some modules; purely
#   typographic.
# - SS05 (summary starts with an infinitive): the book's voice ("Load MNIST",
#   "The folder to use") mixes both; not worth rewording 100 summaries.
# - RT02 (the first line of Returns should be the type only): the house style names
#   the returned value with its shape, e.g. "out, argmax : ndarray".
# - PR06 (types "int" not "integer"...) would only reword prose.
numpydoc_validation_checks = {"all", "ES01", "EX01", "SA01", "GL01", "GL02", "SS05", "RT02",
                              "PR06"}
# Net's methods keep one-line docstrings that name the book's method and point to
# the function that carries the full documentation: tests/test_architecture.py
# holds the Net class under 200 lines, and numpydoc sections for its fifteen
# thin methods would double it.
# Every layer's ``infer`` is the same method of the layer protocol (forward in
# test mode, keeping nothing for backward), documented once on the library
# page: numpydoc sections on each would repeat one nine-line block per layer.
numpydoc_validation_exclude = {r"\.__init__$", r"^fastconv\.Net\.[a-z_]+$", r"\.infer$"}

# --- doctest (python -m sphinx -b doctest) ---------------------------------------
doctest_global_setup = """
import numpy as np
import fastconv
"""
doctest_test_doctest_blocks = "default"

# --- examples gallery ---------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(REPO / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",     # every plot_*.py runs during the build
    "ignore_pattern": r"(^|/)_[a-z]",  # helpers: _data.py, _ddp_worker.py
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    # The doctest builder reads the same pages; running the examples again there
    # would double the build for nothing.
    "plot_gallery": "False" if "doctest" in sys.argv else "True",
}

# --- HTML -------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastconv {version}"
html_theme_options = {
    "navbar_align": "left",
    # Looked at: with seven long titles in the bar, the search box wrapped to a
    # second line at 1280 px; the rest go under "More".
    "header_links_before_dropdown": 4,
    # ... and even so the search button wrapped under the logo: it moves to the
    # end of the bar with the theme switcher.
    "navbar_persistent": [],
    "navbar_end": ["search-button", "theme-switcher"],
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# Looked at: the top-level pages have no sub-pages, and their empty "Section
# Navigation" column squeezed the wide benchmark tables; only the API reference
# and the gallery keep the left column.
html_sidebars = {"*": []}
html_show_sourcelink = False
