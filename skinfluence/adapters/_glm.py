"""Adapters of the GLMs: PoissonRegressor, GammaRegressor, TweedieRegressor."""

import numpy as np

from ..objectives import LinearObjective, TweedieDeviance


def from_glm(estimator, y, sample_weight):
    """Objective of a fitted Poisson-, Gamma- or TweedieRegressor."""

    name = type(estimator).__name__
    if name == "PoissonRegressor":
        family = TweedieDeviance(1.0, "log")
    elif name == "GammaRegressor":
        family = TweedieDeviance(2.0, "log")
    else:
        power = float(estimator.power)
        link = estimator.link
        if link == "auto":
            link = "identity" if power <= 0 else "log"
        family = TweedieDeviance(power, link)
    w = np.asarray(sample_weight, dtype=np.float64)
    coef = np.asarray(estimator.coef_).reshape(1, -1)
    d = coef.shape[1]
    lam = np.zeros(d + int(estimator.fit_intercept))
    lam[:d] = float(estimator.alpha)
    intercept = [estimator.intercept_] if estimator.fit_intercept else None
    return LinearObjective(coef, intercept, family, lam, "weight_sum"), w
