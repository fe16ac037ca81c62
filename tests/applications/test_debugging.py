"""explain_errors on a generated domain mismatch (Koh & Liang 2017, 5.3)."""

import doctest

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

import skinfluence.debugging
from skinfluence import InfluenceExplainer, explain_errors


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
    change = explainer.group_influence(groups, X[150:][wrong], y[150:][wrong]).sum(
        axis=0
    )
    np.testing.assert_allclose(table.removal_change, change)
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


def test_docstring_examples():
    result = doctest.testmod(skinfluence.debugging)
    assert result.attempted > 0 and result.failed == 0
