"""Huber's loss with a concomitant scale: HuberRegressor, at its fitted scale.

HuberRegressor minimises over ``(coef, intercept, sigma)``

    sum_i w_i * (sigma + sigma * H_eps(r_i / sigma)) + alpha * ||coef||^2,

with residual ``r = y - eta`` and ``H_eps(z) = z^2`` for ``|z| <= eps``,
``2 eps |z| - eps^2`` otherwise (Owen 2006). Held at the fitted scale
``sigma``, the pointwise loss of ``eta`` and its derivatives are

    loss = sigma + r^2 / sigma                 (|r| <= eps sigma)
         = sigma + 2 eps |r| - eps^2 sigma     (|r| >  eps sigma)
    d loss / d eta   = -2 clip(r / sigma, -eps, eps)
    d2 loss / d eta2 = 2 / sigma * 1[|r| <= eps sigma].

The loss is once continuously differentiable; its second derivative jumps on
the band's edges ``|r| = eps sigma``, so (as for the squared hinge) it is a
generalized Hessian, exact wherever no residual sits on an edge, i.e. at
almost every optimum. The constant ``sigma`` is kept so that the loss is
exactly the row's term of the estimator's objective.
"""

import numpy as np

from ._family import LossFamily, encode_single_target


class Huber(LossFamily):
    """Huber loss of threshold ``epsilon`` at the fixed scale ``scale`` (sigma).

    Parameters
    ----------
    epsilon : float
        Band half-width in units of the scale (HuberRegressor's ``epsilon``).
    scale : float
        The scale ``sigma`` (HuberRegressor's ``scale_``), held fixed.
    """

    n_outputs = 1
    classes = None

    def __init__(self, epsilon, scale):
        self.epsilon = epsilon
        self.scale = scale

    def encode(self, y):
        return encode_single_target(y)

    def _z(self, y, eta):
        """Standardized residuals ``(y - eta) / sigma``, shape (n,)."""
        return (y - eta[:, 0]) / self.scale

    def loss(self, y, eta):
        return self.loss_gradient(y, eta)[0]

    def loss_gradient(self, y, eta):
        eps, sigma = self.epsilon, self.scale
        z = self._z(y, eta)
        a = np.abs(z)
        inside = a <= eps
        H = np.where(inside, z * z, 2.0 * eps * a - eps * eps)
        loss = sigma * (1.0 + H)
        gradient = -2.0 * np.clip(z, -eps, eps)
        return loss, gradient[:, None]

    def gradient(self, y, eta):
        return -2.0 * np.clip(self._z(y, eta), -self.epsilon, self.epsilon)[:, None]

    def hessian(self, y, eta):
        inside = np.abs(self._z(y, eta)) <= self.epsilon
        return (2.0 / self.scale * inside)[:, None, None]
