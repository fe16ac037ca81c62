"""Replay of the boosting sequence, and BoostIn (Brophy et al., 2023).

Notation (see :mod:`._ensemble`): tree ``t`` of round ``r`` and output ``k``
puts training row ``i`` (weight ``w_i``) in leaf ``l``, whose value is
``v_l = -s G_l / (H_l + lambda)``. *Upweighting* row ``i`` by ``delta`` (its
weight in the summed objective becomes ``w_i + delta``) moves that value by

    d v_l / d delta = -(s g_it + v_l h_it) / (H_l + lambda),

``g_it, h_it`` the row's derivatives at the raw outputs before round ``r``.
BoostIn holds every tree's structure *and every other leaf value* fixed, and
sums, over the trees, a leaf weight of the training row in the leaf the test
row shares with it times the test quantity's gradient at that tree's round
(the test row's raw outputs before the round, TracIn's checkpoints):
``a_tr = d Q_t / d F_k (F_t^(r))``::

    D[t, i] = sum_trees a_{t, tree} [leaf(x_t) = leaf(x_i)] b_i,
    b_i = -s (g_it + v_l h_it) / (H_l + lambda),

Brophy et al.'s weight, as their reference implementation (``tree-influence``)
computes it: the hessian term takes the leaf's value ``v_l`` as it enters the
prediction, so ``b_i`` differs from ``d v_l / d delta`` by a factor ``s`` on
that term. The exact ``d v_l / d delta`` serves the first-order held-out
outputs (:func:`leaf_derivatives`, :func:`held_out_loss_curve`).

``D`` is the derivative of the test quantity with respect to row ``i``'s
weight; :class:`TreeBackend` scales it to the explainer's units.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class Replay:
    """What the boosting saw at each tree, for the training rows.

    Attributes
    ----------
    g, h : ndarray of shape (n, T)
        Each row's gradient and hessian for tree ``t``'s output, at the raw
        outputs before its round (unweighted).
    p : ndarray of shape (n, T) or None
        ``p`` of that output at that round (classifiers).
    G, H : ndarray of shape (n_leaves,)
        Weighted leaf sums ``sum w g`` and ``sum w h``.
    outputs : ndarray of shape (n, K)
        The fitted raw outputs.
    """

    g: np.ndarray
    h: np.ndarray
    p: np.ndarray
    G: np.ndarray
    H: np.ndarray
    outputs: np.ndarray


def replay(ensemble, loss, leaves, target, weights, baseline):
    """:class:`Replay` of the fitted trees on the training rows (a loop on rounds)."""
    n, T = leaves.shape
    K = ensemble.n_outputs
    F = np.array(baseline, dtype=np.float64)
    g = np.empty((n, T))
    h = np.empty((n, T))
    p = None if loss.classes is None else np.empty((n, T))
    by_tree = np.asfortranarray(leaves)  # contiguous columns for the rounds
    for r in range(ensemble.n_rounds):
        cols = slice(r * K, (r + 1) * K)
        g[:, cols], h[:, cols] = loss.gradient_hessian(target, F)
        if p is not None:
            p[:, cols] = loss.proba(F)
        F += ensemble.leaf_values[by_tree[:, cols]]
    flat = leaves.ravel()
    size = ensemble.n_leaves
    G = np.bincount(flat, (weights[:, None] * g).ravel(), minlength=size)
    H = np.bincount(flat, (weights[:, None] * h).ravel(), minlength=size)
    return Replay(g, h, p, G, H, F)


def recomputed_leaf_values(ensemble, state):
    """Leaf values from the replayed sums (equal to the fitted ones)."""
    return ensemble.leaf_value(state.G, state.H)


def leaf_mismatch(ensemble, state, leaves, weights):
    """How far the fitted leaf values are from those the rows give.

    The largest ``|fitted - recomputed|`` over the root-mean-square share of
    a row in its leaf's value (``w_i s g_i / (H + l2)``, rows of positive
    weight): about 1e-5 or less for a model fitted on these rows (float32
    gradient sums), of order 1 or more for one fitted on other data.
    """
    gap = np.max(np.abs(recomputed_leaf_values(ensemble, state) - ensemble.leaf_values))
    inv = ensemble.inverse_denominator(state.H)
    shares = (weights[:, None] * ensemble.scale * state.g * inv[leaves])[weights > 0]
    typical = np.sqrt(np.mean(shares**2)) if shares.size else 0.0
    return float(gap / max(typical, np.finfo(float).tiny))


def leaf_derivatives(ensemble, state, leaves, hessian_scale=1.0):
    """``d v / d delta_i`` of each row's leaf in every tree, shape (n, T).

    ``hessian_scale=ensemble.scale`` gives BoostIn's ``b_i`` instead (the
    hessian term scaled by ``s`` once more, see the module).
    """
    inv = ensemble.inverse_denominator(state.H)
    out = ensemble.leaf_values[leaves]
    out *= hessian_scale * state.h
    out += ensemble.scale * state.g
    out *= -inv[leaves]
    return out


def leaf_matrix(leaves, values, n_leaves):
    """CSR ``(n, n_leaves)`` with ``values[i, t]`` at row i's leaf of tree t."""
    n, T = leaves.shape
    indptr = np.arange(0, n * T + 1, T, dtype=np.int64)
    return sp.csr_matrix((values.ravel(), leaves.ravel(), indptr), shape=(n, n_leaves))


def boostin_blocks(test_weights, train_weights, chunks):
    """Yield ``(train_rows, D[:, train_rows])`` for chunks of training rows.

    ``test_weights``: CSR of the test rows' ``a`` at their leaves;
    ``train_weights``: CSR of the training rows' leaf derivatives. Each block
    is a sparse training block times the dense ``(n_leaves, n_test)`` test
    side: ``n T`` axpys of length ``n_test``. A sparse-sparse product would do
    one operation per (test, train, tree) triple sharing a leaf, which on big
    leaves is more (and its sparse output costs more to build).
    """
    dense = np.ascontiguousarray(test_weights.T.toarray())
    n = train_weights.shape[0]
    for rows in chunks:
        whole = rows.start == 0 and rows.stop == n  # no copy of the CSR
        block = train_weights if whole else train_weights[rows]
        yield rows, (block @ dense).T


def own_output_derivatives(derivatives, n_rounds, n_outputs):
    """``d F_i / d delta_i`` per output, shape (n, K), other leaves fixed."""
    n = derivatives.shape[0]
    return derivatives.reshape(n, n_rounds, n_outputs).sum(axis=1)


def held_out_loss_curve(ensemble, loss, leaves, derivatives, weights, baseline, target):
    """Each row's held-out loss after every round, averaged over the rounds.

    After round ``r`` the row's outputs are the baseline plus its leaves' values
    of rounds ``1..r``, less its own first-order share in them (``w_i`` times
    its leaf derivatives, every other leaf value fixed): the loss of its label
    under the ensemble truncated at ``r`` and fitted without it. Shape (n,).
    """
    n = leaves.shape[0]
    R, K = ensemble.n_rounds, ensemble.n_outputs
    steps = ensemble.leaf_values[leaves] - weights[:, None] * derivatives
    F = np.cumsum(steps.reshape(n, R, K), axis=1).transpose(0, 2, 1)
    F += np.asarray(baseline)[:, :, None]
    return loss.loss(target, F).mean(axis=1)
