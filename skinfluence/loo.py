"""Check influence against actual retraining (Koh & Liang's Figure 2)."""

import inspect
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .utils._checks import check_explainer
from .utils._progress import progress
from .utils._warn import caller_stacklevel


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
    method : str
        How the changes were predicted: 'influence' (first order) or
        'newton' (see :meth:`InfluenceExplainer.loo_change`).
    """

    table: pd.DataFrame
    pearson_r: float
    slope: float
    method: str = "influence"

    def __repr__(self):
        # The table is the detail; a notebook shows the summary.
        counts = self.table["selection"].value_counts()
        return (
            f"LOOValidation(n_removed={len(self.table)} (top {counts.get('top', 0)}"
            f", random {counts.get('random', 0)}), method={self.method!r}, "
            f"pearson_r={self.pearson_r:.4f}, slope={self.slope:.3f})"
        )


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
    refit_options=None,
    verbose=0,
):
    """Refit without influential (and random) rows; compare with the prediction.

    The protocol of Koh & Liang (2017, Fig. 2): for the total loss over
    ``X_test`` (pass one row to reproduce the paper), predict the change caused
    by removing each training row, refit the model without each of the
    ``n_remove`` rows with the largest predicted effect and ``n_random`` random
    others, and compare. Earlier Pipeline steps stay fixed; only the final
    model is refitted, with its own settings (fit it to a tight ``tol`` for a
    clean comparison); a ``LogisticRegressionCV`` or ``RidgeCV`` is refitted
    at the value it chose (``C_``, ``alpha_``), the objective explained, not
    searched again.

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
        Refits run in parallel through joblib (estimators refitted by
        scikit-learn).
    verbose : int, default=0
        1 shows progress over the refits (a tqdm bar when tqdm is installed).
    refit_options : dict, default=None
        Keyword arguments of the backend's refits: torch ``max_iter`` and
        ``tol`` of L-BFGS (see :func:`skinfluence.torch.validate_loo`); boosted
        trees ``fixed_structure`` (LeafRefit instead of retraining). Linear
        models and GLMs take none: each refit is the estimator's own
        (warm-started) fit, finished with Newton steps on its objective when
        the explained fit is at its optimum, so scikit-learn's ``tol`` does
        not stop it short of the change being measured.

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
    check_explainer(explainer, "validate_loo")
    _check_counts(n_remove, n_random)
    backend = explainer.backend_
    backend.require("refit", "validate_loo")
    # An array whatever set_output says: rows are positions from here on.
    predicted = np.asarray(explainer.loo_change(X_test, y_test, method=method))
    predicted = predicted.sum(axis=0)
    X_test = explainer.validate_test_input(X_test)
    n = backend.n_train_
    if n_remove > n:
        warnings.warn(
            f"n_remove={n_remove} exceeds the {n} training rows: removing each "
            "row once.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
        n_remove = n
    order = backend.loo_ranking(X_test, y_test, predicted)
    top = order[:n_remove]
    rest = np.setdiff1d(np.arange(n), top)
    rng = check_random_state(random_state)
    rand = rng.choice(rest, size=min(n_random, rest.size), replace=False)
    rows = np.concatenate([top, rand]).astype(int)
    removals = progress(
        [[i] for i in rows], desc="validate_loo refits", verbose=verbose
    )
    actual = backend.refit_test_losses(
        removals,
        X_test,
        y_test,
        n_jobs=n_jobs,
        **_check_refit_options(backend, refit_options),
    )
    pred = predicted[rows]
    index = explainer.train_index_
    table = pd.DataFrame(
        {
            "train_row": rows if index is None else np.asarray(index)[rows],
            "selection": ["top"] * len(top) + ["random"] * len(rand),
            "predicted": pred,
            "actual": actual,
        }
    )
    r, slope = agreement(pred, actual)
    if len(rows) > 1 and np.isnan(r):
        warnings.warn(
            "The predicted or the actual changes are all equal (a flat test "
            "loss?), so their correlation and slope are undefined (NaN). For "
            "hinge-type models pass test rows inside the margin.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    return LOOValidation(table, r, slope, method)


def _varies(values):
    """Whether ``values`` spread at a scale whose squares do not underflow:
    changes of about 1e-190 (a test row past a hinge's margin) are a flat
    loss's rounding, not a prediction to correlate."""
    scale = np.max(np.abs(values))
    return bool(np.ptp(values) > 0 and scale > np.sqrt(np.finfo(float).tiny))


def agreement(pred, actual):
    """Pearson R and least-squares slope of ``pred`` on ``actual``.

    Computed on both scaled to a largest magnitude of 1 (the slope scaled
    back); NaN for fewer than two values or when either does not vary.
    """
    pred, actual = np.asarray(pred, float), np.asarray(actual, float)
    if len(pred) < 2 or not (_varies(pred) and _varies(actual)):
        return np.nan, np.nan
    p_scale, a_scale = np.max(np.abs(pred)), np.max(np.abs(actual))
    p, a = pred / p_scale, actual / a_scale
    r = float(np.corrcoef(p, a)[0, 1])
    slope = float(np.polyfit(a, p, 1)[0]) * p_scale / a_scale
    return r, slope


def _check_counts(n_remove, n_random):
    """Raise unless both counts are non-negative integers, not both 0."""
    for name, value in (("n_remove", n_remove), ("n_random", n_random)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, numbers.Integral
        ):
            raise TypeError(f"{name} must be an integer, got {value!r}.")
        if value < 0:
            raise ValueError(
                f"{name} must be >= 0 (rows to refit without), got {value}."
            )
    if n_remove + n_random == 0:
        raise ValueError(
            "n_remove=0 and n_random=0 leave no row to refit without: pass "
            "n_remove (the most influential rows) and/or n_random (random "
            "ones), at least 2 in all for a correlation."
        )


def _check_refit_options(backend, options):
    """``options`` if the backend's refits take them; else a ValueError."""
    options = dict(options or {})
    taken = [
        name
        for name, p in inspect.signature(backend.refit_test_losses).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(taken))
    if unknown:
        raise ValueError(
            f"refit_options {unknown} are not options of the {backend.name} "
            f"backend's refits, which take "
            f"{taken if taken else 'none (pass refit_options=None)'}."
        )
    return options
