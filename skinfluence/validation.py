"""Former name of :mod:`skinfluence.loo` (leave-one-out validation), kept importable."""

from .loo import LOOValidation, validate_loo

__all__ = ["LOOValidation", "validate_loo"]
