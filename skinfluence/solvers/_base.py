"""The inverse-Hessian solver protocol, and helpers every solver shares.

A solver is fitted once on an operator (``skinfluence.objectives.HessianOperator``
or any object with the same members) and then solves ``H x = b`` for blocks of
right-hand sides. Backends talk to solvers only through this protocol, so an
iterative or distributed solver plugs in without touching them:

- ``fit(operator) -> self``: factorize, or set up preconditioners;
- ``solve(B) -> X``: ``H^-1 B`` for B of shape (n_params, m);
- ``inverse() -> ndarray``: the dense ``H^-1`` (exact solvers only; used by the
  Newton leave-one-out updates);
- ``exact`` (optional class attribute, True): solves are exact to rounding
  and ``inverse()`` forms ``H^-1``, so one Newton step per removed row is
  the cheap default for the predicted leave-one-out change;
- ``approximate`` (optional class attribute, True): the solves carry an error
  of the method's own (a truncated series, a truncated spectrum) that no
  tolerance bounds. Finishing a fit by Newton steps and measuring how far it is
  from stationary then solve by conjugate gradients instead (see
  :func:`skinfluence.solvers.newton_solver`).

The operator offers ``shape``, ``null_space``, ``matmat(V)``, ``diagonal()``,
``to_dense()`` and, where the curvature has that form, ``low_rank_factors()``
(see :class:`skinfluence.objectives.HessianOperator`).
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..utils._warn import caller_stacklevel

# A fitted solver repeats a non-convergence warning only for a residual this
# many times the largest it reported.
_REWARN_FACTOR = 10.0


def project_out(null, V):
    """Remove from the columns of V (in place) their part in span(null)."""
    if null is not None:
        V -= null @ (null.T @ V)
    return V


def as_columns(B, n_params, null):
    """A projected float64 copy of B as columns, and whether B was a vector."""
    B = np.asarray(B, dtype=np.float64)
    return project_out(null, B.reshape(n_params, -1).copy()), B.ndim == 1


def describe_columns(columns, limit=10):
    """``"0, 1, 2 and 5 more"``: the first ``limit`` column indices of B."""
    shown = ", ".join(str(int(c)) for c in columns[:limit])
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return f"{shown}{more}"


def warn_not_converged(solver, tol, residual, message):
    """Warn that ``solver``'s last solve left a relative residual above ``tol``.

    Once per fitted solver and ``tol`` (copies from ``with_tol`` share the
    record), and again only for a residual ten times the largest reported: a
    fit's polishing steps solve with the same solver dozens of times, and
    Python's own once-per-line rule does not hold them back (the residual in
    the message varies, and every ``warnings.catch_warnings`` exit clears the
    registry of lines already warned).
    """
    reported = solver.__dict__.setdefault("_reported", {})
    if tol in reported and residual <= _REWARN_FACTOR * reported[tol]:
        return
    reported[tol] = max(residual, reported.get(tol, 0.0))
    warnings.warn(message, ConvergenceWarning, stacklevel=caller_stacklevel())
