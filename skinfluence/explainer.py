"""InfluenceExplainer: influence functions of a fitted model, over one backend."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from .adapters import parameters_writable, set_fitted_parameters
from .backends import make_backend
from .backends._base import check_2d, check_finite_input
from .exceptions import (
    FlatLossWarning,
    StationarityWarning,
    UnsupportedOperationError,
)
from .utils._checks import (
    as_fitted_input,
    check_frozen_is_fitted,
    check_groups,
    fit_params_for,
    is_frozen,
    model_feature_names,
    pandas_index,
    split_model,
    warn_if_misaligned,
    warn_if_repeated,
)
from .utils._output import PandasOutputMixin, row_labels
from .utils._progress import stage
from .utils._warn import caller_stacklevel

_LOO_METHODS = ("influence", "newton")
_TOP_METHODS = {"influence": None, "theta_relatif": "theta", "l_relatif": "l"}


def _delegates(attr):
    def check(self):
        source = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        return hasattr(source, attr)

    return check


def _check_method(method, allowed):
    if method not in allowed:
        raise ValueError(f"method must be one of {list(allowed)}, got {method!r}.")


class InfluenceExplainer(PandasOutputMixin, MetaEstimatorMixin, BaseEstimator):
    """Influence functions (Koh & Liang, 2017) of a convex scikit-learn model.

    Fits (or wraps) the estimator, then builds the per-sample gradients and the
    exact Hessian of the objective the estimator itself minimises, with its own
    scaling of ``C``/``alpha``, sample and class weights and unpenalized
    intercepts. Every influence quantity is then a few matrix products.

    Parameters
    ----------
    estimator : estimator object
        A supported model (see ``skinfluence.SUPPORTED_ESTIMATORS``), a
        ``Pipeline`` ending in one (earlier steps act as
        a fixed feature map: influence is with respect to their output), or an
        already-fitted model wrapped in ``FrozenEstimator``
        (no refit). Also a skorch ``NeuralNetClassifier``/``NeuralNetRegressor``
        or a trained torch module in :class:`skinfluence.torch.TorchModel`
        (the optional torch backend, see :mod:`skinfluence.torch`), and
        gradient-boosted trees (``HistGradientBoosting*``,
        ``GradientBoosting*``, LightGBM, XGBoost; the tree backend, see
        ``skinfluence.backends.trees``).
    damping : float or 'auto', default=0.0
        Added to the Hessian's diagonal (the paper's ``H + lambda I``); needed
        only when the Hessian is singular. 'auto' picks it from the Hessian's
        extreme eigenvalues (:func:`skinfluence.solvers.auto_damping`).
    solver : {'auto', 'exact', 'cg', 'lissa', 'lowrank', 'arnoldi', 'ekfac', \
            'woodbury', 'boostin', 'leaf_influence', 'leaf_refit'} or solver \
            object, default='auto'
        Inverse-Hessian solver (see ``skinfluence.solvers``): 'auto' is
        'woodbury' (exact, through an ``(n K, n K)`` factor) for wide
        penalized linear models with ``n_samples * n_outputs <= 4000`` (up to
        5000 parameters, from 1000 parameters and with ``n_samples *
        n_outputs`` at most a quarter of them), else 'exact' (one Cholesky)
        up to 5000 parameters, else 'exact' up to 8192 parameters (a dense
        Hessian of at most a quarter of physical memory), else 'cg'
        (matrix-free conjugate gradients). An object with ``fit(operator)``
        and ``solve(B)`` is copied, then fitted.
        ``loo_change(method='newton')`` and the held-out scores of
        :class:`~skinfluence.MislabelDetector` need a solver that forms
        ``H^-1`` ('exact' or 'woodbury').
        'arnoldi' is 'lowrank' (Lanczos is Arnoldi for a symmetric matrix);
        'ekfac' (torch models only) is :class:`skinfluence.torch.EkfacSolver`.
        For torch models 'auto' is 'exact' up to 2000 parameters. For boosted
        trees the solver is the method: 'auto' or 'boostin', 'leaf_influence',
        'leaf_refit' (see ``TreeBackend``).
    stationarity_tol : float, default=0.1
        Warn with :class:`~skinfluence.exceptions.StationarityWarning` when
        the Newton step still left
        at the fitted parameters exceeds this fraction of a typical row's
        leave-one-out effect on the parameters.
    n_jobs : int, default=None
        Threads (joblib) for the loops over chunks of rows: Hessian products,
        ``self_influence``, ``top_influential``, ``influence_blocks``. None
        means 1, -1 all cores. Chunks are sized so that those in flight take
        at most scikit-learn's ``working_memory`` together.
    verbose : int, default=0
        1 prints the stages of ``fit`` (fitting, the Hessian, the Newton steps
        that finish the fit) to standard error, and shows the work of the
        solvers named by ``solver``: a transient bar over each iterative
        solve ('cg': iterations, with the largest residual left; 'lissa':
        recursion steps), here and in the methods that solve (tqdm when
        installed, else one line per solve). For torch models also each
        retraining's L-BFGS (``validate_loo``). A solver object keeps its
        own ``verbose``; a skorch net its own epoch log.
    params : 'all', 'last' or list of str, default='all'
        Torch models only: the parameters explained (the others are held
        fixed): all, the last layer's (Koh & Liang's frozen-Inception
        setting), or the named modules or parameters (``['fc', 'conv1']``).
        Other estimators accept only 'all'.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``estimator`` (``estimator`` itself when frozen).
        Fitted on a DataFrame, it records the column names
        (``feature_names_in_``) and predicts on frames as a model fitted
        there would.
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
        For boosted trees: the largest gap between the fitted leaf values and
        the Newton steps the training rows give, over a typical row's share
        of its leaf's value (about 1e-6 when the model was fitted on these
        rows; above ``stationarity_tol`` a warning says it was not).
    n_polish_steps_ : int
        Newton steps the explainer took to finish its own clone's fit (0 when
        already stationary, or for a frozen model, which is explained as it
        is). The steps use the exact Hessian it factorizes anyway (one
        factorization serves several steps while they converge quickly; the
        kept one is at the final parameters), stop once
        ``stationarity_ <= 1e-3``, and are written back to ``estimator_``, so
        its predictions follow the polished parameters. Estimators whose
        parameters are not the objective's own (kernel models, hinge models)
        are not polished.
    classes_ : ndarray of shape (n_classes,)
        Class labels, for classifiers.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has string column names.

    Notes
    -----
    Sign and scale conventions, with ``W`` the sum of training weights (``n``
    without weights) and ``w_i`` row i's weight:

    ========================== ========================= ==========================
    method                     units                     a positive value means
    ========================== ========================= ==========================
    ``influence``              d test loss / d eps       upweighting the row raises
                               (``I_up,loss``)           the test loss: harmful
    ``loo_change``             change of test loss       removing the row raises
                               when the row is removed   the test loss: helpful
                               (``~ -w_i/W I_up,loss``)
    ``influence_params``       d theta / d eps           (a direction, no sign)
    ``self_influence``         ``-I_up,loss(z_i,z_i)``   removing the row raises
                                                         its own loss (>= 0 with a
                                                         convex objective)
    ``perturbation_influence`` d test loss / d x_i       moving x_i along that
                               (``I_pert,loss``)         feature raises test loss
    ========================== ========================= ==========================

    Memory: nothing of the size of ``X`` is copied. Per-row quantities
    (``self_influence``, ``top_influential``, ``influence_blocks``, the Hessian
    and its products) walk chunks of training (and test) rows whose
    temporaries fit in ``sklearn.get_config()['working_memory']`` (at most
    65,536 rows each); only the methods that return a full
    ``(n_test, n_train)`` or ``(n_train, n_params)`` array hold one.

    ``X`` may be a dask array (with ``estimator`` fitted beforehand and
    wrapped in ``FrozenEstimator``): the Hessian is then a
    reduction over its row chunks, ``influence`` and ``self_influence``
    return lazy dask arrays with one block per chunk, and ``top_influential``
    merges per-chunk top-k tables (see ``skinfluence.backends``).

    For estimators whose penalty is relative to the data size (GLMs, SGD),
    upweighting or removing a row also changes the penalty's relative weight;
    ``influence`` and ``loo_change`` include that term, so they match
    refitting. For the others they are exactly the paper's formulas.

    pandas output: with ``set_output`` ``(transform="pandas")`` (or
    ``sklearn.set_config(transform_output="pandas")``), ``influence``,
    ``loo_change`` and ``relative_influence`` return DataFrames indexed by
    the test rows' index labels with the training rows' labels as columns,
    ``self_influence`` a Series and ``influence_params`` a DataFrame with
    :meth:`parameter_names` as columns. Positions are used where the input
    had no index. Lazy dask results stay dask arrays.

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

    Results indexed by the rows' labels:

    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> X, y = load_diabetes(return_X_y=True, as_frame=True)
    >>> ex = InfluenceExplainer(Ridge()).set_output(transform="pandas")
    >>> ex.fit(X[:100], y[:100]).self_influence().index[:3].tolist()
    [0, 1, 2]
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
                    "boostin",
                    "leaf_influence",
                    "leaf_refit",
                }
            ),
            HasMethods(["fit", "solve"]),
        ],
        "params": [StrOptions({"all", "last"}), list],
        "stationarity_tol": [Interval(Real, 0, None, closed="left")],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
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
        verbose=0,
    ):
        self.estimator = estimator
        self.damping = damping
        self.solver = solver
        self.stationarity_tol = stationarity_tol
        self.n_jobs = n_jobs
        self.params = params
        self.verbose = verbose

    # -- fitting ----------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the estimator and factorize its training objective's Hessian.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape \
                (n_samples, n_features)
            Never copied when a float64 array (or CSR matrix) and no Pipeline
            prefix transforms it. A dask array needs a fitted ``estimator``
            in ``FrozenEstimator``.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
        **fit_params
            Refused: the explainer refits the model (for ``validate_loo``)
            with its own settings only. Fit a model that needs fit
            parameters yourself and explain ``FrozenEstimator(model)``.

        Returns
        -------
        self : InfluenceExplainer
        """
        if fit_params:
            raise TypeError(
                f"InfluenceExplainer.fit takes no fit parameters of the model "
                f"(got {sorted(fit_params)}). Fit the model yourself, "
                "model.fit(X, y, ...), and explain FrozenEstimator(model)."
            )
        check_frozen_is_fitted(self.estimator)
        backend = make_backend(
            self.estimator,
            X,
            solver=self.solver,
            damping=self.damping,
            params=self.params,
            n_jobs=self.n_jobs,
            verbose=self.verbose,
        )
        backend.check_estimator(self.estimator)
        train_index = pandas_index(X)
        warn_if_misaligned(train_index, y=y, sample_weight=sample_weight)
        # Rows the estimator validates itself (a Pipeline's first step, a
        # model that encodes categorical columns) reach it as given.
        self._raw_input = self._has_prefix() or backend.validates_own_input(
            self.estimator, X
        )
        X, y, weights = backend.validate_training_input(
            self,
            X,
            y,
            sample_weight,
            prefixed=self._raw_input,
            frozen=is_frozen(self.estimator),
        )
        self.estimator_ = clone(self.estimator)
        if not is_frozen(self.estimator):
            stage(f"fitting {type(self.estimator).__name__}", self.verbose)
        # Validated rows of a DataFrame are refitted with its column names, so
        # the fitted model checks them as if fitted on the frame.
        self.estimator_.fit(
            as_fitted_input(self, X),
            y,
            **fit_params_for(self.estimator_, sample_weight),
        )
        self._X_fit = X  # a reference, for training_input (no copy)
        prefix, model = split_model(self.estimator_)
        if getattr(model, "classes_", None) is not None:
            self.classes_ = np.asarray(model.classes_)
        work = backend.fit_work.format(model=type(model).__name__, name=backend.name)
        stage(work, self.verbose)
        self.backend_ = backend.fit(model, X, y, weights, prefix=prefix)
        solver_name = type(getattr(backend, "solver_", None)).__name__
        self.n_polish_steps_ = 0
        if (
            not is_frozen(self.estimator)
            and backend.supports("polish")
            and parameters_writable(model, backend.objective_)
        ):
            # Our own clone: finish its fit on the exact Hessian at hand, so
            # the influence is that of the optimum (and the clone predicts
            # with the polished parameters).
            stage(
                f"{solver_name} ready; finishing the fit by Newton steps "
                f"(stationarity {backend.stationarity_:.2g})",
                self.verbose,
            )
            self.n_polish_steps_ = backend.polish()
            if self.n_polish_steps_:
                set_fitted_parameters(model, backend.objective_)
                stage(
                    f"finished the fit with {self.n_polish_steps_} Newton "
                    f"step(s): stationarity {backend.stationarity_:.2g}",
                    self.verbose,
                )
        self.train_index_ = train_index
        warn_if_repeated(
            train_index, "the train_row labels in top_influential and validate_loo"
        )
        self.objective_ = backend.objective_
        self.solver_ = backend.solver_
        self.n_params_ = backend.n_params_
        self.stationarity_ = backend.stationarity_
        if self.stationarity_ > self.stationarity_tol:
            advice = backend.stationarity_advice(type(model).__name__)
            if advice is not None:
                warnings.warn(
                    advice, StationarityWarning, stacklevel=caller_stacklevel()
                )
        return self

    # -- delegation -------------------------------------------------------------
    @available_if(_delegates("predict"))
    def predict(self, X):
        """Predict with the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict(self._model_input(X))

    @available_if(_delegates("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(self._model_input(X))

    @available_if(_delegates("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(self._model_input(X))

    @available_if(_delegates("decision_function"))
    def decision_function(self, X):
        """Decision function of the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.decision_function(self._model_input(X))

    @available_if(_delegates("score"))
    def score(self, X, y, sample_weight=None):
        """Score of the fitted estimator."""
        check_is_fitted(self)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self.estimator_.score(self._model_input(X), y, **kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        tags.target_tags.positive_only = inner.target_tags.positive_only
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.string = getattr(inner.input_tags, "string", False)
        return tags

    # -- input ------------------------------------------------------------------
    def _has_prefix(self):
        return split_model(self.estimator)[0] is not None

    def _model_input(self, X):
        """Test rows validated, in the form the fitted estimator was given."""
        return as_fitted_input(self.estimator_, self._validate_test_X(X))

    def _validate_test_X(self, X, name="X_test"):
        if getattr(X, "ndim", 2) == 1:
            raise ValueError(
                f"{name} must be 2-D, one row per test point; got a 1-D "
                f"{type(X).__name__} of {len(X)} values. Reshape your data: for "
                "one row pass X.iloc[[i]] (a DataFrame), or x.reshape(1, -1) "
                "for an array."
            )
        if self._raw_input:
            X = check_2d(X)
            validate_data(self, X, reset=False, skip_check_array=True)
            return X
        # Tree ensembles route missing values: NaN is input there.
        finite = "allow-nan" if getattr(self.backend_, "allow_nan", False) else True
        try:
            return validate_data(
                self,
                X,
                reset=False,
                accept_sparse=["csr", "csc"],
                dtype=np.float64,
                ensure_all_finite=finite,
            )
        except ValueError:
            check_finite_input(X, name)  # the clearer message, if that was it
            raise

    def validate_test_input(self, X, y=None):
        """``X`` checked against the training input, ready for ``backend_``.

        The backend's methods take test rows validated here (feature count and
        names) and apply any Pipeline prefix themselves.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), default=None
            The test labels, when given: a warning says if a pandas ``y`` is
            indexed otherwise than ``X`` (rows are paired by position).

        Returns
        -------
        {array-like, sparse matrix} of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        warn_if_misaligned(pandas_index(X), "X_test", y_test=y)
        return self._validate_test_X(X)

    def model_input(self, X):
        """``X`` as the final estimator sees it (after any Pipeline prefix).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        {ndarray, sparse matrix} of shape (n_samples, n_model_features)
        """
        X = self.validate_test_input(X)
        return self.backend_.model_input(X)

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
            The test quantity differentiated. The default stays 'loss' for
            every estimator, so that the numbers mean the same thing
            everywhere (the paper's ``I_up,loss``). The loss is the one the
            estimator itself minimises, at its scale: Ridge's ``(y - f)^2``,
            a boosted model's or SGDRegressor's ``(y - f)^2 / 2`` (see the
            user guide's table). A hinge-type model (SVMs)
            has zero loss, and zero influence on it, at every test row outside
            its margin: a :class:`~skinfluence.exceptions.FlatLossWarning`
            then names ``target='decision_function'``, which says which rows
            move the prediction.

        Returns
        -------
        ndarray of shape (n_test, n_train)
            A lazy dask array (one block per chunk of training rows) when the
            explainer was fitted on a dask array.
        """
        test_index = pandas_index(X_test)
        X_test = self.validate_test_input(X_test, y_test)
        out = self.backend_.influence(X_test, y_test, target=target)
        return self._test_by_train(out, test_index)

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
            Supports ``target`` in ('loss', 'decision_function') and, for
            regressors, 'predict'.

        Returns
        -------
        ndarray of shape (n_test, n_train)
            Positive: removing the row raises the test quantity.
        """
        _check_method(method, _LOO_METHODS)
        test_index = pandas_index(X_test)
        X_test = self.validate_test_input(X_test, y_test)
        self.backend_.require("loo_change", "loo_change")
        if method == "newton":
            self.backend_.require("newton", "loo_change(method='newton')")
        out = self.backend_.loo_change(X_test, y_test, method=method, target=target)
        return self._test_by_train(out, test_index)

    def group_influence(
        self, groups, X_test, y_test=None, *, method="influence", target="loss"
    ):
        """Predicted change of each test quantity when a whole group is removed.

        Koh et al. (2019): the first-order prediction is the sum of the rows'
        leave-one-out changes; it keeps a high rank correlation with refitting
        but underestimates the change for large, coherent groups (one class,
        one cluster), where one Newton step without the group's rows does
        better. The other rows keep their fitted weights: with
        ``class_weight='balanced'`` a refit recomputes them from the class
        counts left, which for a group mostly of one class can outweigh the
        group itself (and change the sign).

        Parameters
        ----------
        groups : array-like of shape (n_train,) or list of array-like
            A group label per training row (every distinct label is a group),
            or a list of groups (they may overlap), each a boolean mask of
            length ``n_train`` or an array of rows: index labels of the
            training data when it had a pandas index (as ``top_influential``
            reports them in ``train_row``), else positions.
        X_test, y_test, target : see :meth:`influence`.
        method : {'influence', 'newton'}, default='influence'
            ``'influence'``: the first-order sum (any solver).
            ``'newton'``: one Newton step on the objective without the group's
            rows (a Woodbury update of ``H^-1`` with the group's
            rank-``|S| K`` curvature, or one ``p x p`` solve when that is
            cheaper), with the test quantity evaluated exactly there. Exact
            for least squares and ridge; needs ``solver='exact'``; supports
            ``target`` in ('loss', 'decision_function') and, for regressors,
            'predict'.

        Returns
        -------
        pandas.DataFrame or ndarray of shape (n_test, n_groups)
            Positive: removing the group raises the test quantity. A
            DataFrame whose columns (named ``group``) are the sorted distinct
            labels and whose index (``test_row``) is that of ``X_test`` when
            ``groups`` holds labels; when ``groups`` is a list, an ndarray
            whose columns follow the list (a DataFrame with columns 0, 1, ...
            under ``set_output(transform="pandas")``).

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
        _check_method(method, _LOO_METHODS)
        test_index = pandas_index(X_test)
        X_test = self.validate_test_input(X_test, y_test)
        self.backend_.require("group_influence", "group_influence")
        if method == "newton":
            self.backend_.require("newton", "group_influence(method='newton')")
        warn_if_misaligned(self.train_index_, groups=groups)
        rows, labels = check_groups(groups, self.backend_.n_train_, self.train_index_)
        out = self.backend_.group_influence(
            rows, X_test, y_test, method=method, target=target
        )
        if labels is None:
            if not self._pandas_output():
                return out
            labels = np.arange(out.shape[1])  # the list's positions
        import pandas as pd

        frame = pd.DataFrame(
            out, columns=labels, index=row_labels(test_index, out.shape[0])
        )
        frame.index.name, frame.columns.name = "test_row", "group"
        return frame

    def influence_params(self):
        """``I_up,params``: change of the parameters per unit upweighting.

        Returns
        -------
        ndarray of shape (n_train, n_params)
            Row i is ``-H^-1 g_i``; the parameter layout is that of
            ``objective_.theta`` (per output: coefficients, then intercept).
        """
        check_is_fitted(self)
        self.backend_.require("influence_params", "influence_params")
        out = self.backend_.influence_params()
        if not self._pandas_output():
            return out
        import pandas as pd

        return pd.DataFrame(
            out, index=self._train_labels(), columns=self.parameter_names()
        )

    def self_influence(self):
        """``-I_up,loss(z_i, z_i) = g_i' H^-1 g_i`` for every training row.

        Non-negative for models with a convex objective (the Hessian is
        positive definite); large values mark rows the model bends to fit
        (outliers, mislabeled rows). Boosted trees have no such Hessian: their
        self-influence can be negative (a row the later rounds fit against).

        Returns
        -------
        ndarray of shape (n_train,)
            A lazy dask array (one block per chunk of rows) when the explainer
            was fitted on a dask array.
        """
        check_is_fitted(self)
        out = self.backend_.self_influence()
        return self._per_row(out, self.train_index_, "self_influence")

    def perturbation_influence(self, X_test, y_test=None, *, target="loss"):
        """``I_pert,loss``: test quantity's gradient wrt each training row's features.

        Parameters
        ----------
        X_test, y_test, target : see :meth:`influence`.

        Returns
        -------
        ndarray of shape (n_test, n_train, n_features)
            Features are those the final model sees (after any Pipeline prefix).
        """
        X_test = self.validate_test_input(X_test, y_test)
        self.backend_.require("perturbation", "perturbation_influence")
        return self.backend_.perturbation_influence(X_test, y_test, target=target)

    def test_loss(self, X, y):
        """Per-sample loss that the explainer differentiates.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples,)
            The loss the estimator minimises, at its scale (see the ``target``
            of :meth:`influence`), at the fitted parameters; with pandas
            output, a Series ``test_loss`` by the test rows' labels.
        """
        index = pandas_index(X)
        X = self.validate_test_input(X, y)
        return self._per_row(self.backend_.test_loss(X, y), index, "test_loss")

    def relative_influence(self, X_test, y_test=None, *, kind="theta", target="loss"):
        """RelatIF (Barshan et al., 2020): influence relative to global effect.

        ``kind='theta'``: ``I_up,loss / ||H^-1 g_i||``; ``kind='l'``:
        ``I_up,loss / sqrt(self_influence_i)``. Both down-weight rows with a
        large effect on everything (outliers), surfacing the rows specific to
        the test point.

        Parameters
        ----------
        X_test, y_test, target : see :meth:`influence`.
        kind : {'theta', 'l'}, default='theta'
            The global effect divided by: the norm of the row's parameter
            change, or the square root of its self-influence.

        Returns
        -------
        ndarray of shape (n_test, n_train)
        """
        test_index = pandas_index(X_test)
        X_test = self.validate_test_input(X_test, y_test)
        out = self.backend_.relative_influence(X_test, y_test, kind=kind, target=target)
        return self._test_by_train(out, test_index)

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
            Rows listed per side and test row, at most. A side lists only
            rows of its sign (negative influence helps, positive harms):
            rows of zero influence (e.g. a boosted tree's rows that share no
            leaf with the test row, or a test loss that is flat) are on
            neither, so a side may hold fewer than ``k``.
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
            ``train_row``, ``score`` (the value ranked by: the influence, or
            its RelatIF score; with 'divine', which scores the set of rows
            and not each row, the influence, and ``rank`` the order in which
            the greedy selection chose the rows), ``influence``, ``label`` (the row's
            given label) and ``loo_change``: the predicted change of the test
            quantity if the row were removed, by one Newton step where that
            is exact or cheap (a solver that forms H^-1: exact or woodbury, up
            to 2000 parameters: see
            ``table.attrs['loo_change_method']``), else first order. Rows are
            the index labels of pandas input. ``table.attrs`` also holds
            ``method`` and ``target`` (the plots label their axes by them).
        """
        _check_method(method, [*_TOP_METHODS, "divine"])
        if not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        check_is_fitted(self)
        if k > self.backend_.n_train_:
            warnings.warn(
                f"k={k} exceeds the {self.backend_.n_train_} training rows: "
                "listing each of them at most once, helpful or harmful by the "
                "sign of its influence (rows of zero influence on neither side).",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
            k = self.backend_.n_train_
        test_index = pandas_index(X_test)
        X_test = self.validate_test_input(X_test, y_test)
        backend = self.backend_
        _, labels, _ = backend.training_data()
        if method == "divine":
            from .diverse import diverse_top_k

            backend.require("divine", "top_influential(method='divine')")
            pool = backend.candidate_pool(
                X_test, y_test, size=max(10 * k, 100), target=target
            )
            X_rows = backend.training_data()[0]
            top = diverse_top_k(pool, X_rows, k, gamma, diversity, kernel)
        else:
            relatif = _TOP_METHODS[method]
            top = backend.top_k(X_test, y_test, k=k, target=target, relatif=relatif)
        extra = {}
        if backend.supports("loo_change"):
            loo_method = backend.preferred_loo_method(target)
            with warnings.catch_warnings():  # the ranking's pass has warned
                warnings.simplefilter("ignore", FlatLossWarning)
                extra["loo_change"] = backend.loo_change_of(
                    top.rows(), X_test, y_test, method=loo_method, target=target
                )
        table = top.table(labels, self.train_index_, test_index, extra)
        table.attrs.update(method=method, target=target)
        if extra:
            table.attrs["loo_change_method"] = loo_method
        return table

    def top_self_influence(self, k=10):
        """The k training rows with the largest self-influence, as a table.

        The rows the model bends most to fit: outliers and, for classifiers,
        the likeliest label errors.

        Parameters
        ----------
        k : int, default=10

        Returns
        -------
        pandas.DataFrame
            ``rank``, ``train_row`` (index labels of pandas input),
            ``self_influence``, ``label`` (the given label) and, for
            classifiers, ``suggested_label``: the class the model predicts for
            the row once it is held out (one Newton step without it, where
            the backend has the dense inverse Hessian), else the full model's
            prediction.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_iris(return_X_y=True)
        >>> y[0] = 2  # a setosa labelled virginica
        >>> ex = InfluenceExplainer(LogisticRegression(max_iter=1000)).fit(X, y)
        >>> top = ex.top_self_influence(k=3)
        >>> int(top.train_row[0]), int(top.suggested_label[0])
        (0, 0)
        """
        import pandas as pd

        if not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        scores = np.asarray(self.self_influence())
        k = min(k, scores.shape[0])
        order = np.argsort(-scores, kind="stable")[:k]
        labels = self.backend_.training_data()[1]
        index = self.train_index_
        table = pd.DataFrame(
            {
                "rank": np.arange(1, k + 1),
                "train_row": order if index is None else np.asarray(index)[order],
                "self_influence": scores[order],
                "label": np.asarray(labels)[order],
            }
        )
        if getattr(self, "classes_", None) is not None:
            table["suggested_label"] = self._held_out_predictions(order)
        return table

    def _held_out_predictions(self, rows):
        backend = self.backend_
        if backend.supports("training_problem"):
            try:
                eta = backend.loo_own_outputs()[rows]
            except UnsupportedOperationError:
                eta = backend.training_outputs()[rows]
            index = (eta[:, 0] > 0).astype(int) if eta.shape[1] == 1 else eta.argmax(1)
            return np.asarray(self.classes_)[index]
        rows_in = _safe_indexing(self.training_input(), rows)
        return self.estimator_.predict(as_fitted_input(self.estimator_, rows_in))

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
        it too (at most 65,536 rows). The whole matrix is never held at once.
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
        X_test = self.validate_test_input(X_test, y_test)
        yield from self.backend_.influence_blocks(X_test, y_test, target=target)

    # -- pandas output ------------------------------------------------------------
    def _train_labels(self):
        return row_labels(self.train_index_, self.n_train_)

    def _test_by_train(self, out, test_index):
        """``out`` as a DataFrame of test rows by training rows, if asked."""
        if not self._pandas_output() or not isinstance(out, np.ndarray):
            return out
        import pandas as pd

        index = row_labels(test_index, out.shape[0])
        frame = pd.DataFrame(out, index=index, columns=self._train_labels())
        frame.index.name, frame.columns.name = "test_row", "train_row"
        return frame

    def parameter_names(self):
        """Names of the explained parameters, in ``objective_.theta``'s order.

        For linear-output models ``<feature>`` and ``intercept`` per output,
        prefixed by ``<class>__`` when there are several outputs; the features
        are those the final estimator sees (a Pipeline prefix's
        ``get_feature_names_out``). ``theta<j>`` otherwise.

        Returns
        -------
        ndarray of str of shape (n_params,)
        """
        check_is_fitted(self)
        obj = self.objective_
        block = getattr(obj, "block_size", None)
        if block is None or obj.feature_map is not None:
            return np.array([f"theta{j}" for j in range(self.n_params_)], dtype=object)
        names = list(model_feature_names(self, obj.n_features))
        if obj.fit_intercept:
            names.append("intercept")
        K = obj.n_outputs
        if K == 1:
            return np.asarray(names, dtype=object)
        classes = getattr(obj.family, "classes", None)
        labels = classes if classes is not None else range(K)
        return np.array([f"{c}__{n}" for c in labels for n in names], dtype=object)

    @property
    def n_train_(self):
        """Number of training rows."""
        check_is_fitted(self)
        return self.backend_.n_train_

    def training_input(self):
        """The training rows as passed to ``fit`` (before any Pipeline prefix).

        The very object ``fit`` received after validation (a DataFrame stays a
        DataFrame); not a copy, so do not modify it. Use it to show training
        rows as the user knows them, e.g. images before standardization.
        """
        check_is_fitted(self)
        return self._X_fit

    def training_data(self):
        """``(X, y, sample_weight)`` the final model was trained on.

        ``X`` is the input of the final estimator (after any Pipeline prefix);
        the weights include class_weight.
        """
        check_is_fitted(self)
        self.backend_.require("training_data", "training_data")
        return tuple(a.copy() for a in self.backend_.training_data())
