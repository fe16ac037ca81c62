"""CleanLabelsClassifier: a classifier fitted on the labels its detector keeps."""

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..adapters import is_supported
from ..backends import is_torch_model, is_tree_ensemble
from ..utils._checks import (
    fit_params_for,
    split_model,
)
from ._detector import MislabelDetector


def _check_detectable(estimator):
    """Refuse, before any work, a model the detector cannot score rows with."""
    model = split_model(estimator)[1]
    if is_torch_model(estimator) or not (
        is_tree_ensemble(estimator) or is_supported(model)
    ):
        raise TypeError(
            "With detector=None the labels are cleaned with the estimator "
            f"itself, but the detector cannot score rows with "
            f"{type(model).__name__} (it needs a linear-output model, an SVM, "
            "KernelRidge or a boosted tree ensemble). Pass "
            "detector=MislabelDetector() to clean with a standardized "
            "logistic regression, or detector=MislabelDetector(model) with a "
            "supported model."
        )


def _final_has(attr):
    def check(self):
        source = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        return hasattr(source, attr)

    return check


class CleanLabelsClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A classifier fitted on what a :class:`~skinfluence.MislabelDetector` keeps.

    scikit-learn pipelines cannot drop rows inside a step, so this wraps the
    cleaning and the final fit in one estimator that works in ``Pipeline`` and
    ``GridSearchCV`` (the detector's parameters tune as ``detector__...``).

    Parameters
    ----------
    estimator : classifier
        Fitted on the cleaned data.
    detector : MislabelDetector, default=None
        None: ``MislabelDetector(estimator)``, which finds the wrong labels
        with the model being fitted (any classifier the explainer supports,
        or a Pipeline ending in one). Pass a detector to clean with another
        model (``MislabelDetector()``: a standardized logistic regression)
        or to tune its parameters as ``detector__...``.

    Attributes
    ----------
    detector_ : MislabelDetector
    estimator_ : classifier
    classes_ : ndarray

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skinfluence import CleanLabelsClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = CleanLabelsClassifier(LogisticRegression(max_iter=5000)).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"])],
        "detector": [HasMethods(["fit_resample"]), None],
    }

    def __init__(self, estimator, detector=None):
        self.estimator = estimator
        self.detector = detector

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Clean ``(X, y)`` with the detector, then fit the estimator."""
        detector = self.detector
        if detector is None:
            _check_detectable(self.estimator)
            detector = MislabelDetector(self.estimator)
        self.detector_ = clone(detector)
        X_clean, y_clean = self.detector_.fit_resample(X, y, sample_weight)
        if sample_weight is not None:
            sample_weight = _safe_indexing(
                np.asarray(sample_weight), self.detector_.sample_indices_
            )
        estimator = clone(self.estimator)
        params = fit_params_for(estimator, sample_weight)
        self.estimator_ = estimator.fit(X_clean, y_clean, **params)
        self.classes_ = self.estimator_.classes_
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.estimator_, attr):
                setattr(self, attr, getattr(self.estimator_, attr))
        return self

    def set_params(self, **params):
        """Set parameters; ``detector__...`` ones need a ``detector`` object."""
        nested = [k for k in params if k.startswith("detector__")]
        if nested and params.get("detector", self.detector) is None:
            raise ValueError(
                f"{nested[0]} sets a parameter of the detector, but detector is "
                "None (cleaning with MislabelDetector(estimator)). Pass the "
                "detector to tune: CleanLabelsClassifier(estimator, "
                "detector=MislabelDetector(estimator))."
            )
        return super().set_params(**params)

    def predict(self, X):
        """Predict with the classifier fitted on the cleaned data."""
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the classifier fitted on the cleaned data."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_final_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities of the classifier fitted on the cleaned data."""
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_final_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the classifier fitted on the cleaned data."""
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.input_tags.sparse = inner.input_tags.sparse
        return tags
