"""scikit-learn's boosted trees (HistGradientBoosting*, GradientBoosting*) read
into a :class:`~._ensemble.TreeEnsemble`, with the walk that routes rows
through HistGradientBoosting's nodes (NaN and categorical splits included)."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._ensemble import TreeEnsemble


def _compact(is_leaf):
    """Node id -> position among the tree's leaves (-1 for split nodes)."""
    local = np.full(is_leaf.shape[0], -1, dtype=np.int64)
    local[is_leaf] = np.arange(int(is_leaf.sum()))
    return local


def read_hgb(model):
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


def read_gb(model):
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
