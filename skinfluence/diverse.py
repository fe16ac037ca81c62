"""Diverse influential rows (DIVINE, Bhatt et al. 2021) by lazy greedy selection.

The k selected rows maximise ``F(S) = I(S) + gamma * R(S)``: ``I(S)`` is the
sum of the rows' scores (a modular term) and ``R(S)`` a diversity term built
from a similarity kernel ``K`` over the candidate rows (the ground set ``V``,
``n`` rows). With ``k = |S|`` fixed:

================== ==========================================================
diversity          ``R(S)``
================== ==========================================================
facility_location  ``k / n * sum_{i in V} max_{j in S} K_ij`` (0 for empty S):
                   how well S covers every candidate.
sum_redundancy     ``-1 / k * sum_{i != j in S} K_ij``: penalises similar
                   pairs.
mmd                ``2 / n * sum_{j in S, i in V} K_ij - 1 / k * sum_{i, j in
                   S} K_ij`` = ``k * (mean(K_VV) - MMD^2(S, V))``: S as a
                   sample of V (Kim et al. 2016's prototypes).
================== ==========================================================

Each ``R`` is scaled so that it is at most of order ``k``, like ``I(S)`` once
the scores are normalised to ``max |score| = 1`` (``normalize=True``), so
``gamma = 1`` weighs influence and diversity alike. All three are submodular
for a non-negative kernel (rbf is), so the lazy greedy below returns exactly
the plain greedy's choice; facility location with non-negative scores is also
monotone, where the greedy is within ``1 - 1/e`` of the best set (Nemhauser et
al., 1978).
"""

import heapq
from numbers import Integral, Real

import numpy as np
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.utils import check_array

DIVERSITIES = ("facility_location", "sum_redundancy", "mmd")


def similarity_matrix(X, kernel="rbf", kernel_params=None):
    """Kernel matrix of the candidate rows, shape (n, n).

    ``kernel='rbf'`` defaults to ``gamma = 1 / (n_features * X.var())`` (as
    ``SVC(gamma='scale')``), so similarities lie in (0, 1]. Any kernel name of
    ``sklearn.metrics.pairwise.pairwise_kernels``, or a callable
    ``kernel(X, Y) -> ndarray`` of shape (len(X), len(Y)).
    """
    params = dict(kernel_params or {})
    if callable(kernel):
        K = np.asarray(kernel(X, X, **params), dtype=np.float64)
    else:
        X = check_array(X, accept_sparse=("csr", "csc"), dtype=np.float64)
        if kernel == "rbf" and "gamma" not in params:
            var = X.power(2).mean() - X.mean() ** 2 if hasattr(X, "power") else X.var()
            params["gamma"] = 1.0 / (X.shape[1] * var) if var > 0 else 1.0
        K = pairwise_kernels(X, metric=kernel, **params)
    n = X.shape[0]
    if K.shape != (n, n) or not np.all(np.isfinite(K)):
        raise ValueError(
            f"The kernel must return a finite ({n}, {n}) similarity matrix for "
            f"{n} rows; got shape {K.shape}."
        )
    return K


class _Gains:
    """Marginal gains of one diversity term, updated as rows are selected."""

    def __init__(self, K, k, diversity):
        self.K, self.k, self.diversity = K, k, diversity
        n = K.shape[0]
        self.cover = np.zeros(n)  # facility location: max_{j in S} K_ij
        self.pair = np.zeros(n)  # sum_{s in S} K_sj
        self.colmean = K.mean(axis=0)

    def gain(self, j):
        K, k = self.K, self.k
        if self.diversity == "facility_location":
            return k / K.shape[0] * np.maximum(K[:, j] - self.cover, 0).sum()
        if self.diversity == "sum_redundancy":
            return -2.0 / k * self.pair[j]
        return 2.0 * self.colmean[j] - (K[j, j] + 2.0 * self.pair[j]) / k

    def all_gains(self):
        K, k = self.K, self.k
        if self.diversity == "facility_location":
            return k / K.shape[0] * np.maximum(K - self.cover[:, None], 0).sum(axis=0)
        if self.diversity == "sum_redundancy":
            return -2.0 / k * self.pair
        return 2.0 * self.colmean - (np.diag(K) + 2.0 * self.pair) / k

    def add(self, j):
        np.maximum(self.cover, self.K[:, j], out=self.cover)
        self.pair += self.K[j]


def diversity_value(K, S, k, diversity):
    """``R(S)`` of the module docstring, from its definition (for checks)."""
    S = np.asarray(S, dtype=int)
    n = K.shape[0]
    if diversity == "facility_location":
        return 0.0 if S.size == 0 else k / n * K[:, S].max(axis=1).sum()
    sub = K[np.ix_(S, S)]
    if diversity == "sum_redundancy":
        return -(sub.sum() - np.trace(sub)) / k
    return 2.0 / n * K[:, S].sum() - sub.sum() / k


def _check(scores, k, gamma, diversity):
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be a 1-d array, got shape {scores.shape}.")
    if not np.all(np.isfinite(scores)):
        bad = np.flatnonzero(~np.isfinite(scores))
        raise ValueError(
            f"scores must be finite; entries {bad[:5].tolist()} are NaN or infinite."
        )
    if not isinstance(k, Integral) or not 1 <= k:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if not isinstance(gamma, Real) or not gamma >= 0:
        raise ValueError(f"gamma must be a non-negative number, got {gamma!r}.")
    if diversity not in DIVERSITIES:
        raise ValueError(f"diversity must be one of {DIVERSITIES}, got {diversity!r}.")
    return scores


def select_diverse(
    scores,
    X,
    k,
    *,
    gamma=1.0,
    diversity="facility_location",
    kernel="rbf",
    kernel_params=None,
    normalize=True,
):
    """The k rows maximising ``sum(scores[S]) + gamma * R(S)`` (DIVINE).

    Lazy greedy submodular maximisation (Minoux, 1978): a priority queue holds
    each row's last computed marginal gain, an upper bound on its current one
    (the gains only shrink as S grows); a row is taken when its refreshed gain
    still tops the queue. ``gamma=0`` returns the plain top-k by score.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Higher is better (e.g. ``-influence`` for helpful rows).
    X : {array-like, sparse matrix} of shape (n, n_features)
        The rows the similarity is computed on.
    k : int
        Number of rows to select (all rows if ``k >= n``).
    gamma : float, default=1.0
        Weight of diversity; 0 gives the top-k by score.
    diversity : {'facility_location', 'sum_redundancy', 'mmd'}, \
            default='facility_location'
        The term ``R(S)`` (see the module docstring for its formula).
    kernel : str or callable, default='rbf'
        Similarity (see ``similarity_matrix``); use a non-negative one.
    kernel_params : dict, default=None
        Extra arguments of the kernel (e.g. ``{'gamma': 0.1}`` for rbf).
    normalize : bool, default=True
        Divide the scores by their largest absolute value first, so that
        ``gamma`` is on the scale of the diversity term.

    Returns
    -------
    ndarray of shape (min(k, n),)
        Positions of the selected rows, in the order the greedy picked them.

    References
    ----------
    Bhatt, U., Chien, I., Zafar, M. B. and Weller, A. (2021). DIVINE: Diverse
    Influential Training Points for Data Visualization and Model Refinement.

    Examples
    --------
    >>> import numpy as np
    >>> from skinfluence import select_diverse
    >>> X = np.array([[0.0], [0.1], [5.0]])
    >>> scores = np.array([1.0, 0.9, 0.5])
    >>> select_diverse(scores, X, 2, gamma=0).tolist()  # plain top-2
    [0, 1]
    >>> select_diverse(scores, X, 2, gamma=1).tolist()  # the far row instead
    [0, 2]
    """
    scores = _check(scores, k, gamma, diversity)
    n = scores.shape[0]
    if X.shape[0] != n:
        raise ValueError(
            f"X has {X.shape[0]} rows but scores has {n}; pass one score per row."
        )
    k = min(k, n)
    if normalize and np.abs(scores).max() > 0:
        scores = scores / np.abs(scores).max()
    if gamma == 0:
        return np.argsort(-scores, kind="stable")[:k]
    K = similarity_matrix(X, kernel, kernel_params)
    return greedy_select(scores, K, k, gamma, diversity)


def greedy_select(scores, K, k, gamma, diversity, lazy=None):
    """Greedy maximisation of ``sum(scores[S]) + gamma R(S)`` for a kernel K.

    ``lazy=None`` uses the lazy queue whenever the objective is submodular
    (facility location always; the other two for a non-negative ``K``), and
    otherwise recomputes every gain each round (the plain greedy).
    """
    n = scores.shape[0]
    gains = _Gains(K, k, diversity)
    if lazy is None:
        lazy = diversity == "facility_location" or K.min() >= 0
    chosen = []
    if not lazy:
        free = np.ones(n, dtype=bool)
        for _ in range(k):
            total = np.where(free, scores + gamma * gains.all_gains(), -np.inf)
            j = int(np.argmax(total))
            chosen.append(j)
            free[j] = False
            gains.add(j)
        return np.asarray(chosen, dtype=int)
    first = scores + gamma * gains.all_gains()
    # Entries (-bound, position, round the bound was computed in); ties go to
    # the lower position, as np.argmax would.
    heap = [(-first[j], j, 0) for j in range(n)]
    heapq.heapify(heap)
    while len(chosen) < k:
        bound, j, stamp = heapq.heappop(heap)
        if stamp == len(chosen):
            chosen.append(j)
            gains.add(j)
            continue
        fresh = scores[j] + gamma * gains.gain(j)
        heapq.heappush(heap, (-fresh, j, len(chosen)))
    return np.asarray(chosen, dtype=int)


def diverse_top_k(pool, X, k, gamma, diversity, kernel):
    """Re-select k rows per test row and kind from a streamed candidate pool.

    ``pool`` is a :class:`~skinfluence.core._topk.StreamingTopK` holding the
    most helpful and most harmful candidates per test row. Returns one that
    holds ``k`` rows per test row and kind, in greedy order: helpful rows
    maximise ``-influence``, harmful ones ``influence``, each plus diversity,
    among the candidates of the right sign (the plain top k when fewer than
    k have it).
    """
    from .core._topk import StreamingTopK

    out = StreamingTopK(k)
    for kind, sign in (("helpful", -1.0), ("harmful", 1.0)):
        cols, scores, infl = pool.kept[kind]
        kk = min(k, cols.shape[1])
        pick = np.tile(np.arange(kk), (cols.shape[0], 1))
        for t in range(cols.shape[0]):
            valid = np.flatnonzero(sign * infl[t] > 0)
            if valid.size >= kk:
                pick[t] = valid[
                    select_diverse(
                        sign * infl[t, valid],
                        X[cols[t, valid]],
                        kk,
                        gamma=gamma,
                        diversity=diversity,
                        kernel=kernel,
                    )
                ]
        out.kept[kind] = tuple(
            np.take_along_axis(a, pick, axis=1) for a in (cols, scores, infl)
        )
    return out
