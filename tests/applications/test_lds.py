"""validate_lds: the linear datamodeling score against actual subset refits."""

import sys

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge
from sklearn.preprocessing import scale

from skinfluence import (
    InfluenceExplainer,
    LDSValidation,
    UnsupportedOperationError,
    validate_lds,
    validate_loo,
)
from skinfluence.backends import InfluenceBackend
from skinfluence.lds import spearman_columns


@pytest.fixture
def ridge_data():
    """Least squares with a few high-leverage rows (heavy-tailed features)."""
    rng = np.random.default_rng(0)
    X = rng.standard_t(df=2, size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=40)
    return X, y


@pytest.fixture
def ridge(ridge_data):
    X, y = ridge_data
    model = Ridge(alpha=1.0, solver="cholesky")
    return InfluenceExplainer(model, solver="exact").fit(X, y), X, y


def _tight():
    return {"random_state": 0, "refit_options": {"gtol": 1e-7, "max_iter": 5000}}


# -- the protocol's "actual" is an actual refit ----------------------------------
@pytest.mark.parametrize("output", ["predict", "loss"])
def test_actual_outputs_equal_sklearn_refits_on_the_subsets(ridge, output):
    explainer, X, y = ridge
    X_test, y_test = X[:5] + 0.1, y[:5]
    result = validate_lds(
        explainer, X_test, y_test, n_subsets=4, output=output, **_tight()
    )
    for s, keep in enumerate(result.keep_masks):
        refit = Ridge(alpha=1.0, solver="cholesky").fit(X[keep], y[keep])
        pred = refit.predict(X_test)
        expected = pred if output == "predict" else (y_test - pred) ** 2
        np.testing.assert_allclose(result.actual[s], expected, rtol=1e-6, atol=1e-6)
    assert result.keep_masks.sum(axis=1).tolist() == [20] * 4


def test_actual_follows_a_penalty_relative_to_the_data():
    # PoissonRegressor: mean deviance + a fixed alpha, so halving the data
    # doubles the penalty's relative weight; the refit must do the same.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = rng.poisson(np.exp(X @ [0.3, -0.2, 0.1]))
    model = PoissonRegressor(alpha=0.5, tol=1e-12, max_iter=1000)
    explainer = InfluenceExplainer(model).fit(X, y)
    result = validate_lds(explainer, X[:4], output="predict", n_subsets=3, **_tight())
    for s, keep in enumerate(result.keep_masks):
        refit = PoissonRegressor(alpha=0.5, tol=1e-12, max_iter=1000)
        expected = refit.fit(X[keep], y[keep]).predict(X[:4])
        np.testing.assert_allclose(result.actual[s], expected, rtol=1e-6)


@pytest.mark.parametrize("output", ["predict_proba", "decision_function", "loss"])
def test_multinomial_outputs_equal_sklearn_refits(output):
    X, y = load_iris(return_X_y=True)
    X = scale(X)
    model = LogisticRegression(C=0.5, tol=1e-12, max_iter=5000)
    explainer = InfluenceExplainer(model).fit(X, y)
    X_test, y_test = X[::30], y[::30]
    result = validate_lds(
        explainer, X_test, y_test, n_subsets=2, output=output, **_tight()
    )
    rows = np.arange(len(y_test))
    for s, keep in enumerate(result.keep_masks):
        refit = LogisticRegression(C=0.5, tol=1e-12, max_iter=5000)
        refit.fit(X[keep], y[keep])
        proba = refit.predict_proba(X_test)[rows, y_test]
        expected = {
            "predict_proba": proba,
            "decision_function": refit.decision_function(X_test)[rows, y_test],
            "loss": -np.log(proba),
        }[output]
        np.testing.assert_allclose(result.actual[s], expected, rtol=1e-5, atol=1e-6)


# -- the predictions and the score --------------------------------------------------
def test_predictions_are_the_base_plus_the_removed_rows_effects(ridge):
    explainer, X, y = ridge
    X_test, y_test = X[:3], y[:3]
    methods = ["influence", "newton", "relatif", "gradient_similarity"]
    result = validate_lds(
        explainer, X_test, y_test, n_subsets=5, method=methods, random_state=0
    )
    removed = ~result.keep_masks
    base = explainer.test_loss(X_test, y_test)
    loo = explainer.loo_change(X_test, y_test)
    np.testing.assert_allclose(result.predicted["influence"], base + removed @ loo.T)
    # Plain gradient similarity, from the per-row gradients themselves.
    obj = explainer.objective_
    G_train = obj.gradients(X, obj.family.encode(y))
    G_test = obj.gradients(X_test, obj.family.encode(y_test))
    effect = G_test @ G_train.T / len(y)
    np.testing.assert_allclose(
        result.predicted["gradient_similarity"], base + removed @ effect.T
    )
    relatif = explainer.relative_influence(X_test, y_test)
    np.testing.assert_allclose(
        result.predicted["relatif"], base - removed @ relatif.T / len(y)
    )
    table = result.table
    assert len(table) == 5 * 3 * 4
    rows = table[(table.method == "newton") & (table.subset == 2)]
    np.testing.assert_allclose(rows.predicted, result.predicted["newton"][2])
    np.testing.assert_allclose(rows.actual, result.actual[2])


def test_exact_newton_ranks_single_row_removals_perfectly(ridge):
    # Without one row, least squares moves exactly by one Newton step: the
    # predicted outputs are the actual ones, so every test row scores 1.
    explainer, X, y = ridge
    n = len(y)
    result = validate_lds(
        explainer,
        X[:6],
        y[:6],
        n_subsets=8,
        fraction=(n - 1) / n,
        method=["newton", "influence"],
        **_tight(),
    )
    assert result.keep_masks.sum(axis=1).tolist() == [n - 1] * 8
    np.testing.assert_allclose(result.predicted["newton"], result.actual, atol=1e-8)
    np.testing.assert_allclose(result.scores["newton"], 1.0)
    assert result.best == "newton"


def test_newton_beats_first_order_on_high_leverage_data(ridge):
    explainer, X, y = ridge
    result = validate_lds(
        explainer,
        X[:20],
        y[:20],
        n_subsets=30,
        fraction=0.9,
        method=["influence", "newton"],
        random_state=0,
    )
    assert result.mean["newton"] >= result.mean["influence"]
    assert result.mean["newton"] > 0.9
    low, high = result.interval.loc["newton"]
    assert low <= result.mean["newton"] <= high


def test_spearman_of_a_perfect_predictor_is_one():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 4))
    np.testing.assert_allclose(spearman_columns(np.exp(a), a), 1.0)
    np.testing.assert_allclose(spearman_columns(-a, a), -1.0)
    constant = spearman_columns(a, np.ones((30, 4)))
    assert np.isnan(constant).all()


def test_reproducible_with_random_state(ridge):
    explainer, X, y = ridge
    runs = [
        validate_lds(explainer, X[:4], y[:4], n_subsets=6, random_state=seed)
        for seed in (3, 3, 4)
    ]
    assert isinstance(runs[0], LDSValidation)
    np.testing.assert_array_equal(runs[0].keep_masks, runs[1].keep_masks)
    np.testing.assert_array_equal(runs[0].scores, runs[1].scores)
    np.testing.assert_array_equal(runs[0].interval, runs[1].interval)
    assert not np.array_equal(runs[0].keep_masks, runs[2].keep_masks)


# -- progress ---------------------------------------------------------------------
def test_verbose_zero_is_silent_and_one_reports_progress(ridge, capsys):
    explainer, X, y = ridge
    validate_lds(explainer, X[:2], y[:2], n_subsets=4, random_state=0)
    out, err = capsys.readouterr()
    assert out == err == ""
    validate_lds(explainer, X[:2], y[:2], n_subsets=4, random_state=0, verbose=1)
    out, err = capsys.readouterr()
    assert out == ""
    assert "4/4" in err


def test_progress_without_tqdm_prints_a_line_per_tenth(ridge, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    explainer, X, y = ridge
    validate_lds(explainer, X[:2], y[:2], n_subsets=20, random_state=0, verbose=1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("[skinfluence] validate_lds refits: 2/20 (")
    assert lines[-1].startswith("[skinfluence] validate_lds refits: 20/20 (")


# -- the display --------------------------------------------------------------------
def test_display_draws_the_chosen_row_and_the_scores(ridge):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skinfluence.plotting import LDSDisplay

    explainer, X, y = ridge
    result = validate_lds(
        explainer,
        X[:8],
        y[:8],
        n_subsets=12,
        method=["influence", "gradient_similarity"],
        random_state=0,
    )
    display = LDSDisplay.from_result(result, test_row=3, method="influence")
    offsets = display.scatter_.get_offsets()
    np.testing.assert_allclose(offsets[:, 0], result.actual[:, 3])
    np.testing.assert_allclose(offsets[:, 1], result.predicted["influence"][:, 3])
    counts = sum(bar.get_height() for bar in display.hist_)
    assert counts == result.scores["influence"].notna().sum()
    left, right = display.ax_
    assert left.get_xlabel() == "actual loss (refit on the subset)"
    assert left.get_ylabel() == "predicted loss (influence)"
    assert left.get_title() == (
        f"test row 3: Spearman = {result.scores['influence'].iloc[3]:.3f}"
    )
    assert display.mean_line_.get_xdata()[0] == pytest.approx(result.mean["influence"])
    assert right.get_legend().get_texts()[0].get_text() == (
        f"LDS = {result.mean['influence']:.3f}"
    )
    best = LDSDisplay.from_result(result)
    assert best.method == result.best
    with pytest.raises(ValueError, match="not in the result"):
        LDSDisplay.from_result(result, method="newton")
    with pytest.raises(ValueError, match="test_row"):
        LDSDisplay.from_result(result, test_row=8)
    fresh = LDSDisplay.from_estimator(explainer, X[:4], y[:4], n_subsets=5)
    assert fresh.scatter_.get_offsets().shape == (5, 2)
    plt.close("all")


# -- errors -------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2, "half"])
def test_fraction_outside_the_open_unit_interval(ridge, fraction):
    explainer, X, y = ridge
    with pytest.raises(ValueError, match="fraction must be a float in the open"):
        validate_lds(explainer, X[:2], y[:2], fraction=fraction)


@pytest.mark.parametrize("n_subsets", [1, 0, 2.5])
def test_too_few_subsets(ridge, n_subsets):
    explainer, X, y = ridge
    with pytest.raises(ValueError, match="n_subsets must be an integer of at least"):
        validate_lds(explainer, X[:2], y[:2], n_subsets=n_subsets)


def test_unknown_method_and_output(ridge):
    explainer, X, y = ridge
    with pytest.raises(ValueError, match="method must be one of"):
        validate_lds(explainer, X[:2], y[:2], method="trak")
    with pytest.raises(ValueError, match="twice"):
        validate_lds(explainer, X[:2], y[:2], method=["newton", "newton"])
    with pytest.raises(ValueError, match="output must be one of"):
        validate_lds(explainer, X[:2], y[:2], output="proba")


def test_unsupported_operations_fail_before_refitting():
    backend = InfluenceBackend()
    with pytest.raises(UnsupportedOperationError, match="refit_outputs"):
        backend.refit_outputs(np.ones((2, 3), dtype=bool), None)
    with pytest.raises(UnsupportedOperationError, match="gradient_similarity"):
        backend.gradient_similarity(None)
    X = np.random.default_rng(0).normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    explainer = InfluenceExplainer(LogisticRegression(), solver="cg").fit(X, y)
    with pytest.raises(UnsupportedOperationError, match="solver='exact'"):
        validate_lds(explainer, X[:2], y[:2], method=["influence", "newton"])


def test_torch_backend_refits_and_refuses_newton():
    torch = pytest.importorskip("torch")
    from torch import nn

    from skinfluence.torch import TorchModel, refine

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    model = TorchModel(net, weight_decay=0.05).fit(X, y)
    refine(model, X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    with pytest.raises(UnsupportedOperationError, match="method='influence' only"):
        validate_lds(explainer, X[:3], y[:3], method="newton")
    result = validate_lds(
        explainer,
        X[:3],
        y[:3],
        n_subsets=4,
        method=["influence", "relatif", "gradient_similarity"],
        random_state=0,
    )
    # The subset refits agree with the backend's own removal refits.
    removals = [np.flatnonzero(~keep) for keep in result.keep_masks]
    changes = explainer.backend_.refit_test_losses(removals, X[:3], y[:3])
    base = explainer.test_loss(X[:3], y[:3]).sum()
    np.testing.assert_allclose(result.actual.sum(axis=1) - base, changes, atol=1e-6)
    assert result.mean["influence"] > 0.5
    proba = validate_lds(
        explainer, X[:3], y[:3], n_subsets=3, output="predict_proba", random_state=0
    )
    assert ((proba.actual > 0) & (proba.actual < 1)).all()


@pytest.mark.parametrize("name", ["skinfluence.lds", "skinfluence.plotting._lds"])
def test_docstring_examples(name):
    import doctest
    import importlib

    if name.endswith("_lds"):
        pytest.importorskip("matplotlib")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_what_cannot_be_scored_is_refused_by_name():
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    for check in (validate_lds, validate_loo):
        with pytest.raises(TypeError, match=r"InfluenceExplainer\(model\)\.fit"):
            check(model, X[:5], y[:5])
    trees = InfluenceExplainer(HistGradientBoostingClassifier(max_iter=5)).fit(X, y)
    with pytest.raises(UnsupportedOperationError, match="validate_lds.*validate_loo"):
        validate_lds(trees, X[:5], y[:5])


def test_result_repr_is_a_summary(ridge):
    explainer, X, y = ridge
    result = validate_lds(explainer, X[:4], y[:4], n_subsets=5, random_state=0)
    text = repr(result)
    assert len(text) < 200 and "n_subsets=5" in text and "n_test=4" in text
    assert f"influence={result.mean['influence']:.3f}" in text


def test_messages_name_the_output_parameter():
    X, y = load_iris(return_X_y=True)
    explainer = InfluenceExplainer(LogisticRegression(max_iter=1000)).fit(X, y)
    with pytest.raises(ValueError, match="output='predict' is for regressors"):
        validate_lds(explainer, X[:3], y[:3], n_subsets=3, output="predict")
    with pytest.raises(ValueError, match="y_test is required when output='loss'"):
        validate_lds(explainer, X[:3], None, n_subsets=3)
