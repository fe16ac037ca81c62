"""Kernel models in their representer form: KernelRidge and SVC.

A kernel model ``f(x) = sum_j alpha_j k(x, x_j) (+ b)`` with RKHS penalty
``alpha' K alpha`` is the linear model ``f(x) = phi(x)' beta (+ b)`` with
penalty ``||beta||^2``, for the landmark features ``phi`` of
:mod:`skinfluence._kernel_features` (exact to the pivoting tolerance) and
``beta = Phi' alpha``. The objective then reuses the linear-model adapters;
perturbation influence differentiates through ``phi``.

- ``KernelRidge(alpha)``: ``sum_i w_i (y_i - f_i)^2 + alpha alpha' K alpha``,
  no intercept: ``loss = (y - f)^2``, ``lam = 2 alpha / W``.
- ``SVC`` (binary, hinge loss, trained by libsvm): explained through the smooth
  hinge at ``HINGE_TEMPERATURE`` (the paper's approximation) over the span of
  its support vectors, ``lam = 1 / (C W)``.
"""

import numpy as np

from ..objectives import LinearObjective, PivotedKernelFeatures, SquaredError


def representer_features(kernel, gamma, degree, coef0, basis, dual_coef):
    """Landmark features over ``basis`` and ``beta = Phi' alpha`` per output."""
    fmap = PivotedKernelFeatures(kernel, gamma, degree, coef0).fit(basis)
    Phi = fmap.transform(basis)
    return fmap, np.atleast_2d(dual_coef) @ Phi


def from_kernel_ridge(estimator, y, sample_weight):
    """Objective of a fitted KernelRidge (one target)."""

    dual = np.asarray(estimator.dual_coef_)
    if dual.ndim == 2 and dual.shape[1] != 1:
        raise ValueError(
            "KernelRidge fitted on several targets: explain one target at a time."
        )
    alpha = np.ravel(estimator.alpha)
    if alpha.size != 1:
        raise ValueError("KernelRidge with one alpha per target is not supported.")
    params = estimator.kernel_params or {}
    gamma = params.get("gamma", estimator.gamma)
    fmap, beta = representer_features(
        estimator.kernel,
        gamma,
        params.get("degree", estimator.degree),
        params.get("coef0", estimator.coef0),
        estimator.X_fit_,
        dual.ravel(),
    )
    w = np.asarray(sample_weight, dtype=np.float64)
    lam = np.full(beta.shape[1], 2.0 * float(alpha[0]) / w.sum())
    return LinearObjective(
        beta, None, SquaredError(1.0), lam, "fixed", feature_map=fmap
    ), w
