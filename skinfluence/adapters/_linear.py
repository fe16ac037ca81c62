"""Adapters of the least-squares models: LinearRegression, Ridge(CV), SGDRegressor.

How scikit-learn's estimators map onto the mean-form objective
``1/W sum_i w_i loss_i + 1/2 theta' diag(lam) theta``:

- ``LinearRegression``: ``sum_i w_i (y_i - eta_i)^2``; ``loss = (y - eta)^2``,
  ``lam = 0``.
- ``Ridge(alpha)`` / ``RidgeCV`` (its ``alpha_``): ``sum_i w_i (y_i - eta_i)^2 +
  alpha ||coef||^2``; ``loss = (y - eta)^2`` and ``lam = 2 alpha / W`` on the
  coefficients, 0 on the intercept (centering the data, as Ridge does, is the
  same as an unpenalized intercept).
- ``SGDRegressor(loss='squared_error', penalty='l2', alpha)``: the mean over
  the number of rows of ``1/2 (y - eta)^2`` plus ``alpha/2 ||coef||^2``:
  ``loss = (y - eta)^2 / 2`` and ``lam = alpha n / W``.
"""

import numpy as np

from ..objectives import LinearObjective, SquaredError


def _single_target(estimator):
    coef = np.asarray(estimator.coef_)
    if coef.ndim == 2 and coef.shape[0] != 1:
        raise ValueError(
            f"{type(estimator).__name__} was fitted on {coef.shape[0]} targets; "
            "explain one target at a time (fit it on a 1-d y)."
        )
    if getattr(estimator, "positive", False):
        raise ValueError(
            f"{type(estimator).__name__}(positive=True) is a constrained fit; "
            "influence functions assume an unconstrained optimum."
        )
    return coef.reshape(1, -1)


def _build(estimator, sample_weight, scale, lam_coef, scaling):

    coef = _single_target(estimator)
    fit_intercept = estimator.fit_intercept
    d = coef.shape[1]
    lam = np.zeros(d + int(fit_intercept))
    lam[:d] = lam_coef
    intercept = np.ravel(estimator.intercept_)[:1] if fit_intercept else None
    family = SquaredError(scale)
    return LinearObjective(coef, intercept, family, lam, scaling)


def from_linear_regression(estimator, y, sample_weight):
    """Objective of a fitted LinearRegression (no penalty)."""
    w = np.asarray(sample_weight, dtype=np.float64)
    return _build(estimator, w, 1.0, 0.0, "fixed"), w


def from_ridge(estimator, y, sample_weight):
    """Objective of a fitted Ridge or RidgeCV (its chosen ``alpha_``)."""
    w = np.asarray(sample_weight, dtype=np.float64)
    alpha = np.ravel(
        estimator.alpha_ if hasattr(estimator, "alpha_") else estimator.alpha
    )
    if alpha.size != 1:
        raise ValueError("Ridge with one alpha per target is not supported.")
    return _build(estimator, w, 1.0, 2.0 * float(alpha[0]) / w.sum(), "fixed"), w


def from_sgd_regressor(estimator, y, sample_weight):
    """Objective of a fitted ``SGDRegressor(loss='squared_error')``."""
    if estimator.loss != "squared_error":
        raise ValueError(
            f"SGDRegressor(loss={estimator.loss!r}) is not twice differentiable; "
            "influence is supported for loss='squared_error'."
        )
    kind = estimator.penalty
    if kind == "elasticnet" and float(estimator.l1_ratio) == 0.0:
        kind = "l2"
    if kind in ("l1", "elasticnet"):
        raise ValueError(
            f"SGDRegressor(penalty={kind!r}) is not twice differentiable; use "
            "penalty='l2' or penalty=None."
        )
    w = np.asarray(sample_weight, dtype=np.float64)
    alpha = 0.0 if kind is None else float(estimator.alpha)
    lam = alpha * len(w) / w.sum()
    return _build(estimator, w, 0.5, lam, "n_samples"), w
