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
