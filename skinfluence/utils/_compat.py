"""What differs between the oldest and newest supported dependency versions.

Each helper does what the newest versions do, through their own function where
it exists; only the fallback for an older version is written here.
"""

import inspect

import numpy as np
from scipy import linalg
from sklearn.utils import class_weight as _class_weight

# scikit-learn >= 1.7: compute_class_weight takes sample_weight, and the
# estimators that apply class_weight='balanced' (LogisticRegression(CV),
# LinearSVC and liblinear) count each class by its rows' sample weights; before,
# every row counted once (SVC and SGDClassifier still count rows).
BALANCED_COUNTS_SAMPLE_WEIGHT = (
    "sample_weight" in inspect.signature(_class_weight.compute_class_weight).parameters
)


def compute_class_weight(class_weight, *, classes, y, sample_weight=None):
    """scikit-learn's ``compute_class_weight``, ``sample_weight`` on every version.

    'balanced' gives class ``k`` the weight ``W / (n_classes W_k)``, with
    ``W_k`` the summed sample weight of its rows (their count where
    ``sample_weight`` is None), as scikit-learn >= 1.7 does.
    """
    if sample_weight is None:
        return _class_weight.compute_class_weight(class_weight, classes=classes, y=y)
    if BALANCED_COUNTS_SAMPLE_WEIGHT:
        return _class_weight.compute_class_weight(
            class_weight, classes=classes, y=y, sample_weight=sample_weight
        )
    # Validation and the dict case are scikit-learn's; only 'balanced' is redone.
    weight = _class_weight.compute_class_weight(class_weight, classes=classes, y=y)
    if isinstance(class_weight, str) and class_weight == "balanced":
        weight = _weighted_balanced(classes, y, sample_weight)
    return weight


def _weighted_balanced(classes, y, sample_weight):
    """'balanced' class weights ``W / (n_classes W_k)`` for a validated ``y``."""
    present, index = np.unique(np.asarray(y), return_inverse=True)
    counts = np.bincount(
        index.ravel(), weights=np.asarray(sample_weight, dtype=np.float64)
    )
    recip_freq = counts.sum() / (len(present) * counts)
    return recip_freq[np.searchsorted(present, classes)]


def triangular_rcond(R):
    """LAPACK's estimate of the 1-norm reciprocal condition number of upper ``R``.

    ``?trcon`` is exposed by SciPy >= 1.11 only; before, ``?gecon`` on ``R``
    taken as its own LU factors (``L = I``) gives the same kind of estimate.
    """
    trcon = getattr(linalg.lapack, "dtrcon", None)
    if trcon is None:
        return _gecon_rcond(R)
    rcond, _ = trcon(R, norm="1", uplo="U", diag="N")
    return float(rcond)


def _gecon_rcond(R):
    """``?trcon``'s estimate through ``?gecon``, which every SciPy exposes."""
    U = np.triu(R)
    anorm = np.abs(U).sum(axis=0).max()
    rcond, info = linalg.lapack.dgecon(U, anorm, norm="1")
    if info != 0:
        raise ValueError(f"dgecon failed with info={info}")
    return float(rcond)
