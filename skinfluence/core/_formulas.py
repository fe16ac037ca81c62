"""Influence quantities as pure functions of an objective, a solver and data.

Notation (Koh & Liang, 2017): ``H`` is the Hessian of the mean training
objective, ``g_i`` the gradient of training row i's loss, ``g_t`` the gradient
of the test quantity (a test loss or a prediction). ``q = lam * theta`` is the
penalty's gradient, which enters when the penalty depends on the data (see
:mod:`skinfluence.objectives._base`). ``W`` is the sum of training weights.

Every matrix of shape (n_test, n_train) is computed as ``H^-1 G_test'`` once,
followed by one product with the training rows that never forms their
``(n_train, n_params)`` gradient matrix. Quantities with one value per
training row loop over chunks of rows sized by scikit-learn's
``working_memory`` (``skinfluence.utils._chunks.chunk_slices``), so their
temporaries stay bounded however many rows there are; ``n_jobs`` runs the
chunks in threads.
"""

import numpy as np
import scipy.sparse as sp
from scipy import linalg

from ..utils._chunks import chunk_slices, map_chunks

_TINY = np.finfo(float).tiny

#: A row whose loss gradient (with respect to its outputs) is below this is
#: flat: a hinge outside its margin (the smooth hinge leaves ~1e-200 there),
#: or a label the model is certain of. Its influence is rounding noise.
FLAT_GRADIENT = 1e-12


def flat_outputs(output_gradients):
    """Rows whose loss gradient with respect to the outputs is flat."""
    return np.max(np.abs(output_gradients), axis=1) < FLAT_GRADIENT


def flat_rows(objective, R_rows):
    """Rows whose loss is flat, so they act on nothing (no penalty term to
    carry them: with a weight-sum penalty every row moves the optimum)."""
    if np.any(objective.reweight_term()):
        return np.zeros(R_rows.shape[0], dtype=bool)
    return flat_outputs(R_rows)


#: Bytes of a temporary that stays in a core's (L2) cache between its uses.
_CACHE_BYTES = 2**20


def _per_row(func, n, row_bytes, n_jobs, out_shape=()):
    """``func(rows)`` for every chunk of ``range(n)``, gathered in one array."""
    out = np.empty((n, *out_shape))
    chunks = chunk_slices(n, row_bytes, n_jobs)
    for rows, values in zip(chunks, map_chunks(func, chunks, n_jobs)):
        out[rows] = values
    return out


def _solve_row_bytes(objective, X):
    """Temporaries per row of a chunk solved against: gradients, solutions."""
    return 8.0 * (6 * objective.n_params + X.shape[1])


def half_factor(solver):
    """``(c, lower)`` of a Cholesky factor ``H = L L'`` the solver holds, or None.

    With it, ``g' H^-1 g = ||L^-1 g||^2``: one triangular solve instead of two.
    """
    factor = getattr(solver, "factor_", None)
    if isinstance(factor, tuple) and len(factor) == 2:
        return factor
    return None


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


def zero_outside_fit(values, weights, axis=1):
    """``values`` with the entries of training rows of weight 0 set to 0, in place.

    A row of weight 0 is not in the fit: removing it changes nothing, so it
    is listed nowhere (its upweighting derivative would be that of adding
    it, largest for the rows the model never saw). ``weights``: those of the
    rows along ``axis``.
    """
    outside = np.asarray(weights) == 0
    if outside.any():
        index = [slice(None)] * values.ndim
        index[axis] = outside
        values[tuple(index)] = 0.0
    return values


def loo_first_order(objective, X_rows, R_rows, weights, V, rows=None):
    """Predicted change of each test quantity when each row is removed.

    ``(w_i g_t' H^-1 g_i + s_i g_t' H^-1 q) / W``: shape (n_test, n_rows).
    ``X_rows``, ``R_rows``: the features and residuals of the training rows
    ``rows`` (positions or a slice; None: every row); ``weights``: those of
    every training row (``W`` and a data-dependent penalty involve them all).
    """
    s, q = objective.removal_term(weights)
    rows = slice(None) if rows is None else rows
    w, s = weights[rows], s[rows]
    M = objective.project(X_rows, R_rows * w[:, None], V)
    if np.any(s):
        M += s[:, None] * (q @ V)[None, :]
    return M.T / weights.sum()


def influence_params(objective, solver, X_train, R_train, n_jobs=None):
    """``I_up,params[i] = -H^-1 (g_i + reweight)``: shape (n_train, n_params)."""
    extra = objective.reweight_term()

    def chunk(rows):
        G = objective.expand(X_train[rows], R_train[rows]) + extra
        return -solver.solve(G.T).T

    n, row_bytes = X_train.shape[0], _solve_row_bytes(objective, X_train)
    return _per_row(chunk, n, row_bytes, n_jobs, (objective.n_params,))


def self_influence(objective, solver, X_train, R_train, n_jobs=None):
    """``g_i' H^-1 (g_i + reweight)`` for every training row: shape (n_train,).

    The negative of ``I_up,loss(z_i, z_i)``: how much row i's own loss would
    rise, in units of ``w_i / W``, if it were removed. Chunks of rows within
    ``working_memory``; with a Cholesky factor ``H = L L'`` it is
    ``||L^-1 g_i||^2`` (see :func:`_self_influence_by_factor`).
    """
    factor = half_factor(solver)
    if factor is not None:
        return _self_influence_by_factor(objective, factor, X_train, R_train, n_jobs)
    extra = objective.reweight_term()

    def chunk(rows):
        G = objective.expand(X_train[rows], R_train[rows])
        return np.einsum("ij,ji->i", G, solver.solve((G + extra).T))

    n, row_bytes = X_train.shape[0], _solve_row_bytes(objective, X_train)
    return _per_row(chunk, n, row_bytes, n_jobs)


def _self_influence_by_factor(objective, factor, X_train, R_train, n_jobs):
    """:func:`self_influence` as ``||L^-1 g_i||^2 + (L^-1 g_i) . (L^-1 q)``.

    The gradients are formed in cache-sized blocks (scaled rows of X, one
    reused buffer) and overwritten in place by ``L^-1 G'``: a triangular
    multiply by the explicit ``L^-1`` (BLAS trmm, ``p^3 / 3`` to form, paid
    back when ``n >= p``) or else a triangular solve (trsm), each ``p^2``
    per row: half the flops of products with the dense ``H^-1``
    (benchmarks/bench_large.py times it).
    """
    c, lower = factor
    n, p = X_train.shape[0], objective.n_params
    multiply = n >= p
    T = linalg.lapack.dtrtri(c, lower=int(lower))[0] if multiply else c
    trans = int(not lower)  # H = L L' (lower) or U' U: both apply the lower side

    def to_whitened(G):
        # Z' = T G' in place (G' is a Fortran-ordered view: no copy).
        kernel = linalg.blas.dtrmm if multiply else linalg.blas.dtrsm
        return kernel(
            1.0, T, G.T, side=0, lower=int(lower), trans_a=trans, overwrite_b=1
        )

    extra = objective.reweight_term()
    whitened_extra = to_whitened(extra[None, :].copy())[:, 0] if np.any(extra) else None

    def chunk(rows):
        out = np.empty(rows.stop - rows.start)
        for block, G in objective.gradient_blocks(X_train[rows], R_train[rows]):
            Z = to_whitened(G).T
            out[block] = np.einsum("ij,ij->i", Z, Z)
            if whitened_extra is not None:
                out[block] += Z @ whitened_extra
        return out

    return _per_row(chunk, n, _solve_row_bytes(objective, X_train), n_jobs)


def parameter_change_norms(objective, solver, X_train, R_train, n_jobs=None):
    """``||H^-1 (g_i + reweight)||`` for every training row (RelatIF's theta)."""
    extra = objective.reweight_term()

    def chunk(rows):
        G = objective.expand(X_train[rows], R_train[rows]) + extra
        return np.linalg.norm(solver.solve(G.T), axis=0)

    n, row_bytes = X_train.shape[0], _solve_row_bytes(objective, X_train)
    return _per_row(chunk, n, row_bytes, n_jobs)


def relatif_norms(objective, solver, X_rows, R_rows, kind, n_jobs=None):
    """RelatIF's denominators of a block of training rows.

    ``kind='theta'``: ``||H^-1 g_i||``; ``'l'``: ``sqrt(self-influence)``.
    Rows whose loss is flat get ``inf`` (a score of 0): their influence and
    norm are both rounding noise, and the norm, a sum of squares, underflows
    first, so their ratio would be meaningless and huge.
    """
    if kind == "theta":
        norm = parameter_change_norms(objective, solver, X_rows, R_rows, n_jobs)
    else:
        own = self_influence(objective, solver, X_rows, R_rows, n_jobs)
        norm = np.sqrt(np.abs(own))
    norm = np.maximum(norm, _TINY)
    norm[flat_rows(objective, R_rows)] = np.inf
    return norm


def block_scores(objective, solver, X_rows, R_rows, V, relatif=None):
    """``(scores, influence)`` of a block of training rows, each (n_test, rows).

    ``relatif``: None ranks by influence; ``'theta'`` and ``'l'`` divide it by
    ``||H^-1 g_i||`` or ``sqrt(self-influence)`` (RelatIF, see
    :func:`relatif_norms`).
    """
    infl = influence_matrix(objective, X_rows, R_rows, V)
    if relatif is None:
        return infl, infl
    return infl / relatif_norms(objective, solver, X_rows, R_rows, relatif), infl


def block_row_bytes(objective, X_train, n_test, relatif=None):
    """Temporaries per training row of :func:`block_scores` for n_test columns."""
    K = objective.n_outputs
    own = 0.0 if relatif is None else _solve_row_bytes(objective, X_train)
    return 8.0 * n_test * (K + 3) + own


def test_row_bytes(objective):
    """Temporaries per test row of :func:`test_directions` (any solver)."""
    return 8.0 * 8 * objective.n_params


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
    refactorization (a penalty that scales with the rows also loses its share,
    see :func:`_newton_setup`). Exact for least squares and ridge, where one
    Newton step reaches the new optimum.

    Parameters
    ----------
    H_inv : ndarray of shape (n_params, n_params) or fitted solver
        Inverse of the mean-form Hessian (with damping, if any), or a solver
        holding its triangular factor (see :func:`_inverse_columns`).

    Returns
    -------
    ndarray of shape (n_train, n_params)
        ``theta_without_i - theta`` predicted for each row.
    """
    return _newton_by_share(objective, H_inv, X, target, weights, slice(None))


def newton_parameter_changes_of(objective, H_inv, X_rows, target_rows, weights, rows):
    """:func:`newton_parameter_changes` for the training rows ``rows`` only.

    ``X_rows``, ``target_rows``: those of the rows ``rows`` (positions or a
    slice); ``weights``: those of all training rows (the sum of weights and
    any data-dependent penalty involve every row).
    """
    return _newton_by_share(objective, H_inv, X_rows, target_rows, weights, rows)


def _newton_by_share(objective, H_inv, X_rows, target_rows, weights, rows):
    """The Newton changes of the rows ``rows``, grouped by penalty share."""
    s, _ = objective.removal_term(weights)
    s_rows = s[rows]
    out = np.empty((len(s_rows), objective.n_params))
    for share, group in share_groups(s_rows, objective.n_params, H_inv):
        columns, _, z = _inverse_columns(objective, H_inv, weights, share)
        out[group] = _newton_rows(
            objective,
            columns,
            z,
            X_rows[group],
            target_rows[group],
            weights[rows][group],
            s_rows[group],
        )
    return out


#: A penalty whose share varies by row (a GLM with sample weights) has one
#: ``A - s diag(lam)`` per distinct share: each a ``p x p`` solve, made up to
#: this many shares and parameters.
_MAX_SHARES = 8
_MAX_SHARE_PARAMS = 1000


def share_groups(s, n_params, inverse=None):
    """``[(share, rows)]``: the rows that remove each penalty share ``s_i``.

    One group when every row removes the same share (SGD; a GLM without
    sample weights; 0 for a fixed penalty). With more distinct shares than
    ``_MAX_SHARES``, more than ``_MAX_SHARE_PARAMS`` parameters, or a solver
    for ``inverse`` (the QR path) instead of the dense ``H^-1``, one group of
    share 0: the step then leaves out the penalty's share of curvature,
    about ``w_i / W`` of it.
    """
    values = np.unique(s)
    if inverse is not None and not isinstance(inverse, np.ndarray):
        return [(0.0, slice(None))]
    if values.size == 1:
        return [(float(values[0]), slice(None))]
    if values.size <= _MAX_SHARES and n_params <= _MAX_SHARE_PARAMS:
        return [(float(v), np.flatnonzero(s == v)) for v in values]
    return [(0.0, slice(None))]


def _newton_setup(objective, H_inv, weights, share=0.0):
    """The sum-form inverse, removal weights ``s`` and that inverse times ``q``.

    A data-dependent penalty loses the share ``s_i diag(lam)`` of its
    curvature with row i, so the Hessian without the row is ``A - s_i
    diag(lam)`` less the row's data term: the inverse returned is the one of
    ``A - share diag(lam)`` (``A^-1`` for ``share=0``), and the Woodbury step
    with the row's data term is exact for the rows of that share.
    """
    A_inv = H_inv / weights.sum()  # inverse of the sum-form Hessian
    s, q = objective.removal_term(weights)
    if share != 0:
        # (A - s L)^-1 = (I - s A^-1 L)^-1 A^-1, with L = diag(lam).
        T = np.eye(A_inv.shape[0]) - share * A_inv * objective.penalty[None, :]
        A_inv = np.linalg.solve(T, A_inv)
        A_inv = (A_inv + A_inv.T) / 2
    return A_inv, s, A_inv @ q


def _inverse_columns(objective, inverse, weights, share=0.0):
    """``f(X) -> [A^-1 (e_j kron xt_i) for each row, for j < K]`` and ``A^-1 q``.

    ``inverse``: the dense ``H^-1``, or a solver whose ``solve`` goes through
    a triangular factor. Products with an explicit inverse carry about
    ``cond(H) eps`` of its norm; two triangular solves stay accurate on an
    ill-conditioned Hessian (the QR path of least squares), at K times the
    flops for K outputs.
    """
    K, b, d = objective.n_outputs, objective.block_size, objective.n_features
    fi = objective.fit_intercept
    if isinstance(inverse, np.ndarray):
        A_inv, s, z = _newton_setup(objective, inverse, weights, share)

        def columns(X):
            return [
                _rows_times(X, A_inv[:, j * b : (j + 1) * b].T, fi) for j in range(K)
            ]

        return columns, s, z
    W = weights.sum()
    s, q = objective.removal_term(weights)

    def columns(X):
        out = []
        for j in range(K):
            B = np.zeros((X.shape[0], K * b))
            B[:, j * b : j * b + d] = X.toarray() if sp.issparse(X) else X
            if fi:
                B[:, j * b + d] = 1.0
            out.append(np.asarray(inverse.solve(B.T)).T / W)
        return out

    return columns, s, np.asarray(inverse.solve(q)).ravel() / W


def _leverages(objective, A_inv, X):
    """``M[i, k, j] = xt_i' A_inv[block k, block j] xt_i``: shape (n, K, K).

    ``M[i]`` is symmetric (``A_inv`` is), so only the blocks ``j >= k`` are
    computed: one product per output k, ``n b^2 K (K + 1) / 2`` in all. Rows
    go in blocks whose products with ``A_inv`` fit in a core's cache: read
    back from there rather than from memory.
    """
    K, b = objective.n_outputs, objective.block_size
    n = X.shape[0]
    M = np.empty((n, K, K))
    cache_rows = max(1, _CACHE_BYTES // (8 * K * b))
    for rows in chunk_slices(n, 8 * K * b, max_rows=cache_rows):
        M[rows] = _leverage_block(objective, A_inv, X[rows])
    return M


def _leverage_block(objective, A_inv, X):
    """:func:`_leverages` of a block of rows."""
    K, b, d = objective.n_outputs, objective.block_size, objective.n_features
    fi = objective.fit_intercept
    n = X.shape[0]
    M = np.empty((n, K, K))
    for k in range(K):
        # xt_i' A_inv[block k, blocks k..K-1], shape (n, (K - k) b)
        P = np.asarray(X @ A_inv[k * b : k * b + d, k * b :])
        if fi:
            P += A_inv[k * b + d, k * b :]
        if sp.issparse(X):
            for j in range(k, K):
                M[:, k, j] = _rowwise_dot(X, P[:, (j - k) * b : (j - k + 1) * b], fi)
        else:  # all blocks j at once: one pass instead of K - k
            P = P.reshape(n, K - k, b)
            M[:, k, k:] = np.einsum("nd,njd->nj", X, P[:, :, :d])
            if fi:
                M[:, k, k:] += P[:, :, d]
        M[:, k + 1 :, k] = M[:, k, k + 1 :]
    return M


def _newton_coefficients(objective, z, X, target, weights, s, M):
    """Per-row terms of one Newton step without the row, given leverages M.

    ``delta_i = s_i z + sum_j a_ij A_inv[:, block j] xt_i`` (see
    :func:`newton_parameter_changes`). Returns ``(eta, Uz, a)``: the rows'
    outputs, ``Uz[i, k] = xt_i . z_k`` and the coefficients ``a`` (n, K).
    """
    K, b = objective.n_outputs, objective.block_size
    eta = objective.linear_predictor(X)
    R = objective.family.gradient(target, eta)
    D = objective.family.hessian(target, eta)
    Uz = _rows_times(X, z.reshape(K, b).T, objective.fit_intercept)
    y = weights[:, None] * np.einsum("nkl,nl->nk", M, R) + s[:, None] * Uz
    C = weights[:, None, None] * D
    lhs = np.eye(K)[None] - np.einsum("nkl,nlm->nkm", C, M)
    rhs = np.einsum("nkl,nl->nk", C, y)
    if K == 1:  # one output: each system is a division
        shift = rhs / lhs[:, :, 0]
    else:
        shift = np.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]
    return eta, Uz, weights[:, None] * R + shift


def _newton_rows(objective, columns, z, X, target, weights, s):
    """:func:`newton_parameter_changes` for some rows, given the shared terms."""
    K, b = objective.n_outputs, objective.block_size
    fi = objective.fit_intercept
    n = X.shape[0]
    # cols[j][i] = A^-1[:, block j] xt_i, shape (n, K*b); the leverages are
    # their dot products with the rows.
    cols = columns(X)
    M = np.empty((n, K, K))
    for j in range(K):
        blocks = cols[j].reshape(n, K, b)
        for k in range(K):
            M[:, k, j] = _rowwise_dot(X, blocks[:, k, :], fi)
    _, _, a = _newton_coefficients(objective, z, X, target, weights, s, M)
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


def loo_own_outputs(objective, H_inv, X, target, weights, n_jobs=None):
    """Each training row's linear outputs under the model fitted without it.

    One Newton step without the row (see :func:`newton_parameter_changes`),
    evaluated at the row itself: ``eta_i + xt_i . delta_i`` per output. The
    held-out prediction of every row at the cost of one fit, as in the
    closed-form leave-one-out of least squares. Chunks of rows within
    ``working_memory``: the ``(n_train, n_params)`` changes are never held.

    Returns
    -------
    ndarray of shape (n_train, K)
    """
    K, b = objective.n_outputs, objective.block_size
    weights = np.asarray(weights, dtype=np.float64)
    s, _ = objective.removal_term(weights)
    # The inverse each row's step uses: one per penalty share (share_groups).
    setups, share_of = [], np.zeros(len(s), dtype=np.intp)
    for g, (share, group) in enumerate(share_groups(s, objective.n_params, H_inv)):
        A_inv, _, z = _newton_setup(objective, H_inv, weights, share)
        setups.append((A_inv, z))
        share_of[group] = g

    def chunk(rows):
        # xt_i . delta_i[block k] = s_i Uz[i, k] + sum_j a_ij M[i, k, j]: the
        # (n, p) changes themselves are never formed.
        positions = np.arange(*rows.indices(len(s)))
        groups = np.unique(share_of[rows])
        out = np.empty((len(positions), K))
        for g in groups:
            mine = share_of[rows] == g
            sub = rows if len(groups) == 1 else positions[mine]  # a view if one
            A_inv, z = setups[g]
            Xc = X[sub]
            M = _leverages(objective, A_inv, Xc)
            eta, Uz, a = _newton_coefficients(
                objective, z, Xc, target[sub], weights[sub], s[sub], M
            )
            out[mine] = eta + s[sub, None] * Uz + np.einsum("nkj,nj->nk", M, a)
        return out

    row_bytes = 8.0 * (K * b + X.shape[1] + 6 * K * K)
    return _per_row(chunk, X.shape[0], row_bytes, n_jobs, (K,))


# -- removing a whole group of rows (Koh et al., 2019) ------------------------
def group_removal_gradients(objective, X, R, weights, groups):
    """``(sum_{i in S} w_i g_i + s_S q) / W`` for every group S: (n_groups, p).

    Removing the rows of S moves the optimum by about ``H^-1`` times this
    (first order), the sum of the rows' own leave-one-out terms
    (:func:`loo_first_order`), including the reaction of a data-dependent
    penalty (``s``, ``q`` of ``objective.removal_term``).
    """
    s, q = objective.removal_term(weights)
    W = weights.sum()
    out = np.empty((len(groups), objective.n_params))
    for g, rows in enumerate(groups):
        factors = R[rows] * weights[rows][:, None]
        out[g] = objective.project_transpose(X[rows], factors) + s[rows].sum() * q
    return out / W


def group_first_order(objective, X, R, weights, groups, V):
    """First-order change of each test quantity when each group is removed.

    The sum of the rows' predicted leave-one-out changes: shape
    (n_test, n_groups). ``V = H^-1 G_test'`` from :func:`test_directions`.
    """
    return (group_removal_gradients(objective, X, R, weights, groups) @ V).T


def _group_operator(objective, X, target, weights, s_sum):
    """``E = sum_{i in S} w_i D_i kron xt_i xt_i' + s_S diag(lam)`` (sum form).

    The part of the sum-form Hessian that leaves with the group's rows.
    """
    D = objective.family.hessian(target, objective.linear_predictor(X))
    E = objective.curvature_sum(X, D * weights[:, None, None])
    E[np.diag_indices_from(E)] += s_sum * objective.penalty
    return E


def group_newton_change(objective, H_inv, X, target, weights, s_sum, W):
    """One Newton step on the objective without a group of rows.

    The sum-form objective ``F = sum_i w_i loss_i + W/2 theta' diag(lam)
    theta`` loses the group's terms (and, for a data-dependent penalty, the
    share ``s_S`` of the penalty), so from the fitted optimum the step is
    ``(A - E)^-1 b`` with ``A = W H``, ``b = sum_S (w_i g_i + s_i q)`` and
    ``E`` the group's curvature (:func:`_group_operator`). With a fixed
    penalty and ``m K`` below the number of parameters ``p`` (m rows, K
    outputs), ``(A - U C U')^-1`` comes from ``H^-1`` by the Woodbury identity
    with the group's rank-``m K`` term (``O(p^2 m K)``); otherwise the
    ``p x p`` system ``(I - A^-1 E) delta = A^-1 b`` is solved. Exact for
    least squares and ridge, whose objective is quadratic.

    Parameters
    ----------
    H_inv : ndarray of shape (n_params, n_params)
        Inverse of the mean-form Hessian (with any damping).
    X, target, weights : the group's rows, encoded targets and weights.
    s_sum : float
        ``sum_{i in S} s_i`` from ``objective.removal_term``.
    W : float
        Sum of all training weights.

    Returns
    -------
    ndarray of shape (n_params,)
        ``theta_without_S - theta``.
    """
    K, p = objective.n_outputs, objective.n_params
    if X.shape[0] == 0:  # an empty group: nothing is removed
        return np.zeros(p)
    A_inv = H_inv / W
    R = objective.family.gradient(target, objective.linear_predictor(X))
    b = objective.project_transpose(X, R * weights[:, None])
    if s_sum:
        b = b + s_sum * objective.penalty * objective.theta
    A_inv_b = A_inv @ b
    m = X.shape[0]
    if s_sum == 0 and m * K < p and objective.null_space is None:
        D = objective.family.hessian(target, objective.linear_predictor(X))
        # Columns of U, output-major: U[:, k*m + i] = e_k kron xt_i.
        U = np.vstack(
            [objective.expand(X, np.tile(np.eye(K)[k], (m, 1))) for k in range(K)]
        ).T
        C = np.zeros((K * m, K * m))
        for k in range(K):
            for j in range(K):
                C[k * m : (k + 1) * m, j * m : (j + 1) * m] = np.diag(
                    weights * D[:, k, j]
                )
        Z = A_inv @ U
        M = U.T @ Z
        y = U.T @ A_inv_b
        return A_inv_b + Z @ linalg.solve(np.eye(K * m) - C @ M, C @ y)
    E = _group_operator(objective, X, target, weights, s_sum)
    return linalg.solve(np.eye(p) - A_inv @ E, A_inv_b)
