"""The explainer's influence quantities for a torch network.

:class:`TorchInfluence` is what :class:`~skinfluence.InfluenceExplainer`
builds at ``fit`` when it wraps a skorch net or a
:class:`~skinfluence.torch.TorchModel`; its public methods mirror the
explainer's and take inputs already validated (and transformed by any Pipeline
prefix). Formulas and signs are the explainer's (see its Notes); with ``n``
training rows, every weight 1 and ``q = diag(wd) theta`` the decay's gradient:

- ``influence[t, i] = -g_t' H^-1 g_i``;
- ``loo_change[t, i] = g_t' H^-1 (g_i + q) / n`` (removing a row also makes the
  fixed decay relatively stronger, as for scikit-learn's SGD models);
- ``self_influence[i] = g_i' H^-1 g_i``;
- ``perturbation_influence[t, i] = -d/dx_i (g_i' H^-1 g_t)``.
"""

import warnings

import numpy as np
import torch
from sklearn import get_config
from sklearn.utils.validation import check_array, validate_data
from torch.func import vmap

from ..backends._base import (
    InfluenceBackend,
    check_2d,
    check_target,
    check_test_labels,
)
from ..core._stationarity import stationarity, stationarity_rows
from ..exceptions import NegativeCurvatureWarning, SingularHessianError
from ..solvers import SOLVERS, make_solver
from ..utils._warn import caller_stacklevel
from ._ekfac import EkfacSolver
from ._minimise import minimise, whitening_basis
from ._model import describe
from ._objective import TorchObjective, select_parameters
from ._operator import TorchHessianOperator

# solver='auto' forms the dense Hessian (p Hessian-vector products) up to here.
AUTO_EXACT_MAX_PARAMS = 2000
TORCH_SOLVERS = (*SOLVERS, "arnoldi", "ekfac")


def make_torch_solver(solver, damping, n_params, verbose=0):
    """An unfitted solver for a network (names as the explainer's ``solver``)."""
    if isinstance(solver, str):
        if solver == "auto":
            solver = "exact" if n_params <= AUTO_EXACT_MAX_PARAMS else "cg"
        if solver == "ekfac":
            return EkfacSolver(damping=damping)
        if solver == "arnoldi":  # Lanczos is Arnoldi on a symmetric matrix
            solver = "lowrank"
        if solver not in SOLVERS:
            raise ValueError(
                f"Unknown solver {solver!r}; expected 'auto' or one of "
                f"{sorted(TORCH_SOLVERS)}, or an object with fit and solve."
            )
    return make_solver(solver, damping, n_params=n_params, verbose=verbose)


class TorchInfluence(InfluenceBackend):
    """Influence of training rows on a fitted network (the explainer's backend).

    Parameters
    ----------
    params : 'all', 'last' or list of str, default='all'
        Explained parameters (see :func:`select_parameters`); the others are
        held fixed.
    solver, damping : as :class:`~skinfluence.InfluenceExplainer`
        Solvers: 'exact', 'cg', 'lissa', 'lowrank' (alias 'arnoldi'),
        'ekfac'; 'auto' is 'exact' up to 2000 parameters, else 'cg'.
    verbose : int, default=0
        1 shows the iterative solves and each retraining's L-BFGS (a
        transient bar of objective evaluations) on standard error.

    Attributes
    ----------
    objective_ : TorchObjective
    solver_ : solver object
    n_params_ : int
    parameter_names_ : list of str
    gradient_norm_ : float
        Norm of the training objective's gradient at the fitted parameters.
    stationarity_ : float
        ``||H^-1 grad L||`` over the typical single-row effect
        ``||H^-1 g_i|| / n`` (root mean square over 64 rows; without a dense
        Hessian, where solves cost per column, ``||grad L||`` over
        ``||g_i|| / n``): how far the
        fit is from stationary, in units of the effects being measured.
    eigenvalue_range_ : tuple of float or None
        Smallest and largest eigenvalue of ``H`` (undamped) when the solver
        formed it densely ('exact'), else None.
    hessian_ : ndarray of shape (n_params, n_params) or None
        That dense ``H`` (undamped), else None.
    """

    capabilities = frozenset(
        {
            "loo_change",
            "group_influence",
            "perturbation",
            "influence_params",
            "relative_influence",
            "divine",
            "training_data",
            "refit",
            "subset_refits",
        }
    )
    name = "torch"
    input_dtypes = (np.float64, np.float32)

    def __init__(self, params="all", solver="auto", damping=0.0, verbose=0):
        self.params = params
        self.solver = solver
        self.damping = damping
        self.verbose = verbose

    def alternatives(self, capability):
        if capability == "newton":
            return (
                "For torch models loo_change supports method='influence' only "
                "(the one-Newton-step updates need a model with linear outputs)."
            )
        if capability == "sample_weight":
            return "A torch model's training loss is an unweighted mean."
        return super().alternatives(capability)

    def validate_training_input(
        self, explainer, X, y, sample_weight, prefixed, frozen=False
    ):
        if sample_weight is not None:
            self.require("sample_weight", "sample_weight")
        if prefixed:
            X = check_2d(X)
            validate_data(explainer, X, skip_check_array=True)
        else:
            X = validate_data(explainer, X, dtype=self.input_dtypes)
        return X, np.asarray(y), None

    def model_input(self, X):
        """``X`` after any Pipeline prefix, as an array."""
        if self.prefix_ is None:
            return X
        return check_array(
            self.prefix_.transform(X),
            dtype=self.input_dtypes,
            input_name="X (as seen by the final estimator)",
        )

    def fit(self, model, X, y, sample_weight=None, prefix=None):
        self.prefix_ = prefix
        X = self.model_input(X)
        self.X_input_ = X
        spec = describe(model)
        names = select_parameters(spec.module, self.params)
        self.parameter_names_ = names
        self.classes_ = spec.classes
        Xt = self._tensor(X, spec)
        yt = self._encode(spec, y)
        self.objective_ = obj = TorchObjective(spec, names, Xt, yt)
        self.n_params_ = obj.n_params
        self._y = np.asarray(y)
        self.n_train_ = obj.n_samples
        operator = TorchHessianOperator(obj)
        self.solver_ = make_torch_solver(
            self.solver, self.damping, obj.n_params, verbose=self.verbose
        )
        try:
            self.solver_.fit(operator)
        except SingularHessianError as exc:
            raise SingularHessianError(
                f"{exc} For a network this usually means the fit stopped at a "
                "saddle or short of a minimum (negative curvature): fit the net "
                "yourself, bring it to a minimum with skinfluence.torch."
                "refine(net, X, y) (in float64: module.double() first) and "
                "explain FrozenEstimator(net); use smooth activations and "
                "weight decay; or pass a damping."
            ) from exc
        self.eigenvalue_range_ = None
        self.hessian_ = operator.dense_
        if operator.dense_ is not None:
            eig = np.linalg.eigvalsh(operator.dense_)
            self.eigenvalue_range_ = (float(eig[0]), float(eig[-1]))
            if eig[0] < 0:
                warnings.warn(
                    f"The Hessian has negative eigenvalues (down to {eig[0]:.3g}; "
                    f"largest {eig[-1]:.3g}): the fitted net is not at a minimum "
                    f"of its training objective. Influence uses H + "
                    f"{self.solver_.damping_:g} I; fit closer to a minimum "
                    "(skinfluence.torch.refine) or use smooth activations.",
                    NegativeCurvatureWarning,
                    stacklevel=caller_stacklevel(),
                )
        self._stationarity(operator)
        return self

    # -- conversions ------------------------------------------------------------
    @staticmethod
    def _tensor(X, spec):
        X = np.asarray(X)
        if not X.flags.writeable:  # torch wants writable memory
            X = X.copy()
        return torch.as_tensor(X, dtype=spec.dtype, device=spec.device)

    @staticmethod
    def _encode(spec, y):
        y = np.asarray(y)
        if spec.classifier:
            classes = np.asarray(spec.classes)
            idx = np.searchsorted(classes, y)
            if np.any(idx >= len(classes)) or np.any(
                classes[np.minimum(idx, len(classes) - 1)] != y
            ):
                unknown = np.setdiff1d(y, classes)[:3].tolist()
                raise ValueError(
                    f"y holds labels outside the net's classes {classes.tolist()} "
                    f"(e.g. {unknown}). The net's output k is class k; for other "
                    "labels pass them in output order: "
                    "TorchModel(module, classes=[...])."
                )
            t = torch.as_tensor(idx, dtype=torch.long, device=spec.device)
            return t.to(spec.dtype) if spec.loss == "bce_with_logits" else t
        return torch.as_tensor(y, dtype=spec.dtype, device=spec.device)

    def _solve(self, G):
        """``H^-1 G'`` for G of shape (m, p), as a (p, m) tensor."""
        obj = self.objective_
        V = self.solver_.solve(G.T.detach().cpu().numpy().astype(np.float64))
        return torch.as_tensor(
            np.asarray(V).reshape(obj.n_params, -1), dtype=obj.dtype, device=obj.device
        )

    def _stationarity(self, operator):
        obj = self.objective_
        gradient = obj.mean_gradient()
        self.gradient_norm_ = float(gradient.norm())
        rows = stationarity_rows(obj.n_samples)
        G = obj.per_sample_gradients(obj.X[rows], obj.y[rows])
        self.stationarity_ = stationarity(
            self.solver_,
            gradient.detach().cpu().numpy().astype(np.float64),
            G.detach().cpu().numpy().astype(np.float64),
            np.full(len(rows), 1.0 / obj.n_samples),
        )

    def stationarity_advice(self, model_name):
        """The warning text when the fit is far from stationary."""
        return (
            f"{model_name} is far from a stationary point of its training "
            f"objective (gradient norm {self.gradient_norm_:.3g}; the Newton "
            f"step left is {self.stationarity_:.3g} times a typical row's "
            "leave-one-out effect), so influence values are unreliable. Finish "
            "training with full-batch L-BFGS (skinfluence.torch.refine)"
            + (
                " after module.double(): float32 parameters stop short of it."
                if self.objective_.dtype == torch.float32
                else "."
            )
        )

    def _test_gradients(self, X, y, target):
        Xt, t = self._test_targets(X, y, target)
        return self.objective_.test_gradients(Xt, t, target)

    def _test_targets(self, X, y, target):
        """``(inputs, t)`` of the test rows: encoded labels or class indices."""
        check_target(target)
        obj, spec = self.objective_, self.objective_.spec
        Xt = self._tensor(self.model_input(X), spec)
        if target == "loss":
            if y is None:
                raise ValueError("y_test is required when target='loss'.")
            t = self._encode(
                spec, check_test_labels(y, Xt.shape[0], one_dimensional=False)
            )
        elif target in ("predict_proba", "decision_function") and spec.classifier:
            if target == "predict_proba" and spec.loss == "mse":
                raise ValueError("target='predict_proba' needs a classifier.")
            if y is not None:
                t = self._encode(
                    spec, check_test_labels(y, Xt.shape[0], one_dimensional=False)
                ).long()
            else:
                with torch.no_grad():
                    out = obj.outputs(obj.theta, Xt).reshape(Xt.shape[0], -1)
                t = (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(1)
        elif target == "predict" and not spec.classifier:
            t = torch.zeros(Xt.shape[0], dtype=torch.long, device=spec.device)
        else:
            raise ValueError(
                f"target={target!r} does not fit a "
                f"{'classifier' if spec.classifier else 'regressor'}; use "
                "'predict_proba'/'decision_function' for classifiers, 'predict' "
                "for regressors."
            )
        return Xt, t

    def _directions(self, X, y, target):
        return self._solve(self._test_gradients(X, y, target))

    def _blocks(self, V, rows=None):
        """Yield ``(positions, G, G V)``: training blocks within working memory.

        ``rows``: the training rows to cover (positions then index ``rows``);
        None: every row.
        """
        obj = self.objective_
        n = obj.n_samples if rows is None else len(rows)
        budget = get_config()["working_memory"] * 2**20
        step = int(max(1, min(n, budget // (8 * (self.n_params_ + V.shape[1])))))
        if rows is None:
            for block, G in obj.gradient_blocks(step):
                yield block, G, G @ V
            return
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=obj.device)
        for start in range(0, n, step):
            block = slice(start, min(start + step, n))
            G = obj.per_sample_gradients(obj.X[rows[block]], obj.y[rows[block]])
            yield block, G, G @ V

    # -- quantities ---------------------------------------------------------------
    def influence(self, X_test, y_test=None, *, target="loss"):
        V = self._directions(X_test, y_test, target)
        out = np.empty((V.shape[1], self.objective_.n_samples))
        for rows, _, GV in self._blocks(V):
            out[:, rows] = -GV.T.cpu().numpy()
        return out

    def influence_blocks(self, X_test, y_test=None, *, target="loss"):
        V = self._directions(X_test, y_test, target)
        test_rows = slice(0, V.shape[1])
        for rows, _, GV in self._blocks(V):
            yield test_rows, rows, -GV.T.cpu().numpy()

    def loo_change(self, X_test, y_test=None, *, method="influence", target="loss"):
        return self.loo_change_of(None, X_test, y_test, method=method, target=target)

    def loo_change_of(self, rows, X, y, *, method="influence", target="loss"):
        """``loo_change`` for the training rows ``rows`` (None: all) only: the
        gradients of those rows alone are computed."""
        if method != "influence":
            raise ValueError(
                f"For torch models loo_change supports method='influence' only, got "
                f"{method!r} (the Newton update needs a linear-output model)."
            )
        V = self._directions(X, y, target)
        obj = self.objective_
        shift = obj.penalty_gradient() @ V
        out = np.empty((V.shape[1], obj.n_samples if rows is None else len(rows)))
        for block, _, GV in self._blocks(V, rows):
            out[:, block] = ((GV + shift) / obj.n_samples).T.cpu().numpy()
        return out

    def influence_params(self):
        out = np.empty((self.objective_.n_samples, self.n_params_))
        for rows, G in self.objective_.gradient_blocks(256):
            out[rows] = -self._solve(G).T.cpu().numpy()
        return out

    def self_influence(self):
        out = np.empty(self.objective_.n_samples)
        for rows, G in self.objective_.gradient_blocks(256):
            out[rows] = (G * self._solve(G).T).sum(1).cpu().numpy()
        return out

    def parameter_change_norms(self):
        out = np.empty(self.objective_.n_samples)
        for rows, G in self.objective_.gradient_blocks(256):
            out[rows] = self._solve(G).norm(dim=0).cpu().numpy()
        return out

    def group_influence(self, groups, X, y=None, *, method="influence", target="loss"):
        """First order: the sum of the rows' leave-one-out changes per group."""
        loo = self.loo_change(X, y, target=target)
        return np.stack([loo[:, r].sum(axis=1) for r in groups], axis=1)

    def training_data(self):
        return self.X_input_, self._y, np.ones(self.n_train_)

    def loo_ranking(self, X, y, predicted):
        """Rows ranked for removal by their own influence, largest first.

        ``loo_change`` adds the decay's relative strengthening, the same for
        every row, so the paper's ranking by influence is kept.
        """
        own = self.influence(X, y).sum(axis=0)
        return np.argsort(-np.abs(own))

    def refit_test_losses(
        self, removals, X, y, n_jobs=None, *, max_iter=500, tol=1e-10
    ):
        """Actual change of the summed test loss when each set of rows is removed.

        Retrains the explained parameters from the fitted ones with full-batch
        L-BFGS (:func:`skinfluence.torch.minimise`) on the objective without
        the rows, whitened by the full-data Hessian when it has at most 5000
        parameters (a change of variables that leaves the optimum alone).
        """
        obj = self.objective_
        Xt = self._tensor(self.model_input(X), obj.spec)
        t = self._encode(
            obj.spec, check_test_labels(y, Xt.shape[0], one_dimensional=False)
        )
        with torch.no_grad():
            before = float(obj.losses(obj.theta, Xt, t).sum())
        basis = self._whitening_basis()
        actual = []
        for rows in removals:
            keep = np.setdiff1d(np.arange(obj.n_samples), rows)
            keep = torch.as_tensor(keep, device=obj.device)
            theta = self._retrain(keep, basis, max_iter, tol)
            with torch.no_grad():
                actual.append(float(obj.losses(theta, Xt, t).sum()) - before)
        return np.asarray(actual)

    def _retrain(self, rows, basis, max_iter, tol):
        """The explained parameters retrained on ``rows`` from the fitted ones."""
        obj = self.objective_
        return minimise(
            obj,
            obj.theta,
            rows,
            max_iter=max_iter,
            tol=tol,
            basis=basis,
            verbose=self.verbose,
        )

    def _whitening_basis(self):
        """``L^-T`` of the Hessian's Cholesky factor, up to 5000 parameters, or None."""
        return whitening_basis(self.objective_, self.hessian_)

    def _quantities(self, theta, Xt, t, target):
        fn = vmap(self.objective_.quantity(target), in_dims=(None, 0, 0))
        with torch.no_grad():
            return fn(theta, Xt, t).cpu().numpy().astype(np.float64)

    def test_outputs(self, X, y=None, *, target="loss"):
        """Each test row's quantity ``target`` at the fitted parameters."""
        Xt, t = self._test_targets(X, y, target)
        return self._quantities(self.objective_.theta, Xt, t, target)

    def gradient_similarity(self, X, y=None, *, target="loss"):
        """``g_t' g_i`` of shape (n_test, n_train): gradients, no Hessian."""
        Gt = self._test_gradients(X, y, target)
        out = np.empty((Gt.shape[0], self.objective_.n_samples))
        for rows, _, GV in self._blocks(Gt.T):
            out[:, rows] = GV.T.cpu().numpy()
        return out

    def refit_outputs(
        self,
        keep_masks,
        X,
        y=None,
        *,
        target="loss",
        n_jobs=None,
        progress=None,
        max_iter=500,
        tol=1e-10,
    ):
        """Test quantities after retraining on each subset of the training rows.

        Each retrains the explained parameters from the fitted ones with
        full-batch L-BFGS (:func:`skinfluence.torch.minimise`) on the kept
        rows, whitened as in :meth:`refit_test_losses`; the decay stays fixed.
        ``n_jobs`` is unused (torch threads its own products).

        Returns
        -------
        ndarray of shape (n_subsets, n_test)
        """
        masks = self.check_keep_masks(keep_masks)
        obj = self.objective_
        Xt, t = self._test_targets(X, y, target)
        basis = self._whitening_basis()
        out = []
        for keep in masks:
            rows = torch.as_tensor(np.flatnonzero(keep), device=obj.device)
            theta = self._retrain(rows, basis, max_iter, tol)
            out.append(self._quantities(theta, Xt, t, target))
            if progress is not None:
                progress()
        return np.asarray(out).reshape(len(masks), Xt.shape[0])

    def perturbation_influence(self, X_test, y_test=None, *, target="loss"):
        V = self._directions(X_test, y_test, target)
        obj = self.objective_
        out = np.empty((V.shape[1], obj.n_samples, obj.X.shape[1]))
        for start in range(0, obj.n_samples, 256):
            rows = slice(start, min(start + 256, obj.n_samples))
            P = obj.mixed_products(obj.X[rows], obj.y[rows], V)
            out[:, rows] = -P.transpose(0, 1).cpu().numpy()
        return out

    def test_loss(self, X, y):
        obj, spec = self.objective_, self.objective_.spec
        Xt = self._tensor(self.model_input(X), spec)
        y = check_test_labels(y, Xt.shape[0], one_dimensional=False)
        with torch.no_grad():
            return obj.losses(obj.theta, Xt, self._encode(spec, y)).cpu().numpy()
