"""Warnings that point at the user's line, however deep the call."""

import os
import sys
from importlib.util import find_spec


def _package_dirs(*names):
    """Directories of the installed packages ``names`` (none are imported)."""
    dirs = []
    for name in names:
        spec = find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(
                os.path.abspath(p) + os.sep for p in spec.submodule_search_locations
            )
    return tuple(dirs)


# Our frames, and those of the wrappers and pipelines that call ours.
_INTERNAL = _package_dirs("skinfluence", "sklearn", "imblearn", "joblib")


def caller_stacklevel():
    """``stacklevel`` for ``warnings.warn`` in the calling function.

    The first frame outside skinfluence, scikit-learn, imbalanced-learn and
    joblib (whose caching wraps pipeline steps): a warning then names the
    user's line whichever public method, pipeline or meta-estimator led
    there.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level
