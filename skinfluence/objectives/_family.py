"""LossFamily: the pointwise loss of a linear-output model and its derivatives.

Conventions
-----------
A family sees the model only through its ``K`` linear outputs ``eta`` of shape
``(n, K)`` and an internal target ``t`` (``encode(y)``: class positions for a
classifier, float targets for a regressor). Everything else (features,
intercepts, penalties, sample weights) is the business of
:class:`~skinfluence.objectives.LinearObjective`, which turns these pointwise
derivatives into per-sample gradients ``g_i = r_i kron [x_i, 1]`` and the
Hessian ``1/W sum_i w_i D_i kron [x_i, 1][x_i, 1]' + diag(lam)``.

Every family has
    ``n_outputs`` (``K``), ``classes`` (class labels or None for a regressor),
    ``encode(y)``, ``loss(t, eta)`` of shape (n,), ``gradient(t, eta)``
    (``r = d loss / d eta``, shape (n, K)), ``hessian(t, eta)``
    (``D = d2 loss / d eta2``, shape (n, K, K)) and
    ``output_gradient(eta, target, class_index)`` (``d quantity / d eta`` of
    the prediction ``target`` in 'decision_function', 'predict_proba',
    'predict', shape (n, K)).

Optional hooks, used when present
    ``loss_gradient(t, eta)`` -> ``(loss, gradient)`` sharing work (refits);
    ``hessian_parts(t, eta)`` -> ``(a, U)`` with ``D_i = diag(a_i) - u_i u_i'``,
    which lets the Hessian be formed as weighted Grams instead of ``K^2``
    row products (the softmax).

Adding a loss: subclass :class:`LossFamily`, fill the five methods, check them
against finite differences (``tests/objectives``), then write the adapter that
builds a :class:`LinearObjective` from the estimator (``skinfluence.adapters``).
"""

import numpy as np


class LossFamily:
    """Base class of the loss families (see the module's Conventions).

    Subclasses set ``n_outputs`` and ``classes`` and implement ``encode``,
    ``loss``, ``gradient`` and ``hessian``. The default ``output_gradient``
    serves a single-output model whose prediction is ``eta`` itself.
    """

    n_outputs = 1
    classes = None

    def encode(self, y):
        """Internal targets ``t`` of labels or targets ``y``."""
        raise NotImplementedError

    def loss(self, t, eta):
        """Pointwise loss, shape (n,)."""
        raise NotImplementedError

    def gradient(self, t, eta):
        """``d loss / d eta``, shape (n, K)."""
        raise NotImplementedError

    def hessian(self, t, eta):
        """``d2 loss / d eta2``, shape (n, K, K)."""
        raise NotImplementedError

    def output_gradient(self, eta, output, class_index):
        """``d prediction / d eta`` of ``output`` for each row's ``class_index``.

        The default (identity prediction) serves one-output regressors.
        """
        return np.ones_like(eta)


def encode_single_target(y):
    """One regression target as a float64 vector, refusing several."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(
            f"y must be 1-dimensional (one target), got shape {y.shape}. "
            "Explain one target at a time."
        )
    return y


def diagonal_hessian(diag):
    """``(n, K, K)`` Hessians with ``diag`` of shape (n, K) on their diagonals."""
    D = np.zeros(diag.shape + (diag.shape[1],))
    idx = np.arange(diag.shape[1])
    D[:, idx, idx] = diag
    return D
