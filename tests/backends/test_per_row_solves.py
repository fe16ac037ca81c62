"""One iterative solve per training row warns where a factorization serves."""

import warnings

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer
from skinfluence.backends._closed_form import PER_ROW_SOLVES_WARN_ROWS


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    n = PER_ROW_SOLVES_WARN_ROWS
    X = rng.normal(size=(n, 8))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    return FrozenEstimator(LogisticRegression(tol=1e-10).fit(X, y)), X, y


def test_cg_per_row_solves_name_the_factorization(fitted):
    model, X, y = fitted
    cg = InfluenceExplainer(model, solver="cg").fit(X, y)
    with pytest.warns(UserWarning, match=r"solver='exact' factorizes the 9-param"):
        by_cg = cg.self_influence()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        exact = InfluenceExplainer(model, solver="exact").fit(X, y)
        by_factor = exact.self_influence()
        few = InfluenceExplainer(LogisticRegression(tol=1e-10), solver="cg")
        few.fit(X[:500], y[:500])
        few.self_influence()  # few rows: quick either way
    np.testing.assert_allclose(by_cg, by_factor, rtol=1e-6, atol=1e-12)
    with pytest.warns(UserWarning, match="influence_params solves one system"):
        cg.influence_params()
