"""Sphinx configuration of the skinfluence documentation.

Build with ``python3 dev.py docs`` (its own environment, warnings as errors).
No extension reaches the network: there is no intersphinx.
"""

import importlib.util
import os
import re
from importlib.metadata import version as _version

project = "skinfluence"
author = "skinfluence developers"
copyright = "2026, skinfluence developers"
release = _version("skinfluence")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
    "sg_execution_times.rst",
]
default_role = "code"
nitpicky = True

# -- autodoc / autosummary ---------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
# The page table of contents lists "fit()", not "InfluenceExplainer.fit()".
toc_object_entries_show_parents = "hide"
# torch and skorch are optional extras: without them (the default docs
# environment) skinfluence.torch is documented with them mocked. Where they
# are installed (``--all-examples``) the real ones are used, so that the CNN
# example runs.
autodoc_mock_imports = [name for name in ("torch", "skorch")
                        if importlib.util.find_spec(name) is None]

# -- numpydoc ----------------------------------------------------------------
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# -- sphinx-gallery ----------------------------------------------------------
# Quick examples run in every build; the slow ones (the training-set attack,
# about a minute on 2 cores, and the CNN, which needs torch) only with
# ``python3 dev.py docs --all-examples``. An example that is not run shows
# its code and no output.
SLOW_EXAMPLES = ["training_set_attack", "cnn_digits_influence"]
if os.environ.get("SKINFLUENCE_DOCS_ALL_EXAMPLES"):
    _run_pattern = r"/[^/]+\.py$"
else:
    _slow = "|".join(map(re.escape, SLOW_EXAMPLES))
    _run_pattern = rf"/(?!({_slow})\.py$)[^/]+\.py$"

sphinx_gallery_conf = {
    # SKINFLUENCE_DOCS_NO_EXAMPLES=1 skips running every example (quick
    # iterations on the text; the gallery then shows code only).
    "plot_gallery": not os.environ.get("SKINFLUENCE_DOCS_NO_EXAMPLES"),
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": _run_pattern,
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "show_memory": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "backreferences_dir": "api/generated/backreferences",
    "doc_module": ("skinfluence",),
}

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skinfluence {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "header_links_before_dropdown": 6,
    # Pages with wide tables give the table of contents' width to the text.
    "secondary_sidebar_items": {
        "**": ["page-toc"],
        "user_guide/influence": [],
        "user_guide/cleaning": [],
        "user_guide/trees": [],
        "benchmarks": [],
    },
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"index": [], "benchmarks": []}


# -- docstring fixes applied at build time -------------------------------------
# numpydoc shapes name fitted attributes, as scikit-learn's do
# (``ndarray of shape (n_features_in_,)``): the trailing underscore would be
# a reST link, so it is quoted. scikit-learn's generated set_*_request methods
# are left out of the pages.

_SHAPE_WITH_ATTRIBUTE = re.compile(r"(of shape \()([A-Za-z_]\w*_)([,)])")


def _quote_attribute_shapes(lines):
    """``of shape (n_features_in_,)``: a trailing underscore is a reST link."""
    for i, line in enumerate(lines):
        lines[i] = _SHAPE_WITH_ATTRIBUTE.sub(r"\1`\2`\3", line)


# Module constants have no docstring of their own; autodoc would show their
# type's (int, float, dict). These say what each one is.
_SUPPORTED = (
    "Names of the estimators with a built-in adapter "
    "(:func:`skinfluence.adapters.register_adapter` adds one); a "
    "Pipeline ending in one of them is supported too."
)
DATA_DOCS = {
    "skinfluence.SUPPORTED_ESTIMATORS": _SUPPORTED,
    "skinfluence.adapters.SUPPORTED": _SUPPORTED,
    "skinfluence.solvers.SOLVERS": "The solver classes, by the names the "
    "explainer's ``solver`` parameter accepts.",
    "skinfluence.solvers.AUTO_EXACT_MAX_PARAMS": "``solver='auto'`` factorizes "
    "the Hessian exactly up to this many parameters.",
    "skinfluence.solvers.AUTO_WOODBURY_MAX_ROWS": "``solver='auto'`` considers "
    "``'woodbury'`` only up to this many rows times outputs.",
    "skinfluence.torch.AUTO_EXACT_MAX_PARAMS": "For torch models, "
    "``solver='auto'`` forms the exact Hessian up to this many parameters.",
    "skinfluence.objectives.HINGE_TEMPERATURE": "Temperature of the smooth "
    "hinge through which hinge-loss models trained by scikit-learn "
    "(``LinearSVC``, ``SVC``) are explained, the paper's choice. Their "
    "parameters are the hinge optimum, so the result is an approximation.",
    "skinfluence.objectives.PENALTY_SCALINGS": "How an estimator's penalty "
    "moves when rows are removed or reweighted: ``'fixed'``, "
    "``'weight_sum'`` or ``'n_samples'`` (see "
    ":class:`~skinfluence.objectives.LinearObjective`).",
}


def _fix_docstring(app, what, name, obj, options, lines):
    if what == "data" and name in DATA_DOCS:
        lines[:] = [DATA_DOCS[name], ""]
        return
    _quote_attribute_shapes(lines)


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn's metadata-routing setters (set_fit_request, ...) are
    # generated for every estimator; their docstrings link into
    # scikit-learn's own documentation.
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _fix_docstring, priority=100)
    app.connect("autodoc-skip-member", _skip_member)
