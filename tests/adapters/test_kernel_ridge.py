"""KernelRidge and the kernel SVMs are explained with the kernel they fitted.

Every kernel goes through ``kernel_matrix`` exactly as scikit-learn computes it
(``pairwise_kernels(..., filter_params=True)`` with the estimator's gamma,
degree and coef0, or ``kernel_params`` for a callable), so the feature map
reproduces the fitted predictions, the fit is stationary, and since
KernelRidge is least squares, one Newton step without a row *is* the refit.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process.kernels import RBF
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import PAIRWISE_KERNEL_FUNCTIONS, pairwise_kernels
from sklearn.svm import SVC

from skinfluence import InfluenceExplainer, SmoothHingeSVC
from skinfluence.objectives import PivotedKernelFeatures, kernel_matrix

# KernelRidge's own fallback when K + alpha I is not positive definite (an
# indefinite kernel): it then solves by least squares, the same solution.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Singular matrix in solving dual problem:UserWarning"
)


def _pair_rbf(x, y, scale=1.0):
    """A scikit-learn-style per-pair kernel: two rows in, a float out."""
    return float(np.exp(-scale * np.sum((x - y) ** 2)))


def _data(positive=False):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = np.sin(X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.standard_normal(60)
    X_test = rng.standard_normal((5, 4))
    y_test = np.sin(X_test[:, 0]) + X_test[:, 1] ** 2
    if positive:  # chi2 is a kernel on non-negative data
        X, X_test = np.abs(X), np.abs(X_test)
    return X, y, X_test, y_test


# Non-default parameters throughout: the old code silently used the pairwise
# defaults for every kernel but linear, rbf and poly.
KERNELS = {
    "linear": dict(kernel="linear"),
    "poly": dict(kernel="poly", gamma=0.4, degree=2, coef0=2.0),
    "polynomial": dict(kernel="polynomial", gamma=0.2, degree=4, coef0=1.5),
    "rbf": dict(kernel="rbf", gamma=0.4),
    "rbf-default-gamma": dict(kernel="rbf"),
    "laplacian": dict(kernel="laplacian", gamma=0.7),
    "chi2": dict(kernel="chi2", gamma=0.3),
    "cosine": dict(kernel="cosine"),
    # scikit-learn ignores kernel_params for a named kernel: so must we.
    "rbf-ignored-params": dict(kernel="rbf", gamma=0.4, kernel_params={"gamma": 9}),
    "callable-per-pair": dict(kernel=_pair_rbf, kernel_params={"scale": 0.3}),
    "gp-kernel": dict(kernel=RBF(length_scale=1.7)),
    # Indefinite: the signed feature map, and a saddle point (see below).
    "sigmoid": dict(kernel="sigmoid", gamma=0.05, coef0=0.3),
    "sigmoid-defaults": dict(kernel="sigmoid"),
    "additive_chi2": dict(kernel="additive_chi2"),
}
INDEFINITE = ("sigmoid", "sigmoid-defaults", "additive_chi2")


def _explained(name, alpha=0.5):
    X, y, X_test, y_test = _data(positive=name in ("chi2", "additive_chi2"))
    est = KernelRidge(alpha=alpha, **KERNELS[name]).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no StationarityWarning, nothing else
        warnings.filterwarnings("ignore", "Singular matrix in solving dual problem")
        explainer = InfluenceExplainer(est).fit(X, y)
    return explainer, est, X, y, X_test, y_test


def test_every_pairwise_kernel_is_covered():
    named = {
        KERNELS[k]["kernel"] for k in KERNELS if isinstance(KERNELS[k]["kernel"], str)
    }
    assert set(PAIRWISE_KERNEL_FUNCTIONS) == named


@pytest.mark.parametrize("name", list(KERNELS))
def test_feature_map_reproduces_the_fitted_predictions(name):
    explainer, est, X, y, X_test, _ = _explained(name)
    obj = explainer.objective_
    for rows in (X, X_test):
        f = obj.linear_predictor(obj.feature_map.transform(rows))[:, 0]
        np.testing.assert_allclose(f, est.predict(rows), rtol=0, atol=1e-8)
    assert explainer.stationarity_ < 1e-6


@pytest.mark.parametrize("name", list(KERNELS))
def test_newton_loo_is_the_refit(name):
    explainer, est, X, y, X_test, y_test = _explained(name)
    newton = explainer.loo_change(X_test, y_test, method="newton")
    first = explainer.loo_change(X_test, y_test, method="influence")
    base = (y_test - est.predict(X_test)) ** 2
    actual = np.empty((len(y_test), len(y)))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        refit = clone(est).fit(X[keep], y[keep])
        actual[:, i] = (y_test - refit.predict(X_test)) ** 2 - base
    checked = [0, 13, 31, 59]
    scale = np.abs(actual[:, checked]).max(axis=0)
    error = np.abs(newton[:, checked] - actual[:, checked]).max(axis=0) / scale
    assert error.max() < 1e-6
    # The first order is an approximation, but it must rank rows as refits do;
    # not at a saddle point, where leverages exceed 1 (removing a row can flip
    # the sign of its effect) and only Newton holds.
    if name not in INDEFINITE:
        assert np.corrcoef(first.ravel(), actual.ravel())[0, 1] > 0.8


@pytest.mark.parametrize("kernel", ["rbf", "linear", "laplacian"])
def test_sparse_input_is_explained_as_dense(kernel):
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    dense = rng.normal(size=(50, 4)) * (rng.random((50, 4)) < 0.5)
    y = rng.normal(size=50)
    model = KernelRidge(kernel=kernel, gamma=0.1, alpha=0.5)
    by_sparse = InfluenceExplainer(model).fit(sp.csr_matrix(dense), y)
    by_dense = InfluenceExplainer(model).fit(dense, y)
    np.testing.assert_allclose(
        by_sparse.loo_change(dense[:3], y[:3], method="newton"),
        by_dense.loo_change(dense[:3], y[:3], method="newton"),
        rtol=1e-9,
        atol=1e-12,
    )


def test_kernel_matrix_is_sklearn_kernel_ridge():
    X, _, X_test, _ = _data(positive=True)
    for name, params in KERNELS.items():
        est = KernelRidge(**params)
        expected = est._get_kernel(X_test, X)  # scikit-learn's own
        fmap = PivotedKernelFeatures(
            est.kernel,
            est.gamma,
            est.degree,
            est.coef0,
            kernel_params=est.kernel_params,
            per_pair=True,
            signed=True,
        ).fit(X)
        np.testing.assert_allclose(
            fmap._kernel(X_test, X), expected, rtol=1e-12, atol=1e-14, err_msg=name
        )


def test_callable_per_pair_and_whole_matrix():
    X, _, X_test, _ = _data()
    expected = pairwise_kernels(X_test, X, metric="rbf", gamma=0.3)
    per_pair = kernel_matrix(_pair_rbf, X_test, X, {"scale": 0.3}, per_pair=True)
    np.testing.assert_allclose(per_pair, expected, rtol=1e-12)

    def whole(A, B):  # SVC's convention: matrices in, the Gram matrix out
        return pairwise_kernels(A, B, metric="rbf", gamma=0.3)

    np.testing.assert_allclose(
        kernel_matrix(whole, X_test, X, per_pair=False), expected, rtol=1e-12
    )


@pytest.mark.parametrize("name", INDEFINITE)
def test_indefinite_kernel_is_explained_at_its_saddle_point(name):
    """No real feature map reproduces an indefinite Gram matrix: the signed one.

    ``phi(x_i)' J phi(x_j) = k(x_i, x_j)`` with the signature ``J`` of K, the
    penalty ``beta' J beta``, and a Hessian that is indefinite by construction
    (KernelRidge's fit is a saddle point of its objective), inverted by an
    eigendecomposition; Newton is still exact (the refit tests above).
    """
    explainer, _, X, _, _, _ = _explained(name)
    fmap, solver = explainer.objective_.feature_map, explainer.solver_
    assert fmap.signs_ is not None and np.any(fmap.signs_ < 0)
    Phi = fmap.transform(X)
    K = KernelRidge(**KERNELS[name])._get_kernel(X)
    np.testing.assert_allclose(
        (Phi * fmap.signs_) @ Phi.T, K, rtol=0, atol=1e-9 * np.abs(K).max()
    )
    # H is indefinite when a negative eigenvalue of K is below alpha in size
    # (sigmoid with the defaults here); Cholesky serves the others.
    assert (solver.factor_ is None) == (solver.method_ == "eigh")
    if name == "sigmoid-defaults":
        assert solver.method_ == "eigh"
    assert np.all(np.isfinite(explainer.self_influence()))


def test_indefinite_kernel_is_refused_without_the_signed_map():
    X, y, _, _ = _data()
    with pytest.raises(ValueError, match="indefinite Gram matrix") as excinfo:
        PivotedKernelFeatures("sigmoid", 0.05, 3, 0.3).fit(X)
    assert "positive semidefinite kernel" in str(excinfo.value)
    # SVC's hinge objective has no saddle-point reading: refused there.
    svc = SVC(kernel="sigmoid", gamma=0.05, coef0=0.3).fit(X, y > np.median(y))
    with pytest.raises(ValueError, match="indefinite Gram matrix"):
        InfluenceExplainer(svc).fit(X, y > np.median(y))


@pytest.mark.parametrize("name", ["laplacian", "chi2", "cosine", "callable-per-pair"])
def test_perturbation_influence_names_the_supported_kernels(name):
    explainer, _, _, _, X_test, y_test = _explained(name)
    with pytest.raises(ValueError, match="Supported kernels: 'linear', 'rbf'"):
        explainer.perturbation_influence(X_test[:2], y_test[:2])


@pytest.mark.parametrize("name", ["poly", "polynomial", "rbf-default-gamma", "sigmoid"])
def test_perturbation_influence_uses_the_fitted_parameters(name):
    """The chain rule ``d I_up,loss(z_i) / d x_i`` against finite differences."""
    explainer, _, X, _, X_test, y_test = _explained(name)
    pert = explainer.perturbation_influence(X_test[:2], y_test[:2])
    obj, fmap = explainer.objective_, explainer.objective_.feature_map
    V = explainer.influence(X_test[:2], y_test[:2])
    assert np.isfinite(pert).all() and np.isfinite(V).all()
    # d phi(x)/dx along a coordinate, by central differences, for row 3.
    h, i = 1e-6, 3
    P = np.zeros((1, X.shape[0], fmap.n_components_))
    P[0, i] = np.random.default_rng(1).standard_normal(fmap.n_components_)
    J = fmap.vjp(X, P)[0, i]
    for j in range(X.shape[1]):
        step = np.zeros_like(X[i : i + 1])
        step[0, j] = h
        d = fmap.transform(X[i : i + 1] + step) - fmap.transform(X[i : i + 1] - step)
        np.testing.assert_allclose(J[j], (d / (2 * h))[0] @ P[0, i], rtol=1e-5)
    assert obj.n_params == fmap.n_components_


@pytest.mark.parametrize(
    "params",
    [
        dict(kernel="poly", gamma=0.3, degree=2, coef0=1.5),
        dict(kernel="rbf", gamma=0.7),
        dict(kernel="linear"),
    ],
    ids=["poly", "rbf", "linear"],
)
def test_svc_features_reproduce_its_decision_function(params):
    X, _, X_test, _ = _data()
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    svc = SVC(C=2.0, **params).fit(X, y)
    explainer = InfluenceExplainer(svc).fit(X, y)
    obj = explainer.objective_
    f = obj.linear_predictor(obj.feature_map.transform(X_test))[:, 0]
    np.testing.assert_allclose(f, svc.decision_function(X_test), atol=1e-8)


def test_svc_callable_kernel_is_refused_clearly():
    X, _, _, _ = _data()
    y = (X[:, 0] > 0).astype(int)
    svc = SVC(kernel=lambda A, B: A @ B.T).fit(X, y)
    with pytest.raises(ValueError, match="use SmoothHingeSVC"):
        InfluenceExplainer(svc).fit(X, y)


def test_smooth_hinge_svc_callable_kernel_is_called_on_matrices():
    X, _, X_test, _ = _data()
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    calls = []

    def kernel(A, B):
        calls.append((A.shape, B.shape))
        return pairwise_kernels(A, B, metric="rbf", gamma=0.5)

    clf = SmoothHingeSVC(kernel=kernel, temperature=0.1).fit(X, y)
    reference = SmoothHingeSVC(kernel="rbf", gamma=0.5, temperature=0.1).fit(X, y)
    np.testing.assert_allclose(
        clf.decision_function(X_test), reference.decision_function(X_test), atol=1e-8
    )
    assert all(len(a) == 2 and len(b) == 2 for a, b in calls)  # whole matrices
