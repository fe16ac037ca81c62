"""InfluenceExplainer: influence functions for a fitted convex estimator."""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .adapters._registry import build_objective, is_supported
from .backends._select import is_dask, is_torch_model, torch_backend
from .core import _formulas
from .core._topk import StreamingTopK
from .exceptions import StationarityWarning
from .solvers import HessianOperator, make_solver
from .utils._checks import check_groups, fit_params_for, split_model
from .utils._chunks import check_result_size, chunk_slices, map_chunks

_TARGETS = ("loss", "decision_function", "predict_proba", "predict")


def _delegates(attr):
    def check(self):
        source = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        return hasattr(source, attr)

    return check


def _check_2d(X):
    """Shape checks for input a Pipeline will validate itself (may hold strings)."""
    if hasattr(X, "iloc") or hasattr(X, "tocsr"):
        return X
    return check_array(X, dtype=None, accept_sparse=True, ensure_all_finite=False)


class InfluenceExplainer(MetaEstimatorMixin, BaseEstimator):
    """Influence functions (Koh & Liang, 2017) of a convex scikit-learn model.

    Fits (or wraps) the estimator, then builds the per-sample gradients and the
    exact Hessian of the objective the estimator itself minimises, with its own
    scaling of ``C``/``alpha``, sample and class weights and unpenalized
    intercepts. Every influence quantity is then a few matrix products.

    Parameters
    ----------
    estimator : estimator object
        A supported model (see ``skinfluence.objectives.SUPPORTED``), a
        :class:`~sklearn.pipeline.Pipeline` ending in one (earlier steps act as
        a fixed feature map: influence is with respect to their output), or an
        already-fitted model wrapped in :class:`~sklearn.frozen.FrozenEstimator`
        (no refit). Also a skorch ``NeuralNetClassifier``/``NeuralNetRegressor``
        or a trained torch module in :class:`skinfluence.torch.TorchModel`
        (the optional torch backend, see :mod:`skinfluence.torch`).
    damping : float or 'auto', default=0.0
        Added to the Hessian's diagonal (the paper's ``H + lambda I``); needed
        only when the Hessian is singular. 'auto' picks it from the Hessian's
        extreme eigenvalues (:func:`skinfluence.solvers.auto_damping`).
    solver : {'auto', 'exact', 'cg', 'lissa', 'lowrank', 'arnoldi', 'ekfac', \
            'woodbury'} or solver object, default='auto'
        Inverse-Hessian solver (see ``skinfluence.solvers``): 'auto' is
        'exact' (one Cholesky) up to 5000 parameters, else 'woodbury' (exact,
        through an ``(n K, n K)`` factor) for wide penalized linear models with
        ``n_samples * n_outputs <= 4000``, else 'cg' (matrix-free
        conjugate gradients). An object with ``fit(operator)`` and ``solve(B)``
        is copied, then fitted. ``loo_change(method='newton')`` and the
        held-out scores of :class:`MislabelDetector` need 'exact'.
        'arnoldi' is 'lowrank' (Lanczos is Arnoldi for a symmetric matrix);
        'ekfac' (torch models only) is :class:`skinfluence.torch.EkfacSolver`.
        For torch models 'auto' is 'exact' up to 2000 parameters.
    stationarity_tol : float, default=0.1
        Warn with :class:`StationarityWarning` when the Newton step still left
        at the fitted parameters exceeds this fraction of a typical row's
        leave-one-out effect on the parameters.
    n_jobs : int, default=None
        Threads (joblib) for the loops over chunks of rows: Hessian products,
        ``self_influence``, ``top_influential``, ``influence_blocks``. None
        means 1, -1 all cores. Chunks are sized so that those in flight take
        at most scikit-learn's ``working_memory`` together.
    params : 'all', 'last' or list of str, default='all'
        Torch models only: the parameters explained (the others are held
        fixed): all, the last layer's (Koh & Liang's frozen-Inception
        setting), or the named modules or parameters (``['fc', 'conv1']``).
        Other estimators accept only 'all'.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``estimator`` (``estimator`` itself when frozen).
    objective_ : LinearObjective
        Loss, gradients and Hessian of the final model's training objective.
    solver_ : solver object
        The fitted inverse-Hessian solver.
    n_params_ : int
        Number of explained parameters (coefficients and intercepts).
    stationarity_ : float
        Norm of the Newton step left at the fitted parameters over the
        root-mean-square effect of removing one of 64 random rows on the
        parameters (0 at an exact optimum). Iterative solvers estimate that
        effect from 8 random-sign sums of the rows' changes (one block solve).
    classes_ : ndarray of shape (n_classes,)
        Class labels, for classifiers.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has string column names.

    Notes
    -----
    Sign and scale conventions, with ``W`` the sum of training weights (``n``
    without weights) and ``w_i`` row i's weight:

    ======================== ======================= ==========================
    method                   units                   a positive value means
    ======================== ======================= ==========================
    ``influence``            d test loss / d eps     upweighting the row raises
                             (``I_up,loss``)         the test loss: harmful
    ``loo_change``           change of test loss     removing the row raises
                             when the row is removed the test loss: helpful
                             (``~ -w_i/W I_up,loss``)
    ``influence_params``     d theta / d eps         (a direction, no sign)
    ``self_influence``       ``-I_up,loss(z_i,z_i)`` removing the row raises
                                                     its own loss (always >= 0)
    ``perturbation_influence`` d test loss / d x_i   moving x_i along that
                             (``I_pert,loss``)       feature raises test loss
    ======================== ======================= ==========================

    Memory: nothing of the size of ``X`` is copied. Per-row quantities
    (``self_influence``, ``top_influential``, ``influence_blocks``, the Hessian
    and its products) walk chunks of training (and test) rows whose
    temporaries fit in ``sklearn.get_config()['working_memory']`` (at most
    16,384 rows each); only the methods that return a full
    ``(n_test, n_train)`` or ``(n_train, n_params)`` array hold one.

    ``X`` may be a dask array (with ``estimator`` fitted beforehand and
    wrapped in :class:`~sklearn.frozen.FrozenEstimator`): the Hessian is then a
    reduction over its row chunks, ``influence`` and ``self_influence``
    return lazy dask arrays with one block per chunk, and ``top_influential``
    merges per-chunk top-k tables (see ``skinfluence._dask``).

    For estimators whose penalty is relative to the data size (GLMs, SGD),
    upweighting or removing a row also changes the penalty's relative weight;
    ``influence`` and ``loo_change`` include that term, so they match
    refitting. For the others they are exactly the paper's formulas.

    References
    ----------
    Koh, P. W. and Liang, P. (2017). Understanding Black-box Predictions via
    Influence Functions. ICML.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-8))
    >>> explainer = InfluenceExplainer(model).fit(X[:400], y[:400])
    >>> explainer.influence(X[400:403], y[400:403]).shape
    (3, 400)
    >>> explainer.self_influence().shape
    (400,)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        "damping": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "solver": [
            StrOptions(
                {
                    "auto",
                    "exact",
                    "cg",
                    "lissa",
                    "lowrank",
                    "arnoldi",
                    "ekfac",
                    "woodbury",
                }
            ),
            HasMethods(["fit", "solve"]),
        ],
        "params": [StrOptions({"all", "last"}), list],
        "stationarity_tol": [Interval(Real, 0, None, closed="left")],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        estimator,
        *,
        damping=0.0,
        solver="auto",
        stationarity_tol=0.1,
        n_jobs=None,
        params="all",
    ):
        self.estimator = estimator
        self.damping = damping
        self.solver = solver
        self.stationarity_tol = stationarity_tol
        self.n_jobs = n_jobs
        self.params = params

    # -- fitting ----------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Fit the estimator and factorize its training objective's Hessian.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape \
                (n_samples, n_features)
            Never copied when a float64 array (or CSR matrix) and no Pipeline
            prefix transforms it. A dask array needs a fitted ``estimator``
            in :class:`~sklearn.frozen.FrozenEstimator`.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : InfluenceExplainer
        """
        self._on_dask = is_dask(X)
        if self._on_dask:
            from .backends._dask import fit_explainer

            return fit_explainer(self, X, y, sample_weight)
        self.backend_ = None
        if is_torch_model(self.estimator):
            return self._fit_torch(X, y, sample_weight)
        if self.params != "all" or self.solver == "ekfac":
            raise ValueError(
                f"params={self.params!r} and solver='ekfac' are for torch models; "
                f"{type(self.estimator).__name__} takes params='all' and the "
                "solvers 'auto', 'exact', 'cg', 'lissa', 'lowrank' ('arnoldi'), "
                "'woodbury'."
            )
        _, model = split_model(self.estimator)
        if not is_supported(model):
            build_objective(model, None, None)  # raises the TypeError
        X, y = self._validate_train(X, y)
        self.estimator_ = clone(self.estimator)
        self.estimator_.fit(X, y, **fit_params_for(self.estimator_, sample_weight))
        feature_map, model = split_model(self.estimator_)
        self._feature_map = feature_map
        if hasattr(model, "classes_"):
            self.classes_ = model.classes_
        X_input = self._features(X)
        sw = _check_sample_weight(sample_weight, X_input, dtype=np.float64)
        self._sample_weight = sw
        self.objective_, self._weights = build_objective(model, np.asarray(y), sw)
        self._X_input = X_input
        self._X = Xt = self._kernel_features(X_input)
        self._y = np.asarray(y)
        self._target = self.objective_.family.encode(self._y)
        self._index = getattr(X, "index", None)
        self.n_params_ = self.objective_.n_params
        operator = HessianOperator(
            self.objective_, Xt, self._target, self._weights, n_jobs=self.n_jobs
        )
        self.solver_ = make_solver(
            "lowrank" if self.solver == "arnoldi" else self.solver,
            self.damping,
            n_params=self.n_params_,
            n_samples=Xt.shape[0],
            objective=self.objective_,
        ).fit(operator)
        self._R, gradient = operator.residuals_and_gradient()
        operator.residuals_ = operator.mean_gradient_ = None  # the solver may keep it
        self.stationarity_ = self._stationarity(gradient)
        self._warn_if_not_stationary(model)
        return self

    def _warn_if_not_stationary(self, model):
        # Hinge models explained through the smooth hinge are not its optimum.
        approximate = getattr(self.objective_, "approximate", False)
        if self.stationarity_ > self.stationarity_tol and not approximate:
            warnings.warn(
                f"{type(model).__name__} stopped short of its optimum: the Newton "
                f"step left is {self.stationarity_:.3g} times a typical row's "
                "leave-one-out effect, so influence values are unreliable. Fit "
                "to convergence (lower tol, raise max_iter), or for SGD models "
                "use their batch counterpart (LogisticRegression, Ridge).",
                StationarityWarning,
                stacklevel=3,
            )

    def _fit_torch(self, X, y, sample_weight):
        """Fit a skorch net or TorchModel and build its torch backend."""
        from .torch import TorchInfluence

        if sample_weight is not None:
            raise ValueError(
                "sample_weight is not supported for torch models: their training "
                "loss is an unweighted mean."
            )
        self._index = getattr(X, "index", None)
        if self._feature_map_expected():
            X = _check_2d(X)
            validate_data(self, X, skip_check_array=True)
        else:
            X = validate_data(self, X, dtype=(np.float64, np.float32))
        y = np.asarray(y)
        self.estimator_ = clone(self.estimator)
        self.estimator_.fit(X, y)
        self._feature_map, model = split_model(self.estimator_)
        if getattr(model, "classes_", None) is not None:
            self.classes_ = np.asarray(model.classes_)
        self._X_input = self._X = self._features(X)
        self._y = y
        self._weights = np.ones(y.shape[0])
        self.backend_ = TorchInfluence(
            params=self.params, solver=self.solver, damping=self.damping
        ).fit(model, self._X, y)
        self.objective_ = self.backend_.objective_
        self.solver_ = self.backend_.solver_
        self.n_params_ = self.backend_.n_params_
        self.stationarity_ = self.backend_.stationarity_
        if self.stationarity_ > self.stationarity_tol:
            warnings.warn(
                f"{type(model).__name__} is far from a stationary point of its "
                f"training objective (gradient norm "
                f"{self.backend_.gradient_norm_:.3g}; the Newton step left is "
                f"{self.stationarity_:.3g} times a typical row's leave-one-out "
                "effect), so influence values are unreliable. Finish training "
                "with full-batch L-BFGS (skinfluence.torch.refine).",
                StationarityWarning,
                stacklevel=3,
            )
        return self

    def _validate_train(self, X, y):
        if self._feature_map_expected():
            # A Pipeline validates its own input (it may take strings); record
            # the feature count and names, check y.
            X = _check_2d(X)
            validate_data(self, X, skip_check_array=True)
            return X, column_or_1d(y, warn=True)
        return validate_data(
            self, X, y, accept_sparse=["csr", "csc"], dtype=np.float64, y_numeric=False
        )

    def _feature_map_expected(self):
        prefix, _ = split_model(self.estimator)
        return prefix is not None

    def _features(self, X):
        """Validated float64 input of the final model (after any Pipeline prefix)."""
        if self._feature_map is None:
            # validate_data already checked X; only csc needs converting.
            return X.tocsr() if sp.issparse(X) else X
        X = self._feature_map.transform(X)
        return check_array(
            X,
            accept_sparse="csr",
            dtype=np.float64,
            input_name="X (as seen by the final estimator)",
        )

    def _kernel_features(self, X):
        """Features a kernel model is linear in (identity for other models)."""
        fmap = self.objective_.feature_map
        return X if fmap is None else fmap.transform(X)

    def _stationarity(self, gradient):
        """Newton step left at the fit over a typical row's parameter change.

        The typical change is the root-mean-square of ``||H^-1 g_i|| w_i / W``
        over 64 random rows (most rows of an SVM have almost none). Iterative
        solvers, for which 64 right-hand sides cost 64 solves' products,
        estimate it from 8 random-sign sums of those rows instead
        (``E ||sum_i e_i a_i||^2 = sum_i ||a_i||^2`` for signs ``e_i = +-1``),
        solved in one block with the gradient: on 20,000 x 50,000 sparse
        rows with CG, 2 s instead of 30.
        """
        obj, solver = self.objective_, self.solver_
        rows = _formulas.stationarity_rows(self._X.shape[0])
        X, R = self._X[rows], self._R[rows]
        share = self._weights[rows] / self._weights.sum()
        if _formulas._half_factor(solver) is not None:
            step = np.linalg.norm(solver.solve(gradient))
            norms = _formulas.parameter_change_norms(obj, solver, X, R)
            typical = np.sqrt(np.mean((norms * share) ** 2))
        else:
            rng = np.random.default_rng(1)
            signs = rng.choice([-1.0, 1.0], size=(len(rows), 8)) * share[:, None]
            sums = obj.expand(X, R).T @ signs + np.outer(
                obj.reweight_term(), signs.sum(0)
            )
            solved = solver.solve(np.column_stack([gradient, sums]))
            step = np.linalg.norm(solved[:, 0])
            typical = np.sqrt(np.mean(solved[:, 1:] ** 2) * solved.shape[0] / len(rows))
        return float(step / max(typical, np.finfo(float).tiny))

    # -- delegation -------------------------------------------------------------
    @available_if(_delegates("predict"))
    def predict(self, X):
        """Predict with the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict(self._validate_test_X(X))

    @available_if(_delegates("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(self._validate_test_X(X))

    @available_if(_delegates("decision_function"))
    def decision_function(self, X):
        """Decision function of the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.decision_function(self._validate_test_X(X))

    @available_if(_delegates("score"))
    def score(self, X, y, sample_weight=None):
        """Score of the fitted estimator."""
        check_is_fitted(self)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self.estimator_.score(self._validate_test_X(X), y, **kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.string = getattr(inner.input_tags, "string", False)
        return tags

    # -- test data --------------------------------------------------------------
    def _validate_test_X(self, X):
        if self._feature_map is not None:
            X = _check_2d(X)
            validate_data(self, X, reset=False, skip_check_array=True)
            return X
        return validate_data(
            self, X, reset=False, accept_sparse=["csr", "csc"], dtype=np.float64
        )

    def _test_factors(self, X, y, target):
        """Features of the final model and ``d quantity / d eta`` per test row."""
        check_is_fitted(self)
        if target not in _TARGETS:
            raise ValueError(f"target must be one of {_TARGETS}, got {target!r}.")
        Xt = self._kernel_features(self._features(self._validate_test_X(X)))
        family = self.objective_.family
        eta = self.objective_.linear_predictor(Xt)
        if target == "loss":
            if y is None:
                raise ValueError("y_test is required when target='loss'.")
            t = family.encode(self._check_y(y, Xt))
            return Xt, family.gradient(t, eta), t
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
            cls = np.asarray(family.encode(self._check_y(y, Xt)), dtype=int)
        elif classifier:
            cls = (eta[:, 0] > 0).astype(int) if eta.shape[1] == 1 else eta.argmax(1)
        else:
            cls = np.zeros(Xt.shape[0], dtype=int)
        return Xt, family.output_gradient(eta, target, cls), cls

    @staticmethod
    def _check_y(y, Xt):
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != Xt.shape[0]:
            raise ValueError(
                f"y_test must be 1-d with one label per row of X_test "
                f"({Xt.shape[0]}), got shape {y.shape}."
            )
        return y

    # -- influence quantities ---------------------------------------------------
    @torch_backend
    def influence(self, X_test, y_test=None, *, target="loss"):
        """Influence of upweighting each training row on each test quantity.

        ``I_up,loss(z_i, z_t) = -g_t' H^-1 g_i``: positive values mean that
        upweighting training row i raises the test loss (the row is harmful).
        Removing row i changes the test loss by about ``-w_i / W`` times this.

        Parameters
        ----------
        X_test : {array-like, sparse matrix} of shape (n_test, n_features)
        y_test : array-like of shape (n_test,), default=None
            Required for ``target='loss'``; for classifier predictions it
            picks the class (default: the predicted class).
        target : {'loss', 'decision_function', 'predict_proba', 'predict'}
            The test quantity differentiated.

        Returns
        -------
        ndarray of shape (n_test, n_train)
            A lazy dask array (one block per chunk of training rows) when the
            explainer was fitted on a dask array.
        """
        Xt, F, _ = self._test_factors(X_test, y_test, target)
        if self._on_dask:
            from .backends._dask import influence_matrix

            return influence_matrix(self, Xt, F)
        check_result_size(
            (Xt.shape[0], self._X.shape[0]),
            "The influence matrix",
            "Call top_influential, which keeps only the top rows, or "
            "influence_blocks, which yields the matrix in blocks, "
            "or pass fewer test rows at a time.",
        )
        V = _formulas.test_directions(self.objective_, self.solver_, Xt, F)
        return _formulas.influence_matrix(self.objective_, self._X, self._R, V)

    @torch_backend
    def loo_change(self, X_test, y_test=None, *, method="influence", target="loss"):
        """Predicted change of each test quantity when each training row is removed.

        Parameters
        ----------
        X_test, y_test, target : see :meth:`influence`.
        method : {'influence', 'newton'}, default='influence'
            ``'influence'``: the first-order ``-w_i / W * I_up,loss``.
            ``'newton'``: one Newton step on the objective without the row
            (a rank-K Woodbury update of ``H^-1``, no refactorization), with the
            test quantity evaluated exactly at the new parameters. Exact for
            least squares and ridge; closer to refitting for the others.
            Supports ``target`` in ('loss', 'decision_function').

        Returns
        -------
        ndarray of shape (n_test, n_train)
            Positive: removing the row raises the test quantity.
        """
        if method not in ("influence", "newton"):
            raise ValueError(f"method must be 'influence' or 'newton', got {method!r}.")
        self._require_in_memory("loo_change")
        Xt, F, t = self._test_factors(X_test, y_test, target)
        n_test, n_train = Xt.shape[0], self._X.shape[0]
        check_result_size(
            (n_test, n_train, self.objective_.n_outputs),
            "The leave-one-out matrix",
            "Pass fewer test rows at a time.",
        )
        obj = self.objective_
        if method == "influence":
            V = _formulas.test_directions(obj, self.solver_, Xt, F)
            return _formulas.loo_first_order(obj, self._X, self._R, self._weights, V)
        if target not in ("loss", "decision_function"):
            raise ValueError(
                "method='newton' supports target='loss' or 'decision_function'."
            )
        check_result_size(
            (n_train, self.n_params_),
            "The Newton parameter changes",
            "Use method='influence'.",
        )
        delta = _formulas.newton_parameter_changes(
            obj, self._inverse_hessian(), self._X, self._target, self._weights
        )
        d_eta = _formulas.output_changes(obj, Xt, delta)
        eta = obj.linear_predictor(Xt)
        if target == "decision_function":
            cols = np.arange(n_test)
            return d_eta[cols, :, t if d_eta.shape[2] > 1 else 0]
        K = eta.shape[1]
        new = obj.family.loss(
            np.repeat(t, n_train, axis=0), (eta[:, None, :] + d_eta).reshape(-1, K)
        )
        return new.reshape(n_test, n_train) - obj.family.loss(t, eta)[:, None]

    def group_influence(
        self, groups, X_test, y_test=None, *, method="influence", target="loss"
    ):
        """Predicted change of each test quantity when a whole group is removed.

        Koh et al. (2019): the first-order prediction is the sum of the rows'
        leave-one-out changes; it keeps a high rank correlation with refitting
        but underestimates the change for large, coherent groups (one class,
        one cluster), where one Newton step without the group's rows does
        better.

        Parameters
        ----------
        groups : array-like of shape (n_train,) or list of array-like
            A group label per training row (every distinct label is a group),
            or a list of groups, each an array of row positions or a boolean
            mask of length ``n_train`` (groups may overlap).
        X_test, y_test, target : see :meth:`influence`.
        method : {'influence', 'newton'}, default='influence'
            ``'influence'``: the first-order sum (any solver).
            ``'newton'``: one Newton step on the objective without the group's
            rows (a Woodbury update of ``H^-1`` with the group's
            rank-``|S| K`` curvature, or one ``p x p`` solve when that is
            cheaper), with the test quantity evaluated exactly there. Exact
            for least squares and ridge; needs ``solver='exact'``; supports
            ``target`` in ('loss', 'decision_function').

        Returns
        -------
        pandas.DataFrame or ndarray of shape (n_test, n_groups)
            Positive: removing the group raises the test quantity. A
            DataFrame whose columns are the sorted distinct labels (its index
            that of ``X_test``) when ``groups`` holds labels; an ndarray whose
            columns follow the list when ``groups`` is a list.

        References
        ----------
        Koh, P. W., Ang, K.-S., Teo, H. H. K. and Liang, P. (2019). On the
        Accuracy of Influence Functions for Measuring Group Effects. NeurIPS.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import Ridge
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(50, 3)), rng.normal(size=50)
        >>> explainer = InfluenceExplainer(Ridge(solver="cholesky")).fit(X, y)
        >>> change = explainer.group_influence(
        ...     [np.arange(10)], X[:2], y[:2], method="newton"
        ... )
        >>> refit = Ridge(solver="cholesky").fit(X[10:], y[10:])
        >>> new_loss = (y[:2] - refit.predict(X[:2])) ** 2  # Ridge's squared error
        >>> actual = new_loss - explainer.test_loss(X[:2], y[:2])
        >>> bool(np.allclose(change[:, 0], actual))
        True
        """
        if method not in ("influence", "newton"):
            raise ValueError(f"method must be 'influence' or 'newton', got {method!r}.")
        self._require_in_memory("group_influence")
        rows, labels = check_groups(groups, self._X.shape[0])
        if getattr(self, "backend_", None) is not None:
            if method == "newton":
                raise ValueError(
                    "method='newton' needs a model with linear outputs; for torch "
                    "models use method='influence'."
                )
            # First order is additive: sum the rows' leave-one-out changes.
            loo = self.backend_.loo_change(
                self._features(self._validate_test_X(X_test)), y_test, target=target
            )
            out = np.stack([loo[:, r].sum(axis=1) for r in rows], axis=1)
            return self._group_table(out, labels, X_test)
        Xt, F, t = self._test_factors(X_test, y_test, target)
        obj, X, w = self.objective_, self._X, self._weights
        if method == "influence":
            V = _formulas.test_directions(obj, self.solver_, Xt, F)
            out = _formulas.group_first_order(obj, X, self._R, w, rows, V)
        else:
            if target not in ("loss", "decision_function"):
                raise ValueError(
                    "method='newton' supports target='loss' or 'decision_function'."
                )
            H_inv = self._inverse_hessian()
            s, _ = obj.removal_term(w)
            eta = obj.linear_predictor(Xt)
            out = np.empty((Xt.shape[0], len(rows)))
            for g, r in enumerate(rows):
                delta = _formulas.group_newton_change(
                    obj, H_inv, X[r], self._target[r], w[r], s[r].sum(), w.sum()
                )
                d_eta = _formulas.output_changes(obj, Xt, delta[None])[:, 0, :]
                if target == "decision_function":
                    out[:, g] = d_eta[np.arange(len(t)), t if d_eta.shape[1] > 1 else 0]
                else:
                    new = obj.family.loss(t, eta + d_eta)
                    out[:, g] = new - obj.family.loss(t, eta)
        return self._group_table(out, labels, X_test)

    @staticmethod
    def _group_table(out, labels, X_test):
        if labels is None:
            return out
        import pandas as pd

        return pd.DataFrame(out, columns=labels, index=getattr(X_test, "index", None))

    @torch_backend
    def influence_params(self):
        """``I_up,params``: change of the parameters per unit upweighting.

        Returns
        -------
        ndarray of shape (n_train, n_params)
            Row i is ``-H^-1 g_i``; the parameter layout is that of
            ``objective_.theta`` (per output: coefficients, then intercept).
        """
        check_is_fitted(self)
        self._require_in_memory("influence_params")
        check_result_size(
            (self._X.shape[0], self.n_params_),
            "I_up,params",
            "Use self_influence or influence instead.",
        )
        return _formulas.influence_params(
            self.objective_, self.solver_, self._X, self._R, self.n_jobs
        )

    @torch_backend
    def self_influence(self):
        """``-I_up,loss(z_i, z_i) = g_i' H^-1 g_i`` for every training row.

        Non-negative; large values mark rows the model bends to fit (outliers,
        mislabeled rows).

        Returns
        -------
        ndarray of shape (n_train,)
            A lazy dask array (one block per chunk of rows) when the explainer
            was fitted on a dask array.
        """
        check_is_fitted(self)
        if self._on_dask:
            from .backends._dask import self_influence

            return self_influence(self)
        return _formulas.self_influence(
            self.objective_, self.solver_, self._X, self._R, self.n_jobs
        )

    @torch_backend
    def perturbation_influence(self, X_test, y_test=None, *, target="loss"):
        """``I_pert,loss``: test quantity's gradient wrt each training row's features.

        Returns
        -------
        ndarray of shape (n_test, n_train, n_features)
            Features are those the final model sees (after any Pipeline prefix).
        """
        self._require_in_memory("perturbation_influence")
        Xt, F, _ = self._test_factors(X_test, y_test, target)
        check_result_size(
            (Xt.shape[0], self._X.shape[0], self._X.shape[1]),
            "I_pert,loss",
            "Pass fewer test rows at a time.",
        )
        V = _formulas.test_directions(self.objective_, self.solver_, Xt, F)
        P = _formulas.perturbation_influence(self.objective_, self._X, self._target, V)
        fmap = self.objective_.feature_map
        # Kernel models: chain rule through the feature map (basis held fixed).
        return P if fmap is None else fmap.vjp(self._X_input, P)

    @torch_backend
    def test_loss(self, X, y):
        """Per-sample loss that the explainer differentiates, shape (n_samples,)."""
        Xt, _, t = self._test_factors(X, y, "loss")
        return self.objective_.loss(Xt, t)

    @torch_backend
    def relative_influence(self, X_test, y_test=None, *, kind="theta", target="loss"):
        """RelatIF (Barshan et al., 2020): influence relative to global effect.

        ``kind='theta'``: ``I_up,loss / ||H^-1 g_i||``; ``kind='l'``:
        ``I_up,loss / sqrt(self_influence_i)``. Both down-weight rows with a
        large effect on everything (outliers), surfacing the rows specific to
        the test point.

        Returns
        -------
        ndarray of shape (n_test, n_train)
        """
        if kind not in ("theta", "l"):
            raise ValueError(f"kind must be 'theta' or 'l', got {kind!r}.")
        self._require_in_memory("relative_influence")
        scores = self.influence(X_test, y_test, target=target)
        if kind == "theta":
            norm = _formulas.parameter_change_norms(
                self.objective_, self.solver_, self._X, self._R, self.n_jobs
            )
        else:
            norm = np.sqrt(np.abs(self.self_influence()))
        return scores / np.maximum(norm, np.finfo(float).tiny)

    @torch_backend
    def top_influential(
        self,
        X_test,
        y_test=None,
        k=5,
        *,
        method="influence",
        target="loss",
        gamma=1.0,
        diversity="facility_location",
        kernel="rbf",
    ):
        """The k most helpful and k most harmful training rows per test row.

        Parameters
        ----------
        X_test, y_test, target : see :meth:`influence`.
        k : int, default=5
        method : {'influence', 'theta_relatif', 'l_relatif', 'divine'}, \
                default='influence'
            'divine' (Bhatt et al., 2021): per test row, the k helpful (and k
            harmful) rows that maximise total influence plus ``gamma`` times
            a diversity term (:func:`skinfluence.select_diverse`), chosen
            among the ``max(10 k, 100)`` most helpful (harmful) rows kept
            while streaming over the training set; similarity is computed
            on the final estimator's input features.
        gamma, diversity, kernel : used by ``method='divine'``
            See :func:`skinfluence.select_diverse`; ``gamma=0`` is
            ``method='influence'``.

        Returns
        -------
        pandas.DataFrame
            Columns ``test_row``, ``kind`` ('helpful' or 'harmful'), ``rank``,
            ``train_row``, ``score``, ``influence``, ``label``; rows are the
            index labels of pandas input.
        """
        methods = {"influence": None, "theta_relatif": "theta", "l_relatif": "l"}
        if method not in [*methods, "divine"]:
            raise ValueError(
                f"method must be one of {[*methods, 'divine']}, got {method!r}."
            )
        if not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        test_index = getattr(X_test, "index", None)
        if method == "divine" and getattr(self, "backend_", None) is not None:
            from .diverse import diverse_top_k

            # Any backend: a pool of candidates from its blocks of influence.
            pool = StreamingTopK(max(10 * k, 100))
            features = self._features(self._validate_test_X(X_test))
            for _, rows, block in self.backend_.influence_blocks(
                features, y_test, target=target
            ):
                pool.update(rows.start, block, block)
            top = diverse_top_k(pool, self._X_input, k, gamma, diversity, kernel)
            return top.table(self._y, self._index, test_index)
        Xt, F, _ = self._test_factors(X_test, y_test, target)
        if method == "divine":
            from .diverse import diverse_top_k

            self._require_in_memory("top_influential(method='divine')")
            pool = [
                self._top_k(V, max(10 * k, 100), None)
                for _, V in self._test_directions(Xt, F)
            ]
            top = diverse_top_k(
                StreamingTopK.stack(pool), self._X_input, k, gamma, diversity, kernel
            )
            return top.table(self._y, self._index, test_index)
        if self._on_dask:
            from .backends._dask import top_influential

            return top_influential(self, Xt, F, k, methods[method], test_index)
        tops = [
            self._top_k(V, k, methods[method]) for _, V in self._test_directions(Xt, F)
        ]
        return StreamingTopK.stack(tops).table(self._y, self._index, test_index)

    @torch_backend
    def influence_blocks(self, X_test, y_test=None, *, target="loss"):
        """The influence matrix in blocks of training rows, within working memory.

        Parameters
        ----------
        X_test, y_test, target : see :meth:`influence`.

        Yields
        ------
        test_rows : slice
            The test rows of the block.
        train_rows : slice
            The training rows of the block.
        block : ndarray of shape (len(test_rows), len(train_rows))
            ``influence(X_test, y_test)[test_rows, train_rows]``.

        Notes
        -----
        Test rows are taken in chunks whose inverse-Hessian directions
        (``n_params`` numbers per test row, with the solver's temporaries) fit
        in scikit-learn's ``working_memory`` (``sklearn.set_config``, 1024 MiB
        by default); for each, the training rows follow in blocks that fit in
        it too (at most 16,384 rows). The whole matrix is never held at once.
        Blocks come in order, test chunk by test chunk; with ``n_jobs`` the
        training blocks are computed in threads. On a dask-fitted explainer
        the blocks are the training array's chunks, computed one at a time.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> X = (X - X.mean(0)) / X.std(0)
        >>> explainer = InfluenceExplainer(LogisticRegression()).fit(X, y)
        >>> most_harmful = np.zeros(5, dtype=int)
        >>> best = np.full(5, -np.inf)
        >>> for test_rows, train_rows, block in explainer.influence_blocks(
        ...     X[:5], y[:5]
        ... ):
        ...     top = block.max(axis=1)
        ...     better = top > best[test_rows]
        ...     best[test_rows] = np.where(better, top, best[test_rows])
        ...     most_harmful[test_rows] = np.where(
        ...         better, train_rows.start + block.argmax(axis=1), most_harmful
        ...     )
        >>> bool(np.all(most_harmful == explainer.influence(X[:5], y[:5]).argmax(1)))
        True
        """
        Xt, F, _ = self._test_factors(X_test, y_test, target)
        if self._on_dask:
            from .backends._dask import influence_blocks

            yield from influence_blocks(self, Xt, F)
            return
        for test_rows, V in self._test_directions(Xt, F):
            for train_rows, block in self._influence_chunks(V):
                yield test_rows, train_rows, block

    def _test_directions(self, Xt, F):
        """``(test_rows, H^-1 G_test')`` per chunk of test rows in working memory."""
        obj = self.objective_
        for rows in chunk_slices(Xt.shape[0], _formulas.test_row_bytes(obj)):
            yield rows, _formulas.test_directions(obj, self.solver_, Xt[rows], F[rows])

    def _train_chunks(self, n_test, relatif=None):
        obj = self.objective_
        row_bytes = _formulas.block_row_bytes(obj, self._X, n_test, relatif)
        return chunk_slices(self._X.shape[0], row_bytes, self.n_jobs)

    def _influence_chunks(self, V):
        """``(train_rows, block)`` of ``influence`` for test directions V."""
        obj, X, R = self.objective_, self._X, self._R

        def block(rows):
            return _formulas.influence_matrix(obj, X[rows], R[rows], V)

        chunks = self._train_chunks(V.shape[1])
        yield from zip(chunks, map_chunks(block, chunks, self.n_jobs))

    def _top_k(self, V, k, relatif):
        """:class:`StreamingTopK` over every training row for directions V."""
        obj, solver, X, R = self.objective_, self.solver_, self._X, self._R

        def block(rows):
            scores, infl = _formulas.block_scores(
                obj, solver, X[rows], R[rows], V, relatif
            )
            top = StreamingTopK(k)
            top.update(rows.start, scores, infl)
            return top

        chunks = self._train_chunks(V.shape[1], relatif)
        parts = map_chunks(block, chunks, self.n_jobs)
        top = next(parts)
        for part in parts:
            top.merge(part)
        return top

    def _require_in_memory(self, method):
        check_is_fitted(self)
        if getattr(self, "_on_dask", False):
            raise NotImplementedError(
                f"{method} is not available on an explainer fitted on a dask "
                "array; use influence, self_influence, top_influential or "
                "influence_blocks, or fit on an in-memory array."
            )

    def _inverse_hessian(self):
        """Dense ``H^-1``, which the Newton leave-one-out updates need."""
        try:
            return self.solver_.inverse()
        except (NotImplementedError, AttributeError) as exc:
            raise ValueError(
                f"method='newton' needs the dense inverse Hessian, which the "
                f"{type(self.solver_).__name__} does not form; use "
                "solver='exact' (or method='influence')."
            ) from exc

    @property
    def n_train_(self):
        """Number of training rows."""
        check_is_fitted(self)
        return self._X.shape[0]

    def training_data(self):
        """``(X, y, sample_weight)`` the final model was trained on.

        ``X`` is the input of the final estimator (after any Pipeline prefix);
        the weights include class_weight.
        """
        self._require_in_memory("training_data")
        return self._X_input.copy(), self._y.copy(), self._weights.copy()
