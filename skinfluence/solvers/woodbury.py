"""Exact solves for wide data by the Woodbury identity.

For a linear-output model the mean-form Hessian is ``H = diag(lam) + U' U``
(see :mod:`skinfluence.objectives._base`), where ``U`` has one row per
training row and factor of its curvature: with ``D_i = C_i C_i'``, row
``(i, l)`` is ``sqrt(w_i / W) * (C_i[:, l] kron xt_i)``. ``U`` has at most
``m = n K`` rows and is as sparse as ``X``. When ``m`` is much smaller than
the number of parameters ``p`` (text, genomics), ``H^-1`` needs only the
``(m, m)`` matrix ``S = I + U_P diag(lam_P)^-1 U_P'`` over the penalized
coordinates ``P``, factored once.

Coordinates with no penalty (the intercepts, ``Q``) are bordered: eliminating
``P`` leaves the small Schur complement ``S_Q = U_Q' S^-1 U_Q`` (push-through:
``I - U_P (lam_P + U_P'U_P)^-1 U_P' = S^-1``, so it is formed without
cancellation). For ``b = [b_P, b_Q]``::

    t   = U_P lam_P^-1 b_P
    x_Q = S_Q^-1 (b_Q - U_Q' S^-1 t)
    x_P = lam_P^-1 (b_P - U_P' S^-1 (t + U_Q x_Q))

Cost: forming ``S`` is one sparse product ``U_P U_P'`` (chunked), its
Cholesky ``m^3 / 3`` flops; each block of right-hand sides then costs two
sparse products with ``U_P`` and two triangular solves.

Accuracy: the last step subtracts from ``lam_P^-1 b_P`` a term of about its
size to leave ``x_P``, which for a gradient (in the span of the data) is up
to ``||S|| = 1 + ||U_P diag(lam_P)^-1/2||^2`` times smaller: the curvature
of the data against the penalty, ``S >= I`` being at least as large as its
condition number. Solves lose that factor to rounding, a relative error of
about ``eps ||S||``, where the Cholesky of the dense ``H`` has a residual of
rounding size (a wide Ridge with ``alpha=1e-3`` on columns scaled from 1e-3
to 1e3: relative residual 3e-4 against 4e-15, ``eps ||S||_1 = 4e-4``).
"""

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from scipy import linalg
from sklearn import get_config
from sklearn.base import BaseEstimator

from ..exceptions import SingularHessianError, WoodburyNotApplicableError
from ..utils._chunks import check_result_size, physical_memory_bytes
from ..utils._warn import caller_stacklevel
from ._spectrum import resolve_damping

# solver='auto' uses Woodbury up to this many rows of U (n_samples * K): S is
# then 128 MB and its Cholesky 2e10 flops, cheap enough to beat CG whatever
# the conditioning (its accuracy is another matter: see `_ERROR_LIMIT`). Far
# above it (a cubic cost in the rows) CG wins on well-conditioned problems
# (benchmarks/bench_sparse.py --woodbury): Woodbury is then worth it only for
# ill-conditioned Hessians: ask for it.
AUTO_WOODBURY_MAX_ROWS = 4000
# ... and only while S takes at most this share of physical memory.
_AUTO_MEMORY_SHARE = 0.25
# Curvature factors below this share of the largest are dropped (the exactly
# flat direction of each multinomial row, which rounding leaves at ~1e-17).
_DROP_SHARE = 1e-14
# WoodburySolver warns when eps * ||S||_1, the relative error to expect of a
# solve, is above this. Measured relative residuals ||H x - b|| / ||b|| of
# gradients were within a factor 3 of it, from 5e-15 (bag of words, eps
# ||S||_1 = 2e-14) through 2e-6 (Ridge alpha=1e-6, 3e-6) to 1.5e-3 (2000 x 40,
# columns scaled from 1e-3 to 1e3, 1.5e-3).
_ERROR_LIMIT = 1e-6


def _coefficient_mask(objective):
    """True on the coefficients, False on the intercepts (parameter layout)."""
    mask = np.ones((objective.n_outputs, objective.block_size), dtype=bool)
    if objective.fit_intercept:
        mask[:, -1] = False
    return mask.ravel()


def _linear_output(objective):
    """Whether the objective has the per-parameter penalty and block layout."""
    return all(hasattr(objective, a) for a in ("penalty", "block_size"))


def woodbury_applicable(objective, n_samples, damping=0.0):
    """Why :class:`WoodburySolver` cannot solve this problem, or None if it can.

    It needs a linear-output objective (one with a per-parameter ``penalty``
    and ``block_size``, as every estimator in :mod:`skinfluence.adapters`
    has) whose penalty plus ``damping`` is positive on every coefficient
    (intercepts may be unpenalized).
    """
    if not _linear_output(objective):
        return (
            f"solver='woodbury' is for linear-output models (scikit-learn linear "
            f"models, GLMs, kernel models); got a {type(objective).__name__}."
        )
    lam = objective.penalty + (damping if isinstance(damping, numbers.Real) else 0)
    bad = _coefficient_mask(objective) & ~(lam > 0)
    if bad.any():
        return (
            f"solver='woodbury' needs an L2 penalty on every coefficient, but "
            f"{int(bad.sum())} of them are unpenalized (e.g. LinearRegression, or "
            "C=inf / alpha=0). Use solver='cg' or 'exact', add a penalty, or pass "
            "damping > 0."
        )
    return None


def prefers_woodbury(objective, n_samples, n_params):
    """The ``solver='auto'`` rule for Woodbury (see :func:`choose_solver`)."""
    if objective is None or n_samples is None:
        return False
    if woodbury_applicable(objective, n_samples) is not None:
        return False
    m = n_samples * objective.n_outputs
    fits = 8.0 * m * m <= _AUTO_MEMORY_SHARE * physical_memory_bytes()
    return m <= min(AUTO_WOODBURY_MAX_ROWS, n_params) and fits


def _scaled_rows(X, rows, C, objective, inv_sqrt, int_in_p):
    """``U_P diag(lam_P)^-1/2``: sparse (CSR) for sparse X, else dense."""
    K = objective.n_outputs
    n = X.shape[0]
    Xr = X if (rows.size == n and np.array_equal(rows, np.arange(n))) else X[rows]
    blocks = []
    s = inv_sqrt.reshape(K, objective.block_size)
    d = objective.n_features
    for k in range(K):
        if sp.issparse(Xr):
            blocks.append(sp.diags(C[:, k]) @ Xr @ sp.diags(s[k, :d]))
        else:
            blocks.append(C[:, k, None] * np.asarray(Xr) * s[k, None, :d])
        if int_in_p[k]:
            col = (C[:, k] * s[k, d])[:, None]
            blocks.append(sp.csr_matrix(col) if sp.issparse(Xr) else col)
    if sp.issparse(Xr):
        return sp.hstack(blocks, format="csr")
    return np.hstack(blocks) if len(blocks) > 1 else blocks[0]


def _gram_plus_identity(A):
    """``I + A A'`` as a dense (m, m) array, in row chunks for sparse A."""
    m = A.shape[0]
    if not sp.issparse(A):
        S = A @ A.T
    else:
        S = np.zeros((m, m))
        AT = A.T.tocsr()
        # A chunk's product is held in sparse form (about 16 bytes an entry).
        step = int(max(1, get_config()["working_memory"] * 2**20 // (16 * m)))
        for a in range(0, m, step):
            b = min(a + step, m)
            (A[a:b] @ AT).toarray(out=S[a:b])
    S[np.diag_indices(m)] += 1.0
    return S


class WoodburySolver(BaseEstimator):
    """Exact ``(H + damping I)^-1 B`` through an ``(n K, n K)`` factorization.

    For wide data (``n_samples * n_outputs`` much smaller than ``n_params``,
    e.g. bag-of-words text): ``H = diag(lam) + U' U`` with ``U`` as sparse as
    ``X`` (see the module docstring), so the Woodbury identity inverts ``H``
    through ``S = I + U diag(lam)^-1 U'``, one Cholesky at ``fit``. A solve
    loses ``||S||`` (the curvature of the data against the penalty, at least
    the condition number of ``S``) to rounding, where the Cholesky of the
    dense ``H`` by :class:`ExactSolver` keeps the residual at rounding size;
    ``fit`` warns with a ``LinAlgWarning`` when
    ``expected_error_`` is above 1e-6 (a small penalty, or columns on very
    different scales), naming ``solver='exact'``. Unpenalized intercepts
    are handled exactly by bordering; the redundant directions of a
    multinomial model get a unit curvature, as in :class:`ExactSolver`.

    Memory: ``8 m^2`` bytes for ``S`` (``m = n_samples * n_outputs``; 3.2 GB
    at ``m = 20,000``), plus a copy of ``X`` scaled.

    Parameters
    ----------
    damping : float or 'auto', default=0.0
        Added to the diagonal of ``H``. ``'auto'`` picks it from the extreme
        eigenvalues (:func:`~skinfluence.solvers.auto_damping`).

    Attributes
    ----------
    damping_ : float
        The damping used (``'auto'`` resolved).
    n_rows_ : int
        Rows of ``U`` (size of the factored system).
    expected_error_ : float
        ``eps * ||S||_1``: the relative error, ``||x - H^-1 b|| / ||H^-1 b||``
        and ``||H x - b|| / ||b||``, to expect of a solve to rounding (within
        a factor 3 of the measured residuals, see the module docstring).
    n_params_ : int

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skinfluence import InfluenceExplainer
    >>> X = sp.random(60, 400, density=0.05, format="csr", random_state=0)
    >>> y = np.arange(60) % 2
    >>> ex = InfluenceExplainer(LogisticRegression(), solver="woodbury").fit(X, y)
    >>> ex.solver_.n_rows_, ex.n_params_
    (60, 401)
    """

    #: Solves exact to rounding; ``inverse`` forms ``H^-1`` (see ``_base``).
    exact = True

    def __init__(self, damping=0.0):
        self.damping = damping

    def fit(self, operator):
        obj = operator.objective
        if not _linear_output(obj):  # e.g. a torch network
            raise WoodburyNotApplicableError(woodbury_applicable(obj, 0))
        X = operator.X
        if not (sp.issparse(X) or isinstance(X, np.ndarray)):
            raise WoodburyNotApplicableError(
                f"solver='woodbury' needs X as a numpy array or scipy sparse "
                f"matrix, got {type(X).__name__}; use solver='cg'."
            )
        damping = resolve_damping(self.damping, operator)
        reason = woodbury_applicable(obj, X.shape[0], damping)
        if reason is not None:
            raise WoodburyNotApplicableError(reason)
        factors = getattr(operator, "curvature_factors", None)
        if factors is None:
            raise WoodburyNotApplicableError(
                f"solver='woodbury' needs an operator offering curvature_factors "
                f"(low-rank curvature); {type(operator).__name__} does not."
            )
        if sp.issparse(X):
            X = X.tocsr()
        lam = obj.penalty + damping
        p, K, b = obj.n_params, obj.n_outputs, obj.block_size
        in_p = lam > 0
        try:
            rows, C = factors(drop_share=_DROP_SHARE)
        except ValueError as exc:
            raise WoodburyNotApplicableError(
                "solver='woodbury' needs a convex loss (positive semidefinite "
                "curvature at every training row); this model has negative "
                "curvature. Use solver='exact' or 'cg'."
            ) from exc
        N = operator.null_space
        if N is not None and N.shape[1]:
            # ExactSolver's unit curvature scale * N N': r extra rows of U.
            sq = X.multiply(X).sum(axis=1) if sp.issparse(X) else np.square(X).sum(1)
            xt2 = np.asarray(sq).ravel()[rows] + obj.fit_intercept
            scale = max((lam.sum() + np.sum(C**2 * xt2[:, None])) / p, 1e-300)
            extra = np.sqrt(scale) * np.asarray(N, dtype=np.float64).T  # (r, p)
        else:
            extra = np.zeros((0, p))
        inv_sqrt = np.zeros(p)
        inv_sqrt[in_p] = 1.0 / np.sqrt(lam[in_p])
        int_in_p = in_p.reshape(K, b)[:, -1] if obj.fit_intercept else np.zeros(K)
        A = _scaled_rows(X, rows, C, obj, inv_sqrt, int_in_p)
        if extra.shape[0]:
            tail = (extra * inv_sqrt)[:, in_p]
            if sp.issparse(A):
                A = sp.vstack([A, sp.csr_matrix(tail)], format="csr")
            else:
                A = np.vstack([A, tail])
        m = A.shape[0]
        check_result_size(
            (m, m),
            "solver='woodbury' factors a matrix (n_samples * n_outputs squared)",
            "Use solver='cg'.",
        )
        S = _gram_plus_identity(A)
        # S >= I, so ||S|| bounds its condition number too.
        expected_error = np.finfo(float).eps * np.abs(S).sum(axis=0).max()
        L = linalg.cholesky(S, lower=True, overwrite_a=True, check_finite=False)
        q = np.flatnonzero(~in_p)  # unpenalized intercepts
        UQ = np.zeros((m, q.size))
        if q.size:
            ks = q // b
            UQ[: C.shape[0]] = C[:, ks]
            UQ[C.shape[0] :] = extra[:, q]
            T = linalg.solve_triangular(L, UQ, lower=True, check_finite=False)
            SQ = T.T @ T
            try:
                self._schur = linalg.cho_factor(SQ, lower=True, check_finite=False)
                singular = np.linalg.cond(SQ) > 1e12
            except linalg.LinAlgError:
                singular = True
            if singular:
                raise SingularHessianError(
                    "The Hessian is singular along the unpenalized intercepts (no "
                    "curvature reaches them: e.g. every row has zero weight or a "
                    "saturated prediction). Pass damping > 0 to the explainer."
                )
            self._SinvUQ = linalg.solve_triangular(
                L, T, lower=True, trans="T", check_finite=False
            )
        self.damping_ = damping
        self._A, self._L, self._UQ = A, L, UQ
        self._inv_sqrt, self._in_p, self._q = inv_sqrt[in_p], in_p, q
        self.n_rows_ = m
        self.n_params_ = p
        self.expected_error_ = float(expected_error)
        if self.expected_error_ > _ERROR_LIMIT:
            ratio = self.expected_error_ / np.finfo(float).eps
            warnings.warn(
                f"WoodburySolver's solves are accurate to about "
                f"{self.expected_error_:.1e} (relative error): the data's "
                f"curvature is up to about {ratio:.2g} "
                "times the L2 penalty (a small penalty, or columns on very "
                "different scales), and the Woodbury identity loses that factor "
                "to rounding. Use solver='exact' (its Cholesky of the Hessian "
                "leaves a residual of rounding size).",
                linalg.LinAlgWarning,
                stacklevel=caller_stacklevel(),
            )
        return self

    def solve(self, B):
        """``H^-1 B`` for B of shape (n_params,) or (n_params, m)."""
        B = np.asarray(B, dtype=np.float64)
        vector = B.ndim == 1
        B = B.reshape(self.n_params_, -1)
        L, A = self._L, self._A
        BP = B[self._in_p]
        t = np.asarray(A @ (self._inv_sqrt[:, None] * BP))
        u = linalg.solve_triangular(L, t, lower=True, check_finite=False)
        s = linalg.solve_triangular(L, u, lower=True, trans="T", check_finite=False)
        X = np.empty_like(B)
        if self._q.size:
            xQ = linalg.cho_solve(
                self._schur, B[self._q] - self._UQ.T @ s, check_finite=False
            )
            s += self._SinvUQ @ xQ
            X[self._q] = xQ
        X[self._in_p] = self._inv_sqrt[:, None] * (
            self._inv_sqrt[:, None] * BP - np.asarray(A.T @ s)
        )
        return X[:, 0] if vector else X

    def inverse(self):
        """The dense inverse, shape (n_params, n_params), by solving for ``I``."""
        check_result_size(
            (self.n_params_, self.n_params_),
            "The dense inverse Hessian",
            "Use method='influence'.",
        )
        return self.solve(np.eye(self.n_params_))
