"""DIVINE selection: lazy greedy against brute force and plain greedy."""

import doctest
import itertools

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.preprocessing import scale

import skinfluence.diverse
from skinfluence import InfluenceExplainer, select_diverse
from skinfluence.diverse import greedy_select


def _objective(scores, K, S, k, gamma, diversity):
    """F(S) written from the module docstring's definitions."""
    S = list(S)
    n = K.shape[0]
    if diversity == "facility_location":
        R = k / n * sum(max(K[i, j] for j in S) for i in range(n))
    elif diversity == "sum_redundancy":
        R = -sum(K[i, j] for i in S for j in S if i != j) / k
    else:
        R = 2 / n * sum(K[i, j] for i in range(n) for j in S)
        R -= sum(K[i, j] for i in S for j in S) / k
    return sum(scores[S]) + gamma * R


def _brute_force(scores, K, k, gamma, diversity):
    return max(
        _objective(scores, K, S, k, gamma, diversity)
        for S in itertools.combinations(range(len(scores)), k)
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_facility_location_within_the_greedy_bound(seed, gamma):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(10, 2))
    scores = rng.uniform(size=10)  # non-negative: monotone submodular
    K = rbf_kernel(X, gamma=0.5)
    k = 4
    chosen = greedy_select(scores, K, k, gamma, "facility_location")
    got = _objective(scores, K, chosen, k, gamma, "facility_location")
    best = _brute_force(scores, K, k, gamma, "facility_location")
    assert got >= (1 - 1 / np.e) * best - 1e-12
    assert got <= best + 1e-12


@pytest.mark.parametrize("diversity", ["facility_location", "sum_redundancy", "mmd"])
def test_modular_objective_is_solved_exactly(diversity, rng):
    """gamma = 0 leaves the modular I(S): greedy is the optimum (top-k)."""
    X = rng.normal(size=(9, 3))
    scores = rng.normal(size=9)
    chosen = select_diverse(scores, X, 3, gamma=0, diversity=diversity)
    K = rbf_kernel(X)
    best = _brute_force(scores, K, 3, 0.0, diversity)
    assert _objective(scores, K, chosen, 3, 0.0, diversity) == pytest.approx(best)
    assert set(chosen) == set(np.argsort(-scores)[:3])


@pytest.mark.parametrize("diversity", ["facility_location", "sum_redundancy", "mmd"])
def test_lazy_greedy_equals_plain_greedy(diversity, rng):
    X = rng.normal(size=(60, 4))
    scores = rng.normal(size=60)
    K = rbf_kernel(X, gamma=0.2)
    lazy = greedy_select(scores, K, 8, 1.5, diversity, lazy=True)
    plain = greedy_select(scores, K, 8, 1.5, diversity, lazy=False)
    np.testing.assert_array_equal(lazy, plain)


@pytest.mark.parametrize("diversity", ["facility_location", "sum_redundancy", "mmd"])
def test_diversity_rises_with_gamma(diversity):
    # The best-scored rows all sit in one of four clusters.
    X, cluster = make_blobs(200, centers=4, cluster_std=0.5, random_state=0)
    scores = np.where(cluster == 0, 1.0, 0.5) + 0.01 * np.arange(200) / 200
    spread = []
    for gamma in [0.0, 0.3, 1.0, 3.0, 10.0]:
        chosen = select_diverse(
            scores, X, 4, gamma=gamma, diversity=diversity, kernel_params={"gamma": 0.5}
        )
        spread.append(len(set(cluster[chosen])))
    assert spread[0] == 1 and spread[-1] == 4
    assert spread == sorted(spread)


def test_divine_in_top_influential():
    X, y = make_blobs(300, centers=[[0, 0], [3, 3]], cluster_std=1.5, random_state=0)
    X = scale(X)
    explainer = InfluenceExplainer(LogisticRegression()).fit(X[:250], y[:250])
    plain = explainer.top_influential(X[250:253], y[250:253], k=4)
    same = explainer.top_influential(
        X[250:253], y[250:253], k=4, method="divine", gamma=0
    )
    assert plain[["train_row", "kind"]].equals(same[["train_row", "kind"]])
    diverse = explainer.top_influential(
        X[250:253], y[250:253], k=4, method="divine", gamma=3.0
    )
    # The right sign is kept, and the chosen rows are further apart.
    assert (diverse.query("kind == 'helpful'").influence < 0).all()
    assert (diverse.query("kind == 'harmful'").influence > 0).all()

    def mean_distance(table):
        out = []
        for _, part in table.groupby(["test_row", "kind"], observed=True):
            P = X[:250][part.train_row.to_numpy()]
            out.append(np.mean(np.linalg.norm(P[:, None] - P[None], axis=2)))
        return np.mean(out)

    assert mean_distance(diverse) > 1.5 * mean_distance(plain)


def test_callable_kernel_and_errors(rng):
    X = rng.normal(size=(20, 2))
    scores = rng.normal(size=20)
    chosen = select_diverse(scores, X, 3, kernel=lambda A, B: rbf_kernel(A, B, 2.0))
    assert len(set(chosen)) == 3
    with pytest.raises(ValueError, match="diversity"):
        select_diverse(scores, X, 3, diversity="dpp")
    with pytest.raises(ValueError, match="gamma"):
        select_diverse(scores, X, 3, gamma=-1)
    with pytest.raises(ValueError, match="rows"):
        select_diverse(scores[:5], X, 3)
    with pytest.raises(ValueError, match="similarity matrix"):
        select_diverse(scores, X, 3, kernel=lambda A, B: np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"entries \[1\] are NaN or infinite"):
        select_diverse(np.array([1.0, np.nan, 0.5]), X[:3], 2)
    with pytest.raises(ValueError, match=r"1-d array, got shape \(2, 10\)"):
        select_diverse(scores.reshape(2, 10), X, 2)


def test_docstring_examples():
    result = doctest.testmod(skinfluence.diverse, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
