"""Closed-form derivatives of models whose outputs are linear in the features.

Conventions
-----------
A model has ``K`` linear outputs ``eta_k = x @ coef[k] + intercept[k]``
(``K = 1`` for regression and binary classification, ``K = n_classes`` for
multinomial and one-vs-rest models). The parameter vector is::

    theta = [coef[0], intercept[0], coef[1], intercept[1], ..., intercept[K-1]]

i.e. the rows of ``Theta = [coef | intercept]`` of shape ``(K, d + 1)``
flattened in C order (output-major, intercept last in each block; without an
intercept each block has length ``d``). This is scikit-learn's own layout of
``coef_`` and ``intercept_``.

Every estimator minimises, in *mean form*,

    L(theta) = 1 / W * sum_i w_i * loss(y_i, eta_i) + 1/2 * theta' diag(lam) theta

with ``W = sum_i w_i`` the sum of the effective sample weights (sample_weight
times class_weight) and ``lam`` the per-parameter penalty (zero for an
unpenalized intercept). Its Hessian is::

    H = 1 / W * sum_i w_i * (D_i kron xt_i xt_i') + diag(lam)

with ``xt_i = [x_i, 1]`` and ``D_i`` the ``(K, K)`` Hessian of the pointwise
loss with respect to ``eta_i``. Each per-sample gradient factorises as
``g_i = r_i kron xt_i`` with ``r_i = d loss / d eta`` of length ``K``, so
products with the ``(n, p)`` gradient matrix never need to form it.

``penalty_scaling`` says how the estimator's penalty moves when the data
change (it matters for leave-one-out and reweighting, not for ``H``):

- ``'fixed'``: the sum-form objective is ``sum_i w_i loss_i + penalty``
  (LogisticRegression ``C``, Ridge ``alpha``): removing a row only removes its
  term.
- ``'weight_sum'``: the objective is a weighted *mean* plus a fixed penalty
  (GLMs): removing a row also strengthens the penalty by its weight share.
- ``'n_samples'``: the objective is a mean over the *number* of rows plus a
  fixed penalty (SGD): removing a row strengthens the penalty by ``1 / n``.
"""

import numpy as np
import scipy.sparse as sp
from scipy import linalg

PENALTY_SCALINGS = ("fixed", "weight_sum", "n_samples")


def _dense(a):
    return a.toarray() if sp.issparse(a) else np.asarray(a)


# Rows per cache-resident block of _weighted_gram: 1024 x 101 float64 is
# 0.8 MB, inside a core's L2 cache.
_GRAM_BLOCK_ROWS = 1024


# Columns per product of a sparse matrix with a dense one. scipy's kernel
# reads a whole row of the dense operand per stored entry: panels of 16
# columns (two cache lines) stay in cache where rows of 100 columns do not
# (benchmarks/bench_sparse.py).
_SPARSE_PANEL = 16


def _times_dense(A, B):
    """``A @ B`` as a dense array; for sparse A, in panels of B's columns."""
    if not sp.issparse(A) or B.ndim == 1 or B.shape[1] <= _SPARSE_PANEL:
        return np.asarray(A @ B)
    out = np.empty((A.shape[0], B.shape[1]))
    for start in range(0, B.shape[1], _SPARSE_PANEL):
        cols = slice(start, start + _SPARSE_PANEL)
        out[:, cols] = A @ np.ascontiguousarray(B[:, cols])
    return out


def _scaled_row_blocks(X, s, fit_intercept, block_rows=_GRAM_BLOCK_ROWS):
    """Yield ``(rows, A)`` with ``A = s[rows, None] * xt[rows]`` for cache-sized blocks.

    ``A`` is a C-ordered view of one buffer reused for every block (callers
    may overwrite it; it is gone at the next block), so the rows pass
    through memory once and nothing as large as ``X`` is allocated.
    """
    n, d = X.shape
    buffer = np.empty((min(n, block_rows), d + int(fit_intercept)))
    for start in range(0, n, block_rows):
        rows = slice(start, min(start + block_rows, n))
        A = buffer[: rows.stop - rows.start]
        np.multiply(X[rows], s[rows, None], out=A[:, :d])
        if fit_intercept:
            A[:, d] = s[rows]
        yield rows, A


def _weighted_gram(X, s, fit_intercept, v=None):
    """``Xt' diag(s) Xt`` for s >= 0 as ``A' A`` with ``A = sqrt(s) Xt``.

    One symmetric rank-k update (BLAS syrk, half the flops of a general
    product) per block of rows, with ``A``'s block built in cache: the rows
    pass through memory once instead of being copied out and read back
    (benchmarks/bench_large.py measures it). The intercept is a column of
    ``A`` (``sqrt(s)``), so its row and column come with the same update.

    With ``v`` of shape (n,), also returns ``Xt' v``, read from each block of
    rows while it is in cache (saving a pass over X).
    """
    d = X.shape[1]
    b = d + int(fit_intercept)
    G = np.zeros((b, b), order="F")
    Xv = None if v is None else np.zeros(b)
    for rows, A in _scaled_row_blocks(X, np.sqrt(s), fit_intercept):
        if Xv is not None:  # X[rows] was just read to form A
            # numpy's loop, not BLAS: a threaded gemv per block costs more in
            # synchronization than it saves.
            Xv[:d] += np.einsum("ij,i->j", X[rows], v[rows])
        # A' A into the lower triangle of G (A is C-ordered: its transpose is
        # the Fortran matrix BLAS expects, trans=0 on A').
        G = linalg.blas.dsyrk(1.0, A.T, beta=1.0, c=G, trans=0, lower=1, overwrite_c=1)
    G = np.tril(G)
    G += np.tril(G, -1).T
    G = np.ascontiguousarray(G)
    if Xv is None:
        return G
    if fit_intercept:
        Xv[d] = v.sum()
    return G, Xv


class LinearObjective:
    """Derivatives of a fitted linear-output model's training objective.

    Parameters
    ----------
    coef : ndarray of shape (K, d)
        Fitted coefficients.
    intercept : ndarray of shape (K,) or None
        Fitted intercepts, ``None`` when the model has none.
    family : object
        Pointwise loss with ``loss``, ``gradient`` and ``hessian`` methods
        taking ``(y, eta)`` (see ``skinfluence.objectives.logistic``).
    penalty : ndarray of shape (n_params,)
        The mean-form penalty ``lam`` (see module docstring).
    penalty_scaling : {'fixed', 'weight_sum', 'n_samples'}
        How the penalty reacts to removing or reweighting a row.
    null_space : ndarray of shape (n_params, r), default=None
        Orthonormal directions along which the objective is exactly flat
        (the over-parameterisation of a multinomial model). Gradients are
        orthogonal to them; solvers invert ``H`` on their complement.
    feature_map : object, default=None
        For kernel models: the fitted map ``phi`` (``transform``, ``vjp``)
        from input rows to the features this objective is linear in.
    """

    def __init__(
        self,
        coef,
        intercept,
        family,
        penalty,
        penalty_scaling,
        null_space=None,
        feature_map=None,
    ):
        self.coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
        self.intercept = (
            None
            if intercept is None
            else np.atleast_1d(np.asarray(intercept, dtype=np.float64))
        )
        self.family = family
        self.penalty = np.asarray(penalty, dtype=np.float64)
        self.penalty_scaling = penalty_scaling
        self.null_space = null_space
        self.feature_map = feature_map
        if penalty_scaling not in PENALTY_SCALINGS:
            raise ValueError(f"penalty_scaling must be one of {PENALTY_SCALINGS}")
        if self.penalty.shape != (self.n_params,):
            raise ValueError(
                f"penalty has shape {self.penalty.shape}, expected ({self.n_params},)"
            )

    # -- layout -------------------------------------------------------------
    @property
    def n_outputs(self):
        return self.coef.shape[0]

    @property
    def n_features(self):
        return self.coef.shape[1]

    @property
    def fit_intercept(self):
        return self.intercept is not None

    @property
    def block_size(self):
        return self.n_features + int(self.fit_intercept)

    @property
    def n_params(self):
        return self.n_outputs * self.block_size

    @property
    def theta(self):
        """The parameter vector in the layout of the module docstring."""
        blocks = self.coef
        if self.fit_intercept:
            blocks = np.hstack([self.coef, self.intercept[:, None]])
        return blocks.ravel()

    def with_theta(self, theta):
        """A copy of this objective at other parameters (for finite differences)."""
        blocks = np.asarray(theta, dtype=np.float64).reshape(
            self.n_outputs, self.block_size
        )
        d = self.n_features
        return type(self)(
            blocks[:, :d],
            blocks[:, d] if self.fit_intercept else None,
            self.family,
            self.penalty,
            self.penalty_scaling,
            self.null_space,
            self.feature_map,
        )

    # -- pointwise quantities -------------------------------------------------
    def linear_predictor(self, X):
        """``eta`` of shape (n, K)."""
        eta = np.asarray(X @ self.coef.T)
        if self.fit_intercept:
            eta = eta + self.intercept
        return eta

    def loss(self, X, y):
        """Per-sample loss of shape (n,), the quantity being differentiated."""
        return self.family.loss(y, self.linear_predictor(X))

    def residuals(self, X, y):
        """``r_i = d loss_i / d eta_i``, of shape (n, K)."""
        return self.family.gradient(y, self.linear_predictor(X))

    def objective(self, X, y, sample_weight):
        """The mean-form training objective ``L(theta)`` (a float)."""
        w = np.asarray(sample_weight, dtype=np.float64)
        theta = self.theta
        data = np.dot(w, self.loss(X, y)) / w.sum()
        return float(data + 0.5 * np.dot(self.penalty * theta, theta))

    def expand(self, X, factors):
        """Gradient-like rows ``factors_i kron xt_i``, dense of shape (n, p)."""
        X = _dense(X)
        blocks = factors[:, :, None] * X[:, None, :]
        if self.fit_intercept:
            blocks = np.concatenate([blocks, factors[:, :, None]], axis=2)
        return blocks.reshape(X.shape[0], -1)

    def gradients(self, X, y):
        """Per-sample gradients of the loss, dense of shape (n, n_params)."""
        return self.expand(X, self.residuals(X, y))

    def project(self, X, factors, V):
        """Compute ``expand(X, factors) @ V`` without forming the expansion.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n, d)
        factors : ndarray of shape (n, K)
        V : ndarray of shape (n_params, m)

        Returns
        -------
        ndarray of shape (n, m)
        """
        if self.n_outputs == 1 and not sp.issparse(X) and self.block_size <= V.shape[1]:
            # Wide results: scale the (smaller) rows instead of the result, so
            # one product writes it and nothing passes over it again. Written
            # as (m, n) in C order, the layout callers transpose it to (and
            # the faster one of the two for tall X, see bench_exact.py).
            return (V.T @ self._scaled_rows(X, factors[:, 0]).T).T
        Z = self._block_products(X, V)
        if Z.shape[1] == 1:  # one output: scale rows in place, no temporaries
            Z = Z[:, 0, :]
            Z *= factors
            return Z
        return np.einsum("nk,nkm->nm", factors, Z)

    def gradient_blocks(self, X, factors):
        """Yield ``(rows, expand(X[rows], factors[rows]))`` over blocks of rows.

        Blocks are sized to stay in cache; with one output and dense X each
        is a view of one reused buffer (valid until the next block, free to
        overwrite), so the rows are scaled in cache rather than copied out.
        """
        if self.n_outputs == 1 and not sp.issparse(X):
            yield from _scaled_row_blocks(
                np.asarray(X), factors[:, 0], self.fit_intercept
            )
            return
        for start in range(0, X.shape[0], _GRAM_BLOCK_ROWS):
            rows = slice(start, min(start + _GRAM_BLOCK_ROWS, X.shape[0]))
            yield rows, self.expand(X[rows], factors[rows])

    def _scaled_rows(self, X, s):
        """``s_i * xt_i`` as a dense (n, block_size) array (one output only)."""
        X = np.asarray(X)
        d = self.n_features
        out = np.empty((X.shape[0], self.block_size))
        np.multiply(X, s[:, None], out=out[:, :d])
        if self.fit_intercept:
            out[:, d] = s
        return out

    def _block_products(self, X, V):
        """``xt_i @ V_k`` for every row and output block: shape (n, K, m)."""
        K, b, d = self.n_outputs, self.block_size, self.n_features
        m = V.shape[1]
        Vb = V.reshape(K, b, m)
        coef_part = Vb[:, :d, :].transpose(1, 0, 2).reshape(d, K * m)
        Z = _times_dense(X, coef_part).reshape(-1, K, m)
        if self.fit_intercept:
            Z += Vb[:, d, :][None, :, :]
        return Z

    # -- curvature ------------------------------------------------------------
    def hessian(self, X, y, sample_weight, eta=None):
        """Hessian of the mean-form objective, of shape (n_params, n_params).

        ``eta``: :meth:`linear_predictor` of X when already at hand.
        """
        w = np.asarray(sample_weight, dtype=np.float64)
        share = w / w.sum()
        eta = self.linear_predictor(X) if eta is None else eta
        parts = getattr(self.family, "hessian_parts", None)
        if parts is not None and not sp.issparse(X):
            a, U = parts(y, eta)
            H = self._diagonal_minus_outer_sum(
                np.asarray(X), a * share[:, None], U * np.sqrt(share)[:, None]
            )
        else:
            D = self.family.hessian(y, eta)
            H = self.curvature_sum(X, D * share[:, None, None])
        H[np.diag_indices_from(H)] += self.penalty
        return H

    def hessian_and_gradient(self, X, y, sample_weight, residuals_out=None):
        """Hessian and gradient of the mean-form objective, sharing the outputs.

        The rows' outputs ``eta`` are computed once for the Hessian, the
        residuals and the gradient (the explainer needs all three at fit).

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n, d)
        y, sample_weight : ndarray of shape (n,)
        residuals_out : ndarray of shape (n, K), default=None
            Receives the rows' ``d loss / d eta`` (:meth:`residuals`).

        Returns
        -------
        H : ndarray of shape (n_params, n_params)
        gradient : ndarray of shape (n_params,)
        """
        eta = self.linear_predictor(X)
        R = self.family.gradient(y, eta)
        if residuals_out is not None:
            residuals_out[...] = R
        w = np.asarray(sample_weight, dtype=np.float64)
        share = w / w.sum()
        D = None
        if self.n_outputs == 1 and not sp.issparse(X):
            D = self.family.hessian(y, eta)[:, 0, 0] * share
        if D is None or np.any(D < 0):
            H = self.hessian(X, y, sample_weight, eta=eta)
            return H, self.mean_gradient(X, y, sample_weight, R)
        # One output, dense X: the gradient's product rides on the Gram's pass.
        H, gradient = _weighted_gram(
            np.asarray(X), D, self.fit_intercept, v=R[:, 0] * share
        )
        H[np.diag_indices_from(H)] += self.penalty
        return H, gradient + self.penalty * self.theta

    def _diagonal_minus_outer_sum(self, X, a, U):
        """:meth:`curvature_sum` for ``S_i = diag(a_i) - u_i u_i'`` (a >= 0).

        The softmax Hessian has this form. Its sum is K weighted Grams on the
        diagonal blocks minus ``G' G`` with rows ``g_i = u_i kron xt_i``: one
        symmetric rank-n update of size p (BLAS syrk) instead of
        ``K (K + 1) / 2`` separate block products.
        """
        K, b, d = self.n_outputs, self.block_size, self.n_features
        G = np.empty((X.shape[0], K, b))
        np.multiply(U[:, :, None], X[:, None, :], out=G[:, :, :d])
        if self.fit_intercept:
            G[:, :, d] = U
        G = G.reshape(X.shape[0], K * b)
        H = G.T @ G
        np.negative(H, out=H)
        for k in range(K):
            H[k * b : (k + 1) * b, k * b : (k + 1) * b] += _weighted_gram(
                X, a[:, k], self.fit_intercept
            )
        return H

    def curvature_sum(self, X, S):
        """``sum_i S_i kron xt_i xt_i'`` for S of shape (n, K, K)."""
        K, b, d = self.n_outputs, self.block_size, self.n_features
        if K == 1 and not sp.issparse(X) and np.all(S >= 0):
            return _weighted_gram(np.asarray(X), S[:, 0, 0], self.fit_intercept)
        H = np.zeros((K * b, K * b))
        Xd = X if sp.issparse(X) else np.asarray(X)
        for k in range(K):
            for j in range(k, K):
                s = S[:, k, j]
                block = np.empty((b, b))
                Xs = (sp.diags(s) @ Xd) if sp.issparse(Xd) else Xd * s[:, None]
                block[:d, :d] = _dense(Xd.T @ Xs)
                if self.fit_intercept:
                    col = np.asarray(Xs.sum(axis=0)).ravel()
                    block[:d, d] = col
                    block[d, :d] = col
                    block[d, d] = s.sum()
                H[k * b : (k + 1) * b, j * b : (j + 1) * b] = block
                H[j * b : (j + 1) * b, k * b : (k + 1) * b] = block.T
        return H

    def hessian_square_root(
        self, X, y, sample_weight, *, total_weight=None, penalty=True
    ):
        """Rows of a matrix ``M`` with ``M' M = H``, or None where there is none.

        For one output, dense ``X`` and a convex pointwise loss (``D_i >= 0``):
        the weighted design ``sqrt(w_i / W * D_i) xt_i`` (one row per training
        row) stacked on ``sqrt(lam_j) e_j'`` (one row per penalized parameter).
        Solvers factorize it by QR (``H = R' R``) where ``H`` itself is too
        ill-conditioned: the factor is then accurate to ``cond(M) = sqrt(cond(H))``
        times the rounding error rather than ``cond(H)`` times it. Sparse ``X``,
        several outputs and a negative penalty give None.

        Parameters
        ----------
        X, y, sample_weight : a chunk of the training rows, or all of them.
        total_weight : float, default=None
            ``W``, the weight of all training rows (None: of these).
        penalty : bool, default=True
            Whether to append the penalty rows (once over all chunks).

        Returns
        -------
        ndarray of shape (n + n_penalized, n_params) or None
        """
        if self.n_outputs != 1 or sp.issparse(X) or np.any(self.penalty < 0):
            return None
        X = np.asarray(X, dtype=np.float64)
        w = np.asarray(sample_weight, dtype=np.float64)
        W = w.sum() if total_weight is None else total_weight
        D = self.family.hessian(y, self.linear_predictor(X))[:, 0, 0] * (w / W)
        if np.any(D < 0):
            return None
        s = np.sqrt(D)
        rows = s[:, None] * X
        if self.fit_intercept:
            rows = np.column_stack([rows, s])
        if not penalty:
            return rows
        penalized = np.flatnonzero(self.penalty)
        P = np.zeros((len(penalized), self.n_params))
        P[np.arange(len(penalized)), penalized] = np.sqrt(self.penalty[penalized])
        return np.vstack([rows, P])

    def hessian_diagonal(self, X, y, sample_weight):
        """Diagonal of the mean-form Hessian, shape (n_params,), without forming H.

        Per output block k: ``1/W * sum_i w_i D_i[k, k] * xt_ij ** 2 + lam``
        (Jacobi preconditioning of iterative solvers). Dense or sparse X.
        """
        w = np.asarray(sample_weight, dtype=np.float64)
        D = self.family.hessian(y, self.linear_predictor(X))
        K = self.n_outputs
        S = np.diagonal(D, axis1=1, axis2=2) * (w / w.sum())[:, None]  # (n, K)
        X2 = X.multiply(X) if sp.issparse(X) else np.square(np.asarray(X))
        out = np.empty((K, self.block_size))
        out[:, : self.n_features] = np.asarray(X2.T @ S).T
        if self.fit_intercept:
            out[:, self.n_features] = S.sum(axis=0)
        return out.ravel() + self.penalty

    def row_curvature(self, X, y, sample_weight):
        """Each row's loss curvature times its weight share: shape (n, K, K).

        The data part of :meth:`hessian_vector_product`, which takes it as
        ``curvature`` when a caller multiplies by the same Hessian repeatedly.
        """
        w = np.asarray(sample_weight, dtype=np.float64)
        D = self.family.hessian(y, self.linear_predictor(X))
        return D * (w / w.sum())[:, None, None]

    def hessian_vector_product(self, X, y, sample_weight, V, curvature=None):
        """``H @ V`` without forming ``H``, for V of shape (n_params, m).

        ``curvature``: :meth:`row_curvature` of the same rows, when at hand.
        """
        K, b, d = self.n_outputs, self.block_size, self.n_features
        m = V.shape[1]
        Z = self._block_products(X, V)  # (n, K, m)
        if curvature is None:  # the shares scale the (n, K, m) product instead
            w = np.asarray(sample_weight, dtype=np.float64)
            D = self.family.hessian(y, self.linear_predictor(X))
            DZ = np.einsum("nkl,nlm->nkm", D, Z) * (w / w.sum())[:, None, None]
        else:
            DZ = np.einsum("nkl,nlm->nkm", curvature, Z)
        DZ = DZ.reshape(-1, K * m)
        out = np.empty((K, b, m))
        # All outputs' products in one pass over X: (d, K m).
        out[:, :d] = _times_dense(X.T, DZ).reshape(d, K, m).transpose(1, 0, 2)
        if self.fit_intercept:
            out[:, d] = DZ.sum(axis=0).reshape(K, m)
        return out.reshape(K * b, -1) + self.penalty[:, None] * V

    def mean_gradient(self, X, y, sample_weight, residuals=None):
        """Gradient of the mean-form objective (zero at an exact optimum).

        ``residuals``: :meth:`residuals` of ``(X, y)`` when already at hand
        (saves a pass over X).
        """
        w = np.asarray(sample_weight, dtype=np.float64)
        R = self.residuals(X, y) if residuals is None else residuals
        R = R * (w / w.sum())[:, None]
        return self.project_transpose(X, R) + self.penalty * self.theta

    def project_transpose(self, X, factors):
        """``expand(X, factors).sum(axis=0)`` without forming the expansion."""
        K, b, d = self.n_outputs, self.block_size, self.n_features
        out = np.empty((K, b))
        out[:, :d] = np.asarray(X.T @ factors).T
        if self.fit_intercept:
            out[:, d] = factors.sum(axis=0)
        return out.ravel()

    # -- dependence on the data ------------------------------------------------
    def reweight_term(self):
        """Extra gradient every training row carries when it is upweighted.

        With a ``'weight_sum'`` penalty, upweighting a row by ``eps`` (in the
        mean-form sense ``L + eps * loss_z``) also adds ``eps`` times the
        penalty, so the row acts through ``g_z + lam * theta``.
        """
        if self.penalty_scaling == "weight_sum":
            return self.penalty * self.theta
        return np.zeros(self.n_params)

    def removal_term(self, sample_weight):
        """How a data-dependent penalty reacts to removing each row.

        Removing row z moves the optimum by about
        ``H^-1 (w_z * g_z + s_z * q) / W`` with ``q = lam * theta``. Returns the
        pair ``(s, q)``: ``s`` of shape (n,) and ``q`` of shape (n_params,);
        ``s`` is zero for a ``'fixed'`` penalty.
        """
        w = np.asarray(sample_weight, dtype=np.float64)
        q = self.penalty * self.theta
        if self.penalty_scaling == "weight_sum":
            return w, q
        if self.penalty_scaling == "n_samples":
            return np.full_like(w, w.sum() / w.shape[0]), q
        return np.zeros_like(w), q

    # -- perturbation of the inputs -------------------------------------------
    def perturbation_products(self, X, y, V):
        """``v' d/dx d/dtheta loss(x_i)`` for each row i and column v of V.

        Returns an array of shape (n, m, d): the derivative with respect to the
        features of row i of ``g_i @ v``.
        """
        K, b, d = self.n_outputs, self.block_size, self.n_features
        m = V.shape[1]
        eta = self.linear_predictor(X)
        R = self.family.gradient(y, eta)
        D = self.family.hessian(y, eta)
        Vb = V.reshape(K, b, m)
        # d/dx of r_k(eta(x)) * xt: r_k * V_k[:d] + (xt . V_k) * sum_l D_kl coef_l
        first = np.einsum("nk,kdm->nmd", R, Vb[:, :d, :])
        Z = self._block_products(X, V)
        DC = np.einsum("nkl,ld->nkd", D, self.coef)
        return first + np.einsum("nkm,nkd->nmd", Z, DC)
