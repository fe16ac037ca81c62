"""Block preconditioned conjugate gradients on matrix-free Hessian products."""

import copy
import numbers

import numpy as np
from sklearn.base import BaseEstimator

from ..exceptions import SingularHessianError
from ..utils._progress import progress_bar
from ._base import as_columns, describe_columns, project_out, warn_not_converged
from ._spectrum import resolve_damping


def _column_dots(A, B):
    return np.einsum("ij,ij->j", A, B)


def solve_bar(name, m, verbose, total=None, unit="iterations"):
    """The transient progress bar of one block solve of ``m`` columns."""
    plural = "s" * (m != 1)
    desc = f"{name} solve ({m} right-hand side{plural})"
    return progress_bar(desc, total=total, verbose=verbose, leave=False, unit=unit)


def _not_invertible(solver):
    return NotImplementedError(
        f"{type(solver).__name__} never forms H^-1; method='newton' needs "
        "solver='exact'."
    )


class CGSolver(BaseEstimator):
    """Conjugate gradients for ``(H + damping I) X = B``, one block at a time.

    The ``m`` right-hand sides (one per test row) run as ``m`` independent CG
    recursions advanced together: each iteration costs one Hessian-matrix
    product ``operator.matmat`` on the block of unconverged columns (for a
    linear-output model ``X' (D (X V))`` in closed form: ``H`` is never
    formed), plus ``O(p m)`` vector work with a step size per column. Columns
    stop as soon as their relative residual reaches ``tol``.

    Directions in ``operator.null_space`` (the redundant parameters of a
    multinomial model) are projected out of the right-hand sides, and the
    projection ``I - N N'`` is applied after the preconditioner at every
    iteration, so the iterates stay on the complement and CG converges to the
    minimum-norm solution ``H^+ b``, the same as :class:`ExactSolver`.

    Parameters
    ----------
    damping : float or 'auto', default=0.0
        Added to the diagonal of ``H``. ``'auto'`` picks it from the extreme
        eigenvalues (:func:`~skinfluence.solvers.auto_damping`).
    tol : float, default=1e-10
        Stop a column when ``||b - (H + damping I) x|| <= tol * ||b||``. The
        error of ``x`` is at most the condition number of ``H`` times that.
        A ``ConvergenceWarning`` names the columns
        that miss it, once per fitted solver (repeated only for a residual
        ten times larger); ``converged_`` has every solve's.
    maxiter : int or None, default=None
        Iterations at most; None means ``10 * n_params``.
    preconditioner : {'jacobi'}, fitted solver or None, default='jacobi'
        'jacobi' divides by the diagonal of ``H + damping I``
        (``objective.hessian_diagonal``; none if the objective lacks it). A
        fitted solver (anything with ``solve``) applies its own inverse: an
        :class:`~skinfluence.solvers.ExactSolver` factorized at nearby
        parameters, whose Hessian differs little from this one, leaves CG a
        few iterations.
    verbose : int, default=0
        1 shows each :meth:`solve` on standard error: a transient bar over
        the iterations with the largest relative residual left and the
        columns converged (tqdm when installed, else one closing line per
        solve). The explainer passes its own ``verbose`` to the solvers it
        names.

    Attributes
    ----------
    damping_ : float
        The damping used (``'auto'`` resolved).
    residual_history_ : ndarray of shape (n_iter + 1, m)
        Relative residual of every column at every iteration of the last
        :meth:`solve` (row 0 is the start, 1.0); a converged column keeps its
        final value. CG residuals fall on the whole but not monotonically.
    n_iter_ : int
        Iterations of the last :meth:`solve`.
    converged_ : ndarray of bool, shape (m,)
        Which columns reached ``tol`` in the last :meth:`solve`.
    """

    def __init__(
        self,
        damping=0.0,
        tol=1e-10,
        maxiter=None,
        preconditioner="jacobi",
        verbose=0,
    ):
        self.damping = damping
        self.tol = tol
        self.maxiter = maxiter
        self.preconditioner = preconditioner
        self.verbose = verbose

    def fit(self, operator):
        if not (isinstance(self.tol, numbers.Real) and self.tol > 0):
            raise ValueError(f"tol must be a float > 0, got {self.tol!r}")
        if self.maxiter is not None and not (
            isinstance(self.maxiter, numbers.Integral) and self.maxiter >= 1
        ):
            raise ValueError(
                f"maxiter must be an int >= 1 or None, got {self.maxiter!r}"
            )
        if self.preconditioner not in ("jacobi", None) and not hasattr(
            self.preconditioner, "solve"
        ):
            raise ValueError(
                "preconditioner must be 'jacobi', None or a fitted solver, got "
                f"{self.preconditioner!r}"
            )
        self.operator_ = operator
        self.damping_ = resolve_damping(self.damping, operator)
        self._reported = {}  # non-convergence warned, by tol (shared by with_tol)
        N = operator.null_space
        self._null = None if N is None or N.shape[1] == 0 else np.asarray(N)
        self._inv_diag = None
        diagonal = getattr(operator, "diagonal", None)
        if diagonal is None and hasattr(operator.objective, "hessian_diagonal"):

            def diagonal():
                op = operator
                return op.objective.hessian_diagonal(op.X, op.target, op.weights)

        if self.preconditioner == "jacobi" and diagonal is not None:
            diag = diagonal()
            diag = np.asarray(diag, dtype=np.float64) + self.damping_
            good = np.isfinite(diag) & (diag > 0)
            fill = diag[good].mean() if good.any() else 1.0
            self._inv_diag = 1.0 / np.where(good, diag, fill)
        self.n_params_ = operator.shape[0]
        return self

    # -- pieces ---------------------------------------------------------------
    def _project(self, V):
        return project_out(self._null, V)

    def _precondition(self, R):
        if hasattr(self.preconditioner, "solve"):
            return self._project(np.asarray(self.preconditioner.solve(R)))
        if self._inv_diag is None:
            return R.copy()
        return self._project(R * self._inv_diag[:, None])

    def _matmat(self, V):
        out = self.operator_.matmat(V)
        if self.damping_:
            out += self.damping_ * V
        return out

    def with_tol(self, tol):
        """This fitted solver stopping at ``tol`` or its own, the looser.

        A shallow copy (the Hessian operator shared): for solves that need
        fewer digits, such as estimates and inexact Newton steps.
        """
        loose = copy.copy(self)
        loose.tol = max(float(tol), self.tol)
        return loose

    # -- solve ------------------------------------------------------------------
    def solve(self, B):
        """``(H + damping I)^-1 B`` for B of shape (n_params,) or (n_params, m)."""
        p = self.n_params_
        B, vector = as_columns(B, p, self._null)
        m = B.shape[1]
        maxiter = self.maxiter if self.maxiter is not None else 10 * p
        X = np.zeros((p, m))
        R = B.copy()
        bnorm = np.linalg.norm(B, axis=0)
        done = bnorm == 0
        bnorm[done] = 1.0
        Z = self._precondition(R)
        P = Z.copy()
        rz = _column_dots(R, Z)
        rel = np.where(done, 0.0, 1.0)
        history = [rel.copy()]
        n_iter = 0
        with solve_bar("CG", m, self.verbose) as bar:
            while n_iter < maxiter and not done.all():
                n_iter += 1
                self._step(X, R, P, rz, rel, done, bnorm)
                history.append(rel.copy())
                bar.update()
                if self.verbose:
                    bar.note(
                        f"residual {rel.max():.1e} (tol {self.tol:g}), "
                        f"{int(done.sum())}/{m} converged"
                    )
        self.residual_history_ = np.array(history)
        self.n_iter_ = n_iter
        self.converged_ = done
        if not done.all():
            bad = np.flatnonzero(~done)
            worst = float(rel[bad].max())
            warn_not_converged(
                self,
                self.tol,
                worst,
                f"CGSolver did not converge for {bad.size} of {m} right-hand sides "
                f"(columns {describe_columns(bad)}) after {n_iter} iterations: "
                f"relative residual up to {worst:.3g} > tol={self.tol:g}. Raise "
                "`maxiter`, or raise `damping` (an ill-conditioned Hessian "
                "converges slowly), or loosen `tol`.",
            )
        X = self._project(X)
        return X[:, 0] if vector else X

    def _step(self, X, R, P, rz, rel, done, bnorm):
        """One CG iteration on the unconverged columns, in place."""
        m = X.shape[1]
        act = np.flatnonzero(~done)
        # Every column still active (the usual case): views, not copies.
        act = slice(None) if act.size == m else act
        Pa = P[:, act]
        APa = self._matmat(Pa)
        curvature = _column_dots(Pa, APa)
        if np.any(curvature <= 0) or not np.all(np.isfinite(curvature)):
            raise SingularHessianError(
                "Conjugate gradients found a direction of zero or negative "
                "curvature: the Hessian is singular or indefinite"
                + (" after damping" if self.damping_ else "")
                + ". Pass damping='auto' (or a larger damping) to the explainer."
            )
        alpha = rz[act] / curvature
        X[:, act] += alpha * Pa
        APa *= alpha
        R[:, act] -= APa
        Ra = R[:, act]
        rel[act] = np.linalg.norm(Ra, axis=0) / bnorm[act]
        finished = rel[act] <= self.tol
        columns = np.arange(m)[act]
        done[columns[finished]] = True
        go, Rg = columns[~finished], Ra[:, ~finished]
        if isinstance(act, slice) and not finished.any():
            go, Rg = act, Ra
        if Rg.shape[1]:
            Zg = self._precondition(Rg)
            rz_new = _column_dots(Rg, Zg)
            P[:, go] *= rz_new / rz[go]
            P[:, go] += Zg
            rz[go] = rz_new

    def inverse(self):
        raise _not_invertible(self)
