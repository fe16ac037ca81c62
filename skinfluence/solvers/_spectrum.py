"""Extreme eigenvalues of a Hessian by Lanczos, and the damping they suggest.

Only Hessian-vector products are used (``operator.matmat``), so nothing here
forms ``H`` unless it is small (``method='auto'`` with at most
``_DENSE_LIMIT`` parameters, where a dense ``eigvalsh`` is cheaper than
ARPACK's start-up).

The spectrum is always that of ``H`` restricted to the complement of
``operator.null_space``: the directions along which a multinomial model is
exactly flat carry no curvature any solver ever uses, since every gradient is
orthogonal to them.
"""

import numbers

import numpy as np
from scipy import linalg
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from sklearn.utils import check_random_state

# Up to this many parameters the spectrum comes from a dense eigvalsh.
_DENSE_LIMIT = 100

# auto_damping leaves a Hessian alone when its condition number is below
# 1 / _CONDITION_LIMIT, where the exact solver still factorizes it accurately
# (an undamped answer good to cond * eps is far closer than a damped one), and
# otherwise lifts its smallest eigenvalue to _DAMPING_SHARE of the largest.
_CONDITION_LIMIT = 1e-12
_DAMPING_SHARE = 1e-4


def _null_basis(operator):
    N = getattr(operator, "null_space", None)
    if N is None or N.shape[1] == 0:
        return None
    return np.asarray(N, dtype=np.float64)


def _start_vector(p, N, rng):
    v0 = rng.standard_normal(p)
    if N is not None:
        v0 -= N @ (N.T @ v0)
    return v0


def _lanczos_top(matmat, p, v0, tol, maxiter=None):
    """Largest algebraic eigenvalue of the symmetric map ``matmat`` (ARPACK)."""
    A = LinearOperator(
        (p, p),
        matvec=lambda v: matmat(v.reshape(p, 1))[:, 0],
        matmat=matmat,
        dtype=np.float64,
    )
    try:
        val = eigsh(
            A,
            k=1,
            which="LA",
            v0=v0,
            tol=tol,
            ncv=min(p, 20),
            maxiter=maxiter,
            return_eigenvectors=False,
        )
    except ArpackNoConvergence as exc:  # pragma: no cover - rare
        if len(exc.eigenvalues) == 0:
            raise
        val = exc.eigenvalues
    return float(np.max(val))


def _dense_extremes(H, N):
    if N is not None:
        Q = linalg.null_space(N.T)  # orthonormal basis of the complement
        H = Q.T @ H @ Q
    eig = linalg.eigvalsh(H)
    return float(eig[0]), float(eig[-1])


def extreme_eigenvalues(operator, *, random_state=None, tol=1e-6, method="auto"):
    """Smallest and largest eigenvalue of the Hessian, without a full eigh.

    The largest comes from Lanczos (ARPACK ``eigsh``, ``which='LA'``) on
    ``operator.matmat``; the smallest from Lanczos on the shifted map
    ``lambda_max I - H``, whose largest eigenvalue is ``lambda_max -
    lambda_min``. The shift keeps the smallest eigenvalue accurate in absolute
    terms even when it is zero or negative, where ARPACK's relative stopping
    rule on ``'SA'`` would not converge. ARPACK stops when the Ritz residual is
    below ``tol`` times the Ritz value; the eigenvalue error is about the
    square of that residual over the spectral gap, so ``tol=1e-6`` typically
    gives eigenvalues to 1e-10 of ``lambda_max`` or better. The smallest
    eigenvalue of an ill-conditioned Hessian with a clustered low end is the
    expensive part (hundreds to thousands of Hessian-vector products).

    Parameters
    ----------
    operator : HessianOperator
        Anything with ``matmat``, ``shape`` and ``null_space``
        (``to_dense`` too for the dense method).
    random_state : int, RandomState instance or None
        Seeds the Lanczos start vector.
    tol : float, default=1e-6
        ARPACK's relative tolerance on the Ritz residuals.
    method : {'auto', 'lanczos', 'dense'}, default='auto'
        'auto' uses a dense ``eigvalsh`` for at most 100 parameters and
        Lanczos above.

    Returns
    -------
    lambda_min, lambda_max : float
        Extreme eigenvalues of ``H`` on the complement of its null space.
    """
    p = operator.shape[0]
    N = _null_basis(operator)
    q = p - (0 if N is None else N.shape[1])
    if method not in ("auto", "lanczos", "dense"):
        raise ValueError(f"method must be 'auto', 'lanczos' or 'dense', got {method!r}")
    if method == "dense" or (method == "auto" and p <= _DENSE_LIMIT) or q < 3:
        return _dense_extremes(operator.to_dense(), N)
    return _lanczos_extremes(
        operator.matmat, p, N, check_random_state(random_state), tol
    )


def _lanczos_extremes(matmat, p, N, rng, tol):
    hi = _lanczos_top(matmat, p, _start_vector(p, N, rng), tol)
    sigma = hi if hi > 0 else max(abs(hi), np.finfo(float).tiny)

    def shifted(V):
        # sigma I - H, with the null directions sent to 0 (they belong to
        # neither end of the spectrum that matters).
        out = sigma * V - matmat(V)
        if N is not None:
            out -= sigma * (N @ (N.T @ V))
        return out

    mu = _lanczos_top(shifted, p, _start_vector(p, N, rng), tol)
    return float(sigma - mu), float(hi)


def top_eigenvalue(operator, *, random_state=None, tol=1e-6):
    """Largest eigenvalue of the Hessian by Lanczos (dense when tiny)."""
    p = operator.shape[0]
    if p < 3:
        return _dense_extremes(operator.to_dense(), _null_basis(operator))[1]
    rng = check_random_state(random_state)
    return _lanczos_top(
        operator.matmat, p, _start_vector(p, _null_basis(operator), rng), tol
    )


def damping_from_spectrum(lambda_min, lambda_max):
    """The damping rule behind ``damping='auto'``.

    ``0`` when ``lambda_min > 1e-12 * lambda_max`` (positive definite with a
    condition number below 1e12, where the exact solver's factorization still
    holds 4 of the 16 double digits: far closer than a damped answer);
    otherwise ``max(0, -lambda_min) + 1e-4 * lambda_max``, which lifts the
    smallest eigenvalue of ``H + damping I`` to ``1e-4 * lambda_max``
    (condition number about 1e4). The same rule gives
    the value :class:`ExactSolver` suggests when it finds ``H`` singular.
    """
    scale = max(abs(lambda_max), np.finfo(float).tiny)
    if lambda_min > _CONDITION_LIMIT * scale:
        return 0.0
    return float(max(-lambda_min, 0.0) + _DAMPING_SHARE * scale)


def auto_damping(operator, *, random_state=None):
    """Damping for ``H + damping I`` chosen from the Hessian's spectrum.

    The extreme eigenvalues come from :func:`extreme_eigenvalues` (Lanczos
    above 100 parameters) and the rule is :func:`damping_from_spectrum`: zero
    for a well-conditioned positive definite Hessian, otherwise enough to make
    the smallest eigenvalue 1e-4 of the largest.
    """
    lo, hi = extreme_eigenvalues(operator, random_state=random_state)
    return damping_from_spectrum(lo, hi)


def resolve_damping(damping, operator, random_state=None):
    """A solver's ``damping`` parameter as a float (``'auto'`` computed here)."""
    if isinstance(damping, str):
        if damping != "auto":
            raise ValueError(f"damping must be a float >= 0 or 'auto', got {damping!r}")
        return auto_damping(operator, random_state=random_state)
    if not isinstance(damping, numbers.Real) or not damping >= 0:
        raise ValueError(f"damping must be a float >= 0 or 'auto', got {damping!r}")
    return float(damping)
