"""Settings of a boosted ensemble that the tree backend can explain, or not.

Each supported library fits leaf values as Newton steps ``-s G / (H + l2)``
over all its training rows (:mod:`._ensemble`); settings that subsample
rows, clip or smooth leaf values, or use another loss are refused here with
the fix, before anything is computed.
"""

import json

from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ._booster_trees import lgbm_has_categorical_splits, lgbm_train_params
from ._structure import GB, HGB, LGBM, XGB, is_tree_model

#: LightGBM settings, by the canonical names its fitted booster records, that
#: change the leaf values or the loss, with their neutral values ('sigmoid'
#: scales the binary log-odds; it is checked for that objective only).
LGBM_NEUTRAL = {
    "lambda_l1": 0.0,
    "max_delta_step": 0.0,
    "path_smooth": 0.0,
    "linear_tree": 0.0,
    "is_unbalance": 0.0,
    "scale_pos_weight": 1.0,
    "reg_sqrt": 0.0,
    "use_quantized_grad": 0.0,
}
#: XGBoost settings, by the names of its saved configuration, with their
#: neutral values; and the values served of its other settings.
XGB_NEUTRAL = {
    "alpha": 0.0,
    "max_delta_step": 0.0,
    "subsample": 1.0,
    "num_parallel_tree": 1.0,
    "scale_pos_weight": 1.0,
}
XGB_SERVED = {
    "booster": ("gbtree",),
    "objective": (
        "binary:logistic",
        "multi:softprob",
        "multi:softmax",
        "reg:squarederror",
    ),
    "multi_strategy": ("one_output_per_tree",),
}
#: The scikit-learn keyword of a canonical LightGBM name, for the messages.
LGBM_KEYWORDS = {
    "lambda_l1": "reg_alpha",
    "max_delta_step": "max_leaf_output",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "boosting": "boosting_type",
}


def check_tree_model(model):
    """Raise naming the fix when ``model``'s settings cannot be explained."""
    name = type(model).__name__
    if not is_tree_model(model):
        raise TypeError(f"{name} is not a tree ensemble the tree backend reads.")
    params = model.get_params()
    loss = params.get("loss")
    supported = {
        "HistGradientBoostingClassifier": ("log_loss",),
        "HistGradientBoostingRegressor": ("squared_error",),
        "GradientBoostingClassifier": ("log_loss",),
        "GradientBoostingRegressor": ("squared_error",),
        "LGBMClassifier": (None, "binary", "multiclass", "softmax"),
        "LGBMRegressor": (None, "regression", "l2", "mse", "mean_squared_error"),
        "XGBClassifier": ("binary:logistic", "multi:softprob", "multi:softmax"),
        "XGBRegressor": ("reg:squarederror",),
    }[name]
    if name in LGBM + XGB:
        loss = params.get("objective")
    if loss not in supported:
        key = "objective" if name in LGBM + XGB else "loss"
        raise TypeError(
            f"{name}({key}={loss!r}) is not supported by the tree backend; "
            f"supported losses: {list(supported)} (the ones whose leaf values "
            "are Newton steps on a smooth loss)."
        )
    if name in HGB:
        if params.get("monotonic_cst") is not None:
            raise TypeError(
                f"{name} with monotonic_cst clips leaf values to bounds, which "
                "the leaf derivatives do not model; fit without it."
            )
    if name in LGBM:
        _check_lgbm(name, params)
        if _is_fitted(model):  # the settings it used, whatever their alias
            booster_params = lgbm_train_params(model)
            _check_lgbm_booster(name, booster_params)
            _check_lgbm_categories(name, model, booster_params)
    if name in XGB:
        _check_xgb(name, params)
        if _is_fitted(model):
            _check_xgb_booster(name, json.loads(model.get_booster().save_config()))
    if name in GB:
        if params["subsample"] < 1.0:
            raise TypeError(
                f"{name}(subsample={params['subsample']}) fits each tree on an "
                "unrecorded random subset; use subsample=1.0."
            )
        if params["n_iter_no_change"] is not None:
            raise TypeError(
                f"{name} with n_iter_no_change trains on an unrecorded subset "
                "(its validation split); pass n_iter_no_change=None."
            )
        if params["init"] not in (None, "zero"):
            raise TypeError(f"{name}(init=...) is not supported; use the default.")


def _check_lgbm(name, params):
    """LightGBM settings whose leaf values are not the plain Newton steps."""
    if params.get("boosting_type", "gbdt") != "gbdt":
        raise TypeError(
            f"{name}(boosting_type={params['boosting_type']!r}) is not supported; "
            "use 'gbdt' (GOSS, DART and random forests reweight or drop rows)."
        )
    if params.get("subsample", 1.0) < 1.0 and params.get("subsample_freq", 0) > 0:
        raise TypeError(
            f"{name} with bagging (subsample < 1, subsample_freq > 0) fits each "
            "tree on an unrecorded subset; use subsample=1.0."
        )
    changed = {
        key: params[key]
        for key, default in [
            ("reg_alpha", 0.0),
            ("max_delta_step", 0.0),
            ("path_smooth", 0.0),
            ("linear_tree", False),
            ("is_unbalance", False),
            ("scale_pos_weight", 1.0),
        ]
        if key in params and params[key] not in (None, default)
    }
    if changed:
        raise TypeError(
            f"{name} with {changed} has leaf values other than "
            "-lr G / (H + reg_lambda); leave these at their defaults "
            "(class_weight and sample_weight are supported)."
        )


def _check_xgb(name, params):
    """XGBoost settings whose leaf values are not the plain Newton steps."""
    changed = {
        key: params[key]
        for key, default in [
            ("booster", "gbtree"),
            ("reg_alpha", 0.0),
            ("max_delta_step", 0.0),
            ("subsample", 1.0),
            ("num_parallel_tree", 1),
            ("scale_pos_weight", 1.0),
            ("multi_strategy", "one_output_per_tree"),
            ("monotone_constraints", None),
        ]
        if params.get(key) not in (None, default)
    }
    if changed:
        raise TypeError(
            f"{name} with {changed} is not supported: its leaf values are then "
            "not -eta G / (H + reg_lambda) over all the rows; leave these at "
            "their defaults."
        )


def _is_fitted(model):
    try:
        check_is_fitted(model)
    except NotFittedError:
        return False
    return True


def _number(text):
    """A LightGBM parameter's text as a float ('true'/'false' as 1/0)."""
    text = str(text).strip().lower()
    flags = {"true": 1.0, "false": 0.0, "": 0.0}
    return flags[text] if text in flags else float(text)


def _lgbm_changed(params):
    """``{canonical name: value}`` of the fitted booster's unsupported settings."""
    changed = {
        key: params[key]
        for key, neutral in LGBM_NEUTRAL.items()
        if key in params and _number(params[key]) != neutral
    }
    if params.get("objective") == "binary" and _number(params.get("sigmoid", 1)) != 1:
        changed["sigmoid"] = params["sigmoid"]
    if params.get("boosting", "gbdt") != "gbdt":
        changed["boosting"] = params["boosting"]
    if params.get("data_sample_strategy", "bagging") != "bagging":
        changed["data_sample_strategy"] = params["data_sample_strategy"]
    fractions = ("bagging_fraction", "pos_bagging_fraction", "neg_bagging_fraction")
    if _number(params.get("bagging_freq", 0)) > 0:
        changed.update(
            {key: params[key] for key in fractions if _number(params.get(key, 1)) < 1}
        )
        if any(key in changed for key in fractions):
            changed["bagging_freq"] = params["bagging_freq"]
    monotone = params.get("monotone_constraints", "").replace(",", " ").split()
    if any(_number(c) != 0 for c in monotone):
        changed["monotone_constraints"] = params["monotone_constraints"]
    return changed


def _check_lgbm_booster(name, params):
    """The fitted booster's settings (canonical names: aliases resolved)."""
    objective = params.get("objective", "binary")
    if objective not in ("binary", "multiclass", "regression"):
        raise TypeError(
            f"{name} was fitted with objective={objective!r} (LightGBM's name "
            "for the loss it used); the tree backend supports 'binary', "
            "'multiclass' and 'regression' (L2) under any alias."
        )
    changed = _lgbm_changed(params)
    if changed:
        shown = ", ".join(
            f"{key}={value[:40]}"
            + (f" ({LGBM_KEYWORDS[key]})" if key in LGBM_KEYWORDS else "")
            for key, value in changed.items()
        )
        raise TypeError(
            f"{name} was fitted with {shown} (LightGBM's names for the settings "
            "it used, aliases resolved): its leaf values are then not "
            "-lr G / (H + lambda_l2) over all the rows. Leave these at their "
            "defaults under every alias (reg_lambda, class_weight and "
            "sample_weight are supported)."
        )


def _check_lgbm_categories(name, model, params):
    """Refuse category-set splits fitted with ``cat_l2``: LightGBM adds it to
    ``lambda_l2`` in the leaf values such a split gives, which the leaf
    derivatives do not model (a fit on the very rows it was trained on then
    looks far from its optimum)."""
    cat_l2 = _number(params.get("cat_l2", 10.0))
    if cat_l2 != 0 and lgbm_has_categorical_splits(model):
        raise TypeError(
            f"{name} splits on categorical features with cat_l2={cat_l2:g} "
            "(LightGBM's default 10), which it adds to lambda_l2 in the leaf "
            "values of those splits: they are then not -lr G / (H + "
            "lambda_l2). Refit with cat_l2=0, or encode the categories as "
            "numbers (e.g. one-hot) instead of categorical_feature."
        )


def xgb_settings(config):
    """The settings the checks read, flat, from XGBoost's saved configuration."""
    learner = config["learner"]
    booster = learner["gradient_booster"]
    objective = learner["objective"]
    strategy = learner["learner_train_param"].get("multi_strategy")
    return {
        "booster": booster["name"],
        "objective": objective["name"],
        "multi_strategy": strategy or "one_output_per_tree",
        **booster.get("gbtree_model_param", {}),
        **booster.get("tree_train_param", {}),
        **objective.get("reg_loss_param", {}),
    }


def _xgb_changed(settings):
    """``{canonical name: value}`` of the fitted booster's unsupported settings."""
    changed = {
        key: settings[key]
        for key, neutral in XGB_NEUTRAL.items()
        if key in settings and float(settings[key]) != neutral
    }
    for key, served in XGB_SERVED.items():
        if settings[key] not in served:
            changed[key] = settings[key]
    monotone = settings.get("monotone_constraints", "").strip("()[]{} ")
    if any(float(c) for c in monotone.replace(",", " ").split()):
        changed["monotone_constraints"] = settings["monotone_constraints"]
    return changed


def _check_xgb_booster(name, config):
    """The fitted booster's settings, from its saved configuration."""
    changed = _xgb_changed(xgb_settings(config))
    if changed:
        raise TypeError(
            f"{name} was fitted with {changed} (XGBoost's names for the settings "
            "it used, aliases resolved: alpha is reg_alpha): its leaf values are "
            "then not -eta G / (H + lambda) over all the rows; leave these at "
            "their defaults under every alias."
        )


def check_retrainable(model):
    """Raise naming the way out when ``model`` stopped early on an eval_set.

    Retraining without rows (:func:`skinfluence.validate_loo`) refits a clone
    on the training rows alone: XGBoost and LightGBM then either refuse to
    stop early without a validation set or grow every round, another model
    than the one explained.
    """
    name = type(model).__name__
    if name in XGB:
        stopped = getattr(model, "best_iteration", None) is not None or bool(
            model.get_params().get("early_stopping_rounds")
        )
    elif name in LGBM:
        stopped = bool(getattr(model, "best_iteration_", 0))
    else:
        return  # HistGradientBoosting draws its validation split again
    if stopped:
        raise ValueError(
            f"{name} stopped early on the eval_set its fit was given, which "
            "retraining without rows does not have. Pass refit_options="
            "{'fixed_structure': True} to validate_loo (LeafRefit: the fitted "
            "trees, their leaf values recomputed without the rows), or fit the "
            "model without early stopping (e.g. n_estimators set to its best "
            "iteration + 1)."
        )
