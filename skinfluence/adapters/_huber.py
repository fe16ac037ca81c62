"""Adapter of HuberRegressor, explained at its fitted scale ``scale_``.

HuberRegressor minimises, jointly over ``(coef, intercept, sigma)``,

    sum_i w_i * (sigma + sigma * H_eps(r_i / sigma)) + alpha * ||coef||^2

with ``r_i = y_i - x_i @ coef - intercept`` and ``H_eps`` Huber's function
(see :mod:`skinfluence.objectives._huber`); the intercept is not penalized.
The explanation holds ``sigma = scale_`` fixed. In ``(coef, intercept)`` the
objective is then convex and, in the mean form
``1/W sum_i w_i loss_i + 1/2 theta' diag(lam) theta`` with ``W = sum_i w_i``:

- ``loss_i = sigma + sigma * H_eps(r_i / sigma)`` (family :class:`Huber`);
- ``lam = 2 alpha / W`` on the coefficients, 0 on the intercept;
- ``penalty_scaling = 'fixed'``: removing a row removes only its term.

Its Hessian ``2 / (sigma W) sum_{|r_i| <= eps sigma} w_i xt_i xt_i' +
diag(lam)`` is the generalized one: the loss's second derivative jumps on the
band's edges. At the joint optimum the gradient in ``(coef, intercept)`` at
fixed ``sigma`` vanishes, so influence and leave-one-out estimates are those
of the fixed-scale model; an actual refit of HuberRegressor also re-estimates
``sigma``, an effect they leave out.
"""

import numpy as np

from ..objectives import Huber, LinearObjective


def from_huber_regressor(estimator, y, sample_weight):
    """Objective of a fitted HuberRegressor at its fitted ``scale_``.

    Parameters
    ----------
    estimator : fitted HuberRegressor
    y : ndarray of shape (n_samples,)
        Training targets as given to ``fit``.
    sample_weight : ndarray of shape (n_samples,)

    Returns
    -------
    objective : LinearObjective
    weights : ndarray of shape (n_samples,)
        The sample weights (HuberRegressor has no class weights).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import HuberRegressor
    >>> from skinfluence.adapters import build_objective
    >>> X, y = load_diabetes(return_X_y=True)
    >>> est = HuberRegressor(alpha=1.0, max_iter=1000).fit(X, y)
    >>> obj, w = build_objective(est, y, np.ones(len(y)))
    >>> obj.penalty_scaling, bool(obj.family.scale == est.scale_)
    ('fixed', True)
    >>> bool(np.allclose(obj.penalty[:-1], 2.0 / len(y)) and obj.penalty[-1] == 0)
    True
    """
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    if coef.ndim != 1:
        raise ValueError(
            f"HuberRegressor has coef_ of shape {coef.shape}; explain one target "
            "at a time (fit it on a 1-d y)."
        )
    sigma = float(estimator.scale_)
    if not np.isfinite(sigma) or sigma <= 0.0:
        raise ValueError(
            f"HuberRegressor's scale_ must be positive and finite, got {sigma}."
        )
    w = np.asarray(sample_weight, dtype=np.float64)
    outliers = np.asarray(getattr(estimator, "outliers_", np.zeros(0, dtype=bool)))
    if outliers.shape == w.shape and np.all(outliers[w > 0]):
        raise ValueError(
            "Every training row of this HuberRegressor is an outlier "
            f"(|residual| > epsilon * scale_ = {estimator.epsilon * sigma:.3g}): "
            "the objective has no curvature in the intercept and the Hessian is "
            "singular. Use a larger epsilon."
        )
    fit_intercept = estimator.fit_intercept
    d = coef.size
    lam = np.zeros(d + int(fit_intercept))
    lam[:d] = 2.0 * float(estimator.alpha) / w.sum()
    intercept = [float(estimator.intercept_)] if fit_intercept else None
    family = Huber(float(estimator.epsilon), sigma)
    return LinearObjective(coef[None, :], intercept, family, lam, "fixed"), w
