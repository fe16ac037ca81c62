"""skinfluence: influence functions (Koh & Liang, 2017) for scikit-learn."""

from .attack import AttackResult, training_set_attack
from .cleaning import CleanLabelsClassifier, MislabelDetector
from .debugging import ErrorExplanation, explain_errors
from .diverse import select_diverse
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
    "AttackResult",
    "CleanLabelsClassifier",
    "ErrorExplanation",
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
    "explain_errors",
    "select_diverse",
    "training_set_attack",
    "validate_loo",
]
