"""Edges of ordinary notebook flows: clear errors, clamps, index labels."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LogisticRegression,
    QuantileRegressor,
    Ridge,
)
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, MislabelDetector, validate_loo


@pytest.fixture(scope="module")
def cancer_frame():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = pd.DataFrame(StandardScaler().fit_transform(X), columns=X.columns)
    X.index = X.index * 10 + 3  # labels that are not positions
    y.index = X.index
    return X, y


def _logreg():
    return LogisticRegression(C=1.0, tol=1e-10, max_iter=5000)


@pytest.mark.parametrize("pipeline", [False, True])
def test_train_row_holds_index_labels_bare_and_pipeline(cancer_frame, pipeline):
    X, y = cancer_frame
    model = make_pipeline(StandardScaler(), _logreg()) if pipeline else _logreg()
    ex = InfluenceExplainer(model).fit(X[:200], y[:200])
    table = ex.top_influential(X.iloc[[300]], y.iloc[[300]], k=3)
    assert set(table.train_row) <= set(X.index[:200])
    # The labels name the rows whose influence is reported.
    infl = ex.influence(X.iloc[[300]], y.iloc[[300]])[0]
    positions = X.index[:200].get_indexer(table.train_row)
    np.testing.assert_allclose(infl[positions], table.influence)


def test_repeated_index_labels_warn(cancer_frame):
    X, y = cancer_frame
    X, y = X[:100].copy(), y[:100].copy()
    X.index = y.index = np.repeat(np.arange(50), 2)
    with pytest.warns(UserWarning, match="repeated labels"):
        InfluenceExplainer(_logreg()).fit(X, y)


def test_k_larger_than_training_set_is_clamped(cancer_frame):
    X, y = cancer_frame
    ex = InfluenceExplainer(_logreg()).fit(X[:30], y[:30])
    with pytest.warns(UserWarning, match="exceeds the 30 training rows"):
        table = ex.top_influential(X.iloc[[300]], y.iloc[[300]], k=50)
    helpful = table.loc[table.kind == "helpful"]
    harmful = table.loc[table.kind == "harmful"]
    assert (helpful.influence < 0).all() and (harmful.influence > 0).all()
    # Every training row with a nonzero influence, each on one side only.
    assert len(helpful) + len(harmful) == 30
    assert not set(helpful.train_row) & set(harmful.train_row)


def test_n_remove_larger_than_training_set_is_clamped():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ex = InfluenceExplainer(Ridge(alpha=1.0, solver="cholesky")).fit(X[:15], y[:15])
    with pytest.warns(UserWarning, match="removing each row once"):
        result = validate_loo(
            ex, X[20:22], y[20:22], n_remove=40, n_random=5, method="newton"
        )
    assert result.table.train_row.is_unique and len(result.table) == 15
    np.testing.assert_allclose(result.table.predicted, result.table.actual, rtol=1e-6)


def test_nan_regression_target_is_refused():
    X, y = load_diabetes(return_X_y=True)
    ex = InfluenceExplainer(Ridge()).fit(X[:100], y[:100])
    y_test = y[100:103].copy()
    y_test[1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite targets at rows \[1\]"):
        ex.influence(X[100:103], y_test)


@pytest.mark.parametrize(
    "bad, message",
    [
        (-1.0, r"finite and non-negative; rows \[7\] hold \[-1.0\]"),
        (np.nan, "sample_weight contains NaN"),
        (np.inf, "sample_weight contains infinity"),
    ],
)
def test_bad_sample_weight_is_refused(bad, message):
    X, y = load_diabetes(return_X_y=True)
    sw = np.ones(100)
    sw[7] = bad
    with pytest.raises(ValueError, match=message):
        InfluenceExplainer(Ridge()).fit(X[:100], y[:100], sample_weight=sw)


def test_nan_threshold_is_refused():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="'threshold' parameter"):
        MislabelDetector(threshold=np.nan).fit(X, y)


def test_group_labels_none_and_negative_positions_are_refused():
    X, y = load_diabetes(return_X_y=True)
    ex = InfluenceExplainer(Ridge()).fit(X[:20], y[:20])
    groups = np.array(["a"] * 10 + [None] * 10, dtype=object)
    with pytest.raises(ValueError, match="missing labels"):
        ex.group_influence(groups, X[20:22], y[20:22])
    with pytest.raises(ValueError, match=r"\[0, 20\); got \[-1\]"):
        ex.group_influence([np.array([0, -1])], X[20:22], y[20:22])


def test_fitted_search_explains_its_best_estimator():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    search = GridSearchCV(_logreg(), {"C": [0.1, 1.0]}, cv=3).fit(X[:300], y[:300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_search = InfluenceExplainer(FrozenEstimator(search)).fit(X[:300], y[:300])
        direct = InfluenceExplainer(FrozenEstimator(search.best_estimator_)).fit(
            X[:300], y[:300]
        )
    np.testing.assert_allclose(
        by_search.influence(X[300:303], y[300:303]),
        direct.influence(X[300:303], y[300:303]),
    )
    # Unfitted: the explainer fits the search, then explains the winner.
    fitted_here = InfluenceExplainer(search).fit(X[:300], y[:300])
    np.testing.assert_allclose(
        fitted_here.influence(X[300:303], y[300:303]),
        direct.influence(X[300:303], y[300:303]),
        rtol=1e-6,
        atol=1e-10,
    )
    no_refit = GridSearchCV(_logreg(), {"C": [0.1, 1.0]}, cv=3, refit=False)
    no_refit.fit(X[:300], y[:300])
    with pytest.raises(ValueError, match="refit=False"):
        InfluenceExplainer(FrozenEstimator(no_refit)).fit(X[:300], y[:300])


@pytest.mark.parametrize("pipeline", [False, True])
def test_nan_in_test_rows_names_argument_rows_and_imputer(pipeline):
    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), _logreg()) if pipeline else _logreg()
    ex = InfluenceExplainer(model).fit(X[:200], y[:200])
    X_test = X[200:210].copy()
    X_test[[3, 7], 2] = np.nan
    with pytest.raises(ValueError, match=r"X_test.* rows \[3, 7\].*SimpleImputer"):
        ex.influence(X_test, y[200:210])


def test_overflowing_features_are_refused_before_fitting():
    X, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning: nothing fitted
        with pytest.raises(ValueError, match="overflow.*StandardScaler"):
            InfluenceExplainer(_logreg()).fit(X * 1e198, y)


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression(penalty="l1", solver="saga"),
        LogisticRegression(l1_ratio=0.5, solver="saga", penalty="elasticnet"),
    ],
)
def test_non_smooth_penalties_are_refused_before_fitting(model, monkeypatch):
    X, y = load_breast_cancer(return_X_y=True)

    def never(*args, **kwargs):
        raise AssertionError("fitted")

    monkeypatch.setattr(type(model), "fit", never)
    with pytest.raises(ValueError, match="not twice differentiable"):
        InfluenceExplainer(model).fit(X, y)


def test_svm_rows_outside_the_margin_are_flat_not_mislisted():
    from sklearn.svm import SVC

    from skinfluence import FlatLossWarning, SmoothHingeSVC

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    for model in (SVC(kernel="linear", C=1.0), SmoothHingeSVC(C=1.0)):
        ex = InfluenceExplainer(model).fit(X[:300], y[:300])
        margin = y[300:] * 2 - 1
        outside = np.flatnonzero(margin * ex.decision_function(X[300:]) > 2)[:3]
        X_out, y_out = X[300:][outside], y[300:][outside]
        with pytest.warns(FlatLossWarning, match="outside the margin") as record:
            table = ex.top_influential(X_out, y_out, k=5)
        assert sum(w.category is FlatLossWarning for w in record) == 1
        # The smooth hinge leaves ~1e-200 there: rounding noise, no row listed.
        assert table.empty
        with pytest.warns(FlatLossWarning, match="target='decision_function'"):
            np.testing.assert_array_equal(ex.influence(X_out, y_out), 0.0)
        by_output = ex.top_influential(X_out, y_out, k=5, target="decision_function")
        assert len(by_output) == 2 * 5 * len(outside)
        assert (
            not by_output.groupby("test_row")
            .train_row.apply(lambda rows: rows.duplicated().any())
            .any()
        )
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            result = validate_loo(ex, X_out[:1], y_out[:1], n_remove=5, n_random=0)
        assert np.isnan(result.pearson_r) and np.isnan(result.slope)
        messages = [str(w.message) for w in record]
        assert sum("all equal" in m for m in messages) == 1
        assert sum(w.category is FlatLossWarning for w in record) == 1
        assert not any(w.category is RuntimeWarning for w in record)


def test_a_certain_logistic_fit_is_flat_and_names_the_penalty():
    from skinfluence import FlatLossWarning

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(C=1e4, tol=1e-10, max_iter=100000)
    ex = InfluenceExplainer(model).fit(X[:300], y[:300])
    X_test, y_test = X[300:], y[300:]
    p = ex.predict_proba(X_test)[np.arange(len(y_test)), y_test]
    flat = 1.0 - p < 1e-12  # the loss gradient is p - 1 for the given label
    assert flat.any() and not flat.all()
    first = int(np.flatnonzero(flat)[0])
    with pytest.warns(FlatLossWarning, match="smaller C") as record:
        infl = ex.influence(X_test, y_test)
    assert "hinge" not in str(record[0].message)
    assert f"the row at position {first} of X_test" in str(record[0].message)
    np.testing.assert_array_equal(infl[flat], 0.0)
    assert np.all(np.abs(infl[~flat]).max(axis=1) > 0)
    # Values, not derivatives: the loss itself is no influence to warn of.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FlatLossWarning)
        losses = ex.test_loss(X_test, y_test)
    np.testing.assert_allclose(losses, -np.log(p), rtol=1e-6, atol=1e-11)


def test_relatif_is_bounded_and_zero_for_flat_training_rows():
    # theta-RelatIF = -g_t' H^-1 g_i / ||H^-1 g_i|| is at most ||g_t|| in size
    # (Cauchy-Schwarz). Rows outside the margin have g_i ~ 1e-200, whose norm
    # underflows before their influence does: they score 0, not 1e144.
    from skinfluence import SmoothHingeSVC

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ex = InfluenceExplainer(SmoothHingeSVC(C=1.0)).fit(X[:300], y[:300])
    target = "decision_function"
    g_t = np.linalg.norm(np.append(X[300], 1.0))  # d f / d (coef, intercept)
    relatif = ex.relative_influence(X[300:301], y[300:301], target=target)[0]
    assert np.abs(relatif).max() <= g_t * (1 + 1e-9)
    residuals = ex.backend_.residuals_[:, 0]
    flat = np.abs(residuals) < 1e-12
    assert flat.sum() > 50
    np.testing.assert_array_equal(relatif[flat], 0.0)
    assert np.all(relatif[~flat] != 0)
    for method in ("theta_relatif", "l_relatif"):
        table = ex.top_influential(
            X[300:301], y[300:301], k=5, method=method, target=target
        )
        assert not np.isin(table.train_row, np.flatnonzero(flat)).any()
    top = ex.top_influential(
        X[300:301], y[300:301], k=5, method="theta_relatif", target=target
    )
    np.testing.assert_allclose(
        top.score, relatif[top.train_row], rtol=1e-10, atol=1e-14
    )


def test_one_dimensional_test_rows_are_refused_with_the_two_dimensional_form():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    explainer = InfluenceExplainer(make_pipeline(StandardScaler(), Ridge())).fit(X, y)
    with pytest.raises(ValueError, match=r"2-D.*1-D Series of 30.*X\.iloc\[\[i\]\]"):
        explainer.influence(X.iloc[0], y.iloc[:1])
    with pytest.raises(ValueError, match=r"1-D ndarray.*reshape\(1, -1\)"):
        explainer.loo_change(X.to_numpy()[0], y.iloc[:1])
    assert explainer.influence(X.iloc[[0]], y.iloc[:1]).shape == (1, len(X))


def test_test_labels_of_another_type_name_the_classes():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    ex = InfluenceExplainer(LogisticRegression(max_iter=1000)).fit(X, names)
    with pytest.raises(ValueError, match=r"not seen during fit: \[0, 2\].*'setosa'"):
        ex.influence(X[:3], [0, 2, 0])


@pytest.mark.parametrize(
    "model, hint",
    [
        (Lasso(alpha=0.1), "L1 penalty has no second derivative"),
        (ElasticNet(alpha=0.1), "L1 penalty has no second derivative"),
        (QuantileRegressor(alpha=0.0), "piecewise linear"),
        (RandomForestRegressor(n_estimators=2), "greedy splits.*HistGradient"),
    ],
)
def test_objectives_without_a_hessian_say_why(model, hint):
    X, y = load_diabetes(return_X_y=True)
    with pytest.raises(TypeError, match=hint):
        InfluenceExplainer(model).fit(X[:50], y[:50])


@pytest.mark.parametrize(
    "model, bad, domain",
    [
        ("poisson", [-1.0, 2.0], r"power=1 \(y >= 0\) at rows \[0\]"),
        ("gamma", [0.0, 2.0], r"power=2 \(y > 0\) at rows \[0\]"),
        ("tweedie", [2.0, -0.5], r"power=1.5 \(y >= 0\) at rows \[1\]"),
    ],
)
def test_test_targets_outside_a_deviance_domain_are_refused(model, bad, domain):
    from sklearn.linear_model import GammaRegressor, PoissonRegressor, TweedieRegressor

    estimator = {
        "poisson": PoissonRegressor(),
        "gamma": GammaRegressor(),
        "tweedie": TweedieRegressor(power=1.5),
    }[model]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = rng.poisson(2.0, 60) + 0.5
    ex = InfluenceExplainer(estimator).fit(X, y)
    for method in (ex.influence, ex.test_loss, ex.loo_change):
        with pytest.raises(ValueError, match=domain):
            method(X[:2], bad)
    # At the domain's edge the loss is defined (Poisson: y = 0).
    if model == "poisson":
        assert np.isfinite(ex.test_loss(X[:2], [0.0, 1.0])).all()


def test_rows_of_weight_zero_are_outside_the_fit_and_never_listed():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    weights = np.ones(400)
    weights[::10] = 0.0  # rows masked out of the fit
    model = LogisticRegression(tol=1e-10, max_iter=5000)
    ex = InfluenceExplainer(model).fit(X[:400], y[:400], sample_weight=weights)
    out = weights == 0
    X_test, y_test = X[400:420], y[400:420]
    infl = ex.influence(X_test, y_test)
    np.testing.assert_array_equal(infl[:, out], 0.0)
    np.testing.assert_array_equal(ex.loo_change(X_test, y_test)[:, out], 0.0)
    np.testing.assert_array_equal(ex.self_influence()[out], 0.0)
    np.testing.assert_array_equal(ex.influence_params()[out], 0.0)
    np.testing.assert_array_equal(ex.perturbation_influence(X_test, y_test)[:, out], 0)
    assert np.all(ex.self_influence()[~out] > 0)
    for method in ("influence", "theta_relatif"):
        table = ex.top_influential(X_test, y_test, k=10, method=method)
        assert not table.train_row.isin(np.flatnonzero(out)).any()
    # The others are as without those rows (refit on the 360 kept rows).
    kept = InfluenceExplainer(model).fit(X[:400][~out], y[:400][~out])
    np.testing.assert_allclose(
        infl[:, ~out], kept.influence(X_test, y_test), rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize("make", [lambda: Ridge(), "hgb"])
def test_several_outputs_are_refused_naming_one_model_per_output(make):
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, y = load_diabetes(return_X_y=True)
    model = HistGradientBoostingRegressor(max_iter=5) if make == "hgb" else make()
    with pytest.raises(ValueError, match=r"y has 2 columns.*fit\(X, y\[:, j\]\)"):
        InfluenceExplainer(model).fit(X, np.c_[y, 2 * y])
