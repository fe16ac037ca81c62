"""SmoothHingeSVC and the SVM and kernel adapters.

- SmoothHingeSVC is a scikit-learn estimator (``parametrize_with_checks``);
- the smooth hinge's derivatives match finite differences at every
  temperature, and stay finite at extreme temperatures and margins;
- every fit lands on the optimum of the objective the explainer differentiates
  (its mean gradient vanishes), and the explainer's kernel features reproduce
  the estimator's decision function;
- the smooth hinge tends to the hinge (SVC, LinearSVC);
- influence matches retraining (the paper's Figure 2 protocol), parameter
  influence matches refits under reweighting, and perturbation influence
  follows the chain rule through the kernel feature map;
- API: pipelines, grid search, pickling, warm starts, errors.
"""

import copy
import functools
import pickle
import re
import types
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import pairwise_kernels, rbf_kernel
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, scale
from sklearn.svm import SVC, LinearSVC
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer, SmoothHingeSVC, validate_loo
from skinfluence.adapters import build_objective
from skinfluence.objectives import PivotedKernelFeatures, SmoothHinge, SquaredHinge
from skinfluence.svm._representer_newton import hinge_start

# -- data ---------------------------------------------------------------------


def _frozen(*arrays):
    for a in arrays:
        a.setflags(write=False)
    return arrays


@functools.cache
def _digits38():
    """Digits 3 vs 8 (357 rows, 64 pixels in [0, 1])."""
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [3, 8])
    return _frozen(X[keep] / 16.0, y[keep])


@functools.cache
def _cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return _frozen(scale(X), y)


@functools.cache
def _cancer_small():
    """125 standardized rows, 8 features: 120 to train, 5 to test."""
    rng = np.random.default_rng(3)
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, [0, 1, 4, 7, 8, 9, 14, 19]]
    rows = rng.choice(len(y), 125, replace=False)
    return _frozen(X[rows], y[rows])


@functools.cache
def _iris():
    X, y = load_iris(return_X_y=True)
    rows = np.random.default_rng(5).permutation(len(y))
    return _frozen(scale(X)[rows], y[rows])


@functools.cache
def _diabetes_scaled():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, [0, 1, 2, 3, 4, 8]]
    return _frozen(X, y)


def _weights(n, seed=11):
    return np.random.default_rng(seed).uniform(0.5, 2.0, n)


# -- 1. scikit-learn compatibility ---------------------------------------------


def _expected_failed_checks(estimator):
    if estimator.kernel != "linear" and estimator.gamma == "scale":
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "gamma='scale' is 1 / (n_features * X.var()) over the rows, as "
                "in SVC, so repeating rows changes the kernel while weighting "
                "them does not (with a fixed gamma the check passes)"
            )
        }
    return {}


@parametrize_with_checks(
    [
        SmoothHingeSVC(),
        SmoothHingeSVC(kernel="rbf"),
        SmoothHingeSVC(kernel="rbf", n_components=20),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_sample_weight_equivalence_with_fixed_gamma(kernel):
    """The expected failure above is gamma='scale' only: weights are exact."""
    rng = np.random.default_rng(42)
    X = rng.random((15, 30))
    y = rng.integers(0, 3, 15)
    sw = rng.integers(0, 5, 15)
    est = SmoothHingeSVC(kernel=kernel, gamma=0.05, tol=1e-14)
    weighted = clone(est).fit(X, y, sample_weight=sw)
    repeated = clone(est).fit(X.repeat(sw, axis=0), y.repeat(sw))
    np.testing.assert_allclose(
        weighted.decision_function(X), repeated.decision_function(X), atol=1e-9
    )


# -- 2. the smooth hinge and the squared hinge -----------------------------------


def _margin_points(rng, family, n, spread):
    """Labels and outputs whose margins ``y * eta`` lie within ``spread`` of 1."""
    K = family.n_outputs
    t = rng.integers(0, len(family.classes), n)
    S = family.signs(t, K)
    margins = 1.0 + spread * rng.uniform(-3.0, 3.0, (n, K))
    return t, S * margins, margins


def _fd_jacobian(f, eta, h):
    """Central differences of a row-wise function: shape (n, out..., K)."""
    cols = []
    for k in range(eta.shape[1]):
        step = np.zeros_like(eta)
        step[:, k] = h
        cols.append((f(eta + step) - f(eta - step)) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("n_classes", [2, 3], ids=["binary", "ovr3"])
@pytest.mark.parametrize("temperature", [1.0, 0.1, 0.01, 0.001])
def test_smooth_hinge_derivatives_match_finite_differences(rng, temperature, n_classes):
    family = SmoothHinge(np.arange(n_classes), temperature)
    assert family.n_outputs == (1 if n_classes == 2 else n_classes)
    t, eta, margins = _margin_points(rng, family, 50, temperature)
    h = 1e-4 * temperature  # the loss bends on the scale of t

    grad = family.gradient(t, eta)
    fd_grad = _fd_jacobian(lambda e: family.loss(t, e), eta, h)
    assert np.abs(grad).max() > 0.1  # margins near 1: non-trivial slopes
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-9)

    hess = family.hessian(t, eta)
    fd_hess = _fd_jacobian(lambda e: family.gradient(t, e), eta, h)
    assert np.abs(hess).max() > 0.01 / temperature
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-6, atol=1e-9 * np.abs(hess).max())
    # One-vs-rest: the outputs do not interact.
    off = ~np.eye(family.n_outputs, dtype=bool)
    assert np.all(hess[:, off] == 0)

    # Within t log 2 of the hinge, from above.
    hinge = np.maximum(0.0, 1.0 - margins).sum(axis=1)
    gap = family.loss(t, eta) - hinge
    assert np.all(gap >= 0)
    assert np.all(gap <= family.n_outputs * temperature * np.log(2) * (1 + 1e-12))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_smooth_hinge_is_stable_at_extremes(n_classes):
    temperature = 1e-4
    family = SmoothHinge(np.arange(n_classes), temperature)
    K = family.n_outputs
    eta = np.array([1e4, -1e4, 1.0, 1.0 - 1e-5, 0.0, -1e4, 1e4])[:, None]
    eta = np.repeat(eta, K, axis=1)
    t = np.array([0, 1, 1, 1, 0, 0, 1]) % n_classes
    # Underflow to zero is the right answer far from the margin.
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        loss = family.loss(t, eta)
        grad = family.gradient(t, eta)
        hess = family.hessian(t, eta)
    for a in (loss, grad, hess):
        assert np.all(np.isfinite(a))
    margins = family.signs(t, K) * eta
    hinge = np.maximum(0.0, 1.0 - margins)
    np.testing.assert_allclose(loss, hinge.sum(axis=1), atol=K * temperature)
    assert np.all(np.abs(grad) <= 1.0)
    # Far from the margin: the hinge's slope, -y inside and 0 outside.
    far = np.abs(1.0 - margins) > 0.5
    slope = -family.signs(t, K) * (margins < 1)
    np.testing.assert_array_equal(grad[far], slope[far])
    # On the margin: half the slope.
    on = margins == 1.0
    assert on[2].any()
    np.testing.assert_allclose(grad[on], -0.5 * family.signs(t, K)[on])
    diag = hess[:, np.arange(K), np.arange(K)]
    assert np.all(diag >= 0) and np.all(diag <= 0.25 / temperature)
    np.testing.assert_allclose(diag[on], 0.25 / temperature)  # the peak


@pytest.mark.parametrize("n_classes", [2, 3])
def test_squared_hinge_derivatives_away_from_the_kink(rng, n_classes):
    family = SquaredHinge(np.arange(n_classes))
    K = family.n_outputs
    n = 60
    t = rng.integers(0, n_classes, n)
    # Margins on both sides of 1, at least 0.05 away from the kink.
    margins = np.where(
        rng.random((n, K)) < 0.5,
        rng.uniform(-2.0, 0.95, (n, K)),
        rng.uniform(1.05, 3.0, (n, K)),
    )
    eta = family.signs(t, K) * margins
    h = 1e-6
    grad = family.gradient(t, eta)
    np.testing.assert_allclose(
        grad, _fd_jacobian(lambda e: family.loss(t, e), eta, h), atol=1e-7
    )
    hess = family.hessian(t, eta)
    np.testing.assert_allclose(
        hess, _fd_jacobian(lambda e: family.gradient(t, e), eta, h), atol=1e-7
    )
    np.testing.assert_array_equal(
        hess[:, np.arange(K), np.arange(K)], 2.0 * (margins < 1)
    )


# -- 3. fits land on the optimum the explainer differentiates --------------------


_FIT_CASES = {
    "digits-linear": (lambda: SmoothHingeSVC(), "digits"),
    "digits-rbf": (lambda: SmoothHingeSVC(kernel="rbf"), "digits"),
    "digits-rbf-landmarks": (
        lambda: SmoothHingeSVC(kernel="rbf", n_components=20),
        "digits",
    ),
    "digits-poly": (lambda: SmoothHingeSVC(kernel="poly", degree=2), "digits"),
    "digits-precomputed": (
        lambda: SmoothHingeSVC(kernel="precomputed"),
        "digits-gram",
    ),
    "digits-precomputed-landmarks": (
        lambda: SmoothHingeSVC(kernel="precomputed", n_components=30),
        "digits-gram",
    ),
    "digits-rbf-balanced": (
        lambda: SmoothHingeSVC(kernel="rbf", class_weight="balanced"),
        "digits",
    ),
    "digits-linear-dict-weight": (
        lambda: SmoothHingeSVC(class_weight={3: 2.0, 8: 0.5}),
        "digits",
    ),
    "digits-rbf-no-intercept": (
        lambda: SmoothHingeSVC(kernel="rbf", fit_intercept=False),
        "digits",
    ),
    "digits-rbf-hot": (  # Newton from zero, no hinge start
        lambda: SmoothHingeSVC(kernel="rbf", temperature=0.5),
        "digits",
    ),
    "cancer-rbf-C10": (lambda: SmoothHingeSVC(kernel="rbf", C=10.0), "cancer"),
    "iris-linear": (lambda: SmoothHingeSVC(), "iris"),
    "iris-rbf": (lambda: SmoothHingeSVC(kernel="rbf"), "iris"),
    "iris-rbf-landmarks": (
        lambda: SmoothHingeSVC(kernel="rbf", n_components=20),
        "iris",
    ),
    "iris-poly-balanced": (
        lambda: SmoothHingeSVC(kernel="poly", class_weight="balanced"),
        "iris",
    ),
}


def _fit_data(name):
    """``(X_train, y_train, X_test)``; Gram matrices for precomputed kernels."""
    if name.startswith("digits"):
        X, y = _digits38()
        Xtr, ytr, Xte = X[:250], y[:250], X[250:]
        if name == "digits-gram":
            return rbf_kernel(Xtr, gamma=0.02), ytr, rbf_kernel(Xte, Xtr, gamma=0.02)
        return Xtr, ytr, Xte
    if name == "cancer":
        X, y = _cancer()
        return X[:300], y[:300], X[300:]
    X, y = _iris()
    return X[:130], y[:130], X[130:]


@pytest.mark.parametrize("case", list(_FIT_CASES))
def test_fit_is_stationary_for_the_explained_objective(case):
    make, data = _FIT_CASES[case]
    X, y, X_test = _fit_data(data)
    sw = _weights(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = make().fit(X, y, sample_weight=sw)
    objective, w = build_objective(est, y, sw)
    fmap = objective.feature_map
    assert (fmap is None) == (est.kernel == "linear")
    Phi = X if fmap is None else fmap.transform(X)
    target = objective.family.encode(y)

    g = objective.mean_gradient(Phi, target, w)
    G = objective.gradients(Phi, target)
    typical = (w / w.sum()) @ np.linalg.norm(G, axis=1)  # gradient scale
    assert np.linalg.norm(g) <= 1e-4 * typical
    # The Newton step left is negligible next to the parameters.
    H = objective.hessian(Phi, target, w)
    step = np.linalg.solve(H, g)
    assert np.linalg.norm(step) <= 1e-4 * np.linalg.norm(objective.theta)

    # The explainer's features reproduce the estimator, on training and new rows.
    for A in (X, X_test):
        features = A if fmap is None else fmap.transform(A)
        eta = objective.linear_predictor(features)
        dec = est.decision_function(A)
        expected = eta[:, 0] if eta.shape[1] == 1 else eta
        np.testing.assert_allclose(dec, expected, rtol=0, atol=1e-8)


def test_dual_coef_and_landmarks_give_the_decision_function():
    X, y, X_test = _fit_data("iris")
    exact = SmoothHingeSVC(kernel="rbf", gamma=0.3).fit(X, y)
    K = rbf_kernel(X_test, exact.X_fit_, gamma=0.3)
    np.testing.assert_allclose(
        exact.decision_function(X_test),
        K @ exact.dual_coef_.T + exact.intercept_,
        atol=1e-12,
    )
    approx = SmoothHingeSVC(kernel="rbf", gamma=0.3, n_components=12).fit(X, y)
    assert approx.landmarks_.shape == (12, X.shape[1])
    K = rbf_kernel(X_test, approx.landmarks_, gamma=0.3)
    np.testing.assert_allclose(
        approx.decision_function(X_test),
        K @ approx.dual_coef_.T + approx.intercept_,
        atol=1e-10,
    )
    with pytest.raises(AttributeError, match="dual_coef_"):
        exact.coef_  # noqa: B018
    # Enough landmarks: the same model as the exact kernel (to the fits' tol).
    tight = {"kernel": "rbf", "gamma": 0.3, "tol": 1e-16}
    exact = SmoothHingeSVC(**tight).fit(X, y)
    full = SmoothHingeSVC(n_components=500, **tight).fit(X, y)
    np.testing.assert_allclose(
        full.decision_function(X_test), exact.decision_function(X_test), atol=1e-7
    )


@pytest.mark.parametrize("temperature", [1e-3, 0.1])
def test_hinge_start_and_cold_start_reach_the_same_optimum(monkeypatch, temperature):
    """Newton from libsvm's hinge solution lands where Newton from zero does."""
    X, y, X_test = _fit_data("cancer")
    sw = _weights(len(y))
    sw[::10] = 0.0
    params = {"kernel": "rbf", "temperature": temperature, "class_weight": "balanced"}
    fast = SmoothHingeSVC(**params).fit(X, y, sample_weight=sw)
    monkeypatch.setattr("skinfluence.svm._classes.hinge_start", lambda *args: None)
    slow = SmoothHingeSVC(**params).fit(X, y, sample_weight=sw)
    assert fast.n_iter_ < slow.n_iter_
    scale = np.abs(slow.dual_coef_).max()
    np.testing.assert_allclose(fast.dual_coef_, slow.dual_coef_, atol=1e-6 * scale)
    np.testing.assert_allclose(
        fast.decision_function(X_test), slow.decision_function(X_test), atol=1e-6
    )


def test_hinge_start_is_libsvm_without_the_zero_weight_rows():
    X, y, _ = _fit_data("cancer")
    sw = _weights(len(y))
    sw[::4] = 0.0
    keep = sw > 0
    alpha, b = hinge_start(
        rbf_kernel(X, gamma=0.02), np.where(y == 1, 1.0, -1.0), sw, 2.0
    )
    svc = SVC(C=2.0, gamma=0.02).fit(X[keep], y[keep], sample_weight=sw[keep])
    assert not alpha[~keep].any()
    np.testing.assert_allclose(
        rbf_kernel(X, gamma=0.02) @ alpha + b, svc.decision_function(X), atol=1e-6
    )


# -- 4. the smooth hinge tends to the hinge -----------------------------------------


@functools.cache
def _split(name):
    X, y = _digits38() if name == "digits" else _cancer()
    return train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)


@pytest.mark.parametrize("C", [0.1, 1.0])
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("data", ["digits", "cancer"])
def test_low_temperature_matches_the_hinge(data, kernel, C):
    Xtr, Xte, ytr, yte = _split(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth = SmoothHingeSVC(C=C, kernel=kernel, temperature=1e-3).fit(Xtr, ytr)
    svc = SVC(C=C, kernel=kernel, tol=1e-8).fit(Xtr, ytr)
    acc = smooth.score(Xte, yte)
    assert abs(acc - svc.score(Xte, yte)) <= 0.01
    dec = smooth.decision_function(Xte)
    assert np.corrcoef(dec, svc.decision_function(Xte))[0, 1] > 0.99
    if kernel == "linear":
        lsvc = LinearSVC(C=C, loss="hinge", tol=1e-8, max_iter=100_000)
        lsvc.fit(Xtr, ytr)
        assert abs(acc - lsvc.score(Xte, yte)) <= 0.01
        assert np.corrcoef(dec, lsvc.decision_function(Xte))[0, 1] > 0.99


# -- 5. influence against retraining (the issue's acceptance test) ----------------


@pytest.mark.parametrize(
    ("kernel", "temperature", "r_min"),
    [
        ("linear", 0.1, 0.91),
        ("linear", 0.001, 0.95),
        ("rbf", 0.1, 0.91),
        ("rbf", 0.001, 0.95),
    ],
)
def test_loo_influence_matches_retraining(kernel, temperature, r_min):
    """Koh & Liang report R = 0.91 (t = 0.1) and 0.95 (t = 0.001) for an SVM."""
    X, y = _digits38()
    Xtr, ytr, Xte, yte = X[:250], y[:250], X[250:], y[250:]
    model = SmoothHingeSVC(C=1.0, kernel=kernel, temperature=temperature)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no StationarityWarning
        explainer = InfluenceExplainer(model).fit(Xtr, ytr)
    j = int(np.argmax(np.abs(explainer.influence(Xte, yte)).sum(axis=1)))
    result = validate_loo(
        explainer,
        Xte[j : j + 1],
        yte[j : j + 1],
        n_remove=20,
        n_random=10,
        random_state=0,
    )
    assert result.pearson_r >= r_min, result.table
    assert 0.7 <= result.slope <= 1.4, result.table


# -- 6. parameter influence against refits under reweighting ------------------------

_IP_CASES = {
    "smooth-linear": (lambda: SmoothHingeSVC(tol=1e-16), "cancer"),
    "smooth-rbf": (lambda: SmoothHingeSVC(kernel="rbf", tol=1e-16), "cancer"),
    "smooth-rbf-dict-weight": (
        lambda: SmoothHingeSVC(kernel="rbf", tol=1e-16, class_weight={0: 2.0, 1: 1}),
        "cancer",
    ),
    "smooth-rbf-landmarks": (
        lambda: SmoothHingeSVC(kernel="rbf", n_components=30, tol=1e-16),
        "cancer",
    ),
    "smooth-rbf-ovr3": (lambda: SmoothHingeSVC(kernel="rbf", tol=1e-16), "iris"),
    "linearsvc-squared-hinge": (
        lambda: LinearSVC(C=0.5, intercept_scaling=2.0, tol=1e-12, max_iter=10**6),
        "cancer",
    ),
}


@functools.cache
def _explain(case):
    make, data = _IP_CASES[case]
    X, y = _cancer_small() if data == "cancer" else _iris()
    X, y = X[:120], y[:120]
    sw = _weights(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(make()).fit(X, y, sample_weight=sw)
    _, _, w = explainer.training_data()
    return types.SimpleNamespace(
        explainer=explainer, X=X, y=y, sw=sw, w=w, IP=explainer.influence_params()
    )


def _refit_theta(f, sample_weight):
    """Parameters of a refit; kernels: in the landmark basis of the training X.

    Reweighting leaves X, hence the landmarks and their Cholesky factor, as
    they are, so the refit's ``beta`` is comparable with the original's.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = clone(f.explainer.estimator).fit(f.X, f.y, sample_weight=sample_weight)
    return build_objective(est, f.y, sample_weight)[0].theta


@pytest.mark.parametrize("case", list(_IP_CASES))
def test_influence_params_match_reweighted_refits(case):
    f = _explain(case)
    obj = f.explainer.objective_
    n = len(f.y)
    assert f.IP.shape == (n, obj.n_params)
    W = f.w.sum()
    class_weight = f.explainer.estimator_.class_weight
    # Rows with an effect (far outside the margin, an SVM's rows have none).
    norms = np.linalg.norm(f.IP, axis=1)
    rows = np.flatnonzero(norms > 0.1 * norms.max())
    h = 1e-6
    for i in rows[[0, len(rows) // 2, -1]]:
        step = h * W  # moves the effective weight by h * W
        if class_weight is not None:
            step /= class_weight[f.y[i]]
        plus, minus = f.sw.copy(), f.sw.copy()
        plus[i] += step
        minus[i] -= step
        fd = (_refit_theta(f, plus) - _refit_theta(f, minus)) / (2 * h)
        scale_ = np.max(np.abs(fd))
        assert scale_ > 1e-3 * np.max(np.abs(obj.theta))
        np.testing.assert_allclose(f.IP[i], fd, rtol=0, atol=1e-4 * scale_)


# -- 7. perturbation influence through the kernel ------------------------------------


@pytest.mark.parametrize("n_components", [None, 8], ids=["exact", "landmarks"])
@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_feature_map_vjp_matches_finite_differences(rng, kernel, n_components):
    X = rng.standard_normal((30, 5))
    fmap = PivotedKernelFeatures(kernel, 0.3, 3, 1.0, n_components).fit(X)
    r = fmap.n_components_
    P = rng.standard_normal((2, 30, r))
    J = fmap.vjp(X, P)
    assert J.shape == (2, 30, 5)
    h = 1e-6
    fd = np.empty_like(J)
    for j in range(5):
        # Moving every row at once is fine: phi acts row by row, basis fixed.
        step = np.zeros_like(X)
        step[:, j] = h
        dphi = (fmap.transform(X + step) - fmap.transform(X - step)) / (2 * h)
        fd[:, :, j] = np.einsum("mnr,nr->mn", P, dphi)
    np.testing.assert_allclose(J, fd, rtol=0, atol=1e-7 * np.abs(fd).max())


def test_feature_map_reproduces_the_kernel(rng):
    X = rng.standard_normal((30, 4))
    Z = rng.standard_normal((6, 4))
    for kernel, params in [
        ("rbf", {"gamma": 0.3}),
        ("poly", {"gamma": 0.3, "degree": 3, "coef0": 1.0}),
    ]:
        fmap = PivotedKernelFeatures(kernel, 0.3, 3, 1.0).fit(X)
        np.testing.assert_allclose(
            fmap.transform(Z) @ fmap.transform(X).T,
            pairwise_kernels(Z, X, metric=kernel, **params),
            atol=1e-8,
        )


@pytest.mark.parametrize("model", ["smooth-rbf", "kernel-ridge"])
def test_kernel_perturbation_influence_is_the_chain_rule(model):
    """With the model frozen, ``I_pert = d I_up,loss(z_i) / d x_i``.

    The basis of the feature map is held fixed (the documented approximation:
    refitting would move the landmarks too), so the reference is the finite
    difference of ``-g_test' H^-1 g_i(phi(x_i))`` in ``x_i``.
    """
    if model == "smooth-rbf":
        X, y = _cancer_small()
        est = SmoothHingeSVC(kernel="rbf", temperature=0.1)
    else:
        X, y = _diabetes_scaled()
        est = KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1)
    Xtr, ytr, Xte, yte = X[:120], y[:120], X[120:123], y[120:123]
    explainer = InfluenceExplainer(est).fit(Xtr, ytr)
    pert = explainer.perturbation_influence(Xte, yte)
    assert pert.shape == (3, 120, X.shape[1])

    obj = explainer.objective_
    fmap = obj.feature_map
    target = obj.family.encode(ytr)
    _, _, w = explainer.training_data()
    H = obj.hessian(fmap.transform(Xtr), target, w)
    G_test = obj.gradients(fmap.transform(Xte), obj.family.encode(yte))
    V = np.linalg.solve(H, G_test.T)

    def influence_of(x, i):
        return -(obj.gradients(fmap.transform(x[None]), target[i : i + 1]) @ V)[0]

    infl = explainer.influence(Xte, yte)
    rows = np.argsort(-np.abs(pert).max(axis=(0, 2)))[:6]
    h = 1e-6
    for i in rows:
        np.testing.assert_allclose(
            influence_of(Xtr[i], i), infl[:, i], rtol=1e-8, atol=1e-12
        )
        for j in range(X.shape[1]):
            plus, minus = Xtr[i].copy(), Xtr[i].copy()
            plus[j] += h
            minus[j] -= h
            fd = (influence_of(plus, i) - influence_of(minus, i)) / (2 * h)
            np.testing.assert_allclose(
                pert[:, i, j], fd, rtol=0, atol=1e-6 * np.abs(pert).max()
            )


def test_linear_perturbation_influence_against_refits():
    X, y = _cancer_small()
    Xtr, ytr = X[:120].copy(), y[:120]
    est = SmoothHingeSVC(tol=1e-16)
    explainer = InfluenceExplainer(est).fit(Xtr, ytr)
    # Test rows inside the margin (outside it the loss is flat: no influence).
    margin = (2 * ytr - 1) * explainer.decision_function(Xtr)
    inside = np.flatnonzero(margin < 1)[:5]
    Xte, yte = Xtr[inside].copy(), ytr[inside]
    pert = explainer.perturbation_influence(Xte, yte)
    t_test = explainer.objective_.family.encode(yte)
    rows = np.argsort(-np.abs(pert).max(axis=(0, 2)))[:3]
    h = 1e-5
    for i in rows:
        for j in (0, 3):
            losses = []
            for sign in (1, -1):
                Xp = Xtr.copy()
                Xp[i, j] += sign * h
                refit = clone(est).fit(Xp, ytr)
                losses.append(build_objective(refit, ytr, None)[0].loss(Xte, t_test))
            numeric = (losses[0] - losses[1]) / (2 * h)
            # Moving x_i by delta is upweighting a moved row by 1/n.
            expected = pert[:, i, j] / len(ytr)
            np.testing.assert_allclose(
                numeric, expected, rtol=0, atol=1e-4 * np.abs(expected).max()
            )


# -- 8. KernelRidge: Newton leave-one-out is exact ------------------------------------


def test_kernel_ridge_newton_loo_is_exact():
    X, y = load_diabetes(return_X_y=True)
    Xtr, ytr, Xte, yte = X[:200], y[:200], X[200:210], y[200:210]
    est = KernelRidge(alpha=0.1, kernel="rbf", gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(est).fit(Xtr, ytr)
    loo = explainer.loo_change(Xte, yte, method="newton")
    base = (yte - explainer.estimator_.predict(Xte)) ** 2
    np.testing.assert_allclose(
        explainer.test_loss(Xte, yte), base, rtol=1e-9, atol=1e-9
    )
    for i in (0, 7, 100, 199):
        keep = np.arange(200) != i
        refit = clone(est).fit(Xtr[keep], ytr[keep])
        actual = (yte - refit.predict(Xte)) ** 2 - base
        np.testing.assert_allclose(
            loo[:, i], actual, rtol=0, atol=1e-6 * np.abs(actual).max()
        )


# -- 9. API -------------------------------------------------------------------------


def test_pipeline_in_grid_search():
    X, y = _cancer()  # scaled again inside: harmless
    pipe = make_pipeline(StandardScaler(), SmoothHingeSVC(kernel="rbf"))
    search = GridSearchCV(pipe, {"smoothhingesvc__C": [0.1, 1.0, 10.0]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        search.fit(X[:300], y[:300])
    assert search.best_params_["smoothhingesvc__C"] in (0.1, 1.0, 10.0)
    assert search.best_score_ > 0.9
    assert search.score(X[300:], y[300:]) > 0.95
    # The fitted pipeline is explainable as is.
    explainer = InfluenceExplainer(search.best_estimator_).fit(X[:300], y[:300])
    assert explainer.influence(X[300:302], y[300:302]).shape == (2, 300)


@pytest.mark.parametrize(
    "params",
    [{}, {"kernel": "rbf"}, {"kernel": "rbf", "n_components": 15}],
    ids=["linear", "rbf", "landmarks"],
)
def test_pickle_round_trip(params):
    X, y, X_test = _fit_data("iris")
    est = SmoothHingeSVC(**params).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(
        again.decision_function(X_test), est.decision_function(X_test)
    )


def test_warm_start_converges_faster_to_the_same_optimum():
    X, y = _digits38()
    X, y = X[:250], y[:250]
    first = SmoothHingeSVC(temperature=1e-3, warm_start=True).fit(X, y)
    for i in first.support_[:3]:  # rows whose removal moves the model
        sw = np.ones(len(y))
        sw[i] = 0.0
        cold = SmoothHingeSVC(temperature=1e-3).fit(X, y, sample_weight=sw)
        warm = copy.deepcopy(first).fit(X, y, sample_weight=sw)
        assert warm.n_iter_ < cold.n_iter_
        np.testing.assert_allclose(
            warm.coef_, cold.coef_, rtol=0, atol=1e-4 * np.abs(cold.coef_).max()
        )
        np.testing.assert_allclose(warm.intercept_, cold.intercept_, atol=1e-4)


def _changed_setting_cases():
    X, y, _ = _fit_data("iris")
    return [
        pytest.param(
            {},
            {"kernel": "rbf"},
            X,
            id="linear-to-rbf",
        ),
        pytest.param(
            {"kernel": "rbf", "n_components": 10},
            {"kernel": "linear"},
            X,
            id="landmarks-to-linear",
        ),
        pytest.param(
            {},
            {},
            X[:, :3],
            id="fewer-features",
        ),
        pytest.param({"kernel": "rbf", "n_components": 10}, {}, X, id="landmarks"),
        pytest.param({"kernel": "rbf"}, {"kernel": "linear"}, X, id="rbf-to-linear"),
    ]


@pytest.mark.parametrize(("first", "second", "X2"), _changed_setting_cases())
def test_warm_start_after_changed_settings_starts_cold(first, second, X2):
    """An incompatible previous fit is no starting point: refit from scratch."""
    X, y, X_test = _fit_data("iris")
    est = SmoothHingeSVC(warm_start=True, **first).fit(X, y)
    est.set_params(**second).fit(X2, y)
    cold = SmoothHingeSVC(**{**first, **second}).fit(X2, y)
    np.testing.assert_allclose(
        est.decision_function(X_test[:, : X2.shape[1]]),
        cold.decision_function(X_test[:, : X2.shape[1]]),
        atol=1e-4,
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"kernel": "rbf"}, {"kernel": "rbf", "n_components": 20}],
    ids=["linear", "rbf", "landmarks"],
)
def test_max_iter_one_warns(params):
    X, y = _digits38()
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        SmoothHingeSVC(max_iter=1, **params).fit(X[:250], y[:250])


def test_convergence_warning_points_at_the_caller():
    X, y = _digits38()
    with pytest.warns(ConvergenceWarning) as record:
        SmoothHingeSVC(max_iter=1).fit(X[:250], y[:250])
    assert record[0].filename == __file__


# -- 10. errors ---------------------------------------------------------------------


def test_multiclass_svc_is_rejected():
    X, y = _iris()
    with pytest.raises(ValueError, match="one-vs-one"):
        InfluenceExplainer(SVC()).fit(X, y)


def test_l1_linear_svc_is_rejected():
    X, y = _iris()
    with pytest.raises(ValueError, match="penalty='l1'"):
        InfluenceExplainer(LinearSVC(penalty="l1", dual=False)).fit(X, y)


def test_single_class_is_rejected():
    X, y = _iris()
    with pytest.raises(ValueError, match="at least 2 classes"):
        SmoothHingeSVC().fit(X, np.zeros(len(y)))


@pytest.mark.parametrize("C", [0, -1.0, np.nan])
def test_invalid_C_is_rejected_like_sklearn(C):
    X, y = _iris()
    # scikit-learn's SVC says "must be a float in the range (0.0, inf]";
    # SmoothHingeSVC excludes C=inf (no hard margin): "(0.0, inf)".
    pattern = re.escape(
        "The 'C' parameter of SmoothHingeSVC must be a float in the range (0.0, inf"
    )
    with pytest.raises(InvalidParameterError, match=pattern):
        SmoothHingeSVC(C=C).fit(X, y)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_svm_has_no_probabilities(kernel):
    X, y = _cancer_small()
    explainer = InfluenceExplainer(SmoothHingeSVC(kernel=kernel)).fit(X, y)
    with pytest.raises(ValueError, match="no probabilities"):
        explainer.influence(X[:2], y[:2], target="predict_proba")
    with pytest.raises(ValueError, match="regressors"):
        explainer.influence(X[:2], target="predict")
    # The decision function is the supported prediction target.
    assert explainer.influence(X[:2], target="decision_function").shape == (2, 125)


def test_precomputed_kernel_has_no_perturbation_influence():
    X, y, _ = _fit_data("digits-gram")
    explainer = InfluenceExplainer(SmoothHingeSVC(kernel="precomputed")).fit(X, y)
    with pytest.raises(ValueError, match="kernel's gradient"):
        explainer.perturbation_influence(X[:1], y[:1])


def test_svc_balanced_class_weight_counts_rows_as_libsvm_does():
    # SVC's 'balanced' counts each class's rows, not their sample weights: the
    # objective's row weights are sample_weight times SVC's own class_weight_.
    X, y, _ = _fit_data("cancer")
    sw = _weights(len(y))
    svc = SVC(C=2.0, gamma=0.02, class_weight="balanced").fit(X, y, sample_weight=sw)
    ex = InfluenceExplainer(FrozenEstimator(svc)).fit(X, y, sample_weight=sw)
    expected = sw * svc.class_weight_[np.searchsorted(svc.classes_, y)]
    np.testing.assert_allclose(ex.backend_.weights_, expected, rtol=1e-12)
    # (what SVC computed: rows counted once each, whatever their weights)
    np.testing.assert_allclose(svc.class_weight_, len(y) / (2.0 * np.bincount(y)))
