"""WoodburySolver against the exact solver, and its place in solver='auto'."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import LinAlgWarning
from sklearn.datasets import load_wine
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
)
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.adapters import build_objective
from skinfluence.solvers import (
    CGSolver,
    ExactSolver,
    HessianOperator,
    WoodburyNotApplicableError,
    WoodburySolver,
    choose_solver,
    make_solver,
)


def _wide(rng, n=40, d=120, sparse=True):
    X = sp.random(n, d, density=0.1, format="csr", random_state=rng)
    return X if sparse else X.toarray()


def _operator(model, X, y, sw):
    model.fit(X, y, sample_weight=sw)
    objective, weights = build_objective(model, y, sw)
    target = objective.family.encode(y)
    operator = HessianOperator(objective, X, target, weights)
    B = objective.gradients(X[:5], target[:5]).T
    return operator, B


def _cases():
    rng = np.random.default_rng(0)
    wine_X, wine_y = load_wine(return_X_y=True)
    wine_X = StandardScaler().fit_transform(wine_X)
    for intercept in (True, False):
        yield (
            f"binary-sparse-{intercept}",
            LogisticRegression(C=10.0, tol=1e-12, fit_intercept=intercept),
            _wide(rng),
            np.arange(40) % 2,
        )
        yield (
            f"binary-dense-{intercept}",
            LogisticRegression(tol=1e-12, fit_intercept=intercept),
            _wide(rng, sparse=False),
            rng.integers(0, 2, 40),
        )
        yield (
            f"ridge-dense-{intercept}",
            Ridge(alpha=0.3, fit_intercept=intercept, solver="cholesky"),
            _wide(rng, sparse=False),
            rng.normal(size=40),
        )
        yield (
            f"ridge-sparse-{intercept}",  # H does not depend on the fit
            Ridge(alpha=0.3, fit_intercept=intercept),
            _wide(rng),
            rng.normal(size=40),
        )
        yield (
            f"poisson-sparse-{intercept}",
            PoissonRegressor(alpha=0.1, fit_intercept=intercept, tol=1e-12),
            _wide(rng),
            rng.poisson(1.0, 40).astype(float),
        )
        yield (
            f"multinomial-dense-{intercept}",
            LogisticRegression(tol=1e-12, fit_intercept=intercept, max_iter=5000),
            wine_X,
            wine_y,
        )
        yield (
            f"multinomial-sparse-{intercept}",
            LogisticRegression(tol=1e-12, fit_intercept=intercept, max_iter=5000),
            sp.csr_matrix(wine_X[::3]),
            wine_y[::3],
        )


CASES = list(_cases())


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("name", "model", "X", "y"), CASES, ids=[c[0] for c in CASES])
def test_matches_exact_solver(name, model, X, y, weighted):
    rng = np.random.default_rng(1)
    sw = rng.uniform(0.2, 2.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    if weighted:
        sw[3] = 0.0  # a row without weight adds no row to U
    operator, B = _operator(model, X, y, sw)
    if operator.null_space is None:  # arbitrary right-hand sides too
        B = np.hstack([B, rng.normal(size=(B.shape[0], 2))])
    exact = ExactSolver().fit(operator)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)  # accurate: no warning
        solver = WoodburySolver().fit(operator)
    assert solver.expected_error_ < 1e-10
    expected = exact.solve(B)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(solver.solve(B), expected, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(
        solver.solve(B[:, 0]), expected[:, 0], rtol=0, atol=1e-10 * scale
    )
    # As many rows as the curvature has rank: n (K = 1) or n (K - 1).
    K = operator.objective.n_outputs
    kept = np.count_nonzero(sw) * max(K - 1, 1)
    r = 0 if operator.null_space is None else operator.null_space.shape[1]
    assert solver.n_rows_ == kept + r


def _relative_residual(operator, X, B):
    H = operator.to_dense()
    return np.linalg.norm(H @ X - B, axis=0) / np.linalg.norm(B, axis=0)


@pytest.mark.parametrize("shape", [(300, 1500), (2000, 40)])
def test_warns_when_rounding_loses_digits(shape):
    """Columns on scales 1e-3 to 1e3 under a small penalty: S = I + U lam^-1 U'
    has a norm near 1e12, and the solve loses that many digits to rounding."""
    rng = np.random.default_rng(0)
    n, d = shape
    X = rng.normal(size=shape) * np.logspace(-3, 3, d)
    y = X @ rng.normal(size=d) * 1e-3 + rng.normal(size=n)
    operator, B = _operator(Ridge(alpha=1e-3), X, y, np.ones(n))
    with pytest.warns(LinAlgWarning, match="solver='exact'"):
        solver = WoodburySolver().fit(operator)
    residual = _relative_residual(operator, solver.solve(B), B).max()
    # The warning is due, and the expected error is the one measured.
    assert residual > 1e-6
    assert solver.expected_error_ / 30 < residual < 30 * solver.expected_error_
    exact = ExactSolver().fit(operator)
    assert _relative_residual(operator, exact.solve(B), B).max() < 1e-12


@pytest.mark.filterwarnings("ignore:An ill-conditioned matrix")  # Ridge(alpha=0)
def test_damping_makes_unpenalized_models_solvable():
    rng = np.random.default_rng(2)
    X, y = _wide(rng, sparse=False), rng.normal(size=40)
    operator, B = _operator(LinearRegression(), X, y, np.ones(40))
    with pytest.raises(WoodburyNotApplicableError, match="unpenalized"):
        WoodburySolver().fit(operator)
    expected = ExactSolver(damping=0.05).fit(operator).solve(B)
    got = WoodburySolver(damping=0.05).fit(operator).solve(B)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(got).max())
    ridge_operator, _ = _operator(Ridge(alpha=0.0), X, y, np.ones(40))
    with pytest.raises(WoodburyNotApplicableError, match="every coefficient"):
        WoodburySolver().fit(ridge_operator)


def test_explainer_matches_exact():
    rng = np.random.default_rng(3)
    X = _wide(rng, n=60, d=300)
    y = rng.integers(0, 2, 60)
    sw = rng.uniform(0.5, 1.5, 60)
    model = LogisticRegression(C=5.0, tol=1e-12)
    exact = InfluenceExplainer(model, solver="exact").fit(X[:50], y[:50], sw[:50])
    wood = InfluenceExplainer(model, solver="woodbury").fit(X[:50], y[:50], sw[:50])
    assert isinstance(wood.solver_, WoodburySolver)
    expected = exact.influence(X[50:], y[50:])
    np.testing.assert_allclose(
        wood.influence(X[50:], y[50:]),
        expected,
        rtol=0,
        atol=1e-10 * np.abs(expected).max(),
    )
    expected = exact.self_influence()
    np.testing.assert_allclose(
        wood.self_influence(), expected, rtol=0, atol=1e-10 * np.abs(expected).max()
    )
    # Newton leave-one-out needs the dense inverse, which it forms by solving.
    np.testing.assert_allclose(
        wood.solver_.inverse(), exact.solver_.inverse(), rtol=1e-9, atol=0
    )


def test_explainer_reports_unsupported_models():
    rng = np.random.default_rng(4)
    X, y = _wide(rng, sparse=False), rng.normal(size=40)
    with pytest.raises(WoodburyNotApplicableError, match="LinearRegression"):
        InfluenceExplainer(LinearRegression(), solver="woodbury").fit(X, y)


def test_auto_picks_woodbury_for_wide_penalized_models():
    rng = np.random.default_rng(5)
    X = sp.random(300, 6000, density=0.01, format="csr", random_state=rng)
    y = np.arange(300) % 2
    explainer = InfluenceExplainer(LogisticRegression(C=10.0, tol=1e-10)).fit(X, y)
    assert isinstance(explainer.solver_, WoodburySolver)
    # the same numbers as CG run to a tight tolerance
    got = explainer.influence(X[:3], y[:3])
    cg = InfluenceExplainer(
        LogisticRegression(C=10.0, tol=1e-10), solver=CGSolver(tol=1e-13)
    ).fit(X, y)
    expected = cg.influence(X[:3], y[:3])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8 * np.abs(got).max())

    objective = explainer.objective_
    assert choose_solver(6001, 300, objective) == "woodbury"
    assert choose_solver(6001, 300) == "exact"  # no objective: dense up to 8192
    assert choose_solver(9001, 300) == "cg"
    assert choose_solver(9001, 10000, objective) == "cg"  # n > p: not wide
    assert choose_solver(10**6, 12000, objective) == "cg"  # past the row bound
    # Up to 5000 parameters, Woodbury for m <= p / 4 from 1000 parameters:
    # its (m, m) factor is then a small part of the (p, p) Cholesky.
    assert choose_solver(5000, 300, objective) == "woodbury"
    assert choose_solver(1200, 300, objective) == "woodbury"
    assert choose_solver(1199, 300, objective) == "exact"
    assert choose_solver(999, 100, objective) == "exact"  # a Cholesky is quick
    assert choose_solver(5000, 300) == "exact"  # no objective
    assert choose_solver(7850, 7000, objective) == "exact"  # dense, not wide
    assert isinstance(
        make_solver("auto", 0.0, n_params=6001, n_samples=300, objective=objective),
        WoodburySolver,
    )
    unpenalized, _ = build_objective(
        LinearRegression().fit(X, y), y.astype(float), np.ones(300)
    )
    assert choose_solver(9001, 300, unpenalized) == "cg"


def test_rejects_other_objectives_and_inputs():
    class Operator:
        objective = None
        X = [[1.0]]

    with pytest.raises(WoodburyNotApplicableError, match="linear-output models"):
        WoodburySolver().fit(Operator())
    rng = np.random.default_rng(6)
    operator, _ = _operator(Ridge(), _wide(rng), rng.normal(size=40), np.ones(40))
    Operator.objective = operator.objective
    with pytest.raises(WoodburyNotApplicableError, match="numpy array or scipy"):
        WoodburySolver().fit(Operator())


def test_damped_multinomial_penalizes_intercepts_too():
    # damping > 0 moves the intercepts (and the redundant direction) into P
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(tol=1e-12, max_iter=5000)
    operator, B = _operator(model, X, y, np.ones(X.shape[0]))
    expected = ExactSolver(damping=0.1).fit(operator).solve(B)
    got = WoodburySolver(damping=0.1).fit(operator).solve(B)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(got).max())


def test_auto_woodbury_keeps_newton_for_the_predicted_removal_change():
    # Wide data below 5000 parameters now gets Woodbury; its inverse is exact,
    # so the displayed leave-one-out change stays one Newton step, which for
    # least squares is the refit itself.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 1200))
    y = X[:, :10].sum(axis=1) + 0.1 * rng.standard_normal(150)
    model = Ridge(alpha=5.0)
    explainer = InfluenceExplainer(model).fit(X, y)
    assert isinstance(explainer.solver_, WoodburySolver)
    assert explainer.backend_.preferred_loo_method() == "newton"
    table = explainer.top_influential(X[:1], y[:1], k=3)
    assert table.attrs["loo_change_method"] == "newton"
    base = (model.fit(X, y).predict(X[:1])[0] - y[0]) ** 2
    for row, change in zip(table.train_row, table.loo_change):
        keep = np.arange(150) != row
        refit = Ridge(alpha=5.0).fit(X[keep], y[keep])  # alpha: a sum's
        actual = (refit.predict(X[:1])[0] - y[0]) ** 2 - base
        assert change == pytest.approx(actual, rel=1e-6, abs=1e-10)
