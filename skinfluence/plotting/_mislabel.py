"""Share of flipped labels found against share of the data checked."""

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ._base import check_matplotlib, merged, new_axes, set_title_within

_METHOD_LABELS = {
    "loo_loss": "held-out loss",
    "self_influence": "self-influence",
    "training_loss": "training loss",
}


def found_curve(scores, is_flipped):
    """Share of the flipped rows among the first k checked, for k = 0..n.

    Rows are checked from the highest score down (ties in row order).

    Returns
    -------
    ndarray of shape (n + 1,)
        Starts at 0 and ends at 1.
    """
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return np.r_[0.0, np.cumsum(is_flipped[order])] / is_flipped.sum()


def _detector_label(detector):
    """Legend name of a fitted detector's own (multi-round) ranking."""
    rounds = detector.n_rounds_
    if rounds == 1:
        return f"MislabelDetector (1 round, {_METHOD_LABELS[detector.method]})"
    return f"MislabelDetector ({rounds} rounds, held-out loss)"


def _scores_by_method(estimator, X, y, methods):
    """``(scores, labels)``: suspicion scores of every row, by method.

    ``'detector'`` is the ranking of a
    :class:`~skinfluence.MislabelDetector` with its own settings (three
    rounds by default); the other methods are one round's scores of the
    model fitted on all rows.
    """
    from ..cleaning import METHODS, MislabelDetector, score_rows
    from ..explainer import InfluenceExplainer

    known = [*METHODS, "detector"]
    methods = list(known if methods is None else methods)
    unknown = set(methods) - set(known)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; choose among {known}.")
    one_round = [m for m in methods if m != "detector"]
    scores, labels = {}, {}
    if isinstance(estimator, InfluenceExplainer):
        explainer = estimator
        if one_round and not hasattr(explainer, "objective_"):
            explainer = clone(explainer).fit(X, y)
        elif one_round and explainer.n_train_ != len(y):
            raise ValueError(
                f"The explainer was fitted on {explainer.n_train_} rows, but y "
                f"has {len(y)}: pass its training data (or an unfitted explainer)."
            )
        # The curves need the ranking, not the flags: a contamination share
        # keeps 'auto''s warnings (e.g. none flagged, for trees) away.
        detector = MislabelDetector(
            estimator.estimator, n_jobs=estimator.n_jobs, contamination=0.5
        )
    else:
        if not isinstance(estimator, MislabelDetector):
            estimator = MislabelDetector(estimator)
        detector = clone(estimator).set_params(contamination=0.5, threshold=None)
        if "detector" not in methods:  # one round serves every method
            detector.set_params(method=methods[0], n_rounds=1)
        detector.fit(X, y)
        explainer = detector.explainer_
    # The detector's first round is the model fitted on all rows: its
    # explainer gives every method's own one-round scores.
    for m in methods:
        if m == "detector":
            if not hasattr(detector, "scores_"):
                detector.fit(X, y)
            scores[m] = np.asarray(detector.scores_)
            labels[m] = _detector_label(detector)
        else:
            scores[m] = score_rows(explainer, m)[0]
    return scores, labels


#: Curves whose mean gap (in fraction found) is below this overlap at the
#: default width, but for a few steps.
_OVERLAP = 0.01


class MislabelCurveDisplay:
    """Share of the flipped labels found against the share of the data checked.

    Koh & Liang's (2017, Figure 6) protocol for label cleaning: with some
    labels known to be flipped, check the training rows from the most
    suspicious down; a curve per scoring method (each method's one-round
    scores, and :class:`~skinfluence.MislabelDetector`'s own ranking, three rounds by
    default) shows how many flips the first checks find. Checking in random
    order finds them in proportion (the dotted diagonal). Create it with
    :meth:`from_estimator` or :meth:`from_predictions`; all parameters are
    stored as attributes.

    Parameters
    ----------
    fraction_checked : ndarray of shape (n_train + 1,)
        ``k / n_train`` for k = 0..n_train.
    fraction_found : dict of str to ndarray of shape (n_train + 1,)
        For each method, the share of the flipped rows among the first k
        rows checked.
    flip_rate : float
        Share of the training rows that are flipped.
    labels : dict of str to str, default=None
        Legend name of a curve, by its key in ``fraction_found``; the
        methods' own names otherwise.

    Attributes
    ----------
    lines_ : dict of str to matplotlib Line2D
        One curve per method.
    chance_level_ : matplotlib Line2D or None
        The random-order diagonal, from (0, 0) to (1, 1).
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    skinfluence.MislabelDetector : The scores behind the curves.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from skinfluence import MislabelDetector
    >>> from skinfluence.plotting import MislabelCurveDisplay
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> noisy = y.copy()
    >>> noisy[:40] = 1 - noisy[:40]
    >>> display = MislabelCurveDisplay.from_estimator(
    ...     MislabelDetector(), X, noisy, y_true=y)
    >>> sorted(display.lines_)
    ['detector', 'loo_loss', 'self_influence', 'training_loss']
    >>> bool(display.fraction_found["loo_loss"][57] > 0.7)  # 10% checked
    True
    """

    def __init__(self, *, fraction_checked, fraction_found, flip_rate, labels=None):
        self.fraction_checked = fraction_checked
        self.fraction_found = fraction_found
        self.flip_rate = flip_rate
        self.labels = labels

    def plot(
        self,
        ax=None,
        *,
        curve_kwargs=None,
        plot_chance_level=True,
        chance_level_kw=None,
        **kwargs,
    ):
        """Draw one curve per method, and the random-order diagonal.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        curve_kwargs : dict of str to dict, default=None
            Style of one method's curve, by its name (applied after
            ``kwargs``).
        plot_chance_level : bool, default=True
            Draw the diagonal that checking in random order follows.
        chance_level_kw : dict, default=None
            Passed to ``ax.plot`` for the diagonal.
        **kwargs : dict
            Passed to ``ax.plot`` for every method's curve.

        Returns
        -------
        display : MislabelCurveDisplay
        """
        check_matplotlib(f"{type(self).__name__}.plot")
        ax = new_axes(ax, figsize=(6.0, 4.6))
        x = np.asarray(self.fraction_checked)
        k = int(round(self.flip_rate * (len(x) - 1)))
        curve_kwargs = curve_kwargs or {}
        names = {**_METHOD_LABELS, **(self.labels or {})}
        self.lines_ = {}
        for i, (name, found) in enumerate(self.fraction_found.items()):
            label = f"{names.get(name, name)}: {found[k]:.0%}"
            style = {"color": f"C{i}", "lw": 1.8}
            # A curve on (or within a line's width of) one drawn before would
            # hide it: dashed on top, and the legend says which it repeats.
            drawn = [o for o in self.fraction_found if o in self.lines_]
            gaps = {o: np.abs(self.fraction_found[o] - found).mean() for o in drawn}
            if gaps and min(gaps.values()) <= _OVERLAP:
                style["ls"] = (i % 4, (4, 3))  # offsets keep several visible
            twin = next((o for o in drawn if gaps[o] == 0), None)
            if twin is not None:
                label = f"{names.get(name, name)}: the same curve as "
                label += names.get(twin, twin)
            style = merged(style, kwargs)
            style = merged(style, curve_kwargs.get(name))
            self.lines_[name] = ax.plot(x, found, label=label, **style)[0]
        self.chance_level_ = None
        if plot_chance_level:
            style = merged({"color": "0.45", "lw": 1.2, "ls": ":"}, chance_level_kw)
            self.chance_level_ = ax.plot(
                [0, 1], [0, 1], label=f"random order (expected): {x[k]:.0%}", **style
            )[0]
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            xlabel="fraction of training data checked",
            ylabel="fraction of flipped labels found",
        )
        set_title_within(
            ax,
            f"Finding the flipped labels\n({self.flip_rate:.0%} of {len(x) - 1} "
            "training labels flipped; most suspicious rows checked first)",
        )
        # Short entries, the share checked in the title: 'best' finds room
        # off the curves and the diagonal (below it, for useful scores).
        ax.legend(
            title=f"flipped labels found at {x[k]:.0%} checked",
            loc="best",
            fontsize=8,
            title_fontsize=8,
        )
        ax.grid(alpha=0.3)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        is_flipped=None,
        y_true=None,
        methods=None,
        ax=None,
        curve_kwargs=None,
        plot_chance_level=True,
        chance_level_kw=None,
        **kwargs,
    ):
        """Score the rows of ``(X, y)`` with each method, then plot.

        Parameters
        ----------
        estimator : MislabelDetector, InfluenceExplainer or classifier
            A :class:`~skinfluence.MislabelDetector` (refitted on ``(X, y)`` with its
            settings: its ranking is the ``'detector'`` curve, and the model
            of its first round gives each method's own one-round scores),
            an :class:`~skinfluence.InfluenceExplainer` (used as it is when fitted, on
            these rows, else fitted, for the methods; the ``'detector'``
            curve is a default :class:`~skinfluence.MislabelDetector` of its
            estimator) or
            a classifier the explainer supports (wrapped in a default
            detector).
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            The labels as given, some flipped.
        is_flipped : array-like of bool of shape (n_samples,), default=None
            Which labels are flipped. Give this or ``y_true``.
        y_true : array-like of shape (n_samples,), default=None
            The correct labels; ``is_flipped = y != y_true``.
        methods : list of {'loo_loss', 'self_influence', 'training_loss', \
                'detector'}, default=None
            The scores to compare; None: all four. ``'detector'`` is the
            detector's own ranking (three rounds by default, see
            :class:`~skinfluence.MislabelDetector`'s ``n_rounds``), the others one round
            of each method's scores.
        ax, curve_kwargs, plot_chance_level, chance_level_kw, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : MislabelCurveDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_estimator")
        if (is_flipped is None) == (y_true is None):
            raise ValueError("Pass exactly one of is_flipped and y_true.")
        if is_flipped is None:
            check_consistent_length(y, y_true)
            is_flipped = np.asarray(y) != np.asarray(y_true)
        scores, labels = _scores_by_method(estimator, X, np.asarray(y), methods)
        return cls.from_predictions(
            scores,
            is_flipped,
            labels=labels,
            ax=ax,
            curve_kwargs=curve_kwargs,
            plot_chance_level=plot_chance_level,
            chance_level_kw=chance_level_kw,
            **kwargs,
        )

    @classmethod
    def from_predictions(
        cls,
        scores,
        is_flipped,
        *,
        name=None,
        labels=None,
        ax=None,
        curve_kwargs=None,
        plot_chance_level=True,
        chance_level_kw=None,
        **kwargs,
    ):
        """Plot precomputed suspicion scores (higher = checked first).

        Parameters
        ----------
        scores : array-like of shape (n_samples,) or dict of str to array-like
            One score per training row, or one array per method (e.g.
            ``MislabelDetector(...).scores_``).
        is_flipped : array-like of bool of shape (n_samples,)
        name : str, default=None
            The curve's name when ``scores`` is one array.
        labels : dict of str to str, default=None
            Legend names of the curves, by their keys in ``scores``.
        ax, curve_kwargs, plot_chance_level, chance_level_kw, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : MislabelCurveDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_predictions")
        if not isinstance(scores, dict):
            scores = {"scores" if name is None else name: scores}
        is_flipped = column_or_1d(is_flipped).astype(bool)
        if not is_flipped.any():
            raise ValueError("is_flipped marks no row: there is nothing to find.")
        found = {}
        for method, values in scores.items():
            values = column_or_1d(values, dtype=np.float64)
            check_consistent_length(values, is_flipped)
            if np.isnan(values).any():
                raise ValueError(f"The scores of {method!r} contain NaN.")
            found[method] = found_curve(values, is_flipped)
        n = len(is_flipped)
        display = cls(
            fraction_checked=np.arange(n + 1) / n,
            fraction_found=found,
            flip_rate=float(is_flipped.mean()),
            labels=labels,
        )
        return display.plot(
            ax=ax,
            curve_kwargs=curve_kwargs,
            plot_chance_level=plot_chance_level,
            chance_level_kw=chance_level_kw,
            **kwargs,
        )
