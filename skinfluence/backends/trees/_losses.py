"""Loss families of gradient-boosted trees, as the boosting itself uses them.

Conventions
-----------
``F`` holds the raw outputs (the sums of leaf values plus the baseline) with
the trees' output axis second: shape ``(n, K)`` or ``(n, K, m)`` for ``m``
weightings of the same rows at once. ``K`` is 1 for regression and binary
classification (the log-odds of the second class), the number of classes
otherwise (one tree per class per round). ``t`` is the encoded target: the
class position for classifiers, the float target for regressors.

=============== ======================= ================ ==================
family          loss ``l(t, F)``        gradient ``g``   hessian ``h``
=============== ======================= ================ ==================
squared error   ``(F - t)^2 / 2``       ``F - t``        ``1``
binomial        ``-log p_t``,           ``p - t``        ``p (1 - p)``
                ``p = expit(F)``
multinomial     ``-log p_t``,           ``p_k - [t=k]``  ``p_k (1 - p_k)``
                ``p = softmax(F)``
=============== ======================= ================ ==================

These are the half squared error and log losses scikit-learn's boosting
differentiates (its leaf values are Newton steps on them), so the loss the
estimator minimises is the loss we differentiate.
"""

import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax

#: Families by name.
FAMILIES = ("squared_error", "binomial", "multinomial")


class TreeLoss:
    """One loss family of a boosted ensemble (see the module's table).

    Parameters
    ----------
    name : {'squared_error', 'binomial', 'multinomial'}
    classes : ndarray or None
        The classifier's classes (None for a regressor).
    hessian_scale : float, default=1.0
        Factor of the multinomial hessian (LightGBM uses ``K / (K - 1)``).
    """

    def __init__(self, name, classes=None, hessian_scale=1.0):
        self.name = name
        self.hessian_scale = hessian_scale
        self.classes = None if classes is None else np.asarray(classes)
        self.n_outputs = len(classes) if name == "multinomial" else 1

    @property
    def family(self):
        """The loss itself (the explainer's applications read ``family.classes``)."""
        return self

    def encode(self, y):
        """Targets as the gradients use them: class positions or floats."""
        y = np.asarray(y)
        if self.classes is None:
            return y.astype(np.float64)
        idx = np.searchsorted(self.classes, y)
        bad = (idx >= len(self.classes)) | (
            self.classes[np.minimum(idx, len(self.classes) - 1)] != y
        )
        if np.any(bad):
            raise ValueError(
                f"y holds labels {np.unique(y[bad])[:5].tolist()} outside the "
                f"model's classes {self.classes.tolist()}."
            )
        return idx

    def _target(self, t, F):
        """``t`` shaped to broadcast against ``F`` (axis 1 the outputs)."""
        return np.reshape(t, (-1,) + (1,) * (F.ndim - 1))

    def proba(self, F):
        """``p`` of the table (the raw outputs for squared error)."""
        if self.name == "binomial":
            return expit(F)
        if self.name == "multinomial":
            return softmax(F, axis=1)
        return F

    def gradient_hessian(self, t, F):
        """``(g, h)`` of the shape of ``F``, per row and output (unweighted)."""
        if self.name == "squared_error":
            return F - self._target(t, F), np.ones_like(F)
        p = self.proba(F)
        if self.name == "binomial":
            g = p - self._target(t, F)
        else:
            onehot = np.arange(F.shape[1]).reshape((1, -1) + (1,) * (F.ndim - 2))
            g = p - (self._target(t, F) == onehot)
        return g, self.hessian_scale * p * (1 - p)

    def loss(self, t, F):
        """Per-row loss of the table, of shape ``F.shape[:1] + F.shape[2:]``."""
        if self.name == "squared_error":
            return 0.5 * (F[:, 0] - self._target(t, F[:, 0])) ** 2
        if self.name == "binomial":
            z = F[:, 0]
            tt = self._target(t, z)
            return -(tt * log_expit(z) + (1 - tt) * log_expit(-z))
        logp = log_softmax(F, axis=1)
        idx = self._target(t, F[:, :1]).astype(int)
        return -np.take_along_axis(logp, idx, axis=1)[:, 0]

    def output_gradient(self, F, target, cls):
        """``d quantity / d F`` of shape (n, K) for a test ``target``.

        ``cls``: each row's class position (classifiers), for 'predict_proba'
        and the multiclass 'decision_function'.
        """
        n, K = F.shape
        out = np.zeros((n, K))
        rows = np.arange(n)
        if target == "decision_function" or target == "predict":
            out[rows, cls if K > 1 else 0] = 1.0
        elif target == "predict_proba":
            p = self.proba(F)
            if K == 1:  # p of class 1 is expit(F); class 0 has the opposite sign
                out[:, 0] = p[:, 0] * (1 - p[:, 0]) * np.where(cls == 1, 1.0, -1.0)
            else:
                pc = p[rows, cls]
                out = -pc[:, None] * p
                out[rows, cls] += pc
        return out

    def chain(self, dF, k, weights, G_bar, H_bar, P):
        """Add to ``dF`` what a tree of output ``k`` sends back to the outputs.

        The tree's leaf sums are ``G = sum_j w_j g_jk(F_j)`` and
        ``H = sum_j w_j h_jk(F_j)``; with their adjoints gathered per row,
        ``G_bar`` and ``H_bar`` of shape (n, m), this adds
        ``w_j (G_bar d g_jk / d F_j + H_bar d h_jk / d F_j)`` into ``dF`` of
        shape (K, n, m). ``P``: the rows' ``p`` at that round, shape (n, K).
        """
        if self.name == "squared_error":  # dg/dF = 1, dh/dF = 0
            dF[k] += weights[:, None] * G_bar
            return
        pk = P[:, k][:, None]
        # dg_k/dF_j = p_k ([k=j] - p_j); dh_k/dF_j = (1 - 2 p_k) dg_k/dF_j.
        c = weights[:, None] * pk * (G_bar + self.hessian_scale * H_bar * (1 - 2 * pk))
        if self.name == "binomial":
            dF[0] += c * (1 - pk)
            return
        dF[k] += c
        dF -= P.T[:, :, None] * c[None]
