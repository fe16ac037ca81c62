"""Adapters of the SVMs: SmoothHingeSVC, LinearSVC and SVC.

How the estimators map onto the mean-form objective
``1/W sum_i w_i loss_i + 1/2 theta' diag(lam) theta``:

- :class:`skinfluence.SmoothHingeSVC(C)` minimises ``C sum_i w_i loss_i +
  1/2 ||beta||^2`` over the coefficients ``beta`` of its (linear or kernel)
  features and an unpenalized intercept: ``lam = 1 / (C W)``, ``'fixed'``.
  Multiclass is one-vs-rest, whose summed objective is one objective.
- ``LinearSVC`` and ``SVC`` (hinge loss, trained by scikit-learn) are explained
  *approximately*, as in the paper: their fitted parameters are plugged into
  the smooth-hinge objective at a documented temperature. They are not its
  optimum, so the explainer's stationarity check does not apply to them.
"""

import numpy as np

from ..objectives import (
    HINGE_TEMPERATURE,
    LinearObjective,
    SmoothHinge,
    SquaredHinge,
)
from ..utils._compat import BALANCED_COUNTS_SAMPLE_WEIGHT
from ..utils._labels import class_weights, encode_labels
from ._kernel import representer_features


def _svm_penalty(C, weights, n_outputs, d, fit_intercept, intercept_scale=None):
    lam = np.zeros((n_outputs, d + int(fit_intercept)))
    lam[:, :d] = 1.0 / (C * weights.sum())
    if fit_intercept and intercept_scale is not None:
        lam[:, d] = 1.0 / (C * weights.sum() * intercept_scale**2)
    return lam.ravel()


def from_smooth_hinge_svc(estimator, y, sample_weight):
    """Objective of a fitted :class:`skinfluence.SmoothHingeSVC` (exact)."""

    classes = estimator.classes_
    w = class_weights(estimator.class_weight, classes, y, sample_weight)
    family = SmoothHinge(classes, estimator.temperature)
    intercept = estimator.intercept_ if estimator.fit_intercept else None
    fmap = None
    if estimator.kernel == "linear":
        coef = estimator.coef_
    elif estimator.kernel_features_ is not None:  # landmark (Nystroem) features
        fmap, coef = estimator.kernel_features_, estimator.feature_coef_
    else:
        fmap, coef = representer_features(
            estimator.kernel,
            estimator.gamma_,
            estimator.degree,
            estimator.coef0,
            estimator.X_fit_,
            estimator.dual_coef_,
        )
    lam = _svm_penalty(
        estimator.C, w, coef.shape[0], coef.shape[1], estimator.fit_intercept
    )
    return LinearObjective(coef, intercept, family, lam, "fixed", feature_map=fmap), w


def from_linear_svc(estimator, y, sample_weight):
    """Objective of a fitted LinearSVC.

    ``loss='squared_hinge'`` (the default) is modelled exactly; ``loss='hinge'``
    through the smooth hinge at ``HINGE_TEMPERATURE`` (an approximation).
    liblinear penalizes the intercept through ``intercept_scaling``.
    """

    if estimator.penalty != "l2":
        raise ValueError(
            "LinearSVC(penalty='l1') is not twice differentiable; use penalty='l2'."
        )
    if estimator.multi_class == "crammer_singer":
        raise ValueError(
            "LinearSVC(multi_class='crammer_singer') is not supported; "
            "use the default one-vs-rest."
        )
    classes = estimator.classes_
    w = class_weights(
        estimator.class_weight,
        classes,
        y,
        sample_weight,
        balance_weighted=BALANCED_COUNTS_SAMPLE_WEIGHT,
    )
    family = (
        SquaredHinge(classes)
        if estimator.loss == "squared_hinge"
        else SmoothHinge(classes, HINGE_TEMPERATURE)
    )
    coef, fit_intercept = estimator.coef_, estimator.fit_intercept
    lam = _svm_penalty(
        estimator.C,
        w,
        coef.shape[0],
        coef.shape[1],
        fit_intercept,
        intercept_scale=estimator.intercept_scaling,
    )
    intercept = estimator.intercept_ if fit_intercept else None
    objective = LinearObjective(coef, intercept, family, lam, "fixed")
    objective.approximate = estimator.loss == "hinge"
    return objective, w


def from_svc(estimator, y, sample_weight):
    """Objective of a fitted binary SVC, through the smooth hinge (approximate)."""
    from ._svm import _svm_penalty

    classes = estimator.classes_
    if len(classes) != 2:
        raise ValueError(
            "SVC is one-vs-one for more than two classes, which no single "
            "objective describes; use SmoothHingeSVC(kernel=...) instead."
        )
    if estimator.kernel == "precomputed" or callable(estimator.kernel):
        kind = "'precomputed'" if estimator.kernel == "precomputed" else "a callable"
        raise ValueError(
            f"SVC(kernel={kind}) keeps no support vectors to build features "
            "from (scikit-learn gives libsvm the Gram matrix); use "
            "SmoothHingeSVC, which takes the same kernels."
        )
    fmap, beta = representer_features(
        estimator.kernel,
        # The gamma libsvm used ('scale' and 'auto' resolved): scikit-learn
        # keeps it only in this attribute.
        estimator._gamma,
        estimator.degree,
        estimator.coef0,
        estimator.support_vectors_,
        estimator.dual_coef_,
    )
    # libsvm's own per-class weights ('balanced' counts rows, not their
    # sample weights): read back rather than recomputed.
    w = (
        np.asarray(sample_weight, dtype=np.float64)
        * estimator.class_weight_[encode_labels(y, classes)]
    )
    lam = _svm_penalty(estimator.C, w, 1, beta.shape[1], True)
    family = SmoothHinge(classes, HINGE_TEMPERATURE)
    objective = LinearObjective(
        beta, estimator.intercept_, family, lam, "fixed", feature_map=fmap
    )
    objective.approximate = True
    return objective, w
