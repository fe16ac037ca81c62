"""skinfluence: influence functions (Koh & Liang, 2017) for scikit-learn."""

from .cleaning import CleanLabelsClassifier, MislabelDetector
from .explainer import InfluenceExplainer, StationarityWarning
from .objectives import SUPPORTED as SUPPORTED_ESTIMATORS
from .plotting import (  # matplotlib is imported only when drawing
    FeatureInfluenceDisplay,
    InfluentialExamplesDisplay,
    LOOAgreementDisplay,
    MislabelCurveDisplay,
)
from .solvers import SingularHessianError
from .svm import SmoothHingeSVC
from .validation import LOOValidation, validate_loo

__version__ = "0.1.0.dev0"

__all__ = [
    "CleanLabelsClassifier",
    "FeatureInfluenceDisplay",
    "InfluentialExamplesDisplay",
    "LOOAgreementDisplay",
    "MislabelCurveDisplay",
    "MislabelDetector",
    "SUPPORTED_ESTIMATORS",
    "InfluenceExplainer",
    "LOOValidation",
    "SingularHessianError",
    "SmoothHingeSVC",
    "StationarityWarning",
    "validate_loo",
]
