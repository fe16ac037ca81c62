"""An explicit feature map for a kernel: pivoted-Cholesky (Nystroem) landmarks.

With landmarks S and ``K_SS = L L'`` (Cholesky), ``phi(x) = L^-1 k(X_S, x)``
satisfies ``phi(x)' phi(x') = k(x, X_S) K_SS^-1 k(X_S, x')``, the Nystroem
approximation of ``k``. Choosing S by greedy pivoted Cholesky of the training
Gram matrix until the largest residual diagonal entry falls below
``tol * max_i k(x_i, x_i)`` makes it exact on the training rows to that
tolerance: a kernel model ``f(x) = sum_j alpha_j k(x, x_j) + b`` with RKHS
penalty ``alpha' K alpha`` is then the linear model ``f(x) = phi(x)' beta + b``
with penalty ``||beta||^2`` and ``alpha_S = L^-T beta``.

The kernel is computed by one function, :func:`kernel_matrix`, exactly as
scikit-learn computes it (``pairwise_kernels(..., filter_params=True)``, as in
``KernelRidge._get_kernel``), so the model explained uses the kernel fitted.

Indefinite kernels (``'sigmoid'``, ``'additive_chi2'``, some callables) have
no real feature map with ``phi(x_i)' phi(x_j) = k(x_i, x_j)``. By default
:meth:`PivotedKernelFeatures.fit` refuses (``ValueError``) a Gram matrix the
exact map does not reproduce, rather than explain another model. With
``signed=True`` it builds the signed (pseudo-Euclidean) map instead: from
``K = U S U'``, ``phi(x) = J |S|^-1/2 U' k(X, x)`` with ``J = sign(S)``, so
that ``phi(x_i)' J phi(x_j) = k(x_i, x_j)``; with ``beta = J Phi' alpha`` the
model is ``f = phi(x)' beta`` and its RKHS penalty ``alpha' K alpha`` is
``beta' J beta``, a penalty with the signs ``signs_``. The fitted model is
then a saddle point of that objective (its Hessian is indefinite by
construction), at which influence is the implicit-function derivative and
one Newton step still reaches the refit of a least squares model.
"""

import numpy as np
import scipy.sparse as sp
from scipy import linalg
from sklearn.metrics.pairwise import KERNEL_PARAMS, pairwise_kernels

# Kernels whose gradient in x is implemented (perturbation influence).
# 'laplacian' is not differentiable where a coordinate of x equals a
# landmark's, which includes every training row.
DIFFERENTIABLE_KERNELS = ("linear", "rbf", "poly", "polynomial", "sigmoid")

# The exact map must reproduce the training Gram matrix to this share of its
# largest diagonal entry (times the pivoting tolerance, at least); a positive
# semidefinite matrix always does, since pivoting stops on a residual whose
# entries are bounded by its diagonal.
_REPRODUCTION_SLACK = 100.0


def kernel_params(kernel, gamma=None, degree=3, coef0=1, kernel_params=None):
    """The keyword arguments scikit-learn passes to the kernel.

    As ``KernelRidge._get_kernel``: a callable gets ``kernel_params`` (or
    nothing); a named kernel gets ``gamma``, ``degree`` and ``coef0``, of
    which :func:`kernel_matrix` keeps those the kernel takes
    (``filter_params=True``). ``kernel_params`` is ignored for named kernels,
    as scikit-learn ignores it.
    """
    if callable(kernel):
        return dict(kernel_params or {})
    return {"gamma": gamma, "degree": degree, "coef0": coef0}


def kernel_matrix(kernel, A, B=None, params=None, *, per_pair=True):
    """``k(A, B)`` for a kernel name or callable, as scikit-learn computes it.

    Parameters
    ----------
    kernel : str or callable
        A name in ``sklearn.metrics.pairwise.PAIRWISE_KERNEL_FUNCTIONS``,
        ``'precomputed'`` (``A`` is returned) or a callable.
    A : ndarray of shape (n_a, d)
    B : ndarray of shape (n_b, d), default=None
        ``None`` (or ``A`` itself): the Gram matrix of ``A``.
    params : dict, default=None
        Keyword arguments of the kernel (see ``kernel_params``); those a
        named kernel does not take are dropped, and ``gamma=None`` is the
        kernel's own default, as in ``pairwise_kernels``.
    per_pair : bool, default=True
        How a callable is called. ``True``: once per pair of rows, returning a
        float, as ``pairwise_kernels`` and ``KernelRidge`` call it. ``False``:
        once on the whole matrices, returning the ``(n_a, n_b)`` array, as
        ``sklearn.svm.SVC`` and :class:`~skinfluence.SmoothHingeSVC` call it.

    Returns
    -------
    ndarray of shape (n_a, n_b)
    """
    params = {} if params is None else params
    if kernel == "precomputed":
        return np.asarray(A, dtype=np.float64)
    if callable(kernel) and not per_pair:
        return np.asarray(kernel(A, A if B is None else B, **params), np.float64)
    if B is A:
        B = None  # pairwise_kernels computes one triangle of a Gram matrix
    if kernel == "rbf" and B is None and not sp.issparse(A):
        gamma = params.get("gamma")
        gamma = 1.0 / A.shape[1] if gamma is None else gamma
        return rbf_gram(np.asarray(A, dtype=np.float64), gamma)
    K = pairwise_kernels(A, B, metric=kernel, filter_params=True, **params)
    return np.asarray(K, dtype=np.float64)


def rbf_gram(X, gamma, block=512):
    """The exactly symmetric RBF Gram matrix ``exp(-gamma ||x_i - x_j||^2)``.

    As ``sklearn.metrics.pairwise.rbf_kernel`` (same distance expansion),
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
    kernel : str or callable
        A name in ``sklearn.metrics.pairwise.PAIRWISE_KERNEL_FUNCTIONS``,
        ``'precomputed'``, or a callable (see ``per_pair``).
    gamma : float or None, default=None
        As the estimator has it (``None``: the kernel's default,
        ``1 / n_features`` for 'rbf', 'laplacian', 'poly' and 'sigmoid').
    degree, coef0 : float
        The estimator's kernel parameters ('poly', 'sigmoid').
    n_components : int or None
        Maximum number of landmarks (None: as many as the tolerance needs).
    tol : float
        Relative residual at which pivoting stops.
    kernel_params : dict or None, default=None
        Keyword arguments of a callable kernel (ignored for named kernels, as
        scikit-learn ignores them).
    per_pair : bool, default=False
        Whether a callable is called per pair of rows (``KernelRidge``) or on
        whole matrices (``SVC``, ``SmoothHingeSVC``); see :func:`kernel_matrix`.
    signed : bool, default=False
        For an indefinite Gram matrix (exact map only): build the signed map
        of the module docstring instead of raising ``ValueError``.

    Attributes
    ----------
    params_ : dict
        The kernel's keyword arguments, ``gamma=None`` resolved for the kernels
        whose default depends on the number of features.
    landmarks_ : ndarray of int
        Indices of the training rows chosen as landmarks.
    cholesky_ : ndarray of shape (r, r) or None
        Lower Cholesky factor of the landmarks' Gram matrix (None for the
        signed map).
    signs_ : ndarray of shape (r,) or None
        The signature ``J`` of the signed map; None for the Cholesky map.
    components_ : ndarray of shape (n_landmarks, r) or None
        The signed map's ``U |S|^-1/2 J``: ``phi(x) = k(x, basis) @ components_``.
    """

    def __init__(
        self,
        kernel,
        gamma=None,
        degree=3,
        coef0=0.0,
        n_components=None,
        tol=1e-10,
        *,
        kernel_params=None,
        per_pair=False,
        signed=False,
    ):
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.n_components = n_components
        self.tol = tol
        self.kernel_params = kernel_params
        self.per_pair = per_pair
        self.signed = signed

    def _kernel(self, A, B):
        return kernel_matrix(self.kernel, A, B, self.params_, per_pair=self.per_pair)

    def _resolve_params(self, X):
        params = kernel_params(
            self.kernel, self.gamma, self.degree, self.coef0, self.kernel_params
        )
        defaults_to_width = ("rbf", "laplacian", "poly", "polynomial", "sigmoid")
        if self.kernel in defaults_to_width and params["gamma"] is None:
            params["gamma"] = 1.0 / X.shape[1]
        return params

    def fit(self, X):
        """Choose landmarks among the rows of X (the Gram matrix if precomputed).

        Raises
        ------
        ValueError
            When the Gram matrix of X is not positive semidefinite to the
            pivoting tolerance (no real feature map reproduces it), unless
            ``signed`` (and ``n_components=None``): then the signed map.
        """
        self.params_ = self._resolve_params(X)
        self.signs_ = self.components_ = None
        if self.kernel == "precomputed" or self.n_components is None:
            self._fit_full(X)
        else:
            self._fit_partial(X)
        if self.signs_ is None:
            self.n_components_ = len(self.landmarks_)
        self.basis_ = None if self.kernel == "precomputed" else X[self.landmarks_]
        return self

    def _fit_full(self, X):
        """Blocked LAPACK pivoted Cholesky (dpstrf) of the whole Gram matrix."""
        precomputed = self.kernel == "precomputed"
        K = np.asarray(X, dtype=np.float64) if precomputed else self._kernel(X, X)
        n = K.shape[0]
        limit = n if self.n_components is None else min(self.n_components, n)
        scale = max(np.max(np.abs(np.diag(K))), np.finfo(float).tiny)
        c, piv, rank, _ = linalg.lapack.dpstrf(K, tol=self.tol * scale, lower=1)
        by_tolerance = int(rank) <= limit
        if int(rank) == 0:  # no positive diagonal entry: nothing to pivot on
            self._indefinite(K, float(np.abs(K).max()), scale)
            return
        rank = max(1, min(int(rank), limit))
        self.landmarks_ = np.asarray(piv[:rank] - 1)
        self.cholesky_ = np.tril(c[:rank, :rank])
        if by_tolerance and rank < n:
            worst = self._residual(K, np.asarray(piv[rank:] - 1))
            if worst > _REPRODUCTION_SLACK * max(self.tol, 1e-12) * scale:
                self._indefinite(K, worst, scale)

    def _indefinite(self, K, worst, scale):
        """The signed map of an indefinite ``K`` (``signed=True``), or refuse."""
        if not self.signed or self.n_components is not None:
            self._refuse(K, worst, scale)
        s, U = linalg.eigh(K)
        # Only what is zero to rounding goes: unlike a positive semidefinite
        # kernel's, an indefinite kernel's small eigendirections need not be
        # small away from the training rows.
        keep = np.abs(s) > 10.0 * np.finfo(float).eps * np.abs(s).max()
        s, U = s[keep], U[:, keep]
        self.landmarks_ = np.arange(K.shape[0])
        self.cholesky_ = None
        self.signs_ = np.sign(s)
        self.components_ = U * (self.signs_ / np.sqrt(np.abs(s)))
        self.n_components_ = len(s)

    def _residual(self, K, rest):
        """Largest ``|k(x_i, x_j) - phi(x_i)' phi(x_j)|`` over the other rows.

        Pivoting stopped because no residual diagonal entry is left; for a
        positive semidefinite matrix the off-diagonal residual is then as small,
        for an indefinite one it is not.
        """
        S = self.landmarks_
        F = linalg.solve_triangular(self.cholesky_, K[np.ix_(S, rest)], lower=True)
        worst, block = 0.0, 512
        for i in range(0, len(rest), block):
            rows = rest[i : i + block]
            R = K[np.ix_(rows, rest)] - F[:, i : i + block].T @ F
            worst = max(worst, float(np.abs(R).max()))
        return worst

    def _described(self):
        """The kernel and the parameters it takes, for messages."""
        name = getattr(self.kernel, "__name__", repr(self.kernel))
        taken = (
            KERNEL_PARAMS.get(self.kernel, self.params_)
            if isinstance(self.kernel, str)
            else self.params_
        )
        shown = {k: v for k, v in self.params_.items() if k in taken}
        return f"kernel={name}" + (f" with {shown}" if shown else "")

    def _refuse(self, K, worst, scale):
        lo = float(linalg.eigvalsh(K, subset_by_index=[0, 0])[0])
        raise ValueError(
            f"{self._described()} gives an indefinite Gram matrix "
            f"on the training rows (smallest eigenvalue {lo:.3g}, largest kernel "
            f"value {scale:.3g}; no feature map reproduces it: residual "
            f"{worst:.3g}). The kernel model is then not at a minimum of its "
            "objective and influence functions, which need a positive definite "
            "Hessian, do not apply. Use a positive semidefinite kernel ('rbf', "
            "'laplacian', 'poly', 'linear', 'cosine', 'chi2' on non-negative "
            "data), or parameters for which this one is."
        )

    def _fit_partial(self, X):
        """Greedy pivoted Cholesky that never forms the Gram matrix: O(n r^2)."""
        n = X.shape[0]
        r_max = min(self.n_components, n)
        residual = self._diagonal(X)
        scale = max(np.abs(residual).max(), np.finfo(float).tiny)
        floor = self.tol * scale
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
        if residual.min() < -_REPRODUCTION_SLACK * floor:
            # A negative residual variance: k(x, x) < ||phi(x)||^2.
            raise ValueError(
                f"{self._described()} is not positive "
                f"semidefinite on the training rows (a residual variance of "
                f"{residual.min():.3g}); use a positive semidefinite kernel."
            )
        self.landmarks_ = np.asarray(pivots)
        self.cholesky_ = np.tril(F[self.landmarks_, : len(pivots)])

    def _diagonal(self, X):
        """``k(x_i, x_i)`` for every row."""
        sq = np.einsum("ij,ij->i", X, X)
        p, kernel = self.params_, self.kernel
        if kernel in ("rbf", "laplacian", "chi2"):
            return np.ones(X.shape[0])
        if kernel == "linear":
            return sq
        if kernel in ("poly", "polynomial"):
            return (p["gamma"] * sq + p["coef0"]) ** p["degree"]
        if kernel == "sigmoid":
            return np.tanh(p["gamma"] * sq + p["coef0"])
        return np.array([self._kernel(x[None], x[None])[0, 0] for x in X])

    def _landmark_kernel(self, X):
        """``k(X_S, x)`` for every row, shape (n, r)."""
        if self.kernel == "precomputed":
            return np.asarray(X, dtype=np.float64)[:, self.landmarks_]
        return self._kernel(X, self.basis_)

    def transform(self, X):
        """``phi(X)`` of shape (n, r)."""
        KS = self._landmark_kernel(X)
        if self.components_ is not None:
            return KS @ self.components_
        return linalg.solve_triangular(self.cholesky_, KS.T, lower=True).T

    def coefficients(self, beta):
        """Kernel expansion over the landmarks: ``L^-T beta`` (or ``C beta``)."""
        beta = np.asarray(beta)
        if self.components_ is not None:
            return beta @ self.components_.T
        return linalg.solve_triangular(self.cholesky_, beta.T, lower=True, trans="T").T

    def vjp(self, X, P):
        """``P[..., i, :] @ d phi(x_i) / d x_i`` for every row i.

        Parameters
        ----------
        X : ndarray of shape (n, d)
        P : ndarray of shape (m, n, r)

        Returns
        -------
        ndarray of shape (m, n, d)

        Raises
        ------
        ValueError
            For kernels whose gradient in x is not implemented (any but
            ``DIFFERENTIABLE_KERNELS``: callables, 'laplacian', 'chi2', ...).
        """
        kernel = self.kernel
        if callable(kernel) or kernel not in DIFFERENTIABLE_KERNELS:
            name = getattr(kernel, "__name__", repr(kernel))
            raise ValueError(
                f"perturbation influence needs the kernel's gradient in x, which "
                f"kernel={name} has not here. Supported kernels: "
                f"{', '.join(map(repr, DIFFERENTIABLE_KERNELS))}."
            )
        X = np.asarray(X, dtype=np.float64)
        # U = L^-T P: the weights of each landmark's kernel column.
        m, n, r = P.shape
        U = self.coefficients(P.reshape(m * n, r)).reshape(m, n, -1)
        B, p = self.basis_, self.params_
        if kernel == "linear":
            return U @ B
        if kernel == "rbf":
            KS = self._landmark_kernel(X)  # (n, r)
            A = U * KS[None]
            # d k(x, s)/dx = -2 gamma (x - s) k(x, s)
            return -2 * p["gamma"] * (A.sum(-1)[..., None] * X[None] - A @ B)
        inner = p["gamma"] * X @ B.T + p["coef0"]
        if kernel == "sigmoid":  # d tanh(u) = 1 - tanh(u)^2, times gamma s
            dk = p["gamma"] * (1.0 - np.tanh(inner) ** 2)
        else:
            dk = p["degree"] * p["gamma"] * inner ** (p["degree"] - 1)  # times s
        return (U * dk[None]) @ B
