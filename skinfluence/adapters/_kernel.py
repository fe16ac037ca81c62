"""Kernel models in their representer form: KernelRidge and SVC.

A kernel model ``f(x) = sum_j alpha_j k(x, x_j) (+ b)`` with RKHS penalty
``alpha' K alpha`` is the linear model ``f(x) = phi(x)' beta (+ b)`` with
penalty ``||beta||^2``, for the landmark features ``phi`` of
:mod:`skinfluence.objectives._kernel_features` (exact to the pivoting
tolerance) and ``beta = Phi' alpha``, the kernel computed exactly as the
estimator computes it. The objective then reuses the linear-model adapters;
perturbation influence differentiates through ``phi``. An indefinite kernel
(KernelRidge only) gets a signed map and penalty, ``beta = J Phi' alpha``.

- ``KernelRidge(alpha)``: ``sum_i w_i (y_i - f_i)^2 + alpha alpha' K alpha``,
  no intercept: ``loss = (y - f)^2``, ``lam = 2 alpha / W``.
- ``SVC`` (binary, hinge loss, trained by libsvm): explained through the smooth
  hinge at ``HINGE_TEMPERATURE`` (the paper's approximation) over the span of
  its support vectors, ``lam = 1 / (C W)``.
"""

import numpy as np

from ..objectives import LinearObjective, PivotedKernelFeatures, SquaredError


def representer_features(
    kernel,
    gamma,
    degree,
    coef0,
    basis,
    dual_coef,
    *,
    kernel_params=None,
    per_pair=False,
    signed=False,
):
    """Landmark features over ``basis`` and ``beta = J Phi' alpha`` per output.

    The kernel is the estimator's own (see
    :func:`~skinfluence.objectives.kernel_matrix`): ``kernel_params`` go to a
    callable, ``per_pair`` says how scikit-learn calls it (``KernelRidge``: per
    pair of rows; ``SVC``: on whole matrices). An indefinite Gram matrix
    (e.g. 'sigmoid') is refused with a ``ValueError``, unless ``signed``: then
    the map is the signed one, ``J = fmap.signs_`` (the identity otherwise),
    and the RKHS penalty is ``beta' J beta``.
    """
    fmap = PivotedKernelFeatures(
        kernel,
        gamma,
        degree,
        coef0,
        kernel_params=kernel_params,
        per_pair=per_pair,
        signed=signed,
    ).fit(basis)
    beta = np.atleast_2d(dual_coef) @ fmap.transform(basis)
    if fmap.signs_ is not None:
        beta = beta * fmap.signs_
    return fmap, beta


def from_kernel_ridge(estimator, y, sample_weight):
    """Objective of a fitted KernelRidge (one target).

    Every kernel KernelRidge accepts is computed as it computes it (the names
    of ``sklearn.metrics.pairwise.PAIRWISE_KERNEL_FUNCTIONS``, callables,
    'precomputed'). A kernel whose training Gram matrix is indefinite
    ('sigmoid', 'additive_chi2') gets the signed feature map (see
    :mod:`skinfluence.objectives._kernel_features`): the penalty ``lam`` has
    the signs of the Gram matrix's eigenvalues, and the fitted model is a
    saddle point of the objective, whose Hessian the exact solver then
    inverts without requiring it to be positive definite.
    """

    dual = np.asarray(estimator.dual_coef_)
    if dual.ndim == 2 and dual.shape[1] != 1:
        raise ValueError(
            "KernelRidge fitted on several targets: explain one target at a time."
        )
    alpha = np.ravel(estimator.alpha)
    if alpha.size != 1:
        raise ValueError("KernelRidge with one alpha per target is not supported.")
    # KernelRidge._get_kernel: gamma, degree and coef0 for a named kernel,
    # kernel_params (only) for a callable, called per pair of rows.
    fmap, beta = representer_features(
        estimator.kernel,
        estimator.gamma,
        estimator.degree,
        estimator.coef0,
        estimator.X_fit_,
        dual.ravel(),
        kernel_params=estimator.kernel_params,
        per_pair=True,
        signed=True,
    )
    w = np.asarray(sample_weight, dtype=np.float64)
    lam = np.full(beta.shape[1], 2.0 * float(alpha[0]) / w.sum())
    if fmap.signs_ is not None:  # an indefinite kernel's penalty beta' J beta
        lam = lam * fmap.signs_
    return LinearObjective(
        beta, None, SquaredError(1.0), lam, "fixed", feature_map=fmap
    ), w
