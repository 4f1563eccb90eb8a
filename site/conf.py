"""The course website: Sphinx + MyST-NB, built from the committed notebooks (never re-executed) and docs pages.

    python -m sphinx -W --keep-going -b html -c site . _build/site

Why Sphinx + MyST-NB: it renders .ipynb files with their saved outputs, reads the docs' Markdown as it is on
GitHub, builds the API reference from the docstrings (autodoc), runs offline from pip alone, and turns every
warning (a broken internal link, a missing image) into an error with -W.
"""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "ladder_edu"
author = "ladder_edu contributors"
root_doc = "site/index"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx-mathjax-offline"]   # MathJax served from the build
include_patterns = ["site/index.md", "site/api.md", "README.md", "CONTRIBUTING.md", "docs/**.md", "notebooks/*.ipynb",
                    "notebooks/labs/README.md"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
nb_execution_mode = "off"                 # the committed outputs are the course; the site never re-runs them
# A widget cannot run on a static page: show the PNG its display data carries instead (teach/widgets.Explorer).
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
suppress_warnings = ["myst.header"]       # notebooks number their sections "## 1. ..." after an H1 of their own
html_theme = "furo" if __import__("importlib").util.find_spec("furo") else "alabaster"
html_title = "ladder_edu: hiding tensor-parallel communication"
autodoc_member_order = "bysource"
autodoc_typehints = "none"

RUN = ('<div class="admonition note"><p class="admonition-title">Run it yourself</p><p>After the README\'s '
       'install command: <code>jupyter lab {path}</code> (quick mode: <code>LADDER_EDU_QUICK=1 jupyter lab '
       '{path}</code>). The outputs below were saved when the notebook last ran; interactive widgets need a '
       'running kernel.</p></div>')


def add_run_command(app, pagename, templatename, context, doctree):
    if pagename.startswith("notebooks/") and pagename.count("/") == 1 and "body" in context:
        context["body"] = RUN.format(path=pagename + ".ipynb") + context["body"]


def verbatim_docstring(app, what, name, obj, options, lines):
    """The package's docstrings are plain text with their math laid out by hand: show them as written."""
    if lines:
        lines[:] = ["::", ""] + ["    " + line for line in lines] + [""]


def setup(app):
    app.connect("html-page-context", add_run_command)
    app.connect("autodoc-process-docstring", verbatim_docstring)
