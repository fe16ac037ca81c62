"""Predicted vs actual leave-one-out change: Koh & Liang's Figure 2, as a table.
=============================================================================

For three models on scikit-learn's bundled data, remove each of the training
rows with the largest predicted effect on one test row's loss (plus some at
random), refit, and compare the actual change of that loss with the
prediction, first order ('influence') and one Newton step ('newton').

Run: ``.venv/bin/python examples/loo_agreement.py``
"""

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import scale

from skinfluence import InfluenceExplainer, validate_loo


def cases():
    X, y = load_breast_cancer(return_X_y=True)
    yield (
        "binary logistic, breast cancer",
        scale(X)[:400],
        y[:400],
        scale(X)[400:401],
        y[400:401],
        LogisticRegression(C=0.1, tol=1e-12, solver="newton-cholesky"),
    )
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    yield (
        "multinomial logistic, digits",
        X[:400],
        y[:400],
        X[1500:1501],
        y[1500:1501],
        LogisticRegression(C=0.1, tol=1e-10, solver="newton-cholesky"),
    )
    X, y = load_diabetes(return_X_y=True)
    yield (
        "ridge, diabetes",
        X[:300],
        y[:300],
        X[300:301],
        y[300:301],
        Ridge(alpha=0.1),
    )


def main():
    rows = []
    for name, X, y, X_test, y_test, model in cases():
        explainer = InfluenceExplainer(model).fit(X, y)
        for method in ("influence", "newton"):
            result = validate_loo(
                explainer,
                X_test,
                y_test,
                n_remove=20,
                n_random=10,
                method=method,
                random_state=0,
            )
            err = np.abs(result.table.predicted - result.table.actual).max()
            rows.append(
                {
                    "model": name,
                    "method": method,
                    "pearson_r": result.pearson_r,
                    "slope": result.slope,
                    "max_abs_error": err,
                }
            )
    table = pd.DataFrame(rows)
    print(
        "Predicted vs actual change of one test loss, 20 top + 10 random "
        "rows removed (paper: R = 0.99 for logistic regression):"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


# %%
# Run :func:`skinfluence.validate_loo` on each model, first order and one
# Newton step, and print the agreement with actual refits.

if __name__ == "__main__":
    main()
