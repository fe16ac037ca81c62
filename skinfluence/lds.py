"""The linear datamodeling score (Park et al., 2023): attributions against refits.

An attribution method predicts how a test quantity moves when training rows
leave. The LDS asks it about many random halves of the training set at once:
draw subsets, refit the model on each, and measure, per test row, how well
the attributions *rank* the subsets' actual outputs (a Spearman correlation),
averaged over the test rows.
"""

import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.utils import check_random_state

from .backends._base import TARGETS
from .utils._checks import check_explainer, pandas_index
from .utils._progress import progress_bar

METHODS = ("influence", "newton", "relatif", "gradient_similarity")
_N_BOOTSTRAP = 1000


@dataclass
class LDSValidation:
    """Predicted against actual outputs of models refitted on random subsets.

    Attributes
    ----------
    scores : pandas.DataFrame of shape (n_test, n_methods)
        Spearman correlation over the subsets between each method's predicted
        and the actual output, per test row (index: the test rows' labels, or
        positions). NaN where the actual output did not vary.
    mean : pandas.Series
        The LDS of each method: ``scores`` averaged over the test rows.
    interval : pandas.DataFrame
        Bootstrap 95% interval of ``mean`` over test rows (columns ``low``,
        ``high``; one row per method).
    table : pandas.DataFrame
        One row per subset, test row and method: ``subset``, ``test_row``,
        ``method``, ``predicted``, ``actual``.
    predicted : dict of str to ndarray of shape (n_subsets, n_test)
        Each method's predicted outputs.
    actual : ndarray of shape (n_subsets, n_test)
        Outputs of the refitted models.
    keep_masks : ndarray of bool of shape (n_subsets, n_train)
        The training rows each subset kept.
    output : str
        The test quantity compared.
    best : str
        The method with the largest LDS (a property).
    """

    scores: pd.DataFrame
    mean: pd.Series
    interval: pd.DataFrame
    table: pd.DataFrame
    predicted: dict
    actual: np.ndarray
    keep_masks: np.ndarray
    output: str

    @property
    def best(self):
        """The method with the largest LDS (the one that ranks subsets best)."""
        return str(self.mean.idxmax())

    def __repr__(self):
        # The arrays and tables are the detail; a notebook shows the summary.
        lds = ", ".join(f"{m}={v:.3f}" for m, v in self.mean.items())
        n_subsets, n_test = self.actual.shape
        return (
            f"LDSValidation(output={self.output!r}, n_subsets={n_subsets}, "
            f"n_test={n_test}, LDS: {lds}; best={self.best!r})"
        )


def validate_lds(
    explainer,
    X_test,
    y_test=None,
    *,
    n_subsets=100,
    fraction=0.5,
    output="loss",
    method="influence",
    random_state=None,
    n_jobs=None,
    verbose=0,
    refit_options=None,
):
    """Linear datamodeling score of attribution methods, by refitting on subsets.

    The protocol of Park et al. (2023): draw ``n_subsets`` random subsets,
    each of ``round(fraction * n_train)`` training rows; refit the final model
    on each (earlier Pipeline steps stay fixed); for every test row, rank the
    subsets by the output each method predicts and by the refitted model's
    actual output, and take the Spearman correlation of the two. The LDS of a
    method is that correlation averaged over the test rows.

    Parameters
    ----------
    explainer : fitted InfluenceExplainer
        On the in-memory or torch backend (those that refit on subsets).
    X_test : {array-like, sparse matrix} of shape (n_test, n_features)
    y_test : array-like of shape (n_test,), default=None
        Required for ``output='loss'``; for classifier outputs it picks the
        class (default: the predicted class).
    n_subsets : int, default=100
        Number of subsets (at least 2).
    fraction : float, default=0.5
        Share of the training rows each subset keeps, in (0, 1).
    output : {'loss', 'decision_function', 'predict_proba', 'predict'}, \
            default='loss'
        The test quantity compared (as ``target`` of
        :meth:`InfluenceExplainer.influence`).
    method : str or list of str, default='influence'
        Attribution methods, among 'influence', 'newton', 'relatif' and
        'gradient_similarity' (see Notes).
    random_state : int, RandomState instance or None, default=None
        Draws the subsets and the bootstrap.
    n_jobs : int, default=None
        Refits run in threads.
    verbose : int, default=0
        0: silent; 1: progress over the refits on stderr (a tqdm bar when
        tqdm is installed, else one line per 10%). The in-memory backend
        refits subsets in batches, and reports as each batch finishes.
    refit_options : dict, default=None
        Keyword arguments of the backend's ``refit_outputs`` (in memory:
        ``gtol`` and ``max_iter`` of the whitened L-BFGS; torch: ``max_iter``
        and ``tol``).

    Returns
    -------
    LDSValidation

    Notes
    -----
    Every method gives ``a[t, i]``, the predicted change of test row t's
    output when training row i is removed, and predicts the output of the
    model refitted on subset S as::

        predicted[S, t] = f_t + sum_{i not in S} a[t, i]

    with ``f_t`` the fitted model's output. With ``w_i`` row i's weight and
    ``W`` their sum:

    - 'influence': ``loo_change(method='influence')``, i.e.
      ``-w_i / W * I_up[t, i]`` (plus, for penalties relative to the data
      size, the penalty's strengthening);
    - 'newton': ``loo_change(method='newton')``, one Newton step without the
      row (exact for least squares; in-memory backend, 'loss' or
      'decision_function');
    - 'relatif': ``-w_i / W * I_up[t, i] / ||H^-1 g_i||`` (RelatIF's theta);
    - 'gradient_similarity': ``w_i / W * g_t' g_i``, the first-order effect
      with the Hessian replaced by the identity.

    Since ``sum_{i not in S} a = sum_i a - sum_{i in S} a``, the prediction is
    an affine map of ``-sum_{i in S} a[t, i]``, the sum over the *kept* rows
    of scores oriented as ``influence`` (positive: the row raises the
    output); a Spearman correlation is unchanged by such maps, so this is the
    LDS of TRAK-style attributions ``tau[t, i] = w_i / W * I_up[t, i]``, and
    of any positive multiple of them.

    References
    ----------
    Park, S. M., Georgiev, K., Ilyas, A., Leclerc, G. and Madry, A. (2023).
    TRAK: Attributing Model Behavior at Scale. ICML.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence import InfluenceExplainer, validate_lds
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> explainer = InfluenceExplainer(LogisticRegression(C=0.1, tol=1e-10)).fit(
    ...     X[:300], y[:300])
    >>> result = validate_lds(explainer, X[300:320], y[300:320], n_subsets=20,
    ...                       method=["influence", "gradient_similarity"],
    ...                       random_state=0)
    >>> result.scores.shape
    (20, 2)
    >>> bool(result.mean["influence"] > 0.5)
    True
    """
    check_explainer(explainer, "validate_lds")
    methods = _check_arguments(n_subsets, fraction, output, method, verbose)
    backend = explainer.backend_
    backend.require("subset_refits", "validate_lds")
    test_index = pandas_index(X_test)
    X_checked = explainer.validate_test_input(X_test)
    # Attributions first: an unsupported method fails before any refit.
    try:
        effects = {
            m: _removal_effects(explainer, X_test, y_test, X_checked, m, output)
            for m in methods
        }
        base = backend.test_outputs(X_checked, y_test, target=output)
    except ValueError as exc:  # the explainer's messages name its target=
        message = str(exc).replace("target=", "output=")
        raise type(exc)(message) from None
    rng = check_random_state(random_state)
    masks = _draw_subsets(backend.n_train_, n_subsets, fraction, rng)
    with progress_bar(
        "validate_lds refits", total=n_subsets, verbose=verbose, unit="refits"
    ) as bar:
        actual = backend.refit_outputs(
            masks,
            X_checked,
            y_test,
            target=output,
            n_jobs=n_jobs,
            progress=bar.update,
            **(refit_options or {}),
        )
    removed = (~masks).astype(np.float64)
    predicted = {m: base + removed @ a.T for m, a in effects.items()}
    index = pd.RangeIndex(len(base)) if test_index is None else test_index
    scores = pd.DataFrame(
        {m: spearman_columns(p, actual) for m, p in predicted.items()}, index=index
    )
    mean = scores.mean(axis=0)
    interval = _bootstrap(scores.to_numpy(), rng).set_axis(methods, axis=0)
    table = _table(predicted, actual, index)
    return LDSValidation(
        scores, mean, interval, table, predicted, actual, masks, output
    )


def spearman_columns(a, b):
    """Spearman correlation of each column of ``a`` with that of ``b``.

    NaN for a column where either is constant.
    """
    ra = rankdata(a, axis=0)
    rb = rankdata(b, axis=0)
    ra -= ra.mean(axis=0)
    rb -= rb.mean(axis=0)
    scale = np.sqrt((ra**2).sum(axis=0) * (rb**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(axis=0) / scale
    return np.where(scale > 0, r, np.nan)


def _check_arguments(n_subsets, fraction, output, method, verbose):
    if not isinstance(n_subsets, Integral) or n_subsets < 2:
        raise ValueError(
            f"n_subsets must be an integer of at least 2 (a rank correlation "
            f"needs two subsets), got {n_subsets!r}."
        )
    if not isinstance(fraction, Real) or not 0 < fraction < 1:
        raise ValueError(
            f"fraction must be a float in the open interval (0, 1), the share "
            f"of training rows each subset keeps; got {fraction!r}."
        )
    if output not in TARGETS:
        raise ValueError(f"output must be one of {list(TARGETS)}, got {output!r}.")
    if not isinstance(verbose, Integral) or verbose < 0:
        raise ValueError(f"verbose must be a non-negative integer, got {verbose!r}.")
    methods = [method] if isinstance(method, str) else list(method)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(
            f"method must be one of {list(METHODS)} or a list of them, got {method!r}."
        )
    if len(set(methods)) != len(methods):
        raise ValueError(f"method lists a name twice: {methods!r}.")
    return methods


def _removal_effects(explainer, X_test, y_test, X_checked, method, output):
    """``a[t, i]``: predicted change of test row t's output when row i leaves."""
    backend = explainer.backend_
    # Arrays whatever set_output says: the rows are positions here.
    if method in ("influence", "newton"):
        effects = explainer.loo_change(X_test, y_test, method=method, target=output)
        return np.asarray(effects)
    backend.require("training_data", f"method={method!r}")
    weights = np.asarray(backend.training_data()[2], dtype=np.float64)
    share = weights / weights.sum()
    if method == "relatif":
        scores = explainer.relative_influence(X_test, y_test, target=output)
        return -share * np.asarray(scores)
    return share * backend.gradient_similarity(X_checked, y_test, target=output)


def _draw_subsets(n, n_subsets, fraction, rng):
    """Boolean masks of ``round(fraction * n)`` rows each (at least one, n - 1)."""
    size = min(max(int(round(fraction * n)), 1), n - 1)
    order = np.argsort(rng.random_sample((n_subsets, n)), axis=1)[:, :size]
    masks = np.zeros((n_subsets, n), dtype=bool)
    masks[np.arange(n_subsets)[:, None], order] = True
    return masks


def _bootstrap(scores, rng, level=0.95):
    """Percentile interval of the column means, resampling rows (test rows)."""
    m = scores.shape[0]
    draws = rng.randint(0, m, size=(_N_BOOTSTRAP, m))
    with warnings.catch_warnings():  # all-NaN resamples: NaN, said by NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(scores[draws], axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(means, [tail, 100 - tail], axis=0)
    return pd.DataFrame({"low": low, "high": high})


def _table(predicted, actual, index):
    n_subsets, n_test = actual.shape
    subset = np.repeat(np.arange(n_subsets), n_test)
    test_row = np.tile(np.asarray(index), n_subsets)
    parts = [
        pd.DataFrame(
            {
                "subset": subset,
                "test_row": test_row,
                "method": name,
                "predicted": p.ravel(),
                "actual": actual.ravel(),
            }
        )
        for name, p in predicted.items()
    ]
    return pd.concat(parts, ignore_index=True)
