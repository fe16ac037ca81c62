"""LightGBM's and XGBoost's boosted trees read into a
:class:`~._ensemble.TreeEnsemble`, with the training settings their fitted
boosters resolved (aliases included)."""

import json
from dataclasses import dataclass

import numpy as np

from ._ensemble import TreeEnsemble


def xgb_train_params(model):
    """XGBoost's resolved training parameters (its sklearn defaults are None)."""

    config = json.loads(model.get_booster().save_config())
    return config["learner"]["gradient_booster"]["tree_train_param"]


def lgbm_train_params(model):
    """LightGBM's resolved training parameters, by canonical name (as text).

    The fitted booster's model string lists every parameter under the name
    LightGBM resolved its aliases to (``lambda_l2`` for ``reg_lambda``,
    ``bagging_fraction`` for ``subsample``, ``boosting`` for
    ``boosting_type``); the wrapper's keywords and ``booster_.params`` keep
    the names as passed. Empty if the string holds no parameters.
    """
    text = model.booster_.model_to_string(num_iteration=1)  # the trees aside
    start = text.find("\nparameters:\n")
    end = text.find("\nend of parameters", start)
    if start < 0 or end < 0:
        return {}
    out = {}
    for line in text[start:end].splitlines():
        if line.startswith("[") and line.endswith("]"):
            key, _, value = line[1:-1].partition(":")
            out[key.strip()] = value.strip()
    return out


def lgbm_has_categorical_splits(model):
    """Whether any tree of the fitted LightGBM model splits on a category set
    (the model string's ``num_cat`` of a tree is then positive)."""
    text = model.booster_.model_to_string()
    return any(
        line.startswith("num_cat=") and int(line.partition("=")[2]) > 0
        for line in text.splitlines()
    )


def _lgbm_baseline(model, target, weights, params):
    """LightGBM's ``boost_from_average`` start, per output (0 when off)."""
    K = model.booster_.num_model_per_iteration()
    if params.get("boost_from_average", "1") in ("0", "false"):
        return np.zeros(K)
    W = weights.sum()
    if not hasattr(model, "classes_"):
        return np.array([np.dot(weights, target) / W])
    if K == 1:
        p = np.dot(weights, target) / W
        return np.array([np.log(p / (1 - p))])
    prior = np.bincount(target, weights, minlength=K) / W
    return np.log(np.maximum(prior, np.finfo(float).eps))


def read_lgbm(model, target, weights):
    booster = model.booster_
    K = booster.num_model_per_iteration()
    best = getattr(model, "best_iteration_", None)
    R = best if best else booster.current_iteration()
    dump = booster.dump_model(num_iteration=R)["tree_info"]
    counts = [tree["num_leaves"] for tree in dump]
    values = np.concatenate(
        [
            [booster.get_leaf_output(t, leaf) for leaf in range(c)]
            for t, c in enumerate(counts)
        ]
    ).astype(np.float64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    params = lgbm_train_params(model)
    base = _lgbm_baseline(model, target, weights, params)
    for k in range(K):  # take the baseline out of the first round's leaves
        values[offsets[k] : offsets[k + 1]] -= base[k]
    return TreeEnsemble(
        n_rounds=R,
        n_outputs=K,
        leaf_offsets=offsets,
        leaf_values=values,
        # The values the booster used, whatever alias set them.
        scale=float(params.get("learning_rate", model.learning_rate)),
        l2=float(params.get("lambda_l2", model.reg_lambda)),
        apply_fn=_LGBMLeaves(booster, R),
    )


@dataclass(eq=False)
class _LGBMLeaves:
    """LightGBM's leaf (local position) of each row in its first ``n_rounds``.

    A small class rather than a closure, so that a fitted explainer pickles.
    """

    booster: object
    n_rounds: int

    def __call__(self, X):
        leaves = self.booster.predict(X, pred_leaf=True, num_iteration=self.n_rounds)
        return np.asarray(leaves, dtype=np.int64).reshape(X.shape[0], -1)


def _xgb_leaves(node, out):
    """``{node id: leaf value}`` of one tree of XGBoost's JSON dump."""
    if "leaf" in node:
        out[node["nodeid"]] = node["leaf"]
    for child in node.get("children", ()):
        _xgb_leaves(child, out)
    return out


def read_xgb(model):

    booster = model.get_booster()
    best = getattr(model, "best_iteration", None)
    dumps = [json.loads(t) for t in booster.get_dump(dump_format="json")]
    n_classes = len(getattr(model, "classes_", ()))
    K = n_classes if n_classes > 2 else 1
    R = len(dumps) // K if best is None else best + 1
    dumps = dumps[: R * K]
    leaf_maps = [_xgb_leaves(tree, {}) for tree in dumps]
    size = max(max(m) for m in leaf_maps) + 1
    local = np.full((len(dumps), size), -1, dtype=np.int64)
    values = []
    for t, leaves in enumerate(leaf_maps):
        ids = np.array(sorted(leaves))
        local[t, ids] = np.arange(len(ids))
        values.append([leaves[i] for i in ids])
    counts = [len(v) for v in values]
    params = xgb_train_params(model)

    return TreeEnsemble(
        n_rounds=R,
        n_outputs=K,
        leaf_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        leaf_values=np.concatenate(values).astype(np.float64),
        scale=float(params["eta"]),
        l2=float(params["lambda"]),
        apply_fn=_XGBLeaves(booster, local, R, _xgb_missing(model)),
    )


def _xgb_missing(model):
    """The value XGBoost reads as missing (NaN unless ``missing`` says)."""
    missing = model.get_params().get("missing")
    return np.nan if missing is None else float(missing)


@dataclass(eq=False)
class _XGBLeaves:
    """Leaf (local position) of each row in XGBoost's first ``n_rounds``.

    ``local[t, node]``: the leaf position of node ``node`` of tree ``t``.
    Entries equal to ``missing`` take each split's missing-value side, as in
    the model's own predictions. Picklable, unlike a closure.
    """

    booster: object
    local: np.ndarray
    n_rounds: int
    missing: float = np.nan

    def __call__(self, X):
        import xgboost

        # The booster checks a matrix's column names against those it was
        # fitted with (a DataFrame's); X here is the validated array.
        data = xgboost.DMatrix(
            X, missing=self.missing, feature_names=self.booster.feature_names
        )
        nodes = self.booster.predict(
            data, pred_leaf=True, iteration_range=(0, self.n_rounds)
        )
        nodes = np.asarray(nodes, dtype=np.int64).reshape(X.shape[0], -1)
        return self.local[np.arange(nodes.shape[1]), nodes]
