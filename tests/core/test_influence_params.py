"""``influence_params`` is the derivative of refitted parameters.

Row i of ``InfluenceExplainer.influence_params()`` is ``d theta / d eps`` when
row i's effective weight grows by ``eps * W`` (``W`` the sum of effective
weights), i.e. the mean-form objective gains ``eps * loss_i``. Here it is
compared with central finite differences of actual refits of the estimator,
which include every scaling the estimator applies (``C``, ``alpha``, class
weights, liblinear's penalized intercept and the GLMs' penalty, which is
relative to the weight sum).
"""

import functools
import types
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import (
    GammaRegressor,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    PoissonRegressor,
    Ridge,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
    TweedieRegressor,
)
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.adapters import build_objective


@functools.cache
def _data(name):
    """``(X, y, sample_weight)``: small train sets, plus 5 test rows at the end."""
    rng = np.random.default_rng(3)
    if name == "cancer":
        X, y = load_breast_cancer(return_X_y=True)
        X = StandardScaler().fit_transform(X)[:, [0, 1, 4, 7, 8, 9, 14, 19]]
        rows = rng.choice(len(y), 125, replace=False)
        X, y = X[rows], y[rows]
    elif name == "wine":
        X, y = load_wine(return_X_y=True)
        X = StandardScaler().fit_transform(X)[:, [0, 1, 4, 6, 9, 12]]
        rows = rng.permutation(len(y))
        X, y = X[rows], y[rows]
    elif name == "softmax":
        X = rng.standard_normal((205, 3))
        logits = X @ rng.standard_normal((3, 3))
        P = np.exp(logits - logits.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        y = np.array([rng.choice(3, p=p) for p in P])
    else:
        X, y = load_diabetes(return_X_y=True)
        rows = rng.choice(len(y), 125, replace=False)
        X = StandardScaler().fit_transform(X[rows][:, [0, 1, 2, 3, 4, 8]])
        y = y[rows]
        if name == "positive":
            y = y / 100.0
        elif name == "counts":
            y = rng.poisson(np.exp(0.5 + X @ np.linspace(-0.3, 0.3, 6))).astype(float)
    X.setflags(write=False)
    y.setflags(write=False)
    n = len(y) - 5
    sw = rng.uniform(0.5, 2.0, n)
    return X[:n], y[:n], sw, X[n:], y[n:]


_NEWTON = dict(solver="newton-cholesky", tol=1e-12, max_iter=1000)
_CV = dict(
    Cs=[0.1, 1.0, 10.0],
    cv=3,
    l1_ratios=(0.0,),
    scoring="neg_log_loss",
    use_legacy_attributes=False,
)

CASES = {
    "logreg-binary-lbfgs": (
        lambda: LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000),
        "cancer",
    ),
    "logreg-binary-newton": (lambda: LogisticRegression(C=0.5, **_NEWTON), "cancer"),
    "logreg-binary-dict-weight": (
        lambda: LogisticRegression(C=0.5, class_weight={0: 2.0, 1: 1.0}, **_NEWTON),
        "cancer",
    ),
    "logreg-binary-liblinear": (
        lambda: LogisticRegression(
            C=0.5,
            solver="liblinear",
            intercept_scaling=2.5,
            tol=1e-12,
            max_iter=10_000,
        ),
        "cancer",
    ),
    "logreg-binary-no-intercept": (
        lambda: LogisticRegression(C=0.5, fit_intercept=False, **_NEWTON),
        "cancer",
    ),
    "logreg-multi-newton": (lambda: LogisticRegression(C=0.5, **_NEWTON), "wine"),
    "logreg-multi-lbfgs": (
        lambda: LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000),
        "wine",
    ),
    "logreg-multi-no-intercept": (
        lambda: LogisticRegression(C=0.5, fit_intercept=False, **_NEWTON),
        "wine",
    ),
    "logreg-multi-unpenalized": (
        lambda: LogisticRegression(C=np.inf, **_NEWTON),
        "softmax",
    ),
    "logregcv-binary": (lambda: LogisticRegressionCV(**_CV, **_NEWTON), "cancer"),
    "logregcv-multi": (lambda: LogisticRegressionCV(**_CV, **_NEWTON), "wine"),
    "linear-regression": (lambda: LinearRegression(), "diabetes"),
    "ridge": (lambda: Ridge(alpha=30.0), "diabetes"),
    "ridge-no-intercept": (lambda: Ridge(alpha=30.0, fit_intercept=False), "diabetes"),
    "ridgecv": (lambda: RidgeCV(alphas=[0.1, 10.0, 100.0]), "diabetes"),
    "poisson": (lambda: PoissonRegressor(alpha=0.1, **_NEWTON), "counts"),
    "gamma": (lambda: GammaRegressor(alpha=0.1, **_NEWTON), "positive"),
    "tweedie-1.5-log": (
        lambda: TweedieRegressor(power=1.5, alpha=0.1, **_NEWTON),
        "counts",
    ),
    "tweedie-0-identity": (
        lambda: TweedieRegressor(power=0.0, link="identity", alpha=0.1, **_NEWTON),
        "positive",
    ),
    "tweedie-1.5-identity": (
        lambda: TweedieRegressor(power=1.5, link="identity", alpha=1.0, **_NEWTON),
        "positive",
    ),
    "sgd-classifier": (lambda: SGDClassifier(loss="log_loss"), "cancer"),
    "sgd-regressor": (lambda: SGDRegressor(), "positive"),
}

_NEEDS_LEGACY_ATTRIBUTES = pytest.mark.skipif(
    "use_legacy_attributes" not in LogisticRegressionCV().get_params(),
    reason="LogisticRegressionCV(use_legacy_attributes=...) needs scikit-learn>=1.8",
)

_MARKS = {
    "logregcv-binary": _NEEDS_LEGACY_ATTRIBUTES,
    "logregcv-multi": _NEEDS_LEGACY_ATTRIBUTES,
    "sgd-classifier": pytest.mark.skip(
        reason="SGD stops short of its optimum: refits are not differentiable"
    ),
    "sgd-regressor": pytest.mark.skip(
        reason="SGD stops short of its optimum: refits are not differentiable"
    ),
}


# lbfgs stops about 1e-5 short of the optimum (Newton solvers reach rounding)
_RTOL = {"logreg-binary-lbfgs": 1e-3, "logreg-multi-lbfgs": 1e-3}


def _params(cases):
    return [pytest.param(c, marks=_MARKS.get(c, ())) for c in cases]


@functools.cache
def _explain(case):
    make, data = CASES[case]
    X, y, sw, X_test, y_test = _data(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: no StationarityWarning
        explainer = InfluenceExplainer(make()).fit(X, y, sample_weight=sw)
    _, _, w = explainer.training_data()
    return types.SimpleNamespace(
        explainer=explainer,
        X=X,
        y=y,
        sw=sw,
        w=w,
        X_test=X_test,
        y_test=y_test,
        obj=explainer.objective_,
        IP=explainer.influence_params(),
    )


def _refit_theta(f, sample_weight):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = clone(f.explainer.estimator).fit(f.X, f.y, sample_weight=sample_weight)
    return build_objective(est, f.y, sample_weight)[0].theta


def _gauge_free(obj):
    """Projection onto the complement of the null space (identity if none)."""
    P = np.eye(obj.n_params)
    if obj.null_space is not None:
        P -= obj.null_space @ obj.null_space.T
    return P


@pytest.mark.parametrize("case", _params(CASES))
def test_influence_params_match_refits(case):
    f = _explain(case)
    n, p = f.X.shape[0], f.obj.n_params
    assert f.IP.shape == (n, p)
    W = f.w.sum()
    class_weight = getattr(f.explainer.estimator_, "class_weight", None)
    P = _gauge_free(f.obj)
    h = 1e-5
    for i in (2, n // 2, n - 3):
        # sample_weight moves so that the *effective* weight moves by h * W
        step = h * W
        if class_weight is not None:
            step /= class_weight[f.y[i]]
        plus, minus = f.sw.copy(), f.sw.copy()
        plus[i] += step
        minus[i] -= step
        fd = (_refit_theta(f, plus) - _refit_theta(f, minus)) / (2 * h)
        expected, actual = P @ fd, P @ f.IP[i]
        scale = np.max(np.abs(expected))
        assert scale > 1e-3 * np.max(np.abs(f.obj.theta))  # a real effect
        rtol = _RTOL.get(case, 1e-4)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("case", _params(CASES))
def test_influence_and_self_influence_follow_the_chain_rule(case):
    """d test loss / d eps = g_test . d theta / d eps."""
    f = _explain(case)
    t_test = f.obj.family.encode(f.y_test)
    G_test = f.obj.gradients(f.X_test, t_test)
    infl = f.explainer.influence(f.X_test, f.y_test)
    np.testing.assert_allclose(
        infl, G_test @ f.IP.T, rtol=1e-8, atol=1e-10 * np.max(np.abs(infl))
    )
    G_train = f.obj.gradients(f.X, f.obj.family.encode(f.y))
    self_infl = f.explainer.self_influence()
    np.testing.assert_allclose(
        self_infl,
        -np.einsum("ij,ij->i", G_train, f.IP),
        rtol=1e-8,
        atol=1e-10 * np.max(np.abs(self_infl)),
    )


_LOO_CASES = [
    "logreg-binary-newton",
    "logreg-binary-dict-weight",
    "logreg-multi-newton",
    "ridge",
    "linear-regression",
    "poisson",
    "tweedie-1.5-identity",
]


@pytest.mark.parametrize("case", _params(_LOO_CASES))
def test_first_order_loo_is_scaled_influence(case):
    """Removing row i is upweighting it by ``eps = -w_i / W``.

    For a fixed penalty (LogisticRegression, Ridge) and for a penalty relative
    to the weight sum (GLMs, where removing the row also strengthens the
    penalty, exactly as ``-eps`` upweighting does).
    """
    f = _explain(case)
    loo = f.explainer.loo_change(f.X_test, f.y_test, method="influence")
    infl = f.explainer.influence(f.X_test, f.y_test)
    expected = -(f.w / f.w.sum())[None, :] * infl
    np.testing.assert_allclose(
        loo, expected, rtol=1e-10, atol=1e-12 * np.max(np.abs(expected))
    )


@pytest.mark.parametrize("case", ["ridge", "linear-regression", "ridge-no-intercept"])
def test_newton_loo_is_exact_for_least_squares(case):
    f = _explain(case)
    loo = f.explainer.loo_change(f.X_test, f.y_test, method="newton")
    base = f.explainer.test_loss(f.X_test, f.y_test)
    for i in (0, 7, f.X.shape[0] - 1):
        keep = np.arange(f.X.shape[0]) != i
        est = clone(f.explainer.estimator).fit(
            f.X[keep], f.y[keep], sample_weight=f.sw[keep]
        )
        refit_loss = (f.y_test - est.predict(f.X_test)) ** 2
        np.testing.assert_allclose(
            loo[:, i], refit_loss - base, rtol=1e-7, atol=1e-9 * np.max(np.abs(base))
        )
