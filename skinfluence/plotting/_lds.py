"""Linear datamodeling score: predicted against actual outputs over subsets."""

import numpy as np

from ._base import check_matplotlib, merged, set_title_within


def _rows_counted(method, n_scored, n_test, quantity):
    """The histogram's title: how many test rows it counts, and why not all.

    A row whose output (or predicted output) is the same on every subset
    has no Spearman correlation (NaN) and is left out of the LDS.
    """
    if n_scored == n_test:
        return f"{method}: {n_test} test rows"
    left_out = n_test - n_scored
    return (
        f"{method}: {n_scored} of {n_test} test rows\n"
        f"({left_out} with a flat {quantity} left out)"
    )


class LDSDisplay:
    """Predicted against actual outputs of subset refits, and the per-row LDS.

    Left: for one test row, each point is one random training subset, the
    output of the model refitted on it on the x axis and the attribution
    method's prediction on the y axis; the LDS is the Spearman correlation
    of the two, so what matters is order, not the line. Right: the
    distribution of that correlation over all test rows, its mean dashed.
    Create it with :meth:`from_estimator` (runs
    :func:`skinfluence.validate_lds`) or :meth:`from_result`; all parameters
    are stored as attributes.

    Parameters
    ----------
    predicted : ndarray of shape (n_subsets,)
        The method's predicted output of each subset's model for the shown
        test row.
    actual : ndarray of shape (n_subsets,)
        The refitted models' outputs for that row.
    scores : ndarray of shape (n_test,)
        Spearman correlation per test row. NaN rows (the output did not vary
        over the subsets) are left out of the histogram and the LDS; its
        title says how many.
    test_row : object, default=None
        The shown test row's label.
    method : str, default=None
        The attribution method.
    output : str, default=None
        The compared test quantity ('loss', ...), for the axis labels.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The subsets, at ``(actual, predicted)``.
    hist_ : list of matplotlib Rectangle
        The histogram's bars.
    mean_line_ : matplotlib Line2D
        The mean score (the LDS).
    ax_ : ndarray of two matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    skinfluence.validate_lds : The refits behind the plot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.plotting import LDSDisplay
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> explainer = InfluenceExplainer(LogisticRegression(C=0.1, tol=1e-10)).fit(
    ...     X[:300], y[:300])
    >>> display = LDSDisplay.from_estimator(
    ...     explainer, X[300:310], y[300:310], n_subsets=20, random_state=0)
    >>> display.scatter_.get_offsets().shape
    (20, 2)
    """

    def __init__(
        self, *, predicted, actual, scores, test_row=None, method=None, output=None
    ):
        self.predicted = predicted
        self.actual = actual
        self.scores = scores
        self.test_row = test_row
        self.method = method
        self.output = output

    def plot(self, ax=None, *, hist_kwargs=None, **kwargs):
        """Draw the subsets of the chosen test row and the scores' histogram.

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, default=None
            Axes for the scatter and the histogram; a new figure when None.
        hist_kwargs : dict, default=None
            Passed to ``ax.hist``.
        **kwargs : dict
            Passed to ``ax.scatter``.

        Returns
        -------
        display : LDSDisplay
        """
        check_matplotlib(f"{type(self).__name__}.plot")
        from ..lds import spearman_columns

        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(1, 2, figsize=(9.5, 4.2), layout="constrained")
        ax = np.asarray(ax, dtype=object).ravel()
        if ax.size != 2:
            raise ValueError(f"ax must hold two Axes, got {ax.size}.")
        pred = np.asarray(self.predicted, dtype=float)
        act = np.asarray(self.actual, dtype=float)
        quantity = self.output or "output"
        method = self.method or "attribution"
        style = {"s": 24, "alpha": 0.85, "edgecolors": "white", "linewidths": 0.4}
        self.scatter_ = ax[0].scatter(act, pred, **merged(style, kwargs))
        rho = float(spearman_columns(pred[:, None], act[:, None])[0])
        row = "" if self.test_row is None else f"test row {self.test_row}: "
        ax[0].set(
            xlabel=f"actual {quantity} (refit on the subset)",
            ylabel=f"predicted {quantity} ({method})",
        )
        set_title_within(ax[0], f"{row}Spearman = {rho:.3f}")
        ax[0].grid(alpha=0.3)
        # Subset losses can be tiny: powers of ten in the corner, not in every tick.
        ax[0].ticklabel_format(axis="both", style="sci", scilimits=(-3, 4))

        scores = np.asarray(self.scores, dtype=float)
        n_test = scores.size
        scores = scores[np.isfinite(scores)]
        bars = merged({"bins": 20, "color": "C0", "alpha": 0.8}, hist_kwargs)
        self.hist_ = list(ax[1].hist(scores, **bars)[2])
        lds = float(scores.mean()) if scores.size else np.nan
        self.mean_line_ = ax[1].axvline(
            lds, color="k", ls="--", lw=1, label=f"LDS = {lds:.3f}"
        )
        ax[1].set(xlabel="Spearman correlation over subsets", ylabel="test rows")
        set_title_within(ax[1], _rows_counted(method, scores.size, n_test, quantity))
        ax[1].legend(loc="upper left", fontsize=8)
        from matplotlib.ticker import MaxNLocator

        ax[1].yaxis.set_major_locator(MaxNLocator(integer=True))  # row counts
        self.ax_ = ax
        self.figure_ = ax[0].figure
        return self

    @classmethod
    def from_result(cls, result, *, test_row=0, method=None, ax=None, **kwargs):
        """Plot a :class:`~skinfluence.LDSValidation`.

        Parameters
        ----------
        result : LDSValidation
        test_row : int, default=0
            Position of the test row shown on the left.
        method : str, default=None
            One of the result's methods; None: its best (``result.best``).
        ax, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LDSDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_result")
        method = result.best if method is None else method
        if method not in result.predicted:
            raise ValueError(
                f"method {method!r} is not in the result, which holds "
                f"{list(result.predicted)}."
            )
        n_test = result.actual.shape[1]
        if not isinstance(test_row, (int, np.integer)) or not 0 <= test_row < n_test:
            raise ValueError(
                f"test_row must be a position in [0, {n_test}), got {test_row!r}."
            )
        display = cls(
            predicted=result.predicted[method][:, test_row],
            actual=result.actual[:, test_row],
            scores=result.scores[method].to_numpy(),
            test_row=result.scores.index[test_row],
            method=method,
            output=result.output,
        )
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        explainer,
        X_test,
        y_test=None,
        *,
        test_row=0,
        n_subsets=100,
        fraction=0.5,
        output="loss",
        method="influence",
        random_state=None,
        n_jobs=None,
        verbose=0,
        ax=None,
        **kwargs,
    ):
        """Run :func:`skinfluence.validate_lds`, then plot one method.

        Parameters
        ----------
        explainer : fitted InfluenceExplainer
        X_test, y_test : test rows and labels
        test_row : int, default=0
            Position of the test row shown on the left.
        n_subsets, fraction, output, method, random_state, n_jobs, verbose
            Passed to :func:`skinfluence.validate_lds`; with a list of
            methods the best one is shown.
        ax, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LDSDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_estimator")
        from ..lds import validate_lds

        result = validate_lds(
            explainer,
            X_test,
            y_test,
            n_subsets=n_subsets,
            fraction=fraction,
            output=output,
            method=method,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
        )
        return cls.from_result(result, test_row=test_row, ax=ax, **kwargs)
