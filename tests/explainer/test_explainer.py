"""InfluenceExplainer: conventions pinned against refits, API, errors."""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    SGDClassifier,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, scale
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.fixes import parse_version

from skinfluence import (
    InfluenceExplainer,
    SingularHessianError,
    StationarityWarning,
)
from skinfluence.utils import _chunks


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return scale(X)[:, :10], y


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return scale(X), y


def _logreg(**kw):
    # Newton-Cholesky lands on the optimum to machine precision, so refits
    # measure the model, not the optimizer.
    return LogisticRegression(
        C=0.5, tol=1e-12, max_iter=500, solver="newton-cholesky", **kw
    )


# scikit-learn < 1.7 runs the sparse sample-weight check on estimators that
# refuse sparse input too (its issue #30139); later versions skip them.
_SPARSE_CHECK_IGNORES_TAGS = parse_version(sklearn.__version__) < parse_version("1.7")

# LogisticRegression's l1_ratio chooses the penalty by itself from scikit-learn
# 1.8 (penalty='deprecated'); before, it is ignored unless penalty='elasticnet'.
_NEEDS_L1_RATIO_PENALTY = pytest.mark.skipif(
    LogisticRegression().penalty != "deprecated",
    reason="before scikit-learn 1.8, l1_ratio without penalty='elasticnet' is "
    "ignored: the model has the smooth default penalty='l2'",
)


def _expected_failed_checks(estimator):
    if hasattr(estimator.estimator, "steps"):
        expected = {
            "check_sample_weight_equivalence_on_dense_data": (
                "sample_weight goes to the final step only (the explained model); "
                "earlier steps such as StandardScaler are fitted unweighted"
            )
        }
        if _SPARSE_CHECK_IGNORES_TAGS:
            expected["check_sample_weight_equivalence_on_sparse_data"] = (
                "StandardScaler() refuses sparse input (input_tags.sparse is "
                "False); scikit-learn < 1.7 runs this check all the same"
            )
        return expected
    return {}


@parametrize_with_checks(
    [
        InfluenceExplainer(LogisticRegression()),
        InfluenceExplainer(Ridge()),
        InfluenceExplainer(make_pipeline(StandardScaler(), Ridge())),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _refit_loss_change(estimator, X, y, sw, row, X_test, y_test, explainer):
    keep = np.arange(len(y)) != row
    refit = clone(estimator).fit(X[keep], y[keep], sample_weight=sw[keep])
    other = InfluenceExplainer(FrozenEstimator(refit)).fit(X[keep], y[keep])
    return other.test_loss(X_test, y_test) - explainer.test_loss(X_test, y_test)


def test_sign_conventions_against_refits(cancer):
    """Removing the most harmful row lowers the test loss; the most helpful
    raises it."""
    X, y = cancer
    Xtr, ytr, sw = X[:300], y[:300], np.ones(300)
    est = _logreg()
    explainer = InfluenceExplainer(est).fit(Xtr, ytr)
    X_test, y_test = X[300:301], y[300:301]
    infl = explainer.influence(X_test, y_test)[0]
    loo = explainer.loo_change(X_test, y_test)[0]
    np.testing.assert_allclose(loo, -infl / 300)
    harmful, helpful = np.argmax(infl), np.argmin(infl)
    assert infl[harmful] > 0 > infl[helpful]
    d_harm = _refit_loss_change(est, Xtr, ytr, sw, harmful, X_test, y_test, explainer)
    d_help = _refit_loss_change(est, Xtr, ytr, sw, helpful, X_test, y_test, explainer)
    assert d_harm[0] < 0 < d_help[0]
    np.testing.assert_allclose(
        [d_harm[0], d_help[0]], [loo[harmful], loo[helpful]], rtol=0.5
    )
    table = explainer.top_influential(X_test, y_test, k=2)
    first = table.set_index(["kind", "rank"]).loc[("harmful", 1)]
    assert first["train_row"] == harmful
    assert table.set_index(["kind", "rank"]).loc[("helpful", 1), "train_row"] == helpful


def test_self_influence_is_minus_diagonal_of_influence(wine):
    X, y = wine
    explainer = InfluenceExplainer(_logreg()).fit(X, y)
    diag = np.diag(explainer.influence(X, y))
    np.testing.assert_allclose(explainer.self_influence(), -diag, rtol=1e-8)
    assert np.all(explainer.self_influence() >= 0)


def test_relatif_normalizations(wine):
    X, y = wine
    explainer = InfluenceExplainer(_logreg()).fit(X, y)
    infl = explainer.influence(X[:3], y[:3])
    norms = np.linalg.norm(explainer.influence_params(), axis=1)
    np.testing.assert_allclose(
        explainer.relative_influence(X[:3], y[:3]), infl / norms, rtol=1e-8
    )
    l_rel = explainer.relative_influence(X[:3], y[:3], kind="l")
    np.testing.assert_allclose(
        l_rel, infl / np.sqrt(explainer.self_influence()), rtol=1e-8
    )
    table = explainer.top_influential(X[:3], y[:3], k=4, method="theta_relatif")
    assert len(table) == 3 * 2 * 4
    top = table[(table.test_row == 0) & (table.kind == "harmful")]
    assert top["score"].is_monotonic_decreasing
    np.testing.assert_allclose(
        top["score"].iloc[0], np.max(explainer.relative_influence(X[:1], y[:1]))
    )


def test_perturbation_influence_against_refits(cancer):
    X, y = cancer
    Xtr, ytr = X[:200].copy(), y[:200]
    est = _logreg()
    explainer = InfluenceExplainer(est).fit(Xtr, ytr)
    X_test, y_test = X[300:302], y[300:302]
    pert = explainer.perturbation_influence(X_test, y_test)
    assert pert.shape == (2, 200, 10)
    h = 1e-4
    for row, feat in [(3, 0), (17, 4)]:
        losses = []
        for sign in (1, -1):
            Xp = Xtr.copy()
            Xp[row, feat] += sign * h
            refit = clone(est).fit(Xp, ytr)
            other = InfluenceExplainer(FrozenEstimator(refit)).fit(Xp, ytr)
            losses.append(other.test_loss(X_test, y_test))
        numeric = (losses[0] - losses[1]) / (2 * h)
        # Moving x_i by delta is upweighting a perturbed row by 1/n.
        np.testing.assert_allclose(numeric, pert[:, row, feat] / 200, rtol=1e-3)


@pytest.mark.parametrize("target", ["predict_proba", "decision_function"])
def test_prediction_influence_against_refits(wine, target):
    X, y = wine
    est = _logreg()
    explainer = InfluenceExplainer(est).fit(X, y)
    X_test = X[:2]
    infl = explainer.influence(X_test, target=target)  # the predicted class
    cls = explainer.predict(X_test)
    W, eps, row = len(y), 1e-4, 5
    values = []
    for sign in (1, -1):
        sw = np.ones(len(y))
        sw[row] += sign * eps * W
        refit = clone(est).fit(X, y, sample_weight=sw)
        out = getattr(refit, target)(X_test)
        values.append(out[np.arange(2), np.searchsorted(refit.classes_, cls)])
    numeric = (values[0] - values[1]) / (2 * eps)
    np.testing.assert_allclose(numeric, infl[:, row], rtol=1e-4, atol=1e-8)


def test_pipeline_pandas_and_frozen(cancer):
    X, y = cancer
    frame = pd.DataFrame(
        X * 3 + 1,
        columns=[f"f{i}" for i in range(10)],
        index=[f"r{i}" for i in range(len(y))],
    )
    pipe = make_pipeline(StandardScaler(), _logreg())
    explainer = InfluenceExplainer(pipe).fit(frame.iloc[:300], y[:300])
    assert list(explainer.feature_names_in_) == list(frame.columns)
    table = explainer.top_influential(frame.iloc[300:302], y[300:302], k=3)
    assert set(table["test_row"]) == {"r300", "r301"}
    assert table["train_row"].str.startswith("r").all()
    fitted = clone(pipe).fit(frame.iloc[:300], y[:300])
    frozen = InfluenceExplainer(FrozenEstimator(fitted)).fit(frame.iloc[:300], y[:300])
    assert frozen.estimator_.estimator is fitted
    np.testing.assert_allclose(
        frozen.influence(frame.iloc[300:302], y[300:302]),
        explainer.influence(frame.iloc[300:302], y[300:302]),
        rtol=1e-6,
    )


def test_sparse_input_matches_dense(cancer):
    X, y = cancer
    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    dense = InfluenceExplainer(_logreg()).fit(Xs.toarray()[:200], y[:200])
    sparse = InfluenceExplainer(_logreg()).fit(Xs[:200], y[:200])
    for name in ("influence", "perturbation_influence"):
        np.testing.assert_allclose(
            getattr(sparse, name)(Xs[300:303], y[300:303]),
            getattr(dense, name)(Xs.toarray()[300:303], y[300:303]),
            rtol=1e-6,
            atol=1e-9,
        )
    np.testing.assert_allclose(
        sparse.loo_change(Xs[300:303], y[300:303], method="newton"),
        dense.loo_change(Xs.toarray()[300:303], y[300:303], method="newton"),
        rtol=1e-6,
        atol=1e-12,
    )


def test_pickle_round_trip(wine):
    X, y = wine
    explainer = InfluenceExplainer(_logreg()).fit(X, y)
    again = pickle.loads(pickle.dumps(explainer))
    np.testing.assert_array_equal(
        again.influence(X[:2], y[:2]), explainer.influence(X[:2], y[:2])
    )


def test_glm_loo_includes_penalty_dilution():
    """GLMs penalize a weighted *mean*: removing weight strengthens the penalty.

    Removing a small fraction ``delta`` of a row's weight is first-order exact,
    so ``delta * loo_change`` must match refits closely only if the penalty's
    dilution term is included.
    """
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:150], y[:150]
    est = PoissonRegressor(
        alpha=0.05, tol=1e-12, max_iter=1000, solver="newton-cholesky"
    )
    explainer = InfluenceExplainer(est).fit(X, y)
    X_test, y_test = X[:1] + 0.01, y[:1]
    loo = explainer.loo_change(X_test, y_test)[0]
    delta = 1e-4
    for row in np.argsort(-np.abs(loo))[:3]:
        changes = []
        for sign in (1, -1):
            sw = np.ones(150)
            sw[row] -= sign * delta
            refit = clone(est).fit(X, y, sample_weight=sw)
            other = InfluenceExplainer(FrozenEstimator(refit)).fit(X, y)
            changes.append(other.test_loss(X_test, y_test)[0])
        numeric = (changes[0] - changes[1]) / (2 * delta)
        np.testing.assert_allclose(numeric, loo[row], rtol=1e-4)


# -- errors -------------------------------------------------------------------
def test_unsupported_estimator_lists_supported(cancer):
    X, y = cancer
    with pytest.raises(TypeError, match="Supported estimators: LogisticRegression"):
        InfluenceExplainer(KNeighborsClassifier()).fit(X, y)


@pytest.mark.parametrize(
    "params",
    [
        {"l1_ratio": 1.0, "solver": "saga"},
        {"l1_ratio": 0.5, "solver": "saga"},
    ],
)
@_NEEDS_L1_RATIO_PENALTY
def test_non_smooth_penalty_rejected(cancer, params):
    X, y = cancer
    with pytest.raises(ValueError, match="not twice differentiable"):
        InfluenceExplainer(LogisticRegression(**params)).fit(X, y)


def test_bad_test_input(cancer):
    X, y = cancer
    explainer = InfluenceExplainer(_logreg()).fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="NaN"):
        explainer.influence(np.full((1, 10), np.nan), [0])
    with pytest.raises(ValueError, match="features"):
        explainer.influence(X[:2, :5], y[:2])
    with pytest.raises(ValueError, match="not seen during fit"):
        explainer.influence(X[:2], [0, 7])
    with pytest.raises(ValueError, match="y_test is required"):
        explainer.influence(X[:2])
    with pytest.raises(NotFittedError):
        InfluenceExplainer(_logreg()).influence(X[:2], y[:2])


def test_an_unfitted_frozen_model_is_refused_with_the_fix(cancer):
    from sklearn.frozen import FrozenEstimator

    X, y = cancer
    for frozen in (
        FrozenEstimator(_logreg()),
        make_pipeline(StandardScaler(), FrozenEstimator(_logreg())),
    ):
        with pytest.raises(
            NotFittedError, match=r"inside FrozenEstimator is not fitted.*Fit it first"
        ):
            InfluenceExplainer(frozen).fit(X, y)


def test_fit_parameters_are_refused_naming_frozen_estimator(cancer):
    X, y = cancer
    with pytest.raises(TypeError, match=r"\['eval_set'\].*FrozenEstimator\(model\)"):
        InfluenceExplainer(_logreg()).fit(X, y, eval_set=None)


def test_singular_hessian_suggests_damping():
    X, y = load_diabetes(return_X_y=True)
    X = np.hstack([X, X[:, :1]])  # a duplicated column
    with pytest.raises(SingularHessianError, match=r"damping=\d"):
        InfluenceExplainer(LinearRegression()).fit(X, y)
    explainer = InfluenceExplainer(LinearRegression(), damping=1e-3).fit(X, y)
    assert np.isfinite(explainer.self_influence()).all()


def test_result_too_large_names_alternative(cancer, monkeypatch):
    X, y = cancer
    explainer = InfluenceExplainer(_logreg()).fit(X, y)
    monkeypatch.setattr(_chunks, "_MEMORY_SHARE", 1e-12)
    with pytest.raises(MemoryError, match="top_influential"):
        explainer.influence(X, y)


def test_unconverged_sgd_warns(cancer):
    X, y = cancer
    sgd = SGDClassifier(
        loss="log_loss", alpha=0.01, max_iter=2, tol=None, random_state=0
    )
    # A frozen model is explained as it is: the warning names refine.
    frozen = FrozenEstimator(sgd.fit(X, y))
    with pytest.warns(StationarityWarning, match="skinfluence.refine"):
        InfluenceExplainer(frozen).fit(X, y)


def test_multinomial_influence_invariant_to_intercept_gauge(wine):
    """Shifting every class intercept by the same amount changes nothing."""
    X, y = wine
    fitted = _logreg().fit(X, y)
    shifted = clone(fitted).fit(X, y)
    shifted.intercept_ = shifted.intercept_ + 3.0
    a = InfluenceExplainer(FrozenEstimator(fitted)).fit(X, y)
    b = InfluenceExplainer(FrozenEstimator(shifted)).fit(X, y)
    np.testing.assert_allclose(
        a.influence(X[:3], y[:3]), b.influence(X[:3], y[:3]), rtol=1e-8
    )


@pytest.mark.parametrize("method", ["influence", "theta_relatif", "l_relatif"])
def test_top_influential_streams_within_working_memory(wine, method):
    """Blocks of a few training rows give the same table as the whole matrix."""
    from sklearn import config_context

    X, y = wine
    explainer = InfluenceExplainer(_logreg()).fit(X, y)
    full = explainer.top_influential(X[:4], y[:4], k=6, method=method)
    # 4 test rows x 16 bytes per training row: a block of ~16 training rows.
    with config_context(working_memory=1e-3):
        blocks = list(explainer.influence_blocks(X[:4], y[:4]))
        streamed = explainer.top_influential(X[:4], y[:4], k=6, method=method)
    assert len(blocks) > 5
    assembled = np.full((4, len(y)), np.nan)
    for test_rows, train_rows, block in blocks:
        assembled[test_rows, train_rows] = block
    np.testing.assert_allclose(assembled, explainer.influence(X[:4], y[:4]))
    pd.testing.assert_frame_equal(streamed, full)
    expected = {
        "influence": explainer.influence(X[:4], y[:4]),
        "theta_relatif": explainer.relative_influence(X[:4], y[:4]),
        "l_relatif": explainer.relative_influence(X[:4], y[:4], kind="l"),
    }[method]
    harmful = full[(full.kind == "harmful") & (full.test_row == 2)]
    np.testing.assert_array_equal(
        harmful["train_row"], np.argsort(-expected[2], kind="stable")[:6]
    )


@pytest.mark.parametrize("link", ["identity", "log"])
def test_newton_predict_change_of_a_regressor_matches_refits(link):
    # target='predict' with method='newton': the model's prediction after one
    # Newton step without the rows (exact for ridge, whose objective is
    # quadratic), through the inverse link for a GLM.
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    if link == "identity":
        model, rtol = Ridge(alpha=1.0), 1e-9
    else:
        model, y, rtol = PoissonRegressor(alpha=0.1, tol=1e-10), y / 50, 3e-2
    ex = InfluenceExplainer(model).fit(X[:300], y[:300])
    X_test = X[300:303]
    base = ex.predict(X_test)

    def refit_change(drop):
        keep = np.setdiff1d(np.arange(300), drop)
        return clone(model).fit(X[keep], y[keep]).predict(X_test) - base

    loo = ex.loo_change(X_test, target="predict", method="newton")[:, :5]
    actual = np.column_stack([refit_change([i]) for i in range(5)])
    np.testing.assert_allclose(loo, actual, rtol=rtol, atol=rtol * 1e-2)
    groups = [np.arange(10), np.arange(10, 30)]
    change = ex.group_influence(groups, X_test, target="predict", method="newton")
    actual = np.column_stack([refit_change(g) for g in groups])
    np.testing.assert_allclose(change, actual, rtol=rtol, atol=rtol * 1e-2)
    Xc, yc = load_breast_cancer(return_X_y=True)
    classifier = InfluenceExplainer(LogisticRegression()).fit(scale(Xc), yc)
    with pytest.raises(ValueError, match="for regressors, 'predict'"):
        classifier.loo_change(scale(Xc)[:2], target="predict_proba", method="newton")


def test_tags_follow_the_explained_estimator():
    from sklearn.linear_model import PoissonRegressor
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils import get_tags

    from skinfluence import MislabelDetector

    assert get_tags(InfluenceExplainer(PoissonRegressor())).target_tags.positive_only
    assert not get_tags(InfluenceExplainer(Ridge())).target_tags.positive_only
    dense_only = make_pipeline(StandardScaler(), LogisticRegression())
    assert not get_tags(MislabelDetector(dense_only)).input_tags.sparse
    assert get_tags(MislabelDetector()).input_tags.sparse
