"""The explainer finishes its own clone's fit; refine() polishes a fitted model."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import (
    LogisticRegression,
    PoissonRegressor,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, StationarityWarning, refine


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _tight(model):
    """The same estimator fitted to (near) machine precision."""
    return model.set_params(tol=1e-12, max_iter=100_000)


@pytest.mark.parametrize(
    "make, data",
    [
        (lambda: LogisticRegression(C=1.0), "cancer"),
        (lambda: LogisticRegression(C=0.3), "wine"),
        (lambda: PoissonRegressor(alpha=0.5), "diabetes"),
    ],
)
def test_default_tol_is_explained_quietly_and_as_the_optimum(make, data, cancer):
    if data == "cancer":
        X, y = cancer
    elif data == "wine":
        X, y = load_wine(return_X_y=True)
        X = StandardScaler().fit_transform(X)
    else:
        X, y = load_diabetes(return_X_y=True)
        X, y = StandardScaler().fit_transform(X), y / 50
    with warnings.catch_warnings():
        warnings.simplefilter("error", StationarityWarning)
        ours = InfluenceExplainer(make()).fit(X, y)
        exact = InfluenceExplainer(FrozenEstimator(_tight(make()).fit(X, y))).fit(X, y)
    assert ours.stationarity_ <= 1e-3
    # The polished clone predicts with the polished parameters ...
    np.testing.assert_allclose(
        ours.objective_.coef.ravel(), np.ravel(ours.estimator_.coef_), rtol=0
    )
    # ... which are the optimum a tight sklearn fit reaches.
    np.testing.assert_allclose(
        ours.objective_.theta, exact.objective_.theta, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        ours.influence(X[:5], y[:5]),
        exact.influence(X[:5], y[:5]),
        rtol=1e-4,
        atol=1e-6 * np.abs(exact.influence(X[:5], y[:5])).max(),
    )


def test_far_from_optimum_multinomial_is_polished_past_a_tight_fit():
    # Digits, 650 parameters: the default tol stops far from the optimum, and
    # the steps after the first solve with the moving Hessian by CG
    # preconditioned with the first factorization. scikit-learn's own
    # tol=1e-12 fit stops on its objective's relative change, less stationary.
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StationarityWarning)
        ours = InfluenceExplainer(LogisticRegression(C=1.0)).fit(X, y)
    tight = _tight(LogisticRegression(C=1.0)).fit(X, y)
    exact = InfluenceExplainer(FrozenEstimator(tight)).fit(X, y)
    assert ours.n_polish_steps_ > 2 and ours.stationarity_ <= 1e-5
    assert ours.stationarity_ < exact.stationarity_ / 100
    b = ours.backend_
    args = (b.X_, b.target_, b.weights_)
    assert np.linalg.norm(b.objective_.mean_gradient(*args)) < 1e-9
    assert b.objective_.objective(*args) <= exact.objective_.objective(*args)
    # The factorization kept is the Hessian's at the final parameters.
    H = b.objective_.hessian(*args)
    Hv = H @ np.random.default_rng(0).normal(size=len(H))
    np.testing.assert_allclose(H @ b.solver_.solve(Hv), Hv, rtol=0, atol=1e-9)


@pytest.mark.parametrize("damping", [1e-2, 1e-1])
@pytest.mark.parametrize("data", ["cancer", "wine"])
def test_damped_explainer_polishes_to_the_undamped_optimum(data, damping, cancer):
    # Damping is the inverse's, not the model's: the polish still reaches
    # the objective's optimum, quietly (damped steps alone crawl there).
    if data == "cancer":
        X, y = cancer
    else:
        X, y = load_wine(return_X_y=True)
        X = StandardScaler().fit_transform(X)
    model = LogisticRegression(C=1.0, tol=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StationarityWarning)
        damped = InfluenceExplainer(model, damping=damping).fit(X, y)
    plain = InfluenceExplainer(model).fit(X, y)
    assert damped.stationarity_ <= 1e-3 and damped.n_polish_steps_ < 10
    # Stationarity is measured through the damped inverse, which shrinks it.
    theta = plain.objective_.theta
    scale = np.abs(theta).max()
    np.testing.assert_allclose(damped.objective_.theta, theta, atol=1e-4 * scale)


def test_sgd_is_polished_to_its_own_objective(cancer):
    X, y = cancer
    with warnings.catch_warnings():
        warnings.simplefilter("error", StationarityWarning)
        ex = InfluenceExplainer(
            SGDClassifier(loss="log_loss", alpha=0.01, random_state=0)
        ).fit(X, y)
    assert ex.n_polish_steps_ > 0 and ex.stationarity_ <= 1e-3
    gradient = ex.objective_.mean_gradient(
        ex.backend_.X_, ex.backend_.target_, ex.backend_.weights_
    )
    assert np.linalg.norm(gradient) < 1e-6


def test_polished_hessian_is_the_one_at_the_final_parameters():
    # Polishing steps may reuse a Hessian factorized at an earlier iterate;
    # what the explainer keeps must be the Hessian at the parameters it ends at.
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(C=3.0, tol=1e-2, fit_intercept=False)
    ex = InfluenceExplainer(model).fit(X, y)
    assert ex.n_polish_steps_ > 1
    b = ex.backend_
    H = b.objective_.hessian(b.X_, b.target_, b.weights_)
    np.testing.assert_allclose(b.solver_.solve(H), np.eye(len(H)), atol=1e-9)
    gradient = b.objective_.mean_gradient(b.X_, b.target_, b.weights_)
    np.testing.assert_allclose(b.gradient_, gradient, rtol=0, atol=1e-15)
    assert ex.stationarity_ <= 1e-3


def test_converged_fit_takes_no_step(cancer):
    X, y = cancer
    ex = InfluenceExplainer(LogisticRegression(tol=1e-12, max_iter=10_000)).fit(X, y)
    assert ex.n_polish_steps_ == 0


def test_refine_returns_a_polished_copy(cancer):
    X, y = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-2)).fit(X, y)
    before = model[-1].coef_.copy()
    with pytest.warns(StationarityWarning, match="refine"):
        InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
    polished = refine(model, X, y)
    np.testing.assert_array_equal(model[-1].coef_, before)  # a copy
    with warnings.catch_warnings():
        warnings.simplefilter("error", StationarityWarning)
        ex = InfluenceExplainer(FrozenEstimator(polished)).fit(X, y)
    assert ex.stationarity_ <= 1e-3


def test_refine_regressor_with_sample_weight():
    X, y = load_diabetes(return_X_y=True)
    sw = np.linspace(0.5, 2.0, len(y))
    model = SGDRegressor(alpha=0.1, random_state=0).fit(X, y, sample_weight=sw)
    ex = InfluenceExplainer(FrozenEstimator(refine(model, X, y, sw))).fit(X, y, sw)
    assert ex.stationarity_ <= 1e-3


def test_refine_refuses_kernel_models():
    from sklearn.kernel_ridge import KernelRidge

    X, y = load_diabetes(return_X_y=True)
    with pytest.raises(TypeError, match="coef_ and intercept_"):
        refine(KernelRidge().fit(X, y), X, y)


def test_cg_polish_by_inexact_steps_reaches_the_exact_optimum():
    # With an iterative solver each Newton step is a solve to 1e-3 and the
    # stationarity estimate one to 1e-4: the optimum is the exact solver's.
    from skinfluence.core._stationarity import stationarity, stationarity_rows
    from skinfluence.solvers import CGSolver

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(C=0.5, max_iter=2000)  # default tol
    with warnings.catch_warnings():
        warnings.simplefilter("error", StationarityWarning)
        cg = InfluenceExplainer(model, solver="cg").fit(X, y)
        exact = InfluenceExplainer(model, solver="exact").fit(X, y)
    assert cg.n_polish_steps_ >= 1 and cg.stationarity_ <= 1e-3
    scale = np.abs(exact.objective_.theta).max()
    np.testing.assert_allclose(
        cg.objective_.theta, exact.objective_.theta, atol=1e-6 * scale
    )
    # The loose solver is a copy; the explainer's keeps its own tol.
    loose = cg.solver_.with_tol(1e-4)
    assert loose.tol == 1e-4 and cg.solver_.tol == CGSolver().tol
    assert loose.with_tol(1e-12).tol == 1e-4  # never tighter than it was
    backend = cg.backend_
    rows = stationarity_rows(backend.n_train_)
    obj = backend.objective_
    G = obj.expand(backend.X_[rows], backend.residuals_[rows])
    shares = backend.weights_[rows] / backend.weights_.sum()
    g = backend.gradient_
    tight = stationarity(exact.solver_, g, G, shares)  # every row solved exactly
    estimate = stationarity(cg.solver_, g, G, shares)  # 8 signs, solves to 1e-4
    assert 0.5 < estimate / tight < 2


@pytest.mark.parametrize("solver", ["lissa", "lowrank"])
def test_approximate_solvers_polish_and_measure_by_exact_products(solver):
    # Unscaled features: LiSSA's series does not converge in its depth and a
    # rank-50 truncation drops most directions, so Newton steps under either
    # would stop far from the optimum, and their stationarity understate it.
    X, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no convergence warning from polishing
        ours = InfluenceExplainer(LogisticRegression(max_iter=5000), solver=solver).fit(
            X, y
        )
    exact = InfluenceExplainer(LogisticRegression(max_iter=5000)).fit(X, y)
    assert ours.n_polish_steps_ <= 5
    assert ours.stationarity_ <= 1e-3
    np.testing.assert_allclose(
        ours.objective_.theta, exact.objective_.theta, rtol=1e-5, atol=1e-6
    )
    # A frozen, loosely fitted model: the stationarity the approximate
    # solver's explainer reports is the exact solver's.
    loose = FrozenEstimator(LogisticRegression(tol=1e-2, max_iter=5000).fit(X, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StationarityWarning)
        approx = InfluenceExplainer(loose, solver=solver).fit(X, y)
        reference = InfluenceExplainer(loose).fit(X, y)
    assert approx.stationarity_ == pytest.approx(reference.stationarity_, rel=0.5)
