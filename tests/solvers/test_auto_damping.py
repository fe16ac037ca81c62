"""damping='auto' damps only what would otherwise be refused as singular."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from skinfluence import InfluenceExplainer
from skinfluence.objectives import HessianOperator
from skinfluence.solvers import ExactSolver, damping_from_spectrum


@pytest.fixture(scope="module")
def ill_conditioned_logistic():
    """Unscaled features: cond(H) ~ 1e10, penalized, positive definite."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 12)) * np.logspace(-4, 4, 12)
    y = (X[:, -1] / 1e4 + X[:, 0] * 1e4 + rng.normal(size=600) > 0).astype(int)
    model = LogisticRegression(C=1, tol=1e-12, max_iter=20000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return model, X, y


@pytest.mark.parametrize("solver", ["exact", "cg"])
def test_a_positive_definite_hessian_is_left_undamped(ill_conditioned_logistic, solver):
    model, X, y = ill_conditioned_logistic
    from sklearn.frozen import FrozenEstimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = InfluenceExplainer(FrozenEstimator(model), solver=solver).fit(X, y)
        auto = InfluenceExplainer(
            FrozenEstimator(model), solver=solver, damping="auto"
        ).fit(X, y)
    H = HessianOperator(
        plain.objective_,
        plain.backend_.X_,
        plain.backend_.target_,
        plain.backend_.weights_,
    ).to_dense()
    eig = np.linalg.eigvalsh(H)
    assert eig[0] > 0 and eig[-1] / eig[0] > 1e8  # ill-conditioned, not singular
    assert auto.solver_.damping_ == 0.0
    np.testing.assert_allclose(
        auto.influence(X[:5], y[:5]), plain.influence(X[:5], y[:5]), rtol=1e-6
    )


def test_the_qr_path_is_left_undamped():
    """cond(H) ~ 1e13: past Cholesky, within the QR of the design."""
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((200, 4)))
    X = U * np.geomspace(1.0, 1e-6, 4) * np.sqrt(200)
    y = X.sum(axis=1) + rng.standard_normal(200)
    auto = InfluenceExplainer(LinearRegression(fit_intercept=False), damping="auto")
    auto.fit(X, y)
    assert auto.solver_.method_ == "qr" and auto.solver_.damping_ == 0.0


def test_a_singular_hessian_is_damped_by_the_spectral_rule():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    X = np.hstack([X, X[:, :1]])  # a duplicated column
    y = X[:, 0] + rng.normal(size=100)
    auto = InfluenceExplainer(LinearRegression(), damping="auto").fit(X, y)
    H = HessianOperator(
        auto.objective_, auto.backend_.X_, auto.backend_.target_, auto.backend_.weights_
    ).to_dense()
    eig = np.linalg.eigvalsh(H)
    assert auto.solver_.damping_ == pytest.approx(
        damping_from_spectrum(eig[0], eig[-1]), rel=1e-3
    )
    assert auto.solver_.damping_ > 0
    with pytest.raises(ValueError, match="damping"):
        ExactSolver(damping="often").fit(
            HessianOperator(
                auto.objective_,
                auto.backend_.X_,
                auto.backend_.target_,
                auto.backend_.weights_,
            )
        )
