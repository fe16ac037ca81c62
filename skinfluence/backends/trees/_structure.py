"""Fitted boosted trees of each library, read into one array form.

An ensemble of ``R`` rounds with ``K`` trees each (one per output) is held as
``T = R K`` trees in boosting order, tree ``t`` belonging to round ``t // K``
and output ``t % K``. Every leaf of every tree has one *global* position:
tree ``t``'s leaves are ``leaf_offsets[t]:leaf_offsets[t + 1]``. A row's
leaves form one int32 row of the ``(n, T)`` matrix :meth:`TreeEnsemble.apply`
returns, so per-leaf sums over rows are one ``np.bincount`` for all trees.

Leaf values are contributions to the raw output, shrinkage included, and the
boosting fitted each as a Newton step with the structure fixed::

    value = -scale * G / (H + l2),  G = sum_i w_i g_i,  H = sum_i w_i h_i

over the rows in the leaf, with ``g, h`` the loss's derivatives at the raw
outputs before that round (:mod:`._losses`). ``scale`` is the learning rate
(times ``(K - 1) / K`` for scikit-learn's multiclass GradientBoosting);
``l2`` is HistGradientBoosting's ``l2_regularization`` (plus its ``1e-15``
guard), LightGBM's ``lambda_l2`` (``reg_lambda`` under any alias, read from
the booster), and 0 for GradientBoosting, which instead
sets a leaf with ``H < 1e-150`` to 0. LightGBM folds its baseline
(``boost_from_average``) into the first round's leaves; it is taken out here
so that the first round's values are Newton steps too.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from ...utils._checks import as_fitted_input

HGB = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
GB = ("GradientBoostingClassifier", "GradientBoostingRegressor")
LGBM = ("LGBMClassifier", "LGBMRegressor")
XGB = ("XGBClassifier", "XGBRegressor")
#: Class names served, by module prefix (the optional libraries are known by
#: the module of the class, never imported to check).
SUPPORTED = {
    "sklearn.ensemble": HGB + GB,
    "lightgbm.sklearn": LGBM,
    "xgboost.sklearn": XGB,
}
#: Leaf sums of hessians below this give a zero leaf (GradientBoosting's guard).
TINY_HESSIAN = 1e-150


@dataclass
class TreeEnsemble:
    """The trees of a fitted ensemble, in boosting order (see the module).

    Attributes
    ----------
    n_rounds, n_outputs : int
        ``R`` and ``K``.
    leaf_offsets : ndarray of shape (T + 1,)
    leaf_values : ndarray of shape (n_leaves,)
        Contribution of each leaf to its output's raw value.
    scale, l2 : float
        The leaf-value formula's constants.
    fixed : ndarray of bool of shape (n_leaves,) or None
        Leaves whose value is not a Newton step and stays 0 (a
        HistGradientBoosting tree that never split keeps its root's 0).
    """

    n_rounds: int
    n_outputs: int
    leaf_offsets: np.ndarray
    leaf_values: np.ndarray
    scale: float
    l2: float
    apply_fn: object  # encoded X -> (n, T) local leaf positions (picklable)
    #: The model's input -> the numeric columns its trees split (identity,
    #: or HistGradientBoosting's own encoding of categorical columns).
    encode: object = None
    fixed: np.ndarray = None

    @property
    def n_trees(self):
        return self.n_rounds * self.n_outputs

    @property
    def n_leaves(self):
        return int(self.leaf_offsets[-1])

    def tree_outputs(self):
        """The output (class) of each tree, shape (T,)."""
        return np.tile(np.arange(self.n_outputs), self.n_rounds)

    def encoded(self, X):
        """``X`` in the columns the trees split (float64; sparse stays sparse)."""
        if self.encode is not None:
            return self.encode(X)
        return X.to_numpy(dtype=np.float64) if hasattr(X, "columns") else X

    def apply(self, X):
        """Global leaf positions of each row of encoded ``X``, int32 (n, T)."""
        local = self.apply_fn(X)
        return (local + self.leaf_offsets[:-1]).astype(np.int32)

    def raw_sum(self, leaves):
        """Sum of the leaf values per row and output, shape (n, K)."""
        n = leaves.shape[0]
        vals = self.leaf_values[leaves].reshape(n, self.n_rounds, self.n_outputs)
        return vals.sum(axis=1)

    def inverse_denominator(self, H, leaves=slice(None)):
        """``1 / (H + l2)`` of ``leaves``; 0 where H is tiny or the leaf fixed."""
        denom = H + self.l2
        safe = np.abs(denom) >= TINY_HESSIAN
        if self.fixed is not None:
            fixed = self.fixed[leaves]  # leaves along the first axis
            safe &= ~fixed.reshape(fixed.shape + (1,) * (safe.ndim - fixed.ndim))
        return np.where(safe, 1.0 / np.where(safe, denom, 1.0), 0.0)

    def leaf_value(self, G, H, leaves=slice(None)):
        """The Newton leaf value ``-scale G / (H + l2)`` of ``leaves``."""
        return -self.scale * G * self.inverse_denominator(H, leaves)


def is_tree_model(model):
    """Whether ``model`` is an ensemble this backend reads (by class name)."""
    cls = type(model)
    names = SUPPORTED.get(".".join(cls.__module__.split(".")[:2]), ())
    return cls.__name__ in names


def read_ensemble(model, target=None, weights=None):
    """The :class:`TreeEnsemble` of a fitted supported ``model``.

    ``target`` (encoded) and ``weights``: the training rows', for LightGBM's
    baseline, which it computes from them.
    """
    name = type(model).__name__
    if name in HGB:
        return _read_hgb(model)
    if name in GB:
        return _read_gb(model)
    if name in LGBM:
        return _read_lgbm(model, target, weights)
    if name in XGB:
        return _read_xgb(model)
    raise TypeError(
        f"{name} is not a supported tree ensemble ({HGB + GB + LGBM + XGB})."
    )


def held_out_for_stopping(model, y):
    """Rows a fitted HistGradientBoosting model held out to stop early, or None.

    With early stopping on a validation split (``early_stopping=True``, or
    'auto' on more than 10,000 rows, with ``validation_fraction``) the trees
    are grown on the other rows only. The split is the one ``fit`` drew:
    ``train_test_split`` with the model's recorded seed, stratified by class
    for a classifier. Returns a boolean mask over the rows, True where held
    out.
    """
    if type(model).__name__ not in HGB or not getattr(model, "do_early_stopping_", 0):
        return None
    fraction = model.get_params()["validation_fraction"]
    if fraction is None:
        return None  # stopped on the training loss: every row trained
    rows = np.arange(len(y))
    stratify = y if hasattr(model, "classes_") else None
    _, held = train_test_split(
        rows, test_size=fraction, stratify=stratify, random_state=model._random_seed
    )
    mask = np.zeros(len(y), dtype=bool)
    mask[held] = True
    return mask


def raw_outputs(model, X):
    """The model's raw outputs (log-odds, or the prediction), shape (n, K)."""
    n = X.shape[0]
    X = as_fitted_input(model, X)
    if type(model).__name__ in LGBM:
        out = model.predict(X, raw_score=True)
    elif type(model).__name__ in XGB:
        out = model.predict(X, output_margin=True)
    elif hasattr(model, "classes_"):
        out = model.decision_function(X)
    else:
        out = model.predict(X)
    return np.asarray(out, dtype=np.float64).reshape(n, -1)


def hessian_scale(model):
    """Factor of the multiclass hessian ``p (1 - p)``: LightGBM ``K / (K - 1)``,
    XGBoost 2; else 1."""
    classes = getattr(model, "classes_", None)
    if classes is None or len(classes) <= 2:
        return 1.0
    if type(model).__name__ in LGBM:
        return len(classes) / (len(classes) - 1)
    if type(model).__name__ in XGB:
        return 2.0
    return 1.0


def xgb_train_params(model):
    """XGBoost's resolved training parameters (its sklearn defaults are None)."""
    import json

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


def _read_lgbm(model, target, weights):
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


def _compact(is_leaf):
    """Node id -> position among the tree's leaves (-1 for split nodes)."""
    local = np.full(is_leaf.shape[0], -1, dtype=np.int64)
    local[is_leaf] = np.arange(int(is_leaf.sum()))
    return local


def _read_hgb(model):
    predictors = [p for rnd in model._predictors for p in rnd]
    trees = [p.nodes for p in predictors]
    K = len(model._predictors[0])
    # With categorical features the trees split the columns of the model's
    # own encoding (categories as integer codes, those columns first).
    encoder = getattr(model, "_preprocessor", None)
    known = None
    if encoder is not None:
        known = model._bin_mapper.make_known_categories_bitsets()
    leaf_pos = [_compact(nodes["is_leaf"].astype(bool)) for nodes in trees]
    counts = [int(nodes["is_leaf"].sum()) for nodes in trees]
    values = np.concatenate(
        [nodes["value"][nodes["is_leaf"].astype(bool)] for nodes in trees]
    )
    # A root that could not split is a leaf of value 0, not a Newton step.
    never_split = np.repeat([len(nodes) == 1 for nodes in trees], counts)

    return TreeEnsemble(
        n_rounds=len(model._predictors),
        n_outputs=K,
        leaf_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        leaf_values=values.astype(np.float64),
        scale=float(model.learning_rate),
        l2=float(model.l2_regularization) + 1e-15,
        apply_fn=_HGBLeaves(predictors, leaf_pos, known),
        encode=None if encoder is None else _HGBEncoding(encoder),
        fixed=never_split,
    )


@dataclass(eq=False)
class _HGBEncoding:
    """HistGradientBoosting's encoding of its categorical columns (picklable)."""

    encoder: object

    def __call__(self, X):
        names = getattr(self.encoder, "feature_names_in_", None)
        if names is not None and not hasattr(X, "columns"):
            X = pd.DataFrame(X, columns=names)  # the frame it was fitted on
        return np.asarray(self.encoder.transform(X), dtype=np.float64)


@dataclass(eq=False)
class _HGBLeaves:
    """Leaf (local position) of each row in every HistGradientBoosting tree.

    ``known``: the model's known-categories bitsets (None without
    categorical columns). A class rather than a closure, so that it pickles.
    """

    predictors: list
    leaf_pos: list
    known: object

    def __call__(self, X):
        X = np.ascontiguousarray(X, dtype=np.float64)
        has_nan = bool(np.isnan(X).any())
        return np.stack(
            [
                pos[_walk(p.nodes, X, has_nan, (p.raw_left_cat_bitsets, self.known))]
                for p, pos in zip(self.predictors, self.leaf_pos)
            ],
            axis=1,
        )


def _in_bitset(bitsets, row, code):
    """Whether each ``code`` (int < 256) is in bitset ``row`` of ``bitsets``."""
    return ((bitsets[row, code // 32] >> (code % 32)) & 1).astype(bool)


def _categorical_left(nodes, node, x, bitsets):
    """Which rows at categorical splits ``node`` go left, as sklearn's predictor.

    A category in the split's left bitset goes left, another known category
    right; a negative or unknown one follows ``missing_go_to_left`` (NaN is
    routed by the caller).
    """
    left_sets, (known_sets, feature_map) = bitsets
    missing_left = nodes["missing_go_to_left"][node].astype(bool)
    valid = x >= 0  # False for NaN too
    code = np.where(valid, x, 0).astype(np.intp)
    left = _in_bitset(left_sets, nodes["bitset_idx"][node].astype(np.intp), code)
    feature = feature_map[nodes["feature_idx"][node]].astype(np.intp)
    known = _in_bitset(known_sets, feature, code)
    return np.where(valid & (left | known), left, missing_left)


def _walk(nodes, X, has_nan=True, bitsets=None):
    """Leaf node of every row: one vectorised step per depth level.

    As HistGradientBoosting's predictor on raw input: NaN follows
    ``missing_go_to_left``; a numerical split sends ``x <= num_threshold``
    left, a categorical one the categories of its bitset
    (:func:`_categorical_left`; ``bitsets``: the predictor's left bitsets and
    the model's known categories). Rows at a leaf stay there (a leaf is its
    own child here).
    """
    is_leaf = nodes["is_leaf"].astype(bool)
    is_cat = nodes["is_categorical"].astype(bool) & ~is_leaf
    ids = np.arange(len(nodes))
    feature = np.where(is_leaf, 0, nodes["feature_idx"]).astype(np.intp)
    threshold = np.where(is_leaf, np.inf, nodes["num_threshold"])
    missing_left = nodes["missing_go_to_left"].astype(bool)
    # children[node, 1] is the left child, children[node, 0] the right one.
    children = np.stack(
        [np.where(is_leaf, ids, nodes["right"]), np.where(is_leaf, ids, nodes["left"])],
        axis=1,
    ).astype(np.intp)
    flat = X.ravel()
    offsets = np.arange(X.shape[0]) * X.shape[1]
    node = np.zeros(X.shape[0], dtype=np.intp)
    for _ in range(int(nodes["depth"].max())):  # the deepest leaf's depth
        x = flat[offsets + feature[node]]
        go_left = x <= threshold[node]
        cat = is_cat[node]
        if cat.any():
            go_left[cat] = _categorical_left(nodes, node[cat], x[cat], bitsets)
        if has_nan:
            go_left = np.where(np.isnan(x), missing_left[node], go_left)
        node = children[node, go_left.astype(np.intp)]
    return node


def _read_gb(model):
    est = model.estimators_  # (R, K) regression trees
    R, K = est.shape
    trees = [est[r, k].tree_ for r in range(R) for k in range(K)]
    is_leaf = [tree.children_left == -1 for tree in trees]
    leaf_pos = np.concatenate([_compact(mask) for mask in is_leaf])
    node_offsets = np.concatenate([[0], np.cumsum([t.node_count for t in trees])])
    lr = float(model.learning_rate)
    values = np.concatenate(
        [lr * tree.value[mask, 0, 0] for tree, mask in zip(trees, is_leaf)]
    )
    scale = lr * ((K - 1) / K if K > 2 else 1.0)

    return TreeEnsemble(
        n_rounds=R,
        n_outputs=K,
        leaf_offsets=np.concatenate([[0], np.cumsum([m.sum() for m in is_leaf])]),
        leaf_values=values,
        scale=scale,
        l2=0.0,
        apply_fn=_GBLeaves(model, leaf_pos, node_offsets[:-1]),
    )


@dataclass(eq=False)
class _GBLeaves:
    """Leaf (local position) of each row in every GradientBoosting tree.

    ``leaf_pos``: node id -> leaf position, all trees' nodes one after the
    other (tree ``t``'s from ``node_offsets[t]``). Picklable, unlike a closure.
    """

    model: object
    leaf_pos: np.ndarray
    node_offsets: np.ndarray

    def __call__(self, X):
        # The model's trees were fitted on arrays, whatever the model was.
        nodes = np.asarray(self.model.apply(X), dtype=np.int64)
        return self.leaf_pos[nodes.reshape(X.shape[0], -1) + self.node_offsets]


def _xgb_leaves(node, out):
    """``{node id: leaf value}`` of one tree of XGBoost's JSON dump."""
    if "leaf" in node:
        out[node["nodeid"]] = node["leaf"]
    for child in node.get("children", ()):
        _xgb_leaves(child, out)
    return out


def _read_xgb(model):
    import json

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
