"""The in-memory backend: closed-form derivatives of a linear-output model.

For every estimator :mod:`skinfluence.adapters` supports, the objective is a
:class:`~skinfluence.objectives.LinearObjective`: per-row gradients factor as
``r_i kron [x_i, 1]`` and the Hessian is a weighted Gram of the rows, so every
influence quantity is a few matrix products (:mod:`skinfluence.core._formulas`)
over chunks of rows within scikit-learn's ``working_memory``. Nothing of the
size of ``X`` is copied.
"""

import warnings
from collections import namedtuple

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_array

from ..adapters import (
    build_objective,
    check_before_fit,
    is_supported,
    parameters_writable,
)
from ..core import _formulas
from ..core._refit import refit_subsets, refit_without
from ..core._stationarity import stationarity, stationarity_rows
from ..core._topk import StreamingTopK
from ..exceptions import (
    SingularHessianError,
    UnsupportedOperationError,
)
from ..objectives import (
    BinaryLogistic,
    HessianOperator,
    Multinomial,
    OneVsRestLogistic,
)
from ..solvers import AUTO_EXACT_MAX_PARAMS, CGSolver, make_solver, newton_solver
from ..solvers.woodbury import woodbury_applicable
from ..utils._checks import is_frozen, split_model
from ..utils._chunks import check_result_size, chunk_slices, map_chunks
from ..utils._warn import caller_stacklevel
from ._base import (
    InfluenceBackend,
    check_finite_input,
    check_magnitude,
    check_target,
    check_test_labels,
    warn_if_flat,
)
from ._estimator_refits import refit_loss, warm_clone

#: ``polish`` stops once the Newton step left is this share of a typical row's
#: leave-one-out effect on the parameters: far below what influence resolves.
POLISH_TOL = 1e-3
#: Stationarity up to which a fit counts as its optimum (the explainer's
#: default ``stationarity_tol``): refits for validation are then polished too.
STATIONARY = 0.1
#: Steps with a Hessian factorized at an earlier iterate go on to this share of
#: ``tol`` (they cost a gradient each), so that the exact stationarity at the
#: final factorization is below ``tol``; and are kept while each shrinks the
#: Newton step left by at least ``CONTRACTION``.
STALE_MARGIN = 1e-2
CONTRACTION = 0.5
#: Contraction of the Newton step left under which steps keep the factorized
#: Hessian as it is (past it, they solve with the exact one by CG).
CHORD_CONTRACTION = 1e-2
#: Conjugate gradients of a polish step between factorizations: relative
#: residual and iterations (preconditioned by a nearby factorization, CG
#: needs few; the step only has to shrink the Newton step left).
NEWTON_CG_TOL = 1e-3
NEWTON_CG_MAXITER = 20

#: The training objective's data, as the backend holds it (see
#: :meth:`ClosedFormBackend.training_problem`).
TrainingProblem = namedtuple(
    "TrainingProblem", ["objective", "X", "target", "weights", "sample_weight"]
)


class ClosedFormBackend(InfluenceBackend):
    """Influence of a linear-output model on in-memory (dense or sparse) rows.

    Parameters
    ----------
    solver, damping : as :class:`~skinfluence.InfluenceExplainer`.
    n_jobs : int, default=None
        Threads for the loops over chunks of rows.
    verbose : int, default=0
        Given to the solver it names (progress of the iterative solves).
    """

    capabilities = frozenset(
        {
            "loo_change",
            "group_influence",
            "newton",
            "perturbation",
            "influence_params",
            "training_data",
            "training_problem",
            "refit",
            "polish",
            "sample_weight",
            "relative_influence",
            "divine",
            "subset_refits",
        }
    )
    name = "in-memory"

    def __init__(self, solver="auto", damping=0.0, n_jobs=None, verbose=0):
        self.solver = solver
        self.damping = damping
        self.n_jobs = n_jobs
        self.verbose = verbose

    def check_estimator(self, estimator):
        _, model = split_model(estimator)
        if not is_supported(model):
            build_objective(model, None, None)  # raises the TypeError
        if not is_frozen(estimator):
            check_before_fit(model)

    # -- fitting ----------------------------------------------------------------
    def fit(self, model, X, y, sample_weight, prefix=None):
        """Build the objective of the fitted ``model`` and factorize its Hessian.

        ``X``: the explainer's validated input; ``prefix``: the fitted Pipeline
        steps before ``model`` (or None); ``sample_weight``: an array.
        """
        self.prefix_ = prefix
        self.model_ = model
        X_input = self.model_input(X, train=True)
        self.objective_, self.weights_ = build_objective(
            model, np.asarray(y), sample_weight
        )
        self.sample_weight_ = sample_weight
        self.X_input_ = X_input
        self.X_ = self._linear_features(X_input)
        self.y_ = np.asarray(y)
        self.target_ = self.objective_.family.encode(self.y_)
        self.n_params_ = self.objective_.n_params
        self.n_train_ = self.X_.shape[0]
        self._factorize()
        return self

    def _factorize(self, newton_only=False):
        """Fit the solver on the Hessian at the current parameters.

        ``newton_only``: between a polish's steps, refit only what the steps
        solve with (:func:`~skinfluence.solvers.newton_solver`), when that is
        not the influence solver itself.
        """
        operator = HessianOperator(
            self.objective_, self.X_, self.target_, self.weights_, n_jobs=self.n_jobs
        )
        if not (newton_only and self._newton_ is not self.solver_):
            try:
                self.solver_ = make_solver(
                    self.solver,
                    self.damping,
                    n_params=self.n_params_,
                    n_samples=self.n_train_,
                    objective=self.objective_,
                    verbose=self.verbose,
                ).fit(operator)
            except ValueError:
                check_magnitude(self.X_, "X")  # an overflowing Hessian, if that was it
                raise
        self._newton_ = newton_solver(self.solver_, operator)
        self.residuals_, self.gradient_ = operator.residuals_and_gradient()
        operator.residuals_ = operator.mean_gradient_ = None  # the solver may keep it
        self.stationarity_ = self._stationarity(self.gradient_)

    def polish(self, *, tol=POLISH_TOL, max_steps=20):
        """Newton steps on the objective until the fit is stationary.

        Each step ``-H^-1 grad`` backtracks (Armijo) until the objective
        decreases. After the first, the Hessian is not refactorized: steps
        reuse the factorized one while each shrinks the Newton step left a
        hundredfold (near an optimum the Hessian barely moves), and
        otherwise solve with the exact Hessian at the current parameters by
        conjugate gradients on Hessian-vector products, preconditioned by
        the factorized one (a few iterations serve). It is refactorized when
        the Newton step left stops shrinking by at least a factor of two,
        and once at the final parameters, so ``solver_`` and
        ``stationarity_`` are exact there. Between factorizations
        ``stationarity_`` is the one measured at the last factorization,
        scaled by how much the Newton step under that factorization has
        shrunk since (a typical row's effect, the unit, is taken as it was
        there). Stops once ``stationarity_ <= tol``. Returns the number of
        steps taken (the objective, solver and residuals are updated).

        An approximate influence solver (LiSSA, low rank) is refitted once,
        at the end: the steps, and ``stationarity_``, solve by conjugate
        gradients on the exact Hessian's products instead
        (:func:`~skinfluence.solvers.newton_solver`).
        """
        if getattr(self.objective_, "approximate", False):
            return 0
        steps, stale = 0, False  # stale: solver_ factorized at an earlier iterate
        # A factorization is cheap to apply; an iterative solver's solve is
        # itself the step.
        factorized = hasattr(self._newton_, "factor_")
        value = None  # the objective at the current parameters, once computed
        while steps < max_steps:
            if self.stationarity_ <= (tol * STALE_MARGIN if stale else tol):
                if not stale:
                    break
                self._factorize(newton_only=True)
                stale = False
                continue
            previous = self.stationarity_
            if not stale:  # the step left under this factorization, and its unit
                step = self._step_left()
                unit = np.linalg.norm(step) / max(previous, np.finfo(float).tiny)
                if self._newton_.damping_ and factorized:
                    step = self._newton_direction()  # a damped step is not Newton's
            value = self._newton_step(step, value)
            if value is None:
                if not stale:
                    break  # no decrease along the Newton direction: rounding floor
                self._factorize(newton_only=True)
                stale = False
                continue
            steps += 1
            stale = True
            left = self._step_left()
            self.stationarity_ = float(np.linalg.norm(left) / unit)
            if self.stationarity_ > CONTRACTION * previous:
                self._factorize(newton_only=True)
                stale = False
            elif self.stationarity_ > tol * STALE_MARGIN:  # another step follows
                # Steps under this factorization that shrank the step left
                # a hundredfold keep doing so. Otherwise the exact Hessian's
                # step, from CG preconditioned by the factorization.
                chord = self.stationarity_ <= CHORD_CONTRACTION * previous
                if chord or not factorized:
                    step = left
                else:
                    step = self._newton_direction()
        if stale or (steps and self._newton_ is not self.solver_):
            self._factorize()
        return steps

    def _step_left(self):
        """``-H^-1 grad`` under ``solver_``: an iterative one solves it to
        ``NEWTON_CG_TOL`` (an inexact Newton step: the next corrects it)."""
        solver = self._newton_
        if not hasattr(solver, "factor_") and hasattr(solver, "with_tol"):
            solver = solver.with_tol(NEWTON_CG_TOL)
        return -np.asarray(solver.solve(self.gradient_)).ravel()

    def _newton_direction(self):
        """``-H^-1 grad`` at the current parameters, with ``solver_`` stale.

        Conjugate gradients on the exact Hessian's products, preconditioned
        by ``solver_`` (factorized at an earlier iterate, and damped if the
        explainer is: the objective's optimum is the undamped Hessian's
        business); stopped early it is still a descent direction, so a loose
        tolerance serves. Where CG meets a direction without curvature, the
        step under ``solver_`` instead.
        """
        operator = HessianOperator(
            self.objective_, self.X_, self.target_, self.weights_, n_jobs=self.n_jobs
        )
        cg = CGSolver(
            tol=NEWTON_CG_TOL, maxiter=NEWTON_CG_MAXITER, preconditioner=self._newton_
        ).fit(operator)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return -np.asarray(cg.solve(self.gradient_)).ravel()
        except SingularHessianError:  # flat or curved down: no Newton step
            return -np.asarray(self._newton_.solve(self.gradient_)).ravel()

    def _newton_step(self, step, value=None):
        """One backtracking step along ``step``; the new objective, or None.

        None when no step length decreases the objective (nothing changes).
        ``value``: the objective at the current parameters, when known.
        Updates the objective, residuals and gradient.
        """
        args = (self.X_, self.target_, self.weights_)
        slope = self.gradient_ @ step
        if not slope < 0:
            return None
        if value is None:
            value = self.objective_.objective(*args)
        theta, rate = self.objective_.theta, 1.0
        for _ in range(30):
            trial = self.objective_.with_theta(theta + rate * step)
            trial_value = trial.objective(*args)
            if trial_value <= value + 1e-4 * rate * slope:
                break
            rate /= 2
        else:
            return None
        self.objective_ = trial
        self.residuals_ = trial.residuals(self.X_, self.target_)
        self.gradient_ = trial.mean_gradient(*args, self.residuals_)
        return trial_value

    def _stationarity(self, gradient):
        rows = stationarity_rows(self.n_train_)
        obj = self.objective_
        G = obj.expand(self.X_[rows], self.residuals_[rows]) + obj.reweight_term()
        shares = self.weights_[rows] / self.weights_.sum()
        return stationarity(self._newton_, gradient, G, shares)

    def stationarity_advice(self, model_name):
        """The warning text when the fit is far from stationary, or None."""
        # Hinge models explained through the smooth hinge are not its optimum.
        if getattr(self.objective_, "approximate", False):
            return None
        return (
            f"{model_name} stopped short of its optimum: the Newton step left "
            f"is {self.stationarity_:.3g} times a typical row's leave-one-out "
            "effect, so influence values are unreliable. Polish it with "
            "model = skinfluence.refine(model, X, y) (Newton steps on its own "
            "objective), or fit it to convergence (lower tol, raise max_iter). "
            "If the gap is large, X and y may not be the data it was fitted on."
        )

    # -- inputs -----------------------------------------------------------------
    def model_input(self, X, train=False):
        """Validated float64 input of the final model (after any Pipeline prefix)."""
        name = "X" if train else "X_test"
        if self.prefix_ is None:
            # The explainer's validate_data already checked X; csc -> csr only.
            X = X.tocsr() if sp.issparse(X) else X
        else:
            X = self.prefix_.transform(X)
            try:
                X = check_array(X, accept_sparse="csr", dtype=np.float64)
            except ValueError:
                check_finite_input(X, name, prefixed=True)
                raise
        return X

    def _linear_features(self, X):
        """Features a kernel model is linear in (identity for other models)."""
        fmap = self.objective_.feature_map
        return X if fmap is None else fmap.transform(X)

    def test_factors(self, X, y, target, warn_flat=True):
        """``(features, d quantity / d eta, class or target index)`` per test row.

        ``warn_flat``: warn of test rows whose loss is flat (callers that use
        only the features and classes, for values rather than derivatives,
        pass False).
        """
        check_target(target)
        Xt = self._linear_features(self.model_input(X))
        family = self.objective_.family
        eta = self.objective_.linear_predictor(Xt)
        if target == "loss":
            if y is None:
                raise ValueError("y_test is required when target='loss'.")
            t = family.encode(check_test_labels(y, Xt.shape[0]))
            if family.classes is None and not np.all(np.isfinite(t)):
                bad = np.flatnonzero(~np.isfinite(t))[:5].tolist()
                raise ValueError(
                    f"y_test holds NaN or infinite targets at rows {bad}: drop "
                    "those test rows (there is no loss to differentiate)."
                )
            F = family.gradient(t, eta)
            if family.classes is not None and warn_flat:  # regression: never flat
                F[warn_if_flat(F, family)] = 0.0  # rounding noise: exactly 0
            return Xt, F, t
        classifier = family.classes is not None
        if target == "predict_proba" and not classifier:
            raise ValueError(
                "target='predict_proba' needs a classifier; use "
                "target='predict' for a regressor."
            )
        if target == "predict" and classifier:
            raise ValueError(
                "target='predict' is for regressors; use "
                "'predict_proba' or 'decision_function'."
            )
        if classifier and y is not None:
            t = family.encode(check_test_labels(y, Xt.shape[0]))
            cls = np.asarray(t, dtype=int)
        elif classifier:
            cls = (eta[:, 0] > 0).astype(int) if eta.shape[1] == 1 else eta.argmax(1)
        else:
            cls = np.zeros(Xt.shape[0], dtype=int)
        return Xt, family.output_gradient(eta, target, cls), cls

    def test_directions(self, X, y, target="loss"):
        """``H^-1 G_test'`` of shape (n_params, n_test)."""
        Xt, F, _ = self.test_factors(X, y, target)
        return _formulas.test_directions(self.objective_, self.solver_, Xt, F)

    # -- influence ----------------------------------------------------------------
    def influence(self, X, y=None, *, target="loss"):
        Xt, F, _ = self.test_factors(X, y, target)
        check_result_size(
            (Xt.shape[0], self.n_train_),
            "The influence matrix",
            "Call top_influential, which keeps only the top rows, or "
            "influence_blocks, which yields the matrix in blocks, "
            "or pass fewer test rows at a time.",
        )
        V = _formulas.test_directions(self.objective_, self.solver_, Xt, F)
        out = _formulas.influence_matrix(self.objective_, self.X_, self.residuals_, V)
        return self._outside_fit_zeroed(out)

    def _outside_fit_zeroed(self, values, rows=slice(None), axis=1):
        """``values`` with the training rows of weight 0 set to 0 (in place)."""
        return _formulas.zero_outside_fit(values, self.weights_[rows], axis)

    def _chunked_directions(self, Xt, F):
        """``(test_rows, H^-1 G_test')`` per chunk of test rows in working memory."""
        obj = self.objective_
        for rows in chunk_slices(Xt.shape[0], _formulas.test_row_bytes(obj)):
            V = _formulas.test_directions(obj, self.solver_, Xt[rows], F[rows])
            yield rows, V

    def _train_chunks(self, n_test, relatif=None):
        row_bytes = _formulas.block_row_bytes(self.objective_, self.X_, n_test, relatif)
        return chunk_slices(self.n_train_, row_bytes, self.n_jobs)

    def influence_blocks(self, X, y=None, *, target="loss"):
        obj, X_train, R = self.objective_, self.X_, self.residuals_
        Xt, F, _ = self.test_factors(X, y, target)
        for test_rows, V in self._chunked_directions(Xt, F):

            def block(rows, V=V):
                values = _formulas.influence_matrix(obj, X_train[rows], R[rows], V)
                return self._outside_fit_zeroed(values, rows)

            chunks = self._train_chunks(V.shape[1])
            for train_rows, values in zip(
                chunks, map_chunks(block, chunks, self.n_jobs)
            ):
                yield test_rows, train_rows, values

    def loo_change_of(self, rows, X, y, *, method="influence", target="loss"):
        return self.loo_change(X, y, method=method, target=target, train_rows=rows)

    def preferred_loo_method(self, target="loss"):
        """'newton' where one Newton step is exact or cheap here, else 'influence'.

        Newton needs the dense inverse Hessian: with a solver that forms it
        exactly (``exact``, ``woodbury``) and up to 2000 parameters it costs
        little next to the fit, and it tracks refits far better than first
        order on small or high-leverage data.
        """
        exact = getattr(self.solver_, "exact", False)
        cheap = exact and self.n_params_ <= 2000
        if cheap and target in ("loss", "decision_function"):
            return "newton"
        return "influence"

    def top_k(self, X, y, *, k, target="loss", relatif=None):
        """Top-k candidates per test row, RelatIF norms computed per block."""
        obj, solver, X_train, R = (
            self.objective_,
            self.solver_,
            self.X_,
            self.residuals_,
        )
        Xt, F, _ = self.test_factors(X, y, target)
        tops = []
        for _, V in self._chunked_directions(Xt, F):

            def block(rows, V=V):
                scores, infl = _formulas.block_scores(
                    obj, solver, X_train[rows], R[rows], V, relatif
                )
                if relatif is not None:  # else one array: zeroed below
                    self._outside_fit_zeroed(scores, rows)
                self._outside_fit_zeroed(infl, rows)
                top = StreamingTopK(k)
                top.update(rows.start, scores, infl)
                return top

            chunks = self._train_chunks(V.shape[1], relatif)
            parts = map_chunks(block, chunks, self.n_jobs)
            top = next(parts)
            for part in parts:
                top.merge(part)
            tops.append(top)
        return StreamingTopK.stack(tops)

    def candidate_pool(self, X, y, *, size, target="loss"):
        return self.top_k(X, y, k=size, target=target)

    def loo_change(
        self, X, y=None, *, method="influence", target="loss", train_rows=None
    ):
        """Change of each test quantity when each training row is removed.

        ``train_rows``: positions of the training rows to predict for (all by
        default); the result has one column per row.
        """
        Xt, F, t = self.test_factors(X, y, target)
        n_test = Xt.shape[0]
        n_train = self.n_train_ if train_rows is None else len(train_rows)
        obj = self.objective_
        check_result_size(
            (n_test, n_train, obj.n_outputs),
            "The leave-one-out matrix",
            "Pass fewer test rows at a time.",
        )
        if method == "influence":
            V = _formulas.test_directions(obj, self.solver_, Xt, F)
            X_rows, R_rows = self.X_, self.residuals_
            if train_rows is not None:
                X_rows, R_rows = X_rows[train_rows], R_rows[train_rows]
            return _formulas.loo_first_order(
                obj, X_rows, R_rows, self.weights_, V, train_rows
            )
        _check_newton_target(target)
        check_result_size(
            (n_train, self.n_params_),
            "The Newton parameter changes",
            "Use method='influence'.",
        )
        H_inv, args = self.newton_inverse(), (self.X_, self.target_, self.weights_)
        if train_rows is None:
            delta = _formulas.newton_parameter_changes(obj, H_inv, *args)
        else:
            rows = (self.X_[train_rows], self.target_[train_rows])
            delta = _formulas.newton_parameter_changes_of(
                obj, H_inv, *rows, self.weights_, train_rows
            )
        d_eta = _formulas.output_changes(obj, Xt, delta)
        return _quantity_change(obj, Xt, target, t, d_eta)

    def group_influence(self, groups, X, y=None, *, method="influence", target="loss"):
        """Change of each test quantity when each group of rows is removed.

        ``groups``: a list of arrays of row positions. Returns (n_test, n_groups).
        """
        Xt, F, t = self.test_factors(X, y, target)
        obj, X_train, w = self.objective_, self.X_, self.weights_
        if method == "influence":
            V = _formulas.test_directions(obj, self.solver_, Xt, F)
            return _formulas.group_first_order(
                obj, X_train, self.residuals_, w, groups, V
            )
        _check_newton_target(target)
        H_inv = self.inverse_hessian()
        s, _ = obj.removal_term(w)
        deltas = np.stack(
            [
                _formulas.group_newton_change(
                    obj, H_inv, X_train[r], self.target_[r], w[r], s[r].sum(), w.sum()
                )
                for r in groups
            ]
        )
        d_eta = _formulas.output_changes(obj, Xt, deltas)
        return _quantity_change(obj, Xt, target, t, d_eta)

    def _warn_per_row_solves(self, what):
        """Warn when ``what`` (one solve per training row) runs on an iterative
        solver, each of whose solves passes over every row, where a
        factorization would serve all rows at once."""
        n, p = self.n_train_, self.n_params_
        if not hasattr(self.solver_, "operator_") or n < PER_ROW_SOLVES_WARN_ROWS:
            return  # a factor, or solves that never touch the rows (low rank)
        if p <= AUTO_EXACT_MAX_PARAMS:
            fix = f"solver='exact' factorizes the {p}-parameter Hessian once"
        elif woodbury_applicable(self.objective_, n, self.solver_.damping_) is None:
            fix = (
                f"solver='woodbury' factorizes one {n * self.objective_.n_outputs}"
                "-row system once"
            )
        else:
            return
        warnings.warn(
            f"{what} solves one system per training row: {n} solves with "
            f"{type(self.solver_).__name__}, each iteration a pass over all "
            f"{n} rows, so its cost grows as n^2. {fix} and serves every row "
            "from it.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )

    def influence_params(self):
        self._warn_per_row_solves("influence_params")
        check_result_size(
            (self.n_train_, self.n_params_),
            "I_up,params",
            "Use self_influence or influence instead.",
        )
        out = _formulas.influence_params(
            self.objective_, self.solver_, self.X_, self.residuals_, self.n_jobs
        )
        return self._outside_fit_zeroed(out, axis=0)

    def self_influence(self):
        self._warn_per_row_solves("self_influence")
        out = _formulas.self_influence(
            self.objective_, self.solver_, self.X_, self.residuals_, self.n_jobs
        )
        return self._outside_fit_zeroed(out, axis=0)

    def parameter_change_norms(self):
        return _formulas.parameter_change_norms(
            self.objective_, self.solver_, self.X_, self.residuals_, self.n_jobs
        )

    def relatif_norms(self, kind):
        self._warn_per_row_solves("RelatIF")
        return _formulas.relatif_norms(
            self.objective_, self.solver_, self.X_, self.residuals_, kind, self.n_jobs
        )

    def perturbation_influence(
        self, X, y=None, *, target="loss", train_rows=None, sum_test=False
    ):
        """``I_pert,loss`` of shape (n_test, n_rows, n_features).

        ``train_rows``: positions of the training rows (default all);
        ``sum_test``: differentiate the test quantities' sum (one test row out).
        """
        Xt, F, _ = self.test_factors(X, y, target)
        rows = np.arange(self.n_train_) if train_rows is None else train_rows
        n_out = 1 if sum_test else Xt.shape[0]
        check_result_size(
            (n_out, len(rows), self.X_input_.shape[1]),
            "I_pert,loss",
            "Pass fewer test rows at a time.",
        )
        V = _formulas.test_directions(self.objective_, self.solver_, Xt, F)
        if sum_test:
            V = V.sum(axis=1, keepdims=True)
        X_rows, t_rows = self.X_[rows], self.target_[rows]
        P = _formulas.perturbation_influence(self.objective_, X_rows, t_rows, V)
        P = self._outside_fit_zeroed(P, rows)  # moving such a row changes nothing
        fmap = self.objective_.feature_map
        # Kernel models: chain rule through the feature map (basis held fixed).
        return P if fmap is None else fmap.vjp(self.X_input_[rows], P)

    def test_loss(self, X, y):
        Xt, _, t = self.test_factors(X, y, "loss", warn_flat=False)
        return self.objective_.loss(Xt, t)

    # -- the training problem, for refits and the applications -------------------
    def inverse_hessian(self):
        """Dense ``H^-1``, which the Newton leave-one-out updates need."""
        try:
            return self.solver_.inverse()
        except (NotImplementedError, AttributeError) as exc:
            raise UnsupportedOperationError(
                f"method='newton' needs the dense inverse Hessian, which the "
                f"{type(self.solver_).__name__} does not form; use "
                "solver='exact' (or method='influence')."
            ) from exc

    def newton_inverse(self):
        """What the Newton leave-one-out changes multiply by: ``H^-1`` or its factor.

        On the QR path (a Hessian too ill-conditioned for Cholesky), the
        solver's triangular solves, which stay accurate where products with
        the explicit inverse lose about ``cond(H) eps``; else the dense inverse.
        """
        if getattr(self.solver_, "method_", None) == "qr":
            return self.solver_
        return self.inverse_hessian()

    def training_data(self):
        """``(X, y, weights)``: the final model's input, labels, effective weights."""
        return self.X_input_, self.y_, self.weights_

    def training_problem(self):
        """:data:`TrainingProblem` of the objective, its features and targets."""
        return TrainingProblem(
            self.objective_, self.X_, self.target_, self.weights_, self.sample_weight_
        )

    def loo_own_outputs(self):
        """Each row's linear outputs under one Newton step without it, (n, K)."""
        return _formulas.loo_own_outputs(
            self.objective_,
            self.inverse_hessian(),
            self.X_,
            self.target_,
            self.weights_,
            self.n_jobs,
        )

    def whitening(self):
        """What makes the Hessian the identity for a refit without rows.

        Its lower Cholesky factor when the solver holds one; else (iterative
        solvers) the square root of its diagonal, from one pass over the rows.
        """
        factor = _formulas.half_factor(self.solver_)
        if factor is not None:
            return factor[0]
        diagonal = self.objective_.hessian_diagonal(
            self.X_, self.target_, self.weights_
        )
        return np.sqrt(np.maximum(diagonal, np.finfo(float).tiny))

    def refit_without(self, rows, *, whitening=None, start=None, gtol=1e-3):
        """``(objective, converged)`` minimised without ``rows``, from the fit."""
        whitening = self.whitening() if whitening is None else whitening
        return refit_without(
            self.objective_,
            whitening,
            self.X_,
            self.target_,
            self.weights_,
            rows,
            start=start,
            gtol=gtol,
        )

    def refit_test_losses(self, removals, X, y, n_jobs=None):
        """Actual change of the summed test loss when each set of rows is removed.

        Each removal refits the final estimator (a warm-started clone, with its
        own settings) on the other rows; earlier Pipeline steps stay fixed.
        When the explained fit is at its optimum and its parameters are the
        objective's own (linear models, GLMs), each refit is finished with
        Newton steps as the explainer finishes its own fit: a refit stopped
        by the estimator's ``tol`` would otherwise move less than the
        change being measured.
        """
        X_test = self.model_input(X)
        Xt, _, t = self.test_factors(X, y, "loss", warn_flat=False)
        base = self.objective_.loss(Xt, t).sum()
        X_in, labels, sw = self.X_input_, self.y_, self.sample_weight_
        polish = (
            self.stationarity_ <= STATIONARY
            and not getattr(self.objective_, "approximate", False)
            and parameters_writable(self.model_, self.objective_)
        )
        refit = _polished_refit_loss if polish else refit_loss

        def without(rows):
            keep = np.ones(self.n_train_, dtype=bool)
            keep[rows] = False
            return keep

        losses = Parallel(n_jobs=n_jobs)(
            delayed(refit)(self.model_, X_in, labels, sw, without(r), X_test, t)
            for r in removals
        )
        return np.asarray(losses) - base

    def test_outputs(self, X, y=None, *, target="loss", objective=None):
        """Each test row's quantity ``target`` under ``objective`` (default: fit).

        The value whose derivative :meth:`test_factors` gives: the loss, the
        decision function (of ``y``'s class, or the predicted one), the
        probability of that class, or a regressor's prediction.
        """
        Xt, _, cls = self.test_factors(X, y, target, warn_flat=False)
        return _output_values(objective or self.objective_, Xt, target, cls)

    def gradient_similarity(self, X, y=None, *, target="loss"):
        """``g_t' g_i`` of shape (n_test, n_train): gradients, no Hessian.

        With ``g_i = r_i kron xt_i`` and ``g_t = f_t kron xt_t``, the product
        is ``(f_t . r_i) (xt_t . xt_i)``: one projection of the training rows.
        """
        Xt, F, _ = self.test_factors(X, y, target)
        check_result_size(
            (Xt.shape[0], self.n_train_),
            "The gradient-similarity matrix",
            "Pass fewer test rows at a time.",
        )
        G_test = self.objective_.expand(Xt, F).T
        return self.objective_.project(self.X_, self.residuals_, G_test).T

    def refit_outputs(
        self,
        keep_masks,
        X,
        y=None,
        *,
        target="loss",
        n_jobs=None,
        progress=None,
        gtol=1e-5,
        max_iter=500,
    ):
        """Test quantities after refitting on each subset of the training rows.

        Each refit minimises the objective without the other rows
        (:func:`skinfluence.core._refit.refit_without`: its penalty follows
        the estimator's own rule, ``C`` fixed or ``alpha`` relative to the
        data), by L-BFGS from the fitted parameters in coordinates whitened by
        the full model's Hessian. Up to 25 subsets are refitted together, as
        one L-BFGS over the sum of their objectives, so that each iteration
        reads the training rows once for all of them. Earlier Pipeline steps
        stay fixed.

        Parameters
        ----------
        keep_masks : ndarray of bool of shape (n_subsets, n_train)
        X, y, target : test rows, labels and quantity (see :meth:`test_outputs`).
        n_jobs : int, default=None
            Refits in threads.
        progress : callable, default=None
            Called once per subset, as its batch of refits finishes.
        gtol : float, default=1e-5
            Gradient tolerance in whitened coordinates (see ``refit_without``).
        max_iter : int, default=500
            L-BFGS iterations per refit.

        Returns
        -------
        ndarray of shape (n_subsets, n_test)
        """
        masks = self.check_keep_masks(keep_masks)
        Xt, _, cls = self.test_factors(X, y, target, warn_flat=False)
        whitening = self.whitening()
        obj = self.objective_
        # Per subset: eta, the loss's gradient and their temporaries over the
        # rows, and L-BFGS's history of the parameters.
        subset_bytes = 8 * (4 * self.n_train_ * obj.n_outputs + 25 * obj.n_params)
        batches = chunk_slices(len(masks), subset_bytes, n_jobs, max_rows=_BATCH)

        def one(batch):
            thetas, stop = refit_subsets(
                obj,
                whitening,
                self.X_,
                self.target_,
                self.weights_,
                masks[batch],
                gtol=gtol,
                max_iter=max_iter,
            )
            values = [
                _output_values(obj.with_theta(theta), Xt, target, cls)
                for theta in thetas
            ]
            return values, stop

        out, failed, reasons = [], 0, set()
        for values, stop in map_chunks(one, batches, n_jobs):
            out.extend(values)
            if stop is not None:
                failed += len(values)
                reasons.add(stop)
            for _ in values:
                if progress is not None:
                    progress()
        if failed:
            warnings.warn(
                f"Refits of {failed} of {len(masks)} subsets stopped before "
                f"every whitened gradient component fell below gtol={gtol:g} "
                f"(L-BFGS: {'; '.join(sorted(reasons))}); their outputs come "
                "from the last iterate. Raise max_iter or gtol, or strengthen "
                "the penalty.",
                ConvergenceWarning,
                stacklevel=caller_stacklevel(),
            )
        return np.asarray(out).reshape(len(masks), Xt.shape[0])

    def training_outputs(self, objective=None):
        """Linear outputs of the training rows under ``objective`` (default: fit)."""
        return (objective or self.objective_).linear_predictor(self.X_)

    def training_losses(self, eta=None):
        """Each training row's loss at outputs ``eta`` (default: the fit's)."""
        eta = self.training_outputs() if eta is None else eta
        return self.objective_.family.loss(self.target_, eta)


#: Subsets refitted together at most: one product of X with all their
#: coefficients per iteration, and a progress report per batch.
_BATCH = 25


def _output_values(objective, Xt, target, cls):
    """The test quantity ``target`` of rows ``Xt`` (linear features) at ``objective``.

    ``cls``: the encoded labels for 'loss', else each row's class index.
    """
    eta = objective.linear_predictor(Xt)
    family = objective.family
    rows = np.arange(eta.shape[0])
    if target == "loss":
        return family.loss(cls, eta)
    if target == "decision_function":
        return eta[rows, cls] if eta.shape[1] > 1 else eta[:, 0]
    if target == "predict":
        log_link = getattr(family, "link", None) == "log"
        return np.exp(eta[:, 0]) if log_link else eta[:, 0]
    if isinstance(family, BinaryLogistic):
        p = expit(eta[:, 0])
        return np.where(cls == 1, p, 1.0 - p)
    if isinstance(family, Multinomial):
        return softmax(eta, axis=1)[rows, cls]
    if isinstance(family, OneVsRestLogistic):
        S = expit(eta)  # predict_proba normalises the K sigmoids
        return S[rows, cls] / S.sum(axis=1)
    raise UnsupportedOperationError(
        f"target='predict_proba' has no closed form for {type(family).__name__}; "
        "use 'decision_function' or 'loss'."
    )


def _check_newton_target(target):
    if target not in ("loss", "decision_function", "predict"):
        raise ValueError(
            "method='newton' supports target='loss', 'decision_function' or, "
            "for regressors, 'predict'."
        )


#: Training rows from which one iterative solve per row (self-influence,
#: I_up,params, RelatIF norms) warns, where a factorization would serve.
PER_ROW_SOLVES_WARN_ROWS = 2000


def _quantity_change(objective, Xt, target, t, d_eta):
    """Change of each test quantity when its outputs move by ``d_eta``.

    ``d_eta``: shape (n_test, m, K), one change per removal; ``t`` as
    :meth:`ClosedFormBackend.test_factors` returns it. Returns (n_test, m).
    """
    n_test, m, K = d_eta.shape
    if target == "decision_function":
        return d_eta[np.arange(n_test), :, t if K > 1 else 0]
    eta = objective.linear_predictor(Xt)
    if target == "predict":  # a regressor's: the inverse link of the output
        if getattr(objective.family, "link", None) == "log":
            return np.exp(eta[:, :1] + d_eta[:, :, 0]) - np.exp(eta[:, :1])
        return d_eta[:, :, 0]
    family = objective.family
    new = family.loss(np.repeat(t, m, axis=0), (eta[:, None, :] + d_eta).reshape(-1, K))
    return new.reshape(n_test, m) - family.loss(t, eta)[:, None]


def _polished_refit_loss(model, X, y, sw, keep, X_test, t_test):
    """:func:`refit_loss` with the refit finished by Newton steps."""
    refit = warm_clone(model).fit(X[keep], y[keep], sample_weight=sw[keep])
    backend = ClosedFormBackend().fit(refit, X[keep], y[keep], sw[keep])
    backend.polish()
    return backend.objective_.loss(X_test, t_test).sum()
