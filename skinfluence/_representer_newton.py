"""Newton's method for a kernel smooth-hinge SVM in the representer form.

Minimises, for one binary problem with labels ``y`` in {-1, +1},

    J(alpha, b) = C sum_i w_i l(y_i f_i) + 1/2 alpha' K alpha,   f = K alpha + b,

with ``l`` the smooth hinge (:mod:`skinfluence.objectives.smooth_hinge`). With
``r = w * dl/df`` and ``c = w * d2l/df2`` the gradient is ``(K (C r + alpha),
C sum r)`` and the Hessian ``[[K (C diag(c) K + I), C K c], [C c' K, C sum c]]``.
Multiplying the first block row by ``K^-1`` (Chapelle, 2007, "Training a
support vector machine in the primal") turns the Newton system into one that
is trivial on the rows with no curvature (``c_i = 0``: far from the margin)
and an ``(m + 1)``-square system on the m curved rows, so an iteration costs
O(n^2 + m^3) instead of O(n^3). At low temperature m is the few rows near the
margin.
"""

import numpy as np
import scipy.sparse.linalg as spla
from scipy import linalg
from scipy.special import expit


def _loss_terms(f, y, w, t):
    u = (1.0 - y * f) / t
    loss = t * np.logaddexp(0.0, u)
    sig = expit(u)
    return loss, -w * y * sig, w * sig * expit(-u) / t


def _objective(alpha, b, f, y, w, C, t):
    loss, _, _ = _loss_terms(f, y, w, t)
    return C * np.dot(w, loss) + 0.5 * np.dot(alpha, f - b)


def representer_newton(
    K, y, w, C, t, alpha, b, *, fit_intercept, tol, max_iter, cg_rtol=1e-6
):
    """Minimise ``J`` from ``(alpha, b)``; returns ``alpha, b, n_iter, converged``.

    Stops when the Newton decrement ``-grad' step / 2`` falls below
    ``tol * C * sum(w)`` (``tol`` per unit of the mean-form objective).
    """
    f = K @ alpha + b
    value = _objective(alpha, b, f, y, w, C, t)
    scale = C * w.sum()
    for n_iter in range(1, max_iter + 1):
        _, r, c = _loss_terms(f, y, w, t)
        top = c.max()
        active = c > 1e-12 * top if top > 0 else np.zeros_like(c, dtype=bool)
        step_a, step_b = _newton_step(K, alpha, r, c, active, C, fit_intercept, cg_rtol)
        grad_a = K @ (C * r + alpha)
        decrement = -(grad_a @ step_a + C * r.sum() * step_b) / 2
        if decrement <= tol * scale:
            # Inside the quadratic region: the full step squares the error.
            return alpha + step_a, b + step_b, n_iter, True
        df = K @ step_a + step_b
        rate = 1.0
        for _ in range(50):
            trial_alpha, trial_b = alpha + rate * step_a, b + rate * step_b
            trial_f = f + rate * df
            trial = _objective(trial_alpha, trial_b, trial_f, y, w, C, t)
            if trial <= value - 1e-4 * rate * 2 * decrement:
                break
            rate /= 2
        else:
            return alpha, b, n_iter, decrement <= np.sqrt(tol) * scale
        if trial >= value:  # a step that gains nothing: rounding floor
            return alpha, b, n_iter, decrement <= np.sqrt(tol) * scale
        alpha, b, f, value = trial_alpha, trial_b, trial_f, trial
    return alpha, b, max_iter, False


def _newton_step(K, alpha, r, c, active, C, fit_intercept, cg_rtol):
    """Solve the ``K^-1``-premultiplied Newton system (see module docstring).

    On the curved rows, substituting ``step_A = s * z`` with ``s = sqrt(C c_A)``
    makes it the symmetric saddle-point system
    ``[[I + S K_AA S, s], [s', 0]] [z, step_b] = [rhs / s, sum(rhs) - C rhs_b]``
    (``S = diag(s)``), solved through the SPD block ``I + S K_AA S``: by
    Cholesky for a few thousand curved rows, else by conjugate gradients.
    """
    step = -(C * r + alpha)  # exact on rows without curvature
    A = np.flatnonzero(active)
    if A.size == 0:
        return step, 0.0
    everything = A.size == K.shape[0]
    K_AA = K if everything else K[np.ix_(A, A)]
    # Inactive rows whose step is zero to rounding do not couple.
    N = np.flatnonzero(~active & (np.abs(step) > 1e-14 * np.abs(step).max()))
    coupling = K[np.ix_(A, N)] @ step[N] if N.size else np.zeros(A.size)
    s = np.sqrt(C * c[A])
    rhs = -(C * r[A] + alpha[A]) - C * c[A] * coupling
    solve = _spd_solver(K_AA, s, cg_rtol)
    if not fit_intercept:
        step[A] = s * solve(rhs / s)
        return step, 0.0
    rhs_b = -r.sum() - c[A] @ coupling
    u, v = solve(rhs / s), solve(s)
    step_b = (s @ u - (rhs.sum() - C * rhs_b)) / max(s @ v, np.finfo(float).tiny)
    step[A] = s * (u - step_b * v)
    return step, step_b


def _spd_solver(K_AA, s, cg_rtol):
    """``x -> (I + diag(s) K_AA diag(s))^-1 x``."""
    m = len(s)
    # Cholesky costs m^3/3; CG about m^2 per iteration, and needs few
    # iterations at high temperature (small curvature, well conditioned).
    if m <= 500 or (m <= 2500 and cg_rtol < 1e-4):
        M = s[:, None] * K_AA * s[None, :]
        M[np.diag_indices(m)] += 1.0
        factor = linalg.cho_factor(M, lower=True, check_finite=False)
        return lambda x: linalg.cho_solve(factor, x, check_finite=False)
    op = spla.LinearOperator(
        (m, m), dtype=np.float64, matvec=lambda z: z + s * (K_AA @ (s * z))
    )

    def cg(x):
        # An inexact Newton direction is enough: the line search corrects it.
        return spla.cg(op, x, rtol=cg_rtol, maxiter=1000)[0]

    return cg
