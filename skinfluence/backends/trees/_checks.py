"""Settings of a boosted ensemble that the tree backend can explain, or not.

Each supported library fits leaf values as Newton steps ``-s G / (H + l2)``
over all its training rows (:mod:`._structure`); settings that subsample
rows, clip or smooth leaf values, or use another loss are refused here with
the fix, before anything is computed.
"""

from ._structure import GB, HGB, LGBM, XGB, is_tree_model


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
        raise TypeError(
            f"{name}(loss={loss!r}) is not supported by the tree backend; "
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
    if name in XGB:
        _check_xgb(name, params)
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
