"""InfluenceExplainer: influence functions for a fitted convex estimator."""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _influence
from ._checks import check_result_size, fit_params_for, split_model
from ._selection import StreamingTopK
from .objectives import build_objective, is_supported
from .solvers import HessianOperator, make_solver

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


class StationarityWarning(ConvergenceWarning):
    """The wrapped model is too far from its optimum for reliable influence."""


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
        (no refit).
    damping : float or 'auto', default=0.0
        Added to the Hessian's diagonal (the paper's ``H + lambda I``); needed
        only when the Hessian is singular. 'auto' picks it from the Hessian's
        extreme eigenvalues (:func:`skinfluence.solvers.auto_damping`).
    solver : {'auto', 'exact', 'cg', 'lissa', 'lowrank'} or solver object, \
            default='auto'
        Inverse-Hessian solver (see ``skinfluence.solvers``): 'auto' is
        'exact' (one Cholesky) up to 5000 parameters, else 'cg' (matrix-free
        conjugate gradients). An object with ``fit(operator)`` and ``solve(B)``
        is copied, then fitted. ``loo_change(method='newton')`` and the
        held-out scores of :class:`MislabelDetector` need 'exact'.
    stationarity_tol : float, default=0.1
        Warn with :class:`StationarityWarning` when the Newton step still left
        at the fitted parameters exceeds this fraction of a typical row's
        leave-one-out effect on the parameters.

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
        Remaining Newton step over the median single-row effect (0 at an exact
        optimum).
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
            StrOptions({"auto", "exact", "cg", "lissa", "lowrank"}),
            HasMethods(["fit", "solve"]),
        ],
        "stationarity_tol": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, estimator, *, damping=0.0, solver="auto", stationarity_tol=0.1):
        self.estimator = estimator
        self.damping = damping
        self.solver = solver
        self.stationarity_tol = stationarity_tol

    # -- fitting ----------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Fit the estimator and factorize its training objective's Hessian.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : InfluenceExplainer
        """
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
        operator = HessianOperator(self.objective_, Xt, self._target, self._weights)
        self.solver_ = make_solver(
            self.solver, self.damping, n_params=self.n_params_, n_samples=Xt.shape[0]
        ).fit(operator)
        self._R = self.objective_.residuals(Xt, self._target)
        self.stationarity_ = self._stationarity()
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
                stacklevel=2,
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

    def _stationarity(self):
        obj, solver = self.objective_, self.solver_
        step = np.linalg.norm(
            solver.solve(obj.mean_gradient(self._X, self._target, self._weights))
        )
        rng = check_random_state(0)
        n = self._X.shape[0]
        rows = np.sort(rng.choice(n, size=min(n, 64), replace=False))
        norms = _influence.parameter_change_norms(
            obj, solver, self._X[rows], self._R[rows]
        )
        # Root-mean-square effect: most rows of an SVM have almost none.
        effects = norms * self._weights[rows] / self._weights.sum()
        typical = np.sqrt(np.mean(effects**2))
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
        """
        Xt, F, _ = self._test_factors(X_test, y_test, target)
        check_result_size(
            (Xt.shape[0], self._X.shape[0]),
            "The influence matrix",
            "Call top_influential, which keeps only the top rows, or "
            "influence_blocks, which yields the matrix in blocks, "
            "or pass fewer test rows at a time.",
        )
        V = _influence.test_directions(self.objective_, self.solver_, Xt, F)
        return _influence.influence_matrix(self.objective_, self._X, self._R, V)

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
        Xt, F, t = self._test_factors(X_test, y_test, target)
        n_test, n_train = Xt.shape[0], self._X.shape[0]
        check_result_size(
            (n_test, n_train, self.objective_.n_outputs),
            "The leave-one-out matrix",
            "Pass fewer test rows at a time.",
        )
        obj = self.objective_
        if method == "influence":
            V = _influence.test_directions(obj, self.solver_, Xt, F)
            return _influence.loo_first_order(obj, self._X, self._R, self._weights, V)
        if target not in ("loss", "decision_function"):
            raise ValueError(
                "method='newton' supports target='loss' or 'decision_function'."
            )
        check_result_size(
            (n_train, self.n_params_),
            "The Newton parameter changes",
            "Use method='influence'.",
        )
        delta = _influence.newton_parameter_changes(
            obj, self._inverse_hessian(), self._X, self._target, self._weights
        )
        d_eta = _influence.output_changes(obj, Xt, delta)
        eta = obj.linear_predictor(Xt)
        if target == "decision_function":
            cols = np.arange(n_test)
            return d_eta[cols, :, t if d_eta.shape[2] > 1 else 0]
        K = eta.shape[1]
        new = obj.family.loss(
            np.repeat(t, n_train, axis=0), (eta[:, None, :] + d_eta).reshape(-1, K)
        )
        return new.reshape(n_test, n_train) - obj.family.loss(t, eta)[:, None]

    def influence_params(self):
        """``I_up,params``: change of the parameters per unit upweighting.

        Returns
        -------
        ndarray of shape (n_train, n_params)
            Row i is ``-H^-1 g_i``; the parameter layout is that of
            ``objective_.theta`` (per output: coefficients, then intercept).
        """
        check_is_fitted(self)
        check_result_size(
            (self._X.shape[0], self.n_params_),
            "I_up,params",
            "Use self_influence or influence instead.",
        )
        return _influence.influence_params(
            self.objective_, self.solver_, self._X, self._R
        )

    def self_influence(self):
        """``-I_up,loss(z_i, z_i) = g_i' H^-1 g_i`` for every training row.

        Non-negative; large values mark rows the model bends to fit (outliers,
        mislabeled rows).

        Returns
        -------
        ndarray of shape (n_train,)
        """
        check_is_fitted(self)
        return _influence.self_influence(
            self.objective_, self.solver_, self._X, self._R
        )

    def perturbation_influence(self, X_test, y_test=None, *, target="loss"):
        """``I_pert,loss``: test quantity's gradient wrt each training row's features.

        Returns
        -------
        ndarray of shape (n_test, n_train, n_features)
            Features are those the final model sees (after any Pipeline prefix).
        """
        Xt, F, _ = self._test_factors(X_test, y_test, target)
        check_result_size(
            (Xt.shape[0], self._X.shape[0], self._X.shape[1]),
            "I_pert,loss",
            "Pass fewer test rows at a time.",
        )
        V = _influence.test_directions(self.objective_, self.solver_, Xt, F)
        P = _influence.perturbation_influence(self.objective_, self._X, self._target, V)
        fmap = self.objective_.feature_map
        # Kernel models: chain rule through the feature map (basis held fixed).
        return P if fmap is None else fmap.vjp(self._X_input, P)

    def test_loss(self, X, y):
        """Per-sample loss that the explainer differentiates, shape (n_samples,)."""
        Xt, _, t = self._test_factors(X, y, "loss")
        return self.objective_.loss(Xt, t)

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
        scores = self.influence(X_test, y_test, target=target)
        if kind == "theta":
            norm = _influence.parameter_change_norms(
                self.objective_, self.solver_, self._X, self._R
            )
        else:
            norm = np.sqrt(np.abs(self.self_influence()))
        return scores / np.maximum(norm, np.finfo(float).tiny)

    def top_influential(
        self, X_test, y_test=None, k=5, *, method="influence", target="loss"
    ):
        """The k most helpful and k most harmful training rows per test row.

        Parameters
        ----------
        X_test, y_test, target : see :meth:`influence`.
        k : int, default=5
        method : {'influence', 'theta_relatif', 'l_relatif'}, default='influence'

        Returns
        -------
        pandas.DataFrame
            Columns ``test_row``, ``kind`` ('helpful' or 'harmful'), ``rank``,
            ``train_row``, ``score``, ``influence``, ``label``; rows are the
            index labels of pandas input.
        """
        methods = {"influence": None, "theta_relatif": "theta", "l_relatif": "l"}
        if method not in methods:
            raise ValueError(f"method must be one of {list(methods)}, got {method!r}.")
        if not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        Xt, F, _ = self._test_factors(X_test, y_test, target)
        obj, solver = self.objective_, self.solver_
        V = _influence.test_directions(obj, solver, Xt, F)
        top = StreamingTopK(k)
        for rows, infl in self._training_blocks(Xt.shape[0], V):
            if methods[method] is None:
                scores = infl
            elif methods[method] == "theta":
                scores = infl / np.maximum(
                    _influence.parameter_change_norms(
                        obj, solver, self._X[rows], self._R[rows]
                    ),
                    np.finfo(float).tiny,
                )
            else:
                own = _influence.self_influence(
                    obj, solver, self._X[rows], self._R[rows]
                )
                scores = infl / np.maximum(np.sqrt(np.abs(own)), np.finfo(float).tiny)
            top.update(rows.start, scores, infl)
        return top.table(self._y, self._index, getattr(X_test, "index", None))

    def influence_blocks(self, X_test, y_test=None, *, target="loss"):
        """The influence matrix in blocks of training rows, within working memory.

        Yields
        ------
        rows : slice
            The training rows of the block.
        block : ndarray of shape (n_test, rows.stop - rows.start)
            ``influence(X_test, y_test)[:, rows]``.

        Notes
        -----
        Blocks are sized so that one takes at most scikit-learn's
        ``working_memory`` (``sklearn.set_config``, 1024 MiB by default);
        the whole matrix is never held at once.
        """
        Xt, F, _ = self._test_factors(X_test, y_test, target)
        V = _influence.test_directions(self.objective_, self.solver_, Xt, F)
        yield from self._training_blocks(Xt.shape[0], V)

    def _training_blocks(self, n_test, V):
        n = self._X.shape[0]
        budget = get_config()["working_memory"] * 2**20
        # The block and its one temporary of the same size.
        chunk = int(max(1, min(n, budget // (16 * max(n_test, 1)))))
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            yield (
                rows,
                _influence.influence_matrix(
                    self.objective_, self._X[rows], self._R[rows], V
                ),
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
        check_is_fitted(self)
        return self._X_input.copy(), self._y.copy(), self._weights.copy()
