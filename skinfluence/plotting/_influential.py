"""The most helpful and harmful training rows for one test row."""

import math

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples, check_is_fitted

from ..utils._checks import model_feature_names, pandas_index, train_positions
from ._base import check_matplotlib, compact_ticks, merged, new_axes

_COLOURS = {"helpful": "tab:blue", "harmful": "tab:red"}

_QUANTITIES = {
    "loss": "the test loss",
    "decision_function": "the decision function",
    "predict_proba": "the predicted probability",
    "predict": "the prediction",
}
_SCORES = {
    "theta_relatif": "theta-RelatIF",
    "l_relatif": "L-RelatIF",
}


def _short(value):
    """A label or prediction as the title shows it: 4 digits for real numbers."""
    if np.ndim(value) > 0:  # a multi-output prediction
        return ", ".join(_short(v) for v in np.ravel(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _dense_rows(X):
    """A float ndarray of rows, from dense, sparse or pandas input."""
    if sp.issparse(X):
        X = X.toarray()
    if hasattr(X, "to_numpy"):  # pandas, nullable dtypes included
        X = X.to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(X, dtype=float).reshape(_num_samples(X), -1)


def _drawable(X):
    """Whether the rows of ``X`` are numbers (no strings, no mixed objects)."""
    if sp.issparse(X):
        return X.dtype.kind in "biuf"
    if hasattr(X, "dtypes") and not hasattr(X, "dtype"):  # a DataFrame
        return all(pd.api.types.is_numeric_dtype(d) for d in X.dtypes)
    if hasattr(X, "dtype"):
        return pd.api.types.is_numeric_dtype(X.dtype)
    return np.asarray(X).dtype.kind in "biuf"


def _check_rows_to_draw(X_train, n_train):
    """Refuse a user's ``X_train`` of another length, or holding non-numbers."""
    if _num_samples(X_train) != n_train:
        raise ValueError(
            f"X_train has {_num_samples(X_train)} rows but the explainer was "
            f"fitted on {n_train}."
        )
    if not _drawable(X_train):
        dtypes = getattr(X_train, "dtypes", None)
        if dtypes is None or hasattr(X_train, "dtype"):
            named = ""
        else:
            named = [
                c for c, d in dtypes.items() if not pd.api.types.is_numeric_dtype(d)
            ]
            named = f" ({', '.join(map(str, named))})"
        raise ValueError(
            f"X_train holds columns that are not numbers{named}, and the rows "
            "are drawn as numbers. Leave X_train=None: the rows are then drawn "
            "as the final model sees them (encoded), with its feature names."
        )


def _same_columns(X_test, columns):
    """The test row in the user's ``X_train`` columns, when both are frames."""
    if columns is not None and hasattr(X_test, "columns"):
        if set(columns) <= set(X_test.columns):
            return X_test[list(columns)]
    if not _drawable(X_test):
        raise ValueError(
            "X_test holds columns that are not numbers, and X_train does not "
            "say which to draw: pass X_train as a DataFrame of the columns to "
            "draw, or leave X_train=None."
        )
    return X_test


def _rows_to_draw(explainer, X_test):
    """``(training rows, test rows, feature names)`` the way to show them.

    The rows ``fit`` received and ``X_test`` as passed (before any Pipeline
    prefix: raw pixels, not standardized ones), unless they hold strings or
    mixed types; then the final model's input, with its feature names.
    """
    X_input = explainer.training_input()
    if _drawable(X_input) and _drawable(X_test):
        names = getattr(explainer, "feature_names_in_", None)
        return X_input, X_test, names
    X_model = explainer.training_data()[0]
    names = model_feature_names(explainer, X_model.shape[1])
    return X_model, explainer.model_input(X_test), names


def _image_shape(image_shape, n_features):
    """The (height, width) to draw rows as, or None for bars."""
    if image_shape is None:
        return None
    if isinstance(image_shape, str):
        if image_shape != "auto":
            raise ValueError(
                f"image_shape must be None, 'auto' or a tuple, got {image_shape!r}."
            )
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"image_shape='auto' needs a square number of features; got "
                f"{n_features}. Pass image_shape=(height, width) or None for bars."
            )
        return (side, side)
    shape = tuple(int(s) for s in image_shape)
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"image_shape={shape} holds {int(np.prod(shape))} values, but the "
            f"rows have {n_features} features."
        )
    return shape


class InfluentialExamplesDisplay:
    """The k most helpful and k most harmful training rows for one test row.

    Rows that are images (``image_shape``) are drawn as images: the test row
    on the left, the most helpful rows on the top line and the most harmful
    below, each titled with its index, label and score. Other rows become a
    horizontal bar chart of their scores. The rows are shown as ``fit``
    received them (before any Pipeline prefix), so a digit stays a digit when
    the model sees standardized pixels. Create it with
    :meth:`from_estimator` or :meth:`from_predictions`; all parameters are
    stored as attributes.

    Parameters
    ----------
    table : pandas.DataFrame
        One test row's part of :meth:`~skinfluence.InfluenceExplainer.top_influential`:
        columns ``kind`` ('helpful'/'harmful'), ``rank``, ``train_row``,
        ``score`` and ``label``.
    rows : ndarray of shape (len(table), n_features), default=None
        The training rows of ``table``, in its order (needed for images).
    test_row : ndarray of shape (n_features,), default=None
        The explained test row (drawn beside the images).
    test_label : object, default=None
        Its label.
    test_prediction : object, default=None
        The model's prediction for it (the class, or a regressor's value).
    test_name : object, default=None
        Its name in the title, e.g. its DataFrame index label.
    feature_names : ndarray of str of shape (n_features,), default=None
        Names of the columns of ``rows`` and ``test_row``.

    Attributes
    ----------
    bars_ : matplotlib BarContainer
        Bar mode: one bar per row of ``table``, in its order; the widths are
        the scores.
    axes_ : ndarray of matplotlib Axes of shape (2, k)
        Image mode: row 0 the most helpful rows, row 1 the most harmful, by
        rank (drawn ``n_cols`` a line, wrapping onto further lines).
    images_ : ndarray of matplotlib AxesImage of shape (2, k)
        Image mode: the images drawn in ``axes_``.
    test_ax_, test_image_ : matplotlib Axes, AxesImage
        Image mode: the test row.
    ax_ : matplotlib Axes
        The Axes drawn on; in image mode it bounds the grid and is hidden.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.plotting import InfluentialExamplesDisplay
    >>> X, y = load_digits(n_class=2, return_X_y=True)
    >>> model = LogisticRegression(C=0.1, tol=1e-8, max_iter=1000)
    >>> explainer = InfluenceExplainer(model).fit(X[:200], y[:200])
    >>> display = InfluentialExamplesDisplay.from_estimator(
    ...     explainer, X[[300]], y[[300]], k=3, image_shape=(8, 8))
    >>> display.images_.shape
    (2, 3)
    """

    def __init__(
        self,
        *,
        table,
        rows=None,
        test_row=None,
        test_label=None,
        test_prediction=None,
        test_name=None,
        feature_names=None,
    ):
        self.table = table
        self.rows = rows
        self.test_row = test_row
        self.test_label = test_label
        self.test_prediction = test_prediction
        self.test_name = test_name
        self.feature_names = feature_names

    def plot(self, ax=None, *, image_shape=None, n_cols=10, **kwargs):
        """Draw the rows as images (``image_shape``) or their scores as bars.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on (image mode: the area holding the grid); a new
            figure when None.
        image_shape : tuple of int, 'auto' or None, default=None
            Reshape each row to this (height, width) and draw images; 'auto'
            takes a square shape (the feature count must be a square). None
            draws bars.
        n_cols : int, default=10
            Image mode: at most this many images a line; with more (k > 10),
            the helpful and the harmful rows each wrap onto further lines of
            equal length, in rank order, so the images and their captions
            keep their size.
        **kwargs : dict
            Passed to ``ax.imshow`` (image mode, e.g. ``cmap``) or ``ax.barh``.

        Returns
        -------
        display : InfluentialExamplesDisplay
        """
        check_matplotlib(f"{type(self).__name__}.plot")
        shape = None
        if image_shape is not None:
            if self.rows is None:
                raise ValueError("Drawing images needs the training rows (rows=).")
            shape = _image_shape(image_shape, np.asarray(self.rows).shape[-1])
        if shape is None:
            return self._plot_bars(ax, kwargs)
        if not isinstance(n_cols, (int, np.integer)) or n_cols < 1:
            raise ValueError(f"n_cols must be a positive int, got {n_cols!r}.")
        return self._plot_images(ax, shape, int(n_cols), kwargs)

    def _title(self):
        parts = []
        if self.test_label is not None:
            parts.append(f"label {_short(self.test_label)}")
        if self.test_prediction is not None:
            parts.append(f"predicted {_short(self.test_prediction)}")
        name = "test row" if self.test_name is None else f"test row {self.test_name}"
        return name + (f": {', '.join(parts)}" if parts else "")

    def _ranking(self):
        """``(method, quantity)`` the table was ranked by (its ``attrs``)."""
        attrs = getattr(self.table, "attrs", {})
        target = attrs.get("target", "loss")
        return attrs.get("method", "influence"), _QUANTITIES.get(target, target)

    def _side_label(self, kind):
        method, _ = self._ranking()
        if method == "divine":  # greedy order, not by size
            return f"{kind}, diverse\n(in the order chosen)"
        if method in _SCORES:
            return f"most {kind}\n({_SCORES[method]})"
        return f"most {kind}"

    def _plot_bars(self, ax, kwargs):
        from matplotlib.patches import Patch

        table = self.table
        k = len(table)
        ax = new_axes(ax, figsize=(6.0, 0.32 * k + 1.4))
        order = np.argsort(np.argsort(table["score"].to_numpy(), kind="stable"))
        colours = [_COLOURS.get(kind, "C0") for kind in table["kind"]]
        style = merged({"color": colours, "height": 0.7}, kwargs)
        self.bars_ = ax.barh(order, table["score"].to_numpy(), **style)
        labels = [
            f"row {row} (label {_short(label)})"
            for row, label in zip(table["train_row"], table["label"])
        ]
        ax.set_yticks(order, labels, fontsize=8)
        ax.axvline(0, color="k", lw=0.8)
        compact_ticks(ax, "x")
        method, quantity = self._ranking()
        score = _SCORES.get(method, "influence")
        ax.set(
            xlabel=f"{score} on {quantity}\n< 0 helpful, > 0 harmful "
            "(upweighting the row raises it)",
            title=f"Training rows that moved {quantity} most"
            + (" (diverse, DIVINE)" if method == "divine" else "")
            + f"\n{self._title()}",
        )
        ax.legend(
            handles=[Patch(color=c, label=kind) for kind, c in _COLOURS.items()],
            fontsize=8,
            loc="lower right",
        )
        ax.grid(axis="x", alpha=0.3)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    def _plot_images(self, ax, shape, n_cols, kwargs):
        table = self.table.reset_index(drop=True)
        kinds = ("helpful", "harmful")
        k = int(max((table["kind"] == kind).sum() for kind in kinds))
        lines = max(1, math.ceil(k / n_cols))  # lines of images for each kind
        cols = max(1, math.ceil(k / lines))  # balanced: 12 is two lines of 6
        ax = new_axes(ax, figsize=(1.45 * (cols + 1) + 0.4, 0.3 + 1.8 * 2 * lines))
        ax.set_axis_off()
        # The test row apart on the left, leaving room for the rows' labels;
        # the helpful rows above the harmful ones, each kind in rank order.
        outer = ax.get_subplotspec().subgridspec(
            1, 2, width_ratios=[1, cols], wspace=0.5 / (cols + 1)
        )
        # One grid for both kinds, a thin empty line between them.
        grid = outer[0, 1].subgridspec(
            2 * lines + 1,
            cols,
            height_ratios=[1] * lines + [0.2] + [1] * lines,
            wspace=0.15,
            hspace=0.25,
        )
        fig = ax.figure
        style = self._image_style(kwargs)
        self._draw_test_row(fig.add_subplot(outer[0, 0]), shape, style)

        rows = np.asarray(self.rows, dtype=float)
        self.axes_ = np.empty((2, k), dtype=object)
        self.images_ = np.empty((2, k), dtype=object)
        for i, kind in enumerate(kinds):
            part = table[table["kind"] == kind].sort_values("rank")
            for j, (pos, entry) in enumerate(part.iterrows()):
                sub = fig.add_subplot(grid[i * (lines + 1) + j // cols, j % cols])
                self.images_[i, j] = sub.imshow(rows[pos].reshape(shape), **style)
                sub.set_title(
                    f"row {entry['train_row']}\nlabel {_short(entry['label'])}\n"
                    f"{entry['score']:+.3g}",
                    fontsize=8,
                    color=_COLOURS[kind],
                )
                sub.set_xticks([])
                sub.set_yticks([])
                for spine in sub.spines.values():
                    spine.set_color(_COLOURS[kind])
                self.axes_[i, j] = sub
            if self.axes_[i, 0] is not None:
                self.axes_[i, 0].set_ylabel(self._side_label(kind), fontsize=9)
        self.ax_ = ax
        self.figure_ = fig
        return self

    def _image_style(self, kwargs):
        """``imshow``'s style: one grey scale over the test and training rows."""
        rows = np.asarray(self.rows, dtype=float)
        values = [rows] if self.test_row is None else [rows, self.test_row]
        lo = min(np.nanmin(v) for v in values)
        hi = max(np.nanmax(v) for v in values)
        return merged(
            {"cmap": "gray_r", "vmin": lo, "vmax": hi, "interpolation": "nearest"},
            kwargs,
        )

    def _draw_test_row(self, test_ax, shape, style):
        self.test_ax_ = test_ax
        self.test_image_ = None
        if self.test_row is None:
            test_ax.set_axis_off()
            return
        test = np.asarray(self.test_row, dtype=float).reshape(shape)
        self.test_image_ = test_ax.imshow(test, **style)
        test_ax.set_title(self._title().replace(": ", ":\n"), fontsize=8)
        test_ax.set_xticks([])
        test_ax.set_yticks([])

    @classmethod
    def from_estimator(
        cls,
        explainer,
        X_test,
        y_test=None,
        *,
        k=5,
        method="influence",
        target="loss",
        X_train=None,
        influence_kwargs=None,
        image_shape=None,
        ax=None,
        **kwargs,
    ):
        """Rank the training rows for one test row, then plot.

        Parameters
        ----------
        explainer : fitted InfluenceExplainer
        X_test : array-like of shape (1, n_features)
            One test row (``X[[i]]`` or ``X.iloc[[i]]``).
        y_test : array-like of shape (1,), default=None
        k, method, target
            Passed to :meth:`~skinfluence.InfluenceExplainer.top_influential`.
        X_train : array-like of shape (n_train, n_features), default=None
            The training rows to draw, numbers only (``X_test`` is then
            drawn in its columns when both are DataFrames, else as given),
            e.g. another view of the same rows or their numeric columns.
            None: the rows ``fit`` received
            (:meth:`~skinfluence.InfluenceExplainer.training_input`, before any Pipeline
            prefix: raw pixels, not standardized ones) and ``X_test`` as
            passed; when those hold strings or mixed types, the final model's
            input (``X_test`` transformed likewise) and its feature names.
        influence_kwargs : dict, default=None
            Further arguments of ``top_influential``.
        image_shape, ax, **kwargs
            Passed to :meth:`plot` (``n_cols=`` among them).

        Returns
        -------
        display : InfluentialExamplesDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_estimator")
        check_is_fitted(explainer)
        if _num_samples(X_test) != 1:
            raise ValueError(
                f"{cls.__name__} explains one test row; X_test has "
                f"{_num_samples(X_test)} rows. Pass X_test[[i]] (or "
                "X_test.iloc[[i]])."
            )
        if X_train is not None:
            _check_rows_to_draw(X_train, explainer.n_train_)
        table = explainer.top_influential(
            X_test,
            y_test,
            k=k,
            method=method,
            target=target,
            **(influence_kwargs or {}),
        )
        positions = train_positions(
            table["train_row"], explainer.train_index_, explainer.backend_.n_train_
        )
        if X_train is None:
            X_train, test_row, names = _rows_to_draw(explainer, X_test)
        else:
            names = getattr(X_train, "columns", None)
            test_row = _same_columns(X_test, names)
        label = None if y_test is None else np.asarray(y_test).ravel()[0]
        prediction = None
        if hasattr(explainer, "predict"):  # a class, or a regressor's value
            prediction = explainer.predict(X_test)[0]
        index = pandas_index(X_test)
        display = cls(
            table=table.drop(columns="test_row"),
            rows=_dense_rows(_safe_indexing(X_train, positions)),
            test_row=_dense_rows(test_row)[0],
            test_label=label,
            test_prediction=prediction,
            test_name=None if index is None else index[0],
            feature_names=None if names is None else np.asarray(names, dtype=object),
        )
        return display.plot(ax=ax, image_shape=image_shape, **kwargs)

    @classmethod
    def from_predictions(
        cls,
        table,
        rows=None,
        *,
        test_row=None,
        test_label=None,
        test_prediction=None,
        test_name=None,
        image_shape=None,
        ax=None,
        **kwargs,
    ):
        """Plot a precomputed top-k table (one test row's).

        Parameters
        ----------
        table : pandas.DataFrame
            From :meth:`~skinfluence.InfluenceExplainer.top_influential` for
            one test row (columns ``kind``, ``rank``, ``train_row``, ``score``,
            ``label``).
        rows : array-like of shape (len(table), n_features), default=None
            The training rows of ``table``, in its order (for images).
        test_row : array-like of shape (n_features,), default=None
        test_label, test_prediction : object, default=None
            The test row's label and the model's prediction for it (shown in
            the title).
        test_name : object, default=None
            The test row's name in the title (e.g. its index label).
        image_shape, ax, **kwargs
            Passed to :meth:`plot` (``n_cols=`` among them).

        Returns
        -------
        display : InfluentialExamplesDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_predictions")
        missing = {"kind", "rank", "train_row", "score", "label"} - set(table.columns)
        if missing:
            raise ValueError(f"table lacks the columns {sorted(missing)}.")
        if "test_row" in table.columns and table["test_row"].nunique() > 1:
            raise ValueError(
                "table holds several test rows; select one, e.g. "
                "table[table.test_row == i]."
            )
        names = getattr(rows, "columns", None)
        if rows is not None:
            rows = _dense_rows(rows)
            if len(rows) != len(table):
                raise ValueError(
                    f"rows has {len(rows)} rows but table has {len(table)}."
                )
        display = cls(
            table=table.drop(columns="test_row", errors="ignore").reset_index(
                drop=True
            ),
            rows=rows,
            test_row=None if test_row is None else _dense_rows(test_row).ravel(),
            test_label=test_label,
            test_prediction=test_prediction,
            test_name=test_name,
            feature_names=None if names is None else np.asarray(names, dtype=object),
        )
        return display.plot(ax=ax, image_shape=image_shape, **kwargs)
