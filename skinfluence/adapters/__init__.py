"""Fitted estimator -> objective: one builder per estimator family.

A builder reads a fitted estimator's parameters, penalty and weights and
returns the :class:`~skinfluence.objectives.LinearObjective` it minimised
(in mean form, see :mod:`skinfluence.objectives`) with the effective per-row
weights. The registry dispatches on the estimator's type; adding a model
family is one builder module and one line in ``_registry.py``.
"""

from ._parameters import parameters_writable, set_fitted_parameters
from ._registry import (
    SUPPORTED,
    build_objective,
    check_before_fit,
    is_supported,
    register_adapter,
)

__all__ = [
    "SUPPORTED",
    "build_objective",
    "check_before_fit",
    "is_supported",
    "parameters_writable",
    "register_adapter",
    "set_fitted_parameters",
]
