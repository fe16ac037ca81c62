"""Objective -> fitted estimator: write polished parameters back.

The inverse of the builders, for the estimators whose parameters are plain
``coef_`` and ``intercept_`` arrays: after Newton steps on the objective an
estimator's predictions must follow its new parameters.
"""

import numpy as np


def parameters_writable(estimator, objective):
    """Whether :func:`set_fitted_parameters` can write ``objective`` back."""
    if objective.feature_map is not None or getattr(objective, "approximate", False):
        return False
    if isinstance(getattr(type(estimator), "coef_", None), property):
        return False
    coef = getattr(estimator, "coef_", None)
    return coef is not None and np.size(coef) == objective.coef.size


def set_fitted_parameters(estimator, objective):
    """Set ``estimator.coef_`` (and ``intercept_``) from ``objective``'s parameters.

    Returns False, changing nothing, where the estimator's parameters are not
    the objective's own (kernel models, hinge models explained approximately,
    attributes that are computed properties).

    Parameters
    ----------
    estimator : fitted estimator the objective was built from
    objective : LinearObjective
    """
    if not parameters_writable(estimator, objective):
        return False
    coef = np.asarray(estimator.coef_)
    estimator.coef_ = objective.coef.reshape(coef.shape).astype(coef.dtype, copy=True)
    if objective.intercept is not None:
        old = estimator.intercept_
        new = np.asarray(objective.intercept, dtype=np.float64).reshape(np.shape(old))
        estimator.intercept_ = float(new) if np.ndim(old) == 0 else new.copy()
    return True
