"""Label encoding and class weights, as scikit-learn's estimators compute them."""

import numpy as np


def encode_labels(y, classes):
    """Each label's position in the sorted ``classes``; unseen labels raise."""
    y = np.asarray(y)
    try:
        index = np.searchsorted(classes, y)
    except TypeError:  # labels of another type than the classes (1 vs 'a')
        known = set(classes.tolist())
        _unseen(list(dict.fromkeys(v for v in y.tolist() if v not in known)), classes)
    index = np.clip(index, 0, len(classes) - 1)
    unseen = classes[index] != y
    if np.any(unseen):
        _unseen(np.unique(y[unseen]).tolist(), classes)
    return index


def _unseen(labels, classes):
    raise ValueError(
        f"y contains labels not seen during fit: {labels[:5]}; the model "
        f"knows only {classes.tolist()}. Drop those rows or refit the "
        "explainer on data that contains them."
    )


def class_weights(class_weight, classes, y, sample_weight, balance_weighted=True):
    """Sample weights times class weights, as the estimator computes them.

    ``balance_weighted``: whether 'balanced' counts rows by their sample weight
    (SmoothHingeSVC; LogisticRegression and liblinear from scikit-learn 1.7:
    ``_compat.BALANCED_COUNTS_SAMPLE_WEIGHT``) or one each (SGDClassifier).
    """
    from ._compat import compute_class_weight

    w = np.asarray(sample_weight, dtype=np.float64)
    if class_weight is None:
        return w
    per_class = compute_class_weight(
        class_weight,
        classes=classes,
        y=y,
        sample_weight=w if balance_weighted else None,
    )
    return w * per_class[encode_labels(y, classes)]
