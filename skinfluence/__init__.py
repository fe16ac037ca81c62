"""skinfluence: influence functions (Koh & Liang, 2017) for scikit-learn."""

from .adapters import SUPPORTED as SUPPORTED_ESTIMATORS
from .attack import AttackResult, training_set_attack
from .cleaning import CleanLabelsClassifier, MislabelDetector
from .debugging import ErrorExplanation, explain_errors
from .diverse import select_diverse
from .exceptions import (
    FlatLossWarning,
    NegativeCurvatureWarning,
    OverCleaningWarning,
    SingularHessianError,
    StationarityWarning,
    TruncationWarning,
    UnsupportedOperationError,
)
from .explainer import InfluenceExplainer
from .lds import LDSValidation, validate_lds
from .loo import LOOValidation, validate_loo
from .plotting import (  # matplotlib is imported only when drawing
    FeatureInfluenceDisplay,
    InfluentialExamplesDisplay,
    LDSDisplay,
    LOOAgreementDisplay,
    MislabelCurveDisplay,
)
from .refine import refine
from .svm import SmoothHingeSVC

__version__ = "0.1.0.dev0"

__all__ = [
    "AttackResult",
    "CleanLabelsClassifier",
    "ErrorExplanation",
    "FeatureInfluenceDisplay",
    "FlatLossWarning",
    "InfluentialExamplesDisplay",
    "LDSDisplay",
    "LDSValidation",
    "LOOAgreementDisplay",
    "MislabelCurveDisplay",
    "MislabelDetector",
    "NegativeCurvatureWarning",
    "OverCleaningWarning",
    "SUPPORTED_ESTIMATORS",
    "InfluenceExplainer",
    "LOOValidation",
    "SingularHessianError",
    "SmoothHingeSVC",
    "StationarityWarning",
    "TruncationWarning",
    "UnsupportedOperationError",
    "explain_errors",
    "refine",
    "select_diverse",
    "training_set_attack",
    "validate_lds",
    "validate_loo",
]
