"""As scikit-learn classifiers do: weights under metadata routing, log probabilities."""

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import CleanLabelsClassifier, InfluenceExplainer, MislabelDetector


def _data():
    X, y = load_breast_cancer(return_X_y=True)
    w = np.random.default_rng(0).uniform(0.2, 3.0, 200)
    return X[:200], y[:200], w


def _pipe():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))


def test_a_pipeline_is_weighted_as_with_routing_off():
    X, y, w = _data()
    off = InfluenceExplainer(_pipe()).fit(X, y, sample_weight=w)
    user = _pipe()
    with sklearn.config_context(enable_metadata_routing=True):
        on = InfluenceExplainer(user).fit(X, y, sample_weight=w)
        detector_on = MislabelDetector(n_rounds=1).fit(X, y, sample_weight=w)
        cleaned_on = CleanLabelsClassifier(_pipe()).fit(X, y, sample_weight=w)
    detector_off = MislabelDetector(n_rounds=1).fit(X, y, sample_weight=w)
    cleaned_off = CleanLabelsClassifier(_pipe()).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(
        on.influence(X[:3], y[:3]), off.influence(X[:3], y[:3]), rtol=1e-10
    )
    np.testing.assert_allclose(detector_on.scores_, detector_off.scores_, rtol=1e-10)
    np.testing.assert_allclose(
        cleaned_on.predict_proba(X), cleaned_off.predict_proba(X), rtol=1e-10
    )
    # The weights changed the fit (the check above is not vacuous) ...
    plain = InfluenceExplainer(_pipe()).fit(X, y)
    assert not np.allclose(plain.influence(X[:3], y[:3]), off.influence(X[:3], y[:3]))
    # ... and the user's Pipeline keeps its own (unset) requests.
    requests = user[-1].get_metadata_routing().fit.requests
    assert requests.get("sample_weight") is None


def test_log_probabilities_are_the_models():
    X, y, _ = _data()
    for wrapper in (InfluenceExplainer(_pipe()), CleanLabelsClassifier(_pipe())):
        wrapper.fit(X, y)
        np.testing.assert_allclose(
            wrapper.predict_log_proba(X[:5]), np.log(wrapper.predict_proba(X[:5]))
        )
    from sklearn.linear_model import Ridge

    assert not hasattr(InfluenceExplainer(Ridge()).fit(X, y), "predict_log_proba")
