"""An explicit feature map for a kernel: pivoted-Cholesky (Nystroem) landmarks.

With landmarks S and ``K_SS = L L'`` (Cholesky), ``phi(x) = L^-1 k(X_S, x)``
satisfies ``phi(x)' phi(x') = k(x, X_S) K_SS^-1 k(X_S, x')``, the Nystroem
approximation of ``k``. Choosing S by greedy pivoted Cholesky of the training
Gram matrix until the largest residual diagonal entry falls below
``tol * max_i k(x_i, x_i)`` makes it exact on the training rows to that
tolerance: a kernel model ``f(x) = sum_j alpha_j k(x, x_j) + b`` with RKHS
penalty ``alpha' K alpha`` is then the linear model ``f(x) = phi(x)' beta + b``
with penalty ``||beta||^2`` and ``alpha_S = L^-T beta``.
"""

import numpy as np
from scipy import linalg
from sklearn.metrics.pairwise import KERNEL_PARAMS, pairwise_kernels

_DIFFERENTIABLE = ("linear", "rbf", "poly")


def kernel_matrix(kernel, A, B, gamma, degree=3, coef0=0.0):
    """``k(A, B)`` for a kernel name or callable (gamma already resolved)."""
    if callable(kernel):
        return np.asarray(kernel(A, B), dtype=np.float64)
    if kernel == "rbf" and B is A:
        return rbf_gram(np.asarray(A, dtype=np.float64), gamma)
    given = {"gamma": gamma, "degree": degree, "coef0": coef0}
    params = {k: given[k] for k in KERNEL_PARAMS[kernel] if k in given}
    return pairwise_kernels(A, B, metric=kernel, **params)


def rbf_gram(X, gamma, block=512):
    """The exactly symmetric RBF Gram matrix ``exp(-gamma ||x_i - x_j||^2)``.

    As :func:`sklearn.metrics.pairwise.rbf_kernel` (same distance expansion),
    but each entry above the diagonal is computed once and mirrored: half the
    exponentials, which dominate the cost.
    """
    n = X.shape[0]
    sq = np.einsum("ij,ij->i", X, X)
    K = np.empty((n, n))
    for i in range(0, n, block):
        rows = slice(i, min(i + block, n))
        b = rows.stop - i
        D = X[rows] @ X[i:].T
        D *= -2.0
        D += sq[rows, None]
        D += sq[None, i:]
        np.maximum(D, 0.0, out=D)
        D *= -gamma
        np.exp(D, out=D)
        D[:, :b] = np.triu(D[:, :b]) + np.triu(D[:, :b], 1).T
        K[rows, i:] = D
        K[i + b :, rows] = D[:, b:].T
    np.fill_diagonal(K, 1.0)
    return K


class PivotedKernelFeatures:
    """Landmark feature map of a kernel, fitted on training rows.

    Parameters
    ----------
    kernel : {'linear', 'rbf', 'poly', 'precomputed'} or callable
    gamma : float
        Already resolved (no 'scale'/'auto').
    degree, coef0 : kernel parameters for 'poly'.
    n_components : int or None
        Maximum number of landmarks (None: as many as the tolerance needs).
    tol : float
        Relative residual at which pivoting stops.
    """

    def __init__(
        self, kernel, gamma, degree=3, coef0=0.0, n_components=None, tol=1e-10
    ):
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.n_components = n_components
        self.tol = tol

    def _kernel(self, A, B):
        if callable(self.kernel):
            return self.kernel(A, B)
        params = {
            "linear": {},
            "rbf": {"gamma": self.gamma},
            "poly": {"gamma": self.gamma, "degree": self.degree, "coef0": self.coef0},
        }.get(self.kernel, {})
        return pairwise_kernels(A, B, metric=self.kernel, **params)

    def fit(self, X):
        """Choose landmarks among the rows of X (the Gram matrix if precomputed)."""
        if self.kernel == "precomputed" or self.n_components is None:
            self._fit_full(X)
        else:
            self._fit_partial(X)
        self.n_components_ = len(self.landmarks_)
        self.basis_ = None if self.kernel == "precomputed" else X[self.landmarks_]
        return self

    def _fit_full(self, X):
        """Blocked LAPACK pivoted Cholesky (dpstrf) of the whole Gram matrix."""
        precomputed = self.kernel == "precomputed"
        K = np.asarray(X, dtype=np.float64) if precomputed else self._kernel(X, X)
        n = K.shape[0]
        limit = n if self.n_components is None else min(self.n_components, n)
        scale = max(np.max(np.diag(K)), np.finfo(float).tiny)
        c, piv, rank, _ = linalg.lapack.dpstrf(K, tol=self.tol * scale, lower=1)
        rank = max(1, min(int(rank), limit))
        self.landmarks_ = np.asarray(piv[:rank] - 1)
        self.cholesky_ = np.tril(c[:rank, :rank])

    def _fit_partial(self, X):
        """Greedy pivoted Cholesky that never forms the Gram matrix: O(n r^2)."""
        n = X.shape[0]
        r_max = min(self.n_components, n)
        residual = self._diagonal(X)
        floor = self.tol * max(residual.max(), np.finfo(float).tiny)
        F = np.zeros((n, r_max))
        pivots = []
        for j in range(r_max):
            i = int(np.argmax(residual))
            if residual[i] <= floor:
                break
            col = self._kernel(X, X[i : i + 1])[:, 0] - F[:, :j] @ F[i, :j]
            F[:, j] = col / np.sqrt(residual[i])
            residual = residual - F[:, j] ** 2
            residual[i] = 0.0
            pivots.append(i)
        self.landmarks_ = np.asarray(pivots)
        self.cholesky_ = np.tril(F[self.landmarks_, : len(pivots)])

    def _diagonal(self, X):
        """``k(x_i, x_i)`` for every row."""
        if callable(self.kernel):
            return np.array([self._kernel(x[None], x[None])[0, 0] for x in X])
        sq = np.einsum("ij,ij->i", X, X)
        if self.kernel == "rbf":
            return np.ones(X.shape[0])
        if self.kernel == "linear":
            return sq
        return (self.gamma * sq + self.coef0) ** self.degree

    def _landmark_kernel(self, X):
        """``k(X_S, x)`` for every row, shape (n, r)."""
        if self.kernel == "precomputed":
            return np.asarray(X, dtype=np.float64)[:, self.landmarks_]
        return self._kernel(X, self.basis_)

    def transform(self, X):
        """``phi(X)`` of shape (n, r)."""
        KS = self._landmark_kernel(X)
        return linalg.solve_triangular(self.cholesky_, KS.T, lower=True).T

    def coefficients(self, beta):
        """Kernel expansion ``alpha_S = L^-T beta`` over the landmarks."""
        return linalg.solve_triangular(
            self.cholesky_, np.asarray(beta).T, lower=True, trans="T"
        ).T

    def vjp(self, X, P):
        """``P[..., i, :] @ d phi(x_i) / d x_i`` for every row i.

        Parameters
        ----------
        X : ndarray of shape (n, d)
        P : ndarray of shape (m, n, r)

        Returns
        -------
        ndarray of shape (m, n, d)
        """
        if self.kernel not in _DIFFERENTIABLE:
            raise ValueError(
                f"perturbation influence needs the kernel's gradient; kernel="
                f"{self.kernel!r} has none here. Use 'linear', 'rbf' or 'poly'."
            )
        X = np.asarray(X, dtype=np.float64)
        # U = L^-T P: the weights of each landmark's kernel column.
        m, n, r = P.shape
        U = self.coefficients(P.reshape(m * n, r)).reshape(m, n, r)
        B = self.basis_
        if self.kernel == "linear":
            return U @ B
        if self.kernel == "rbf":
            KS = self._landmark_kernel(X)  # (n, r)
            A = U * KS[None]
            # d k(x, s)/dx = -2 gamma (x - s) k(x, s)
            return -2 * self.gamma * (A.sum(-1)[..., None] * X[None] - A @ B)
        inner = self.gamma * X @ B.T + self.coef0
        dk = self.degree * self.gamma * inner ** (self.degree - 1)  # times s
        return (U * dk[None]) @ B
