"""LeafRefit: the boosting replayed without rows, every tree's structure fixed.

For each weighting of the training rows (a column: the fitted weights with
some rows set to 0) the rounds are replayed in order: each tree's leaf values
are recomputed as Newton steps ``-s G / (H + lambda)`` from the weighted
gradients and hessians at the raw outputs the *recomputed* earlier trees
give, the baseline prediction held fixed. This is the exact effect of
removing the rows when the splits would not change (Sharchilev et al.,
2018's reference), and the accurate reference of LeafInfluence, which is its
derivative. All columns advance together: per tree a few ``(n, m)`` array
operations and two sparse sums over leaves.
"""

import numpy as np

from ._leaf_influence import one_hot


def refit_outputs(ensemble, loss, leaves, target, baseline, column_weights, tests):
    """Raw outputs under each weighting, structure fixed.

    Parameters
    ----------
    leaves, target, baseline : the training rows' leaves (n, T), targets and
        baseline outputs (n, K).
    column_weights : ndarray of shape (n, m)
        Row weights of each of the ``m`` replays.
    tests : list of (test_leaves, test_baseline)
        Rows whose outputs to follow too (leaves (n_t, T), baseline (n_t, K)).

    Returns
    -------
    train : ndarray of shape (n, K, m)
    test_outputs : list of ndarray of shape (n_t, K, m)
    """
    m = column_weights.shape[1]
    K = ensemble.n_outputs
    off = ensemble.leaf_offsets
    F = np.repeat(np.asarray(baseline, dtype=float)[:, :, None], m, axis=2)
    outs = [
        np.repeat(np.asarray(b, dtype=float)[:, :, None], m, axis=2) for _, b in tests
    ]
    for r in range(ensemble.n_rounds):
        g, h = loss.gradient_hessian(target, F)
        for k in range(K):
            t = r * K + k
            lo, hi = off[t], off[t + 1]
            leaf = leaves[:, t] - lo
            S = one_hot(leaf, hi - lo)
            G = S @ (column_weights * g[:, k])
            H = S @ (column_weights * h[:, k])
            v = ensemble.leaf_value(G, H, slice(lo, hi))
            F[:, k] += v[leaf]
            for out, (test_leaves, _) in zip(outs, tests):
                out[:, k] += v[test_leaves[:, t] - lo]
    return F, outs
