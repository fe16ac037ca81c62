"""The inverse-Hessian solver protocol, and helpers every solver shares.

A solver is fitted once on an operator (``skinfluence.objectives.HessianOperator``
or any object with the same members) and then solves ``H x = b`` for blocks of
right-hand sides. Backends talk to solvers only through this protocol, so an
iterative or distributed solver plugs in without touching them:

- ``fit(operator) -> self``: factorize, or set up preconditioners;
- ``solve(B) -> X``: ``H^-1 B`` for B of shape (n_params, m);
- ``inverse() -> ndarray``: the dense ``H^-1`` (exact solvers only; used by the
  Newton leave-one-out updates).

The operator offers ``shape``, ``null_space``, ``matmat(V)``, ``diagonal()``,
``to_dense()`` and, where the curvature has that form, ``low_rank_factors()``
(see :class:`skinfluence.objectives.HessianOperator`).
"""

import numpy as np


def project_out(null, V):
    """Remove from the columns of V (in place) their part in span(null)."""
    if null is not None:
        V -= null @ (null.T @ V)
    return V


def as_columns(B, n_params, null):
    """A projected float64 copy of B as columns, and whether B was a vector."""
    B = np.asarray(B, dtype=np.float64)
    return project_out(null, B.reshape(n_params, -1).copy()), B.ndim == 1
