"""Adapters of the logistic models: LogisticRegression(CV), SGDClassifier.

How scikit-learn's estimators map onto the mean-form objective
``1/W sum_i w_i loss_i + 1/2 theta' diag(lam) theta``:

- ``LogisticRegression(C)``, every solver but liblinear: sum form
  ``sum_i w_i loss_i + 1/(2C) ||coef||^2``, so ``lam = 1 / (C W)`` on the
  coefficients and 0 on the intercepts; ``C=inf`` (or ``penalty=None``) gives
  ``lam = 0``. ``w`` is sample_weight times class_weight.
- ``LogisticRegression(solver='liblinear')`` appends a constant feature
  ``intercept_scaling`` and penalizes its weight like any other, so the intercept
  ``b = intercept_scaling * w_last`` carries ``lam = 1 / (C W s^2)``.
- ``SGDClassifier(loss='log_loss', penalty='l2', alpha)``: the mean over the
  number of rows plus ``alpha/2 ||coef||^2``: ``lam = alpha n / W``; multiclass
  is one-vs-rest, whose summed objective is one objective over all outputs.
"""

import numpy as np

from ..objectives import (
    BinaryLogistic,
    LinearObjective,
    Multinomial,
    OneVsRestLogistic,
    multinomial_null_space,
)
from ..utils._compat import BALANCED_COUNTS_SAMPLE_WEIGHT
from ..utils._labels import class_weights


def _penalty_kind(penalty, l1_ratio):
    """The penalty a (possibly deprecated) ``penalty``/``l1_ratio`` pair means."""
    if penalty in ("deprecated", "elasticnet"):
        ratio = 0.0 if l1_ratio is None else float(l1_ratio)
        return "l2" if ratio == 0.0 else ("l1" if ratio == 1.0 else "elasticnet")
    return penalty


def _reject_non_smooth(estimator, kind):
    if kind in ("l1", "elasticnet"):
        # SGD's strength is alpha and its penalty is named; LogisticRegression's
        # is C, with l1_ratio choosing the penalty.
        fix = (
            "penalty='l2' or penalty=None"
            if hasattr(estimator, "alpha")
            else "an L2 penalty (l1_ratio=0) or no penalty (C=np.inf)"
        )
        raise ValueError(
            f"{type(estimator).__name__} has an {kind} penalty, which is not twice "
            f"differentiable, so influence functions are undefined. Use {fix}."
        )


def check_logistic_regression(estimator):
    """Refuse an L1 or elastic-net LogisticRegression before it is fitted."""
    if hasattr(estimator, "Cs"):  # LogisticRegressionCV: checked once fitted
        return
    kind = None if not np.isfinite(estimator.C) else estimator.penalty
    _reject_non_smooth(estimator, _penalty_kind(kind, estimator.l1_ratio))


def check_sgd_classifier(estimator):
    """Refuse a non-smooth SGDClassifier loss or penalty before fitting."""
    if estimator.loss != "log_loss":
        raise ValueError(
            f"SGDClassifier(loss={estimator.loss!r}) is not twice differentiable; "
            "influence is supported for loss='log_loss'."
        )
    kind = estimator.penalty
    if kind == "elasticnet":
        kind = _penalty_kind(kind, estimator.l1_ratio)
    _reject_non_smooth(estimator, kind)


def from_logistic_regression(estimator, y, sample_weight):
    """Objective of a fitted LogisticRegression or LogisticRegressionCV."""

    if hasattr(estimator, "C_"):  # LogisticRegressionCV: the chosen C
        if not getattr(estimator, "refit", True):
            raise ValueError(
                "LogisticRegressionCV(refit=False) averages the coefficients of "
                "its folds, which minimise no single objective. Use refit=True."
            )
        C = float(np.ravel(estimator.C_)[0])
        l1 = (
            np.ravel(estimator.l1_ratio_)[0]
            if hasattr(estimator, "l1_ratio_")
            else None
        )
        kind = _penalty_kind(estimator.penalty, l1)
    else:
        C = float(estimator.C)
        kind = _penalty_kind(estimator.penalty, estimator.l1_ratio)
    if not np.isfinite(C):  # C=inf switches every penalty off
        kind = None
    _reject_non_smooth(estimator, kind)
    if kind is None:
        C = np.inf
    classes = estimator.classes_
    w = class_weights(
        estimator.class_weight,
        classes,
        y,
        sample_weight,
        balance_weighted=BALANCED_COUNTS_SAMPLE_WEIGHT,
    )
    W = w.sum()
    coef, fit_intercept = estimator.coef_, estimator.fit_intercept
    binary = len(classes) == 2
    family = BinaryLogistic(classes) if binary else Multinomial(classes)
    K, d = coef.shape
    b = d + int(fit_intercept)
    lam = np.zeros((K, b))
    lam[:, :d] = 1.0 / (C * W)
    if fit_intercept and estimator.solver == "liblinear":
        lam[:, d] = 1.0 / (C * W * estimator.intercept_scaling**2)
    null = None
    if not binary:
        null = multinomial_null_space(K, d, fit_intercept, penalized=np.isfinite(C))
    intercept = estimator.intercept_ if fit_intercept else None
    objective = LinearObjective(coef, intercept, family, lam.ravel(), "fixed", null)
    return objective, w


def from_sgd_classifier(estimator, y, sample_weight):
    """Objective of a fitted ``SGDClassifier(loss='log_loss')``."""
    check_sgd_classifier(estimator)
    kind = estimator.penalty
    if kind == "elasticnet":
        kind = _penalty_kind(kind, estimator.l1_ratio)
    classes = estimator.classes_
    binary = len(classes) == 2
    if estimator.class_weight is not None and not binary:
        raise ValueError(
            "A multiclass SGDClassifier applies class_weight only to the positive "
            "side of each one-vs-rest problem, which no single weighted objective "
            "describes. Use sample_weight instead of class_weight."
        )
    w = class_weights(
        estimator.class_weight, classes, y, sample_weight, balance_weighted=False
    )
    alpha = 0.0 if kind is None else float(estimator.alpha)
    family = BinaryLogistic(classes) if binary else OneVsRestLogistic(classes)
    coef, fit_intercept = estimator.coef_, estimator.fit_intercept
    K, d = coef.shape
    lam = np.zeros((K, d + int(fit_intercept)))
    lam[:, :d] = alpha * len(w) / w.sum()
    intercept = estimator.intercept_ if fit_intercept else None
    return LinearObjective(coef, intercept, family, lam.ravel(), "n_samples"), w
