"""Refits of the estimator itself (scikit-learn's own solver), for validation."""

import numpy as np
from sklearn.base import clone

from ..adapters import build_objective


def warm_clone(model):
    """A clone that starts from the fitted parameters, where the model allows.

    As in Koh & Liang's protocol, this lands the refit on the same optimum
    faster; it does not change that optimum.
    """
    refit = clone(model)
    params = refit.get_params()
    if "warm_start" not in params:
        return refit
    if type(model).__name__ == "HuberRegressor" and not params["fit_intercept"]:
        # Its warm start restarts from [coef_, intercept_, scale_] whether or
        # not it fits an intercept, and so fits one.
        return refit
    # A frozen model clones to itself: never write into it.
    if refit is model or not hasattr(model, "intercept_"):
        return refit
    try:
        state = {
            k: np.copy(v)
            for k, v in vars(model).items()
            if k.endswith("_") and not k.startswith("__")
        }
    except TypeError:  # pragma: no cover - unusual fitted attributes
        return refit
    refit.set_params(warm_start=True)
    vars(refit).update(state)
    return refit


def refit_loss(model, X, y, sw, keep, X_test, t_test):
    refit = warm_clone(model).fit(X[keep], y[keep], sample_weight=sw[keep])
    objective, _ = build_objective(refit, y[keep], sw[keep])
    fmap = objective.feature_map
    features = X_test if fmap is None else fmap.transform(X_test)
    return objective.loss(features, t_test).sum()
