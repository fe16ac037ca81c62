"""Input checks and memory budgeting shared by the public estimators."""

import warnings

import numpy as np
import pandas as pd
from sklearn import get_config
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._warn import caller_stacklevel


def pandas_index(X):
    """The index of a pandas DataFrame or Series, else None (lists have .index)."""
    return X.index if hasattr(X, "iloc") else None


#: How the repeated-index warning begins (a caller that words its own
#: filters the explainer's by it).
REPEATED_INDEX = "X's index has repeated labels"


def warn_if_repeated(index, labelled):
    """Warn when X's index repeats labels; ``labelled``: what it labels."""
    if index is not None and not index.is_unique:
        warnings.warn(
            f"{REPEATED_INDEX}, so {labelled} do not identify rows uniquely; "
            "call X.reset_index(drop=True) first to get positions.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


def _plain(value):
    """A numpy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def warn_if_misaligned(index, x_name="X", **others):
    """Warn when a pandas argument's index differs from X's, ``index``.

    Rows are paired by position, as in scikit-learn; results are labelled by
    X's index, so a ``y`` (or weights, groups) indexed otherwise is silently
    paired with other rows than its labels say. ``index``: X's index (None
    when X is not pandas: nothing to compare), ``x_name`` its name in the
    message; ``others``: name -> value
    (None and non-pandas values are skipped, as are other lengths: the
    length checks name those).
    """
    if index is None:
        return
    for name, value in others.items():
        other = pandas_index(value)
        if other is None or len(other) != len(index) or other.equals(index):
            continue
        try:
            at = int(np.flatnonzero(np.asarray(other != index))[0])
        except (TypeError, ValueError):  # indexes that do not compare
            at = 0
        x_label, other_label = (_plain(i[at]) for i in (index, other))
        warnings.warn(
            f"The index of {name} differs from {x_name}'s: rows are paired by "
            f"position, as in scikit-learn, so {x_name}'s row labelled "
            f"{x_label!r} gets the value {name} labels {other_label!r}. To "
            f"pair them by label pass {name}.loc[{x_name}.index]; if position "
            f"is meant, pass {name}.to_numpy().",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


def as_fitted_input(fitted, X):
    """``X`` in the form ``fitted`` saw at fit time.

    A plain 2-D array becomes a DataFrame (a view, no copy) with the columns
    ``fitted.feature_names_in_`` when it has them, so that scikit-learn's
    feature-name check passes; anything else is returned as it is.
    """
    names = getattr(fitted, "feature_names_in_", None)
    if names is None or not isinstance(X, np.ndarray) or X.ndim != 2:
        return X
    if X.shape[1] != len(names):
        return X  # the model's own check names the mismatch
    return pd.DataFrame(X, columns=names, copy=False)


def check_frozen_is_fitted(estimator):
    """Raise NotFittedError, naming the fix, if a FrozenEstimator (the
    estimator or a Pipeline's last step) holds an unfitted model."""
    frozen = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if not isinstance(frozen, FrozenEstimator):
        return
    name = type(frozen.estimator).__name__
    check_is_fitted(
        frozen.estimator,
        msg=(
            f"The {name} inside FrozenEstimator is not fitted: FrozenEstimator "
            "explains a model as it was fitted and never fits it. Fit it first, "
            "FrozenEstimator(model.fit(X, y)), or pass the unfitted model "
            "itself and the explainer fits a copy."
        ),
    )


def is_frozen(estimator):
    """Whether the explained model was fitted before (FrozenEstimator anywhere)."""
    if isinstance(estimator, FrozenEstimator):
        return True
    if isinstance(estimator, Pipeline):
        return isinstance(estimator.steps[-1][1], FrozenEstimator)
    return False


def split_model(estimator):
    """``(feature_map, model)`` of a fitted estimator, unwrapping Pipelines.

    ``feature_map`` is the fitted Pipeline prefix (earlier steps, applied as a
    fixed transformation) or None; ``model`` is the estimator whose objective
    is differentiated.
    """
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    if isinstance(estimator, BaseSearchCV):
        # A fitted search is explained through the model it refitted on all
        # the data; an unfitted one is checked through the model it tunes.
        if hasattr(estimator, "cv_results_") and not hasattr(
            estimator, "best_estimator_"
        ):
            raise ValueError(
                f"{type(estimator).__name__}(refit=False) keeps no model fitted "
                "on all the data; use refit=True, or explain "
                "estimator.set_params(**search.best_params_) fitted yourself."
            )
        estimator = getattr(estimator, "best_estimator_", estimator.estimator)
    if isinstance(estimator, Pipeline):
        prefix = estimator[:-1] if len(estimator.steps) > 1 else None
        model = estimator.steps[-1][1]
        if isinstance(model, FrozenEstimator):
            model = model.estimator
        return prefix, model
    return None, estimator


def fit_params_for(estimator, sample_weight):
    """``fit`` keyword arguments routing sample_weight to the final model.

    With scikit-learn's metadata routing enabled, a Pipeline takes
    ``sample_weight`` itself and passes it to the steps that request it:
    the final step's request is then set to True and earlier steps' unset
    requests to False, on ``estimator`` itself (pass a clone you own). A
    request the user set explicitly is kept.
    """
    if sample_weight is None:
        return {}
    inner = estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator
    if not isinstance(inner, Pipeline):
        return {"sample_weight": sample_weight}
    if not get_config().get("enable_metadata_routing", False):
        return {f"{inner.steps[-1][0]}__sample_weight": sample_weight}
    steps = [step for _, step in inner.steps if step not in (None, "passthrough")]
    for position, step in enumerate(steps):
        final = position == len(steps) - 1
        _request_sample_weight(step, True if final else False)
    return {"sample_weight": sample_weight}


def _request_sample_weight(step, requested):
    """Set ``step``'s fit request for sample_weight unless the user set it."""
    if not hasattr(step, "set_fit_request"):
        return
    current = step.get_metadata_routing().fit.requests.get("sample_weight")
    if current is None:  # unset: an explicit True or False is the user's
        step.set_fit_request(sample_weight=requested)


def train_positions(rows, index, n, what="train_rows"):
    """Positions of the training rows ``rows``, given as the tables give them.

    With a pandas index on the training data (``index``), ``rows`` are its
    labels, as ``top_influential`` reports them in ``train_row``; otherwise
    positions in ``[0, n)``. A boolean mask of length ``n`` is positional.
    """
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise ValueError(
                f"{what} as a boolean mask must have one entry per training "
                f"row ({n}), got shape {rows.shape}."
            )
        return np.flatnonzero(rows)
    if rows.ndim != 1:
        raise ValueError(
            f"{what} must be a 1-d array of rows or a boolean mask, got shape "
            f"{rows.shape}."
        )
    if index is None:
        if rows.size and not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(
                f"{what} must hold row positions (the training data had no "
                f"index) or a boolean mask; got an array of dtype {rows.dtype}."
            )
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            bad = rows[(rows < 0) | (rows >= n)][:5].tolist()
            raise ValueError(
                f"The rows of {what} are positions (the training data had no "
                f"index) and must lie in [0, {n}); got {bad}."
            )
        return rows.astype(np.intp)
    if not index.is_unique:
        raise ValueError(
            f"The rows of {what} are read as index labels of the training "
            "data, but its "
            "index repeats labels; fit on X.reset_index(drop=True) (and y) to "
            "name rows by position."
        )
    positions = index.get_indexer(rows)
    if np.any(positions < 0):
        bad = rows[positions < 0][:5].tolist()
        raise ValueError(
            f"The rows of {what} are read as index labels of the training data "
            f"(as top_influential reports them in train_row); {bad} are not in "
            "its index. For positions p pass X_train.index[p]."
        )
    return positions


def check_groups(groups, n, index=None):
    """``(list of row positions, labels or None)`` from the ``groups`` argument.

    A list of groups holds index labels of the training rows when they had a
    pandas ``index`` (:func:`train_positions`), else positions.
    """
    if isinstance(groups, (list, tuple)) and any(np.ndim(g) > 0 for g in groups):
        rows = []
        for k, g in enumerate(groups):
            rows.append(np.unique(train_positions(g, index, n, f"groups[{k}]")))
        _refuse_whole_groups(rows, n)
        return rows, None
    labels = np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(
            f"groups must hold one label per training row ({n}) or be a list of "
            f"arrays of rows; got shape {labels.shape}."
        )
    missing = [i for i, v in enumerate(labels.tolist()) if v is None or v != v]
    if missing:
        raise ValueError(
            f"groups holds missing labels (None or NaN) at training rows "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}: give every row "
            "a group, e.g. groups.fillna('unknown')."
        )
    names, codes = np.unique(labels, return_inverse=True)
    rows = [np.flatnonzero(codes == c) for c in range(len(names))]
    _refuse_whole_groups(rows, n, names)
    return rows, names


def _refuse_whole_groups(rows, n, names=None):
    """A group of every training row leaves no model to predict with."""
    whole = [i for i, r in enumerate(rows) if len(r) == n]
    if whole:
        name = whole[0] if names is None else names.tolist()[whole[0]]
        raise ValueError(
            f"Group {name!r} holds all {n} training rows: without them there "
            "is no model, so its change is undefined. Pass groups that leave "
            "rows to fit."
        )


def model_feature_names(explainer, n_features):
    """Names of the features the final model sees (after any Pipeline prefix).

    The prefix's ``get_feature_names_out`` or the input's column names, else
    ``x0, x1, ...``.
    """
    prefix, _ = split_model(explainer.estimator_)
    names = getattr(explainer, "feature_names_in_", None)
    if prefix is not None:
        try:
            names = prefix.get_feature_names_out()
        except (AttributeError, ValueError, TypeError):
            names = None
    if names is None or len(names) != n_features:
        names = [f"x{j}" for j in range(n_features)]
    return np.asarray(names, dtype=object)


def check_explainer(explainer, what):
    """Refuse anything but a fitted explainer, naming how to make one."""
    if not hasattr(explainer, "validate_test_input"):
        raise TypeError(
            f"{what} takes a fitted InfluenceExplainer, got "
            f"{type(explainer).__name__}. Wrap the model first: "
            f"{what}(InfluenceExplainer(model).fit(X, y), X_test, y_test)."
        )
    check_is_fitted(explainer)
