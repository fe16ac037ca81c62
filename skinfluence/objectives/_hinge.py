"""The smooth hinge of Koh & Liang (2017), and SVMs explained through it.

``SmoothHinge(s, t) = t * log(1 + exp((1 - s) / t))`` with margin
``s = y * eta`` and ``y`` in {-1, +1}; it tends to the hinge ``max(0, 1 - s)``
as the temperature ``t -> 0`` and is infinitely differentiable for ``t > 0``:
with ``u = (1 - s) / t`` and ``sigma`` the logistic function,

    d loss / d eta = -y * sigma(u),    d2 loss / d eta2 = sigma(u) sigma(-u) / t.

Both are written with ``logaddexp``/``expit``, which never overflow, so
temperatures down to 1e-4 and below are safe.
"""

import numpy as np
from scipy.special import expit

from ..utils._labels import encode_labels
from ._family import LossFamily


class SmoothHinge(LossFamily):
    """One-vs-rest smooth hinge: ``K = 1`` for two classes, else one per class."""

    def __init__(self, classes, temperature):
        self.classes = np.asarray(classes)
        self.temperature = float(temperature)
        self.n_outputs = 1 if len(self.classes) == 2 else len(self.classes)

    def encode(self, y):
        return encode_labels(y, self.classes)

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
