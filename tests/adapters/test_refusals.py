"""Estimators the explainer cannot differentiate are refused with what to do."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import BaggingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from skinfluence import InfluenceExplainer

rng = np.random.default_rng(0)
X = rng.normal(size=(60, 3))
y = (X[:, 0] > 0).astype(int)


@pytest.mark.parametrize(
    "estimator, fix",
    [
        (TransformedTargetRegressor(Ridge()), r"InfluenceExplainer\(model.regressor\)"),
        (CalibratedClassifierCV(LogisticRegression()), "the classifier it calibrates"),
        (OneVsRestClassifier(LogisticRegression()), "multiclass itself"),
        (MultiOutputRegressor(Ridge()), r"estimators_\[j\] on y\[:, j\]"),
        (
            VotingClassifier([("a", LogisticRegression())]),
            "explain each member",
        ),
        (BaggingClassifier(LogisticRegression()), "explain each member"),
        (
            Pipeline(
                [
                    ("s", StandardScaler()),
                    (
                        "inner",
                        make_pipeline(PolynomialFeatures(), LogisticRegression()),
                    ),
                ]
            ),
            r"flatten it, make_pipeline\(\*outer\[:-1\], \*inner\)",
        ),
        (
            Pipeline([("s", StandardScaler()), ("m", "passthrough")]),
            r"does not support 'passthrough'\. A Pipeline's last step must be",
        ),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_wrappers_are_refused_with_the_fix(estimator, fix):
    with pytest.raises(TypeError, match=fix):
        InfluenceExplainer(estimator).fit(X, y)


def test_near_least_squares_models_are_refused_with_the_equivalent_ridge():
    from sklearn.linear_model import BayesianRidge, RidgeClassifier

    target = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=60)
    bayes = BayesianRidge().fit(X, target)
    with pytest.raises(TypeError, match=r"Ridge\(alpha=model.lambda_ / model.alpha_\)"):
        InfluenceExplainer(bayes).fit(X, target)
    # The Ridge the message names is the fitted model.
    ridge = Ridge(alpha=bayes.lambda_ / bayes.alpha_).fit(X, target)
    np.testing.assert_allclose(ridge.coef_, bayes.coef_, rtol=1e-8)
    classifier = RidgeClassifier(alpha=2.0).fit(X, y)
    with pytest.raises(TypeError, match="coded -1/\\+1"):
        InfluenceExplainer(classifier).fit(X, y)
    coded = np.where(y == classifier.classes_[1], 1.0, -1.0)
    ridge = Ridge(alpha=2.0).fit(X, coded)
    np.testing.assert_allclose(
        ridge.predict(X), classifier.decision_function(X), rtol=1e-8, atol=1e-10
    )
