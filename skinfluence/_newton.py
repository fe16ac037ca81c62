"""Damped Newton minimisation of a LinearObjective (used to fit SmoothHingeSVC)."""

import numpy as np
from scipy import linalg


def newton_minimize(objective, X, target, weights, *, tol, max_iter):
    """Minimise ``objective.objective`` from its current parameters.

    Each step solves with the exact Hessian and backtracks (Armijo) until the
    objective decreases enough, so it converges from any start on a convex
    objective and quadratically near the optimum.

    Parameters
    ----------
    objective : LinearObjective
        Its parameters are the starting point.
    tol : float
        Stop when the Newton decrement ``g' H^-1 g / 2`` (an estimate of the
        remaining objective gap) is below ``tol``.
    max_iter : int

    Returns
    -------
    objective : LinearObjective
        At the final parameters.
    n_iter : int
    converged : bool
    """
    value = objective.objective(X, target, weights)
    for n_iter in range(1, max_iter + 1):
        g = objective.mean_gradient(X, target, weights)
        H = objective.hessian(X, target, weights)
        # A whisper of ridge keeps the solve defined where no row is curved
        # (e.g. the intercept of perfectly separated data at low temperature).
        H[np.diag_indices_from(H)] += 1e-12 * max(np.trace(H) / len(H), 1e-300)
        step = -linalg.solve(H, g, assume_a="pos", check_finite=False)
        decrement = -float(g @ step) / 2
        if decrement <= tol:
            return objective, n_iter, True
        theta, rate = objective.theta, 1.0
        for _ in range(50):
            trial = objective.with_theta(theta + rate * step)
            trial_value = trial.objective(X, target, weights)
            if trial_value <= value - 1e-4 * rate * 2 * decrement:
                break
            rate /= 2
        else:  # no decrease along the Newton direction: at rounding level
            return objective, n_iter, decrement <= np.sqrt(tol)
        objective, value = trial, trial_value
    return objective, max_iter, False
