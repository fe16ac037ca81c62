"""Command line: ``skinfluence demo`` and ``skinfluence clean``."""

from ._main import main, run_demo

__all__ = ["main", "run_demo"]
