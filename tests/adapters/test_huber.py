"""HuberRegressor, explained at its fitted scale ``scale_``.

The adapter holds ``sigma = scale_`` fixed: its objective in (coef, intercept)
is ``1/W sum_i w_i (sigma + sigma H_eps(r_i / sigma)) + alpha/W ||coef||^2``,
piecewise quadratic, with the generalized Hessian ``2 / sigma`` inside the band
``|r| <= eps sigma`` and 0 outside. Checked here:

- the family's derivatives against finite differences, away from the band's
  edges, and its values against Huber's function;
- stationarity at scikit-learn's fit, and that fit against the adapter's own
  minimiser (L-BFGS-B stops a little short of 1e-6; see test_objectives.py);
- leave-one-out changes (Newton and first order) against refits at the fixed
  scale, and against scikit-learn's refits, which also re-estimate the scale.
"""

import functools
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.datasets import load_diabetes
from sklearn.linear_model import HuberRegressor
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, validate_loo
from skinfluence.adapters import SUPPORTED, build_objective
from skinfluence.objectives import Huber

N_TRAIN = 200
_FIT = dict(alpha=1.0, tol=1e-10, max_iter=10_000)


@functools.cache
def _data():
    """Diabetes, 6 standardized features: 200 training rows, 242 test rows."""
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X[:, [0, 1, 2, 3, 4, 8]])
    sw = np.random.default_rng(3).uniform(0.5, 2.0, N_TRAIN)
    for a in (X, y, sw):
        a.setflags(write=False)
    return X[:N_TRAIN], y[:N_TRAIN], sw, X[N_TRAIN:], y[N_TRAIN:]


def _weights(weighted):
    return _data()[2] if weighted else np.ones(N_TRAIN)


@functools.cache
def _explainer(fit_intercept, weighted):
    X, y, _, _, _ = _data()
    model = HuberRegressor(fit_intercept=fit_intercept, **_FIT)
    sw = _weights(weighted) if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged, and no StationarityWarning
        return InfluenceExplainer(model).fit(X, y, sample_weight=sw)


CONFIGS = [(True, False), (True, True), (False, False), (False, True)]
IDS = ["intercept", "intercept-weighted", "no-intercept", "no-intercept-weighted"]


# -- the loss family ---------------------------------------------------------------


def _family_points(rng, eps, sigma, n=400):
    """Targets and outputs with standardized residuals spread over both regimes."""
    t = rng.normal(0.0, 5.0, n)
    z = rng.uniform(-3.0 * eps, 3.0 * eps, n)
    return t, (t - sigma * z)[:, None], z


def test_family_values_are_hubers_function(rng):
    eps, sigma = 1.35, 2.5
    t, eta, z = _family_points(rng, eps, sigma)
    H = np.where(np.abs(z) <= eps, z**2, 2 * eps * np.abs(z) - eps**2)
    family = Huber(eps, sigma)
    np.testing.assert_allclose(family.loss(t, eta), sigma * (1 + H), rtol=1e-12)
    loss, gradient = family.loss_gradient(t, eta)
    np.testing.assert_array_equal(loss, family.loss(t, eta))
    np.testing.assert_array_equal(gradient, family.gradient(t, eta))
    D = family.hessian(t, eta)
    assert D.shape == (len(t), 1, 1)
    np.testing.assert_array_equal(D[:, 0, 0], np.where(np.abs(z) <= eps, 2 / sigma, 0))


def test_family_derivatives_match_finite_differences(rng):
    eps, sigma, h = 1.35, 2.5, 1e-6
    t, eta, z = _family_points(rng, eps, sigma)
    away = np.abs(np.abs(z) - eps) > 1e-3  # no stencil straddles a band edge
    t, eta = t[away], eta[away]
    family = Huber(eps, sigma)
    fd_gradient = (family.loss(t, eta + h) - family.loss(t, eta - h)) / (2 * h)
    np.testing.assert_allclose(family.gradient(t, eta)[:, 0], fd_gradient, atol=1e-7)
    fd_hessian = (family.gradient(t, eta + h) - family.gradient(t, eta - h)) / (2 * h)
    np.testing.assert_allclose(
        family.hessian(t, eta)[:, 0, 0], fd_hessian[:, 0], atol=1e-7
    )


def test_family_is_continuously_differentiable_on_the_band_edges():
    eps, sigma = 1.35, 2.5
    family = Huber(eps, sigma)
    edge = np.array([eps * sigma, -eps * sigma])
    t = np.zeros(2)
    for side in (1 - 1e-12, 1 + 1e-12):
        eta = -(edge * side)[:, None]  # residual just inside, then just outside
        np.testing.assert_allclose(family.loss(t, eta), sigma * (1 + eps**2))
        np.testing.assert_allclose(family.gradient(t, eta)[:, 0], [-2 * eps, 2 * eps])


def test_two_dimensional_targets_are_rejected():
    with pytest.raises(ValueError, match="target"):
        Huber(1.35, 1.0).encode(np.zeros((5, 2)))
    X, y, _, _, _ = _data()
    with pytest.raises(ValueError):
        InfluenceExplainer(HuberRegressor()).fit(X, np.column_stack([y, y]))


def test_huber_regressor_is_listed_as_supported():
    assert "HuberRegressor" in SUPPORTED


# -- the adapter is the estimator's objective at its scale ------------------------


def _minimiser(obj, X, t, w):
    """The exact minimiser of an adapter's (piecewise quadratic) objective."""
    res = minimize(
        lambda th: obj.with_theta(th).objective(X, t, w),
        obj.theta,
        jac=lambda th: obj.with_theta(th).mean_gradient(X, t, w),
        hess=lambda th: obj.with_theta(th).hessian(X, t, w),
        method="trust-exact",
        options=dict(gtol=1e-12, maxiter=1000),
    )
    assert res.success, res.message
    return res.x


def _relative_gradient(obj, X, t, w):
    """Mean gradient over the size of its terms before they cancel."""
    grad = obj.mean_gradient(X, t, w)
    data = (w / w.sum()) @ np.abs(obj.gradients(X, t))
    return np.linalg.norm(grad) / (
        np.linalg.norm(data) + np.linalg.norm(obj.penalty * obj.theta)
    )


@pytest.mark.parametrize(("fit_intercept", "weighted"), CONFIGS, ids=IDS)
def test_stationary_at_sklearn_fit(fit_intercept, weighted):
    """sklearn's fit is (nearly) the minimiser of the adapter's objective.

    The minimisers with a mis-scaled penalty (twice, half, a mean over rows
    instead of weights) lie much farther from it: this pins ``lam = 2 alpha / W``.
    """
    X, y, _, _, _ = _data()
    w = _weights(weighted)
    model = HuberRegressor(fit_intercept=fit_intercept, **_FIT)
    est = model.fit(X, y, sample_weight=w if weighted else None)
    obj, weights = build_objective(est, y, w)
    np.testing.assert_array_equal(weights, w)
    assert obj.penalty_scaling == "fixed"
    assert obj.fit_intercept == fit_intercept
    t = obj.family.encode(y)
    assert _relative_gradient(obj, X, t, w) < 1e-4

    def distance(theta):
        return np.linalg.norm(obj.theta - theta) / np.linalg.norm(theta)

    err = distance(_minimiser(obj, X, t, w))
    assert err < 5e-4
    lam = obj.penalty
    for factor in (2.0, 0.5, w.sum() / len(w) if weighted else 1.5):
        alt = obj.with_theta(obj.theta)
        alt.penalty = factor * lam
        assert err < 0.01 * distance(_minimiser(alt, X, t, w)), factor


@pytest.mark.parametrize(("fit_intercept", "weighted"), CONFIGS, ids=IDS)
def test_explainer_is_stationary(fit_intercept, weighted):
    ex = _explainer(fit_intercept, weighted)  # StationarityWarning is an error
    assert ex.stationarity_ < 1e-2
    assert ex.objective_.family.scale == ex.estimator_.scale_


def test_all_outliers_fit_is_rejected():
    X, y, sw, _, _ = _data()
    # With epsilon=1 the scale collapses onto its lower bound: all rows outside.
    est = HuberRegressor(epsilon=1.0, **_FIT).fit(X, y)
    assert est.outliers_.all()
    with pytest.raises(ValueError, match="outlier"):
        build_objective(est, y, sw)


# -- leave-one-out changes against refits ------------------------------------------


def _fixed_scale_refit(obj, X, t, w, drop):
    """Refit at the explained scale without row ``drop``.

    The sum-form objective ``sum_{i != drop} w_i loss_i + W/2 theta' lam theta``
    (HuberRegressor's penalty ``alpha ||coef||^2`` stays as it is).
    """
    keep = np.arange(len(t)) != drop
    Xk, tk, wk = X[keep], t[keep], w[keep]
    W, lam = w.sum(), obj.penalty

    def fun(th):
        return wk @ obj.with_theta(th).loss(Xk, tk) + 0.5 * W * th @ (lam * th)

    def jac(th):
        return wk @ obj.with_theta(th).gradients(Xk, tk) + W * lam * th

    def hess(th):
        data = obj.with_theta(th).hessian(Xk, tk, wk) - np.diag(lam)
        return wk.sum() * data + W * np.diag(lam)

    res = minimize(
        fun,
        obj.theta,
        jac=jac,
        hess=hess,
        method="trust-exact",
        options=dict(gtol=1e-10),
    )
    assert res.success, res.message
    return res.x


def _rows(predicted, rng, n_top=6, n_random=4):
    top = np.argsort(-np.abs(predicted), kind="stable")[:n_top]
    rest = np.setdiff1d(np.arange(predicted.size), top)
    return np.concatenate([top, rng.choice(rest, n_random, replace=False)])


def _agreement(predicted, actual):
    r = np.corrcoef(predicted, actual)[0, 1]
    return r, np.max(np.abs(predicted - actual)) / np.max(np.abs(actual))


N_TEST = 10


@pytest.mark.parametrize(("fit_intercept", "weighted"), CONFIGS, ids=IDS)
def test_loo_change_matches_fixed_scale_refits(fit_intercept, weighted, rng):
    """Newton and first-order changes of the total test loss against refits.

    The rows removed and the rows around them move across the band's edges, so
    Newton's step on the fitted active set is close to, not exactly, the refit.
    """
    ex = _explainer(fit_intercept, weighted)
    X, y, _, X_test, y_test = _data()
    X_test, y_test = X_test[:N_TEST], y_test[:N_TEST]
    obj, w = ex.objective_, _weights(weighted)
    t, t_test = obj.family.encode(y), obj.family.encode(y_test)
    newton = ex.loo_change(X_test, y_test, method="newton").sum(axis=0)
    first = ex.loo_change(X_test, y_test).sum(axis=0)
    rows = _rows(newton, rng)
    base = obj.loss(X_test, t_test).sum()
    actual = np.array(
        [
            obj.with_theta(_fixed_scale_refit(obj, X, t, w, i))
            .loss(X_test, t_test)
            .sum()
            - base
            for i in rows
        ]
    )
    r, err = _agreement(newton[rows], actual)
    assert r >= 0.999 and err < 0.05, (r, err)
    r, err = _agreement(first[rows], actual)
    assert r >= 0.99 and err < 0.15, (r, err)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_loo_change_tracks_sklearn_refits(weighted, rng):
    """scikit-learn's refits also re-estimate the scale: still close."""
    ex = _explainer(True, weighted)
    X, y, _, X_test, y_test = _data()
    X_test, y_test = X_test[:N_TEST], y_test[:N_TEST]
    w = _weights(weighted)
    newton = ex.loo_change(X_test, y_test, method="newton").sum(axis=0)
    rows = _rows(newton, rng)
    obj = ex.objective_
    t_test = obj.family.encode(y_test)
    base = obj.loss(X_test, t_test).sum()
    own_scale, fixed_scale = [], []
    for i in rows:
        keep = np.arange(N_TRAIN) != i
        refit = HuberRegressor(**_FIT).fit(X[keep], y[keep], sample_weight=w[keep])
        refit_obj, _ = build_objective(refit, y[keep], w[keep])
        own_scale.append(refit_obj.loss(X_test, t_test).sum() - base)
        fixed_scale.append(obj.with_theta(refit_obj.theta).loss(X_test, t_test).sum())
    fixed_scale = np.asarray(fixed_scale) - base
    r_own, _ = _agreement(newton[rows], np.asarray(own_scale))
    r_fixed, _ = _agreement(newton[rows], fixed_scale)
    assert r_own >= 0.98 and r_fixed >= 0.99, (r_own, r_fixed)


def test_validate_loo():
    ex = _explainer(True, True)
    _, _, _, X_test, y_test = _data()
    result = validate_loo(
        ex, X_test[:1], y_test[:1], n_remove=10, n_random=5, random_state=0
    )
    assert len(result.table) == 15
    assert result.pearson_r >= 0.98


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_first_order_loo_is_scaled_influence(weighted):
    """Removing row i is upweighting it by ``-w_i / W`` (a fixed penalty)."""
    ex = _explainer(True, weighted)
    _, _, _, X_test, y_test = _data()
    w = _weights(weighted)
    infl = ex.influence(X_test[:5], y_test[:5])
    loo = ex.loo_change(X_test[:5], y_test[:5])
    expected = -(w / w.sum())[None, :] * infl
    np.testing.assert_allclose(loo, expected, rtol=1e-10, atol=1e-12)
    assert ex.self_influence().shape == (N_TRAIN,)


def test_validate_loo_without_intercept():
    ex = _explainer(False, True)
    _, _, _, X_test, y_test = _data()
    result = validate_loo(
        ex, X_test[:1], y_test[:1], n_remove=10, n_random=5, random_state=0
    )
    assert result.pearson_r >= 0.98
