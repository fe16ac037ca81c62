"""skinfluence.utils._compat: each fallback for an old dependency version does
what the newest versions' own function does."""

import inspect

import numpy as np
import pytest
from scipy import linalg
from sklearn.utils import class_weight as sk_class_weight

from skinfluence.utils import _compat

_SKLEARN_TAKES_SAMPLE_WEIGHT = (
    "sample_weight"
    in inspect.signature(sk_class_weight.compute_class_weight).parameters
)


@pytest.fixture
def labels(rng):
    y = np.array(["a"] * 7 + ["b"] * 3 + ["c"] * 10)
    return np.unique(y), y, rng.uniform(0.1, 3.0, len(y))


def test_balanced_fallback_counts_sample_weight(labels):
    classes, y, w = labels
    got = _compat._weighted_balanced(classes, y, w)
    totals = np.array([w[y == c].sum() for c in classes])
    np.testing.assert_allclose(got, w.sum() / (len(classes) * totals), rtol=1e-14)
    # with unit weights: scikit-learn's 'balanced' of every version
    np.testing.assert_allclose(
        _compat._weighted_balanced(classes, y, np.ones(len(y))),
        sk_class_weight.compute_class_weight("balanced", classes=classes, y=y),
        rtol=1e-14,
    )


@pytest.mark.skipif(
    not _SKLEARN_TAKES_SAMPLE_WEIGHT,
    reason="compute_class_weight(sample_weight=...) needs scikit-learn>=1.7",
)
def test_balanced_fallback_is_scikit_learns(labels):
    classes, y, w = labels
    expected = sk_class_weight.compute_class_weight(
        "balanced", classes=classes, y=y, sample_weight=w
    )
    np.testing.assert_allclose(
        _compat._weighted_balanced(classes, y, w), expected, rtol=1e-14
    )


@pytest.mark.parametrize("class_weight", [None, "balanced", {"a": 2.0, "c": 0.5}])
def test_compute_class_weight(labels, class_weight):
    classes, y, w = labels
    got = _compat.compute_class_weight(
        class_weight, classes=classes, y=y, sample_weight=w
    )
    if class_weight == "balanced":
        expected = _compat._weighted_balanced(classes, y, w)
    else:  # sample weights do not enter
        expected = sk_class_weight.compute_class_weight(
            class_weight, classes=classes, y=y
        )
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert _compat.BALANCED_COUNTS_SAMPLE_WEIGHT == _SKLEARN_TAKES_SAMPLE_WEIGHT


def test_triangular_rcond(rng):
    for p in (1, 4, 30):
        X = rng.standard_normal((2 * p, p)) * np.geomspace(1.0, 1e-5, p)
        R = linalg.qr(X, mode="r")[0][:p]
        exact = 1.0 / (np.linalg.norm(R, 1) * np.linalg.norm(np.linalg.inv(R), 1))
        # LAPACK's estimate: a lower bound, exact on such small matrices
        for rcond in (_compat.triangular_rcond(R), _compat._gecon_rcond(R)):
            assert rcond == pytest.approx(exact, rel=1e-10)
        if hasattr(linalg.lapack, "dtrcon"):
            expected = linalg.lapack.dtrcon(R, norm="1", uplo="U", diag="N")[0]
            assert _compat._gecon_rcond(R) == pytest.approx(expected, rel=1e-12)
