"""Influence quantities as pure functions of an objective, a solver and data.

Notation (Koh & Liang, 2017): ``H`` is the Hessian of the mean training
objective, ``g_i`` the gradient of training row i's loss, ``g_t`` the gradient
of the test quantity (a test loss or a prediction). ``q = lam * theta`` is the
penalty's gradient, which enters when the penalty depends on the data (see
:mod:`skinfluence.objectives._base`). ``W`` is the sum of training weights.

Every matrix of shape (n_test, n_train) is computed as ``H^-1 G_test'`` once,
followed by one product with the training rows that never forms their
``(n_train, n_params)`` gradient matrix.
"""

import numpy as np
import scipy.sparse as sp


def test_directions(objective, solver, X_test, factors):
    """``V = H^-1 G_test'`` of shape (n_params, n_test)."""
    return solver.solve(objective.expand(X_test, factors).T)


def influence_matrix(objective, X_train, R_train, V):
    """``I_up,loss[t, i] = -g_t' H^-1 (g_i + reweight)``: shape (n_test, n_train)."""
    M = objective.project(X_train, -R_train, V)  # the sign rides on the factors
    extra = objective.reweight_term() @ V
    if np.any(extra):
        M -= extra
    return M.T


def loo_first_order(objective, X_train, R_train, weights, V):
    """Predicted change of each test quantity when each row is removed.

    ``(w_i g_t' H^-1 g_i + s_i g_t' H^-1 q) / W``: shape (n_test, n_train).
    """
    s, q = objective.removal_term(weights)
    M = objective.project(X_train, R_train * weights[:, None], V)
    if np.any(s):
        M += s[:, None] * (q @ V)[None, :]
    return M.T / weights.sum()


def influence_params(objective, solver, X_train, R_train):
    """``I_up,params[i] = -H^-1 (g_i + reweight)``: shape (n_train, n_params)."""
    G = objective.expand(X_train, R_train) + objective.reweight_term()
    return -solver.solve(G.T).T


def self_influence(objective, solver, X_train, R_train, chunk_rows=4096):
    """``g_i' H^-1 (g_i + reweight)`` for every training row: shape (n_train,).

    The negative of ``I_up,loss(z_i, z_i)``: how much row i's own loss would
    rise, in units of ``w_i / W``, if it were removed.
    """
    n = X_train.shape[0]
    out = np.empty(n)
    extra = objective.reweight_term()
    for start in range(0, n, chunk_rows):
        rows = slice(start, min(start + chunk_rows, n))
        G = objective.expand(X_train[rows], R_train[rows])
        out[rows] = np.einsum("ij,ji->i", G, solver.solve((G + extra).T))
    return out


def parameter_change_norms(objective, solver, X_train, R_train, chunk_rows=4096):
    """``||H^-1 (g_i + reweight)||`` for every training row (RelatIF's theta)."""
    n = X_train.shape[0]
    out = np.empty(n)
    extra = objective.reweight_term()
    for start in range(0, n, chunk_rows):
        rows = slice(start, min(start + chunk_rows, n))
        G = objective.expand(X_train[rows], R_train[rows]) + extra
        out[rows] = np.linalg.norm(solver.solve(G.T), axis=0)
    return out


def perturbation_influence(objective, X_train, target_train, V):
    """``I_pert,loss[t, i] = -g_t' H^-1 d/dx g_i``: shape (n_test, n_train, d)."""
    P = objective.perturbation_products(X_train, target_train, V)
    return -P.transpose(1, 0, 2)


# -- one Newton step without each row ----------------------------------------
def _rows_times(X, M, fit_intercept):
    """``xt_i @ M`` for every row (xt = [x, 1]), M of shape (b, m)."""
    d = X.shape[1]
    out = np.asarray(X @ M[:d])
    return out + M[d] if fit_intercept else out


def _rowwise_dot(X, P, fit_intercept):
    """``xt_i . P_i`` for every row, P of shape (n, b)."""
    d = X.shape[1]
    if sp.issparse(X):
        out = np.asarray(X.multiply(P[:, :d]).sum(axis=1)).ravel()
    else:
        out = np.einsum("ij,ij->i", X, P[:, :d])
    return out + P[:, d] if fit_intercept else out


def newton_parameter_changes(objective, H_inv, X, target, weights):
    """One Newton step on the objective without row i, for every row i.

    The Hessian without row i is ``H - w_i/W (D_i kron xt_i xt_i')``, a rank-K
    change, so its inverse follows from ``H^-1`` by the Woodbury identity; no
    refactorization. Exact for least squares and ridge, where one Newton step
    reaches the new optimum.

    Parameters
    ----------
    H_inv : ndarray of shape (n_params, n_params)
        Inverse of the mean-form Hessian (with damping, if any).

    Returns
    -------
    ndarray of shape (n_train, n_params)
        ``theta_without_i - theta`` predicted for each row.
    """
    K, b = objective.n_outputs, objective.block_size
    fi = objective.fit_intercept
    n = X.shape[0]
    W = weights.sum()
    A_inv = H_inv / W  # inverse of the sum-form Hessian
    eta = objective.linear_predictor(X)
    R = objective.family.gradient(target, eta)
    D = objective.family.hessian(target, eta)
    s, q = objective.removal_term(weights)
    z = A_inv @ q
    # cols[j][i] = A^-1[:, block j] xt_i, shape (n, K*b) for each l.
    cols = [_rows_times(X, A_inv[:, j * b : (j + 1) * b].T, fi) for j in range(K)]
    M = np.empty((n, K, K))
    for j in range(K):
        blocks = cols[j].reshape(n, K, b)
        for k in range(K):
            M[:, k, j] = _rowwise_dot(X, blocks[:, k, :], fi)
    Uz = np.stack(
        [_rows_times(X, z.reshape(K, b)[k][:, None], fi)[:, 0] for k in range(K)],
        axis=1,
    )
    y = weights[:, None] * np.einsum("nkl,nl->nk", M, R) + s[:, None] * Uz
    C = weights[:, None, None] * D
    lhs = np.eye(K)[None] - np.einsum("nkl,nlm->nkm", C, M)
    a = (
        weights[:, None] * R
        + np.linalg.solve(lhs, np.einsum("nkl,nl->nk", C, y)[:, :, None])[:, :, 0]
    )
    delta = s[:, None] * z[None, :]
    for j in range(K):
        delta += a[:, j, None] * cols[j]
    return delta


def output_changes(objective, X_test, delta):
    """Change of each test row's linear outputs under each parameter change.

    Returns an array of shape (n_test, n_train, K).
    """
    K, b = objective.n_outputs, objective.block_size
    fi = objective.fit_intercept
    out = np.empty((X_test.shape[0], delta.shape[0], K))
    for k in range(K):
        out[:, :, k] = _rows_times(X_test, delta[:, k * b : (k + 1) * b].T, fi)
    return out


def loo_own_outputs(objective, H_inv, X, target, weights):
    """Each training row's linear outputs under the model fitted without it.

    One Newton step without the row (see :func:`newton_parameter_changes`),
    evaluated at the row itself: ``eta_i + xt_i . delta_i`` per output. The
    held-out prediction of every row at the cost of one fit, as in the
    closed-form leave-one-out of least squares.

    Returns
    -------
    ndarray of shape (n_train, K)
    """
    K, b = objective.n_outputs, objective.block_size
    delta = newton_parameter_changes(objective, H_inv, X, target, weights)
    eta = objective.linear_predictor(X)
    for k in range(K):
        eta[:, k] += _rowwise_dot(
            X, delta[:, k * b : (k + 1) * b], objective.fit_intercept
        )
    return eta
