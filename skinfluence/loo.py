"""Check influence against actual retraining (Koh & Liang's Figure 2)."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .adapters._registry import build_objective
from .utils._checks import split_model


@dataclass
class LOOValidation:
    """Predicted vs actual leave-one-out changes of the test loss.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per removed training row: ``train_row``, ``selection`` ('top'
        or 'random'), ``predicted`` and ``actual`` change of the total test
        loss.
    pearson_r : float
        Pearson correlation of predicted and actual changes.
    slope : float
        Least-squares slope of predicted against actual (1 is perfect scale).
    """

    table: pd.DataFrame
    pearson_r: float
    slope: float


def _warm_clone(model):
    """A clone that starts from the fitted parameters, where the model allows.

    As in the paper's protocol, this lands the refit on the same optimum
    faster; it does not change that optimum.
    """
    refit = clone(model)
    if "warm_start" not in refit.get_params():
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


def _refit_loss(model, X, y, sw, keep, X_test, t_test):
    refit = _warm_clone(model).fit(X[keep], y[keep], sample_weight=sw[keep])
    objective, _ = build_objective(refit, y[keep], sw[keep])
    fmap = objective.feature_map
    features = X_test if fmap is None else fmap.transform(X_test)
    return objective.loss(features, t_test).sum()


def validate_loo(
    explainer,
    X_test,
    y_test,
    *,
    n_remove=20,
    n_random=10,
    method="influence",
    random_state=None,
    n_jobs=None,
):
    """Refit without influential (and random) rows; compare with the prediction.

    The protocol of Koh & Liang (2017, Fig. 2): for the total loss over
    ``X_test`` (pass one row to reproduce the paper), predict the change caused
    by removing each training row, refit the model without each of the
    ``n_remove`` rows with the largest predicted effect and ``n_random`` random
    others, and compare. Earlier Pipeline steps stay fixed; only the final
    model is refitted, with its own settings (fit it to a tight ``tol`` for a
    clean comparison).

    Parameters
    ----------
    explainer : fitted InfluenceExplainer
    X_test, y_test : test rows and labels.
    n_remove : int, default=20
        Number of most influential rows (by absolute predicted change) removed.
    n_random : int, default=10
        Number of additional rows drawn at random among the others.
    method : {'influence', 'newton'}, default='influence'
        Passed to :meth:`InfluenceExplainer.loo_change`.
        For torch models, see :func:`skinfluence.torch.validate_loo` (used
        here): retraining starts from the fitted parameters.
    random_state : int, RandomState instance or None, default=None
    n_jobs : int, default=None
        Refits run in parallel through joblib.

    Returns
    -------
    LOOValidation

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence import InfluenceExplainer, validate_loo
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> model = LogisticRegression(C=0.1, tol=1e-10)
    >>> explainer = InfluenceExplainer(model).fit(X[:300], y[:300])
    >>> result = validate_loo(explainer, X[300:301], y[300:301], n_remove=10,
    ...                       n_random=0)
    >>> bool(result.pearson_r > 0.95)
    True
    """
    check_is_fitted(explainer)
    if getattr(explainer, "backend_", None) is not None:
        if method != "influence":
            raise ValueError(
                "For torch models validate_loo supports method='influence'."
            )
        from .torch import validate_loo as validate_torch_loo

        # Networks are retrained from the fitted parameters, as in the paper.
        return validate_torch_loo(
            explainer,
            X_test,
            y_test,
            n_remove=n_remove,
            n_random=n_random,
            random_state=random_state,
        )
    predicted = explainer.loo_change(X_test, y_test, method=method).sum(axis=0)
    X, y, _ = explainer.training_data()
    sw = explainer._sample_weight
    n = X.shape[0]
    top = np.argsort(-np.abs(predicted), kind="stable")[:n_remove]
    rest = np.setdiff1d(np.arange(n), top)
    rng = check_random_state(random_state)
    rand = rng.choice(rest, size=min(n_random, rest.size), replace=False)
    rows = np.concatenate([top, rand]).astype(int)

    _, model = split_model(explainer.estimator_)
    Xt, _, t_test = explainer._test_factors(X_test, y_test, "loss")
    base = explainer.objective_.loss(Xt, t_test).sum()
    # Refits see the final model's input (kernel models build their own map).
    Xt = explainer._features(explainer._validate_test_X(X_test))
    masks = []
    for i in rows:
        keep = np.ones(n, dtype=bool)
        keep[i] = False
        masks.append(keep)
    losses = Parallel(n_jobs=n_jobs)(
        delayed(_refit_loss)(model, X, y, sw, keep, Xt, t_test) for keep in masks
    )
    actual = np.asarray(losses) - base
    pred = predicted[rows]
    index = explainer._index
    table = pd.DataFrame(
        {
            "train_row": rows if index is None else np.asarray(index)[rows],
            "selection": ["top"] * len(top) + ["random"] * len(rand),
            "predicted": pred,
            "actual": actual,
        }
    )
    r = float(np.corrcoef(pred, actual)[0, 1]) if len(rows) > 1 else np.nan
    slope = float(np.polyfit(actual, pred, 1)[0]) if len(rows) > 1 else np.nan
    return LOOValidation(table, r, slope)
