"""Every iterative solver against the exact solver on real objectives.

Problems come from the objective adapters of fitted estimators: binary
logistic (scaled breast cancer), multinomial logistic (wine: a null space of
redundant intercepts), Ridge, Poisson, and logistic regression on a sparse
bag-of-words-like matrix. The right-hand sides are the gradients of the first
rows, as the explainer passes them.
"""

import functools
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from scipy import linalg
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_wine,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
)
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.adapters import build_objective
from skinfluence.exceptions import TruncationWarning
from skinfluence.solvers import (
    SOLVERS,
    CGSolver,
    ExactSolver,
    HessianOperator,
    LissaSolver,
    LowRankSolver,
    SingularHessianError,
    auto_damping,
    choose_solver,
    damping_from_spectrum,
    extreme_eigenvalues,
    make_solver,
)
from skinfluence.solvers._base import warn_not_converged

PROBLEMS = ["binary", "multinomial", "ridge", "poisson", "sparse"]
N_RHS = 5


def _operator(estimator, X, y):
    estimator.fit(X, y)
    objective, weights = build_objective(estimator, y, np.ones(X.shape[0]))
    target = objective.family.encode(y)
    operator = HessianOperator(objective, X, target, weights)
    B = objective.gradients(X[:N_RHS], target[:N_RHS]).T
    return operator, B


@functools.cache
def _problem(name):
    """``(operator, B)`` of a fitted model; B = gradients of its first rows."""
    rng = np.random.default_rng(0)
    if name == "binary":
        X, y = load_breast_cancer(return_X_y=True)
        model = LogisticRegression(max_iter=5000, tol=1e-10)
        return _operator(model, StandardScaler().fit_transform(X), y)
    if name == "multinomial":
        X, y = load_wine(return_X_y=True)
        model = LogisticRegression(max_iter=5000, tol=1e-10)
        return _operator(model, StandardScaler().fit_transform(X), y)
    if name == "ridge":
        X, y = load_diabetes(return_X_y=True)
        return _operator(Ridge(alpha=1.0), X, y)
    if name == "poisson":
        X = 0.5 * rng.normal(size=(300, 8))
        y = rng.poisson(np.exp(X @ rng.normal(size=8) * 0.5))
        model = PoissonRegressor(alpha=1e-2, tol=1e-10, max_iter=1000)
        return _operator(model, X, y)
    if name == "sparse":  # word counts: 600 documents, 150 words
        X = sp.random(
            600,
            150,
            density=0.05,
            format="csr",
            random_state=0,
            data_rvs=lambda k: rng.poisson(2, k) + 1.0,
        )
        score = np.asarray(X[:, :10].sum(axis=1)).ravel()
        y = (score + rng.normal(size=600) > 2).astype(int)
        return _operator(LogisticRegression(C=10, max_iter=5000, tol=1e-10), X, y)
    raise KeyError(name)


@functools.cache
def _spectrum(name):
    """Eigenvalues of H on the complement of its null space, ascending."""
    operator, _ = _problem(name)
    H = operator.to_dense()
    N = operator.null_space
    if N is not None:
        Q = linalg.null_space(N.T)
        H = Q.T @ H @ Q
    return linalg.eigvalsh(H)


def _exact(name, damping=0.0):
    operator, B = _problem(name)
    return ExactSolver(damping=damping).fit(operator).solve(B)


def _relative_errors(X, X_exact):
    return np.linalg.norm(X - X_exact, axis=0) / np.linalg.norm(X_exact, axis=0)


class _Indefinite:
    """A stand-in operator with a negative eigenvalue (no objective needed)."""

    def __init__(self, eigenvalues, seed=0):
        p = len(eigenvalues)
        Q = np.linalg.qr(np.random.default_rng(seed).normal(size=(p, p)))[0]
        self.H = (Q * eigenvalues) @ Q.T
        self.shape = (p, p)
        self.null_space = None
        self.objective = object()  # no hessian_diagonal: no preconditioner
        self.X = np.zeros((10, 1))

    def matmat(self, V):
        return self.H @ np.asarray(V).reshape(self.shape[0], -1)

    def to_dense(self):
        return self.H.copy()


# -- the objective's Hessian diagonal --------------------------------------------


@pytest.mark.parametrize("name", PROBLEMS)
def test_hessian_diagonal_matches_dense_hessian(name):
    operator, _ = _problem(name)
    objective = operator.objective
    diag = objective.hessian_diagonal(operator.X, operator.target, operator.weights)
    np.testing.assert_allclose(diag, np.diag(operator.to_dense()), rtol=1e-12)


# -- conjugate gradients ------------------------------------------------------------


@pytest.mark.parametrize("preconditioner", ["jacobi", None])
@pytest.mark.parametrize("name", PROBLEMS)
def test_cg_matches_exact(name, preconditioner):
    operator, B = _problem(name)
    solver = CGSolver(preconditioner=preconditioner).fit(operator)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        X = solver.solve(B)
    assert _relative_errors(X, _exact(name)).max() < 1e-8
    assert solver.converged_.all()
    if operator.null_space is not None:  # the minimum-norm solution
        np.testing.assert_allclose(operator.null_space.T @ X, 0, atol=1e-12)
    # One right-hand side as a vector gives a vector.
    x = solver.solve(B[:, 0])
    assert x.shape == (B.shape[0],)
    np.testing.assert_allclose(x, X[:, 0], rtol=1e-6)


@pytest.mark.parametrize("name", ["binary", "multinomial", "poisson"])
def test_cg_preconditioned_by_nearby_factorization(name):
    # A factorization at parameters moved by 1% preconditions the Hessian at
    # the fit: CG reaches its exact solution in a few iterations.
    operator, B = _problem(name)
    objective = operator.objective
    moved = objective.with_theta(1.01 * objective.theta)
    nearby = ExactSolver().fit(
        HessianOperator(moved, operator.X, operator.target, operator.weights)
    )
    solver = CGSolver(preconditioner=nearby).fit(operator)
    X = solver.solve(B)
    assert _relative_errors(X, _exact(name)).max() < 1e-8
    assert solver.n_iter_ <= 8
    # The nearby factorization alone is off: CG did the work.
    assert _relative_errors(nearby.solve(B), _exact(name)).max() > 1e-4
    with pytest.raises(ValueError, match="a fitted solver"):
        CGSolver(preconditioner="cholesky").fit(operator)


def test_cg_matches_exact_with_damping():
    operator, B = _problem("ridge")
    X = CGSolver(damping=0.3).fit(operator).solve(B)
    assert _relative_errors(X, _exact("ridge", damping=0.3)).max() < 1e-8


def test_cg_residual_history_decreases():
    operator, B = _problem("binary")
    solver = CGSolver(tol=1e-10).fit(operator)
    solver.solve(B)
    history = solver.residual_history_
    assert history.shape == (solver.n_iter_ + 1, B.shape[1])
    np.testing.assert_array_equal(history[0], 1.0)
    assert np.all(history[-1] <= 1e-10)
    # CG residuals are not monotone, but fall geometrically on the whole: each
    # column's best residual drops over every stretch of 10 iterations.
    for column in history.T:
        stop = np.flatnonzero(column <= 1e-10)[0]
        best = np.minimum.accumulate(column[: stop + 1])
        assert np.all(np.diff(best[::10]) < 0)
        assert np.all(np.diff(best) <= 0) and best[-1] < 1e-10


def test_cg_warns_naming_unconverged_rows():
    operator, B = _problem("binary")
    solver = CGSolver(maxiter=2).fit(operator)
    match = r"5 of 5 right-hand sides \(columns 0, 1, 2, 3, 4\)"
    with pytest.warns(ConvergenceWarning, match=match) as rec:
        solver.solve(B)
    message = str(rec[0].message)
    assert "maxiter" in message and "damping" in message
    # Solves run for training rows too (self-influence, stationarity).
    assert "test rows" not in message
    assert solver.n_iter_ == 2 and not solver.converged_.any()


def test_cg_warns_once_per_fitted_solver():
    """Python's once-per-line rule cannot hold back repeated solves: the
    residual in the message varies, and leaving ``catch_warnings`` clears
    its record. The solver keeps its own."""
    operator, B = _problem("binary")
    solver = CGSolver(maxiter=2).fit(operator)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(3):
            solver.solve(B)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
        loose = solver.with_tol(1e-3)  # its own tolerance, its own warning
        loose.solve(B)
        solver.with_tol(1e-3).solve(B)  # copies share the record
    messages = [str(w.message) for w in rec if w.category is ConvergenceWarning]
    assert len(messages) == 2
    assert "tol=1e-10" in messages[0] and "tol=0.001" in messages[1]
    assert not solver.converged_.any()  # every solve still records it
    solver.fit(operator)  # a new fit, a new record
    with pytest.warns(ConvergenceWarning):
        solver.solve(B)


def test_not_converged_warned_again_only_when_much_worse():
    class Solver:
        pass

    solver = Solver()
    with pytest.warns(ConvergenceWarning, match="first"):
        warn_not_converged(solver, 1e-4, 1e-3, "first")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_not_converged(solver, 1e-4, 5e-3, "within ten times")
    with pytest.warns(ConvergenceWarning, match="much worse"):
        warn_not_converged(solver, 1e-4, 2e-2, "much worse")


def test_cg_zero_column_and_inverse():
    operator, B = _problem("ridge")
    B = B.copy()
    B[:, 1] = 0.0
    X = CGSolver().fit(operator).solve(B)
    np.testing.assert_array_equal(X[:, 1], 0.0)
    with pytest.raises(NotImplementedError, match=r"method='newton'.*solver='exact'"):
        CGSolver().fit(operator).inverse()


def test_cg_indefinite_hessian_names_damping():
    operator = _Indefinite(np.array([-1.0, 0.5, 1.0, 2.0, 3.0]))
    with pytest.raises(SingularHessianError, match="damping"):
        CGSolver().fit(operator).solve(np.ones(5))
    # Enough damping makes it positive definite again.
    solver = CGSolver(damping="auto").fit(operator)
    assert solver.damping_ > 1.0
    x = solver.solve(np.ones(5))
    H = operator.H + solver.damping_ * np.eye(5)
    np.testing.assert_allclose(H @ x, np.ones(5), atol=1e-9)


# -- LiSSA ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROBLEMS)
def test_lissa_full_batch_within_bound(name):
    """Full batches: ``||error|| <= (1 - mu / scale) ** (n_iter + 1) ||x||``."""
    operator, B = _problem(name)
    eig = _spectrum(name)
    damping = 1e-2 * eig[-1]  # condition number at most about 100
    solver = LissaSolver(damping=damping, depth=3000, tol=1e-8).fit(operator)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        X = solver.solve(B)
    assert eig[-1] + damping <= solver.scale_ <= 1.2 * (eig[-1] + damping)
    X_exact = _exact(name, damping)
    rate = 1.0 - (eig[0] + damping) / solver.scale_
    bound = rate ** (solver.n_iter_ + 1) * np.linalg.norm(X_exact, axis=0)
    error = np.linalg.norm(X - X_exact, axis=0)
    assert np.all(error <= bound * (1 + 1e-6) + 1e-14)
    assert _relative_errors(X, X_exact).max() < 1e-5
    assert solver.residual_history_.shape == (solver.n_iter_, B.shape[1])
    assert np.all(solver.residual_ <= 1e-8)


def test_lissa_undamped_full_batch_within_bound():
    operator, B = _problem("binary")
    eig = _spectrum("binary")
    solver = LissaSolver(depth=500, random_state=0).fit(operator)
    with pytest.warns(ConvergenceWarning, match="depth"):
        X = solver.solve(B)
    X_exact = _exact("binary")
    bound = (1.0 - eig[0] / solver.scale_) ** 501 * np.linalg.norm(X_exact, axis=0)
    assert solver.n_iter_ == 500
    assert np.all(np.linalg.norm(X - X_exact, axis=0) <= bound)


class _ProductsOnly:
    """An operator that cannot form its Hessian: products only."""

    def __init__(self, operator):
        self._operator = operator

    def __getattr__(self, name):
        if name == "to_dense":
            raise AttributeError(name)
        return getattr(self._operator, name)


@pytest.mark.parametrize("name", PROBLEMS)
def test_lissa_dense_hessian_same_recursion(name):
    """Multiplying by a formed H runs the same recursion as asking for products."""
    operator, B = _problem(name)
    damping = 1e-2 * _spectrum(name)[-1]

    def run(op):
        solver = LissaSolver(
            damping=damping, scale=2.0 * _spectrum(name)[-1], depth=300
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return solver.fit(op).solve(B), solver

    X_dense, dense = run(operator)
    X_products, products = run(_ProductsOnly(operator))
    assert dense.dense_hessian_ and not products.dense_hessian_
    assert dense.n_iter_ == products.n_iter_
    np.testing.assert_allclose(X_dense, X_products, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dense.residual_, products.residual_, atol=1e-12)


def test_lissa_products_when_hessian_exceeds_working_memory():
    operator, B = _problem("poisson")
    solver = LissaSolver(scale=2.0 * _spectrum("poisson")[-1], depth=20, tol=1e-30)
    with sklearn.config_context(working_memory=0):
        with pytest.warns(ConvergenceWarning):
            solver.fit(operator).solve(B)
    assert not solver.dense_hessian_


def test_lissa_minibatches_close_on_damped_problem():
    """Minibatch noise: within 5% on a well-conditioned (damped) problem."""
    operator, B = _problem("ridge")
    damping = 0.05 * _spectrum("ridge")[-1]
    solver = LissaSolver(
        damping=damping, depth=200, repeats=4, batch_size=64, random_state=0
    ).fit(operator)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # residual below 0.1
        X = solver.solve(B)
    assert _relative_errors(X, _exact("ridge", damping)).max() < 0.05
    assert solver.residual_history_.shape == (200, B.shape[1])
    # Same seed, same estimate.
    again = LissaSolver(
        damping=damping, depth=200, repeats=4, batch_size=64, random_state=0
    ).fit(operator)
    np.testing.assert_array_equal(again.solve(B), X)


def test_lissa_minibatches_warn_on_a_large_full_data_residual():
    operator, B = _problem("binary")
    solver = LissaSolver(batch_size=100, depth=1000, random_state=0).fit(operator)
    match = r"5 of 5 right-hand sides \(columns 0, 1, 2, 3, 4\).*on the full data"
    with pytest.warns(ConvergenceWarning, match=match) as rec:
        X = solver.solve(B)
    message = str(rec[0].message)
    assert "batch_size" in message and "solver='cg'" in message
    assert "test rows" not in message
    assert solver.residual_.max() > 0.1
    # The warning is due: the estimate is far from the solution.
    assert _relative_errors(X, _exact("binary")).max() > 0.1
    # The full-batch path warns by the same rule, in the same words.
    full = LissaSolver(depth=20).fit(operator)
    with pytest.warns(ConvergenceWarning, match=r"LissaSolver did not converge for"):
        full.solve(B)


def test_lissa_divergence_names_scale():
    operator, B = _problem("binary")
    solver = LissaSolver(scale=0.1 * _spectrum("binary")[-1], depth=100)
    with pytest.raises(ValueError, match=r"Increase `scale`"):
        solver.fit(operator).solve(B)


def test_lissa_indefinite_names_damping():
    operator = _Indefinite(np.array([-0.5, 0.5, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="increase `damping`"):
        LissaSolver(depth=2000).fit(operator).solve(np.ones(5))


# -- low rank -------------------------------------------------------------------------


@pytest.mark.parametrize("damping", [0.0, 0.01])
@pytest.mark.parametrize("name", PROBLEMS)
def test_lowrank_full_rank_is_exact(name, damping):
    operator, B = _problem(name)
    solver = LowRankSolver(rank=operator.shape[0], damping=damping).fit(operator)
    X = solver.solve(B)
    assert _relative_errors(X, _exact(name, damping)).max() < 1e-8


@pytest.mark.filterwarnings("ignore::skinfluence.exceptions.TruncationWarning")
@pytest.mark.parametrize("name", PROBLEMS)
def test_lowrank_within_bound(name):
    """Rank < p: ``||x - approx|| <= ||P_perp b|| / lambda_min``."""
    operator, B = _problem(name)
    eig = _spectrum(name)
    rank = max(2, operator.shape[0] // 3)
    solver = LowRankSolver(rank=rank, random_state=0).fit(operator)
    assert solver.components_.shape == (rank, operator.shape[0])
    np.testing.assert_allclose(solver.eigenvalues_, eig[::-1][:rank], rtol=1e-8)
    np.testing.assert_allclose(
        solver.components_ @ solver.components_.T, np.eye(rank), atol=1e-8
    )
    X = solver.solve(B)
    C = solver.components_
    bound = np.linalg.norm(B - C.T @ (C @ B), axis=0) / eig[0]
    assert np.all(np.linalg.norm(X - _exact(name), axis=0) <= bound * (1 + 1e-8))
    with pytest.raises(NotImplementedError, match="solver='exact'"):
        solver.inverse()


def _true_kept_share(operator, solver):
    """Kept share of ``sum_k c_k / (lambda_k + damping)`` from the dense eigh."""
    H = operator.to_dense()
    N = operator.null_space
    Q = np.eye(H.shape[0]) if N is None else linalg.null_space(N.T)
    lam, V = linalg.eigh(Q.T @ H @ Q)
    U = Q @ V
    penalty = operator.objective.penalty
    c = lam - (U**2 * penalty[:, None]).sum(axis=0)
    weight = np.clip(c, 0, None) / (lam + solver.damping_)
    return weight[::-1][: solver.rank_].sum() / weight.sum()


class _NoDiagonal(_ProductsOnly):
    """An operator without a diagonal: Hutchinson probes instead."""

    def __getattr__(self, name):
        if name == "diagonal":
            raise AttributeError(name)
        return getattr(self._operator, name)


@pytest.mark.filterwarnings("ignore::skinfluence.exceptions.TruncationWarning")
@pytest.mark.parametrize("name", PROBLEMS)
def test_lowrank_kept_share_bounds_the_kept_influence_weight(name):
    operator, B = _problem(name)
    rank = max(2, operator.shape[0] // 3)
    solver = LowRankSolver(rank=rank, random_state=0).fit(operator)
    true = _true_kept_share(operator, solver)
    assert true - 1e-8 <= solver.kept_share_ <= 1.0
    probed = LowRankSolver(rank=rank, random_state=0).fit(_NoDiagonal(operator))
    assert abs(probed.kept_share_ - solver.kept_share_) < 0.1
    # The directions left out are dropped, not damped: no influence there.
    C = solver.components_
    off = B - C.T @ (C @ B)
    assert np.abs(solver.solve(off)).max() <= 1e-10 * np.abs(solver.solve(B)).max()
    full = LowRankSolver(rank=operator.shape[0]).fit(operator)
    assert full.kept_share_ == pytest.approx(1.0)


def test_lowrank_warns_when_the_dropped_directions_carry_influence():
    """Wide data (200 rows, 1200 features): at rank 50 most of the influence
    lies in the dropped directions; at rank 195 little does."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1200))
    y = (X @ rng.normal(size=1200) > 0).astype(int)
    model = LogisticRegression(tol=1e-10, max_iter=5000)
    exact = InfluenceExplainer(model, solver="exact").fit(X, y)
    expected = exact.influence(X[:10], y[:10])

    def error(ex):
        return np.linalg.norm(ex.influence(X[:10], y[:10]) - expected) / np.linalg.norm(
            expected
        )

    match = r"rank=50\) keeps about \d+%.*`rank`.*'cg'.*'woodbury'.*'exact'"
    with pytest.warns(TruncationWarning, match=match):
        low = InfluenceExplainer(model, solver=LowRankSolver(random_state=0)).fit(X, y)
    assert low.solver_.kept_share_ < 0.9
    assert error(low) > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        solver = LowRankSolver(rank=195, random_state=0)
        high = InfluenceExplainer(model, solver=solver).fit(X, y)
    assert high.solver_.kept_share_ >= 0.9
    assert error(high) < 0.1


# -- spectrum and damping ---------------------------------------------------------


@pytest.mark.parametrize("name", PROBLEMS)
def test_extreme_eigenvalues_match_eigvalsh(name):
    operator, _ = _problem(name)
    eig = _spectrum(name)
    lo, hi = extreme_eigenvalues(operator, random_state=0, method="lanczos")
    np.testing.assert_allclose([lo, hi], [eig[0], eig[-1]], rtol=1e-6)
    np.testing.assert_allclose(
        extreme_eigenvalues(operator, method="dense"), [eig[0], eig[-1]], rtol=1e-10
    )


def _singular_regression():
    X, y = load_diabetes(return_X_y=True)
    X = np.hstack([X, X[:, :1], X[:, 1:2] + X[:, 2:3]])  # two exact collinearities
    operator, B = _operator(LinearRegression(), X, y)
    return operator, B


def test_auto_damping_zero_for_positive_definite():
    for name in PROBLEMS:
        assert auto_damping(_problem(name)[0]) == 0.0


def test_auto_damping_makes_singular_hessian_positive_definite():
    operator, B = _singular_regression()
    H = operator.to_dense()
    eig = linalg.eigvalsh(H)
    damping = auto_damping(operator)
    # The rule lifts the smallest eigenvalue to about 1e-4 of the largest.
    lifted = linalg.eigvalsh(H + damping * np.eye(H.shape[0]))[0]
    assert damping > 0 and lifted > 0
    np.testing.assert_allclose(lifted, 1e-4 * eig[-1], rtol=1e-3)
    # The Lanczos path (forced) agrees with the dense rule.
    lo, hi = extreme_eigenvalues(operator, method="lanczos", random_state=0)
    assert abs(lo - eig[0]) < 1e-8 * eig[-1]
    assert damping_from_spectrum(lo, hi) == pytest.approx(damping, rel=1e-6)
    # ExactSolver refuses without damping, suggests the same rule's value and
    # accepts damping='auto'; CG with the same damping agrees.
    with pytest.raises(SingularHessianError, match=r"damping=\d") as excinfo:
        ExactSolver().fit(operator)
    suggested = float(re.search(r"damping=([0-9.e-]+\d)", str(excinfo.value)).group(1))
    assert damping * (1 - 1e-9) <= suggested <= 1.1 * damping
    exact = ExactSolver(damping="auto").fit(operator)
    assert exact.damping_ == pytest.approx(damping)
    cg = CGSolver(damping="auto").fit(operator)
    assert _relative_errors(cg.solve(B), exact.solve(B)).max() < 1e-8


def test_indefinite_auto_damping_and_rule():
    assert damping_from_spectrum(1.0, 10.0) == 0.0
    assert damping_from_spectrum(0.0, 10.0) == pytest.approx(1e-3)
    assert damping_from_spectrum(-2.0, 10.0) == pytest.approx(2.001)
    operator = _Indefinite(np.linspace(-1.0, 3.0, 5))
    assert auto_damping(operator) == pytest.approx(1.0 + 3e-4)


@pytest.mark.filterwarnings("ignore::skinfluence.exceptions.TruncationWarning")
def test_larger_multinomial_model():
    """Digits: 650 parameters, 10 classes, a null space, Lanczos for real."""
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    operator, B = _operator(LogisticRegression(max_iter=5000, tol=1e-8), X, y)
    exact = ExactSolver().fit(operator).solve(B)
    assert _relative_errors(CGSolver().fit(operator).solve(B), exact).max() < 1e-8
    H = operator.to_dense()
    Q = linalg.null_space(operator.null_space.T)
    eig = linalg.eigvalsh(Q.T @ H @ Q)
    lo, hi = extreme_eigenvalues(operator, random_state=0)
    np.testing.assert_allclose([lo, hi], [eig[0], eig[-1]], rtol=1e-6)
    solver = LowRankSolver(rank=50, random_state=0).fit(operator)
    np.testing.assert_allclose(solver.eigenvalues_, eig[::-1][:50], rtol=1e-8)
    C = solver.components_
    bound = np.linalg.norm(B - C.T @ (C @ B), axis=0) / eig[0]
    assert np.all(np.linalg.norm(solver.solve(B) - exact, axis=0) <= bound)


# -- registry -------------------------------------------------------------------------


def test_make_solver_and_choose_solver():
    assert set(SOLVERS) == {"exact", "cg", "lissa", "lowrank", "woodbury"}
    for name, cls in SOLVERS.items():
        solver = make_solver(name, 0.5)
        assert type(solver) is cls and solver.damping == 0.5
    assert choose_solver(5000, 10) == "exact" and choose_solver(8192, 10) == "exact"
    assert choose_solver(8193, 10) == "cg"
    assert isinstance(make_solver("auto", "auto", n_params=10), ExactSolver)
    assert isinstance(make_solver("auto", 0.0, n_params=10**5), CGSolver)
    with pytest.raises(ValueError, match="n_params"):
        make_solver("auto", 0.0)
    with pytest.raises(ValueError, match="Unknown solver"):
        make_solver("newton", 0.0)
    # A user's object is copied, never fitted in place.
    operator, B = _problem("ridge")
    for mine in (CGSolver(tol=1e-12), ExactSolver(damping=0.1)):
        solver = make_solver(mine, 0.0).fit(operator)
        assert solver is not mine and not hasattr(mine, "damping_")
        assert solver.damping == mine.damping  # its own damping is kept
    assert make_solver(CGSolver(tol=1e-12), 0.0).tol == 1e-12


@pytest.mark.parametrize("multinomial", [False, True])
def test_iterative_stationarity_estimate_matches_exact(multinomial):
    """Iterative solvers sketch the typical row's change with random signs."""
    from sklearn.frozen import FrozenEstimator

    from skinfluence import InfluenceExplainer, StationarityWarning

    X, y = (
        load_wine(return_X_y=True)
        if multinomial
        else load_breast_cancer(return_X_y=True)
    )
    X = StandardScaler().fit_transform(X)
    values = {}
    for max_iter in (3, 1000):  # stopped early, and converged
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(max_iter=max_iter, tol=1e-10).fit(X, y)
        for solver in ("exact", CGSolver(tol=1e-10)):
            ex = InfluenceExplainer(FrozenEstimator(model), solver=solver)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", StationarityWarning)
                values[max_iter, str(solver)] = ex.fit(X, y).stationarity_
    exact, sketched = values[3, "exact"], values[3, str(CGSolver(tol=1e-10))]
    assert exact > 1.0  # three iterations leave a step larger than a row's effect
    assert 0.5 < sketched / exact < 2.0
    assert values[1000, str(CGSolver(tol=1e-10))] < 1e-3


def test_a_solver_object_keeps_its_damping_and_refuses_another():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from skinfluence import InfluenceExplainer

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(tol=1e-10, max_iter=5000)
    with pytest.raises(ValueError, match=r"Pass CGSolver\(damping=0.05\)"):
        InfluenceExplainer(model, solver=CGSolver(), damping=0.05).fit(X, y)
    with pytest.raises(ValueError, match=r"CGSolver\(damping='auto'\)"):
        InfluenceExplainer(model, solver=CGSolver(), damping="auto").fit(X, y)
    # The same damping in both, or in the object only: the damped system.
    by_object = InfluenceExplainer(model, solver=CGSolver(damping=0.05, tol=1e-12))
    by_name = InfluenceExplainer(model, solver="exact", damping=0.05)
    both = InfluenceExplainer(
        model, solver=CGSolver(damping=0.05, tol=1e-12), damping=0.05
    )
    expected = by_name.fit(X, y).influence(X[:3], y[:3])
    for ex in (by_object, both):
        np.testing.assert_allclose(
            ex.fit(X, y).influence(X[:3], y[:3]), expected, rtol=1e-6, atol=1e-10
        )
