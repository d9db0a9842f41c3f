"""Sphinx configuration."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "nnabla_nas"
author = "nnabla_nas developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/: no CDN, the docs work offline
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
exclude_patterns = ["_build"]
html_theme = "furo"  # long commands scroll inside their block
html_static_path = ["_static"]
html_css_files = ["wide.css"]  # a wider text column on wide screens
nitpicky = False
suppress_warnings = ["ref.python"]
