"""Inverse-Hessian solvers behind one protocol (see ``_base``)."""

from ._base import HessianOperator
from .exact import ExactSolver, SingularHessianError

SOLVERS = {"exact": ExactSolver}


def make_solver(solver, damping):
    """A solver instance from the explainer's ``solver`` parameter."""
    if isinstance(solver, str):
        return SOLVERS[solver](damping=damping)
    return solver


__all__ = [
    "SOLVERS",
    "ExactSolver",
    "HessianOperator",
    "SingularHessianError",
    "make_solver",
]
