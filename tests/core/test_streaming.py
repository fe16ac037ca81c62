"""Bounded memory: chunked loops equal unchunked ones, and nothing copies X.

A tiny ``working_memory`` forces chunks of a few rows through every loop;
the results must not move (to 1e-12), ``n_jobs=2`` must give what ``n_jobs=1``
gives, and tracemalloc's peak must stay far below one copy of ``X``.
"""

import subprocess
import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge

from skinfluence import InfluenceExplainer, MislabelDetector
from skinfluence.core import _formulas as _influence
from skinfluence.solvers import HessianOperator
from skinfluence.utils._chunks import MAX_CHUNK_ROWS, chunk_slices

TINY = 2e-3  # MiB: a few rows per chunk for these sizes


def assert_close(actual, desired, tol=1e-12):
    """Equal up to ``tol`` times the largest entry (rounding, not chunking)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape
    scale = max(np.abs(desired).max(), np.finfo(float).tiny)
    assert np.abs(actual - desired).max() <= tol * scale


@pytest.fixture(scope="module")
def multiclass():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 6))
    y = np.argmax(X[:, :3] + 0.7 * rng.standard_normal((400, 3)), axis=1)
    sw = rng.uniform(0.5, 2.0, 400)
    sw[:37] = 0.0  # whole chunks of weightless rows
    return X, y, sw


@pytest.fixture(scope="module")
def explainers(multiclass):
    X, y, sw = multiclass
    model = LogisticRegression(C=0.3, tol=1e-12, max_iter=2000)
    model.fit(X, y, sample_weight=sw)
    return {"exact": InfluenceExplainer(FrozenEstimator(model)).fit(X, y, sw)}


def _poisson(rng):
    """A GLM: its penalty scales with the weight sum (the reweight term)."""
    X = rng.standard_normal((300, 4))
    y = rng.poisson(np.exp(0.3 * X[:, 0]))
    model = PoissonRegressor(alpha=0.1, tol=1e-12, max_iter=1000).fit(X, y)
    return InfluenceExplainer(FrozenEstimator(model)).fit(X, y), X, y


def test_chunk_slices_cover_rows_within_budget():
    with config_context(working_memory=1.0):
        slices = chunk_slices(10_000, 1000.0)
        two_jobs = chunk_slices(10_000, 1000.0, n_jobs=2)
    sizes = [s.stop - s.start for s in slices]
    assert slices[0].start == 0 and slices[-1].stop == 10_000
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    assert max(sizes) == 2**20 // 1000  # rows whose temporaries fit in 1 MiB
    assert max(s.stop - s.start for s in two_jobs) == 2**20 // 2000  # shared
    assert [s.stop - s.start for s in chunk_slices(5, 1e12)] == [1] * 5
    assert chunk_slices(10**6, 1.0)[0].stop == MAX_CHUNK_ROWS


def test_hessian_operator_chunks_equal_whole(explainers, multiclass):
    X, y, sw = multiclass
    ex = explainers["exact"]
    whole = HessianOperator(ex.objective_, X, ex.backend_.target_, ex.backend_.weights_)
    V = np.random.default_rng(1).standard_normal((ex.n_params_, 3))
    H, HV, diag = whole.to_dense(), whole.matmat(V), whole.diagonal()
    for n_jobs in (None, 2):
        op = HessianOperator(
            ex.objective_, X, ex.backend_.target_, ex.backend_.weights_, n_jobs
        )
        with config_context(working_memory=TINY):
            assert len(chunk_slices(len(y), op._row_bytes(), n_jobs)) > 20
            assert_close(op.to_dense(), H)
            assert_close(op.matmat(V), HV)
            assert_close(op.diagonal(), diag)
    assert_close(H @ V, HV)


@pytest.mark.parametrize("binary", [True, False])
def test_dense_hessian_pass_also_gives_residuals_and_gradient(multiclass, binary):
    """to_dense's by-products, over chunks that include weightless ones."""
    X, y, sw = multiclass
    y = (y > 0).astype(int) if binary else y
    model = LogisticRegression(C=0.3, max_iter=50).fit(X, y, sample_weight=sw)
    ex = InfluenceExplainer(FrozenEstimator(model)).fit(X, y, sw)
    obj, t, w = ex.objective_, ex.backend_.target_, ex.backend_.weights_
    expected = obj.residuals(X, t), obj.mean_gradient(X, t, w)
    assert np.linalg.norm(expected[1]) > 1e-6  # not at the optimum: nonzero
    for n_jobs in (None, 2):
        op = HessianOperator(obj, X, t, w, n_jobs)
        with config_context(working_memory=TINY):
            op.to_dense()
        for got, want in zip(op.residuals_and_gradient(), expected):
            # The gradient near the optimum is a sum of much larger terms that
            # cancel: rounding is relative to them, not to the small result.
            assert_close(got, want, tol=1e-10)
    assert_close(ex.backend_.residuals_, expected[0])


def test_per_row_quantities_chunked_equal_whole(explainers):
    ex = explainers["exact"]
    obj, sol, X, R = ex.objective_, ex.solver_, ex.backend_.X_, ex.backend_.residuals_
    # The definitions, written out on the whole gradient matrix.
    G = obj.expand(X, R)
    Hinv_G = sol.solve(G.T)
    full = {
        "self": np.einsum("ij,ji->i", G, Hinv_G),
        "norms": np.linalg.norm(Hinv_G, axis=0),
        "params": -Hinv_G.T,
    }
    # The explainer's: rows of weight 0 are not in the fit, so exactly 0.
    inside = ex.backend_.weights_ > 0
    assert not inside.all()
    np.testing.assert_allclose(ex.self_influence(), full["self"] * inside)
    np.testing.assert_allclose(
        ex.influence_params(), full["params"] * inside[:, None], rtol=1e-10, atol=1e-14
    )
    assert np.all(full["self"][~inside] > 0)
    for n_jobs in (None, 2):
        with config_context(working_memory=TINY):
            got = {
                "self": _influence.self_influence(obj, sol, X, R, n_jobs),
                "norms": _influence.parameter_change_norms(obj, sol, X, R, n_jobs),
                "params": _influence.influence_params(obj, sol, X, R, n_jobs),
            }
        for key, value in got.items():
            assert_close(value, full[key])


def test_self_influence_with_reweight_term(rng):
    """GLMs: g_i' H^-1 (g_i + lam theta) through the Cholesky shortcut."""
    ex, X, _ = _poisson(rng)
    obj, sol = ex.objective_, ex.solver_
    assert np.any(obj.reweight_term())
    G = obj.expand(X, ex.backend_.residuals_)
    expected = np.einsum("ij,ji->i", G, sol.solve((G + obj.reweight_term()).T))
    with config_context(working_memory=1e-3):
        got = ex.self_influence()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("n_rows", [40, 2500])  # n < p: trsm; n >= p: trmm
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("kind", ["binary", "multinomial", "sparse", "poisson"])
def test_self_influence_by_factor_equals_dense_solve(rng, n_rows, lower, kind):
    """Both triangular kernels, both factor orientations, blocks across rows."""
    from scipy import linalg, sparse

    if kind == "poisson":
        ex, X, _ = _poisson(rng)
    else:
        X = rng.standard_normal((2500, 60))
        y = (X[:, 0] + rng.standard_normal(2500) > 0).astype(int)
        if kind == "multinomial":
            y = y + (X[:, 1] > 0.5)
        if kind == "sparse":
            X = sparse.csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0))
        ex = InfluenceExplainer(LogisticRegression(C=0.1, max_iter=500)).fit(X, y)
    rows = np.arange(n_rows) % X.shape[0]  # Poisson's 300 rows, repeated
    X, obj = X[rows], ex.objective_
    R = obj.residuals(X, ex.backend_.target_[rows])
    L = np.tril(ex.solver_.factor_[0])  # H as the exact solver factored it
    factor = (linalg.cholesky(L @ L.T, lower=lower), lower)
    got = _influence._self_influence_by_factor(obj, factor, X, R, None)
    G = obj.expand(X, R)
    expected = np.einsum(
        "ij,ji->i", G, linalg.cho_solve(factor, (G + obj.reweight_term()).T)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_influence_blocks_chunk_test_and_training_rows(explainers, multiclass):
    X, y, _ = multiclass
    ex = explainers["exact"]
    full = ex.influence(X[:30], y[:30])
    with config_context(working_memory=TINY):
        blocks = list(ex.influence_blocks(X[:30], y[:30]))
    test_chunks = {(t.start, t.stop) for t, _, _ in blocks}
    assert len(test_chunks) > 1 and len(blocks) > len(test_chunks)
    budget = TINY * 2**20
    assert all(b.nbytes <= budget for _, _, b in blocks)
    assembled = np.full(full.shape, np.nan)
    for test_rows, train_rows, block in blocks:
        assembled[test_rows, train_rows] = block
    assert_close(assembled, full)


@pytest.mark.parametrize("method", ["influence", "theta_relatif", "l_relatif"])
def test_top_influential_chunked_and_threaded(explainers, multiclass, method):
    X, y, _ = multiclass
    ex = explainers["exact"]
    full = ex.top_influential(X[:25], y[:25], k=4, method=method)
    ex2 = InfluenceExplainer(ex.estimator, n_jobs=2).fit(X, y, multiclass[2])
    with config_context(working_memory=0.02):  # 2 chunks of test rows
        chunked = ex.top_influential(X[:25], y[:25], k=4, method=method)
        threaded = ex2.top_influential(X[:25], y[:25], k=4, method=method)
    for other in (chunked, threaded):
        pd.testing.assert_frame_equal(
            other.drop(columns=["score", "influence"]),
            full.drop(columns=["score", "influence"]),
        )
        np.testing.assert_allclose(other["score"], full["score"], rtol=1e-10)
    scores = ex.influence(X[:25], y[:25])
    if method == "influence":
        harmful = full[(full.kind == "harmful") & (full.test_row == 7)]
        expected = np.argsort(-scores[7], kind="stable")[:4]
        np.testing.assert_array_equal(harmful["train_row"], expected)


def test_n_jobs_equals_one_job(multiclass):
    X, y, sw = multiclass
    est = LogisticRegression(C=0.3, tol=1e-12, max_iter=2000)
    one = InfluenceExplainer(est).fit(X, y, sw)
    two = InfluenceExplainer(est, n_jobs=2).fit(X, y, sw)
    with config_context(working_memory=TINY):
        assert_close(two.self_influence(), one.self_influence())
        b1 = np.hstack([b for _, _, b in one.influence_blocks(X[:3], y[:3])])
        b2 = np.hstack([b for _, _, b in two.influence_blocks(X[:3], y[:3])])
    assert_close(b2, b1)
    assert two.stationarity_ == pytest.approx(one.stationarity_, rel=1e-8)


def test_detector_scores_chunked_and_threaded(multiclass):
    X, y, _ = multiclass
    est = LogisticRegression(C=0.3, tol=1e-12, max_iter=2000).fit(X, y)
    full = MislabelDetector(FrozenEstimator(est), n_rounds=1).fit(X, y)
    ex = full.explainer_
    # The unchunked definition: eta_i + xt_i . delta_i from all Newton changes.
    H_inv = ex.backend_.inverse_hessian()
    delta = _influence.newton_parameter_changes(
        ex.objective_, H_inv, ex.backend_.X_, ex.backend_.target_, ex.backend_.weights_
    )
    b = ex.objective_.block_size
    eta = ex.objective_.linear_predictor(X)
    Xt = np.hstack([X, np.ones((len(y), 1))])
    for k in range(eta.shape[1]):
        eta[:, k] += np.einsum("ij,ij->i", Xt, delta[:, k * b : (k + 1) * b])
    loss = ex.objective_.family.loss(ex.backend_.target_, eta)
    np.testing.assert_allclose(full.scores_, loss, rtol=1e-10)
    rounds = MislabelDetector(FrozenEstimator(est)).fit(X, y)  # the default 3
    for n_jobs in (None, 2):
        with config_context(working_memory=TINY):
            chunked = MislabelDetector(FrozenEstimator(est), n_jobs=n_jobs)
            chunked.set_params(n_rounds=1).fit(X, y)
            assert_close(chunked.scores_, full.scores_)
            np.testing.assert_array_equal(chunked.label_issues_, full.label_issues_)
            chunked.set_params(n_rounds=3).fit(X, y)
            assert_close(chunked.scores_, rounds.scores_)


def test_fit_does_not_copy_X():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 5))
    y = (X[:, 0] > 0).astype(int)
    ex = InfluenceExplainer(LogisticRegression(tol=1e-10)).fit(X, y)
    assert np.shares_memory(ex.backend_.X_, X)
    fortran = np.asfortranarray(X)
    ex = InfluenceExplainer(Ridge()).fit(fortran, X[:, 1])
    assert np.shares_memory(ex.backend_.X_, fortran)


def _peak_bytes(func):
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("solver", ["exact", "cg"])
def test_peak_memory_stays_below_a_copy_of_X(solver):
    """Fit, self-influence, top-k and the detector never hold X-sized arrays."""
    rng = np.random.default_rng(0)
    n, d = 40_000, 40
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + rng.standard_normal(n) > 0).astype(int)
    model = LogisticRegression(C=0.1, tol=1e-10, max_iter=1000).fit(X, y)
    est = FrozenEstimator(model)
    bound = 0.25 * X.nbytes  # a (n, p) gradient copy alone is 1.0x
    with config_context(working_memory=0.5):
        explainer = InfluenceExplainer(est, solver=solver)
        assert _peak_bytes(lambda: explainer.fit(X, y)) < bound
        if solver == "exact":  # cg: one solve per training row, too slow here
            assert _peak_bytes(explainer.self_influence) < bound
        top = _peak_bytes(lambda: explainer.top_influential(X[:5], y[:5], k=3))
        assert top < bound
        if solver == "exact":
            # Its rounds also hold a few length-n vectors (outputs, scores, the
            # refit's losses and residuals), a 40th of X each here.
            detector = MislabelDetector(est)
            assert _peak_bytes(lambda: detector.fit(X, y)) < bound + 16 * 8 * n
            # One round fits the label-noise model, whose Newton steps hold a
            # few length-n vectors too.
            one = MislabelDetector(est, n_rounds=1)
            assert _peak_bytes(lambda: one.fit(X, y)) < bound + 16 * 8 * n
    # The unchunked gradient matrix, for scale: what the loops avoid.
    grads = _peak_bytes(
        lambda: explainer.objective_.expand(X, explainer.backend_.residuals_)
    )
    assert grads > 4 * bound


def test_import_does_not_import_dask():
    code = "import sys, skinfluence; print('dask' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
