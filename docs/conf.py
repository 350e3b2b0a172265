"""Sphinx settings of nnfs's documentation: the user guide, the backend author's guide and an
API reference generated from the docstrings. Built in CI with warnings as errors:

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for source in ("nnfs-core/src", "nnfs-cpu/src"):
    sys.path.insert(0, str(ROOT / source))

import nnfs  # noqa: E402

project = "nnfs"
author = "nnfs contributors"
copyright = "nnfs contributors"  # noqa: A001 - Sphinx's name for it
release = nnfs.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}

html_theme = "alabaster"
html_title = f"nnfs {release}"
napoleon_use_ivar = True  # "Attributes:" sections as fields, not a second description
