"""set_output(transform='pandas'): results indexed by the rows' labels."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skinfluence import InfluenceExplainer


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True, as_frame=True)
    X.index = y.index = X.index + 1000
    return X[::2], y[::2], X[1::2][:3], y[1::2][:3]


@pytest.fixture(scope="module")
def explainer(wine):
    X, y, _, _ = wine
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    ex = InfluenceExplainer(model).set_output(transform="pandas")
    return ex.fit(X, y)


@pytest.mark.parametrize("method", ["influence", "loo_change", "relative_influence"])
def test_test_by_train_frames(explainer, wine, method):
    X, _, X_test, y_test = wine
    frame = getattr(explainer, method)(X_test, y_test)
    assert isinstance(frame, pd.DataFrame)
    pd.testing.assert_index_equal(frame.index, X_test.index, check_names=False)
    pd.testing.assert_index_equal(frame.columns, X.index, check_names=False)
    explainer.set_output(transform="default")
    try:
        plain = getattr(explainer, method)(X_test, y_test)
    finally:
        explainer.set_output(transform="pandas")
    assert isinstance(plain, np.ndarray)
    np.testing.assert_array_equal(frame.to_numpy(), plain)


def test_group_frames_are_named_like_the_others(explainer, wine):
    X, y, X_test, y_test = wine
    labels = np.where(X["alcohol"] > 13, "strong", "light")
    frame = explainer.group_influence(labels, X_test, y_test)
    assert (frame.index.name, frame.columns.name) == ("test_row", "group")
    pd.testing.assert_index_equal(frame.index, X_test.index, check_names=False)
    assert list(frame.columns) == ["light", "strong"]
    listed = explainer.group_influence(
        [X.index[labels == "light"], X.index[labels == "strong"]],
        X_test,
        y_test,
    )
    assert isinstance(listed, pd.DataFrame) and list(listed.columns) == [0, 1]
    np.testing.assert_array_equal(listed.to_numpy(), frame.to_numpy())
    pd.testing.assert_index_equal(listed.index, frame.index)


def test_self_influence_series_and_parameter_columns(explainer, wine):
    X, _, _, _ = wine
    series = explainer.self_influence()
    assert isinstance(series, pd.Series) and series.name == "self_influence"
    pd.testing.assert_index_equal(series.index, X.index, check_names=False)
    params = explainer.influence_params()
    assert params.shape == (len(X), explainer.n_params_)
    classes = explainer.classes_
    assert params.columns[0] == f"{classes[0]}__alcohol"
    assert params.columns[len(X.columns)] == f"{classes[0]}__intercept"
    assert params.columns[-1] == f"{classes[-1]}__intercept"


def test_test_loss_series_by_the_test_rows(explainer, wine):
    _, _, X_test, y_test = wine
    losses = explainer.test_loss(X_test, y_test)
    assert isinstance(losses, pd.Series) and losses.name == "test_loss"
    pd.testing.assert_index_equal(losses.index, X_test.index, check_names=False)
    p = explainer.predict_proba(X_test)[
        np.arange(3), np.searchsorted(explainer.classes_, y_test)
    ]
    np.testing.assert_allclose(losses.to_numpy(), -np.log(p), rtol=1e-10)


def test_global_config_and_positions_without_index():
    X, y = load_wine(return_X_y=True)
    with sklearn.config_context(transform_output="pandas"):
        ex = InfluenceExplainer(Ridge()).fit(X[:100], y[:100])
        frame = ex.influence(X[100:102], y[100:102])
    assert list(frame.index) == [0, 1] and list(frame.columns) == list(range(100))
    assert list(ex.parameter_names()[-1:]) == ["intercept"]


def test_column_transformer_parameter_names():
    X = pd.DataFrame(
        {"size": np.arange(40.0), "colour": ["red", "blue"] * 20},
        index=np.arange(40) * 3,
    )
    y = (X["size"] + (X["colour"] == "red") * 5 > 22).astype(int)
    prep = make_column_transformer(
        (StandardScaler(), ["size"]), (OneHotEncoder(), ["colour"])
    )
    ex = InfluenceExplainer(make_pipeline(prep, LogisticRegression(C=0.1)))
    ex.set_output(transform="pandas").fit(X, y)
    assert list(ex.influence_params().columns) == [
        "standardscaler__size",
        "onehotencoder__colour_blue",
        "onehotencoder__colour_red",
        "intercept",
    ]
    table = ex.top_influential(X.iloc[[5]], y.iloc[[5]], k=2)
    assert set(table.train_row) <= set(X.index)


def test_bad_transform_value(explainer):
    with pytest.raises(ValueError, match="'default' or 'pandas'"):
        explainer.set_output(transform="polars")


def test_top_influential_loo_change_is_newton_and_matches_refits():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ex = InfluenceExplainer(Ridge(alpha=1.0, solver="cholesky")).fit(X[:40], y[:40])
    table = ex.top_influential(X[50:51], y[50:51], k=3)
    assert table.attrs["loo_change_method"] == "newton"
    for row, predicted in zip(table.train_row, table.loo_change):
        keep = np.arange(40) != row
        refit = Ridge(alpha=1.0, solver="cholesky").fit(X[:40][keep], y[:40][keep])
        actual = (y[50] - refit.predict(X[50:51])[0]) ** 2 - ex.test_loss(
            X[50:51], y[50:51]
        )[0]
        assert predicted == pytest.approx(actual, rel=1e-8)


def test_top_self_influence_finds_a_flipped_label():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.index = y.index = X.index + 500
    y = y.copy()
    y.iloc[0] = 2  # a setosa labelled virginica
    ex = InfluenceExplainer(LogisticRegression(max_iter=1000)).fit(X, y)
    top = ex.top_self_influence(k=3)
    assert list(top.columns) == [
        "rank",
        "train_row",
        "self_influence",
        "label",
        "suggested_label",
    ]
    assert top.train_row[0] == 500 and top.label[0] == 2
    assert top.suggested_label[0] == 0
    assert top.self_influence.is_monotonic_decreasing


def _frame_models():
    from sklearn.ensemble import GradientBoostingClassifier

    return [
        LogisticRegression(tol=1e-10, max_iter=5000),
        GradientBoostingClassifier(n_estimators=10, random_state=0),
    ]


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("model", _frame_models(), ids=["logistic", "gb"])
def test_a_model_on_a_frame_keeps_its_column_names(wine, model, frozen):
    """The fitted model checks column names as if fitted on the frame: its own
    predictions on frames, the explainer's delegation and the refits raise
    no scikit-learn feature-name warning, and agree with the model's."""
    import warnings

    from sklearn.frozen import FrozenEstimator

    from skinfluence import validate_loo

    X, y, _, _ = wine
    X = pd.DataFrame(StandardScaler().fit_transform(X), X.index, X.columns)
    X_test, y_test = X.iloc[:3], y.iloc[:3]
    if frozen:
        model = FrozenEstimator(sklearn.base.clone(model).fit(X, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        explainer = InfluenceExplainer(model).fit(X, y)
        fitted = getattr(explainer.estimator_, "estimator", explainer.estimator_)
        np.testing.assert_array_equal(fitted.feature_names_in_, X.columns)
        np.testing.assert_array_equal(explainer.predict(X_test), fitted.predict(X_test))
        np.testing.assert_allclose(
            explainer.predict_proba(X_test), fitted.predict_proba(X_test)
        )
        assert explainer.score(X, y) == fitted.score(X, y)
        explainer.top_self_influence(3)
        validate_loo(explainer, X_test, y_test.iloc[:3], n_remove=3, n_random=0)
    with pytest.warns(UserWarning, match="feature names"):
        explainer.predict(X_test.to_numpy())  # as scikit-learn warns


def test_functions_over_an_explainer_ignore_its_output_setting(explainer, wine):
    """validate_loo, validate_lds and select_diverse read positions: with
    pandas output (index labels 1000 and up) their numbers are unchanged."""
    from skinfluence import select_diverse, validate_lds, validate_loo

    X, _, X_test, y_test = wine

    def run():
        loo = validate_loo(
            explainer, X_test[:1], y_test[:1], n_remove=4, n_random=2, random_state=0
        )
        lds = validate_lds(
            explainer, X_test, y_test, n_subsets=6, method="relatif", random_state=0
        )
        scores = -np.asarray(explainer.influence(X_test[:1], y_test[:1]))[0]
        return loo.table, lds.scores, select_diverse(scores, X, 3)

    frame_out = run()
    explainer.set_output(transform="default")
    try:
        plain = run()
    finally:
        explainer.set_output(transform="pandas")
    pd.testing.assert_frame_equal(frame_out[0], plain[0])
    assert list(frame_out[0]["train_row"]) == list(plain[0]["train_row"])
    assert frame_out[0]["train_row"].isin(X.index).all()
    np.testing.assert_array_equal(frame_out[1], plain[1])
    np.testing.assert_array_equal(frame_out[2], plain[2])


def test_pandas_arguments_indexed_otherwise_than_X_warn(wine):
    # Rows pair by position (as in scikit-learn) while results are labelled by
    # X's index: a y, y_test, weights or groups indexed otherwise is named.
    from skinfluence import MislabelDetector

    X, y, _, _ = wine
    X = X.set_axis([f"w{i}" for i in range(len(X))])
    y = pd.Series(np.asarray(y), index=X.index)
    shuffled = y.sample(frac=1, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    with pytest.warns(UserWarning, match="The index of y differs from X's") as w:
        InfluenceExplainer(model).fit(X, shuffled)
    assert f"labelled 'w0' gets the value y labels '{shuffled.index[0]}'" in str(
        w[0].message
    )
    weights = pd.Series(1.0, index=X.index[::-1])
    with pytest.warns(UserWarning, match="The index of sample_weight differs"):
        MislabelDetector(contamination=0.1).fit(X, y, sample_weight=weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ex = InfluenceExplainer(model).fit(X, y)  # aligned, or not pandas: quiet
        ex.influence(X.iloc[:3], y.iloc[:3])
        ex.influence(X.iloc[:3], y.iloc[:3].to_numpy())
        InfluenceExplainer(model).fit(X.to_numpy(), shuffled)
    with pytest.warns(UserWarning, match="The index of y_test differs from X_test"):
        ex.influence(X.iloc[:3], shuffled.iloc[:3])
    with pytest.warns(UserWarning, match="The index of groups differs"):
        ex.group_influence(shuffled, X.iloc[:1], y.iloc[:1])


def test_rows_passed_back_are_read_as_the_tables_report_them():
    """top_influential reports index labels; groups and train_rows take them."""
    from sklearn.model_selection import train_test_split

    from skinfluence.plotting import feature_influence

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    y = 2 * X["a"] + rng.normal(size=300)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    ex = InfluenceExplainer(Ridge(solver="cholesky")).fit(X_train, y_train)
    table = ex.top_influential(X_test[:1], y_test[:1], k=5)
    labels = table.loc[table["kind"] == "harmful", "train_row"].to_numpy()
    positions = X_train.index.get_indexer(labels)
    assert not np.array_equal(labels, positions)  # a shuffled index
    got = ex.group_influence([labels], X_test[:1], y_test[:1], method="newton")
    keep = np.setdiff1d(np.arange(len(X_train)), positions)
    refit = Ridge(solver="cholesky").fit(X_train.iloc[keep], y_train.iloc[keep])
    actual = (y_test[:1] - refit.predict(X_test[:1])) ** 2 - ex.test_loss(
        X_test[:1], y_test[:1]
    )
    np.testing.assert_allclose(got[:, 0], actual, rtol=1e-8)
    mask = np.isin(np.arange(len(X_train)), positions)
    np.testing.assert_array_equal(
        got, ex.group_influence([mask], X_test[:1], y_test[:1], method="newton")
    )
    P = ex.perturbation_influence(X_test[:1], y_test[:1])
    np.testing.assert_allclose(
        feature_influence(ex, X_test[:1], y_test[:1], train_rows=labels),
        np.abs(P[:, positions]).sum(axis=(0, 1)),
    )
    with pytest.raises(ValueError, match=r"index labels.*not in its index"):
        ex.group_influence([[10_000]], X_test[:1], y_test[:1])
    named = X_train.set_axis([f"r{i}" for i in X_train.index])
    ex = InfluenceExplainer(Ridge(solver="cholesky")).fit(named, y_train.to_numpy())
    table = ex.top_influential(X_test[:1], y_test[:1], k=2)
    assert feature_influence(
        ex, X_test[:1], y_test[:1], train_rows=table["train_row"]
    ).shape == (4,)
