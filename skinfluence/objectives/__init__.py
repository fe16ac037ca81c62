"""Objective adapters: the exact loss, gradients and Hessian of each model."""

from ._base import LinearObjective
from ._registry import SUPPORTED, build_objective, is_supported, register_adapter

__all__ = [
    "SUPPORTED",
    "LinearObjective",
    "build_objective",
    "is_supported",
    "register_adapter",
]
