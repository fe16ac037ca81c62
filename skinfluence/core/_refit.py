"""Refit a fitted linear objective without some of its rows, from its optimum.

The detector's later rounds need the model fitted without the rows the round
before flagged. Those rows are typically a sixth of the data, so the optimum
moves far (the cleaned model is much more confident) and a warm-started refit
still needs hundreds of L-BFGS iterations. In the coordinates ``u`` of
``theta = theta_hat + L^-T u``, with ``H = L L'`` the exact solver's Cholesky
factor of the full model's Hessian, the objective's curvature at the start is
the identity: L-BFGS then needs tens of iterations, each one pass over the
kept rows plus two triangular solves.
"""

import numpy as np
from scipy import linalg, optimize

from ..objectives._objective import LinearObjective


def objective_without(objective, weights, drop):
    """The objective the estimator minimizes once the rows ``drop`` are gone.

    The loss terms of the dropped rows leave, and a data-dependent penalty
    follows the estimator's own rule (``objective.removal_term``): in mean
    form, ``lam`` becomes ``lam (W - s_drop) / W_keep``.
    """
    W = weights.sum()
    s, _ = objective.removal_term(weights)
    scale = (W - s[drop].sum()) / (W - weights[drop].sum())
    return LinearObjective(
        objective.coef,
        objective.intercept,
        objective.family,
        objective.penalty * scale,
        objective.penalty_scaling,
        objective.null_space,
        objective.feature_map,
    )


def refit_without(
    objective, factor, X, target, weights, drop, *, start=None, gtol=1e-3, max_iter=500
):
    """Minimize the objective without the rows ``drop``, from the fitted optimum.

    Parameters
    ----------
    objective : LinearObjective
        Fitted on ``(X, target, weights)``: its parameters are the start.
    factor : ndarray of shape (n_params, n_params) or (n_params,)
        Lower Cholesky factor of the full model's mean-form Hessian (as the
        exact solver factorized it; only the lower triangle is read), or, when
        there is none (iterative solvers), the square root of the Hessian's
        diagonal: a Jacobi whitening, cheaper but needing more iterations.
    X, target, weights : the training rows in the objective's terms.
    drop : ndarray of int
        Positions of the rows to remove.
    start : ndarray of shape (n_params,), default=None
        Parameters to start from (e.g. a refit without nearly the same rows);
        None: the fitted optimum.
    gtol : float, default=1e-3
        Stop when every component of the gradient in the whitened coordinates
        ``u`` is below it. A unit there is one unit of the full model's
        curvature, so the objective is then within about
        ``gtol**2 * n_params / 2`` of its minimum.
    max_iter : int, default=500

    Returns
    -------
    refitted : LinearObjective
        At the new parameters, with the objective's penalty without the rows.
    converged : bool
    """
    refitted = objective_without(objective, weights, drop)
    # The dropped rows get weight 0 rather than leaving X: no copy of X.
    share = np.asarray(weights, dtype=np.float64).copy()
    share[drop] = 0.0
    share /= share.sum()
    family, lam = objective.family, refitted.penalty
    K, b, d = objective.n_outputs, objective.block_size, objective.n_features
    origin = objective.theta
    if factor.ndim == 1:  # u = D^(1/2) (theta - origin)

        def to_theta(u):
            return origin + u / factor

        def to_u(theta):
            return factor * (theta - origin)

        def whiten(g):
            return g / factor

    else:  # u = L' (theta - origin)
        factor = np.asfortranarray(factor)  # BLAS reads it without a copy

        def to_theta(u):
            return origin + linalg.blas.dtrsv(factor, u, lower=1, trans=1)

        def to_u(theta):
            return linalg.blas.dtrmv(factor, theta - origin, lower=1, trans=1)

        def whiten(g):
            return linalg.blas.dtrsv(factor, g, lower=1)

    u0 = np.zeros(objective.n_params) if start is None else to_u(start)

    def value_and_gradient(u):
        # objective() and mean_gradient() fused: one pass over X for both.
        theta = to_theta(u)
        blocks = theta.reshape(K, b)
        eta = np.asarray(X @ blocks[:, :d].T)
        if objective.fit_intercept:
            eta += blocks[:, d]
        if hasattr(family, "loss_gradient"):
            loss, R = family.loss_gradient(target, eta)
        else:
            loss, R = family.loss(target, eta), family.gradient(target, eta)
        value = share @ loss + 0.5 * np.dot(lam * theta, theta)
        g = objective.project_transpose(X, R * share[:, None]) + lam * theta
        return value, whiten(g)

    result = optimize.minimize(
        value_and_gradient,
        u0,
        jac=True,
        method="L-BFGS-B",
        options={"gtol": gtol, "maxiter": max_iter, "ftol": 0.0},
    )
    converged = bool(np.abs(result.jac).max() <= gtol)
    return refitted.with_theta(to_theta(result.x)), converged


def refit_subsets(objective, factor, X, target, weights, masks, *, gtol, max_iter):
    """Parameters minimising the objective on each subset ``masks[s]`` of rows.

    ``refit_without`` for several subsets at once: their objectives are
    summed (a separable problem: the joint minimiser is each one's) and
    minimised by one L-BFGS in coordinates whitened by ``factor``, from the
    fitted optimum, so that X passes through memory once per iteration for
    all of them. Each subset's penalty follows the estimator's rule
    (:func:`~skinfluence.core._refit.objective_without`). Stops when every
    whitened gradient component of every subset is below ``gtol``.

    Returns ``(thetas of shape (n_subsets, n_params), stop)``: ``stop`` is
    None when converged, else why L-BFGS stopped.
    """
    S, n = masks.shape
    family, K, b, d = (
        objective.family,
        objective.n_outputs,
        objective.block_size,
        objective.n_features,
    )
    lam = np.stack(
        [
            objective_without(objective, weights, np.flatnonzero(~m)).penalty
            for m in masks
        ]
    )
    share = masks * np.asarray(weights, dtype=np.float64)
    share /= share.sum(axis=1, keepdims=True)
    targets = np.tile(target, S)
    origin = objective.theta
    if factor.ndim == 1:

        def to_theta(U):
            return origin + U / factor

        def whiten(G):
            return G / factor

    else:  # rows of U are L' (theta - origin)

        def to_theta(U):
            # L-BFGS's iterates are finite: no check (it reads all of L).
            return (
                origin
                + linalg.solve_triangular(
                    factor, U.T, lower=True, trans="T", check_finite=False
                ).T
            )

        def whiten(G):
            return linalg.solve_triangular(
                factor, G.T, lower=True, check_finite=False
            ).T

    def value_and_gradient(u):
        theta = to_theta(u.reshape(S, -1))
        blocks = theta.reshape(S, K, b)
        eta = np.asarray(X @ blocks[:, :, :d].reshape(S * K, d).T)  # (n, S K)
        if objective.fit_intercept:
            eta += blocks[:, :, d].ravel()
        eta = eta.reshape(n, S, K).transpose(1, 0, 2).reshape(S * n, K)
        if hasattr(family, "loss_gradient"):
            loss, R = family.loss_gradient(targets, eta)
        else:
            loss, R = family.loss(targets, eta), family.gradient(targets, eta)
        value = (share * loss.reshape(S, n)).sum() + 0.5 * (lam * theta**2).sum()
        R = R.reshape(S, n, K) * share[:, :, None]
        g = np.empty((S, K, b))
        R_rows = R.transpose(1, 0, 2).reshape(n, S * K)
        g[:, :, :d] = np.asarray(X.T @ R_rows).T.reshape(S, K, d)
        if objective.fit_intercept:
            g[:, :, d] = R.sum(axis=1)
        g = g.reshape(S, -1) + lam * theta
        return value, whiten(g).ravel()

    result = optimize.minimize(
        value_and_gradient,
        np.zeros(S * objective.n_params),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": gtol, "maxiter": max_iter, "ftol": 0.0},
    )
    converged = bool(np.abs(result.jac).max() <= gtol)
    stop = None if converged else f"{result.message} after {result.nit} iterations"
    return to_theta(result.x.reshape(S, -1)), stop
