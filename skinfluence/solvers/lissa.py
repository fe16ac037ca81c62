"""LiSSA: the stochastic inverse-Hessian estimate of Koh & Liang (2017).

Agarwal, Bullins & Hazan (2016), "Second-order stochastic optimization for
machine learning in linear time". With ``A = (H + damping I) / scale``, the
recursion

    s_0 = g,    s_j = g + (I - A_j) s_{j-1}

(``A_j`` estimated on a fresh minibatch at every step) has the fixed point
``s = scale (H + damping I)^-1 g``; the estimate is ``s_depth / scale``,
averaged over ``repeats`` independent runs.

Error bound (full batch)
------------------------
With every batch the whole training set, ``s_j / scale`` is the truncated
Neumann series and its error is exactly ``(I - A)^(j+1) x`` with ``x = (H +
damping I)^-1 g``. When ``lambda_max + damping <= scale`` (which
``scale='auto'`` ensures), every eigenvalue of ``I - A`` lies in ``[0, 1 -
mu / scale]`` with ``mu = lambda_min + damping``, so

    ||s_j / scale - x|| <= (1 - mu / scale) ** (j + 1) * ||x||
                        <= (1 - mu / scale) ** j * ||x||.

With minibatches the estimate carries sampling noise on top (whose size
depends on how much the rows' curvatures differ); ``repeats`` averages it
down as ``1 / sqrt(repeats)``, larger batches shrink it.

Products on a small Hessian
---------------------------
A full-batch run costs ``depth * m`` Hessian products. When that is at least
``n_params`` (what forming ``H`` costs, one product per column of the
identity) and ``H`` fits in scikit-learn's ``working_memory``, ``H`` is
formed once and the recursion multiplies by it: the same estimate, step for
step, at a fraction of the cost for a small network or a narrow linear model.

Convergence of the recursion needs every eigenvalue of ``A_j`` in ``(0, 2)``:
a too small ``scale`` (or a minibatch Hessian much larger than the full one)
makes it explode, an indefinite Hessian without damping makes it grow along
the negative directions. Both are detected and reported with the knob to turn.
"""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from ._base import as_columns, describe_columns, project_out, warn_not_converged
from ._spectrum import resolve_damping, top_eigenvalue
from .cg import _not_invertible, solve_bar

# The norm of a convergent recursion grows at most linearly, ||s_j|| <=
# (j + 1) ||g||; beyond this many times that bound it is diverging.
_DIVERGENCE_FACTOR = 1e3
# scale='auto' is this many times the top eigenvalue of H + damping I.
_AUTO_SCALE_MARGIN = 1.1
# tol=None: the residual up to which a run counts as converged. Full batches
# stop there. Minibatch noise keeps the residual far above it, so they are
# held to a looser one: against the exact solver (breast cancer, diabetes,
# digits; influence of 10 test rows on every training row), a largest
# full-data residual of 0.015-0.17 left influence 1-5% off, 0.22-0.42 left
# it 10-20% off and 0.6-2.0 left it 20-93% off.
_FULL_BATCH_TOL = 1e-4
_MINIBATCH_TOL = 0.1


class LissaSolver(BaseEstimator):
    """Stochastic estimation of ``(H + damping I)^-1 B`` (LiSSA).

    Every step of the recursion costs one Hessian-matrix product on a
    minibatch, for all ``m`` right-hand sides at once. See the module
    docstring for the recursion and its error bound.

    Parameters
    ----------
    damping : float or 'auto', default=0.0
        Added to the diagonal of ``H``. ``'auto'``: see
        :func:`~skinfluence.solvers.auto_damping`.
    scale : float or 'auto', default='auto'
        Divides ``H + damping I`` so its eigenvalues lie in ``(0, 1]``.
        'auto' is 1.1 times the top eigenvalue of ``H + damping I``, estimated
        by Lanczos on full-data Hessian products.
    depth : int, default=5000
        Recursion steps per repeat. The full-batch error falls as
        ``(1 - (lambda_min + damping) / scale) ** depth``.
    repeats : int, default=1
        Independent runs averaged (only with minibatches; a full-batch run is
        deterministic and done once).
    batch_size : int or None, default=None
        Training rows per Hessian estimate, drawn without replacement at every
        step; None uses all rows (deterministic).
    random_state : int, RandomState instance or None, default=None
        Seeds the minibatches and the Lanczos start vector.
    tol : float or None, default=None
        Target relative residual ``||b - (H + damping I) x|| / ||b||`` of each
        column on the full data, measured at the end of every :meth:`solve`
        (``residual_``): a ``ConvergenceWarning``
        names the columns above it, once per fitted solver (repeated only for
        a residual ten times larger). With full batches the recursion also
        stops once every column reaches it (the step ``s_j - s_{j-1}`` *is*
        the residual of ``s_{j-1} / scale``). None means 1e-4 with full
        batches and 0.1 with minibatches, whose residual never falls below
        their sampling noise: a largest residual of 0.1 went with influence
        about 5% off the exact solver's, 0.4 with 20-40%.
    verbose : int, default=0
        1 shows each :meth:`solve` on standard error: a transient bar over
        the recursion's steps (``depth`` per repeat) with the largest
        relative step (tqdm when installed, else one closing line per
        solve). The explainer passes its own
        ``verbose`` to the solvers it names.

    Attributes
    ----------
    damping_, scale_ : float
        The damping and scale used.
    residual_history_ : ndarray of shape (n_iter, m)
        ``||s_j - s_{j-1}|| / ||b||`` per step and column (averaged over
        repeats): the full residual of the current estimate with full
        batches, its minibatch estimate otherwise.
    residual_ : ndarray of shape (m,)
        Relative residual of the returned estimate on the full data.
    n_iter_ : int
        Steps run per repeat in the last :meth:`solve`.
    dense_hessian_ : bool
        Whether the last :meth:`solve` multiplied by a formed ``H`` (see the
        module docstring) instead of asking the operator for products.
    """

    #: Solves carry the method's own error (see ``solvers._base``).
    approximate = True

    def __init__(
        self,
        damping=0.0,
        scale="auto",
        depth=5000,
        repeats=1,
        batch_size=None,
        random_state=None,
        tol=None,
        verbose=0,
    ):
        self.damping = damping
        self.scale = scale
        self.depth = depth
        self.repeats = repeats
        self.batch_size = batch_size
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose

    def _validate(self):
        for name in ("depth", "repeats"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Integral) and value >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.batch_size is not None and not (
            isinstance(self.batch_size, numbers.Integral) and self.batch_size >= 1
        ):
            raise ValueError(
                f"batch_size must be an int >= 1 or None, got {self.batch_size!r}"
            )
        if not (
            self.scale == "auto"
            or (isinstance(self.scale, numbers.Real) and self.scale > 0)
        ):
            raise ValueError(f"scale must be a float > 0 or 'auto', got {self.scale!r}")
        if self.tol is not None and not (
            isinstance(self.tol, numbers.Real) and self.tol > 0
        ):
            raise ValueError(f"tol must be a float > 0 or None, got {self.tol!r}")

    def fit(self, operator):
        self._validate()
        self._rng = check_random_state(self.random_state)
        self.operator_ = operator
        self.damping_ = resolve_damping(self.damping, operator, self._rng)
        if self.scale == "auto":
            top = top_eigenvalue(operator, random_state=self._rng)
            self.scale_ = _AUTO_SCALE_MARGIN * max(
                top + self.damping_, np.finfo(float).tiny
            )
        else:
            self.scale_ = float(self.scale)
        N = operator.null_space
        self._null = None if N is None or N.shape[1] == 0 else np.asarray(N)
        n = operator.X.shape[0]
        self._full = self.batch_size is None or self.batch_size >= n
        X = operator.X
        if not self._full and sp.issparse(X) and X.format != "csr":
            X = X.tocsr()  # cheap row sampling
        self._X = X
        self.n_params_ = operator.shape[0]
        self._H = None
        self._reported = {}  # non-convergence warned, by tol
        return self

    def _project(self, V):
        return project_out(self._null, V)

    def _dense_hessian(self, m):
        """``H`` when forming it costs fewer products than the run (else None)."""
        p = self.n_params_
        fits = 8.0 * p * p <= get_config()["working_memory"] * 2**20
        to_dense = getattr(self.operator_, "to_dense", None)
        if self._full and fits and to_dense is not None and self.depth * m >= p:
            if self._H is None:
                self._H = to_dense()
            return self._H
        return None

    def _hessian_product(self, V, H=None):
        """``(H_batch + damping I) V`` on a fresh minibatch (or all rows)."""
        op = self.operator_
        if H is not None:
            HV = H @ V
        elif self._full:
            HV = op.matmat(V)
        else:
            n = op.X.shape[0]
            idx = np.sort(self._rng.choice(n, self.batch_size, replace=False))
            HV = op.objective.hessian_vector_product(
                self._X[idx], op.target[idx], np.asarray(op.weights)[idx], V
            )
        if self.damping_:
            HV += self.damping_ * V
        return HV

    def _diverged(self, j, growth):
        what = "minibatch " if not self._full else ""
        raise ValueError(
            f"LiSSA diverged after {j} steps (the recursion's norm reached "
            f"{growth:.3g} times the right-hand side's): it converges only when "
            f"every eigenvalue of the {what}Hessian plus damping lies in "
            f"(0, 2 * scale). Increase `scale` (now {self.scale_:.3g}; "
            "scale='auto' uses 1.1 times the top eigenvalue)"
            + (", or `batch_size`" if not self._full else "")
            + "; if the Hessian is indefinite, increase `damping` "
            "(damping='auto' picks one)."
        )

    def _recursion(self, B, H, bnorm, repeats, stop, history, bar):
        """Sum over ``repeats`` runs of ``s_depth``, and the steps per run.

        ``history`` (depth, m) gathers each step's relative size, averaged
        over the runs; a run stops early once every column's step is below
        ``stop`` (full batches), or raises when the recursion diverges.
        """
        estimate, n_iter = np.zeros_like(B), 0
        for _ in range(repeats):
            S = B.copy()
            for j in range(self.depth):
                step = B - self._hessian_product(S, H) / self.scale_
                S += step
                res = np.linalg.norm(step, axis=0) / bnorm
                history[j] += res / repeats
                growth = np.max(np.linalg.norm(S, axis=0) / bnorm)
                if not np.isfinite(growth) or growth > _DIVERGENCE_FACTOR * (j + 2):
                    self._diverged(j + 1, growth)
                n_iter = j + 1
                bar.update()
                if self.verbose:
                    bar.note(f"step {res.max():.1e}")
                if stop is not None and np.all(res <= stop):
                    break
            estimate += S
        return estimate, n_iter

    def solve(self, B):
        """Estimate ``(H + damping I)^-1 B`` for B of shape (p,) or (p, m)."""
        p = self.n_params_
        B, vector = as_columns(B, p, self._null)
        m = B.shape[1]
        if m == 0:
            return np.zeros((p, 0))
        bnorm = np.linalg.norm(B, axis=0)
        bnorm[bnorm == 0] = 1.0
        scale = self.scale_
        repeats = 1 if self._full else self.repeats
        tol = self.tol
        if tol is None:
            tol = _FULL_BATCH_TOL if self._full else _MINIBATCH_TOL
        stop = tol if self._full else None
        H = self._dense_hessian(m)
        self.dense_hessian_ = H is not None
        history = np.zeros((self.depth, m))
        total = self.depth * repeats
        with solve_bar("LiSSA", m, self.verbose, total) as bar:
            estimate, n_iter = self._recursion(B, H, bnorm, repeats, stop, history, bar)
        estimate = self._project(estimate / (scale * repeats))
        self.residual_history_ = history[:n_iter]
        self.n_iter_ = n_iter
        HX = self.operator_.matmat(estimate) if H is None else H @ estimate
        R = B - HX - self.damping_ * estimate
        self.residual_ = np.linalg.norm(self._project(R), axis=0) / bnorm
        if np.any(self.residual_ > tol):
            bad = np.flatnonzero(self.residual_ > tol)
            worst = float(self.residual_[bad].max())
            knobs = (
                "Raise `depth`, or `damping` (the error falls as "
                "(1 - (lambda_min + damping) / scale) ** depth)"
                if self._full
                else "Raise `batch_size`, `repeats` or `depth`, or `damping`, or "
                "use solver='cg'"
            )
            warn_not_converged(
                self,
                tol,
                worst,
                f"LissaSolver did not converge for {bad.size} of {m} right-hand "
                f"sides (columns {describe_columns(bad)}): relative residual on "
                f"the full data up to {worst:.3g} > tol={tol:g} after {n_iter} "
                f"steps. {knobs}.",
            )
        return estimate[:, 0] if vector else estimate

    def inverse(self):
        raise _not_invertible(self)
