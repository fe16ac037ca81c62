"""LeafInfluence (Sharchilev et al., 2018) by reverse-mode differentiation.

With every tree's *structure* fixed, the leaf values are functions of the row
weights through the whole boosting sequence: tree ``t``'s leaf sums
``G_l = sum_j w_j g_jk(F_j)``, ``H_l = sum_j w_j h_jk(F_j)`` are taken at the
raw outputs ``F_j`` the earlier trees produced, and those depend on the
weights through the earlier leaf values. LeafInfluence is the exact
derivative of a test quantity ``Q`` with respect to row ``i``'s weight
through that sequence (the baseline prediction held fixed).

Sharchilev et al. propagate it forwards, one training row at a time
(``O(n^2 T)``); here it runs backwards, one adjoint per test row, for all
training rows at once: per test row ``O(n T)`` work (``O(n K T)`` for
multiclass). Walking the rounds from last to first with ``Fbar_j`` the
adjoint of row ``j``'s raw outputs after the round::

    vbar_l = [leaf(x_test) = l] a_k + sum_{j in l} Fbar_jk
    Gbar_l = -s vbar_l / (H_l + lambda),   Hbar_l = -v_l vbar_l / (H_l + lambda)
    D_i   += g_ik Gbar_leaf(i) + h_ik Hbar_leaf(i)
    Fbar_j += w_j (Gbar d g_jk / d F_j + Hbar d h_jk / d F_j)   (after the round)

``D`` (the derivative with respect to the added weight, test rows as
columns) has the units of :mod:`._boostin`'s; BoostIn is this with
``Fbar = 0``, i.e. with the earlier trees' effect on later gradients dropped.
"""

import numpy as np
import scipy.sparse as sp


def one_hot(leaf, n_leaves):
    """CSR ``(n_leaves, n)`` indicator of the rows' local leaves."""
    n = leaf.shape[0]
    return sp.csr_matrix((np.ones(n), (leaf, np.arange(n))), shape=(n_leaves, n))


def leaf_influence(ensemble, loss, state, leaves, weights, test_leaves, A):
    """``D`` of shape (n_train, n_test): d quantity / d weight, through the sequence.

    ``A``: the test quantities' gradients ``d Q / d F``, shape (n_test, K).
    """
    n = leaves.shape[0]
    m = test_leaves.shape[0]
    K = ensemble.n_outputs
    off, vals = ensemble.leaf_offsets, ensemble.leaf_values
    F_bar = np.zeros((K, n, m))
    D = np.zeros((n, m))
    cols = np.arange(m)
    for r in reversed(range(ensemble.n_rounds)):
        dF = np.zeros((K, n, m))
        P = None if state.p is None else state.p[:, r * K : (r + 1) * K]
        for k in range(K):
            t = r * K + k
            lo, hi = off[t], off[t + 1]
            leaf = leaves[:, t] - lo
            v_bar = one_hot(leaf, hi - lo) @ F_bar[k]
            np.add.at(v_bar, (test_leaves[:, t] - lo, cols), A[:, k])
            inv = ensemble.inverse_denominator(state.H[lo:hi], slice(lo, hi))[:, None]
            G_bar = (-ensemble.scale * inv) * v_bar
            H_bar = (-vals[lo:hi, None] * inv) * v_bar
            Gi, Hi = G_bar[leaf], H_bar[leaf]
            D += state.g[:, t, None] * Gi + state.h[:, t, None] * Hi
            if r:  # the first round's gradients are at the fixed baseline
                loss.chain(dF, k, weights, Gi, Hi, P)
        F_bar += dF
    return D
