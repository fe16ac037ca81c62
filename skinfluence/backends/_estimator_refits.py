"""Refits of the estimator itself (scikit-learn's own solver), for validation."""

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import (
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeCV,
)

from ..adapters import build_objective


def at_chosen_hyperparameter(model):
    """A fitted ``*CV`` search's model at the value it chose, unfitted; else None.

    The explainer explains the objective at ``C_`` (``alpha_``). Retraining the
    search itself reruns the cross-validation, which may choose another value
    (and costs a fit per fold and value): a refit of the explained objective
    keeps the chosen one.
    """
    if isinstance(model, LogisticRegressionCV):
        base = LogisticRegression()
        chosen = {"C": float(np.ravel(model.C_)[0])}
        l1_ratio = np.ravel(getattr(model, "l1_ratio_", [None]))[0]
        if l1_ratio is not None and np.isfinite(l1_ratio):
            chosen["l1_ratio"] = float(l1_ratio)
    elif isinstance(model, RidgeCV):
        base, chosen = Ridge(), {"alpha": model.alpha_}
    else:
        return None
    own = model.get_params()
    shared = {k: v for k, v in own.items() if k in base.get_params()}
    return base.set_params(**{**shared, **chosen})


def warm_clone(model):
    """A clone that starts from the fitted parameters, where the model allows.

    As in Koh & Liang's protocol, this lands the refit on the same optimum
    faster; it does not change that optimum. A ``*CV`` search refits as the
    model at its chosen hyperparameter (:func:`at_chosen_hyperparameter`).
    """
    fixed = at_chosen_hyperparameter(model)
    if fixed is not None:
        if "warm_start" in fixed.get_params():
            fixed.set_params(warm_start=True)
            fixed.coef_ = np.copy(model.coef_)
            fixed.intercept_ = np.copy(model.intercept_)
        return fixed
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
