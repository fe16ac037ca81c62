"""Training-set attacks (Koh & Liang 2017, section 5.2) on digits 3 vs 8."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, SmoothHingeSVC, training_set_attack


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 8)
    X_train, X_test, y_train, y_test = train_test_split(
        X[keep], y[keep], test_size=0.5, stratify=y[keep], random_state=0
    )
    model = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    right = np.flatnonzero(explainer.predict(X_test) == y_test)
    return explainer, X_train, y_train, X_test[right], y_test[right]


def test_attack_flips_within_the_box(digits):
    explainer, X_train, y_train, X_t, y_t = digits
    targets = [0, 1, 2, 3]
    result = training_set_attack(
        explainer,
        X_t[targets],
        y_t[targets],
        n_rows=2,
        epsilon=6,
        feature_range=(0, 16),
    )
    assert result.flipped.mean() >= 0.75
    # The box and the valid range hold exactly.
    original = X_train[result.rows]
    assert np.abs(result.X_rows - original).max() <= 6 + 1e-12
    assert result.X_rows.min() >= 0 and result.X_rows.max() <= 16
    # The explainer, its data and labels are untouched.
    X_seen, y_seen, _ = explainer.training_data()
    np.testing.assert_array_equal(X_seen, X_train)
    np.testing.assert_array_equal(y_seen, y_train)
    # A model refitted from scratch on the attacked data (same labels)
    # confirms each reported flip: the attack refitted between steps.
    for j, target in enumerate(targets):
        X_attacked = X_train.copy()
        X_attacked[result.rows[j]] = result.X_rows[j]
        refit = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000)
        refit.fit(X_attacked, y_train)
        flipped = refit.predict(X_t[target : target + 1])[0] != y_t[target]
        assert flipped == result.flipped[j]
    # The test loss rose step by step under refits (history records them).
    steps = result.history.groupby("target").test_loss
    assert (steps.last() > steps.first()).all()
    assert (result.history.groupby("target").size() >= 2).all()


def test_attack_on_smooth_hinge_svc_confirmed_by_a_fresh_fit(digits):
    # Its coef_ is a read-only property: the confirming fit warm-starts from
    # the model's own fit instead of writing the attack's parameters.
    _, X_train, y_train, X_t, y_t = digits
    model = SmoothHingeSVC(C=1.0)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    sign = np.where(y_t == explainer.classes_[1], 1, -1)
    inside = np.flatnonzero(sign * explainer.decision_function(X_t) < 1)[:3]
    X_in, y_in = X_t[inside], y_t[inside]
    result = training_set_attack(
        explainer, X_in, y_in, n_rows=1, epsilon=6, feature_range=(0, 16)
    )
    assert result.flipped.any()
    for j in range(len(inside)):
        X_attacked = X_train.copy()
        X_attacked[result.rows[j]] = result.X_rows[j]
        refit = SmoothHingeSVC(C=1.0).fit(X_attacked, y_train)
        assert (refit.predict(X_in[j : j + 1])[0] != y_in[j]) == result.flipped[j]


def test_selection_rules_and_given_rows(digits):
    explainer, X_train, y_train, X_t, y_t = digits
    kwargs = dict(n_rows=1, epsilon=4, feature_range=(0, 16), max_iter=3)
    for rule in ("first_order", "nearest", "random"):
        result = training_set_attack(
            explainer, X_t[:2], y_t[:2], selection=rule, random_state=0, **kwargs
        )
        # Those rules pick rows of the other class.
        assert np.all(y_train[result.rows[:, 0]] != y_t[:2])
    nearest = training_set_attack(
        explainer, X_t[:2], y_t[:2], selection="nearest", **kwargs
    )
    others = [np.flatnonzero(y_train != c) for c in y_t[:2]]
    expected = [
        o[np.argmin(((X_train[o] - x) ** 2).sum(1))] for o, x in zip(others, X_t)
    ]
    np.testing.assert_array_equal(nearest.rows[:, 0], expected)
    given = training_set_attack(
        explainer, X_t[:2], y_t[:2], selection=[[5], [7]], **kwargs
    )
    np.testing.assert_array_equal(given.rows, [[5], [7]])
    frozen = training_set_attack(
        explainer, X_t[:1], y_t[:1], refit=False, selection=[[5]], **kwargs
    )
    # Without refits every step follows the unattacked model's gradient sign.
    assert frozen.n_iter[0] == 3
    assert frozen.history.test_loss.nunique() == 1


def test_bad_arguments(digits):
    explainer, X_train, y_train, X_t, y_t = digits
    with pytest.raises(ValueError, match="epsilon"):
        training_set_attack(explainer, X_t[:1], y_t[:1], epsilon=0)
    with pytest.raises(ValueError, match="selection"):
        training_set_attack(explainer, X_t[:1], y_t[:1], selection="best")
    with pytest.raises(ValueError, match="shape"):
        training_set_attack(explainer, X_t[:2], y_t[:2], selection=[[1, 2]])
    ridge = InfluenceExplainer(Ridge()).fit(X_train, y_train.astype(float))
    with pytest.raises(ValueError, match="classifier"):
        training_set_attack(ridge, X_t[:1], y_t[:1])
    piped = InfluenceExplainer(
        make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10000))
    ).fit(X_train, y_train)
    with pytest.raises(ValueError, match="Pipeline"):
        training_set_attack(piped, X_t[:1], y_t[:1])


def test_docstring_examples():
    import doctest

    import skinfluence.attack

    result = doctest.testmod(skinfluence.attack)
    assert result.attempted > 0 and result.failed == 0


def test_targets_with_a_flat_loss_are_named(digits):
    from sklearn.svm import LinearSVC

    from skinfluence import FlatLossWarning

    _, X_train, y_train, X_t, y_t = digits
    explainer = InfluenceExplainer(LinearSVC(C=0.1, max_iter=20000))
    explainer.fit(X_train, y_train)
    margin = np.where(y_t == explainer.classes_[1], 1, -1) * (
        explainer.decision_function(X_t)
    )
    outside = np.flatnonzero(margin > 1.5)[:2]
    kwargs = dict(n_rows=1, epsilon=6, feature_range=(0, 16), max_iter=2)
    with pytest.warns(FlatLossWarning, match="2 of 2 targets.*no direction"):
        result = training_set_attack(explainer, X_t[outside], y_t[outside], **kwargs)
    # Nothing to follow: the rows stay where they were.
    np.testing.assert_array_equal(result.X_rows, X_train[result.rows])
    inside = np.flatnonzero(margin < 0.9)[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FlatLossWarning)
        training_set_attack(explainer, X_t[inside], y_t[inside], **kwargs)
