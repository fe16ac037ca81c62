"""Tweedie deviance: PoissonRegressor, GammaRegressor and TweedieRegressor.

scikit-learn's GLMs minimise ``1/(2W) sum_i w_i deviance_i + alpha/2
||coef||^2``. With ``loss`` the half deviance this is already the mean-form
objective: ``lam = alpha`` on the coefficients, 0 on the intercept, and the
penalty is ``'weight_sum'``-scaled (removing a row strengthens it relative to
the data).

With ``mu = h(eta)`` (``h = exp`` for the log link, the identity otherwise) the
half deviance of power ``p`` has ``d loss / d mu = mu^-p (mu - y)``, so

- log link: ``d loss/d eta = mu^(2-p) - y mu^(1-p)`` and
  ``d2 loss/d eta2 = (2-p) mu^(2-p) - (1-p) y mu^(1-p)``;
- identity link: ``d loss/d eta = mu^-p (mu - y)`` and
  ``d2 loss/d eta2 = (1-p) mu^-p + p y mu^(-p-1)``.
"""

import numpy as np
from scipy.special import xlogy

from ._family import LossFamily


class TweedieDeviance(LossFamily):
    """Half Tweedie deviance of power ``power`` with a log or identity link."""

    n_outputs = 1
    classes = None

    def __init__(self, power, link):
        self.power = float(power)
        self.link = link

    def encode(self, y):
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-dimensional, got shape {y.shape}.")
        p = self.power
        if p >= 1:  # the deviance's domain, as in scikit-learn's losses
            outside = ~(y > 0) if p >= 2 else ~(y >= 0)
            if np.any(outside & ~np.isnan(y)):
                bad = np.flatnonzero(outside & ~np.isnan(y))
                domain = "y > 0" if p >= 2 else "y >= 0"
                raise ValueError(
                    f"y holds targets outside the domain of the deviance with "
                    f"power={p:g} ({domain}) at rows {bad[:5].tolist()}"
                    f"{' ...' if bad.size > 5 else ''}: its loss is undefined "
                    "there. Drop those rows."
                )
        return y

    def _mu(self, eta):
        return np.exp(eta[:, 0]) if self.link == "log" else eta[:, 0]

    def loss(self, y, eta):
        mu, p = self._mu(eta), self.power
        if p == 0:
            return 0.5 * (y - mu) ** 2
        if p == 1:
            return xlogy(y, y) - xlogy(y, mu) - y + mu
        if p == 2:
            return np.log(mu / y) + y / mu - 1.0
        return (
            np.maximum(y, 0) ** (2 - p) / ((1 - p) * (2 - p))
            - y * mu ** (1 - p) / (1 - p)
            + mu ** (2 - p) / (2 - p)
        )

    def gradient(self, y, eta):
        mu, p = self._mu(eta), self.power
        if self.link == "log":
            g = mu ** (2 - p) - y * mu ** (1 - p)
        else:
            g = mu ** (-p) * (mu - y)
        return g[:, None]

    def hessian(self, y, eta):
        mu, p = self._mu(eta), self.power
        if self.link == "log":
            h = (2 - p) * mu ** (2 - p) - (1 - p) * y * mu ** (1 - p)
        else:
            h = (1 - p) * mu ** (-p) + p * y * mu ** (-p - 1)
        return h[:, None, None]

    def output_gradient(self, eta, output, class_index):
        if output == "predict" and self.link == "log":
            return np.exp(eta)
        return np.ones_like(eta)
