"""Newton's method for a kernel smooth-hinge SVM in the representer form.

Minimises, for one binary problem with labels ``y`` in {-1, +1},

    J(alpha, b) = C sum_i w_i l(y_i f_i) + 1/2 alpha' K alpha,   f = K alpha + b,

with ``l`` the smooth hinge (:mod:`skinfluence.objectives.smooth_hinge`) and
``K`` a symmetric Gram matrix. With ``r = w * dl/df`` and ``c = w * d2l/df2``
the gradient is ``(K (C r + alpha), C sum r)`` and the Hessian
``[[K (C diag(c) K + I), C K c], [C c' K, C sum c]]``. Multiplying the first
block row by ``K^-1`` (Chapelle, 2007, "Training a support vector machine in
the primal") turns the Newton system into one that is trivial on the rows with
no curvature (``c_i = 0``: far from the margin) and an ``(m + 1)``-square
system on the m curved rows, so an iteration costs O(n (m + n') + m^3), with
n' the uncurved rows whose coefficient still moves. At low temperature m is
the few rows near the margin.

At low temperature the smooth hinge is nearly the hinge, whose Newton model is
valid only within about ``t`` of the optimum: from far away Newton crawls.
:func:`hinge_start` gives a point that close, the hinge SVM solved by libsvm
on the same Gram matrix, from which Newton converges in a few iterations.
"""

import warnings

import numpy as np
import scipy.sparse.linalg as spla
from scipy.linalg import lapack
from scipy.special import expit

# A row is curved when its curvature term in ``I + C diag(c) K`` exceeds this:
# dropping it perturbs the Newton system by less than rounding.
_CURVED = 1e-13
# The curved-row system is solved by Cholesky (m^3 / 3 flops) up to _CG_MIN
# rows, by conjugate gradients beyond _CHOLESKY_MAX, and in between by CG when
# it should converge for less than a Cholesky factorisation.
_CG_MIN = 500
_CHOLESKY_MAX = 2500


def _terms(f, y, t):
    """Per row: the loss, ``sigma(u)`` and ``sigma(u) sigma(-u)``.

    With ``u = (1 - y f) / t``: ``dl/df = -y sigma(u)`` and ``d2l/df2 =
    sigma(u) sigma(-u) / t``.
    """
    u = (1.0 - y * f) / t
    sig = expit(u)
    return t * np.logaddexp(0.0, u), sig, sig * expit(-u)


def representer_newton(
    K, y, w, C, t, alpha, b, *, fit_intercept, tol, max_iter, cg_rtol=1e-6
):
    """Minimise ``J`` from ``(alpha, b)``; returns ``alpha, b, n_iter, converged``.

    Stops when the Newton decrement ``-grad' step / 2`` falls below
    ``tol * C * sum(w)`` (``tol`` per unit of the mean-form objective).
    """
    f = _rows_dot(K, np.flatnonzero(alpha), alpha[alpha != 0]) + b
    loss, sig, curv = _terms(f, y, t)
    value = C * (w @ loss) + 0.5 * (alpha @ (f - b))
    scale = C * w.sum()
    kmax = max(np.max(np.diag(K)), np.finfo(float).tiny)
    for n_iter in range(1, max_iter + 1):
        r, c = -w * y * sig, w * curv / t
        active = C * kmax * c > _CURVED
        step_a, step_b, df = _newton_step(
            K, alpha, r, c, active, C, fit_intercept, cg_rtol
        )
        # grad' step, with K (C r + alpha)' step_a = (C r + alpha)' K step_a.
        decrement = -((C * r + alpha) @ (df - step_b) + C * r.sum() * step_b) / 2
        if decrement < -tol * scale and cg_rtol > 1e-12 and active.sum() > _CG_MIN:
            cg_rtol *= 1e-3  # CG gave no descent direction: solve tighter
            continue
        if abs(decrement) <= tol * scale:
            # Inside the quadratic region: the full step squares the error.
            return alpha + step_a, b + step_b, n_iter, True
        if decrement < 0:  # no descent direction left
            return alpha, b, n_iter, False
        rate, trial, (loss, sig, curv) = _line_search(
            alpha, b, f, step_a, step_b, df, y, w, C, t, value, decrement
        )
        if not trial < value:  # a step that gains nothing: the rounding floor
            return alpha, b, n_iter, decrement <= np.sqrt(tol) * scale
        alpha, b, f = alpha + rate * step_a, b + rate * step_b, f + rate * df
        value = trial
    return alpha, b, max_iter, False


def _line_search(alpha, b, f, step_a, step_b, df, y, w, C, t, value, decrement):
    """``(rate, J, row terms)`` at the minimum of ``J`` along the step, rate in (0, 1].

    ``J(rate)`` is convex and costs O(n) to evaluate (``f`` moves by
    ``rate * df``), so a safeguarded 1-d Newton on its slope is cheap; it
    takes far longer strides than halving when the smooth hinge is nearly
    kinked and the full Newton step overshoots. Near the optimum the full
    step is taken after one evaluation, whose row terms the next iteration
    reuses.
    """
    yd = y * df
    q1, q2 = step_a @ (f - b), step_a @ (df - step_b)  # the quadratic term
    g0 = -2.0 * decrement  # slope at rate 0

    def at(rate):
        f_r = f + rate * df
        terms = _terms(f_r, y, t)
        J = C * (w @ terms[0]) + 0.5 * (
            (alpha + rate * step_a) @ (f_r - b - rate * step_b)
        )
        slope = q1 + rate * q2 - C * ((w * terms[1]) @ yd)
        curvature = q2 + C * ((w * terms[2]) @ (yd * yd)) / t
        return J, slope, curvature, terms

    rate = 1.0
    J, g, h, terms = at(rate)
    if g > 0:  # the minimum lies short of the full step
        lo, hi, rate = 0.0, 1.0, g0 / (g0 - g)  # secant
        for _ in range(50):
            J, g, h, terms = at(rate)
            if abs(g) <= 1e-3 * -g0 or hi - lo <= 1e-12:
                break
            lo, hi = (lo, rate) if g > 0 else (rate, hi)
            rate = rate - g / h if h > 0 else -1.0
            if not lo < rate < hi:
                rate = 0.5 * (lo + hi)
        else:
            J, g, h, terms = at(rate)
    # Safety net for rounding: backtrack until J decreases enough (Armijo).
    for _ in range(60):
        if J <= value + 1e-4 * rate * g0:
            break
        rate /= 2
        J, g, h, terms = at(rate)
    return rate, J, terms


def _rows_dot(K, idx, v, chunk=128):
    """``K[:, idx] @ v`` for symmetric ``K``, reading only the rows ``idx``."""
    n = K.shape[0]
    out = np.zeros(n)
    if 2 * idx.size >= n:
        full = np.zeros(n)
        full[idx] = v
        return np.dot(K, full, out=out)
    for s in range(0, idx.size, chunk):
        out += v[s : s + chunk] @ K[idx[s : s + chunk]]
    return out


def _newton_step(K, alpha, r, c, active, C, fit_intercept, cg_rtol):
    """Solve the ``K^-1``-premultiplied Newton system (see module docstring).

    On the curved rows, substituting ``step_A = s * z`` with ``s = sqrt(C c_A)``
    makes it the symmetric saddle-point system
    ``[[I + S K_AA S, s], [s', 0]] [z, step_b] = [rhs / s, sum(rhs) - C rhs_b]``
    (``S = diag(s)``), solved through the SPD block ``I + S K_AA S``.
    Returns ``step_a, step_b`` and ``df = K step_a + step_b``.
    """
    step = -(C * r + alpha)  # exact on rows without curvature
    # Uncurved rows whose step is zero to rounding do not couple.
    moving = np.abs(step) > 1e-14 * np.abs(step).max()
    step[~active & ~moving] = 0.0
    A = np.flatnonzero(active)
    N = np.flatnonzero(~active & moving)
    g = _rows_dot(K, N, step[N])  # K step over the uncurved rows
    if A.size == 0:
        return step, 0.0, g
    coupling = g[A]
    s = np.sqrt(C * c[A])
    rhs = -(C * r[A] + alpha[A]) - C * c[A] * coupling
    if not fit_intercept:
        step[A] = s * _spd_solve(K, A, s, (rhs / s)[:, None], cg_rtol)[:, 0]
        step_b = 0.0
    else:
        rhs_b = -r.sum() - c[A] @ coupling
        uv = _spd_solve(K, A, s, np.column_stack([rhs / s, s]), cg_rtol)
        u, v = uv[:, 0], uv[:, 1]
        step_b = (s @ u - (rhs.sum() - C * rhs_b)) / max(s @ v, np.finfo(float).tiny)
        step[A] = s * (u - step_b * v)
    return step, step_b, g + _rows_dot(K, A, step[A]) + step_b


def _submatrix(K, A):
    """``K[np.ix_(A, A)]``, by one flat take where ``K`` is C-contiguous (faster)."""
    if not K.flags.c_contiguous:
        return K[np.ix_(A, A)]
    flat = (A[:, None] * K.shape[1] + A).ravel()
    return K.reshape(-1).take(flat).reshape(len(A), len(A))


def _spd_solve(K, A, s, X, cg_rtol):
    """``(I + diag(s) K_AA diag(s))^-1 X`` for the columns of ``X``.

    By conjugate gradients when the system is large and (by a Gershgorin bound
    on its condition number) well conditioned, as at high temperature; else
    by Cholesky.
    """
    m = len(s)
    K_AA = K if m == K.shape[0] else _submatrix(K, A)
    use_cg = m > _CHOLESKY_MAX
    if _CG_MIN < m <= _CHOLESKY_MAX:
        # Gershgorin: the largest eigenvalue of K_AA is below its largest
        # absolute row sum (summed by blocks, not to copy K_AA whole).
        top = max(np.abs(K_AA[i : i + 256]).sum(1).max() for i in range(0, m, 256))
        cond = 1.0 + s.max() ** 2 * top
        cg_iters = 0.5 * np.sqrt(cond) * np.log(2.0 / cg_rtol) * X.shape[1]
        use_cg = cg_iters < m / 6  # a CG iteration costs 2 m^2, Cholesky m^3 / 3
    if use_cg:
        op = spla.LinearOperator(
            (m, m), dtype=np.float64, matvec=lambda z: z + s * (K_AA @ (s * z))
        )
        # An inexact Newton direction is enough: the line search corrects it.
        return np.column_stack(
            [spla.cg(op, x, rtol=cg_rtol, maxiter=1000)[0] for x in X.T]
        )
    M = K_AA.copy() if K_AA is K else K_AA
    M *= s[:, None]
    M *= s
    M.flat[:: m + 1] += 1.0
    # LAPACK directly (M.T is M, in Fortran order: factorised in place); the
    # scipy.linalg wrappers cost more than the factorisation at small m.
    L, info = lapack.dpotrf(M.T, lower=1, clean=0, overwrite_a=1)
    if info == 0:
        Z, info = lapack.dpotrs(L, X, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(
            "the Newton system is not positive definite: is the kernel positive "
            "semi-definite?"
        )
    return Z


def hinge_start(K, y, w, C):
    """``(alpha, b)`` of the hinge SVM on the Gram matrix ``K`` (libsvm's SMO).

    The smooth hinge at a low temperature ``t`` has its optimum within about
    ``t`` of this one, inside Newton's region of fast convergence. Returns
    None where libsvm cannot start (a negative weight, or a class without
    weight).
    """
    from sklearn.svm import SVC

    keep = w > 0
    if (w < 0).any() or not keep[y > 0].any() or not keep[y < 0].any():
        return None
    # libsvm drops zero-weight rows itself, but its support_ then indexes the
    # remaining rows, not the Gram matrix: drop them here.
    rows = None if keep.all() else np.flatnonzero(keep)
    K_fit = K if rows is None else K[np.ix_(rows, rows)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        svc = SVC(C=C, kernel="precomputed").fit(K_fit, y[keep], sample_weight=w[keep])
    alpha = np.zeros(len(y))
    support = svc.support_ if rows is None else rows[svc.support_]
    # classes_ is [-1, 1]: the decision function is positive for y = +1.
    alpha[support] = svc.dual_coef_[0]
    return alpha, float(svc.intercept_[0])
