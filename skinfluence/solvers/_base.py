"""The inverse-Hessian solver protocol.

A solver is fitted once on a :class:`HessianOperator` and then solves
``H x = b`` for blocks of right-hand sides. The explainer talks to solvers
only through this protocol, so an iterative or distributed solver plugs in
without touching it:

- ``fit(operator) -> self``: factorize, or set up preconditioners;
- ``solve(B) -> X``: ``H^-1 B`` for B of shape (n_params, m);
- ``inverse() -> ndarray``: the dense ``H^-1`` (exact solvers only; used by the
  Newton leave-one-out updates).
"""

import numpy as np


class HessianOperator:
    """The Hessian of a fitted objective on its training data.

    Parameters
    ----------
    objective : LinearObjective
    X, target, weights : the training data in the objective's terms.
    """

    def __init__(self, objective, X, target, weights):
        self.objective = objective
        self.X = X
        self.target = target
        self.weights = weights

    @property
    def shape(self):
        p = self.objective.n_params
        return (p, p)

    @property
    def null_space(self):
        """Orthonormal directions of exact flatness, shape (p, r), or None."""
        return self.objective.null_space

    def to_dense(self):
        return self.objective.hessian(self.X, self.target, self.weights)

    def matmat(self, V):
        V = np.asarray(V, dtype=np.float64).reshape(self.shape[0], -1)
        return self.objective.hessian_vector_product(
            self.X, self.target, self.weights, V
        )


def project_out(null, V):
    """Remove from the columns of V (in place) their part in span(null)."""
    if null is not None:
        V -= null @ (null.T @ V)
    return V


def as_columns(B, n_params, null):
    """A projected float64 copy of B as columns, and whether B was a vector."""
    B = np.asarray(B, dtype=np.float64)
    return project_out(null, B.reshape(n_params, -1).copy()), B.ndim == 1
