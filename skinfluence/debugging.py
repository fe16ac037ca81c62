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
from sklearn.utils.validation import check_is_fitted

from .utils._checks import model_feature_names


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
        ``total_influence`` and
        ``removal_change`` (first-order change of the errors' total loss if
        the whole group were removed, :meth:`InfluenceExplainer.group_influence`;
        negative means removing it would reduce the errors' loss).
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


def _summed_influence(explainer, X_err, y_err):
    """``I_up,loss`` of the errors' total loss for every training row."""
    total = np.zeros(explainer.n_train_)
    for _, train_rows, block in explainer.influence_blocks(X_err, y_err):
        total[train_rows] += block.sum(axis=0)
    return total


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


def explain_errors(explainer, X_test, y_test, *, groups=None, errors=None, n_rows=10):
    """Aggregate influence on the wrong predictions over rows, groups, features.

    Parameters
    ----------
    explainer : fitted InfluenceExplainer
    X_test : array-like of shape (n_test, n_features)
    y_test : array-like of shape (n_test,)
    groups : array-like of shape (n_train,), default=None
        A subgroup label per training row (e.g. an age bracket); adds the
        ``groups`` table.
    errors : array-like of bool, shape (n_test,), default=None
        The test rows to explain; by default those a classifier predicts
        wrongly (required for regressors).
    n_rows : int, default=10
        Number of most influential training rows whose ``I_pert,loss`` is summed
        into the ``features`` table.

    Returns
    -------
    ErrorExplanation

    Notes
    -----
    ``I_pert,loss`` is per unit change of a feature: put the features on one
    scale (indicators, or a ``StandardScaler`` step) to compare them.

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
    """
    check_is_fitted(explainer)
    if not isinstance(n_rows, Integral) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}.")
    y_test = np.asarray(y_test)
    if errors is None:
        if not is_classifier(explainer):
            raise ValueError(
                "Pass errors= (a boolean mask of the test rows to explain) for a "
                "regressor; wrong predictions are defined for classifiers only."
            )
        errors = np.asarray(explainer.predict(X_test)) != y_test
    errors = np.asarray(errors, dtype=bool)
    if errors.shape != y_test.shape:
        raise ValueError(
            f"errors must be a boolean mask of shape {y_test.shape}, got "
            f"{errors.shape}."
        )
    pos = np.flatnonzero(errors)
    if pos.size == 0:
        raise ValueError("No test row to explain: the model makes no error here.")
    X_err = X_test.iloc[pos] if hasattr(X_test, "iloc") else X_test[pos]
    y_err = y_test[pos]

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
        labels = np.asarray(groups)
        change = explainer.group_influence(labels, X_err, y_err).sum(axis=0)
        rows.insert(2, "group", labels)
        by_group = rows.groupby("group", sort=True)
        table = (
            by_group["abs_influence"]
            .agg(n_rows="size", mean_abs_influence="mean")
            .join(
                by_group["influence"].agg(mean_influence="mean", total_influence="sum")
            )
            .assign(removal_change=change.to_numpy())
            .reset_index()
            .sort_values("mean_abs_influence", ascending=False, ignore_index=True)
        )
    rows = rows.sort_values("abs_influence", ascending=False, ignore_index=True)
    rows = rows.drop(columns="abs_influence")

    top = np.argsort(-np.abs(influence), kind="stable")[:n_rows]
    P = _summed_perturbation(explainer, X_err, y_err, top)
    features = pd.DataFrame(
        {
            "feature": model_feature_names(explainer, P.shape[1]),
            "magnitude": np.abs(P).sum(axis=0),
            "influence": P.sum(axis=0),
        }
    ).sort_values("magnitude", ascending=False, ignore_index=True)
    return ErrorExplanation(pos, rows, table, features)
