"""Training-set attacks (Koh & Liang 2017, section 5.2) on digits 3 vs 8."""

import warnings

import numpy as np
import pandas as pd
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


def _refit_flips(X_train, y_train, X_rows_by_row, x, label):
    """Whether scikit-learn's own fit on the attacked data mispredicts x."""
    X_attacked = X_train.copy()
    for row, values in X_rows_by_row:
        X_attacked[row] = values
    model = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000)
    return model.fit(X_attacked, y_train).predict(x[None])[0] != label


def test_targets_already_misclassified_are_flipped_at_step_zero(digits):
    explainer, X_train, y_train, X_t, y_t = digits
    other = {3: 8, 8: 3}
    X_3, y_3 = X_t[:3], y_t[:3].copy()
    y_3[1] = other[y_3[1]]  # the model predicts y_t[1]: not y_3[1]
    kwargs = dict(n_rows=1, epsilon=6, feature_range=(0, 16), max_iter=10)
    with pytest.warns(UserWarning, match=r"1 of 3 targets \(e.g. target 1 .*alre"):
        result = training_set_attack(explainer, X_3, y_3, **kwargs)
    np.testing.assert_array_equal(result.already_flipped, [False, True, False])
    # Flipped before any step: reported at step 0, not attacked.
    assert result.flipped[1] and result.n_iter[1] == 0
    np.testing.assert_array_equal(result.X_rows[1], X_train[result.rows[1]])
    steps = result.history[result.history.target == 1]
    assert steps.step.tolist() == [0] and steps.flipped.tolist() == [True]
    # scikit-learn on the untouched data agrees that it is already wrong.
    assert _refit_flips(X_train, y_train, [], X_3[1], y_3[1])
    # The others are attacked as if alone, and only they count in flip_rate.
    alone = training_set_attack(explainer, X_3[[0, 2]], y_3[[0, 2]], **kwargs)
    np.testing.assert_array_equal(result.rows[[0, 2]], alone.rows)
    np.testing.assert_allclose(result.X_rows[[0, 2]], alone.X_rows)
    np.testing.assert_array_equal(result.flipped[[0, 2]], alone.flipped)
    assert result.flip_rate == alone.flip_rate == np.mean(result.flipped[[0, 2]])
    assert alone.history.groupby("target").flipped.first().eq(False).all()
    for j in (0, 2):
        moved = list(zip(result.rows[j], result.X_rows[j]))
        assert (
            _refit_flips(X_train, y_train, moved, X_3[j], y_3[j]) == (result.flipped[j])
        )
    with pytest.warns(UserWarning, match="1 of 1 targets"):
        only_wrong = training_set_attack(explainer, X_3[[1]], y_3[[1]], **kwargs)
    assert np.isnan(only_wrong.flip_rate) and only_wrong.flipped.all()


def test_selection_array_is_validated(digits):
    explainer, X_train, y_train, X_t, y_t = digits
    n = len(X_train)
    kwargs = dict(n_rows=1, epsilon=4, feature_range=(0, 16), max_iter=1)
    with pytest.raises(ValueError, match=rf"must lie in \[0, {n}\); got \[99999\]"):
        training_set_attack(explainer, X_t[:1], y_t[:1], selection=[[99999]], **kwargs)
    with pytest.raises(ValueError, match=r"as positions \(integers\).*'d3'"):
        training_set_attack(explainer, X_t[:1], y_t[:1], selection=[["d3"]], **kwargs)
    with pytest.raises(ValueError, match="as positions"):
        training_set_attack(explainer, X_t[:1], y_t[:1], selection=[[True]], **kwargs)
    with pytest.raises(ValueError, match=r"shape \(n_targets, n_rows\) = \(2, 1\)"):
        training_set_attack(explainer, X_t[:2], y_t[:2], selection=[[1], []], **kwargs)
    with pytest.raises(
        ValueError, match=r"Row 0 of selection repeats a training row: \[4, 4\]"
    ):
        training_set_attack(
            explainer, X_t[:1], y_t[:1], selection=[[4, 4]], **{**kwargs, "n_rows": 2}
        )


@pytest.fixture(scope="module")
def digits_frame(digits):
    """The digits fixture as DataFrames: string columns, unordered labels."""
    explainer, X_train, y_train, X_t, y_t = digits
    columns = [f"pixel_{j}" for j in range(X_train.shape[1])]
    rng = np.random.default_rng(0)
    train_labels = rng.permutation(len(X_train)) * 7 + 1000  # labels != positions
    X_df = pd.DataFrame(X_train, columns=columns, index=train_labels)
    y_df = pd.Series(y_train, index=X_df.index)
    target_labels = [f"t{j}" for j in range(len(X_t))]
    Xt_df = pd.DataFrame(X_t, columns=columns, index=target_labels)
    yt_df = pd.Series(y_t, index=Xt_df.index)
    model = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000)
    framed = InfluenceExplainer(model).fit(X_df, y_df)
    return explainer, framed, X_df, y_df, Xt_df, yt_df


def test_frames_give_labelled_rows_targets_and_a_frame_of_rows(digits, digits_frame):
    explainer, framed, X_df, y_df, Xt_df, yt_df = digits_frame
    kwargs = dict(n_rows=2, epsilon=6, feature_range=(0, 16))
    result = training_set_attack(framed, Xt_df.iloc[:3], yt_df.iloc[:3], **kwargs)
    plain = training_set_attack(
        explainer, Xt_df.iloc[:3].to_numpy(), yt_df.iloc[:3].to_numpy(), **kwargs
    )
    # Rows are the training index's labels of the rows the numpy run moves.
    np.testing.assert_array_equal(result.rows, X_df.index.to_numpy()[plain.rows])
    assert not np.isin(result.rows, np.arange(len(X_df))).any()
    np.testing.assert_array_equal(result.flipped, plain.flipped)
    # Targets are named by X_target's labels, in the history too.
    np.testing.assert_array_equal(result.targets, ["t0", "t1", "t2"])
    assert set(result.history.target) == {"t0", "t1", "t2"}
    np.testing.assert_array_equal(plain.targets, [0, 1, 2])
    # X_rows: a frame by (target, train_row) with the training columns.
    assert isinstance(result.X_rows, pd.DataFrame)
    assert list(result.X_rows.columns) == list(X_df.columns)
    assert result.X_rows.index.names == ["target", "train_row"]
    assert isinstance(plain.X_rows, np.ndarray)
    for j, target in enumerate(result.targets):
        block = result.X_rows.loc[target]
        np.testing.assert_array_equal(block.index, result.rows[j])
        np.testing.assert_allclose(block.to_numpy(), plain.X_rows[j])
        # Within epsilon of the rows X.loc names, and confirmed by sklearn.
        assert np.abs(block - X_df.loc[block.index]).to_numpy().max() <= 6 + 1e-12
        X_attacked = X_df.copy()
        X_attacked.loc[block.index] = block
        model = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000)
        predicted = model.fit(X_attacked, y_df).predict(Xt_df.loc[[target]])[0]
        assert (predicted != yt_df[target]) == result.flipped[j]
    # The labels round-trip as a selection.
    again = training_set_attack(
        framed, Xt_df.iloc[:3], yt_df.iloc[:3], selection=result.rows, **kwargs
    )
    pd.testing.assert_frame_equal(again.X_rows, result.X_rows)


def test_selection_takes_index_labels_of_a_frame(digits_frame):
    _, framed, X_df, _, Xt_df, yt_df = digits_frame
    kwargs = dict(n_rows=1, epsilon=4, feature_range=(0, 16), max_iter=1)
    label = X_df.index[5]
    result = training_set_attack(
        framed, Xt_df.iloc[:1], yt_df.iloc[:1], selection=[[label]], **kwargs
    )
    assert result.rows.tolist() == [[label]]
    moved = result.X_rows.loc["t0"]
    assert np.abs(moved.to_numpy() - X_df.loc[[label]].to_numpy()).max() <= 4
    # A position is not a label of this index: the message names the fix.
    with pytest.raises(ValueError, match=r"index labels.*\[5\].*X_train.index\[p\]"):
        training_set_attack(
            framed, Xt_df.iloc[:1], yt_df.iloc[:1], selection=[[5]], **kwargs
        )


def test_messages_name_X_target_and_y_target(digits_frame):
    _, framed, _, _, Xt_df, yt_df = digits_frame
    kwargs = dict(n_rows=1, epsilon=4, feature_range=(0, 16), max_iter=1)
    with pytest.raises(ValueError, match="X_target must be 2-D"):
        training_set_attack(framed, Xt_df.iloc[0], yt_df.iloc[:1], **kwargs)
    holed = Xt_df.iloc[:1].copy()
    holed.iloc[0, 3] = np.nan
    with pytest.raises(ValueError, match="X_target holds NaN"):
        training_set_attack(framed, holed, yt_df.iloc[:1], **kwargs)
    with pytest.raises(ValueError, match=r"y_target must be 1-d.*X_target \(2\)"):
        training_set_attack(framed, Xt_df.iloc[:2], yt_df.iloc[:1], **kwargs)
    relabelled = pd.Series(yt_df.iloc[:1].to_numpy(), index=["elsewhere"])
    with pytest.warns(UserWarning, match="index of y_target differs from X_target"):
        training_set_attack(framed, Xt_df.iloc[:1], relabelled, **kwargs)
    with pytest.raises(ValueError, match="the target labelled 't0'; lower n_rows"):
        training_set_attack(
            framed, Xt_df.iloc[:1], yt_df.iloc[:1], **{**kwargs, "n_rows": 10**4}
        )
