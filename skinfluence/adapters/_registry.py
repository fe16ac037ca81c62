"""Fitted estimator -> objective adapter, dispatched on the estimator's type."""

from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import (
    GammaRegressor,
    HuberRegressor,
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
    TweedieRegressor,
)
from sklearn.svm import SVC, LinearSVC

from ..svm import SmoothHingeSVC
from ._glm import from_glm
from ._huber import from_huber_regressor
from ._kernel import from_kernel_ridge
from ._linear import from_linear_regression, from_ridge, from_sgd_regressor
from ._logistic import (
    check_logistic_regression,
    check_sgd_classifier,
    from_logistic_regression,
    from_sgd_classifier,
)
from ._svm import from_linear_svc, from_smooth_hinge_svc, from_svc

# Order matters: the first matching type wins (LogisticRegressionCV is a
# LogisticRegression). Adding a model family = one module and one line here.
_ADAPTERS = [
    (LogisticRegression, from_logistic_regression),
    (SGDClassifier, from_sgd_classifier),
    (LinearRegression, from_linear_regression),
    (Ridge, from_ridge),
    (RidgeCV, from_ridge),
    (SGDRegressor, from_sgd_regressor),
    (HuberRegressor, from_huber_regressor),
    (PoissonRegressor, from_glm),
    (GammaRegressor, from_glm),
    (TweedieRegressor, from_glm),
    (SmoothHingeSVC, from_smooth_hinge_svc),
    (LinearSVC, from_linear_svc),
    (SVC, from_svc),
    (KernelRidge, from_kernel_ridge),
]

SUPPORTED = (
    "LogisticRegression",
    "LogisticRegressionCV",
    "SGDClassifier(loss='log_loss')",
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "SGDRegressor(loss='squared_error')",
    "HuberRegressor",
    "PoissonRegressor",
    "GammaRegressor",
    "TweedieRegressor",
    "SmoothHingeSVC",
    "LinearSVC",
    "SVC (binary)",
    "KernelRidge",
)


# Checks of an unfitted estimator's settings, so a model influence cannot
# explain is refused before any fitting.
_CHECKS_BEFORE_FIT = [
    (LogisticRegression, check_logistic_regression),
    (SGDClassifier, check_sgd_classifier),
]


def check_before_fit(estimator):
    """Raise ValueError for settings no influence is defined for (L1, hinge)."""
    for estimator_type, check in _CHECKS_BEFORE_FIT:
        if isinstance(estimator, estimator_type):
            check(estimator)
            return


def register_adapter(estimator_type, builder):
    """Teach the explainer a new estimator type (checked before the built-ins).

    ``builder(estimator, y, sample_weight)`` returns ``(objective, weights)``.
    """
    _ADAPTERS.insert(0, (estimator_type, builder))


def is_supported(estimator):
    return any(isinstance(estimator, t) for t, _ in _ADAPTERS)


def build_objective(estimator, y, sample_weight):
    """Objective adapter of a fitted supported estimator.

    Parameters
    ----------
    estimator : fitted estimator
    y : ndarray of shape (n_samples,)
        Training labels or targets as given to ``fit``.
    sample_weight : ndarray of shape (n_samples,)

    Returns
    -------
    objective : LinearObjective
    weights : ndarray of shape (n_samples,)
        Effective per-row weights of the training objective (sample_weight
        times class_weight).
    """
    for estimator_type, builder in _ADAPTERS:
        if isinstance(estimator, estimator_type):
            return builder(estimator, y, sample_weight)
    # A Pipeline's 'passthrough' (or None) last step: named as written.
    plain = estimator is None or isinstance(estimator, str)
    name = repr(estimator) if plain else type(estimator).__name__
    raise TypeError(
        f"InfluenceExplainer does not support {name}. {_why_not(name)}"
        f"Supported estimators: {', '.join(SUPPORTED)}, or a Pipeline whose "
        "last step is one of them; gradient-boosted trees "
        "(HistGradientBoosting*, GradientBoosting*, LGBM*, XGB*) and torch "
        "models (TorchModel, skorch nets) have backends of their own."
    )


# Meta-estimators whose objective is not one model's: what to explain instead.
_ENSEMBLE = (
    "It combines several fitted models, whose joint output has no single "
    "training objective: explain each member (estimators_) on its own."
)
_WRAPPERS = {
    "TransformedTargetRegressor": (
        "Its regressor is fitted on the transformed target: explain that, "
        "InfluenceExplainer(model.regressor).fit(X, model.transformer_.transform("
        "y.reshape(-1, 1)).ravel()) (or func(y) for a func/inverse_func pair)."
    ),
    "CalibratedClassifierCV": (
        "Calibration fits a second model on held-out outputs: explain the "
        "classifier it calibrates (its estimator) fitted on the data."
    ),
    "OneVsRestClassifier": (
        "Explain the binary classifier of one class (estimators_[k] on y == "
        "classes_[k]); LogisticRegression is multiclass itself."
    ),
    "OneVsOneClassifier": (
        "Explain a binary classifier on the rows of one pair of classes; "
        "LogisticRegression is multiclass itself."
    ),
    "MultiOutputRegressor": (
        "Explain each output's model on its own: estimators_[j] on y[:, j]."
    ),
    "MultiOutputClassifier": (
        "Explain each output's model on its own: estimators_[j] on y[:, j]."
    ),
    "Pipeline": (
        "A Pipeline nested as the last step of a Pipeline: flatten it, "
        "make_pipeline(*outer[:-1], *inner), so that its last step is the model."
    ),
    **dict.fromkeys(
        ("'passthrough'", "None"),
        "A Pipeline's last step must be the model; 'passthrough' or None "
        "there leaves nothing to explain.",
    ),
    **dict.fromkeys(
        (
            "VotingClassifier",
            "VotingRegressor",
            "StackingClassifier",
            "StackingRegressor",
            "BaggingClassifier",
            "BaggingRegressor",
        ),
        _ENSEMBLE,
    ),
}


def _why_not(name):
    """Why an objective without a Hessian is refused, and what to use instead."""
    if "Lasso" in name or "ElasticNet" in name:
        return (
            "Its L1 penalty has no second derivative where coefficients are "
            "0, so the Hessian the influence needs does not exist: explain "
            "Ridge (or an L2-penalised GLM) instead, e.g. refitted on the "
            "features the L1 model kept. "
        )
    if name in ("QuantileRegressor", "LinearSVR", "SVR"):
        return (
            "Its loss is piecewise linear: its curvature is 0 almost "
            "everywhere, so the Hessian the influence needs does not exist: "
            "explain HuberRegressor (a smooth robust loss) or Ridge instead. "
        )
    if name == "BayesianRidge":
        return (
            "It re-estimates its penalty from the data at every fit (evidence "
            "maximisation), so removing a row moves the penalty too; at its "
            "fitted values it is Ridge(alpha=model.lambda_ / model.alpha_): "
            "explain that Ridge (its refits keep the penalty fixed). "
        )
    if name in ("RidgeClassifier", "RidgeClassifierCV"):
        return (
            "It fits least squares to the classes coded -1/+1: for two classes "
            "explain Ridge(alpha=model.alpha) (alpha_ for the CV search) on "
            "y == model.classes_[1] coded as +1 and the other class as -1; its "
            "predictions are this model's decision_function. "
        )
    if name in _WRAPPERS:
        return _WRAPPERS[name] + " "
    if "Forest" in name or "ExtraTree" in name or "DecisionTree" in name:
        return (
            "Its trees are grown by greedy splits and averaged, not fitted by "
            "minimising a differentiable objective, so influence functions do "
            "not apply. Gradient-boosted trees are fitted by minimising one, "
            "and are explained: use HistGradientBoosting*, GradientBoosting*, "
            "LightGBM or XGBoost. "
        )
    return ""
