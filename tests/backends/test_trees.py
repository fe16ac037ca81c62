"""The tree backend: leaf values, LeafInfluence against LeafRefit, explainer API."""

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, MislabelDetector, validate_loo
from skinfluence.backends.trees import TreeBackend
from skinfluence.backends.trees._boostin import held_out_loss_curve
from skinfluence.backends.trees._leaf_refit import refit_outputs
from skinfluence.exceptions import StationarityWarning, UnsupportedOperationError

try:
    import lightgbm
except ImportError:  # the optional `trees` extra
    lightgbm = None
try:
    import xgboost
except ImportError:
    xgboost = None


def _data(kind):
    if kind == "binary":
        X, y = load_breast_cancer(return_X_y=True)
        return X[:300], y[:300], X[300:400], y[300:400]
    if kind == "multiclass":
        X, y = load_wine(return_X_y=True)
        return X[::2], y[::2], X[1::2], y[1::2]
    X, y = load_diabetes(return_X_y=True)
    return X[:300], y[:300], X[300:], y[300:]


def _model(library, kind):
    if library == "xgb":
        cls = xgboost.XGBRegressor
        if kind != "regression":
            cls = xgboost.XGBClassifier
        return cls(
            n_estimators=20 if kind == "multiclass" else 30,
            max_depth=2 if kind == "multiclass" else 3,
            min_child_weight=2.0,
            reg_lambda=1.0,
            learning_rate=0.15,
            n_jobs=1,
        )
    if library == "lgbm":
        cls = lightgbm.LGBMRegressor
        if kind != "regression":
            cls = lightgbm.LGBMClassifier
        return cls(
            n_estimators=20 if kind == "multiclass" else 30,
            num_leaves=6 if kind == "multiclass" else 8,
            min_child_samples=10 if kind == "multiclass" else 20,
            reg_lambda=1.0,
            learning_rate=0.15,
            n_jobs=1,
            verbose=-1,
        )
    if library == "hgb":
        cls = HistGradientBoostingRegressor
        if kind != "regression":
            cls = HistGradientBoostingClassifier
        leaf = 10 if kind == "multiclass" else 20
        return cls(
            max_iter=20 if kind == "multiclass" else 30,
            max_leaf_nodes=6 if kind == "multiclass" else 8,
            l2_regularization=1.0,
            learning_rate=0.15,
            min_samples_leaf=leaf,
        )
    cls = GradientBoostingRegressor
    if kind != "regression":
        cls = GradientBoostingClassifier
    return cls(
        n_estimators=20 if kind == "multiclass" else 30,
        max_depth=2 if kind == "multiclass" else 3,
        min_samples_leaf=10 if kind == "multiclass" else 20,
        learning_rate=0.15,
        random_state=0,
    )


LIBRARIES = (
    ("hgb", "gb")
    + (() if lightgbm is None else ("lgbm",))
    + (() if xgboost is None else ("xgb",))
)
CASES = [
    (lib, kind) for lib in LIBRARIES for kind in ("binary", "multiclass", "regression")
]


@pytest.fixture(scope="module")
def fitted():
    """Explainers of every case and method, fitted once."""
    out = {}
    for lib, kind in CASES:
        X, y, Xt, yt = _data(kind)
        for method in ("boostin", "leaf_influence", "leaf_refit"):
            explainer = InfluenceExplainer(_model(lib, kind), solver=method)
            out[lib, kind, method] = explainer.fit(X, y), Xt, yt
    return out


@pytest.mark.parametrize("lib, kind", CASES)
def test_leaf_values_recomputed_from_gradients(fitted, lib, kind):
    """``-s G / (H + l2)`` from the replayed gradients is every fitted leaf."""
    backend = fitted[lib, kind, "boostin"][0].backend_
    values = backend.ensemble_.leaf_values
    recomputed = backend.recomputed_leaf_values()
    # HistGradientBoosting and LightGBM sum float32 gradients; GradientBoosting
    # float64.
    rtol = 1e-12 if lib == "gb" else 1e-6
    assert np.max(np.abs(recomputed - values)) <= rtol * np.max(np.abs(values))
    # The baseline recovered from the model's outputs is one constant (XGBoost
    # returns float32 margins).
    spread = np.ptp(backend.baseline_, axis=0).max()
    assert spread < 1e-5 * max(1.0, np.abs(backend.training_outputs()).max())


@pytest.mark.parametrize("lib, kind", CASES)
def test_leaf_refit_with_all_rows_reproduces_the_fit(fitted, lib, kind):
    backend = fitted[lib, kind, "boostin"][0].backend_
    F, _ = refit_outputs(
        backend.ensemble_,
        backend.loss_,
        backend.leaves_,
        backend.target_,
        backend.baseline_,
        backend.weights_[:, None],
        [],
    )
    scale = np.max(np.abs(backend.training_outputs()))
    assert np.max(np.abs(F[:, :, 0] - backend.training_outputs())) < 1e-6 * scale


@pytest.mark.parametrize("lib, kind", CASES)
def test_leaf_influence_is_the_derivative_of_leaf_refit(fitted, lib, kind):
    """LeafInfluence against a finite difference of LeafRefit in a row's weight."""
    explainer, Xt, yt = fitted[lib, kind, "leaf_influence"]
    backend = explainer.backend_
    D = explainer.influence(Xt[:5], yt[:5]).sum(0) / backend.weights_.sum()
    rows = np.arange(0, backend.n_train_, 7)
    eps = 1e-5
    W = np.repeat(backend.weights_[:, None], len(rows) + 1, axis=1)
    W[rows, np.arange(len(rows))] += eps
    leaves, base, _ = backend._test_side(Xt[:5])
    _, (F,) = refit_outputs(
        backend.ensemble_,
        backend.loss_,
        backend.leaves_,
        backend.target_,
        backend.baseline_,
        W,
        [(leaves, base)],
    )
    loss = backend.loss_.loss(backend.loss_.encode(yt[:5]), F).sum(0)
    fd = (loss[:-1] - loss[-1]) / eps
    np.testing.assert_allclose(D[rows], fd, rtol=1e-3, atol=1e-4 * np.abs(fd).max())


@pytest.mark.parametrize("lib, kind", CASES)
def test_leaf_influence_matches_leaf_refit(fitted, lib, kind):
    """Removal predicted to first order vs replayed: Pearson R >= 0.99."""
    li = fitted[lib, kind, "leaf_influence"]
    lr = fitted[lib, kind, "leaf_refit"]
    pred = li[0].loo_change(li[1], li[2])
    exact = lr[0].loo_change(lr[1], lr[2])
    assert np.corrcoef(pred.sum(0), exact.sum(0))[0, 1] >= 0.99
    assert np.corrcoef(pred.ravel(), exact.ravel())[0, 1] >= 0.99


@pytest.mark.parametrize("lib, kind", CASES)
def test_boostin_ranks_correlate_with_leaf_refit(fitted, lib, kind):
    """Per test row, BoostIn orders the rows as their replayed removal does.

    BoostIn weighs each tree by the test gradient at its round and drops the
    later trees' response, so it ranks (weakly: most pairs share few leaves)
    rather than equals.
    """
    boostin = fitted[lib, kind, "boostin"]
    refit = fitted[lib, kind, "leaf_refit"]
    bi = boostin[0].loo_change(boostin[1], boostin[2])
    exact = refit[0].loo_change(refit[1], refit[2])
    rho = [spearmanr(a, b)[0] for a, b in zip(bi, exact)]
    assert np.mean(rho) >= 0.25


def test_boostin_matches_a_loop_over_trees(fitted):
    """The sparse product against its definition, tree by tree."""
    explainer, Xt, yt = fitted["gb", "multiclass", "boostin"]
    backend = explainer.backend_
    ens = backend.ensemble_
    leaves, _, A = backend._test_factors(Xt[:4], yt[:4], "loss", per_round=True)
    D = np.zeros((4, backend.n_train_))
    for t in range(ens.n_trees):
        same = leaves[:, t][:, None] == backend.leaves_[:, t][None, :]
        D += A[:, t][:, None] * same * backend.boostin_weights_[:, t][None, :]
    W = backend.weights_.sum()
    np.testing.assert_allclose(explainer.influence(Xt[:4], yt[:4]), W * D)


@pytest.mark.parametrize("lib, kind", CASES)
def test_boostin_weights_are_the_reference_formula(fitted, lib, kind):
    """Brophy et al.'s ``lr (g + v h) / (H + l2)``, leaf by leaf, from the rows.

    Written out as their reference implementation does it (``v`` the leaf's
    value as the model predicts it, ``H`` the leaf's summed hessian), from
    gradients recomputed here by staging the model's predictions.
    """
    backend = fitted[lib, kind, "boostin"][0].backend_
    ens = backend.ensemble_
    K, w = ens.n_outputs, backend.weights_
    F = np.array(backend.baseline_, dtype=float)
    expected = np.zeros_like(backend.boostin_weights_)
    for r in range(ens.n_rounds):
        g, h = backend.loss_.gradient_hessian(backend.target_, F)
        for k in range(K):
            t = r * K + k
            leaf = backend.leaves_[:, t]
            for node in np.unique(leaf):
                rows = leaf == node
                H = np.sum(w[rows] * h[rows, k]) + ens.l2
                v = ens.leaf_values[node]
                expected[rows, t] = -ens.scale * (g[rows, k] + v * h[rows, k]) / H
            F[:, k] += ens.leaf_values[leaf]
    np.testing.assert_allclose(
        backend.boostin_weights_, expected, rtol=1e-9, atol=1e-14
    )


@pytest.mark.parametrize("method", ["boostin", "leaf_influence"])
def test_removing_harmful_rows_lowers_the_test_loss(fitted, method):
    """Signs: the rows with the largest influence (harmful) help once removed."""
    explainer, Xt, yt = fitted["hgb", "binary", method]
    refit = fitted["hgb", "binary", "leaf_refit"][0]
    harm = explainer.influence(Xt, yt).sum(0)
    worst = np.argsort(-harm)[:10]
    best = np.argsort(harm)[:10]
    change = refit.backend_.refit_test_losses(
        [worst, best], Xt, yt, fixed_structure=True
    )
    assert change[0] < 0 < change[1]
    # loo_change has the opposite sign of influence, scaled by w_i / W.
    loo = explainer.loo_change(Xt, yt).sum(0)
    n = explainer.n_train_
    np.testing.assert_allclose(loo, -harm / n, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("method", ["boostin", "leaf_influence", "leaf_refit"])
def test_explainer_methods_run(fitted, method):
    explainer, Xt, yt = fitted["hgb", "binary", method]
    n = explainer.n_train_
    infl = explainer.influence(Xt[:4], yt[:4])
    assert infl.shape == (4, n) and np.all(np.isfinite(infl))
    blocks = np.zeros_like(infl)
    for test_rows, train_rows, block in explainer.influence_blocks(Xt[:4], yt[:4]):
        blocks[test_rows, train_rows] = block
    np.testing.assert_allclose(blocks, infl)
    top = explainer.top_influential(Xt[:2], yt[:2], k=3)
    assert len(top) == 12
    harmful = top[(top.kind == "harmful") & (top.test_row == 0)]
    assert harmful.train_row.iloc[0] == infl[0].argmax()
    # The table's loss change (for LeafRefit: replays without its rows only)
    # is loo_change's.
    loo = explainer.loo_change(Xt[:2], yt[:2])
    np.testing.assert_allclose(
        top.loo_change, loo[top.test_row, top.train_row], rtol=1e-12, atol=1e-15
    )
    self_infl = explainer.self_influence()
    assert self_infl.shape == (n,) and np.all(np.isfinite(self_infl))
    for target in ("decision_function", "predict_proba"):
        assert explainer.influence(Xt[:2], target=target).shape == (2, n)
    groups = [np.arange(5), np.arange(5, 20)]
    assert explainer.group_influence(groups, Xt[:3], yt[:3]).shape == (3, 2)
    assert explainer.relative_influence(Xt[:2], yt[:2]).shape == (2, n)
    with pytest.raises(UnsupportedOperationError, match="piecewise constant"):
        explainer.perturbation_influence(Xt[:2], yt[:2])
    with pytest.raises(UnsupportedOperationError, match="Hessian"):
        explainer.loo_change(Xt[:2], yt[:2], method="newton")


def test_self_influence_is_mostly_nonnegative(fitted):
    for method in ("boostin", "leaf_influence", "leaf_refit"):
        s = fitted["hgb", "binary", method][0].self_influence()
        assert np.mean(s >= 0) > 0.9, method


def test_predict_proba_target_matches_leaf_refit(fitted):
    li = fitted["gb", "multiclass", "leaf_influence"]
    lr = fitted["gb", "multiclass", "leaf_refit"]
    a = li[0].loo_change(li[1], li[2], target="predict_proba").sum(0)
    b = lr[0].loo_change(lr[1], lr[2], target="predict_proba").sum(0)
    assert np.corrcoef(a, b)[0, 1] > 0.95


def test_validate_loo_retrains(fitted):
    explainer, Xt, yt = fitted["gb", "regression", "leaf_influence"]
    result = validate_loo(explainer, Xt, yt, n_remove=6, n_random=2, random_state=0)
    assert len(result.table) == 8 and np.isfinite(result.pearson_r)
    fixed = validate_loo(
        explainer,
        Xt,
        yt,
        n_remove=10,
        n_random=0,
        refit_options={"fixed_structure": True},
    )
    assert fixed.pearson_r > 0.99


@pytest.mark.parametrize("weighted", [False, True])
def test_retraining_passes_sample_weight_only_when_given(rng, monkeypatch, weighted):
    """Refits are fitted as the model was: unit weights are not passed (a
    HistGradientBoosting fit given sample_weight bins another, slower way),
    a user's weights are, restricted to the kept rows."""
    X, y, Xt, yt = _data("regression")
    sw = rng.uniform(0.5, 2.0, size=len(y)) if weighted else None
    model = HistGradientBoostingRegressor(max_iter=5, max_leaf_nodes=4)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    received, fit = [], HistGradientBoostingRegressor.fit

    def recording_fit(self, X, y, sample_weight=None):
        received.append(sample_weight)
        return fit(self, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(HistGradientBoostingRegressor, "fit", recording_fit)
    validate_loo(explainer, Xt[:2], yt[:2], n_remove=2, n_random=0)
    assert len(received) == 2
    if weighted:
        assert all(w is not None and len(w) == len(y) - 1 for w in received)
        assert np.all(np.isin(received[0], sw))
    else:
        assert all(w is None for w in received)


def test_sample_and_class_weights(rng):
    X, y, Xt, yt = _data("binary")
    sw = rng.uniform(0.5, 2.0, size=len(y))
    model = HistGradientBoostingClassifier(
        max_iter=15, max_leaf_nodes=6, class_weight="balanced", l2_regularization=1.0
    )
    explainer = InfluenceExplainer(model, solver="leaf_influence").fit(
        X, y, sample_weight=sw
    )
    backend = explainer.backend_
    values = backend.ensemble_.leaf_values
    assert np.allclose(backend.recomputed_leaf_values(), values, atol=1e-7)
    refit = InfluenceExplainer(model, solver="leaf_refit").fit(X, y, sample_weight=sw)
    pred = explainer.loo_change(Xt, yt).sum(0)
    exact = refit.loo_change(Xt, yt).sum(0)
    assert np.corrcoef(pred, exact)[0, 1] > 0.99


def test_early_stopping_rounds_and_missing_values(rng):
    X, y, Xt, yt = _data("regression")
    X = X.copy()
    X[rng.random(X.shape) < 0.1] = np.nan
    model = HistGradientBoostingRegressor(
        max_iter=500,
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=3,
        tol=10.0,
    )
    explainer = InfluenceExplainer(model).fit(X, y)
    backend = explainer.backend_
    assert backend.ensemble_.n_rounds == explainer.estimator_.n_iter_ < 500
    assert np.allclose(
        backend.recomputed_leaf_values(), backend.ensemble_.leaf_values, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_early_stopping_on_a_validation_split(rng, kind):
    """The rows the model held out to stop early weigh 0: the leaf values are
    the Newton steps of the other rows (the split the model drew, stratified
    for classifiers, with sample weights too), and removing a held-out row
    changes nothing."""
    X, y, Xt, yt = _data(kind)
    sw = rng.uniform(0.5, 2.0, size=len(y))
    cls = (
        HistGradientBoostingRegressor
        if kind == "regression"
        else (HistGradientBoostingClassifier)
    )
    model = cls(
        max_iter=40, early_stopping=True, validation_fraction=0.25, random_state=3
    )
    explainer = InfluenceExplainer(model, solver="leaf_influence").fit(
        X, y, sample_weight=sw
    )
    backend = explainer.backend_
    held = backend.weights_ == 0
    assert held.sum() == int(np.ceil(0.25 * len(y)))
    values = backend.ensemble_.leaf_values
    gap = np.max(np.abs(backend.recomputed_leaf_values() - values))
    assert gap <= 1e-6 * np.max(np.abs(values))
    assert explainer.stationarity_ < 1e-3
    loo = explainer.loo_change(Xt[:5], yt[:5])
    assert np.all(loo[:, held] == 0) and np.any(loo[:, ~held] != 0)
    refit = InfluenceExplainer(model, solver="leaf_refit").fit(X, y, sample_weight=sw)
    exact = refit.loo_change(Xt[:5], yt[:5])
    assert np.max(np.abs(exact[:, held])) <= 1e-9 * np.max(np.abs(exact))


def test_a_frozen_model_given_other_columns_is_refused():
    X, y, _, _ = _data("binary")
    model = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="X has 10 features, but Hist.*fitted on 30"):
        InfluenceExplainer(FrozenEstimator(model)).fit(X[:, :10], y)


def test_a_model_fitted_on_other_rows_is_flagged():
    """A frozen ensemble explained with other labels or rows: its leaf values
    are not the Newton steps those rows give, and the explainer says so."""
    from sklearn.frozen import FrozenEstimator

    X, y, _, _ = _data("binary")
    model = _model("hgb", "binary").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        right = InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
    assert right.stationarity_ < 1e-4
    for X_other, y_other in [(X, 1 - y), (X[:-40], y[:-40])]:
        with pytest.warns(StationarityWarning, match="fitted on other rows"):
            wrong = InfluenceExplainer(FrozenEstimator(model)).fit(X_other, y_other)
        assert wrong.stationarity_ > 1.0


def test_trees_that_never_split_keep_value_zero():
    """HistGradientBoosting leaves an unsplittable root at 0 (no Newton
    step): recomputed leaf values and derivatives treat it as fixed."""
    X, y = load_wine(return_X_y=True)
    explainer = InfluenceExplainer(
        HistGradientBoostingClassifier(max_iter=100, random_state=1)
    ).fit(X, y)
    backend = explainer.backend_
    ens = backend.ensemble_
    assert ens.fixed.any()  # late rounds fit a class perfectly: roots only
    np.testing.assert_allclose(
        backend.recomputed_leaf_values(), ens.leaf_values, atol=1e-6
    )
    fixed_rows = ens.fixed[backend.leaves_]
    assert np.all(backend.derivatives_[fixed_rows] == 0)
    assert explainer.stationarity_ < 1e-3


def _categorical_data(rng, n):
    """Two numerical columns, then categories 0-11 (with NaN), a numerical
    column and categories 0-39."""
    X = np.c_[
        rng.normal(size=(n, 2)),
        rng.integers(0, 12, n),
        rng.normal(size=n),
        rng.integers(0, 40, n),
    ].astype(float)
    X[rng.random(n) < 0.05, 2] = np.nan
    return X


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_categorical_splits_route_rows_as_sklearn(rng, kind):
    """Leaves read through categorical bitsets give the model's own outputs on
    training rows and on test rows with unknown, negative and missing
    categories; the leaf values follow from the rows' gradients."""
    X = _categorical_data(rng, 500)
    signal = (
        X[:, 0]
        + 1.5 * np.isin(X[:, 2], [1, 3, 5, 7])
        - np.isin(X[:, 4], np.arange(0, 40, 3))
        + 0.5 * rng.normal(size=len(X))
    )
    params = dict(max_iter=15, categorical_features=[2, 4], random_state=0)
    if kind == "regression":
        model, y = HistGradientBoostingRegressor(**params), signal
    else:
        cuts = [0.5] if kind == "binary" else [0.0, 1.0]
        model, y = HistGradientBoostingClassifier(**params), np.digitize(signal, cuts)
    explainer = InfluenceExplainer(model).fit(X, y)
    backend = explainer.backend_
    fitted = explainer.estimator_
    assert sum(p.nodes["is_categorical"].sum() for r in fitted._predictors for p in r)
    Xt = _categorical_data(rng, 200)
    Xt[:10, 2] = 15.0  # unknown
    Xt[10:20, 4] = -1.0  # negative: missing
    Xt[20:30, 4] = 300.0  # unknown
    ens = backend.ensemble_
    base = backend.baseline_[:1]
    assert np.ptp(backend.baseline_, axis=0).max() < 1e-12
    raw = fitted.predict(Xt) if kind == "regression" else fitted.decision_function(Xt)
    outputs = base + ens.raw_sum(ens.apply(ens.encoded(Xt)))
    np.testing.assert_allclose(outputs, np.reshape(raw, outputs.shape), atol=1e-12)
    values = ens.leaf_values
    assert np.max(np.abs(backend.recomputed_leaf_values() - values)) <= 1e-6 * np.max(
        np.abs(values)
    )
    assert explainer.influence(Xt[:5], y[:5]).shape == (5, len(y))


def test_categorical_features_from_a_dataframe(rng):
    """A model fitted on pandas categoricals (of numbers), explained frozen."""
    pd = pytest.importorskip("pandas")
    from sklearn.frozen import FrozenEstimator

    n = 300
    frame = pd.DataFrame(
        {"a": rng.normal(size=n), "c": pd.Categorical(10 * rng.integers(0, 6, n))}
    )
    y = (frame.a + (frame.c.astype(int) % 20 == 0) > 0.5).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(frame, y)
    assert model.is_categorical_.tolist() == [False, True]
    assert sum(p.nodes["is_categorical"].sum() for r in model._predictors for p in r)
    explainer = InfluenceExplainer(FrozenEstimator(model)).fit(frame, y)
    assert np.ptp(explainer.backend_.baseline_) < 1e-12
    ens = explainer.backend_.ensemble_
    # As numbers, the columns in the model's own encoding give the same leaves.
    leaves = ens.apply(ens.encoded(frame.to_numpy(float)))
    np.testing.assert_array_equal(leaves, explainer.backend_.leaves_)


# Rows sharing every leaf tie in the predicted change: the correlation's warning.
@pytest.mark.filterwarnings("ignore:The predicted or the actual changes are all")
@pytest.mark.parametrize("frozen", [False, True])
def test_string_categories_of_a_dataframe(rng, frozen):
    """HistGradientBoosting encodes pandas categoricals of strings itself: the
    explainer passes the frame through, and routes rows as the model does."""
    pd = pytest.importorskip("pandas")
    from sklearn.frozen import FrozenEstimator

    n, m = 300, 40
    colors = np.array(["red", "green", "blue", "grey"])
    whole = pd.DataFrame(
        {
            "a": rng.normal(size=n + m),
            "color": pd.Categorical(colors[rng.integers(0, 4, n + m)]),
            "b": rng.normal(size=n + m),
        }
    )
    labels = (whole.a + whole.color.isin(["red", "grey"]) > 0.5).astype(int)
    frame, y = whole.iloc[:n], labels.to_numpy()[:n]
    test, y_test = whole.iloc[n:].copy(), labels.to_numpy()[n:]
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0)
    if frozen:
        model = FrozenEstimator(model.fit(frame, y))
    explainer = InfluenceExplainer(model).fit(frame, y)
    fitted = explainer.estimator_
    fitted = getattr(fitted, "estimator", fitted)
    assert fitted.is_categorical_.tolist() == [False, True, False]
    assert sum(p.nodes["is_categorical"].sum() for r in fitted._predictors for p in r)
    test["color"] = test.color.cat.add_categories("pink")
    test.loc[test.index[:5], "color"] = "pink"  # unknown to the model
    backend = explainer.backend_
    leaves, base, raw = backend._test_side(test)
    np.testing.assert_allclose(raw[:, 0], fitted.decision_function(test), atol=1e-12)
    np.testing.assert_allclose(
        base + backend.ensemble_.raw_sum(leaves), raw, atol=1e-12
    )
    # The trees' columns: the model's codes, categorical columns first.
    assert explainer.training_data()[0].shape == (n, 3)
    table = explainer.top_influential(test.iloc[:3], y_test[:3], k=3)
    assert set(table.train_row) <= set(frame.index)
    refits = validate_loo(explainer, test, y_test, n_remove=6, n_random=0)
    assert len(refits.table) == 6 and np.all(np.isfinite(refits.table.actual))
    fixed = validate_loo(
        explainer,
        test,
        y_test,
        n_remove=6,
        n_random=0,
        refit_options={"fixed_structure": True},
    )
    exact = InfluenceExplainer(model, solver="leaf_refit").fit(frame, y)
    rows = fixed.table.train_row.to_numpy()
    expected = exact.loo_change(test, y_test).sum(axis=0)[rows]
    np.testing.assert_allclose(fixed.table.actual, expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("declared", [["color"], [1], [False, True, False]])
@pytest.mark.parametrize("frozen", [False, True])
def test_string_columns_named_in_categorical_features(rng, declared, frozen):
    """A column of strings that the model itself declares categorical (by
    name, position or mask) is its input as given: the same model, and so the
    same influence, as on the column as a pandas categorical."""
    pd = pytest.importorskip("pandas")
    from sklearn.frozen import FrozenEstimator

    n = 300
    colors = np.array(["red", "green", "blue", "grey"])
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "color": colors[rng.integers(0, 4, n)],
            "b": rng.normal(size=n),
        }
    )
    y = (frame.a + frame.color.isin(["red", "grey"]) > 0.5).astype(int).to_numpy()
    model = HistGradientBoostingClassifier(
        categorical_features=declared, max_iter=15, random_state=0
    )
    if frozen:
        model = FrozenEstimator(model.fit(frame, y))
    explainer = InfluenceExplainer(model).fit(frame, y)
    as_category = frame.assign(color=frame.color.astype("category"))
    reference = InfluenceExplainer(
        HistGradientBoostingClassifier(max_iter=15, random_state=0)
    ).fit(as_category, y)
    assert explainer.stationarity_ < 1e-4
    np.testing.assert_allclose(
        explainer.influence(frame.iloc[:5], y[:5]),
        reference.influence(as_category.iloc[:5], y[:5]),
        rtol=1e-9,
        atol=1e-12,
    )
    np.testing.assert_array_equal(
        explainer.predict(frame), reference.predict(as_category)
    )


def test_string_columns_not_declared_categorical_are_refused(rng):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": rng.normal(size=50), "color": ["red", "blue"] * 25})
    y = (frame.a > 0).astype(int)
    model = HistGradientBoostingClassifier(categorical_features=["a"], max_iter=5)
    with pytest.raises(
        ValueError, match=r"non-numeric columns \(color\).*categorical_features"
    ):
        InfluenceExplainer(model).fit(frame, y)


def test_pipeline_prefix():
    X, y, Xt, yt = _data("binary")
    model = make_pipeline(StandardScaler(), _model("gb", "binary"))
    explainer = InfluenceExplainer(model).fit(X, y)
    assert isinstance(explainer.backend_, TreeBackend)
    assert explainer.influence(Xt[:3], yt[:3]).shape == (3, len(y))


@pytest.mark.parametrize(
    "model, match",
    [
        (HistGradientBoostingRegressor(loss="poisson"), "supported losses"),
        (GradientBoostingClassifier(loss="exponential"), "supported losses"),
        (GradientBoostingRegressor(subsample=0.5), "subsample"),
        (HistGradientBoostingRegressor(monotonic_cst=[1] + [0] * 9), "monotonic"),
    ],
)
def test_unsupported_settings_are_refused(model, match):
    X, y, _, _ = _data("regression")
    if hasattr(model, "predict_proba"):
        y = (y > np.median(y)).astype(int)
    with pytest.raises(TypeError, match=match):
        InfluenceExplainer(model).fit(X, y)


def test_tree_methods_are_refused_for_other_models():
    from sklearn.linear_model import LogisticRegression

    X, y, _, _ = _data("binary")
    with pytest.raises(ValueError, match="boosted tree ensembles"):
        InfluenceExplainer(LogisticRegression(), solver="boostin").fit(X, y)


def test_unknown_method_is_refused():
    X, y, _, _ = _data("binary")
    with pytest.raises(ValueError, match="boostin"):
        InfluenceExplainer(_model("hgb", "binary"), solver="cg").fit(X, y)


@pytest.mark.parametrize(
    "library",
    [
        pytest.param(
            lib, marks=pytest.mark.skipif(mod is None, reason=f"{lib} missing")
        )
        for lib, mod in (("lgbm", lightgbm), ("xgb", xgboost))
    ],
)
@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_library_models_fitted_on_a_dataframe(library, kind):
    """A model fitted on a DataFrame (its booster keeps the column names) is
    explained as the same model fitted on the array."""
    import pandas as pd

    X, y, Xt, yt = _data(kind)
    columns = [f"feature {j}" for j in range(X.shape[1])]
    frame, test = pd.DataFrame(X, columns=columns), pd.DataFrame(Xt, columns=columns)
    on_frame = InfluenceExplainer(_model(library, kind)).fit(frame, y)
    on_array = InfluenceExplainer(_model(library, kind)).fit(X, y)
    np.testing.assert_allclose(
        on_frame.influence(test[:5], yt[:5]),
        on_array.influence(Xt[:5], yt[:5]),
        rtol=1e-6,
        atol=1e-12,
    )


@pytest.mark.skipif(lightgbm is None, reason="lightgbm (the trees extra) missing")
def test_lightgbm_weights_and_baseline(rng):
    """LightGBM's baseline comes out of its first trees; weights enter G and H."""
    X, y, Xt, yt = _data("binary")
    sw = rng.uniform(0.5, 2.0, size=len(y))
    model = lightgbm.LGBMClassifier(
        n_estimators=10, num_leaves=8, class_weight="balanced", verbose=-1, n_jobs=1
    )
    explainer = InfluenceExplainer(model, solver="leaf_influence").fit(
        X, y, sample_weight=sw
    )
    backend = explainer.backend_
    values = backend.ensemble_.leaf_values
    assert np.max(np.abs(backend.recomputed_leaf_values() - values)) < 1e-6
    assert np.ptp(backend.baseline_) < 1e-10
    with pytest.raises(TypeError, match="boosting_type"):
        InfluenceExplainer(lightgbm.LGBMClassifier(boosting_type="dart")).fit(X, y)


@pytest.mark.parametrize("lib", ["hgb", "gb"])
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_held_out_curve_follows_the_staged_predictions(fitted, lib, kind):
    """With no own share removed, the curve is the mean loss of the model's own
    truncated predictions (``staged_decision_function``) over the rounds."""
    explainer = fitted[lib, kind, "boostin"][0]
    backend = explainer.backend_
    X, y, _ = backend.training_data()
    stages = np.stack(
        [
            np.reshape(F, (len(y), -1))
            for F in explainer.estimator_.staged_decision_function(X)
        ],
        axis=2,
    )
    t = backend.target_
    expected = backend.loss_.loss(t, stages).mean(axis=1)
    curve = held_out_loss_curve(
        backend.ensemble_,
        backend.loss_,
        backend.leaves_,
        np.zeros(backend.leaves_.shape),
        backend.weights_,
        backend.baseline_,
        t,
    )
    np.testing.assert_allclose(curve, expected, rtol=1e-6, atol=1e-10)


def test_held_out_losses_of_one_round_are_the_loo_losses():
    """One boosting round: the curve is the held-out loss itself."""
    X, y, _, _ = _data("multiclass")
    model = HistGradientBoostingClassifier(max_iter=1, max_leaf_nodes=6)
    backend = InfluenceExplainer(model).fit(X, y).backend_
    eta = backend.loo_own_outputs()
    np.testing.assert_allclose(
        backend.held_out_losses(eta), backend.training_losses(eta), rtol=1e-12
    )
    # More rounds: the mean over them is added, with equal weight.
    backend = InfluenceExplainer(_model("hgb", "multiclass")).fit(X, y).backend_
    eta = backend.loo_own_outputs()
    ens = backend.ensemble_
    n, R, K = len(y), ens.n_rounds, ens.n_outputs
    steps = ens.leaf_values[backend.leaves_] - backend.derivatives_
    F = backend.baseline_[:, None, :] + np.cumsum(steps.reshape(n, R, K), axis=1)
    rounds = np.mean([backend.training_losses(F[:, r]) for r in range(R)], axis=0)
    np.testing.assert_allclose(
        backend.held_out_losses(eta), (backend.training_losses(eta) + rounds) / 2
    )


def test_mislabel_detector_with_boosted_trees(rng):
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:400], y[:400].copy()
    flipped = rng.choice(len(y), size=40, replace=False)
    y[flipped] = 1 - y[flipped]
    model = HistGradientBoostingClassifier(
        max_iter=30, max_leaf_nodes=8, l2_regularization=1.0, random_state=0
    )
    detector = MislabelDetector(model, contamination=0.1).fit(X, y)
    found = np.isin(detector.ranking_[:40], flipped).mean()
    assert found > 0.3  # random ranking: 0.1
    one_round = MislabelDetector(model, contamination=0.1, n_rounds=1).fit(X, y)
    assert np.isin(one_round.ranking_[:40], flipped).mean() > 0.3


def test_auto_contamination_with_boosted_trees_warns(rng):
    X, y = load_breast_cancer(return_X_y=True)
    y = y.copy()
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)
    y[flipped] = 1 - y[flipped]
    model = HistGradientBoostingClassifier(
        max_iter=30, max_leaf_nodes=8, l2_regularization=1.0, random_state=0
    )
    with pytest.warns(UserWarning, match="contamination=<share") as record:
        detector = MislabelDetector(model).fit(X, y)
    assert record[0].filename == __file__  # points at the caller's line
    # 'auto' misses most of the 57 flips, while the ranking finds them.
    assert detector.label_issues_.sum() < len(flipped) / 2
    assert np.isin(detector.ranking_[: len(flipped)], flipped).mean() > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MislabelDetector(model, contamination=0.1).fit(X, y)


def test_string_columns_are_refused_with_the_encodings_that_work():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "a": np.arange(40.0),
            "c": pd.Categorical(["x", "y"] * 20),
            "s": ["u", "v"] * 20,
        }
    )
    y = np.arange(40) % 2
    with pytest.raises(ValueError, match=r"\(s\).*X\['s'\]\.astype\('category'\)"):
        InfluenceExplainer(HistGradientBoostingClassifier()).fit(frame, y)
    with pytest.raises(ValueError, match=r"\(c, s\).*OrdinalEncoder"):
        InfluenceExplainer(GradientBoostingClassifier()).fit(frame, y)


@pytest.mark.parametrize("dataset", ["binary", "multiclass"])
def test_boosted_detector_suggests_another_class_for_flagged_rows(rng, dataset):
    """HGB's defaults memorise the flipped labels, so its held-out prediction
    repeats them; the suggestion for a flagged row is the likeliest other
    class, mostly the true one, and relabeling changes the flagged rows."""
    X, y_true = (load_breast_cancer if dataset == "binary" else load_wine)(
        return_X_y=True
    )
    K = len(np.unique(y_true))
    flipped = rng.choice(len(y_true), size=len(y_true) // 10, replace=False)
    y = y_true.copy()
    y[flipped] = (y[flipped] + rng.integers(1, K, len(flipped))) % K
    model = HistGradientBoostingClassifier(random_state=0)
    detector = MislabelDetector(model, contamination=0.1, action="relabel")
    with warnings.catch_warnings():  # no rate to compare the share with
        warnings.simplefilter("error")
        _, y_out = detector.fit_resample(X, y)
    flags = detector.label_issues_
    assert np.all(detector.suggested_labels_[flags] != y[flags])
    found = np.intersect1d(np.flatnonzero(flags), flipped)
    assert len(found) > 0.6 * len(flipped)
    assert np.mean(detector.suggested_labels_[found] == y_true[found]) > 0.8
    np.testing.assert_array_equal(y_out != y, flags)
    reasons = detector.get_label_issues(reasons=True).reason
    assert reasons.str.contains("most probable other class").any()


def test_pipeline_with_pandas_output_reaches_the_model_as_frames(rng):
    """A prefix with pandas output fits the model on frames: the explainer
    passes it frames too (no feature-name warning), categorical columns named
    by ``categorical_features`` included."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OrdinalEncoder

    n = 300
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "color": rng.choice(["red", "green", "blue"], n),
            "b": rng.normal(size=n),
        }
    )
    y = ((frame.a + (frame.color == "red")) > 0.5).astype(int).to_numpy()
    prefix = make_column_transformer(
        (OrdinalEncoder(), ["color"]),
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    model = HistGradientBoostingClassifier(
        max_iter=15, categorical_features=["color"], random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(make_pipeline(prefix, model)).fit(frame, y)
        _, _, raw = explainer.backend_._test_side(frame.iloc[:50])
        influence = explainer.influence(frame.iloc[:5], y[:5])
    fitted = explainer.estimator_
    np.testing.assert_allclose(
        raw[:, 0], fitted.decision_function(frame.iloc[:50]), atol=1e-12
    )
    assert influence.shape == (5, n) and np.all(np.isfinite(influence))
    assert isinstance(explainer.training_data()[0], np.ndarray)


def test_top_influential_lists_each_row_of_nonzero_influence_once(fitted):
    """k above n: BoostIn's rows sharing no leaf with the test row (influence
    exactly 0) are on neither side; every other row is listed once."""
    explainer, Xt, yt = fitted["hgb", "binary", "boostin"]
    n = explainer.backend_.n_train_
    influence = explainer.influence(Xt[:1], yt[:1])[0]
    assert 0 < np.count_nonzero(influence) < n
    with pytest.warns(UserWarning, match="zero influence on neither side"):
        table = explainer.top_influential(Xt[:1], yt[:1], k=n + 1)
    assert sorted(table.train_row) == sorted(np.flatnonzero(influence))
    helpful = table.kind == "helpful"
    assert np.all(table.influence[helpful] < 0) and np.all(
        table.influence[~helpful] > 0
    )


@pytest.mark.skipif(lightgbm is None, reason="lightgbm not installed")
def test_lightgbm_category_splits_need_cat_l2_zero():
    # LightGBM adds cat_l2 (default 10) to lambda_l2 in the leaf values of a
    # category-set split: explained as plain Newton steps, the model looked
    # far from stationary on its own training rows (12 against 2e-6).
    pd = pytest.importorskip("pandas")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4].copy()
    rng = np.random.default_rng(0)
    code = rng.integers(0, 8, len(X))
    y = pd.Series(np.where(np.isin(code, [1, 4, 6]), 1 - y, y), index=y.index)
    X["cat"] = code
    options = dict(random_state=0, verbose=-1, min_data_per_group=5, cat_smooth=1)
    fit = dict(categorical_feature=["cat"])
    model = lightgbm.LGBMClassifier(**options).fit(X, y, **fit)
    with pytest.raises(TypeError, match="cat_l2=10.*Refit with cat_l2=0"):
        InfluenceExplainer(FrozenEstimator(model), solver="leaf_influence").fit(X, y)
    model = lightgbm.LGBMClassifier(cat_l2=0.0, **options).fit(X, y, **fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StationarityWarning)
        explainer = InfluenceExplainer(
            FrozenEstimator(model), solver="leaf_influence"
        ).fit(X, y)
    assert explainer.stationarity_ < 1e-3


@pytest.mark.skipif(lightgbm is None, reason="lightgbm not installed")
def test_other_libraries_losses_are_named_by_their_objective(capsys):
    X, y, _, _ = _data("binary")
    model = lightgbm.LGBMClassifier(objective="cross_entropy", verbose=-1)
    with pytest.raises(TypeError, match=r"LGBMClassifier\(objective='cross_entropy'\)"):
        InfluenceExplainer(model).fit(X, y)
    # The progress messages name what a tree fit builds: no Hessian.
    InfluenceExplainer(_model("hgb", "binary"), verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "leaf values and derivatives of HistGradientBoostingClassifier" in err
    assert "Hessian" not in err
