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
