"""Logistic losses: binary, multinomial (softmax) and one-vs-rest.

Each family maps labels to an internal target with ``encode`` and gives the
pointwise loss and its first two derivatives with respect to the linear
outputs ``eta`` of shape (n, K) (see :class:`skinfluence.objectives.LossFamily`).
"""

import numpy as np
from scipy.special import expit

from ..utils._labels import encode_labels
from ._family import LossFamily


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


class BinaryLogistic(LossFamily):
    """``loss = log(1 + exp(eta)) - t * eta`` with ``t = 1[y == classes[1]]``."""

    n_outputs = 1

    def __init__(self, classes):
        self.classes = np.asarray(classes)

    def encode(self, y):
        return encode_labels(y, self.classes).astype(np.float64)

    def loss(self, t, eta):
        eta = eta[:, 0]
        return np.logaddexp(0.0, eta) - t * eta

    def gradient(self, t, eta):
        return expit(eta) - t[:, None]

    def loss_gradient(self, t, eta):
        """``(loss, gradient)`` from one exponential per row (refits)."""
        eta = eta[:, 0]
        E = np.exp(-np.abs(eta))  # never overflows
        loss = np.log1p(E) + np.maximum(eta, 0.0) - t * eta
        p = np.where(eta >= 0, 1.0, E) / (1.0 + E)
        return loss, (p - t)[:, None]

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


class Multinomial(LossFamily):
    """``loss = logsumexp(eta) - eta[y]``: the softmax cross-entropy."""

    def __init__(self, classes):
        self.classes = np.asarray(classes)
        self.n_outputs = len(self.classes)

    def encode(self, y):
        return encode_labels(y, self.classes)

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


class OneVsRestLogistic(LossFamily):
    """Sum over classes of binary logistic losses (SGD's one-vs-rest)."""

    def __init__(self, classes):
        self.classes = np.asarray(classes)
        self.n_outputs = len(self.classes)

    def encode(self, y):
        return encode_labels(y, self.classes)

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
