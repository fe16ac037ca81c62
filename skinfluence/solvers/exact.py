"""Exact inverse-Hessian solves: one Cholesky factorization, reused."""

import numpy as np
from scipy import linalg

from ..exceptions import SingularHessianError
from ._spectrum import damping_from_spectrum, resolve_damping

# Below this reciprocal condition number the Hessian is numerically singular:
# influence values would be dominated by rounding error.
_RCOND_LIMIT = 1e-12


def _round_up(x, digits=2):
    """``x`` rounded up to ``digits`` significant digits (a damping that suffices)."""
    if x <= 0:
        return 0.0
    step = 10.0 ** (np.floor(np.log10(x)) - digits + 1)
    return float(f"{np.ceil(x / step * (1 - 1e-12)) * step:.{digits}g}")


def _spectrum_advice(H, damping=0.0):
    """Extreme eigenvalues of the factorized matrix and the damping to use.

    The suggestion is :func:`damping_from_spectrum` on the undamped spectrum
    (the rule of ``damping='auto'``), rounded up to two significant digits.
    """
    eig = linalg.eigvalsh(H)
    lo, hi = float(eig[0]), float(eig[-1])
    suggestion = damping_from_spectrum(lo - damping, hi - damping)
    if suggestion <= damping:  # the rule sees no problem, Cholesky did
        suggestion = damping + max(-lo, 0.0) + 1e-4 * max(abs(hi), np.finfo(float).tiny)
    return lo, hi, _round_up(suggestion)


class ExactSolver:
    """Cholesky factorization of ``H + damping * I``.

    Directions along which the objective is exactly flat (the redundant
    intercepts of a multinomial model) are given a unit curvature: every
    gradient is orthogonal to them, so this returns the minimum-norm solution
    ``H^+ b`` exactly rather than relying on rounding luck.

    Parameters
    ----------
    damping : float or 'auto', default=0.0
        Added to the diagonal (Koh & Liang's ``H + lambda I``). ``'auto'``
        picks it from the Hessian's extreme eigenvalues
        (:func:`~skinfluence.solvers.auto_damping`).

    Attributes
    ----------
    damping_ : float
        The damping used (``'auto'`` resolved).
    rcond_ : float
        Estimated reciprocal condition number of the factorized matrix.
    """

    def __init__(self, damping=0.0):
        self.damping = damping

    def fit(self, operator):
        self._inverse = None
        damping = resolve_damping(self.damping, operator)
        H = operator.to_dense()
        p = H.shape[0]
        if damping:
            H[np.diag_indices(p)] += damping
        N = operator.null_space
        if N is not None and N.shape[1]:
            scale = max(np.trace(H) / p, np.finfo(float).tiny)
            H += scale * (N @ N.T)
        try:
            factor = linalg.cho_factor(H, lower=True, check_finite=False)
            anorm = np.abs(H).sum(axis=0).max()
            rcond, info = linalg.lapack.dpocon(factor[0], anorm, uplo="L")
            singular = rcond < _RCOND_LIMIT
        except linalg.LinAlgError:
            singular = True
        if singular:
            lo, hi, suggestion = _spectrum_advice(H, damping)
            after = " after damping" if damping else ""
            raise SingularHessianError(
                f"The Hessian of the training objective is singular or indefinite "
                f"(eigenvalues from {lo:.3g} to {hi:.3g}{after}), "
                "so influence is not defined: typical causes are duplicated or "
                "constant features, more features than rows, or no regularization "
                "on separable data. Add a penalty to the model, or pass "
                f"damping={suggestion} (1e-4 of the largest eigenvalue) to the "
                "explainer."
            )
        self.damping_ = damping
        self.factor_ = factor
        self.rcond_ = float(rcond)
        self.n_params_ = p
        return self

    def solve(self, B):
        """``H^-1 B`` for B of shape (n_params,) or (n_params, m)."""
        return linalg.cho_solve(self.factor_, B, check_finite=False)

    def inverse(self):
        """The dense inverse, shape (n_params, n_params), formed once per fit."""
        if getattr(self, "_inverse", None) is None:
            # From the factor directly (LAPACK potri): a third of the flops of
            # solving for the identity.
            inv, info = linalg.lapack.dpotri(self.factor_[0], lower=True)
            if info:
                raise SingularHessianError(f"dpotri failed with info={info}")
            inv = np.tril(inv)
            inv += np.tril(inv, -1).T
            self._inverse = inv
        return self._inverse
