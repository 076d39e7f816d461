"""Sphinx configuration of the osteoimmune documentation.

Build (from the repository root, warnings are errors as in CI)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages under ``docs/generated/`` are written at build time by ``docs/_ext/oi_docgen.py`` from
the installed package, ``data/``, ``benchmarks/results/`` and ``notebooks/``.

Environment switches
--------------------
OSTEOIMMUNE_DOCS_INTERSPHINX=1
    Link to the anndata, scanpy, pandas, numpy, statsmodels and Python docs. Off by default:
    the inventories are downloaded at build time, and CI (and this project's build machines)
    have no network; a failed download would be a warning, and warnings are errors here.
    Read the Docs (``READTHEDOCS=True``) turns it on.
OSTEOIMMUNE_DOCS_EXECUTE=auto|off|cache|force
    ``auto`` (default): render notebooks from their stored outputs and execute those committed
    without outputs; ``off``: never execute; ``cache``: execute all with a jupyter-cache in
    ``docs/_build/.jupyter_cache``; ``force``: execute all.
OSTEOIMMUNE_DOCS_EXECUTE_ONLY=<glob>
    Execute only the notebooks whose file name matches (e.g. ``01_*``); the test suite uses
    this to keep the docs build short (every notebook is executed by its own tests).
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))

import osteoimmune  # noqa: E402  (installed; editable in development)

project = "osteoimmune"
author = "osteoimmune developers"
copyright = f"{date.today().year}, {author}"
release = osteoimmune.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_click",
    "sphinx_copybutton",
    "oi_docgen",
]

# --- generated pages (docs/_ext/oi_docgen.py); MathJax is served from _static/mathjax (files
# of the sphinx-mathjax-offline package) so that no page loads anything from the web
oi_offline_mathjax = True
oi_repo_root = str(REPO)
# pages other tools write into docs/; the index lists them only when they exist
oi_optional_pages = ["validation", "errors"]

# --- sources
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store", "README.md",
                    "**/README.md", "**/_*.inc", "tools", "jupyter_execute"]
templates_path = ["_templates"]

# --- MyST / myst-nb
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "substitution"]
myst_heading_anchors = 3
myst_substitutions = {"version": release}
# "auto" (as refined by oi_docgen): a notebook committed with outputs is rendered from them;
# one committed without any output is executed (in a temporary folder) while the docs are
# built, so every tutorial shows its tables and figures. Override with
# OSTEOIMMUNE_DOCS_EXECUTE=off|cache|force; OSTEOIMMUNE_DOCS_EXECUTE_ONLY=<glob> restricts
# execution to matching notebooks (the others are rendered as committed).
nb_execution_mode = os.environ.get("OSTEOIMMUNE_DOCS_EXECUTE", "auto")
nb_execution_in_temp = True
# Kernels inherit this process's environment: MPLBACKEND=Agg (set by test runners and
# headless shells) would stop the inline backend and leave every figure out of the pages.
if os.environ.get("MPLBACKEND", "").lower() in ("agg", "pdf", "svg", "cairo", "template"):
    os.environ.pop("MPLBACKEND")
nb_execution_cache_path = str(HERE / "_build" / ".jupyter_cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True
# Notebook outputs that cannot be shown in a static page (ipywidgets progress bars) and the
# heading levels of notebooks written by others are not errors of the docs.
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]

# --- API reference
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True
napoleon_custom_sections = [("Exit codes", "params_style")]

# --- cross-project links (see the module docstring for why they are opt-in)
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if os.environ.get("OSTEOIMMUNE_DOCS_INTERSPHINX") == "1" or os.environ.get("READTHEDOCS"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "pandas": ("https://pandas.pydata.org/docs", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "anndata": ("https://anndata.readthedocs.io/en/stable", None),
        "scanpy": ("https://scanpy.readthedocs.io/en/stable", None),
        "statsmodels": ("https://www.statsmodels.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }
intersphinx_disabled_reftypes = ["*"]

# --- HTML
html_theme = "furo"
html_title = f"osteoimmune {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {"navigation_with_keys": True}
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
