"""HessianOperator: the Hessian of a fitted objective on its training rows."""

import numpy as np
import scipy.sparse as sp

from ..utils._chunks import chunk_slices, map_chunks


class HessianOperator:
    """The Hessian of a fitted objective on its training data.

    Products and the dense Hessian are accumulated over chunks of training
    rows sized by scikit-learn's ``working_memory``, so no temporary as large
    as ``X`` is formed: the mean-form quantity is the weight-share weighted sum
    ``sum_c W_c / W * f(rows c)`` of the chunks' own mean-form quantities (the
    penalty, added once per chunk, sums to itself).

    Parameters
    ----------
    objective : LinearObjective
    X, target, weights : the training data in the objective's terms.
    n_jobs : int, default=None
        Threads for the chunks (None: 1).

    Attributes
    ----------
    residuals_, mean_gradient_ : ndarray or None
        The rows' ``d loss / d eta`` and the objective's gradient, computed
        by ``to_dense`` from the same outputs as the Hessian
        (see :meth:`residuals_and_gradient`).
    """

    def __init__(self, objective, X, target, weights, n_jobs=None):
        self.objective = objective
        self.X = X
        self.target = target
        self.weights = weights
        self.n_jobs = n_jobs
        self.residuals_ = self.mean_gradient_ = None
        self._curvature = None  # matmat's per-row curvature, when one chunk

    def _sum_over_rows(self, method, row_bytes, *args, **per_row):
        """``sum_c W_c / W * method(X_c, target_c, w_c, *args)`` over row chunks.

        ``per_row``: keyword arrays with one entry per row, passed chunked.
        """
        w = np.asarray(self.weights, dtype=np.float64)
        total_weight = w.sum()
        chunks = chunk_slices(self.X.shape[0], row_bytes, self.n_jobs)
        if len(chunks) == 1:
            return method(self.X, self.target, w, *args, **per_row)

        def part(rows):
            if not np.any(w[rows]):  # nothing to add, and no weight to divide by
                return None
            share = w[rows].sum() / total_weight
            kwargs = {name: a[rows] for name, a in per_row.items()}
            return share * method(
                self.X[rows], self.target[rows], w[rows], *args, **kwargs
            )

        total = None
        for piece in map_chunks(part, chunks, self.n_jobs):
            if piece is None:
                continue
            if total is None:
                total = piece
            else:
                total += piece
        return total

    def _row_bytes(self, m=0, dense=False):
        """Temporaries per row: an X-sized copy of it, and K m-vectors.

        ``dense``: the Hessian itself, whose multi-output form also holds a
        row of ``K`` feature blocks (see ``LinearObjective.hessian``).
        """
        K, (n, d) = self.objective.n_outputs, self.X.shape
        width = 1.5 * self.X.nnz / max(n, 1) if sp.issparse(self.X) else d
        blocks = K * (d + 1) if dense and K > 1 else 0
        return 8.0 * (width + K * K + 3 * K * m + 4 * K + blocks)

    @property
    def shape(self):
        p = self.objective.n_params
        return (p, p)

    @property
    def null_space(self):
        """Orthonormal directions of exact flatness, shape (p, r), or None."""
        return self.objective.null_space

    def to_dense(self):
        obj = self.objective

        def stacked(X, target, weights, residuals_out):
            # One array, so the chunks' weighted sum covers both.
            H, gradient = obj.hessian_and_gradient(X, target, weights, residuals_out)
            return np.vstack([H, gradient])

        R = np.full((self.X.shape[0], obj.n_outputs), np.nan)
        row_bytes = self._row_bytes(dense=True)
        if len(chunk_slices(self.X.shape[0], row_bytes, self.n_jobs)) == 1:
            # One pass: no stacked copy of the (p, p) matrix.
            H, gradient = obj.hessian_and_gradient(
                self.X, self.target, np.asarray(self.weights, dtype=np.float64), R
            )
            self.residuals_, self.mean_gradient_ = R, gradient
            return np.ascontiguousarray(H)
        out = self._sum_over_rows(stacked, row_bytes, residuals_out=R)
        skipped = np.isnan(R[:, 0])  # chunks of weightless rows add nothing
        if np.any(skipped):
            R[skipped] = obj.residuals(self.X[skipped], self.target[skipped])
        self.residuals_, self.mean_gradient_ = R, out[-1].copy()
        return np.ascontiguousarray(out[:-1])

    def hessian_square_root(self):
        """Row blocks of a matrix ``M`` with ``M' M = H``, or None.

        A capability of one-output dense objectives with a convex pointwise
        loss (see ``LinearObjective.hessian_square_root``): an iterator over
        chunks of rows sized by ``working_memory`` (the penalty rows come with
        the first), any of which may be None when the objective has no such
        root after all. Solvers ask for it with ``getattr`` and fall back to
        ``to_dense`` without it; a QR decomposition updated block by block
        never holds more than one chunk.
        """
        method = getattr(self.objective, "hessian_square_root", None)
        if method is None:
            return None
        w = np.asarray(self.weights, dtype=np.float64)
        total = w.sum()
        chunks = chunk_slices(self.X.shape[0], self._row_bytes(), None)

        def blocks():
            for i, rows in enumerate(chunks):
                yield method(
                    self.X[rows],
                    self.target[rows],
                    w[rows],
                    total_weight=total,
                    penalty=i == 0,
                )

        return blocks()

    def indefinite_by_construction(self):
        """Whether ``H`` may be indefinite at the fit, by the model's design.

        True when the penalty has negative entries: the signed feature map of
        an indefinite kernel (KernelRidge with 'sigmoid'), whose fitted model
        is a saddle point of its objective. Solvers ask with ``getattr``.
        """
        penalty = getattr(self.objective, "penalty", None)
        return penalty is not None and bool(np.any(np.asarray(penalty) < 0))

    def residuals_and_gradient(self):
        """``(residuals, mean gradient)`` at the fitted parameters.

        Already at hand after ``to_dense``; otherwise computed here
        (outputs, then the gradient product).
        """
        if self.residuals_ is None:
            obj, X, target = self.objective, self.X, self.target
            self.residuals_ = obj.residuals(X, target)
            self.mean_gradient_ = obj.mean_gradient(
                X, target, self.weights, self.residuals_
            )
        return self.residuals_, self.mean_gradient_

    def matmat(self, V):
        V = np.asarray(V, dtype=np.float64).reshape(self.shape[0], -1)
        obj, row_bytes = self.objective, self._row_bytes(V.shape[1])
        if len(chunk_slices(self.X.shape[0], row_bytes, self.n_jobs)) == 1:
            # The rows' curvature, computed once: an iterative solver
            # multiplies by the same Hessian at every iteration.
            if self._curvature is None:
                self._curvature = obj.row_curvature(self.X, self.target, self.weights)
            return obj.hessian_vector_product(
                self.X, self.target, self.weights, V, curvature=self._curvature
            )
        return self._sum_over_rows(obj.hessian_vector_product, row_bytes, V)

    def diagonal(self):
        """Diagonal of the Hessian, shape (n_params,), without forming it."""
        return self._sum_over_rows(self.objective.hessian_diagonal, self._row_bytes())

    def curvature_factors(self, drop_share=1e-14):
        """The data part of H as low-rank factors: ``(rows, C)``, (m,), (m, K).

        ``w_i / W * D_i = C_i C_i'`` for each training row's ``(K, K)`` loss
        curvature; one factor per kept eigen-direction of ``C_i`` (those above
        ``drop_share`` of the largest), so the data part of H is
        ``sum_j (C_j kron xt_{rows_j}) (C_j kron xt_{rows_j})'``.
        Raises ValueError when some row's curvature is negative.
        """
        obj = self.objective
        w = np.asarray(self.weights, dtype=np.float64)
        w = w / w.sum()
        D = obj.family.hessian(self.target, obj.linear_predictor(self.X))
        K = obj.n_outputs
        D = np.asarray(D, dtype=np.float64).reshape(-1, K, K) * w[:, None, None]
        if K == 1:
            e = D[:, 0, 0][:, None]
            vecs = np.ones((e.shape[0], 1, 1))
        else:
            e, vecs = np.linalg.eigh(D)
        top = max(float(np.abs(e).max(initial=0.0)), np.finfo(float).tiny)
        if e.min(initial=0.0) < -1e-12 * top:
            raise ValueError(
                "The loss has negative curvature at some training rows: the "
                "Hessian's data part is not positive semidefinite."
            )
        rows, cols = np.nonzero(e > drop_share * top)
        return rows, vecs[rows, :, cols] * np.sqrt(e[rows, cols])[:, None]
