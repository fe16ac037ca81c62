"""Which features of the training rows drive the test loss (I_pert,loss)."""

import numpy as np
from sklearn import get_config
from sklearn.utils import _safe_indexing, gen_batches
from sklearn.utils.validation import _num_samples, check_is_fitted, column_or_1d

from ..utils._checks import model_feature_names, train_positions
from ._base import check_matplotlib, compact_ticks, merged, new_axes, set_title_within

_AGGREGATES = ("abs", "signed")
_TITLE = "Which features of the training rows drive the test loss"
_AXIS_LABELS = {
    "abs": "How much moving this feature of the training rows\n"
    "changes the test loss (either way; mean over the test rows)",
    "signed": "How the test loss changes when this feature of the training rows\n"
    "rises (> 0: the loss rises, < 0: it falls; mean over the test rows)",
    None: "How much moving this feature of the training rows\nchanges the test loss",
}


def feature_influence(
    explainer, X_test, y_test=None, *, train_rows=None, aggregate="abs", target="loss"
):
    """Per-feature ``I_pert,loss``, summed over training rows, per test row.

    ``aggregate='signed'``: for each feature j, the mean over test rows of
    ``sum_i I_pert,loss[t, i, j]``, the derivative of the test loss when
    feature j of every (selected) training row moves by the same small
    amount, per unit upweighting. ``'abs'``: the same with ``|I_pert,loss|``,
    how strongly the test loss depends on that feature of the training rows
    in any direction. Test rows are processed in chunks within scikit-learn's
    ``working_memory``.

    Parameters
    ----------
    explainer : fitted InfluenceExplainer
    X_test, y_test, target
        As in :meth:`~skinfluence.InfluenceExplainer.perturbation_influence` (e.g. the
        misclassified test rows).
    train_rows : array-like, default=None
        The training rows to sum over (e.g. the most harmful ones): index
        labels of the training data when it had a pandas index (as
        ``top_influential`` reports them in ``train_row``), else positions;
        or a boolean mask. None: all.
    aggregate : {'abs', 'signed'}, default='abs'

    Returns
    -------
    ndarray of shape (n_features,)
        Features are those the final model sees (after any Pipeline prefix).
    """
    check_is_fitted(explainer)
    explainer.backend_.require(
        "perturbation",
        "Per-feature influence (feature_influence and FeatureInfluenceDisplay, "
        "sums of perturbation_influence)",
    )
    if aggregate not in _AGGREGATES:
        raise ValueError(
            f"aggregate must be one of {list(_AGGREGATES)}, got {aggregate!r}."
        )
    n_test = _num_samples(X_test)
    if n_test == 0:
        raise ValueError("X_test is empty: there is nothing to aggregate.")
    X_train = explainer.training_data()[0]
    n_train, n_features = X_train.shape
    if train_rows is not None:
        if len(train_rows) == 0:
            raise ValueError("train_rows is empty: there is nothing to aggregate.")
        train_rows = train_positions(train_rows, explainer.train_index_, n_train)
    # One test row's block of I_pert and its absolute value.
    budget = get_config()["working_memory"] * 2**20
    chunk = int(min(n_test, max(1, budget // (16 * n_train * n_features))))
    total = np.zeros(n_features)
    for rows in gen_batches(n_test, chunk):
        y_part = None if y_test is None else _safe_indexing(y_test, rows)
        P = explainer.perturbation_influence(
            _safe_indexing(X_test, rows), y_part, target=target
        )
        if train_rows is not None:
            P = P[:, train_rows]
        total += (np.abs(P) if aggregate == "abs" else P).sum(axis=(0, 1))
    return total / n_test


class FeatureInfluenceDisplay:
    """Per-feature influence of the training rows on test losses, as bars.

    Each bar is a feature of the training rows; its length says how much the
    test loss changes when that feature moves in the (selected) training
    rows. With ``aggregate='abs'`` (:func:`feature_influence`) it is::

        score[j] = mean over test rows t of sum over training rows i of
                   |I_pert,loss(z_i, z_t)[j]|,

    and with ``'signed'`` the same sum without the absolute value, where
    ``I_pert,loss(z_i, z_t) = -grad_theta L(z_t)' H^-1 grad_x grad_theta
    L(z_i)`` (Koh & Liang, 2017, eq. 5). The figure's title and axis say the
    same in words.

    For domain-mismatch debugging (Koh & Liang, 2017, section 5.3): for the
    test rows the model gets wrong, ``I_pert,loss`` says which feature of
    which training rows moves their loss; summed over the training rows (all,
    or the most influential ones) it names the features that drive the
    errors. Create it with :meth:`from_estimator` (computes
    :func:`feature_influence`) or :meth:`from_predictions`; all parameters are
    stored as attributes.

    Parameters
    ----------
    feature_scores : ndarray of shape (n_features,)
    feature_names : ndarray of str of shape (n_features,), default=None
        None: ``x0``, ``x1``, ...
    aggregate : {'abs', 'signed'} or None, default=None
        How the scores were aggregated (sets the axis label and, for
        'signed', red bars for features that raise the test loss, blue for
        those that lower it).

    Attributes
    ----------
    bars_ : matplotlib BarContainer
        One bar per feature shown, the largest ``|score|`` at the top; the
        widths are the scores.
    shown_ : ndarray of int
        Positions of the features shown, in the bars' order.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.plotting import FeatureInfluenceDisplay
    >>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    >>> model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-8))
    >>> explainer = InfluenceExplainer(model).fit(X[:400], y[:400])
    >>> wrong = explainer.predict(X[400:]) != y[400:]
    >>> display = FeatureInfluenceDisplay.from_estimator(
    ...     explainer, X[400:][wrong], y[400:][wrong], max_features=5)
    >>> len(display.bars_)
    5
    """

    def __init__(self, *, feature_scores, feature_names=None, aggregate=None):
        self.feature_scores = feature_scores
        self.feature_names = feature_names
        self.aggregate = aggregate

    def plot(self, ax=None, *, max_features=20, **kwargs):
        """Draw the features with the largest ``|score|`` as horizontal bars.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        max_features : int or None, default=20
            How many features to show; None: all.
        **kwargs : dict
            Passed to ``ax.barh``.

        Returns
        -------
        display : FeatureInfluenceDisplay
        """
        check_matplotlib(f"{type(self).__name__}.plot")
        scores = np.asarray(self.feature_scores, dtype=float)
        names = self.feature_names
        if names is None:
            names = [f"x{j}" for j in range(len(scores))]
        order = np.argsort(-np.abs(scores), kind="stable")[:max_features]
        ax = new_axes(ax, figsize=(6.0, 0.3 * len(order) + 1.3))
        shown = scores[order]
        colours = np.where(shown > 0, "tab:red", "tab:blue")
        if self.aggregate == "abs":
            colours = np.full(len(order), "tab:purple")
        style = merged({"color": list(colours), "height": 0.7}, kwargs)
        y = np.arange(len(order))[::-1]  # the largest at the top
        self.bars_ = ax.barh(y, shown, **style)
        ax.set_yticks(y, [str(names[j]) for j in order], fontsize=8)
        ax.set_xlabel(_AXIS_LABELS.get(self.aggregate, _AXIS_LABELS[None]), fontsize=9)
        set_title_within(ax, _TITLE)
        ax.axvline(0, color="k", lw=0.8)
        compact_ticks(ax, "x")
        ax.grid(axis="x", alpha=0.3)
        self.shown_ = order
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        explainer,
        X_test,
        y_test=None,
        *,
        train_rows=None,
        aggregate="abs",
        target="loss",
        feature_names=None,
        max_features=20,
        ax=None,
        **kwargs,
    ):
        """Aggregate ``I_pert,loss`` per feature (:func:`feature_influence`), plot.

        Parameters
        ----------
        explainer : fitted InfluenceExplainer
        X_test, y_test : the test rows to explain (e.g. the misclassified ones)
        train_rows, aggregate, target
            Passed to :func:`feature_influence`.
        feature_names : array-like of str, default=None
            None: the names the final model's input has (Pipeline prefix's
            ``get_feature_names_out``, or the DataFrame's columns).
        max_features, ax, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : FeatureInfluenceDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_estimator")
        scores = feature_influence(
            explainer,
            X_test,
            y_test,
            train_rows=train_rows,
            aggregate=aggregate,
            target=target,
        )
        if feature_names is None:
            feature_names = model_feature_names(explainer, len(scores))
        display = cls(
            feature_scores=scores,
            feature_names=np.asarray(feature_names, dtype=object),
            aggregate=aggregate,
        )
        return display.plot(ax=ax, max_features=max_features, **kwargs)

    @classmethod
    def from_predictions(
        cls,
        feature_scores,
        feature_names=None,
        *,
        aggregate=None,
        max_features=20,
        ax=None,
        **kwargs,
    ):
        """Plot precomputed per-feature scores.

        Parameters
        ----------
        feature_scores : array-like of shape (n_features,) or pandas.Series
            A Series' index gives the names.
        feature_names : array-like of str of shape (n_features,), default=None
        aggregate : {'abs', 'signed'} or None, default=None
        max_features, ax, **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : FeatureInfluenceDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_predictions")
        if feature_names is None and hasattr(feature_scores, "index"):
            feature_names = feature_scores.index.to_numpy()
        scores = column_or_1d(feature_scores, dtype=np.float64)
        if feature_names is not None and len(feature_names) != len(scores):
            raise ValueError(
                f"{len(feature_names)} feature names for {len(scores)} scores."
            )
        display = cls(
            feature_scores=scores,
            feature_names=(
                None
                if feature_names is None
                else np.asarray(feature_names, dtype=object)
            ),
            aggregate=aggregate,
        )
        return display.plot(ax=ax, max_features=max_features, **kwargs)
