"""Which training rows, subgroups and features drive a model's errors.

Koh & Liang (2017, section 5.3) debug a domain mismatch: a subgroup whose
label rate in training differs from test. Influence on the wrongly predicted
test rows names the training rows responsible; ``I_pert,loss`` on those rows
names the features through which they act.
"""

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.utils import _safe_indexing

from .backends._base import check_test_labels
from .utils._checks import (
    check_explainer,
    model_feature_names,
    pandas_index,
    warn_if_misaligned,
)

_GROUP_METHODS = ("auto", "newton", "influence")


@dataclass
class ErrorExplanation:
    """What :func:`explain_errors` found.

    Attributes
    ----------
    errors : ndarray of shape (n_errors,)
        Positions (in ``X_test``) of the test rows explained.
    rows : pandas.DataFrame
        One row per training row, largest ``|influence|`` first (as the
        paper ranks them): ``train_row`` (index
        label of pandas input), ``label``, ``group`` (when groups were given),
        ``influence`` (``I_up,loss`` of the errors' total loss: positive means
        upweighting the row raises it) and ``share`` (of the total absolute
        influence).
    groups : pandas.DataFrame or None
        One row per group, the largest mean ``|influence|`` per row first:
        ``group``, ``n_rows``, ``mean_abs_influence``, ``mean_influence``,
        ``total_influence`` (the paper's first-order ``I_up,loss``, summed) and
        ``removal_change``: the predicted change of the errors' total loss if
        the whole group were removed (:meth:`InfluenceExplainer.group_influence`;
        negative means removing it would reduce the errors' loss), by one
        Newton step or to first order as ``groups.attrs['removal_change_method']``
        says (``'newton'`` or ``'influence'``; see :func:`explain_errors`).
    features : pandas.DataFrame
        One row per feature the final estimator sees, largest first:
        ``feature``, ``magnitude`` (sum over the ``n_rows`` most influential
        training rows of ``|I_pert,loss|`` of the errors' total loss) and
        ``influence`` (the same sum, signed: moving those rows up along the
        feature raises the errors' loss when positive).
    """

    errors: np.ndarray
    rows: pd.DataFrame
    groups: pd.DataFrame
    features: pd.DataFrame


def _check_params(n_rows, method):
    """Refuse an ``n_rows`` or ``method`` that explain_errors cannot use."""
    if isinstance(n_rows, bool) or not isinstance(n_rows, Integral) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}.")
    if method not in _GROUP_METHODS:
        raise ValueError(
            f"method must be one of {list(_GROUP_METHODS)}, got {method!r}."
        )


def _error_positions(explainer, X_test, y_test, errors):
    """``(positions of the test rows to explain, y_test as an array)``.

    Checks ``y_test`` and ``errors`` against ``X_test`` (one entry per row,
    paired by position; a pandas argument indexed otherwise than ``X_test``
    warns).
    """
    warn_if_misaligned(pandas_index(X_test), "X_test", errors=errors)
    n_test = explainer.validate_test_input(X_test, y_test).shape[0]
    y_test = check_test_labels(y_test, n_test)
    if errors is None:
        if not is_classifier(explainer):
            raise ValueError(
                "Pass errors= (a boolean mask of the test rows to explain) for a "
                "regressor; wrong predictions are defined for classifiers only."
            )
        errors = np.asarray(explainer.predict(X_test)) != y_test
    mask = np.asarray(errors)
    if mask.dtype != bool or mask.shape != (n_test,):
        raise ValueError(
            f"errors must be a boolean mask with one entry per row of X_test "
            f"({n_test}), got {type(errors).__name__} of dtype {mask.dtype} and "
            f"shape {mask.shape}. For test positions p pass "
            "np.isin(np.arange(len(X_test)), p)."
        )
    pos = np.flatnonzero(mask)
    if pos.size == 0:
        raise ValueError("No test row to explain: the model makes no error here.")
    return pos, y_test


def _check_group_labels(groups):
    """Refuse the list-of-rows form of ``groups`` (one label per row only)."""
    if isinstance(groups, (list, tuple)) and any(np.ndim(g) > 0 for g in groups):
        raise ValueError(
            "explain_errors takes groups as one label per training row; for a "
            "list of (possibly overlapping) groups of rows call "
            "explainer.group_influence(groups, X_test, y_test) on the errors."
        )


def _summed_influence(explainer, X_err, y_err):
    """``I_up,loss`` of the errors' total loss for every training row."""
    total = np.zeros(explainer.n_train_)
    for _, train_rows, block in explainer.influence_blocks(X_err, y_err):
        total[train_rows] += block.sum(axis=0)
    return total


def _removal_change(explainer, groups, X_err, y_err, method):
    """``(change of the errors' total loss per sorted group label, method)``.

    ``groups`` goes to :meth:`InfluenceExplainer.group_influence` as given, so
    that its checks and its index warning apply; ``'auto'`` becomes the
    backend's preferred method for the predicted removal change.
    """
    if method == "auto":
        method = explainer.backend_.preferred_loo_method("loss")
    change = explainer.group_influence(groups, X_err, y_err, method=method)
    return np.asarray(change).sum(axis=0), method


def _group_table(rows, change, method):
    """One row per group: sizes, the paper's influence and the removal change."""
    by_group = rows.groupby("group", sort=True)
    table = (
        by_group["abs_influence"]
        .agg(n_rows="size", mean_abs_influence="mean")
        .join(by_group["influence"].agg(mean_influence="mean", total_influence="sum"))
        .assign(removal_change=change)
        .reset_index()
        .sort_values("mean_abs_influence", ascending=False, ignore_index=True)
    )
    table.attrs["removal_change_method"] = method
    return table


def _summed_perturbation(explainer, X_err, y_err, rows):
    """``I_pert,loss`` of the errors' total loss for some training rows."""
    backend = explainer.backend_
    backend.require("perturbation", "explain_errors")
    X_err = explainer.validate_test_input(X_err)
    if backend.supports("training_problem"):
        return backend.perturbation_influence(
            X_err, y_err, train_rows=rows, sum_test=True
        )[0]
    return backend.perturbation_influence(X_err, y_err)[:, rows].sum(axis=0)


def _feature_table(explainer, X_err, y_err, influence, n_rows):
    """``I_pert,loss`` of the ``n_rows`` most influential rows, per feature."""
    top = np.argsort(-np.abs(influence), kind="stable")[:n_rows]
    P = _summed_perturbation(explainer, X_err, y_err, top)
    return pd.DataFrame(
        {
            "feature": model_feature_names(explainer, P.shape[1]),
            "magnitude": np.abs(P).sum(axis=0),
            "influence": P.sum(axis=0),
        }
    ).sort_values("magnitude", ascending=False, ignore_index=True)


def explain_errors(
    explainer, X_test, y_test, *, groups=None, errors=None, n_rows=10, method="auto"
):
    """Aggregate influence on the wrong predictions over rows, groups, features.

    Parameters
    ----------
    explainer : fitted InfluenceExplainer
    X_test : array-like of shape (n_test, n_features)
    y_test : array-like of shape (n_test,)
        Paired with ``X_test`` by position (a pandas ``y_test`` indexed
        otherwise warns).
    groups : array-like of shape (n_train,), default=None
        A subgroup label per training row (e.g. an age bracket); adds the
        ``groups`` table. Paired with the training rows by position, as in
        :meth:`InfluenceExplainer.group_influence`, which warns when a pandas
        ``groups`` is indexed otherwise than the training data.
    errors : array-like of bool of shape (n_test,), default=None
        The test rows to explain; by default those a classifier predicts
        wrongly (required for regressors).
    n_rows : int, default=10
        Number of most influential training rows whose ``I_pert,loss`` is summed
        into the ``features`` table (all of them when there are fewer).
    method : {'auto', 'newton', 'influence'}, default='auto'
        How ``groups.removal_change`` predicts removing a whole group (see
        :meth:`InfluenceExplainer.group_influence`). ``'newton'``: one Newton
        step on the objective without the group's rows, exact for least
        squares and ridge; ``'influence'``: the first-order sum of the rows'
        leave-one-out changes, which underestimates large coherent groups
        (Koh et al., 2019) and can even get the sign wrong, as for the
        subgroup of a domain mismatch. ``'auto'`` uses ``'newton'`` where the
        step is exact or cheap (linear-output models on the exact solver, up
        to 2000 parameters), else first order; the method used is in
        ``groups.attrs['removal_change_method']``. The ``influence`` columns
        stay the paper's first-order ``I_up,loss`` whatever the method.

    Returns
    -------
    ErrorExplanation

    Notes
    -----
    ``I_pert,loss`` is per unit change of a feature: put the features on one
    scale (indicators, or a ``StandardScaler`` step) to compare them.

    References
    ----------
    Koh, P. W. and Liang, P. (2017). Understanding Black-box Predictions via
    Influence Functions. ICML.

    Koh, P. W., Ang, K.-S., Teo, H. H. K. and Liang, P. (2019). On the
    Accuracy of Influence Functions for Measuring Group Effects. NeurIPS.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skinfluence import InfluenceExplainer, explain_errors
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> y[:15] = 1 - y[:15]  # 15 wrong labels
    >>> explainer = InfluenceExplainer(LogisticRegression()).fit(X[:200], y[:200])
    >>> result = explain_errors(explainer, X[200:], y[200:])
    >>> bool(set(result.rows.train_row[:10]) & set(range(15)))
    True
    >>> result.groups is None, list(result.features.columns)
    (True, ['feature', 'magnitude', 'influence'])
    >>> result = explain_errors(explainer, X[200:], y[200:], groups=X[:200, 0] > 0)
    >>> result.groups.attrs["removal_change_method"]
    'newton'
    """
    check_explainer(explainer, "explain_errors")
    _check_params(n_rows, method)
    pos, y_test = _error_positions(explainer, X_test, y_test, errors)
    X_err = _safe_indexing(X_test, pos)
    y_err = y_test[pos]
    if groups is not None:
        _check_group_labels(groups)
        change, used = _removal_change(explainer, groups, X_err, y_err, method)

    influence = _summed_influence(explainer, X_err, y_err)
    _, y_train, _ = explainer.training_data()
    index = explainer.train_index_
    rows = pd.DataFrame(
        {
            "train_row": np.arange(len(influence)) if index is None else index,
            "label": y_train,
            "influence": influence,
            "share": np.abs(influence) / max(np.abs(influence).sum(), 1e-300),
        }
    )
    rows["abs_influence"] = rows["influence"].abs()
    table = None
    if groups is not None:
        rows.insert(2, "group", np.asarray(groups))
        table = _group_table(rows, change, used)
    rows = rows.sort_values("abs_influence", ascending=False, ignore_index=True)
    rows = rows.drop(columns="abs_influence")
    features = _feature_table(explainer, X_err, y_err, influence, n_rows)
    return ErrorExplanation(pos, rows, table, features)
