"""Input checks shared by the public estimators."""

import os

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

# Refuse to allocate a result larger than this share of physical memory.
_MEMORY_SHARE = 0.5


def physical_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def check_result_size(shape, what, alternative):
    """Raise MemoryError, naming the size and a cheaper call, if ``shape`` is huge."""
    n_bytes = 8 * float(np.prod(shape, dtype=np.float64))
    limit = _MEMORY_SHARE * physical_memory_bytes()
    if n_bytes > limit:
        raise MemoryError(
            f"{what} of shape {tuple(shape)} would need {n_bytes / 2**30:.1f} GiB, "
            f"more than half of this machine's memory ({limit / 2**30 * 2:.1f} GiB). "
            f"{alternative}"
        )


def split_model(estimator):
    """``(feature_map, model)`` of a fitted estimator, unwrapping Pipelines.

    ``feature_map`` is the fitted Pipeline prefix (earlier steps, applied as a
    fixed transformation) or None; ``model`` is the estimator whose objective
    is differentiated.
    """
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    if isinstance(estimator, Pipeline):
        prefix = estimator[:-1] if len(estimator.steps) > 1 else None
        model = estimator.steps[-1][1]
        if isinstance(model, FrozenEstimator):
            model = model.estimator
        return prefix, model
    return None, estimator


def fit_params_for(estimator, sample_weight):
    """``fit`` keyword arguments routing sample_weight to the final model."""
    if sample_weight is None:
        return {}
    inner = estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator
    if isinstance(inner, Pipeline):
        return {f"{inner.steps[-1][0]}__sample_weight": sample_weight}
    return {"sample_weight": sample_weight}
