"""Which fitted ensembles the tree backend reads, and what it asks of them.

The ensembles themselves are read into one array form,
:class:`~._ensemble.TreeEnsemble`: scikit-learn's by :mod:`._sklearn_trees`,
LightGBM's and XGBoost's by :mod:`._booster_trees`.
"""

import numpy as np
from sklearn.model_selection import train_test_split

from ...utils._checks import as_fitted_input
from ._booster_trees import read_lgbm, read_xgb
from ._sklearn_trees import read_gb, read_hgb

HGB = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
GB = ("GradientBoostingClassifier", "GradientBoostingRegressor")
LGBM = ("LGBMClassifier", "LGBMRegressor")
XGB = ("XGBClassifier", "XGBRegressor")
#: Class names served, by module prefix (the optional libraries are known by
#: the module of the class, never imported to check).
SUPPORTED = {
    "sklearn.ensemble": HGB + GB,
    "lightgbm.sklearn": LGBM,
    "xgboost.sklearn": XGB,
}


def is_tree_model(model):
    """Whether ``model`` is an ensemble this backend reads (by class name)."""
    cls = type(model)
    names = SUPPORTED.get(".".join(cls.__module__.split(".")[:2]), ())
    return cls.__name__ in names


def read_ensemble(model, target=None, weights=None):
    """The :class:`TreeEnsemble` of a fitted supported ``model``.

    ``target`` (encoded) and ``weights``: the training rows', for LightGBM's
    baseline, which it computes from them.
    """
    name = type(model).__name__
    if name in HGB:
        return read_hgb(model)
    if name in GB:
        return read_gb(model)
    if name in LGBM:
        return read_lgbm(model, target, weights)
    if name in XGB:
        return read_xgb(model)
    raise TypeError(
        f"{name} is not a supported tree ensemble ({HGB + GB + LGBM + XGB})."
    )


def held_out_for_stopping(model, y):
    """Rows a fitted HistGradientBoosting model held out to stop early, or None.

    With early stopping on a validation split (``early_stopping=True``, or
    'auto' on more than 10,000 rows, with ``validation_fraction``) the trees
    are grown on the other rows only. The split is the one ``fit`` drew:
    ``train_test_split`` with the model's recorded seed, stratified by class
    for a classifier. Returns a boolean mask over the rows, True where held
    out.
    """
    if type(model).__name__ not in HGB or not getattr(model, "do_early_stopping_", 0):
        return None
    fraction = model.get_params()["validation_fraction"]
    if fraction is None:
        return None  # stopped on the training loss: every row trained
    rows = np.arange(len(y))
    stratify = y if hasattr(model, "classes_") else None
    _, held = train_test_split(
        rows, test_size=fraction, stratify=stratify, random_state=model._random_seed
    )
    mask = np.zeros(len(y), dtype=bool)
    mask[held] = True
    return mask


def raw_outputs(model, X):
    """The model's raw outputs (log-odds, or the prediction), shape (n, K)."""
    n = X.shape[0]
    X = as_fitted_input(model, X)
    if type(model).__name__ in LGBM:
        out = model.predict(X, raw_score=True)
    elif type(model).__name__ in XGB:
        out = model.predict(X, output_margin=True)
    elif hasattr(model, "classes_"):
        out = model.decision_function(X)
    else:
        out = model.predict(X)
    return np.asarray(out, dtype=np.float64).reshape(n, -1)


def hessian_scale(model):
    """Factor of the multiclass hessian ``p (1 - p)``: LightGBM ``K / (K - 1)``,
    XGBoost 2; else 1."""
    classes = getattr(model, "classes_", None)
    if classes is None or len(classes) <= 2:
        return 1.0
    if type(model).__name__ in LGBM:
        return len(classes) / (len(classes) - 1)
    if type(model).__name__ in XGB:
        return 2.0
    return 1.0
