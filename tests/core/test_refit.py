"""Refitting without rows from the fitted optimum agrees with actual refits."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, StationarityWarning
from skinfluence.core._refit import refit_without


def _data(name):
    X, y = (load_breast_cancer if name == "binary" else load_wine)(return_X_y=True)
    return StandardScaler().fit_transform(X), y


CASES = {
    "binary, sample_weight": (
        "binary",
        LogisticRegression(C=0.3, tol=1e-12, max_iter=10_000),
        True,
    ),
    "multinomial": ("multiclass", LogisticRegression(C=2.0, tol=1e-12), False),
    "liblinear (penalized intercept)": (
        "binary",
        LogisticRegression(solver="liblinear", C=0.5, tol=1e-12, intercept_scaling=3),
        False,
    ),
    "sparse X": ("sparse", LogisticRegression(C=0.5, tol=1e-12), False),
    "SGD (fixed penalty)": (
        "binary",
        SGDClassifier(loss="log_loss", alpha=0.05, tol=1e-12, max_iter=2000),
        False,
    ),
}


@pytest.mark.parametrize("whitening", ["cholesky", "diagonal"])
@pytest.mark.parametrize("case", CASES)
def test_refit_without_reaches_the_refit_optimum(case, whitening):
    """The result minimizes the objective the estimator itself has on the
    kept rows: the one the explainer reads off an actual refit (penalty,
    weights, intercept handling), to its value and a vanishing gradient."""
    name, model, weighted = CASES[case]
    X, y = _data("binary" if name == "sparse" else name)
    if name == "sparse":
        X = sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0))
    rng = np.random.default_rng(0)
    sw = rng.uniform(0.5, 2.0, len(y)) if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StationarityWarning)  # SGD's start
        ex = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    drop = np.sort(rng.choice(len(y), len(y) // 6, replace=False))
    keep = np.setdiff1d(np.arange(len(y)), drop)
    obj, Xt, t, w = (
        ex.objective_,
        ex.backend_.X_,
        ex.backend_.target_,
        ex.backend_.weights_,
    )
    factor = ex.solver_.factor_[0]
    if whitening == "diagonal":  # what iterative solvers use
        factor = np.sqrt(obj.hessian_diagonal(Xt, t, w))
    refitted, converged = refit_without(
        obj, factor, Xt, t, w, drop, gtol=1e-7, max_iter=5000
    )
    assert converged
    kwargs = {} if sw is None else {"sample_weight": sw[keep]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StationarityWarning)
        reference = InfluenceExplainer(model).fit(X[keep], y[keep], **kwargs)
    truth = reference.objective_
    np.testing.assert_allclose(refitted.penalty, truth.penalty, rtol=1e-12)
    if "SGD" not in case:  # SGD's own refit stops short; its penalty is the test
        value = truth.objective(Xt[keep], t[keep], w[keep])
        ours = truth.with_theta(refitted.theta).objective(Xt[keep], t[keep], w[keep])
        assert ours <= value + 1e-11 * abs(value)
    # the gradient of the objective without the rows, from start to finish
    start = refitted.with_theta(obj.theta).mean_gradient(Xt[keep], t[keep], w[keep])
    grad = refitted.mean_gradient(Xt[keep], t[keep], w[keep])
    assert np.abs(grad).max() < 1e-5 * np.abs(start).max()
    # the rows mattered: the fitted parameters are far from the new optimum
    assert np.abs(obj.theta - refitted.theta).max() > 1e-2
