"""The Newton leave-one-out changes from the dense inverse or from the factor."""

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import scale

from skinfluence import InfluenceExplainer
from skinfluence.core._formulas import newton_parameter_changes


@pytest.mark.parametrize(
    "model, multiclass",
    [(LogisticRegression(C=0.5, tol=1e-10), True), (Ridge(alpha=2.0), False)],
)
def test_solver_path_equals_the_dense_inverse(model, multiclass):
    X, y = load_wine(return_X_y=True)
    X = scale(X)
    if not multiclass:
        y = y.astype(float)
    backend = InfluenceExplainer(model).fit(X, y).backend_
    args = (backend.X_, backend.target_, backend.weights_)
    obj = backend.objective_
    dense = newton_parameter_changes(obj, backend.inverse_hessian(), *args)
    factored = newton_parameter_changes(obj, backend.solver_, *args)
    assert obj.n_outputs == (3 if multiclass else 1)
    np.testing.assert_allclose(factored, dense, rtol=1e-9, atol=1e-12)
