"""Ill-conditioned but non-singular least squares, against statsmodels.

A design with ``cond([X, 1]) = 3e6`` makes ``cond(H) ~ 1e13``: past what a
Cholesky factorization of ``H`` resolves, yet an ordinary least squares problem
(statsmodels solves it through the SVD of X). ``ExactSolver`` then factorizes
the Hessian's square root (the weighted design) by QR; only a design singular
to rounding is refused.
"""

import warnings

import numpy as np
import pytest
import sklearn
import statsmodels.api as sm
from scipy import linalg
from sklearn import config_context
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.utils.fixes import parse_version

from skinfluence import InfluenceExplainer
from skinfluence.exceptions import SingularHessianError, StationarityWarning
from skinfluence.objectives import HessianOperator
from skinfluence.solvers import ExactSolver

COND = 3e6


def _design(n=200, cond=COND, seed=0):
    """``[X, 1]`` with singular values from ``sqrt(n)`` down to ``sqrt(n) / cond``."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 4))
    U, _ = np.linalg.qr(Z - Z.mean(axis=0))  # orthogonal to the intercept
    V, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    X = (U * (np.geomspace(1.0, 1.0 / cond, 4) * np.sqrt(n))) @ V.T
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.3 * rng.standard_normal(n)
    X_test = X[:5] + 0.1 * rng.standard_normal((5, 4))
    return X, y, X_test


def _with_intercept(X):
    return np.column_stack([X, np.ones(len(X))])


def _relative(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


# LinearRegression's default tol=1e-6 cuts singular values below 1e-6 of the
# largest (scipy lstsq's cond): on this design it returns a truncated
# solution, not the least squares one (see the stationarity test below).
# The tol parameter exists from scikit-learn 1.7, and sets lstsq's cond on dense
# data from 1.9: the tests of it are skipped before.
_HAS_TOL = "tol" in LinearRegression().get_params()
_TOL_TRUNCATES = parse_version(sklearn.__version__) >= parse_version("1.9")
_NEEDS_TOL = pytest.mark.skipif(
    not _HAS_TOL, reason="LinearRegression(tol=...) needs scikit-learn>=1.7"
)
OLS = LinearRegression(tol=1e-12) if _HAS_TOL else None


@pytest.fixture(scope="module")
def ols():
    if not _HAS_TOL:
        pytest.skip("LinearRegression(tol=...) needs scikit-learn>=1.7")
    X, y, X_test = _design()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(OLS).fit(X, y)
    influence = sm.OLS(y, _with_intercept(X)).fit().get_influence()
    return explainer, influence, X, y, X_test


def test_the_design_is_as_ill_conditioned_as_claimed(ols):
    explainer, _, X, _, _ = ols
    assert np.linalg.cond(_with_intercept(X)) == pytest.approx(COND, rel=1e-6)
    assert explainer.solver_.method_ == "qr"
    assert explainer.stationarity_ < 1e-6


def test_newton_loo_matches_statsmodels_dfbeta(ols):
    explainer, influence, _, _, X_test = ols
    newton = explainer.loo_change(X_test, method="newton", target="decision_function")
    # dfbeta = beta - beta_(i): the prediction moves by -x_t' dfbeta_i.
    expected = -(_with_intercept(X_test) @ influence.dfbeta.T)
    # On the QR path the Newton formulas solve with the triangular factor
    # (products with the explicit inverse lost ~cond(H) eps: 4e-6 here).
    assert _relative(newton, expected) < 1e-8


def test_newton_loo_matches_refits(ols):
    explainer, _, X, y, X_test = ols
    newton = explainer.loo_change(X_test, method="newton", target="decision_function")
    full = clone(OLS).fit(X, y).predict(X_test)
    for i in (0, 50, 123, 199):
        keep = np.arange(len(y)) != i
        actual = clone(OLS).fit(X[keep], y[keep]).predict(X_test) - full
        assert _relative(newton[:, i], actual) < 1e-7


def test_solves_match_statsmodels_to_its_accuracy(ols):
    # I_up,params = -H^-1 g_i with g_i = -2 e_i xt_i and H = 2 X'X / n is
    # n (X'X)^-1 xt_i e_i = n (1 - h_i) dfbeta_i: solves through the factor.
    explainer, influence, X, _, _ = ols
    n, h = len(X), influence.hat_matrix_diag
    expected = n * (1 - h)[:, None] * influence.dfbeta
    assert _relative(explainer.influence_params(), expected) < 1e-7
    # self influence g_i' H^-1 g_i = 2 n e_i^2 h_i, from the QR factor_.
    e = influence.resid
    expected = 2 * n * e**2 * h
    assert _relative(explainer.self_influence(), expected) < 1e-7


def test_qr_factor_is_the_cholesky_factor(ols):
    explainer, _, X, _, _ = ols
    L, lower = explainer.solver_.factor_
    assert lower
    L = np.tril(L)
    Xt = _with_intercept(X)
    H = 2.0 * Xt.T @ Xt / len(X)
    np.testing.assert_allclose(L @ L.T, H, rtol=0, atol=1e-13 * np.abs(H).max())
    assert np.all(np.diag(L) > 0)


def test_ridge_with_tiny_alpha_matches_refits():
    X, y, X_test = _design()
    est = Ridge(alpha=1e-10, solver="svd")  # sklearn's own accurate path
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(est).fit(X, y)
    assert explainer.solver_.method_ == "qr"
    newton = explainer.loo_change(X_test, method="newton", target="decision_function")
    full = clone(est).fit(X, y).predict(X_test)
    for i in (0, 77, 199):
        keep = np.arange(len(y)) != i
        actual = clone(est).fit(X[keep], y[keep]).predict(X_test) - full
        assert _relative(newton[:, i], actual) < 1e-6


@pytest.mark.skipif(
    not _TOL_TRUNCATES,
    reason="LinearRegression truncates dense lstsq at tol from scikit-learn 1.9",
)
def test_truncated_lstsq_solution_is_flagged():
    # The default LinearRegression drops the smallest singular value here:
    # not the least squares optimum, which the explainer now can tell.
    X, y, _ = _design()
    with pytest.warns(StationarityWarning):
        InfluenceExplainer(FrozenEstimator(LinearRegression().fit(X, y))).fit(X, y)


@_NEEDS_TOL
def test_duplicated_column_is_still_refused_with_stated_damping():
    X, y, _ = _design()
    X = np.column_stack([X, X[:, 2]])
    with pytest.raises(SingularHessianError, match=r"damping=\d") as excinfo:
        InfluenceExplainer(OLS).fit(X, y)
    message = str(excinfo.value)
    assert "change by under 1%" in message
    assert "1 (curvature" in message and "flat to rounding" in message


def test_well_conditioned_path_is_cholesky_of_H():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 4))
    y = X @ np.ones(4) + rng.standard_normal(100)
    explainer = InfluenceExplainer(LinearRegression()).fit(X, y)
    solver = explainer.solver_
    assert solver.method_ == "cholesky"
    Xt = _with_intercept(X)
    H = 2.0 * Xt.T @ Xt / len(X)
    expected = linalg.cho_factor(H, lower=True)[0]
    np.testing.assert_allclose(
        np.tril(solver.factor_[0]), np.tril(expected), rtol=1e-12
    )


@pytest.mark.parametrize(
    "est",
    [
        pytest.param(OLS, marks=_NEEDS_TOL, id="ols"),
        pytest.param(Ridge(alpha=1e-10, solver="svd"), id="ridge"),
    ],
)
def test_sample_weights_on_the_qr_path(est):
    # The square root's rows carry sqrt(w_i / W): weighted refits agree.
    X, y, X_test = _design()
    w = np.random.default_rng(5).uniform(0.5, 2.0, len(y))
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=w)
    assert explainer.solver_.method_ == "qr"
    newton = explainer.loo_change(X_test, method="newton", target="decision_function")
    full = clone(est).fit(X, y, sample_weight=w).predict(X_test)
    for i in (0, 77, 199):
        keep = np.arange(len(y)) != i
        refit = clone(est).fit(X[keep], y[keep], sample_weight=w[keep])
        assert _relative(newton[:, i], refit.predict(X_test) - full) < 1e-5


def test_qr_factor_read_in_chunks_is_the_same(ols):
    # The square root is read in working_memory-sized blocks of rows, each
    # folded into R: no copy of the whole design.
    explainer, _, X, y, _ = ols
    obj = explainer.objective_
    operator = HessianOperator(obj, X, obj.family.encode(y), np.ones(len(y)))
    with config_context(working_memory=0.001):
        assert len(list(operator.hessian_square_root())) > 3
        chunked = ExactSolver().fit(operator)
    assert chunked.method_ == "qr"
    # Both are H's factor to rounding; their solves for the rows' gradients
    # (in the range of the square root) agree to cond(X) eps.
    G = obj.gradients(X, obj.family.encode(y)).T
    expected = explainer.solver_.solve(G)
    assert _relative(chunked.solve(G), expected) < 1e-8


def test_directions_curving_down_are_not_called_flat():
    from skinfluence.solvers import ExactSolver

    # An indefinite matrix (a non-convex loss short of a minimum): eigenvalues
    # -0.03, -0.001 (down), 0 (flat), then positive ones.
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    eig = np.array([-0.03, -0.001, 0.0, 0.05, 0.3, 0.6])
    H = (Q * eig) @ Q.T

    class Dense:  # the operator interface the exact solver reads
        null_space = None

        def to_dense(self):
            return H.copy()

    with pytest.raises(SingularHessianError) as excinfo:
        ExactSolver().fit(Dense())
    message = str(excinfo.value)
    assert "2 (curvature -0.03 to -0.001) curve down" in message
    assert "1 (curvature" in message and "flat to rounding" in message
    assert "-0.03) are flat" not in message
