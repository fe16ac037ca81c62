"""refine: finish a fitted linear model's fit on its own objective."""

import copy

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from .adapters import parameters_writable, set_fitted_parameters
from .backends import ClosedFormBackend
from .backends._base import check_sample_weight_values
from .utils._checks import split_model


def refine(model, X, y, sample_weight=None, *, max_steps=20):
    """A copy of a fitted model polished to the optimum of its own objective.

    Influence functions are derivatives at the optimum. A model fitted to
    scikit-learn's default ``tol`` (or by SGD) stops short of it, and
    :class:`~skinfluence.InfluenceExplainer` then warns; this takes exact
    Newton steps on the objective the model minimises (its own ``C``/``alpha``,
    weights and intercept) until the step left is under 1e-3 of a typical
    row's leave-one-out effect, and writes the parameters into a deep copy.
    The numpy counterpart of :func:`skinfluence.torch.refine`.

    Parameters
    ----------
    model : fitted estimator or Pipeline
        A linear model or GLM with ``coef_``/``intercept_`` (a Pipeline's
        earlier steps stay as fitted).
    X, y : the training data the model was fitted on. If the model needs many
        steps, X and y may not be that data: check.
    sample_weight : array-like of shape (n_samples,), default=None
    max_steps : int, default=20

    Returns
    -------
    refined : estimator
        A deep copy of ``model`` at the polished parameters.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence import InfluenceExplainer, refine
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> model = LogisticRegression(tol=1e-2).fit(X, y)
    >>> polished = refine(model, X, y)
    >>> explainer = InfluenceExplainer(FrozenEstimator(polished)).fit(X, y)
    >>> bool(explainer.stationarity_ < 1e-3)
    True
    """
    check_is_fitted(model)
    refined = copy.deepcopy(model)
    prefix, final = split_model(refined)
    n = len(y)
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    check_sample_weight_values(sw)
    if prefix is None:
        X = check_array(X, accept_sparse="csr", dtype=np.float64)
    backend = ClosedFormBackend().fit(final, X, np.asarray(y), sw, prefix=prefix)
    if not parameters_writable(final, backend.objective_):
        raise TypeError(
            f"refine polishes models whose parameters are coef_ and intercept_; "
            f"{type(final).__name__}'s are not (kernel and hinge models are "
            "solved exactly or explained approximately)."
        )
    if backend.polish(max_steps=max_steps):
        set_fitted_parameters(final, backend.objective_)
    return refined
