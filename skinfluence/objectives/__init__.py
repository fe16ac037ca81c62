"""Loss families and the linear-output objective they make, with its Hessian.

Calculus only: nothing here knows an estimator. :mod:`skinfluence.adapters`
reads a fitted estimator and builds its :class:`LinearObjective` from one of
these families.
"""

from ._family import LossFamily
from ._hinge import HINGE_TEMPERATURE, SmoothHinge, SquaredHinge
from ._huber import Huber
from ._kernel_features import PivotedKernelFeatures, kernel_matrix
from ._logistic import (
    BinaryLogistic,
    Multinomial,
    OneVsRestLogistic,
    multinomial_null_space,
)
from ._objective import PENALTY_SCALINGS, LinearObjective
from ._operator import HessianOperator
from ._squared_error import SquaredError
from ._tweedie import TweedieDeviance

__all__ = [
    "HINGE_TEMPERATURE",
    "PENALTY_SCALINGS",
    "BinaryLogistic",
    "HessianOperator",
    "Huber",
    "LinearObjective",
    "LossFamily",
    "Multinomial",
    "OneVsRestLogistic",
    "PivotedKernelFeatures",
    "SmoothHinge",
    "SquaredError",
    "SquaredHinge",
    "TweedieDeviance",
    "kernel_matrix",
    "multinomial_null_space",
]
