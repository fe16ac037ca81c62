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
