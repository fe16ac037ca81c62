"""Exact inverse-Hessian solves: one factorization ``H = L L'``, reused.

A Cholesky factorization of the dense ``H`` serves well-conditioned problems.
Its accuracy is ``cond(H)`` times the rounding error, and ``H`` of a least
squares model is the Gram matrix of its design, ``cond(H) = cond(X)^2``: a
design that least squares solvers handle (``cond(X) ~ 1e6``) makes ``H``
numerically singular for Cholesky. Where the operator offers a square root
``M' M = H`` (``hessian_square_root``: one-output dense objectives with a
convex loss), such problems are factorized instead by a QR decomposition of
``M``, ``H = R' R``, accurate to ``cond(X)`` times the rounding error; only a
Hessian singular to rounding is then refused.
"""

import itertools

import numpy as np
from scipy import linalg

from ..exceptions import SingularHessianError
from ..utils._compat import triangular_rcond
from ._spectrum import damping_from_spectrum, resolve_damping

# Below this reciprocal condition number Cholesky of H loses more than 12 of
# the 16 double digits: influence values would be dominated by rounding error.
_RCOND_LIMIT = 1e-12

# The same limit on the factor R of the QR path (cond(H) = cond(R)^2): below
# it the design is rank-deficient to rounding, e.g. a duplicated column.
_QR_RCOND_LIMIT = 1e-12


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
    return eig, _round_up(suggestion)


def _damping_effect(eig, extra):
    """What adding ``extra`` to every eigenvalue does to influence, in words.

    Influence along an eigendirection of curvature ``c`` is scaled by
    ``c / (c + extra)`` (a quadratic form in ``H^-1``): say how many
    directions keep it to 1%, how far the others move, which curve down (no
    minimum there) and which are flat to rounding (their influence is
    undefined; damping decides it).
    """
    p, hi = len(eig), float(eig[-1])
    rounding = p * np.finfo(float).eps * max(abs(hi), np.finfo(float).tiny)
    down = eig < -rounding
    flat = ~down & (eig <= rounding)
    kept = eig >= 100.0 * extra
    parts = [
        f"it adds {extra:.3g} to every eigenvalue, scaling the influence carried "
        f"by a direction of curvature c by c / (c + {extra:.3g}): {kept.sum()} of "
        f"the {p} directions (curvature >= {100.0 * extra:.3g}) change by under 1%"
    ]
    middle = eig[~kept & ~flat & ~down]
    if middle.size:
        c = float(middle[0])
        parts.append(
            f"{middle.size} (curvature {c:.3g} to {float(middle[-1]):.3g}) shrink "
            f"by a factor down to {c / (c + extra):.3g}"
        )
    if down.any():
        parts.append(
            f"{down.sum()} (curvature {float(eig[0]):.3g} to "
            f"{float(eig[down][-1]):.3g}) curve down, where a minimum has none "
            "(a fit short of it, or a non-convex loss): the damping turns them "
            "up and sets their influence"
        )
    if flat.any():
        parts.append(
            f"{flat.sum()} (curvature {float(eig[flat][0]):.3g}) are flat to "
            "rounding: their influence is not defined, and the damping alone "
            "sets it"
        )
    return "; ".join(parts)


def _one_norm(H, block=1024):
    """``max_j sum_i |H_ij|`` of a symmetric ``H``, by row blocks (no |H| copy)."""
    return max(
        float(np.abs(H[i : i + block]).sum(axis=1).max())
        for i in range(0, H.shape[0], block)
    )


def _cholesky(H):
    """``(factor, rcond)`` of ``H``, or ``(None, 0.0)`` when it is not positive.

    Factorizes in place: ``H`` is overwritten either way.
    """
    anorm = _one_norm(H)
    try:
        factor = linalg.cho_factor(H, lower=True, overwrite_a=True, check_finite=False)
    except linalg.LinAlgError:
        return None, 0.0
    rcond, _ = linalg.lapack.dpocon(factor[0], anorm, uplo="L")
    return factor, float(rcond)


def _qr_factor(operator, damping, shift, p):
    """``((L, True), rcond(L))`` with ``H = L L'`` from a QR of ``M``, or None.

    ``M`` is the operator's ``hessian_square_root`` (None: no such path), read
    block by block into the triangular factor ``R`` of ``[R; block]``, then
    rows ``sqrt(damping) I`` and ``sqrt(scale) N'`` for what :meth:`fit` adds.
    ``L = R'`` with a positive diagonal: the Cholesky factor of ``H`` itself.
    """
    square_root = getattr(operator, "hessian_square_root", None)
    blocks = None if square_root is None else square_root()
    if blocks is None:
        return None
    extra = []
    if damping:
        extra.append(np.sqrt(damping) * np.eye(p))
    if shift is not None:
        scale, N = shift
        extra.append(np.sqrt(scale) * N.T)
    R = np.zeros((0, p))
    for block in itertools.chain(blocks, [np.vstack(extra)] if extra else []):
        if block is None:
            return None
        R = linalg.qr(np.vstack([R, block]), mode="r", check_finite=False)[0][:p]
    if R.shape[0] < p:  # fewer rows than parameters: singular
        return None
    R *= np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]
    return (np.asfortranarray(R.T), True), triangular_rcond(R)


def _dense(operator, damping):
    """``(H + damping I + scale N N', (scale, N) or None)``: what is factorized.

    ``N``: the operator's exactly flat directions, given the mean curvature.
    """
    H = operator.to_dense()
    p = H.shape[0]
    if damping:
        H[np.diag_indices(p)] += damping
    N, shift = operator.null_space, None
    if N is not None and N.shape[1]:
        scale = max(np.trace(H) / p, np.finfo(float).tiny)
        H += scale * (N @ N.T)
        shift = (scale, N)
    return H, shift


class ExactSolver:
    """Factorization ``H + damping * I = L L'``: Cholesky, or QR where needed.

    Directions along which the objective is exactly flat (the redundant
    intercepts of a multinomial model) are given a unit curvature: every
    gradient is orthogonal to them, so this returns the minimum-norm solution
    ``H^+ b`` exactly rather than relying on rounding luck.

    Cholesky of the dense Hessian is used when its reciprocal condition number
    is at least ``1e-12``. Below that, when the operator offers
    ``hessian_square_root`` (a matrix ``M`` with ``M' M = H``: ill-conditioned
    least squares), ``L`` comes from a QR decomposition of ``M``, accurate to
    ``cond(M) = sqrt(cond(H))`` times the rounding error; only then is a
    Hessian whose factor has a reciprocal condition number below ``1e-12``
    refused, as singular to rounding. An indefinite Hessian is refused too,
    unless the operator says it is indefinite by construction.

    Parameters
    ----------
    damping : float or 'auto', default=0.0
        Added to the diagonal (Koh & Liang's ``H + lambda I``). ``'auto'``: none
        when the undamped Hessian factorizes as described above, else picked
        from its extreme eigenvalues (:func:`~skinfluence.solvers.auto_damping`).

    Attributes
    ----------
    damping_ : float
        The damping used (``'auto'`` resolved).
    factor_ : tuple (ndarray of shape (n_params, n_params), True) or None
        The lower triangular ``L`` with ``H + damping I = L L'``, as
        ``scipy.linalg.cho_factor`` returns it (only the lower triangle
        is meaningful); None for an indefinite Hessian.
    method_ : {'cholesky', 'qr', 'eigh'}
        How ``H`` was factorized. ``'eigh'``: an eigendecomposition, only for
        an operator whose ``indefinite_by_construction()`` is true (the saddle
        point of an indefinite kernel's KernelRidge) and only while
        ``min |eigenvalue| >= 1e-12 max |eigenvalue|``.
    rcond_ : float
        Estimated reciprocal condition number of the factorized matrix.
    """

    #: Solves exact to rounding; ``inverse`` forms ``H^-1`` (see ``_base``).
    exact = True

    def __init__(self, damping=0.0):
        self.damping = damping

    def fit(self, operator):
        self._inverse = None
        if isinstance(self.damping, str) and self.damping == "auto":
            # None wherever the undamped factorization is accurate (the QR
            # path included): damping would only bias an answer it gets right.
            try:
                return self._factorize(operator, 0.0)
            except SingularHessianError:
                pass
        return self._factorize(operator, resolve_damping(self.damping, operator))

    def _factorize(self, operator, damping):
        H, shift = _dense(operator, damping)
        p = H.shape[0]
        factor, rcond = _cholesky(H)  # H is the factor's storage now
        method, self._eigen = "cholesky", None
        if factor is None or rcond < _RCOND_LIMIT:
            H, _ = _dense(operator, damping)  # the rare paths below read it
            accurate = _qr_factor(operator, damping, shift, p)
            saddle = getattr(operator, "indefinite_by_construction", None)
            if accurate is not None and accurate[1] >= _QR_RCOND_LIMIT:
                (factor, rcond_factor), method = accurate, "qr"
                rcond = rcond_factor**2
            elif saddle is not None and saddle():
                factor, method = None, "eigh"
                self._eigen, rcond = self._eigendecomposition(H, damping)
            else:
                self._refuse(H, damping)
        self.damping_ = damping
        self.factor_ = factor
        self.method_ = method
        self.rcond_ = float(rcond)
        self.n_params_ = p
        return self

    def _eigendecomposition(self, H, damping):
        """``((eigenvalues, eigenvectors), rcond)`` of a symmetric indefinite H."""
        e, V = linalg.eigh(H)
        rcond = float(np.abs(e).min() / max(np.abs(e).max(), np.finfo(float).tiny))
        if rcond < _RCOND_LIMIT:
            self._refuse(H, damping)
        return (e, V), rcond

    def _refuse(self, H, damping):
        eig, suggestion = _spectrum_advice(H, damping)
        lo, hi = float(eig[0]), float(eig[-1])
        after = " after damping" if damping else ""
        effect = _damping_effect(eig - damping, suggestion)
        raise SingularHessianError(
            f"The Hessian of the training objective is singular or indefinite "
            f"(eigenvalues from {lo:.3g} to {hi:.3g}{after}), "
            "so influence is not defined: typical causes are duplicated or "
            "constant features, more features than rows, or no regularization "
            "on separable data. Add a penalty to the model, or pass "
            f"damping={suggestion} to the explainer: {effect}."
        )

    def solve(self, B):
        """``H^-1 B`` for B of shape (n_params,) or (n_params, m)."""
        if self._eigen is not None:
            e, V = self._eigen
            B = np.asarray(B, dtype=np.float64)
            return V @ ((V.T @ B) / (e if B.ndim == 1 else e[:, None]))
        return linalg.cho_solve(self.factor_, B, check_finite=False)

    def inverse(self):
        """The dense inverse, shape (n_params, n_params), formed once per fit."""
        if getattr(self, "_inverse", None) is None and self._eigen is not None:
            e, V = self._eigen
            self._inverse = (V / e) @ V.T
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
