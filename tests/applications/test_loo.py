"""Predicted vs actual leave-one-out changes: the paper's Figure 2 protocol."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import log_loss
from sklearn.preprocessing import scale

from skinfluence import InfluenceExplainer, refine, validate_loo


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return scale(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


def _check_agreement(result, r_min=0.98, slope=(0.8, 1.25)):
    assert result.pearson_r >= r_min, result.table
    assert slope[0] <= result.slope <= slope[1], result.table


@pytest.mark.parametrize("method", ["influence", "newton"])
def test_binary_logistic_matches_retraining(cancer, method):
    X, y = cancer
    model = LogisticRegression(C=0.1, tol=1e-12, max_iter=5000)
    explainer = InfluenceExplainer(model).fit(X[:400], y[:400])
    for t in (400, 401):
        result = validate_loo(
            explainer,
            X[t : t + 1],
            y[t : t + 1],
            n_remove=25,
            n_random=10,
            method=method,
            random_state=0,
        )
        _check_agreement(result)


@pytest.mark.parametrize("method", ["influence", "newton"])
def test_multinomial_logistic_matches_retraining(digits, method):
    X, y = digits
    model = LogisticRegression(C=0.1, tol=1e-10, max_iter=500, solver="newton-cholesky")
    explainer = InfluenceExplainer(model).fit(X[:600], y[:600])
    result = validate_loo(
        explainer,
        X[1500:1501],
        y[1500:1501],
        n_remove=20,
        n_random=5,
        method=method,
        random_state=0,
    )
    _check_agreement(result)


def test_ridge_first_order_matches_retraining(diabetes):
    X, y = diabetes
    explainer = InfluenceExplainer(Ridge(alpha=0.1)).fit(X[:300], y[:300])
    result = validate_loo(
        explainer, X[300:301], y[300:301], n_remove=25, n_random=10, random_state=0
    )
    _check_agreement(result)


def _assert_newton_is_the_refit(explainer, X_test, y_test, n_remove, n_random, rtol):
    """Newton's predicted changes equal validate_loo's refits."""
    result = validate_loo(
        explainer,
        X_test,
        y_test,
        n_remove=n_remove,
        n_random=n_random,
        method="newton",
        random_state=0,
    )
    scale_ = np.abs(result.table["actual"]).max()
    np.testing.assert_allclose(
        result.table["predicted"], result.table["actual"], rtol=rtol, atol=1e-8 * scale_
    )


@pytest.mark.parametrize("estimator", [Ridge(alpha=0.3), LinearRegression()])
def test_newton_loo_is_exact_for_least_squares(diabetes, estimator):
    X, y = diabetes
    sw = np.random.default_rng(0).uniform(0.5, 2.0, 300)
    explainer = InfluenceExplainer(estimator).fit(X[:300], y[:300], sample_weight=sw)
    _assert_newton_is_the_refit(explainer, X[300:303], y[300:303], 15, 15, 1e-8)


def test_newton_loo_is_exact_for_least_squares_with_a_data_scaled_penalty(diabetes):
    # A GLM's penalty (alpha/2 ||w||^2 against the mean deviance) loses a
    # share of its curvature with each row, as SGD's does: one Newton step
    # must include it to be the refit.
    from sklearn.linear_model import TweedieRegressor

    X, y = diabetes
    X = scale(X)
    model = TweedieRegressor(
        power=0, link="identity", alpha=0.5, solver="newton-cholesky", tol=1e-12
    )
    explainer = InfluenceExplainer(model).fit(X[:300], y[:300])
    _assert_newton_is_the_refit(explainer, X[300:303], y[300:303], 10, 5, 1e-7)


def test_newton_loo_is_exact_with_weights_of_a_few_values(diabetes):
    # With sample weights each row removes its own share of the GLM's
    # penalty: one inverse per distinct weight keeps the step exact.
    from sklearn.linear_model import TweedieRegressor

    from skinfluence.core import _formulas

    X, y = diabetes
    X, y = scale(X)[:300], y[:300]
    sw = np.random.default_rng(1).choice([0.5, 1.0, 2.0], 300)
    model = TweedieRegressor(
        power=0, link="identity", alpha=0.5, solver="newton-cholesky", tol=1e-12
    )
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    _assert_newton_is_the_refit(explainer, X[:3], y[:3], 10, 5, 1e-7)
    # The held-out outputs group rows the same way: each row's own step.
    backend = explainer.backend_
    args = (backend.X_, backend.target_, backend.weights_)
    own = _formulas.loo_own_outputs(
        backend.objective_, backend.inverse_hessian(), *args
    )
    delta = _formulas.newton_parameter_changes(
        backend.objective_, backend.inverse_hessian(), *args
    )
    theta = backend.objective_.theta
    expected = np.c_[X, np.ones(300)] @ theta[:, None] + (
        np.c_[X, np.ones(300)] * delta
    ).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(own, expected, rtol=1e-10)


def test_newton_loo_matches_statsmodels_dfbeta(diabetes):
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.stats.outliers_influence import OLSInfluence

    X, y = diabetes
    X, y = X[:200], y[:200]
    ols = sm.OLS(y, sm.add_constant(X)).fit()
    # statsmodels' dfbeta_i = beta - beta_without_i, constant first.
    dfbeta = OLSInfluence(ols).dfbeta
    explainer = InfluenceExplainer(LinearRegression()).fit(X, y)
    X_new = load_diabetes().data[300:304]
    # Change of the prediction at X_new when each row is removed.
    expected = -(sm.add_constant(X_new, has_constant="add") @ dfbeta.T)
    got = explainer.loo_change(X_new, method="newton", target="decision_function")
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)


def test_newton_closer_to_refit_than_first_order_for_logistic(cancer):
    X, y = cancer
    model = LogisticRegression(C=1.0, tol=1e-12, max_iter=5000)
    explainer = InfluenceExplainer(model).fit(X[:150], y[:150])
    errors = {}
    for method in ("influence", "newton"):
        res = validate_loo(
            explainer, X[400:401], y[400:401], n_remove=15, n_random=0, method=method
        )
        errors[method] = np.abs(res.table["predicted"] - res.table["actual"]).mean()
    assert errors["newton"] < 0.5 * errors["influence"]


def test_refits_of_a_default_tol_model_reach_their_optimum():
    """The explainer polishes its clone of LogisticRegression() (tol=1e-4);
    validate_loo's refits are polished too, so each actual change is the
    exact leave-one-out change (a tight cold refit), not sklearn's early stop
    (which, warm-started at the polished fit, stops at once: 0)."""
    X, y = load_breast_cancer(return_X_y=True)
    X = scale(X)
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:200], y[:200])
    assert explainer.n_polish_steps_ > 0
    result = validate_loo(explainer, X[300:302], y[300:302], n_remove=4, n_random=0)
    test = explainer.estimator_
    base = log_loss(y[300:302], test.predict_proba(X[300:302]), normalize=False)
    for row, actual in zip(result.table.train_row, result.table.actual):
        keep = np.arange(200) != row
        exact = refine(
            LogisticRegression(tol=1e-12, max_iter=10_000).fit(
                X[:200][keep], y[:200][keep]
            ),
            X[:200][keep],
            y[:200][keep],
        )
        loss = log_loss(y[300:302], exact.predict_proba(X[300:302]), normalize=False)
        assert actual == pytest.approx(
            loss - base, rel=1e-4
        )  # polish tol: 1e-3 of a row
    assert np.all(result.table.actual != 0)


def test_unknown_refit_options_are_refused_with_the_accepted_ones():
    X, y = load_breast_cancer(return_X_y=True)
    explainer = InfluenceExplainer(LogisticRegression()).fit(scale(X)[:100], y[:100])
    with pytest.raises(ValueError, match=r"\['gtol'\] are not options.*take none"):
        validate_loo(explainer, X[:1], y[:1], refit_options={"gtol": 1e-12})


@pytest.mark.parametrize("search", ["logistic", "ridge"])
def test_cv_search_is_retrained_at_its_chosen_hyperparameter(search):
    # The explainer explains the objective at C_ (alpha_); retraining the
    # search would rerun the cross-validation, which may choose another value.
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV

    if search == "logistic":
        X, y = load_breast_cancer(return_X_y=True)
        X, y = scale(X)[:300], y[:300]
        model = LogisticRegressionCV(Cs=5, tol=1e-10, max_iter=10_000)
        chosen = LogisticRegression(tol=1e-10, max_iter=10_000)
    else:
        X, y = load_diabetes(return_X_y=True)
        model = RidgeCV(alphas=np.logspace(-3, 2, 11))
        chosen = Ridge()
    explainer = InfluenceExplainer(model).fit(X[:250], y[:250])
    fitted = explainer.estimator_
    value = {"C": fitted.C_[0]} if search == "logistic" else {"alpha": fitted.alpha_}
    chosen.set_params(**value)
    result = validate_loo(
        explainer, X[250:253], y[250:253], n_remove=4, n_random=0, method="newton"
    )
    base = explainer.test_loss(X[250:253], y[250:253]).sum()
    for row, actual in zip(result.table["train_row"], result.table["actual"]):
        keep = np.delete(np.arange(250), row)
        refit = InfluenceExplainer(chosen).fit(X[keep], y[keep])
        expected = refit.test_loss(X[250:253], y[250:253]).sum() - base
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-10)
    # The refit is the model at the chosen value, not another search.
    from skinfluence.backends._estimator_refits import warm_clone

    refit = warm_clone(explainer.backend_.model_)
    assert type(refit) is type(chosen)
    assert {k: refit.get_params()[k] for k in value} == value


def test_a_test_row_past_the_margin_gives_nan_not_a_crash():
    # Past a smooth hinge's margin the test loss is flat: first-order changes
    # are 0, Newton's about 1e-190, whose squares underflow a least-squares fit.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skinfluence import SmoothHingeSVC

    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), SmoothHingeSVC())
    explainer = InfluenceExplainer(model).fit(X[:350], y[:350])
    for method in ("influence", "newton"):
        with pytest.warns(UserWarning, match="inside the margin"):
            result = validate_loo(
                explainer, X[350:351], y[350:351], method=method, random_state=0
            )
        assert np.isnan(result.pearson_r) and np.isnan(result.slope)


def test_agreement_is_scale_free():
    from skinfluence.loo import agreement as _agreement

    rng = np.random.default_rng(0)
    actual = rng.standard_normal(30)
    pred = 2.0 * actual + 0.1 * rng.standard_normal(30)
    r, slope = _agreement(pred, actual)
    assert r == pytest.approx(np.corrcoef(pred, actual)[0, 1], rel=1e-12)
    assert slope == pytest.approx(np.polyfit(actual, pred, 1)[0], rel=1e-12)
    # Changes of 1e-140: their squares underflow an unscaled least squares.
    r_small, slope_small = _agreement(pred * 1e-140, actual * 1e-140)
    assert (r_small, slope_small) == pytest.approx((r, slope), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_remove": -3}, ValueError, "n_remove must be >= 0"),
        ({"n_random": -1}, ValueError, "n_random must be >= 0"),
        ({"n_remove": 0, "n_random": 0}, ValueError, "leave no row"),
        ({"n_remove": 2.5}, TypeError, "n_remove must be an integer"),
    ],
)
def test_row_counts_are_checked_before_any_refit(cancer, kwargs, error, match):
    X, y = cancer
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:100], y[:100])
    with pytest.raises(error, match=match):
        validate_loo(explainer, X[100:101], y[100:101], **kwargs)
