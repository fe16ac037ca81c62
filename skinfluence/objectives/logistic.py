"""Logistic losses: binary, multinomial (softmax) and one-vs-rest.

Each family maps labels to an internal target with ``encode`` and gives the
pointwise loss and its first two derivatives with respect to the linear
outputs ``eta`` of shape (n, K) (see :mod:`skinfluence.objectives._base`).

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
from scipy.special import expit


def _encode_labels(y, classes):
    y = np.asarray(y)
    index = np.searchsorted(classes, y)
    index = np.clip(index, 0, len(classes) - 1)
    unseen = classes[index] != y
    if np.any(unseen):
        bad = np.unique(y[unseen])[:5]
        raise ValueError(
            f"y contains labels not seen during fit: {bad.tolist()}; the model "
            f"knows only {classes.tolist()}. Drop those rows or refit the "
            "explainer on data that contains them."
        )
    return index


def _shifted_exp(eta):
    """``(E, log_total)``: ``exp(eta - max)`` and ``logsumexp(eta)`` per row.

    Plain numpy: scipy's logsumexp and softmax cost 3-5x more on the small
    arrays of an optimizer's iterations.
    """
    top = eta.max(axis=1, keepdims=True)
    E = np.exp(eta - top)
    total = E.sum(axis=1, keepdims=True)
    return E, np.log(total[:, 0]) + top[:, 0], total


def _softmax(eta):
    """Row-wise softmax."""
    E, _, total = _shifted_exp(eta)
    E /= total
    return E


class BinaryLogistic:
    """``loss = log(1 + exp(eta)) - t * eta`` with ``t = 1[y == classes[1]]``."""

    n_outputs = 1

    def __init__(self, classes):
        self.classes = np.asarray(classes)

    def encode(self, y):
        return _encode_labels(y, self.classes).astype(np.float64)

    def loss(self, t, eta):
        eta = eta[:, 0]
        return np.logaddexp(0.0, eta) - t * eta

    def gradient(self, t, eta):
        return expit(eta) - t[:, None]

    def hessian(self, t, eta):
        p = expit(eta)
        return (p * (1.0 - p))[:, :, None]

    def output_gradient(self, eta, output, class_index):
        """d output / d eta, shape (n, 1); ``class_index`` of shape (n,)."""
        if output == "decision_function":
            return np.ones_like(eta)
        p = expit(eta)
        sign = np.where(class_index == 1, 1.0, -1.0)[:, None]
        return sign * p * (1.0 - p)


class Multinomial:
    """``loss = logsumexp(eta) - eta[y]``: the softmax cross-entropy."""

    def __init__(self, classes):
        self.classes = np.asarray(classes)
        self.n_outputs = len(self.classes)

    def encode(self, y):
        return _encode_labels(y, self.classes)

    def loss(self, t, eta):
        return _shifted_exp(eta)[1] - eta[np.arange(eta.shape[0]), t]

    def gradient(self, t, eta):
        P = _softmax(eta)
        P[np.arange(eta.shape[0]), t] -= 1.0
        return P

    def loss_gradient(self, t, eta):
        """``(loss, gradient)`` from one pass of exponentials."""
        rows = np.arange(eta.shape[0])
        P, log_total, total = _shifted_exp(eta)
        P /= total
        P[rows, t] -= 1.0
        return log_total - eta[rows, t], P

    def hessian(self, t, eta):
        P = _softmax(eta)
        D = -P[:, :, None] * P[:, None, :]
        idx = np.arange(P.shape[1])
        D[:, idx, idx] += P
        return D

    def hessian_parts(self, t, eta):
        """``(a, U)`` with ``hessian(t, eta)[i] = diag(a_i) - u_i u_i'``."""
        P = _softmax(eta)
        return P, P

    def output_gradient(self, eta, output, class_index):
        n, K = eta.shape
        onehot = np.zeros((n, K))
        onehot[np.arange(n), class_index] = 1.0
        if output == "decision_function":
            return onehot
        P = _softmax(eta)
        pk = P[np.arange(n), class_index][:, None]
        return pk * (onehot - P)


class OneVsRestLogistic:
    """Sum over classes of binary logistic losses (SGD's one-vs-rest)."""

    def __init__(self, classes):
        self.classes = np.asarray(classes)
        self.n_outputs = len(self.classes)

    def encode(self, y):
        return _encode_labels(y, self.classes)

    def _targets(self, t, K):
        T = np.zeros((t.shape[0], K))
        T[np.arange(t.shape[0]), t] = 1.0
        return T

    def loss(self, t, eta):
        T = self._targets(t, eta.shape[1])
        return (np.logaddexp(0.0, eta) - T * eta).sum(axis=1)

    def gradient(self, t, eta):
        return expit(eta) - self._targets(t, eta.shape[1])

    def hessian(self, t, eta):
        p = expit(eta)
        D = np.zeros(eta.shape + (eta.shape[1],))
        idx = np.arange(eta.shape[1])
        D[:, idx, idx] = p * (1.0 - p)
        return D

    def output_gradient(self, eta, output, class_index):
        n, K = eta.shape
        G = np.zeros((n, K))
        rows = np.arange(n)
        if output == "decision_function":
            G[rows, class_index] = 1.0
            return G
        # predict_proba of one-vs-rest models normalises the K sigmoids.
        S = expit(eta)
        dS = S * (1.0 - S)
        total = S.sum(axis=1)
        pk = S[rows, class_index] / total
        G[:] = -(pk / total)[:, None] * dS
        G[rows, class_index] += dS[rows, class_index] / total
        return G


def multinomial_null_space(n_classes, n_features, fit_intercept, penalized):
    """Directions along which a softmax objective is exactly flat.

    Adding the same vector to every class's parameter block leaves every
    softmax probability unchanged. The penalty breaks that symmetry for the
    coefficients but never for the (unpenalized) intercepts.

    Returns
    -------
    ndarray of shape (n_params, r), orthonormal columns (r may be 0).
    """
    b = n_features + int(fit_intercept)
    free = [] if penalized else list(range(n_features))
    if fit_intercept:
        free.append(n_features)
    N = np.zeros((n_classes * b, len(free)))
    for col, j in enumerate(free):
        N[j::b, col] = 1.0 / np.sqrt(n_classes)
    return N


def _penalty_kind(penalty, l1_ratio):
    """The penalty a (possibly deprecated) ``penalty``/``l1_ratio`` pair means."""
    if penalty in ("deprecated", "elasticnet"):
        ratio = 0.0 if l1_ratio is None else float(l1_ratio)
        return "l2" if ratio == 0.0 else ("l1" if ratio == 1.0 else "elasticnet")
    return penalty


def _reject_non_smooth(estimator, kind):
    if kind in ("l1", "elasticnet"):
        raise ValueError(
            f"{type(estimator).__name__} has an {kind} penalty, which is not twice "
            "differentiable, so influence functions are undefined. Use an L2 "
            "penalty (l1_ratio=0) or no penalty (C=np.inf)."
        )


def _class_weights(class_weight, classes, y, sample_weight, balance_weighted=True):
    """Sample weights times class weights, as the estimator computes them.

    ``balance_weighted``: whether 'balanced' counts rows by their sample weight
    (LogisticRegression, liblinear) or one each (SGDClassifier).
    """
    from sklearn.utils.class_weight import compute_class_weight

    w = np.asarray(sample_weight, dtype=np.float64)
    if class_weight is None:
        return w
    per_class = compute_class_weight(
        class_weight,
        classes=classes,
        y=y,
        sample_weight=w if balance_weighted else None,
    )
    return w * per_class[_encode_labels(y, classes)]


def from_logistic_regression(estimator, y, sample_weight):
    """Objective of a fitted LogisticRegression or LogisticRegressionCV."""
    from ._base import LinearObjective

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
    w = _class_weights(estimator.class_weight, classes, y, sample_weight)
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
    from ._base import LinearObjective

    if estimator.loss != "log_loss":
        raise ValueError(
            f"SGDClassifier(loss={estimator.loss!r}) is not twice differentiable; "
            "influence is supported for loss='log_loss'."
        )
    kind = estimator.penalty
    if kind == "elasticnet":
        kind = _penalty_kind(kind, estimator.l1_ratio)
    _reject_non_smooth(estimator, kind)
    classes = estimator.classes_
    binary = len(classes) == 2
    if estimator.class_weight is not None and not binary:
        raise ValueError(
            "A multiclass SGDClassifier applies class_weight only to the positive "
            "side of each one-vs-rest problem, which no single weighted objective "
            "describes. Use sample_weight instead of class_weight."
        )
    w = _class_weights(
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
