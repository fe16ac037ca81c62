"""The dask path on a 2-worker LocalCluster gives the in-memory numbers."""

import numpy as np
import pandas as pd
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.solvers import LissaSolver

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

CHUNK = 350  # rows per chunk: 4 chunks of X, the last one short


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1200, 5)) * [1, 2, 3, 1, 1] + [0, 0, 5, 0, 0]
    y = np.argmax(X[:, :3] / [1, 2, 3] + rng.standard_normal((1200, 3)), axis=1)
    sw = rng.uniform(0.5, 2.0, 1200)
    return X, y, sw


def assert_close(actual, desired, tol=1e-10):
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape
    assert np.abs(actual - desired).max() <= tol * np.abs(desired).max()


def _pair(estimator, X, y, sw=None, **kw):
    """The same frozen model explained in memory and on the cluster."""
    memory = InfluenceExplainer(FrozenEstimator(estimator), **kw).fit(X, y, sw)
    Xd = da.from_array(X, chunks=(CHUNK, 2))  # column chunks are merged
    on_dask = InfluenceExplainer(FrozenEstimator(estimator), **kw).fit(Xd, y, sw)
    return memory, on_dask


@pytest.fixture(scope="module")
def multinomial(client, data):
    X, y, sw = data
    model = LogisticRegression(C=0.5, tol=1e-12, max_iter=2000)
    return _pair(model.fit(X, y, sample_weight=sw), X, y, sw)


def test_influence_is_lazy_with_one_block_per_chunk(multinomial, data):
    X, y, _ = data
    memory, on_dask = multinomial
    M = on_dask.influence(X[:7], y[:7])
    assert isinstance(M, da.Array)
    assert M.chunks[1] == (CHUNK, CHUNK, CHUNK, 150)
    assert_close(M.compute(), memory.influence(X[:7], y[:7]))
    assert on_dask.stationarity_ == pytest.approx(memory.stationarity_, rel=1e-8)


def test_self_influence_and_blocks(multinomial, data):
    X, y, _ = data
    memory, on_dask = multinomial
    s = on_dask.self_influence()
    assert isinstance(s, da.Array) and s.chunks == ((CHUNK, CHUNK, CHUNK, 150),)
    assert_close(s.compute(), memory.self_influence())
    assembled = np.full((4, len(y)), np.nan)
    for test_rows, train_rows, block in on_dask.influence_blocks(X[:4], y[:4]):
        assembled[test_rows, train_rows] = block
    assert_close(assembled, memory.influence(X[:4], y[:4]))


@pytest.mark.parametrize("method", ["influence", "theta_relatif", "l_relatif"])
def test_top_influential_is_a_reduction(multinomial, data, method):
    X, y, _ = data
    memory, on_dask = multinomial
    expected = memory.top_influential(X[:6], y[:6], k=4, method=method)
    got = on_dask.top_influential(X[:6], y[:6], k=4, method=method)
    numbers = ["score", "influence", "loo_change"]
    pd.testing.assert_frame_equal(
        got.drop(columns=numbers), expected.drop(columns=numbers)
    )
    for column in numbers:
        assert_close(got[column], expected[column])
    assert got.attrs == expected.attrs


@pytest.mark.parametrize("method", ["influence", "newton"])
def test_loo_change_is_lazy(multinomial, data, method):
    X, y, _ = data
    memory, on_dask = multinomial
    M = on_dask.loo_change(X[:5], y[:5], method=method)
    assert isinstance(M, da.Array) and M.chunks[1] == (CHUNK, CHUNK, CHUNK, 150)
    assert_close(M.compute(), memory.loo_change(X[:5], y[:5], method=method))


def test_rows_of_weight_zero_are_in_no_answer(client, data):
    """As in memory: a row outside the fit has influence 0 and is never listed."""
    X, y, sw = data
    sw = sw.copy()
    sw[::7] = 0.0
    model = LogisticRegression(C=0.5, tol=1e-12, max_iter=2000)
    memory, on_dask = _pair(model.fit(X, y, sample_weight=sw), X, y, sw)
    outside = sw == 0
    M = on_dask.influence(X[:4], y[:4]).compute()
    assert np.all(M[:, outside] == 0) and np.all(M[:, ~outside] != 0)
    assert_close(M, memory.influence(X[:4], y[:4]))
    s = on_dask.self_influence().compute()
    assert np.all(s[outside] == 0) and np.all(s[~outside] > 0)
    for method in ("influence", "theta_relatif"):
        table = on_dask.top_influential(X[:4], y[:4], k=30, method=method)
        assert not outside[table["train_row"]].any()


def test_cg_solver_and_dask_labels(client, data):
    """cg runs its Hessian products on the cluster; y may be a dask array."""
    X, y, _ = data
    model = LogisticRegression(C=0.5, tol=1e-12, max_iter=2000).fit(X, y)
    est = FrozenEstimator(model)
    memory = InfluenceExplainer(est, solver="cg").fit(X, y)
    Xd = da.from_array(X, chunks=(CHUNK, 5))
    on_dask = InfluenceExplainer(est, solver="cg").fit(Xd, da.from_array(y, 500))
    # CG bounds each solve's residual by tol=1e-10, not its error: the two
    # operators sum their chunks in different orders, so the solves agree to
    # about cond(H) * tol.
    assert_close(
        on_dask.influence(X[:5], y[:5]).compute(),
        memory.influence(X[:5], y[:5]),
        tol=1e-8,
    )
    with pytest.raises(NotImplementedError, match="solver='exact'"):
        on_dask.self_influence()


def test_pipeline_prefix_and_reweighted_glm(client, data):
    X, y, sw = data
    pipe = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-12)).fit(X, y)
    memory, on_dask = _pair(pipe, X, y)
    assert_close(
        on_dask.influence(X[:3], y[:3]).compute(), memory.influence(X[:3], y[:3])
    )
    counts = np.random.default_rng(1).poisson(np.exp(0.2 * X[:, 0]))
    glm = PoissonRegressor(alpha=0.1, tol=1e-12, max_iter=1000).fit(X, counts, sw)
    memory, on_dask = _pair(glm, X, counts, sw)
    assert np.any(memory.objective_.reweight_term())
    assert_close(on_dask.self_influence().compute(), memory.self_influence())


def test_errors_name_the_fix(client, data):
    X, y, _ = data
    Xd = da.from_array(X, chunks=(CHUNK, 5))
    with pytest.raises(TypeError, match="FrozenEstimator"):
        InfluenceExplainer(LogisticRegression()).fit(Xd, y)
    model = FrozenEstimator(LogisticRegression(tol=1e-10).fit(X, y))
    with pytest.raises(ValueError, match="batch_size"):
        InfluenceExplainer(model, solver=LissaSolver(batch_size=100)).fit(Xd, y)
    explainer = InfluenceExplainer(model).fit(Xd, y)
    with pytest.raises(NotImplementedError, match="loo_change"):
        explainer.group_influence([[0, 1]], X[:2], y[:2])
