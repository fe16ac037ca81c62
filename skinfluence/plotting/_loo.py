"""Predicted vs actual leave-one-out change (Koh & Liang, 2017, Figure 2)."""

import numpy as np
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ..loo import agreement as _agreement
from ._base import check_matplotlib, compact_ticks, merged, new_axes

_SELECTION_LABELS = {
    "top": "largest predicted effect",
    "random": "random rows",
}


# What a plot leaves on its Axes, so that a later plot there finds it: the
# y = x line, the points, and for the legend an empty line per entry (the
# heading: name and statistics, without a marker; one per selection).
_IDENTITY = "skinfluence.loo.identity"
_SCATTER = "skinfluence.loo.points"
_HEADER = "skinfluence.loo.heading"
_ENTRY = "skinfluence.loo.selection"
_MARKERS = ("o", "s", "^", "D", "v", "P")


def _proxy(label, gid, **style):
    """An empty line that stands for ``label`` in the legend."""
    from matplotlib.lines import Line2D

    return Line2D([], [], label=label, gid=gid, **style)


def _colours_used(ax):
    """How many colours of the cycle the plots already on ``ax`` took."""
    entries = sum(line.get_gid() == _ENTRY for line in ax.lines)
    plain = sum(
        c.get_gid() == _SCATTER and not c.get_label().startswith("_")
        for c in ax.collections
    )
    return entries + plain


def _selection_entries(ax, selection, first, marker):
    """A colour per way of choosing the rows (from ``C{first}`` on), one legend
    entry each; returns the points' colours."""
    kinds = list(dict.fromkeys(selection.tolist()))
    colour = {kind: f"C{first + i}" for i, kind in enumerate(kinds)}
    for kind in kinds:
        count = int((selection == kind).sum())
        label = f"{_SELECTION_LABELS.get(kind, kind)} ({count})"
        ax.add_line(_proxy(label, _ENTRY, color=colour[kind], ls="", marker=marker))
    return [colour[s] for s in selection]


def _identity_line(ax, pred, act, line_kwargs):
    """The ``y = x`` line over the data: drawn once, stretched by later plots."""
    lo = min(pred.min(), act.min())
    hi = max(pred.max(), act.max())
    line = next((a for a in ax.lines if a.get_gid() == _IDENTITY), None)
    if line is None:
        style = merged({"color": "k", "lw": 1, "ls": "--", "zorder": 1}, line_kwargs)
        return ax.plot([lo, hi], [lo, hi], label="y = x", gid=_IDENTITY, **style)[0]
    xs = line.get_xdata()
    lo, hi = min(lo, xs[0]), max(hi, xs[-1])
    line.set_data([lo, hi], [lo, hi])
    if line_kwargs:
        line.set(**line_kwargs)
    ax.update_datalim([(lo, lo), (hi, hi)])
    ax.autoscale_view()
    return line


def _legend(ax, identity, title):
    """Every plot's entries on ``ax``, in drawing order, ``y = x`` last.

    With one plot, its heading is the legend's title; with several, each
    heading (in bold) stands above its plot's entries.
    """
    handles, labels = ax.get_legend_handles_labels()
    rest = [(h, t) for h, t in zip(handles, labels) if h is not identity]
    if identity.get_label() in labels:
        rest.append((identity, identity.get_label()))
    headings = [h for h, _ in rest if h.get_gid() == _HEADER]
    if len(headings) == 1:
        rest = [(h, t) for h, t in rest if h.get_gid() != _HEADER]
    else:
        title = None
    legend = ax.legend(
        handles=[h for h, _ in rest],
        labels=[t for _, t in rest],
        title=title,
        loc="upper left",
        fontsize=8,
        title_fontsize=8,
    )
    for (handle, _), text in zip(rest, legend.get_texts()):
        if handle.get_gid() == _HEADER:
            text.set_fontweight("bold")
    return legend


class LOOAgreementDisplay:
    """Predicted against actual change of the test loss when a row is removed.

    The check of Koh & Liang (2017, Figure 2): each point is one removed
    training row, its actual change of the test loss (refitting without it) on
    the x axis and the influence function's prediction on the y axis. Points
    on the dashed ``y = x`` line are predicted exactly. Create it with
    :meth:`from_estimator` (runs :func:`skinfluence.validate_loo`) or
    :meth:`from_predictions`; all parameters are stored as attributes.

    Parameters
    ----------
    predicted : ndarray of shape (n_removed,)
        Predicted change of the test loss for each removed row.
    actual : ndarray of shape (n_removed,)
        Actual change, from refitting without the row.
    selection : ndarray of shape (n_removed,), default=None
        How each row was chosen (e.g. 'top' or 'random'); one colour each.
    train_row : ndarray of shape (n_removed,), default=None
        The removed rows' index labels.
    pearson_r : float, default=None
        Pearson correlation of ``predicted`` and ``actual``.
    slope : float, default=None
        Least-squares slope of ``predicted`` against ``actual``.
    name : str, default=None
        Shown in the legend: its title, or with several plots on one Axes
        the heading of this one's entries (e.g. the method).

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The points, at ``(actual, predicted)``.
    line_ : matplotlib Line2D
        The ``y = x`` line, spanning the data (of every plot on the Axes:
        a later plot on the same Axes stretches the line, not a new one).
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    skinfluence.validate_loo : The refits behind the plot.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.plotting import LOOAgreementDisplay
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> explainer = InfluenceExplainer(LogisticRegression(C=0.1, tol=1e-10))
    >>> explainer = explainer.fit(X[:300], y[:300])
    >>> display = LOOAgreementDisplay.from_estimator(
    ...     explainer, X[300:301], y[300:301], n_remove=8, n_random=2,
    ...     random_state=0)
    >>> display.scatter_.get_offsets().shape
    (10, 2)
    >>> bool(display.pearson_r > 0.95)
    True
    """

    def __init__(
        self,
        *,
        predicted,
        actual,
        selection=None,
        train_row=None,
        pearson_r=None,
        slope=None,
        name=None,
    ):
        self.predicted = predicted
        self.actual = actual
        self.selection = selection
        self.train_row = train_row
        self.pearson_r = pearson_r
        self.slope = slope
        self.name = name

    def plot(self, ax=None, *, name=None, line_kwargs=None, **kwargs):
        """Draw the points and the ``y = x`` line.

        Called again with the Axes of an earlier plot (another method, or
        another model), it adds its points in their own colours and marker
        and its own legend entries (its name, Pearson R and slope), keeps
        the earlier ones, and stretches the one ``y = x`` line over both.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        name : str, default=None
            Overrides the stored ``name``: the legend's title, or the heading
            of these points' entries when the Axes holds several plots.
        line_kwargs : dict, default=None
            Passed to ``ax.plot`` for the ``y = x`` line (or to ``set`` on
            the line an earlier plot drew).
        **kwargs : dict
            Passed to ``ax.scatter`` (``c`` or ``color`` replace the colours
            per selection).

        Returns
        -------
        display : LOOAgreementDisplay
        """
        check_matplotlib(f"{type(self).__name__}.plot")
        ax = new_axes(ax, figsize=(5.2, 5.0))
        pred = np.asarray(self.predicted, dtype=float)
        act = np.asarray(self.actual, dtype=float)
        earlier = [a for a in ax.lines if a.get_gid() == _HEADER]
        self.line_ = _identity_line(ax, pred, act, line_kwargs)

        name = self.name if name is None else name
        r, slope = self.pearson_r, self.slope
        if r is None or slope is None:
            r, slope = _agreement(pred, act)
        stats = f"Pearson R = {r:.3f}, slope = {slope:.2f}"
        heading = stats if name is None else f"{name}: {stats}"
        ax.add_line(_proxy(heading, _HEADER, ls="", marker=""))

        style = {"s": 28, "alpha": 0.85, "edgecolors": "white", "linewidths": 0.4}
        style["marker"] = _MARKERS[len(earlier) % len(_MARKERS)]
        first = _colours_used(ax)
        own_colour = "c" in kwargs or "color" in kwargs
        if self.selection is not None and not own_colour:
            selection = np.asarray(self.selection)
            style["c"] = _selection_entries(ax, selection, first, style["marker"])
            style["label"] = "_nolegend_"
        else:
            style.update(color=f"C{first}", label="removed rows")
        self.scatter_ = ax.scatter(act, pred, **merged(style, kwargs))
        self.scatter_.set_gid(_SCATTER)

        _legend(ax, self.line_, title=stats if name is None else f"{name}\n{stats}")
        ax.set(
            xlabel="actual change in test loss (refit)",
            ylabel="predicted change in test loss",
        )
        ax.set_aspect("equal", adjustable="datalim")
        compact_ticks(ax)
        ax.grid(alpha=0.3)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        explainer,
        X_test,
        y_test,
        *,
        n_remove=20,
        n_random=10,
        method="influence",
        random_state=None,
        n_jobs=None,
        verbose=0,
        refit_options=None,
        name=None,
        ax=None,
        line_kwargs=None,
        **kwargs,
    ):
        """Refit without the most influential (and random) rows, then plot.

        Parameters
        ----------
        explainer : fitted InfluenceExplainer
        X_test, y_test : test rows and labels
            The plotted quantity is their total loss (pass one row for the
            paper's plot).
        n_remove, n_random, method, random_state, n_jobs, verbose, refit_options
            Passed to :func:`skinfluence.validate_loo` (``verbose=1``: a
            progress bar over the refits; boosted trees:
            ``refit_options={'fixed_structure': True}`` compares with LeafRefit).
        name : str, default=None
            Shown in the legend (see the class's ``name``).
        ax, line_kwargs, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LOOAgreementDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_estimator")
        from ..loo import validate_loo

        result = validate_loo(
            explainer,
            X_test,
            y_test,
            n_remove=n_remove,
            n_random=n_random,
            method=method,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
            refit_options=refit_options,
        )
        return cls.from_result(
            result, name=name, ax=ax, line_kwargs=line_kwargs, **kwargs
        )

    @classmethod
    def from_result(cls, result, *, name=None, ax=None, line_kwargs=None, **kwargs):
        """Plot a :func:`skinfluence.validate_loo` result.

        Parameters
        ----------
        result : LOOValidation
        name : str, default=None
            Shown in the legend (see the class's ``name``); None: the
            result's method, 'first order' or 'newton'.
        ax, line_kwargs, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LOOAgreementDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_result")
        if name is None:
            method = getattr(result, "method", None)
            name = {"influence": "first order", "newton": "newton"}.get(method)
        table = result.table
        display = cls(
            predicted=table["predicted"].to_numpy(),
            actual=table["actual"].to_numpy(),
            selection=table["selection"].to_numpy(),
            train_row=table["train_row"].to_numpy(),
            pearson_r=result.pearson_r,
            slope=result.slope,
            name=name,
        )
        return display.plot(ax=ax, line_kwargs=line_kwargs, **kwargs)

    @classmethod
    def from_predictions(
        cls,
        predicted,
        actual,
        *,
        selection=None,
        name=None,
        ax=None,
        line_kwargs=None,
        **kwargs,
    ):
        """Plot precomputed predicted and actual changes.

        Parameters
        ----------
        predicted, actual : array-like of shape (n_removed,)
            E.g. the columns of ``LOOValidation.table``.
        selection : array-like of shape (n_removed,), default=None
            How each row was chosen; one colour each.
        name : str, default=None
        ax, line_kwargs, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LOOAgreementDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_predictions")
        predicted = column_or_1d(predicted, dtype=np.float64)
        actual = column_or_1d(actual, dtype=np.float64)
        check_consistent_length(predicted, actual, selection)
        if predicted.size == 0:
            raise ValueError("predicted and actual are empty: nothing to plot.")
        if not (np.isfinite(predicted).all() and np.isfinite(actual).all()):
            raise ValueError("predicted and actual must be finite (found NaN or inf).")
        r, slope = _agreement(predicted, actual)
        display = cls(
            predicted=predicted,
            actual=actual,
            selection=None if selection is None else np.asarray(selection),
            pearson_r=r,
            slope=slope,
            name=name,
        )
        return display.plot(ax=ax, line_kwargs=line_kwargs, **kwargs)
