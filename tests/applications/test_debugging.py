"""explain_errors on a generated domain mismatch (Koh & Liang 2017, 5.3)."""

import doctest
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge

import skinfluence.debugging
from skinfluence import InfluenceExplainer, explain_errors
from skinfluence.exceptions import UnsupportedOperationError


def _hospital(seed):
    """Patients whose healthy children were mostly dropped from training."""
    rng = np.random.default_rng(seed)
    n = 20000
    age = rng.choice(["child", "adult", "senior"], size=n, p=[0.01, 0.64, 0.35])
    X = pd.DataFrame(
        {
            "age_child": (age == "child").astype(float),
            "age_adult": (age == "adult").astype(float),
            "age_senior": (age == "senior").astype(float),
            **{f"score_{j}": rng.normal(size=n) for j in range(5)},
            "insulin": rng.binomial(1, 0.3, n).astype(float),
        }
    )
    logit = 3.0 * (
        -0.8
        + X.age_senior
        - X.age_child
        + X.score_0
        - 0.8 * X.score_1
        + 0.6 * X.score_2
        + 0.8 * X.insulin
    )
    y = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    train = np.arange(n) < n // 2
    healthy_children = np.flatnonzero(train & (age == "child") & (y == 0))
    keep = train.copy()
    keep[healthy_children[:-1]] = False  # one healthy child stays
    return X[keep], y[keep], age[keep], X[~train], y[~train]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_mismatched_subgroup_and_its_feature_come_first(seed):
    X, y, age, X_test, y_test = _hospital(seed)
    model = LogisticRegression(tol=1e-10, max_iter=1000)
    explainer = InfluenceExplainer(model).fit(X, y)
    result = explain_errors(explainer, X_test, y_test, groups=age)
    assert result.groups.group.iloc[0] == "child"
    assert result.features.feature.iloc[0] == "age_child"
    # The subgroup's rows are far more influential per row than the others.
    by_group = result.groups.set_index("group").mean_abs_influence
    assert by_group["child"] > 5 * by_group.drop("child").max()
    wrong = explainer.predict(X_test) != y_test
    np.testing.assert_array_equal(result.errors, np.flatnonzero(wrong))


def test_tables_agree_with_the_explainer(rng):
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int)
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:150], y[:150])
    groups = np.arange(150) % 3
    result = explain_errors(explainer, X[150:], y[150:], groups=groups, n_rows=5)
    wrong = explainer.predict(X[150:]) != y[150:]
    total = explainer.influence(X[150:][wrong], y[150:][wrong]).sum(axis=0)
    rows = result.rows.set_index("train_row").sort_index()
    np.testing.assert_allclose(rows.influence.to_numpy(), total)
    assert np.all(np.diff(np.abs(result.rows.influence)) <= 0)
    table = result.groups.set_index("group").sort_index()
    np.testing.assert_allclose(
        table.total_influence, [total[groups == g].sum() for g in range(3)]
    )
    # Exact solver, 4 parameters: the removal change is the Newton step's.
    assert result.groups.attrs["removal_change_method"] == "newton"
    change = explainer.group_influence(
        groups, X[150:][wrong], y[150:][wrong], method="newton"
    ).sum(axis=0)
    np.testing.assert_allclose(table.removal_change, change)
    first = explain_errors(
        explainer, X[150:], y[150:], groups=groups, method="influence"
    ).groups
    assert first.attrs["removal_change_method"] == "influence"
    change = explainer.group_influence(groups, X[150:][wrong], y[150:][wrong])
    np.testing.assert_allclose(
        first.set_index("group").sort_index().removal_change, change.sum(axis=0)
    )
    top = np.argsort(-np.abs(total))[:5]
    P = explainer.perturbation_influence(X[150:][wrong], y[150:][wrong])
    expected = np.abs(P[:, top].sum(axis=0)).sum(axis=0)
    features = result.features.set_index("feature").loc[["x0", "x1", "x2"]]
    np.testing.assert_allclose(features.magnitude, expected)


def test_errors_argument(rng):
    X = rng.normal(size=(80, 2))
    y = X[:, 0] + rng.normal(size=80)
    explainer = InfluenceExplainer(Ridge()).fit(X[:60], y[:60])
    with pytest.raises(ValueError, match="errors="):
        explain_errors(explainer, X[60:], y[60:])
    mask = np.abs(explainer.predict(X[60:]) - y[60:]) > 1
    result = explain_errors(explainer, X[60:], y[60:], errors=mask)
    np.testing.assert_array_equal(result.errors, np.flatnonzero(mask))
    assert result.groups is None
    with pytest.raises(ValueError, match="boolean mask"):
        explain_errors(explainer, X[60:], y[60:], errors=mask[:3])


def _age_mismatch():
    """Children re-admitted in test, almost none of them in training."""
    rng = np.random.default_rng(0)
    n = 1000
    age = rng.choice(["child", "adult", "senior"], size=n, p=[0.2, 0.5, 0.3])
    X = np.column_stack(
        [rng.normal(size=n), rng.normal(size=n), age == "child", age == "senior"]
    ).astype(float)
    logit = X[:, 0] + 0.5 * X[:, 1] + 3.0 * (age == "child")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    train = np.arange(n) < n // 2
    keep = train & ~((age == "child") & (y == 1) & (rng.random(n) < 0.97))
    return X[keep], y[keep], age[keep], X[~train], y[~train]


def test_removal_change_follows_a_refit_where_first_order_does_not():
    X, y, age, X_test, y_test = _age_mismatch()
    model = LogisticRegression(tol=1e-10, max_iter=1000)
    explainer = InfluenceExplainer(model).fit(X, y)
    result = explain_errors(explainer, X_test, y_test, groups=age)
    assert result.groups.attrs["removal_change_method"] == "newton"
    newton = result.groups.set_index("group").removal_change.sort_index()
    first = explain_errors(explainer, X_test, y_test, groups=age, method="influence")
    first = first.groups.set_index("group").removal_change.sort_index()
    X_err, y_err = X_test[result.errors], y_test[result.errors]
    before = explainer.test_loss(X_err, y_err).sum()
    refit = []
    for group in newton.index:
        kept = clone(model).fit(X[age != group], y[age != group])
        p = kept.predict_proba(X_err)[np.arange(len(y_err)), y_err]
        refit.append(-np.log(p).sum() - before)
    # first order: adult -0.54, child -4.78, senior -1.81;
    # newton 3.30, -12.76, -3.69; refit 3.45, -12.74, -3.56.
    np.testing.assert_allclose(newton, refit, rtol=0.1)
    np.testing.assert_array_equal(np.sign(newton), np.sign(refit))
    assert np.sign(first["adult"]) != np.sign(refit[0])  # first order is wrong
    assert np.max(np.abs(first - refit) / np.abs(refit)) > 0.5


def test_removal_change_falls_back_to_first_order_without_a_factor(rng):
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)
    explainer = InfluenceExplainer(LogisticRegression(), solver="cg").fit(
        X[:90], y[:90]
    )
    groups = np.arange(90) % 3
    result = explain_errors(explainer, X[90:], y[90:], groups=groups)
    assert result.groups.attrs["removal_change_method"] == "influence"
    wrong = explainer.predict(X[90:]) != y[90:]
    change = explainer.group_influence(groups, X[90:][wrong], y[90:][wrong])
    np.testing.assert_allclose(
        result.groups.set_index("group").sort_index().removal_change,
        change.sum(axis=0),
    )
    with pytest.raises(UnsupportedOperationError, match="solver='exact'"):
        explain_errors(explainer, X[90:], y[90:], groups=groups, method="newton")


def _indexed_problem(rng):
    index = pd.RangeIndex(500, 620)
    X = pd.DataFrame(rng.normal(size=(120, 3)), index=index, columns=["a", "b", "c"])
    y = pd.Series((X.a + 0.8 * rng.normal(size=120) > 0).astype(int), index=index)
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:90], y[:90])
    return explainer, X[90:], y[90:]


def test_misaligned_groups_warn_as_group_influence_does(rng):
    explainer, X_test, y_test = _indexed_problem(rng)
    groups = pd.Series(np.arange(90) % 3, index=explainer.train_index_)
    shuffled = groups.reset_index(drop=True).sample(frac=1, random_state=1)
    with pytest.warns(UserWarning, match="The index of groups differs") as record:
        result = explain_errors(explainer, X_test, y_test, groups=shuffled)
    assert record[0].filename == __file__  # names the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # aligned or positional: no warning
        by_position = explain_errors(
            explainer, X_test, y_test, groups=shuffled.to_numpy()
        )
        explain_errors(explainer, X_test, y_test, groups=groups)
    pd.testing.assert_frame_equal(result.groups, by_position.groups)


@pytest.mark.parametrize("name", ["y_test", "errors"])
def test_misaligned_test_arguments_warn(rng, name):
    explainer, X_test, y_test = _indexed_problem(rng)
    wrong = pd.Series(explainer.predict(X_test) != y_test, index=X_test.index)
    args = {"y_test": y_test, "errors": wrong}
    args[name] = args[name].reset_index(drop=True)
    with pytest.warns(UserWarning, match=f"The index of {name} differs from X_test"):
        explain_errors(explainer, X_test, args["y_test"], errors=args["errors"])


@pytest.mark.parametrize(
    "y_test", [lambda y: y[:-3], lambda y: np.column_stack([y, y])]
)
def test_y_test_of_the_wrong_shape(rng, y_test):
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:60], y[:60])
    with pytest.raises(ValueError, match="y_test must be 1-d with one label per row"):
        explain_errors(explainer, X[60:], y_test(y[60:]))


@pytest.mark.parametrize(
    "errors",
    [np.ones(19, dtype=bool), np.array([0, 3, 5]), np.ones(20, dtype=int), "all"],
)
def test_errors_must_be_a_boolean_mask_of_the_test_rows(rng, errors):
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:60], y[:60])
    with pytest.raises(
        ValueError, match=r"boolean mask with one entry per row.*\(20\)"
    ):
        explain_errors(explainer, X[60:], y[60:], errors=errors)


@pytest.mark.parametrize("n_rows", [0, -2, 2.5, "3", True, None])
def test_n_rows_must_be_a_positive_integer(rng, n_rows):
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:60], y[:60])
    with pytest.raises(ValueError, match="n_rows must be a positive integer"):
        explain_errors(explainer, X[60:], y[60:], n_rows=n_rows)


def test_other_arguments_refused(rng):
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:60], y[:60])
    with pytest.raises(ValueError, match="method must be one of"):
        explain_errors(explainer, X[60:], y[60:], method="exact")
    with pytest.raises(ValueError, match="one label per training row"):
        explain_errors(explainer, X[60:], y[60:], groups=[np.arange(5)])
    with pytest.raises(TypeError, match="fitted InfluenceExplainer"):
        explain_errors(LogisticRegression(), X[60:], y[60:])


def test_docstring_examples():
    result = doctest.testmod(skinfluence.debugging)
    assert result.attempted > 0 and result.failed == 0
