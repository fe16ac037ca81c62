"""The tree backend reads what the fitted booster used: weights, settings,
missing values; its fitted state pickles; retraining names its limits."""

import io
import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator

from skinfluence import InfluenceExplainer, MislabelDetector, validate_loo

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")

SOLVERS = ("boostin", "leaf_influence", "leaf_refit")


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True)
    return X[:300], y[:300], X[300:340], y[300:340]


def _model(library, **params):
    if library == "lgbm":
        defaults = dict(n_estimators=15, num_leaves=8, verbose=-1, n_jobs=1)
        return lightgbm.LGBMClassifier(**{**defaults, **params})
    if library == "xgb":
        defaults = dict(n_estimators=15, max_depth=3, n_jobs=1)
        return xgboost.XGBClassifier(**{**defaults, **params})
    if library == "hgb":
        defaults = dict(max_iter=15, max_leaf_nodes=8, random_state=0)
        return HistGradientBoostingClassifier(**{**defaults, **params})
    defaults = dict(n_estimators=15, max_depth=3, random_state=0)
    return GradientBoostingClassifier(**{**defaults, **params})


# -- rows of weight 0 -----------------------------------------------------------
def _zero_weight_fit(library, solver, data):
    """An explainer whose fit gives some rows weight 0, and those rows."""
    X, y, _, _ = data
    if library == "hgb_stopping":  # the rows it holds out to stop early
        model = _model("hgb", early_stopping=True, validation_fraction=0.2)
        explainer = InfluenceExplainer(model, solver=solver).fit(X, y)
    else:
        sw = np.ones(len(y))
        sw[::7] = 0.0  # 43 rows
        explainer = InfluenceExplainer(_model(library), solver=solver)
        explainer.fit(X, y, sample_weight=sw)
    zero = explainer.training_data()[2] == 0
    assert zero.sum() >= 40
    return explainer, zero


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("library", ["hgb_stopping", "hgb", "gb", "lgbm", "xgb"])
def test_rows_of_weight_zero_have_exactly_zero_influence(data, library, solver):
    """Removing a row of weight 0 changes nothing (LeafRefit replays the very
    same sums), so every solver gives it influence, self-influence and
    loo_change 0 and lists it in no top_influential table."""
    _, _, Xt, yt = data
    explainer, zero = _zero_weight_fit(library, solver, data)
    influence = explainer.influence(Xt, yt)
    assert np.all(influence[:, zero] == 0) and np.any(influence[:, ~zero] != 0)
    assert np.all(explainer.loo_change(Xt, yt)[:, zero] == 0)
    assert np.all(explainer.self_influence()[zero] == 0)
    top = explainer.top_influential(Xt, yt, k=5)
    assert not top.train_row.isin(np.flatnonzero(zero)).any()


# -- pickling -------------------------------------------------------------------
@pytest.mark.parametrize("library", ["lgbm", "xgb", "hgb", "gb"])
def test_fitted_explainer_round_trips_through_pickle_and_joblib(data, library):
    X, y, Xt, yt = data
    explainer = InfluenceExplainer(_model(library)).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(explainer, buffer)
    buffer.seek(0)
    for copy in (pickle.loads(pickle.dumps(explainer)), joblib.load(buffer)):
        np.testing.assert_array_equal(
            copy.influence(Xt, yt), explainer.influence(Xt, yt)
        )
        np.testing.assert_array_equal(copy.self_influence(), explainer.self_influence())


@pytest.mark.parametrize("library", ["lgbm", "xgb", "hgb", "gb"])
def test_fitted_mislabel_detector_over_trees_pickles(data, library):
    X, y, _, _ = data
    detector = MislabelDetector(_model(library), contamination=0.05).fit(X, y)
    copy = pickle.loads(pickle.dumps(detector))
    np.testing.assert_array_equal(copy.scores_, detector.scores_)
    np.testing.assert_array_equal(
        copy.explainer_.self_influence(), detector.explainer_.self_influence()
    )


# -- XGBoost's missing sentinel ---------------------------------------------------
def test_xgboost_missing_sentinel_is_routed_as_missing():
    """Entries equal to ``missing`` take the missing side of each split, as in
    the model's predictions: the same model as the one fitted with NaN, and
    the same influence."""
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:300] + 1.0
    holes = np.random.default_rng(0).random(X.shape) < 0.15
    sentinel, nan = X.copy(), X.copy()
    sentinel[holes], nan[holes] = -999.0, np.nan
    with_sentinel = InfluenceExplainer(_model("xgb", missing=-999.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no StationarityWarning
        with_sentinel.fit(sentinel, y[:300])
    with_nan = InfluenceExplainer(_model("xgb")).fit(nan, y[:300])
    backend = with_sentinel.backend_
    # base_score plus the leaves the rows reach is the model's margin.
    assert np.ptp(backend.baseline_) < 1e-4  # float32 leaf sums
    assert with_sentinel.stationarity_ < 1e-3
    np.testing.assert_allclose(
        with_sentinel.stationarity_, with_nan.stationarity_, rtol=1e-6
    )
    np.testing.assert_allclose(
        with_sentinel.influence(sentinel[:10], y[:10]),
        with_nan.influence(nan[:10], y[:10]),
        rtol=1e-6,
        atol=1e-12,
    )


# -- settings under their aliases -------------------------------------------------
@pytest.mark.parametrize(
    "params, named",
    [
        (dict(lambda_l1=5.0), "lambda_l1=5"),
        (dict(bagging_fraction=0.5, bagging_freq=1), "bagging_fraction=0.5"),
        (dict(pos_bagging_fraction=0.5, bagging_freq=1), "pos_bagging_fraction"),
        (dict(max_leaf_output=1.0), "max_delta_step=1"),
        (dict(boosting="dart"), "boosting=dart"),
        (dict(data_sample_strategy="goss"), "data_sample_strategy=goss"),
        (dict(sigmoid=3.0), "sigmoid=3"),
        (dict(monotone_constraints=[1] + [0] * 29), "monotone_constraints"),
        (dict(application="cross_entropy"), "objective='cross_entropy'"),
    ],
)
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.filterwarnings("ignore:Found 'application' in params")
def test_lightgbm_settings_are_read_under_any_alias(data, params, named, frozen):
    X, y, _, _ = data
    model = _model("lgbm", **params)
    if frozen:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LightGBM's own alias warnings
            model = FrozenEstimator(model.fit(X, y))
    with pytest.raises(TypeError, match=named.replace("(", r"\(")):
        InfluenceExplainer(model).fit(X, y)


def test_xgboost_alpha_alias_is_refused(data):
    X, y, _, _ = data
    with pytest.raises(TypeError, match="'alpha': '5'"):
        InfluenceExplainer(_model("xgb", alpha=5.0)).fit(X, y)


def test_lightgbm_lambda_l2_is_reg_lambda(data):
    """The L2 penalty LightGBM used, under either name, is the one
    differentiated: the same model, the same influence."""
    X, y, Xt, yt = data
    alias = InfluenceExplainer(_model("lgbm", lambda_l2=10.0)).fit(X, y)
    keyword = InfluenceExplainer(_model("lgbm", reg_lambda=10.0)).fit(X, y)
    assert alias.backend_.ensemble_.l2 == 10.0
    assert alias.stationarity_ < 1e-3
    np.testing.assert_allclose(
        alias.influence(Xt, yt), keyword.influence(Xt, yt), rtol=1e-9, atol=1e-14
    )


# -- retraining a model that stopped early on an eval_set ----------------------------
def _stopped_early(library, data):
    X, y, Xt, yt = data
    model = _model(library, n_estimators=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if library == "xgb":
            model.set_params(early_stopping_rounds=3)
            model.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])], verbose=False)
        else:
            stop = lightgbm.early_stopping(3, verbose=False)
            model.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])], callbacks=[stop])
    return model, X[:200], y[:200]


@pytest.mark.parametrize("library", ["xgb", "lgbm"])
def test_validate_loo_of_an_early_stopped_model_names_the_way_out(data, library):
    """Retraining has no eval_set to stop on (XGBoost refuses; LightGBM would
    grow every round, another model): refused, naming LeafRefit; which
    runs, and agrees with the explainer's LeafRefit removals."""
    _, _, Xt, yt = data
    model, X, y = _stopped_early(library, data)
    explainer = InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
    with pytest.raises(ValueError, match=r"refit_options=\{'fixed_structure'"):
        validate_loo(explainer, Xt, yt, n_remove=3)
    table = validate_loo(
        explainer, Xt, yt, n_remove=3, refit_options={"fixed_structure": True}
    ).table
    refit = InfluenceExplainer(FrozenEstimator(model), solver="leaf_refit")
    exact = refit.fit(X, y).loo_change(Xt, yt).sum(axis=0)
    np.testing.assert_allclose(
        table["actual"], exact[table["train_row"]], rtol=1e-9, atol=1e-12
    )
