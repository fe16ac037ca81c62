"""How far a fit is from stationary, in units of the effects being measured.

Influence is a derivative at the optimum: a Newton step left at the fitted
parameters that is large next to a typical row's leave-one-out effect on them
makes influence values unreliable. Every backend reports

    stationarity = ||H^-1 grad L|| / rms_i(||H^-1 g_i|| w_i / W)

over (at most) 64 random rows ``i``; 0 at an exact optimum.
"""

import numpy as np

from ..exceptions import SingularHessianError
from ._formulas import half_factor

_N_ROWS = 64
_N_SIGNS = 8
#: Relative residual of an iterative solver's solves for the estimate.
_ESTIMATE_TOL = 1e-4


def stationarity_rows(n):
    """The 64 rows (all when fewer) whose effects set the scale, sorted.

    A Generator samples them in O(64); RandomState.choice permutes all n.
    """
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(n, size=min(n, _N_ROWS), replace=False))


def stationarity(solver, gradient, row_gradients, shares):
    """The stationarity ratio of a fit.

    Parameters
    ----------
    solver : fitted solver
        ``solve(B)`` returns ``H^-1 B``.
    gradient : ndarray of shape (n_params,)
        Gradient of the mean training objective at the fitted parameters.
    row_gradients : ndarray of shape (m, n_params)
        Gradients of the sampled rows' losses (with any reweighting term).
    shares : ndarray of shape (m,)
        Each sampled row's weight over the total ``w_i / W``.

    Notes
    -----
    With cheap solves every row's effect is solved for. Iterative solvers pay
    per right-hand side, so they estimate the mean square effect from 8
    random-sign sums of the rows (``E ||sum_i e_i a_i||^2 = sum_i ||a_i||^2``
    for signs ``e_i = +-1``), solved in one block with the gradient.
    """
    G = np.asarray(row_gradients, dtype=np.float64).T * np.asarray(shares)
    m = G.shape[1]
    cheap = half_factor(solver) is not None  # each right-hand side costs O(p^2)
    if cheap:
        B = G
    else:
        rng = np.random.default_rng(1)
        B = G @ rng.choice([-1.0, 1.0], size=(m, _N_SIGNS))
        # An estimate from 8 signs (about a third off): a few digits serve.
        if hasattr(solver, "with_tol"):
            solver = solver.with_tol(_ESTIMATE_TOL)
    try:
        solved = solver.solve(np.column_stack([gradient, B]))
    except SingularHessianError:
        # An iterative solver met negative curvature: no minimum here, and
        # the Newton step is undefined.
        return np.inf
    if cheap:
        typical = np.sqrt(np.mean(np.sum(solved[:, 1:] ** 2, axis=0)))
    else:
        typical = np.sqrt(np.mean(solved[:, 1:] ** 2) * solved.shape[0] / m)
    step = np.linalg.norm(solved[:, 0])
    return float(step / max(typical, np.finfo(float).tiny))
