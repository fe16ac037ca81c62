"""SmoothHingeSVC: a support vector classifier whose loss has a Hessian."""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ..objectives._hinge import SmoothHinge
from ..objectives._kernel_features import (
    PivotedKernelFeatures,
    kernel_matrix,
    kernel_params,
)
from ..objectives._objective import LinearObjective
from ..utils._labels import class_weights
from ..utils._warn import caller_stacklevel
from ._newton import newton_minimize
from ._representer_newton import hinge_start, representer_newton


class SmoothHingeSVC(ClassifierMixin, BaseEstimator):
    """Support vector classifier with the smooth hinge loss.

    Minimises ``C * sum_i w_i * SmoothHinge(y_i f(x_i), t) + 1/2 ||f||^2`` with
    ``SmoothHinge(s, t) = t log(1 + exp((1 - s) / t))``, which tends to the
    hinge ``max(0, 1 - s)`` as ``t -> 0`` (Koh & Liang, 2017). ``C`` means what
    it means for ``SVC``. Unlike the hinge, the loss is twice
    differentiable, so :class:`~skinfluence.InfluenceExplainer` explains it
    exactly, with the very objective minimised here.

    Linear kernel: ``f(x) = x @ coef_ + intercept_``. Other kernels:
    ``f(x) = sum_j dual_coef_[j] k(x, landmarks_[j]) + intercept_``, the
    representer form over all training rows, fitted by Newton's method in that
    form (Chapelle, 2007): each iteration solves only over the rows near the
    margin. With ``n_components``, an explicit Nystroem feature map over at
    most that many landmark rows (chosen by pivoted Cholesky) replaces the
    kernel, for data too large for an n x n Gram matrix.

    Every fit is a damped Newton method with the exact gradient and Hessian.
    Linear and landmark fits start at temperature 1 and lower it tenfold per
    stage to ``temperature`` (continuation keeps every stage well
    conditioned). Exact-kernel fits with an intercept at ``temperature <=
    0.1`` start from the hinge SVM, solved by libsvm (``SVC``)
    on the same Gram matrix: the smooth optimum lies within about
    ``temperature`` of it, where Newton needs a handful of iterations to reach
    it exactly. Other exact-kernel fits start from zero at ``temperature``
    (at 1e-3 and tenfold stages below it, for lower temperatures).
    Multiclass problems are one-vs-rest.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularization strength.
    kernel : {'linear', 'rbf', 'poly', 'precomputed'} or callable, default='linear'
    gamma : {'scale', 'auto'} or float, default='scale'
        Kernel coefficient for 'rbf' and 'poly'; 'scale' is
        ``1 / (n_features * X.var())`` as in SVC.
    degree : int, default=3
    coef0 : float, default=0.0
    temperature : float, default=0.01
        The smooth hinge's ``t``.
    fit_intercept : bool, default=True
        The intercept is not penalized.
    class_weight : dict or 'balanced', default=None
        Multiplies ``C`` per class, as in SVC.
    tol : float, default=1e-14
        Stop when the Newton decrement (the estimated remaining objective gap,
        per unit of ``C * sum(w)``) is below ``tol``.
    max_iter : int, default=100
        Newton iterations per temperature stage.
    n_components : int, default=None
        At most this many landmarks for non-linear kernels.
    warm_start : bool, default=False
        Start from the previous solution (same features) at the final
        temperature.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1 or n_classes, n_features)
        Linear kernel only.
    dual_coef_ : ndarray of shape (1 or n_classes, n_basis)
        Non-linear kernels only: weights of ``k(x, X_fit_)`` (exact kernel) or
        of ``k(x, landmarks_)`` (with ``n_components``).
    X_fit_ : ndarray of shape (n_samples, n_features)
        Exact kernel only: the training rows (the Gram matrix if precomputed).
    kernel_features_ : object or None
        With ``n_components``: the landmark feature map.
    feature_coef_ : ndarray of shape (1 or n_classes, n_model_features)
        Linear kernel or ``n_components``: the weights of the features the
        decision function is linear in (the input columns, or
        ``kernel_features_.transform(X)``).
    landmarks_ : ndarray of shape (n_landmarks, n_features)
        With ``n_components``: the rows chosen by pivoted Cholesky.
    intercept_ : ndarray of shape (1 or n_classes,)
    support_ : ndarray
        Indices of training rows inside the margin (``y f(x) < 1``).
    n_iter_ : int
        Newton iterations, all stages and classes together.
    n_features_in_ : int
    feature_names_in_ : ndarray

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import SmoothHingeSVC
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), SmoothHingeSVC(kernel="rbf"))
    >>> round(clf.fit(X[:400], y[:400]).score(X[400:], y[400:]), 2)
    0.98
    """

    _parameter_constraints = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "kernel": [StrOptions({"linear", "rbf", "poly", "precomputed"}), callable],
        "gamma": [
            StrOptions({"scale", "auto"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "degree": [Interval(Integral, 1, None, closed="left")],
        "coef0": [Real],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        C=1.0,
        *,
        kernel="linear",
        gamma="scale",
        degree=3,
        coef0=0.0,
        temperature=0.01,
        fit_intercept=True,
        class_weight=None,
        tol=1e-14,
        max_iter=100,
        n_components=None,
        warm_start=False,
    ):
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.temperature = temperature
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.tol = tol
        self.max_iter = max_iter
        self.n_components = n_components
        self.warm_start = warm_start

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training rows (the Gram matrix if ``kernel='precomputed'``).
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row multipliers of ``C``.

        Returns
        -------
        self : SmoothHingeSVC
        """
        linear = self.kernel == "linear"
        X, y = validate_data(
            self, X, y, accept_sparse="csr" if linear else False, dtype=np.float64
        )
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                "SmoothHingeSVC needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {classes[0]}."
            )
        if self.kernel == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(
                f"kernel='precomputed' needs the square training Gram matrix, got "
                f"shape {X.shape}."
            )
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        weights = class_weights(self.class_weight, classes, y, sw)
        start = self._warm_start_point(classes, X)
        self.classes_ = classes
        self.gamma_ = self._resolve_gamma(X)
        family = SmoothHinge(classes, self.temperature)
        target = family.encode(y)
        n_out = family.n_outputs
        signs = family.signs(target, n_out)
        if linear or self.n_components is not None:
            Phi = X if linear else self._fit_landmarks(X)
            coef, intercept = self._fit_primal(Phi, signs, weights, start)
            self._coef = self.feature_coef_ = coef
            scores = np.asarray(Phi @ coef.T) + intercept
            if not linear:
                self.dual_coef_ = self.kernel_features_.coefficients(coef)
        else:
            self.kernel_features_ = self.feature_coef_ = None
            self.X_fit_ = X
            K = self._gram(X)
            self.dual_coef_, intercept = self._fit_representer(K, signs, weights, start)
            scores = K @ self.dual_coef_.T + intercept
        self.intercept_ = intercept
        self.support_ = np.flatnonzero((signs * scores < 1).any(axis=1))
        return self

    def _resolve_gamma(self, X):
        if self.gamma == "scale":
            var = (
                X.var()
                if not sp.issparse(X)
                else (X.multiply(X).mean() - X.mean() ** 2)
            )
            return 1.0 / (X.shape[1] * var) if var > 0 else 1.0
        if self.gamma == "auto":
            return 1.0 / X.shape[1]
        return float(self.gamma)

    def _gram(self, A, B=None):
        if self.kernel == "precomputed":  # rows are read as columns: C order
            return np.ascontiguousarray(A, dtype=np.float64)
        # The one kernel function of the package; a callable is called on whole
        # matrices, as sklearn.svm.SVC calls it.
        params = kernel_params(self.kernel, self.gamma_, self.degree, self.coef0)
        return kernel_matrix(self.kernel, A, B, params, per_pair=False)

    def _fit_landmarks(self, X):
        self.kernel_features_ = PivotedKernelFeatures(
            self.kernel, self.gamma_, self.degree, self.coef0, self.n_components
        ).fit(X)
        self.landmarks_ = self.kernel_features_.basis_
        return self.kernel_features_.transform(X)

    def _warm_start_point(self, classes, X):
        """Previous (coefficients, intercept) when they fit this problem, else None.

        A change of classes, features, kernel mode or training rows (exact
        kernel) falls back to a cold start.
        """
        if not self.warm_start or not hasattr(self, "intercept_"):
            return None
        if not np.array_equal(classes, self.classes_):
            return None
        if self.kernel == "linear":
            coef = getattr(self, "_coef", None)
            width = X.shape[1]
        elif self.n_components is None:
            coef = getattr(self, "dual_coef_", None)
            width = X.shape[0]
            if getattr(self, "kernel_features_", True) is not None:
                coef = None  # previous fit was not in the representer form
        else:
            coef, width = None, None  # new landmarks, new features
        if coef is None or coef.shape[1] != width:
            return None
        return coef.copy(), self.intercept_.copy()

    def _stages(self, warm, top=1.0):
        """Temperatures from ``top`` down to ``temperature``, tenfold per stage."""
        stages = [self.temperature]
        while not warm and stages[-1] < top * (1.0 - 1e-9):
            stages.append(min(top, stages[-1] * 10))
        return stages[::-1]

    def _fit_primal(self, Phi, signs, weights, start):
        """Newton on the (linear or landmark) features, one output at a time."""
        n_out, d = signs.shape[1], Phi.shape[1]
        lam = np.zeros(d + int(self.fit_intercept))
        lam[:d] = 1.0 / (self.C * weights.sum())
        coef, intercept = (
            (np.zeros((n_out, d)), np.zeros(n_out)) if start is None else start
        )
        self.n_iter_, converged = 0, True
        for k in range(n_out):
            binary = (signs[:, k] > 0).astype(int)
            obj = LinearObjective(
                coef[k : k + 1],
                intercept[k : k + 1] if self.fit_intercept else None,
                None,
                lam,
                "fixed",
            )
            for t in self._stages(start is not None):
                obj.family = SmoothHinge([0, 1], t)
                obj, n_iter, ok = newton_minimize(
                    obj, Phi, binary, weights, tol=self.tol, max_iter=self.max_iter
                )
                self.n_iter_ += n_iter
            converged &= ok
            coef[k] = obj.coef[0]
            intercept[k] = obj.intercept[0] if self.fit_intercept else 0.0
        self._warn_unconverged(converged)
        return coef, intercept

    def _fit_representer(self, K, signs, weights, start):
        """Newton in the representer form, one output at a time."""
        n_out, n = signs.shape[1], K.shape[0]
        alpha, intercept = (
            (np.zeros((n_out, n)), np.zeros(n_out)) if start is None else start
        )
        self.n_iter_, converged = 0, True
        for k in range(n_out):
            a, b = alpha[k], intercept[k]
            # From zero, the exact line search makes higher temperatures (whose
            # curved rows are many, so costly) a poor investment: one stage
            # down to 1e-3, tenfold stages below.
            stages = self._stages(start is not None, max(self.temperature, 1e-3))
            if start is None and self.fit_intercept and self.temperature <= 0.1:
                # The hinge SVM's optimum is within about t of the smooth one,
                # where Newton converges fast: one stage from there.
                hinge = hinge_start(K, signs[:, k], weights, self.C)
                if hinge is not None:
                    (a, b), stages = hinge, [self.temperature]
            for t in stages:
                final = t == stages[-1]
                # Earlier stages only provide a warm start: solve them loosely.
                a, b, n_iter, ok = representer_newton(
                    K,
                    signs[:, k],
                    weights,
                    self.C,
                    t,
                    a,
                    b,
                    fit_intercept=self.fit_intercept,
                    tol=self.tol if final else max(self.tol, 1e-6),
                    max_iter=self.max_iter,
                    cg_rtol=1e-6 if final else 1e-3,
                )
                self.n_iter_ += n_iter
            converged &= ok
            alpha[k], intercept[k] = a, b
        self._warn_unconverged(converged)
        return alpha, intercept

    def _warn_unconverged(self, converged):
        if not converged:
            warnings.warn(
                f"SmoothHingeSVC did not converge in max_iter={self.max_iter} Newton "
                "iterations; raise max_iter, or a temperature this low may need a "
                "larger tol.",
                ConvergenceWarning,
                stacklevel=caller_stacklevel(),
            )

    @property
    def coef_(self):
        check_is_fitted(self)
        if self.kernel != "linear":
            raise AttributeError(
                "coef_ is only available when kernel='linear'; see dual_coef_."
            )
        return self._coef

    def decision_function(self, X):
        """Signed distance to the margin; shape (n,) binary, (n, n_classes) else.

        ``X`` is the Gram matrix against the training rows, of shape
        (n, n_train), when ``kernel='precomputed'``.
        """
        check_is_fitted(self)
        linear = self.kernel == "linear"
        X = validate_data(
            self,
            X,
            reset=False,
            dtype=np.float64,
            accept_sparse="csr" if linear else False,
        )
        if linear:
            scores = np.asarray(X @ self._coef.T)
        elif self.kernel_features_ is not None:
            scores = self.kernel_features_.transform(X) @ self._coef.T
        else:
            K = X if self.kernel == "precomputed" else self._gram(X, self.X_fit_)
            scores = K @ self.dual_coef_.T
        scores = scores + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Class labels."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(1)
        return self.classes_[index]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self.kernel == "linear"
        tags.input_tags.pairwise = self.kernel == "precomputed"
        return tags
