"""The smooth hinge of Koh & Liang (2017), and SVMs explained through it.

``SmoothHinge(s, t) = t * log(1 + exp((1 - s) / t))`` with margin
``s = y * eta`` and ``y`` in {-1, +1}; it tends to the hinge ``max(0, 1 - s)``
as the temperature ``t -> 0`` and is infinitely differentiable for ``t > 0``:
with ``u = (1 - s) / t`` and ``sigma`` the logistic function,

    d loss / d eta = -y * sigma(u),    d2 loss / d eta2 = sigma(u) sigma(-u) / t.

Both are written with ``logaddexp``/``expit``, which never overflow, so
temperatures down to 1e-4 and below are safe.

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
from scipy.special import expit

from .logistic import _encode_labels


class SmoothHinge:
    """One-vs-rest smooth hinge: ``K = 1`` for two classes, else one per class."""

    def __init__(self, classes, temperature):
        self.classes = np.asarray(classes)
        self.temperature = float(temperature)
        self.n_outputs = 1 if len(self.classes) == 2 else len(self.classes)

    def encode(self, y):
        return _encode_labels(y, self.classes)

    def signs(self, t, K):
        """``y`` in {-1, +1} per row and output, shape (n, K)."""
        if K == 1:
            return np.where(t == 1, 1.0, -1.0)[:, None]
        S = -np.ones((t.shape[0], K))
        S[np.arange(t.shape[0]), t] = 1.0
        return S

    def _u(self, t, eta):
        return (1.0 - self.signs(t, eta.shape[1]) * eta) / self.temperature

    def loss(self, t, eta):
        u = self._u(t, eta)
        return (self.temperature * np.logaddexp(0.0, u)).sum(axis=1)

    def gradient(self, t, eta):
        return -self.signs(t, eta.shape[1]) * expit(self._u(t, eta))

    def hessian(self, t, eta):
        u = self._u(t, eta)
        diag = expit(u) * expit(-u) / self.temperature
        D = np.zeros(eta.shape + (eta.shape[1],))
        idx = np.arange(eta.shape[1])
        D[:, idx, idx] = diag
        return D

    def output_gradient(self, eta, output, class_index):
        if output != "decision_function":
            raise ValueError(
                "SVMs have no probabilities: use target='decision_function' or 'loss'."
            )
        if eta.shape[1] == 1:
            return np.ones_like(eta)
        G = np.zeros_like(eta)
        G[np.arange(eta.shape[0]), class_index] = 1.0
        return G


class SquaredHinge(SmoothHinge):
    """``max(0, 1 - s)^2``: LinearSVC's default loss, once differentiable.

    Its second derivative ``2 * 1[s < 1]`` exists everywhere but on the margin
    itself, so the (generalized) Hessian is exact at almost every optimum.
    """

    def __init__(self, classes):
        super().__init__(classes, temperature=1.0)

    def loss(self, t, eta):
        slack = np.maximum(0.0, 1.0 - self.signs(t, eta.shape[1]) * eta)
        return (slack**2).sum(axis=1)

    def gradient(self, t, eta):
        S = self.signs(t, eta.shape[1])
        return -2.0 * S * np.maximum(0.0, 1.0 - S * eta)

    def hessian(self, t, eta):
        inside = (self.signs(t, eta.shape[1]) * eta < 1.0).astype(float)
        D = np.zeros(eta.shape + (eta.shape[1],))
        idx = np.arange(eta.shape[1])
        D[:, idx, idx] = 2.0 * inside
        return D


# Temperature at which hinge-loss models trained by scikit-learn (LinearSVC,
# SVC) are explained; the paper's choice. Their parameters are not the smooth
# objective's optimum, so treat the result as an approximation.
HINGE_TEMPERATURE = 0.001


def _svm_penalty(C, weights, n_outputs, d, fit_intercept, intercept_scale=None):
    lam = np.zeros((n_outputs, d + int(fit_intercept)))
    lam[:, :d] = 1.0 / (C * weights.sum())
    if fit_intercept and intercept_scale is not None:
        lam[:, d] = 1.0 / (C * weights.sum() * intercept_scale**2)
    return lam.ravel()


def from_smooth_hinge_svc(estimator, y, sample_weight):
    """Objective of a fitted :class:`skinfluence.SmoothHingeSVC` (exact)."""
    from ._base import LinearObjective
    from .kernel import representer_features
    from .logistic import _class_weights

    classes = estimator.classes_
    w = _class_weights(estimator.class_weight, classes, y, sample_weight)
    family = SmoothHinge(classes, estimator.temperature)
    intercept = estimator.intercept_ if estimator.fit_intercept else None
    fmap = None
    if estimator.kernel == "linear":
        coef = estimator.coef_
    elif estimator.kernel_features_ is not None:  # landmark (Nystroem) features
        fmap, coef = estimator.kernel_features_, estimator._coef
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
    from ._base import LinearObjective
    from .logistic import _class_weights

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
    w = _class_weights(estimator.class_weight, classes, y, sample_weight)
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
