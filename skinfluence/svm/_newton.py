"""Damped Newton minimisation of a LinearObjective (used to fit SmoothHingeSVC)."""

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
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
        step = -_solve_newton_system(objective, X, target, weights, g)
        decrement = -float(g @ step) / 2
        if decrement <= tol:
            # Inside the quadratic region: the full step squares the error.
            return objective.with_theta(objective.theta + step), n_iter, True
        theta, rate = objective.theta, 1.0
        for _ in range(50):
            trial = objective.with_theta(theta + rate * step)
            trial_value = trial.objective(X, target, weights)
            if trial_value <= value - 1e-4 * rate * 2 * decrement:
                break
            rate /= 2
        else:  # no decrease along the Newton direction: at rounding level
            return objective, n_iter, decrement <= np.sqrt(tol)
        if trial_value >= value:  # a step that gains nothing: rounding floor
            return objective, n_iter, decrement <= np.sqrt(tol)
        objective, value = trial, trial_value
    return objective, max_iter, False


def _solve_newton_system(objective, X, target, weights, g):
    """``H^-1 g`` by the cheapest exact route for this Hessian.

    With a uniform positive penalty on a single output (an SVM), the Hessian is
    ``lam I + X' diag(curv) X`` (plus the intercept): Woodbury over the m curved
    rows costs O(m^2 d), conjugate gradients O(n d) per iteration; a dense
    factorization O(n d^2 + d^3) is used only when d is small.
    """
    d = objective.n_features
    lam = objective.penalty[:d]
    w = weights / weights.sum()
    uniform = lam.size and lam[0] > 0 and np.all(lam == lam[0])
    if objective.n_outputs == 1 and not sp.issparse(X) and uniform and d > 200:
        eta = objective.linear_predictor(X)
        curv = w * objective.family.hessian(target, eta)[:, 0, 0]
        top = curv.max()
        active = np.flatnonzero(curv > 1e-12 * top) if top > 0 else np.arange(0)
        X = np.asarray(X)
        if len(active) < d // 2:
            return _woodbury_solve(
                X[active], curv[active], lam[0], objective.fit_intercept, g
            )
        return _cg_solve(X, curv, lam[0], objective.fit_intercept, g)
    H = objective.hessian(X, target, weights)
    # A whisper of ridge keeps the solve defined where no row is curved
    # (e.g. the intercept of perfectly separated data at low temperature).
    H[np.diag_indices_from(H)] += 1e-12 * max(np.trace(H) / len(H), 1e-300)
    return linalg.solve(H, g, assume_a="pos", check_finite=False)


def _cg_solve(X, curv, lam, fit_intercept, g):
    """Conjugate gradients on the Hessian-vector product, Jacobi-preconditioned."""
    d = X.shape[1]
    ridge = 1e-12 * lam

    def hvp(v):
        z = X @ v[:d] + (v[d] if fit_intercept else 0.0)
        u = curv * z
        out = X.T @ u + lam * v[:d]
        return np.append(out, u.sum() + ridge * v[d]) if fit_intercept else out

    diag = np.einsum("ij,ij,i->j", X, X, curv) + lam
    if fit_intercept:
        diag = np.append(diag, curv.sum() + ridge)
    p = len(diag)
    op = spla.LinearOperator((p, p), matvec=hvp, dtype=np.float64)
    pre = spla.LinearOperator((p, p), matvec=lambda v: v / diag, dtype=np.float64)
    # An inexact Newton direction suffices: the line search and the next
    # iteration correct it, and the final, low-temperature stages are solved
    # exactly by Woodbury.
    x, _ = spla.cg(op, g, rtol=1e-4, maxiter=10 * p, M=pre)
    return x


def _woodbury_solve(XA, curv, lam, fit_intercept, g):
    """Solve ``(lam I + XA' diag(curv) XA) (+ intercept row/column) x = g``.

    Costs O(m^2 d) for m curved rows instead of O(n d^2 + d^3): an SVM at low
    temperature has curvature only near its margin.
    """
    d = XA.shape[1]
    B = XA * np.sqrt(curv)[:, None]
    inner = linalg.cho_factor(lam * np.eye(len(curv)) + B @ B.T, lower=True)

    def coef_solve(v):  # (lam I + B'B)^-1 v
        return (v - B.T @ linalg.cho_solve(inner, B @ v)) / lam

    if not fit_intercept:
        return coef_solve(g)
    h = XA.T @ curv  # coef-intercept block of H
    c = curv.sum() + 1e-12 * lam
    Hinv_h = coef_solve(h)
    Hinv_g = coef_solve(g[:d])
    x_b = (g[d] - h @ Hinv_g) / (c - h @ Hinv_h)
    return np.concatenate([Hinv_g - x_b * Hinv_h, [x_b]])
