"""Inverse-Hessian solvers behind one protocol (see ``_base``).

======== ============================================== =====================
name     method                                          when
======== ============================================== =====================
exact    Cholesky of the dense Hessian                   up to ~8000 params
cg       block preconditioned conjugate gradients        large models
lissa    stochastic Neumann series (Koh & Liang 2017)    very many rows
lowrank  top eigenpairs by Lanczos (Schioppa et al.)     many test rows
woodbury Cholesky of I + U diag(lam)^-1 U' (n K rows)    wide data: n K << p
======== ============================================== =====================

Every solver takes ``damping`` (a float, or ``'auto'`` to pick it from the
Hessian's extreme eigenvalues, see :func:`auto_damping`).
"""

import copy
import inspect

from sklearn.base import BaseEstimator, clone

from ..exceptions import SingularHessianError, WoodburyNotApplicableError

# Kept importable from here; the operator belongs to skinfluence.objectives.
from ..objectives import HessianOperator
from ..utils._chunks import physical_memory_bytes
from ._spectrum import (
    auto_damping,
    damping_from_spectrum,
    extreme_eigenvalues,
    top_eigenvalue,
)
from .cg import CGSolver
from .exact import ExactSolver
from .lissa import LissaSolver
from .lowrank import LowRankSolver
from .woodbury import AUTO_WOODBURY_MAX_ROWS, WoodburySolver, prefers_woodbury

SOLVERS = {
    "exact": ExactSolver,
    "cg": CGSolver,
    "lissa": LissaSolver,
    "lowrank": LowRankSolver,
    "woodbury": WoodburySolver,
}

# solver='auto' factorizes H exactly up to this many parameters: a dense
# (p, p) Hessian of 5000 parameters is 200 MB and its Cholesky a few seconds.
AUTO_EXACT_MAX_PARAMS = 5000
# ... and up to this many where Woodbury does not apply and the dense Hessian
# takes at most a quarter of physical memory (8192: 512 MiB). A ten-class
# linear model on 784 features (7,850 parameters) is factorized in seconds,
# where conjugate gradients pay many Hessian products per test row
# (benchmarks/bench_attribution.py).
AUTO_EXACT_WIDE_MAX_PARAMS = 8192
_AUTO_MEMORY_SHARE = 0.25
# Below the 5000-parameter bound, Woodbury is chosen on data at least this
# wide (n_samples * n_outputs at most this share of the parameters) from
# this many parameters: its (m, m) factor then costs a small part of the
# (p, p) Cholesky (benchmarks/bench_solver_choice.py); below it, a Cholesky takes
# milliseconds.
AUTO_WOODBURY_WIDE_SHARE = 0.25
AUTO_WOODBURY_MIN_PARAMS = 1000


def choose_solver(n_params, n_samples=None, objective=None):
    """The solver name ``solver='auto'`` picks.

    - ``'woodbury'`` for wide data: a linear-output ``objective`` with a
      penalty on every coefficient and ``m = n_samples * n_outputs`` at most
      ``min(4000, n_params)`` rows, whose ``(m, m)`` factor (``8 m^2``
      bytes, 128 MB at the bound) takes at most a quarter of physical memory:
      a Cholesky of ``m^3 / 3`` flops, accurate to about ``eps * ||S||``
      (:class:`WoodburySolver` warns when that exceeds 1e-6). Up to 5000
      parameters only from 1000 parameters and for ``m <= n_params / 4``;
    - else ``'exact'`` when ``n_params <= 5000`` (the dense Hessian fits in
      200 MB and one Cholesky serves every solve, including the Newton
      leave-one-out updates);
    - else ``'exact'`` up to 8192 parameters when the dense Hessian takes
      at most a quarter of physical memory (512 MiB at the bound);
    - else ``'cg'`` (memory ``O(n_params * m)``, cost one Hessian-matrix
      product per iteration).

    Without ``objective`` (or ``n_samples``) the choice is between the first
    and the last.
    """
    wide = prefers_woodbury(objective, n_samples, n_params)
    if n_params <= AUTO_EXACT_MAX_PARAMS:
        very_wide = wide and (
            n_params >= AUTO_WOODBURY_MIN_PARAMS
            and n_samples * objective.n_outputs <= AUTO_WOODBURY_WIDE_SHARE * n_params
        )
        return "woodbury" if very_wide else "exact"
    if wide:
        return "woodbury"
    dense_bytes = 8.0 * n_params * n_params
    if (
        n_params <= AUTO_EXACT_WIDE_MAX_PARAMS
        and dense_bytes <= _AUTO_MEMORY_SHARE * physical_memory_bytes()
    ):
        return "exact"
    return "cg"


def make_solver(
    solver, damping, n_params=None, n_samples=None, objective=None, verbose=0
):
    """An unfitted solver instance from the explainer's ``solver`` parameter.

    Parameters
    ----------
    solver : {'auto', 'exact', 'cg', 'lissa', 'lowrank', 'woodbury'} or object
        A name is instantiated with ``damping``; ``'auto'`` needs
        ``n_params`` (see :func:`choose_solver`). An object is copied
        (``sklearn.base.clone`` for estimators, else ``copy.deepcopy``) so the
        caller's instance is never fitted in place; its own ``damping`` (and
        ``verbose``) are kept, and another ``damping`` here is refused.
    damping : float or 'auto'
    n_params, n_samples : int, optional
        Size of the problem, for ``solver='auto'``.
    objective : LinearObjective, optional
        The model's objective, for ``solver='auto'`` to consider
        ``'woodbury'``.
    verbose : int, default=0
        Given to a named solver that shows progress (``'cg'``, ``'lissa'``).
    """
    if isinstance(solver, str):
        if solver == "auto":
            if n_params is None:
                raise ValueError("solver='auto' needs n_params to choose a solver.")
            solver = choose_solver(n_params, n_samples, objective)
        if solver not in SOLVERS:
            raise ValueError(
                f"Unknown solver {solver!r}; expected 'auto' or one of "
                f"{sorted(SOLVERS)}, or an object with fit and solve."
            )
        cls = SOLVERS[solver]
        if "verbose" in inspect.signature(cls).parameters:
            return cls(damping=damping, verbose=verbose)
        return cls(damping=damping)
    own = getattr(solver, "damping", 0.0)
    if not (isinstance(damping, (int, float)) and damping == 0) and damping != own:
        name = type(solver).__name__
        raise ValueError(
            f"damping={damping!r} applies to named solvers; the {name} object "
            f"keeps its own (damping={own!r}). Pass {name}(damping={damping!r}), "
            "or the solver's name with damping."
        )
    if isinstance(solver, BaseEstimator):
        return clone(solver)
    return copy.deepcopy(solver)


def newton_solver(solver, operator):
    """The solver a fit's Newton steps and stationarity measure use.

    ``solver`` itself unless it is ``approximate``: a LiSSA series stopped
    short, or a truncated spectrum, gives Newton steps (and so step lengths)
    off by its own error, which on a badly scaled problem left a polished fit
    far from its optimum and its stationarity understated many times over.
    Then conjugate gradients on ``operator``'s exact products, with the same
    damping (Jacobi-preconditioned; the caller sets the tolerance).
    """
    if not getattr(solver, "approximate", False):
        return solver
    return CGSolver(damping=getattr(solver, "damping_", 0.0)).fit(operator)


__all__ = [
    "AUTO_EXACT_MAX_PARAMS",
    "AUTO_WOODBURY_MAX_ROWS",
    "SOLVERS",
    "CGSolver",
    "ExactSolver",
    "HessianOperator",
    "LissaSolver",
    "LowRankSolver",
    "SingularHessianError",
    "WoodburyNotApplicableError",
    "WoodburySolver",
    "auto_damping",
    "choose_solver",
    "damping_from_spectrum",
    "extreme_eigenvalues",
    "make_solver",
    "top_eigenvalue",
]
