"""The backend protocol: what every influence backend serves the explainer.

A backend holds, for one fitted model and its training rows, everything the
influence quantities need (per-row gradients, the Hessian behind a fitted
solver) and answers in those terms. The explainer validates input, makes one
backend (:func:`skinfluence.backends.make_backend`) and delegates; the
applications (cleaning, attacks, validation, plots) call the explainer's or the
backend's public methods only.

Conventions of every method (see :class:`~skinfluence.InfluenceExplainer` for
the signs and units):

- ``X`` is test input as validated by the explainer, *before* any Pipeline
  prefix; the backend maps it to the final model's input
  (:meth:`model_input`) and on to whatever the model is linear in.
- ``target`` is one of :data:`TARGETS`; ``y`` may be None unless
  ``target='loss'``.
- Quantities per training row follow the training rows' order.

What a backend cannot compute it says through :meth:`supports`, and
:meth:`require` raises one :class:`~skinfluence.exceptions.UnsupportedOperationError`
naming the alternatives.
"""

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    column_or_1d,
    validate_data,
)

from ..core._formulas import flat_outputs
from ..core._topk import StreamingTopK
from ..exceptions import FlatLossWarning, UnsupportedOperationError
from ..objectives._hinge import SmoothHinge
from ..utils._warn import caller_stacklevel

TARGETS = ("loss", "decision_function", "predict_proba", "predict")
RELATIF_KINDS = ("theta", "l")
_TINY = np.finfo(float).tiny


def check_2d(X):
    """Shape checks for input a Pipeline will validate itself (may hold strings)."""
    if hasattr(X, "iloc") or hasattr(X, "tocsr"):
        return X
    return check_array(X, dtype=None, accept_sparse=True, ensure_all_finite=False)


# Features beyond this magnitude overflow float64 once squared (the Hessian).
_OVERFLOW = 1e150


def _surely_finite(X):
    """A copy-free test that passes for (almost) every finite array."""
    data = getattr(X, "data", None) if sp.issparse(X) else X
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiub":
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(data)))  # NaN or inf make the sum so


def nonfinite_rows(X):
    """Positions of the rows of a numeric array or frame holding NaN or inf."""
    if _surely_finite(X):
        return np.array([], dtype=int)
    try:
        values = X.to_numpy(dtype=float) if hasattr(X, "to_numpy") else X
        if sp.issparse(values):
            values = sp.csr_matrix(values)
            bad = ~np.isfinite(values.data)
            return np.unique(
                np.repeat(np.arange(values.shape[0]), np.diff(values.indptr))[bad]
            )
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError):  # strings: the Pipeline validates them
        return np.array([], dtype=int)
    if values.ndim != 2:
        return np.array([], dtype=int)
    return np.flatnonzero(~np.isfinite(values).all(axis=1))


def check_finite_input(X, name, prefixed=False):
    """Refuse NaN or inf rows, naming the argument, the rows and the fix."""
    bad = nonfinite_rows(X)
    if bad.size:
        where = (
            "as the final estimator sees it (after the Pipeline's steps), "
            if prefixed
            else ""
        )
        raise ValueError(
            f"{name} {where}holds NaN or infinite values in rows "
            f"{bad[:5].tolist()}{' ...' if bad.size > 5 else ''} ({bad.size} in "
            "all). Impute them, e.g. make_pipeline(SimpleImputer(), model) from "
            "sklearn.impute, or drop those rows."
        )


def check_magnitude(X, name):
    """Refuse features whose squares overflow float64, suggesting scaling."""
    if sp.issparse(X):
        values = sp.csr_matrix(X).data if not hasattr(X, "data") else X.data
    else:
        values = np.asarray(X)
    if values.size and values.dtype.kind == "f":
        top = max(float(values.max()), -float(values.min()))  # no copy of X
        if top > _OVERFLOW:
            raise ValueError(
                f"{name} holds values up to {top:.3g}, whose squares overflow "
                "float64 in the Hessian. Scale the features first, e.g. "
                "make_pipeline(StandardScaler(), model)."
            )


def check_sample_weight_values(sample_weight):
    """Refuse negative or non-finite weights: no objective has them."""
    bad = np.flatnonzero(~np.isfinite(sample_weight) | (sample_weight < 0))
    if bad.size:
        raise ValueError(
            f"sample_weight must be finite and non-negative; rows "
            f"{bad[:5].tolist()} hold {sample_weight[bad[:5]].tolist()}. "
            "Drop those rows, or give them weight 0."
        )


def warn_if_flat(output_gradients, family):
    """Warn when some test rows' loss is flat; returns the flat rows' mask.

    Their influence is rounding noise: callers set it to exactly zero.
    """
    flat = flat_outputs(output_gradients)
    if flat.any():
        if isinstance(family, SmoothHinge):
            why = "its gradient is zero there (a hinge-type loss outside the margin)"
        else:
            why = (
                "its gradient underflows there (the model is certain of the "
                "label; a stronger penalty, e.g. a smaller C or a larger "
                "alpha, keeps such losses measurable)"
            )
        warnings.warn(
            f"The test loss is flat at {int(flat.sum())} of {flat.size} test "
            f"rows (e.g. the row at position {int(np.flatnonzero(flat)[0])} "
            f"of X_test): {why}, so every "
            "influence on it is zero. Pass target='decision_function' (to "
            "influence, loo_change or top_influential) to see which training "
            "rows move the prediction.",
            FlatLossWarning,
            stacklevel=caller_stacklevel(),
        )
    return flat


def check_single_output(y):
    """Refuse a ``y`` of several columns, naming the fix (the explained loss
    is one output's; scikit-learn's "y should be a 1d array" leaves open
    whether the estimator or the explainer refuses)."""
    shape = getattr(y, "shape", None)
    if shape is None and isinstance(y, (list, tuple)):
        shape = np.shape(y)
    if shape is not None and len(shape) == 2 and shape[1] > 1:
        raise ValueError(
            f"y has {shape[1]} columns (shape {shape}): an influence explains "
            "the loss of one output. Explain each output's model on its own: "
            "InfluenceExplainer(model).fit(X, y[:, j]) (y.iloc[:, j] for a "
            "DataFrame)."
        )


def check_target(target):
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}.")


def check_test_labels(y, n_rows, one_dimensional=True):
    """``y`` as an array with one entry (a 1-d array: one label) per test row."""
    y = np.asarray(y)
    if (one_dimensional and y.ndim != 1) or y.shape[0] != n_rows:
        shape = "1-d with one label" if one_dimensional else "one label (or target)"
        raise ValueError(
            f"y_test must be {shape} per row of X_test ({n_rows}), got shape {y.shape}."
        )
    return y


class InfluenceBackend:
    """Base class of the influence backends.

    Subclasses set :attr:`capabilities` and implement :meth:`fit`,
    :meth:`influence_blocks`, :meth:`influence`, :meth:`loo_change`,
    :meth:`self_influence`, :meth:`parameter_change_norms` and
    :meth:`test_loss`, plus whatever optional capability they declare. The
    base class builds RelatIF, top-k tables and candidate pools from those.

    Attributes set by ``fit``
    -------------------------
    objective_ : the differentiated objective
    solver_ : the fitted inverse-Hessian solver
    n_params_ : int
    n_train_ : int
    stationarity_ : float
        Newton step left at the fitted parameters over a typical row's
        leave-one-out effect on them (see :mod:`skinfluence.core._stationarity`).
    """

    #: Optional operations this backend serves, among: 'loo_change',
    #: 'group_influence', 'newton' (their one-Newton-step method),
    #: 'perturbation', 'influence_params', 'relative_influence', 'divine',
    #: 'training_data', 'training_problem' (the closed-form objective and its
    #: rows), 'refit' (actual retraining without rows), 'polish' (Newton
    #: steps to the optimum, written back to the model), 'sample_weight',
    #: 'subset_refits' (``test_outputs`` and ``refit_outputs``: validate_lds).
    capabilities = frozenset()
    #: How the backend is named in messages.
    name = "backend"
    #: What its fit builds, for the progress messages ({model}: the model's name).
    fit_work = "Hessian of {model}'s objective ({name} backend): building its solver"
    #: dtypes the backend takes training input in (the explainer validates).
    input_dtypes = (np.float64,)
    #: Whether missing values (NaN) are valid input (tree ensembles).
    allow_nan = False
    #: Whether the held-out outputs (``loo_own_outputs``) are probabilities a
    #: label-noise rate can be estimated from (MislabelDetector's 'auto').
    calibrated_held_out = True

    def supports(self, capability):
        """Whether this backend serves ``capability`` (see :attr:`capabilities`)."""
        return capability in self.capabilities

    def require(self, capability, what):
        """Raise UnsupportedOperationError unless ``capability`` is served."""
        if not self.supports(capability):
            raise UnsupportedOperationError(
                f"{what} is not available on the {self.name} backend. "
                f"{self.alternatives(capability)}"
            )

    def alternatives(self, capability):
        """A sentence naming what to use instead of ``capability``."""
        return (
            "It serves influence, loo_change, self_influence, top_influential "
            "and influence_blocks."
        )

    def check_estimator(self, estimator):
        """Raise a TypeError naming what is supported, before any fitting."""

    def validate_training_input(
        self, explainer, X, y, sample_weight, prefixed, frozen=False
    ):
        """``(X, y, sample_weight)`` checked, recording the explainer's features.

        ``prefixed``: the estimator is a Pipeline whose earlier steps validate
        (and may take strings in) X themselves. ``frozen``: the model was
        fitted before, so X is not fitted on here (its scale is checked only
        if the Hessian overflows).
        """
        check_single_output(y)
        if prefixed:
            X = check_2d(X)
            validate_data(explainer, X, skip_check_array=True)
            y = column_or_1d(y, warn=True)
        else:
            try:
                X, y = validate_data(
                    explainer,
                    X,
                    y,
                    accept_sparse=["csr", "csc"],
                    dtype=self.input_dtypes[0],
                    y_numeric=False,
                )
            except ValueError:
                check_finite_input(X, "X")  # the clearer message, if that was it
                raise
            if not frozen:  # before the estimator is fitted on it
                check_magnitude(X, "X")
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        check_sample_weight_values(sample_weight)
        return X, y, sample_weight

    def validates_own_input(self, estimator, X):
        """Whether ``estimator`` takes ``X`` as given and checks it itself.

        True lets ``X`` through to the estimator unconverted (as for a
        Pipeline, whose first step validates its input).
        """
        return False

    # -- test side ------------------------------------------------------------
    def model_input(self, X):
        """``X`` as the final model sees it (after the Pipeline prefix)."""
        raise NotImplementedError

    # -- quantities built on the abstract ones ----------------------------------
    def relative_influence(self, X, y, *, kind="theta", target="loss"):
        """RelatIF: influence over ``||H^-1 g_i||`` or ``sqrt(g_i' H^-1 g_i)``."""
        if kind not in RELATIF_KINDS:
            raise ValueError(f"kind must be 'theta' or 'l', got {kind!r}.")
        self.require("relative_influence", "relative_influence")
        scores = self.influence(X, y, target=target)
        return scores / self.relatif_norms(kind)

    def relatif_norms(self, kind):
        """Per-row denominators of RelatIF, floored away from zero."""
        if kind == "theta":
            norm = self.parameter_change_norms()
        else:
            norm = np.sqrt(np.abs(self.self_influence()))
        return np.maximum(np.asarray(norm), _TINY)

    def top_k(self, X, y, *, k, target="loss", relatif=None):
        """:class:`~skinfluence.core._topk.StreamingTopK` of every test row.

        ``relatif``: None (rank by influence), 'theta' or 'l' (rank by RelatIF;
        the table's ``influence`` column stays the plain influence).
        """
        norms = None if relatif is None else self.relatif_norms(relatif)
        tops = {}  # first test row -> its chunk's candidates
        for test_rows, train_rows, block in self.influence_blocks(X, y, target=target):
            top = tops.setdefault(test_rows.start, StreamingTopK(k))
            scores = block if norms is None else block / norms[train_rows]
            top.update(train_rows.start, scores, block)
        return StreamingTopK.stack([tops[start] for start in sorted(tops)])

    def loo_change_of(self, rows, X, y, *, method="influence", target="loss"):
        """``loo_change`` for the training rows ``rows`` only: (n_test, len(rows))."""
        return self.loo_change(X, y, method=method, target=target)[:, rows]

    def preferred_loo_method(self, target="loss"):
        """The ``loo_change`` method shown in tables: first order by default."""
        return "influence"

    def loo_ranking(self, X, y, predicted):
        """Training rows in the order a removal check takes them, largest first.

        ``predicted``: each row's predicted change of the summed test loss.
        """
        return np.argsort(-np.abs(predicted), kind="stable")

    def candidate_pool(self, X, y, *, size, target="loss"):
        """The ``size`` most helpful and most harmful rows per test row."""
        return self.top_k(X, y, k=size, target=target)

    def held_out_losses(self, eta_loo):
        """Each training row's held-out loss, its mislabel score: the loss of
        its label at ``eta_loo``, its outputs under the model fitted without
        it (:meth:`loo_own_outputs`). Backends whose fit passes checkpoints
        (boosting rounds) may add what those tell."""
        return self.training_losses(eta_loo)

    # -- optional operations with a default refusal -------------------------------
    def test_outputs(self, X, y=None, *, target="loss"):
        """Each test row's quantity ``target`` at the fitted parameters, (n_test,)."""
        raise UnsupportedOperationError(
            f"test_outputs is not available on the {self.name} backend."
        )

    def gradient_similarity(self, X, y=None, *, target="loss"):
        """``g_t' g_i``: test gradients against training gradients, no Hessian.

        Shape (n_test, n_train); ``g_t`` is the gradient of the test quantity
        ``target``, ``g_i`` that of training row i's loss.
        """
        raise UnsupportedOperationError(
            f"gradient_similarity is not available on the {self.name} backend; "
            "the in-memory and torch backends serve it."
        )

    def refit_outputs(
        self, keep_masks, X, y=None, *, target="loss", n_jobs=None, progress=None
    ):
        """Actual test quantities after refitting on each subset of the rows.

        Parameters
        ----------
        keep_masks : ndarray of bool of shape (n_subsets, n_train)
            Row ``s`` marks the training rows the ``s``-th refit keeps.
        X, y, target : test rows, their labels and the quantity evaluated.
        n_jobs : int, default=None
            Refits run in threads.
        progress : callable, default=None
            Called with no argument after each refit (progress bars).

        Returns
        -------
        ndarray of shape (n_subsets, n_test)
        """
        raise UnsupportedOperationError(
            f"refit_outputs (refitting on subsets of the rows) is not available "
            f"on the {self.name} backend; the in-memory and torch backends "
            "serve it."
        )

    def check_keep_masks(self, keep_masks):
        """``keep_masks`` as a (n_subsets, n_train) boolean array; no row empty."""
        masks = np.asarray(keep_masks)
        if masks.ndim != 2 or masks.shape[1] != self.n_train_ or masks.dtype != bool:
            raise ValueError(
                f"keep_masks must be a boolean array of shape (n_subsets, "
                f"{self.n_train_}), got {masks.dtype} of shape {masks.shape}."
            )
        empty = np.flatnonzero(~masks.any(axis=1))
        if empty.size:
            raise ValueError(
                f"keep_masks rows {empty[:5].tolist()} keep no training row: "
                "there is nothing to refit on."
            )
        return masks
