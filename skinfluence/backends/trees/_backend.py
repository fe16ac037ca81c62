"""The tree backend: influence of training rows on a boosted tree ensemble.

:class:`TreeBackend` is what :class:`~skinfluence.InfluenceExplainer` builds
at ``fit`` for scikit-learn's HistGradientBoosting and GradientBoosting
classifiers and regressors (the explainer's ``solver`` picks the method, see
:func:`skinfluence.backends.make_backend`). Its public methods mirror the
explainer's and take inputs already validated.
"""

from collections import namedtuple

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils import _safe_indexing
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _num_samples, check_array, validate_data

from ...utils._checks import split_model
from ...utils._chunks import check_result_size, chunk_slices
from .._base import (
    InfluenceBackend,
    check_sample_weight_values,
    check_single_output,
    check_target,
    check_test_labels,
)
from . import _boostin
from ._checks import check_retrainable, check_tree_model
from ._leaf_influence import leaf_influence
from ._leaf_refit import refit_outputs
from ._losses import TreeLoss
from ._structure import (
    held_out_for_stopping,
    hessian_scale,
    raw_outputs,
    read_ensemble,
)

TREE_METHODS = ("boostin", "leaf_influence", "leaf_refit")
#: The fitted ensemble and its loss, as ``objective_`` (``family`` the loss).
TreeObjective = namedtuple("TreeObjective", ["family", "ensemble"])
#: Raw training outputs of a refit without rows (``theta``: none, trees).
RefitOutputs = namedtuple("RefitOutputs", ["outputs", "theta"])


def _loss_of(model):
    classes = getattr(model, "classes_", None)
    if classes is None:
        return TreeLoss("squared_error")
    name = "binomial" if len(classes) == 2 else "multinomial"
    return TreeLoss(name, classes, hessian_scale(model))


_raw = raw_outputs


class TreeBackend(InfluenceBackend):
    """Influence of training rows on a gradient-boosted tree ensemble.

    Every method holds each tree's *structure* (splits and which rows share a
    leaf) fixed and the baseline prediction fixed; what changes with a row's
    weight are the leaf values, Newton steps ``-s G / (H + lambda)`` on the
    loss (see :mod:`._structure`). With ``D[t, i]`` the derivative of test
    quantity ``t`` with respect to row ``i``'s weight in the summed objective
    (``w_i`` the fitted weight, class weights included, ``W = sum w``):

    - ``influence = W D`` (the explainer's ``I_up,loss``: positive =
      upweighting raises the test loss, harmful);
    - ``loo_change = -w_i D`` (positive = removing the row raises it, helpful);
    - ``self_influence = -W D[i, i]`` (own loss).

    Parameters
    ----------
    method : {'boostin', 'leaf_influence', 'leaf_refit'}, default='boostin'
        How ``D`` is computed:

        - 'boostin' (Brophy et al., 2023): each tree's shared leaf only, every
          other leaf value held fixed, weighted as the authors' reference
          implementation weighs it (:mod:`._boostin`; ``O(T)`` per pair
          sharing leaves);
        - 'leaf_influence' (Sharchilev et al., 2018): the exact derivative
          through the boosting sequence (later leaf values depend on earlier
          trees through the rows' gradients and hessians); reverse mode,
          ``O(n T)`` per test row;
        - 'leaf_refit': no derivative: the leaf values recomputed without the
          row, round by round (``O(n T)`` per removed row). ``loo_change`` is
          then that exact change, ``influence = -(W / w_i) loo_change`` and
          ``self_influence = (W / w_i)`` times the change of the row's own
          loss.
    n_jobs : int, default=None
        Parallel refits in :meth:`refit_test_losses`.

    Notes
    -----
    The explainer's ``solver`` chooses ``method``
    (:func:`skinfluence.backends.make_backend`): ``'auto'`` is 'boostin',
    and 'boostin', 'leaf_influence', 'leaf_refit' select themselves, e.g.
    ``InfluenceExplainer(HistGradientBoostingClassifier(), solver='leaf_refit')``.

    Costs, with ``n`` training rows, ``T`` trees and ``m`` test rows:
    'boostin' ``influence`` is one sparse product (work proportional to the
    (test, train, tree) triples sharing a leaf) and ``self_influence`` is
    ``O(n T)``; 'leaf_influence' is ``O(n K T)`` per test row, and its
    ``self_influence`` treats every training row as a test row
    (``O(n^2 K T)``); 'leaf_refit' is ``O(n K T)`` per removed row, whatever
    ``m``.

    :func:`skinfluence.validate_loo` retrains the estimator (same parameters,
    same ``random_state``), so splits may change; pass
    ``refit_options={'fixed_structure': True}`` to compare against LeafRefit
    instead (the structure-fixed reference). Not served: perturbation
    influence (the outputs are piecewise constant in ``x``), Newton
    leave-one-out steps and ``influence_params``. Rows with NaN are routed
    as the model routes them (the missing-value side of each split; for
    XGBoost also the entries equal to its ``missing``).

    Rows a HistGradientBoosting model held out to stop early (a validation
    split) weigh 0 here: the trees were grown without them. Rows of weight 0
    (those, or ``sample_weight=0``) are not in the fit, and every method gives
    them influence, self-influence and ``loo_change`` exactly 0.

    References
    ----------
    Brophy, J., Hammoudeh, Z. and Lowd, D. (2023). Adapting and Evaluating
    Influence-Estimation Methods for Gradient-Boosted Decision Trees. JMLR.

    Sharchilev, B., Ustinovskiy, Y., Serdyukov, P. and de Rijke, M. (2018).
    Finding Influential Training Samples for Gradient Boosted Decision Trees.
    ICML.
    """

    allow_nan = True
    # The structure was grown with every row: its held-out outputs still lean
    # towards a wrong label, and the noise model reads that as ambiguity.
    calibrated_held_out = False

    capabilities = frozenset(
        {
            "loo_change",
            "group_influence",
            "relative_influence",
            "divine",
            "training_data",
            "refit",
            "sample_weight",
            "held_out_outputs",
        }
    )
    name = "tree"
    fit_work = "leaf values and derivatives of {model}'s trees ({name} backend)"
    input_dtypes = (np.float64,)

    def __init__(self, method="boostin", n_jobs=None):
        self.method = method
        self.n_jobs = n_jobs

    def alternatives(self, capability):
        if capability == "perturbation":
            return (
                "A tree ensemble is piecewise constant in x: the derivative of "
                "its outputs with respect to a training row's features is 0 "
                "almost everywhere. Use influence or loo_change."
            )
        if capability == "newton":
            return (
                "Trees have no Hessian of parameters to step with; use "
                "method='influence', or solver='leaf_refit' for the exact "
                "leave-one-out change with the structure fixed."
            )
        if capability == "subset_refits":
            return (
                "It refits a model's parameters on many random subsets, from "
                "the fitted ones; boosted trees are regrown instead. Use "
                "validate_loo (retraining, or refit_options={'fixed_structure': "
                "True} for LeafRefit)."
            )
        if capability == "influence_params":
            return (
                "The leaf values' changes are not a parameter vector of fixed "
                "layout across methods; use influence or self_influence."
            )
        return super().alternatives(capability)

    def check_estimator(self, estimator):
        if self.method not in TREE_METHODS:
            raise ValueError(
                f"Tree ensembles take solver='auto' (BoostIn) or one of "
                f"{list(TREE_METHODS)}, got {self.method!r}."
            )
        check_tree_model(split_model(estimator)[1])

    def validates_own_input(self, estimator, X):
        """A DataFrame with categorical columns, for a HistGradientBoosting model.

        The model encodes those columns itself (``categorical_features=
        'from_dtype'``), and the trees split its encoding: the rows reach it
        as they are, and the traversal encodes them as it does.
        """
        return self._encodes(X, split_model(estimator)[1])

    def _encodes(self, X, model=None):
        """Whether ``model`` (default: the fitted one) encodes categories of
        ``X`` that are not numbers (the rows must then reach it as given)."""
        model = self.model_ if model is None else model
        if getattr(X, "dtypes", None) is None:
            return False
        return any(
            e and not pd.api.types.is_numeric_dtype(d)
            for d, e in zip(X.dtypes, encoded_columns(X, model))
        )

    def validate_training_input(
        self, explainer, X, y, sample_weight, prefixed, frozen=False
    ):
        check_single_output(y)
        if prefixed and split_model(explainer.estimator)[0] is None:
            # A frame the model encodes: its other columns must be numbers.
            check_numeric_columns(X, split_model(explainer.estimator)[1], True)
        if prefixed:
            return super().validate_training_input(
                explainer, X, y, sample_weight, prefixed, frozen
            )
        model = split_model(explainer.estimator)[1]
        hgb = type(model).__name__.startswith("HistGradientBoosting")
        check_numeric_columns(X, model, categorical=hgb)
        # Boosted trees route missing values: NaN is valid input.
        X, y = validate_data(
            explainer,
            X,
            y,
            accept_sparse=["csr", "csc"],
            dtype=np.float64,
            ensure_all_finite="allow-nan",
            y_numeric=False,
        )
        sample_weight = (
            np.ones(X.shape[0])
            if sample_weight is None
            else np.asarray(sample_weight, dtype=np.float64)
        )
        check_sample_weight_values(sample_weight)
        return X, y, sample_weight

    def model_input(self, X):
        """``X`` in the columns the trees split (after any Pipeline prefix)."""
        return self.ensemble_.encoded(self._model_frame(X))

    def _model_frame(self, X):
        """``X`` as the final model takes it: after any Pipeline prefix."""
        if self.prefix_ is None:
            return X
        out = self.prefix_.transform(X)
        if hasattr(out, "columns"):
            # A pandas-output prefix: the model was fitted on frames (and
            # HistGradientBoosting may encode their categorical columns).
            check_numeric_columns(out, self.model_, categorical=self._encodes(out))
            return out
        return check_array(
            out,
            accept_sparse="csr",
            dtype=np.float64,
            ensure_all_finite="allow-nan",
            input_name="X (as seen by the final estimator)",
        )

    # -- fitting ----------------------------------------------------------------
    def fit(self, model, X, y, sample_weight=None, prefix=None):
        """Read the fitted trees and replay the boosting on the training rows."""
        check_tree_model(model)
        self.prefix_ = prefix
        self.model_ = model
        X = self._model_frame(X)
        expected = getattr(model, "n_features_in_", None)
        if expected is not None and X.shape[1] != expected:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(model).__name__} was "
                f"fitted on {expected}: pass the X it was fitted on (its "
                "columns, in the same order)."
            )
        self.X_input_ = X  # as the model takes it, for retraining
        self.loss_ = loss = _loss_of(model)
        self.y_ = np.asarray(y)
        self.target_ = loss.encode(self.y_)
        n = X.shape[0]
        sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
        self.sample_weight_ = sw
        class_weight = model.get_params().get("class_weight")
        self.weights_ = sw * (
            1.0 if class_weight is None else compute_sample_weight(class_weight, y)
        )
        held_out = held_out_for_stopping(model, self.y_)
        if held_out is not None:
            # Grown without them: they weigh 0 (their removal changes nothing).
            self.weights_ = np.where(held_out, 0.0, self.weights_)
        self.ensemble_ = ens = read_ensemble(model, self.target_, self.weights_)
        self.X_model_ = ens.encoded(X)
        self.leaves_ = ens.apply(self.X_model_)
        self.baseline_ = _raw(model, X) - ens.raw_sum(self.leaves_)
        self.replay_ = _boostin.replay(
            ens, loss, self.leaves_, self.target_, self.weights_, self.baseline_
        )
        self.derivatives_ = _boostin.leaf_derivatives(ens, self.replay_, self.leaves_)
        self.boostin_weights_ = (
            _boostin.leaf_derivatives(
                ens, self.replay_, self.leaves_, hessian_scale=ens.scale
            )
            if self.method == "boostin"
            else None
        )
        self.objective_ = TreeObjective(loss, ens)
        self.solver_ = None
        self.n_params_ = ens.n_leaves
        self.n_train_ = n
        self.stationarity_ = _boostin.leaf_mismatch(
            ens, self.replay_, self.leaves_, self.weights_
        )
        return self

    def stationarity_advice(self, model_name):
        return (
            f"{model_name}'s leaf values are not the Newton steps these rows "
            f"give: they differ by up to {self.stationarity_:.3g} times a "
            "typical row's share of its leaf's value, so the influence values describe "
            "another model. It was fitted on other rows, labels or sample "
            "weights: pass the X, y and sample_weight it was fitted on (the "
            "rows in the same order)."
        )

    def recomputed_leaf_values(self):
        """Leaf values recomputed from the replayed gradients and hessians."""
        return _boostin.recomputed_leaf_values(self.ensemble_, self.replay_)

    # -- test side ----------------------------------------------------------------
    def _test_side(self, X):
        """``(leaves, baseline, raw outputs)`` of test rows."""
        frame = self._model_frame(X)
        leaves = self.ensemble_.apply(self.ensemble_.encoded(frame))
        raw = _raw(self.model_, frame)
        return leaves, raw - self.ensemble_.raw_sum(leaves), raw

    def _test_factors(self, X, y, target, per_round=False):
        """``(leaves, baseline, d quantity / d F)`` of test rows.

        The gradient has shape (n_test, K) at the fitted outputs, or with
        ``per_round`` shape (n_test, T): tree t's output at the outputs before
        its round (BoostIn's checkpoints).
        """
        check_target(target)
        leaves, base, F = self._test_side(X)
        loss = self.loss_
        classifier = loss.classes is not None
        if target == "loss":
            if y is None:
                raise ValueError("y_test is required when target='loss'.")
            t = loss.encode(check_test_labels(y, F.shape[0]))

            def gradient(F):
                return loss.gradient_hessian(t, F)[0]

        else:
            if target == "predict_proba" and not classifier:
                raise ValueError(
                    "target='predict_proba' needs a classifier; use "
                    "target='predict' for a regressor."
                )
            if target == "predict" and classifier:
                raise ValueError(
                    "target='predict' is for regressors; use 'predict_proba' or "
                    "'decision_function'."
                )
            cls = self._test_classes(y, F)

            def gradient(F):
                return loss.output_gradient(F, target, cls)

        if not per_round:
            return leaves, base, gradient(F)
        ens, K = self.ensemble_, self.ensemble_.n_outputs
        A = np.empty(leaves.shape)
        F = base.copy()
        for r in range(ens.n_rounds):
            cols = slice(r * K, (r + 1) * K)
            A[:, cols] = gradient(F)
            F += ens.leaf_values[leaves[:, cols]]
        return leaves, base, A

    # -- D, the derivative with respect to the rows' weights ----------------------
    def _test_chunks(self, n_test):
        # LeafInfluence's adjoints (n K + n per test row), or BoostIn's dense
        # test column over every leaf and its output row.
        ens = self.ensemble_
        row_bytes = 8 * (self.n_train_ * (2 * ens.n_outputs + 3) + ens.n_leaves)
        return chunk_slices(n_test, row_bytes)

    def _train_chunks(self, n_test, n_train=None):
        return chunk_slices(
            self.n_train_ if n_train is None else n_train,
            8 * (3 * n_test + self.ensemble_.n_trees),
        )

    def _derivative_blocks(self, X, y, target, train_rows=None):
        """Yield ``(test_rows, columns, D block)`` for the first-order methods.

        ``train_rows``: the training rows to cover (``columns`` then index
        them); None: every row.
        """
        ens = self.ensemble_
        if self.method == "boostin":
            leaves, _, A = self._test_factors(X, y, target, per_round=True)
            train_leaves, derivatives = self.leaves_, self.boostin_weights_
            if train_rows is not None:
                train_leaves = train_leaves[train_rows]
                derivatives = derivatives[train_rows]
            train = _boostin.leaf_matrix(train_leaves, derivatives, ens.n_leaves)
            for test_rows in self._test_chunks(leaves.shape[0]):
                test = _boostin.leaf_matrix(
                    leaves[test_rows], A[test_rows], ens.n_leaves
                )
                chunks = self._train_chunks(test.shape[0], train.shape[0])
                for rows, block in _boostin.boostin_blocks(test, train, chunks):
                    yield test_rows, rows, block
            return
        leaves, _, A = self._test_factors(X, y, target)
        for test_rows in self._test_chunks(leaves.shape[0]):
            D = leaf_influence(
                ens,
                self.loss_,
                self.replay_,
                self.leaves_,
                self.weights_,
                leaves[test_rows],
                A[test_rows],
            ).T
            if train_rows is not None:
                D = D[:, train_rows]
            for rows in self._train_chunks(D.shape[0], D.shape[1]):
                yield test_rows, rows, D[:, rows]

    def _refit_blocks(self, X, y, target):
        """Yield ``(test_rows, train_rows, loo block)``: exact removals, fixed trees."""
        check_target(target)
        leaves, base, F = self._test_side(X)
        quantity = self._quantity(X, y, target)
        for rows in self._train_chunks_refit(leaves.shape[0]):
            _, F_new = self._replay_without(
                [[i] for i in range(rows.start, rows.stop)], [(leaves, base)]
            )
            yield (
                slice(0, leaves.shape[0]),
                rows,
                quantity(F_new) - quantity(F[:, :, None]),
            )

    def _train_chunks_refit(self, n_test):
        K = self.ensemble_.n_outputs
        row_bytes = 8 * (self.n_train_ + n_test) * (3 * K + 2)
        return chunk_slices(self.n_train_, row_bytes)

    def _quantity(self, X, y, target):
        """``Q(F)`` for outputs of shape (n_test, K, m): the test quantity."""
        loss = self.loss_
        _, _, F0 = self._test_side(X)
        if target == "loss":
            t = loss.encode(check_test_labels(y, F0.shape[0]))
            return lambda F: loss.loss(t, F)
        cls = self._test_classes(y, F0)[:, None, None]
        if target == "predict_proba" and F0.shape[1] == 1:
            first = cls[:, 0] == 1
            return lambda F: np.where(
                first, loss.proba(F)[:, 0], 1.0 - loss.proba(F)[:, 0]
            )
        if target == "predict_proba":
            return lambda F: np.take_along_axis(loss.proba(F), cls, axis=1)[:, 0]
        col = cls if F0.shape[1] > 1 else np.zeros_like(cls)
        return lambda F: np.take_along_axis(F, col, axis=1)[:, 0]

    def _test_classes(self, y, F):
        """Each test row's class position: its label, else the predicted one."""
        if self.loss_.classes is None:
            return np.zeros(F.shape[0], dtype=int)
        if y is not None:
            return self.loss_.encode(check_test_labels(y, F.shape[0]))
        return (F[:, 0] > 0).astype(int) if F.shape[1] == 1 else F.argmax(1)

    def _replay_without(self, removals, tests):
        """LeafRefit outputs with each set of rows removed (one column each).

        Returns the fitted outputs plus the replay's change: one more column
        replays the full weights, so that rounding in the fitted gradients
        (HistGradientBoosting sums float32 ones) cancels from the change.
        """
        W = np.repeat(self.weights_[:, None], len(removals) + 1, axis=1)
        for c, rows in enumerate(removals):
            W[np.asarray(rows, dtype=int), c] = 0.0
        F, outs = refit_outputs(
            self.ensemble_,
            self.loss_,
            self.leaves_,
            self.target_,
            self.baseline_,
            W,
            tests,
        )
        fitted = [self.replay_.outputs] + [
            base + self.ensemble_.raw_sum(leaves) for leaves, base in tests
        ]
        return [
            fit[:, :, None] + (out[:, :, :-1] - out[:, :, -1:])
            for fit, out in zip(fitted, [F, *outs])
        ]

    def _scaled_blocks(self, X, y, target, kind, train_rows=None):
        """Blocks of ``influence`` (kind='influence') or ``loo_change``;
        ``train_rows``: the first-order methods' columns to cover (None: all)."""
        w, W = self.weights_, self.weights_.sum()
        if self.method == "leaf_refit":
            with np.errstate(divide="ignore", invalid="ignore"):
                for test_rows, rows, loo in self._refit_blocks(X, y, target):
                    if kind == "loo":
                        yield test_rows, rows, loo
                    else:
                        scale = np.where(w[rows] > 0, -W / w[rows], 0.0)
                        yield test_rows, rows, loo * scale
            return
        # A row of weight 0 is not in the fit (nor, held out to stop early,
        # in its trees): removing it changes nothing, so nothing is listed.
        fitted = W * (w > 0)
        if train_rows is not None:
            w, fitted = w[train_rows], fitted[train_rows]
        for test_rows, rows, D in self._derivative_blocks(X, y, target, train_rows):
            scale = fitted[rows] if kind == "influence" else -w[rows]
            yield test_rows, rows, scale * D

    def _full(self, X, y, target, kind):
        n_test = _num_samples(X)  # the prefix keeps the rows: no transform
        check_result_size(
            (n_test, self.n_train_),
            "The influence matrix",
            "Call top_influential or influence_blocks, or pass fewer test rows.",
        )
        out = np.empty((n_test, self.n_train_))
        for test_rows, rows, block in self._scaled_blocks(X, y, target, kind):
            out[test_rows, rows] = block
        return out

    # -- quantities -----------------------------------------------------------------
    def influence(self, X, y=None, *, target="loss"):
        return self._full(X, y, target, "influence")

    def influence_blocks(self, X, y=None, *, target="loss"):
        yield from self._scaled_blocks(X, y, target, "influence")

    def loo_change(self, X, y=None, *, method="influence", target="loss"):
        if method != "influence":
            self.require("newton", f"loo_change(method={method!r})")
        return self._full(X, y, target, "loo")

    def loo_change_of(self, rows, X, y, *, method="influence", target="loss"):
        """``loo_change`` for ``rows`` alone: their derivatives, or LeafRefit's
        replays without each of them, not every row's."""
        rows = np.asarray(rows, dtype=int)
        if self.method != "leaf_refit":
            if method != "influence":
                self.require("newton", f"loo_change(method={method!r})")
            out = np.empty((_num_samples(X), len(rows)))
            for test_rows, cols, block in self._scaled_blocks(
                X, y, target, "loo", rows
            ):
                out[test_rows, cols] = block
            return out
        groups = [np.array([r]) for r in np.asarray(rows, dtype=int)]
        return self.group_influence(groups, X, y, method=method, target=target)

    def group_influence(self, groups, X, y=None, *, method="influence", target="loss"):
        """Change per removed group: exact (fixed trees) for 'leaf_refit', else
        the sum of the rows' first-order changes."""
        if method != "influence":
            self.require("newton", f"group_influence(method={method!r})")
        if self.method == "leaf_refit":
            leaves, base, _ = self._test_side(X)
            _, _, F = self._test_side(X)
            quantity = self._quantity(X, y, target)
            _, F_new = self._replay_without(groups, [(leaves, base)])
            return quantity(F_new) - quantity(F[:, :, None])
        loo = self.loo_change(X, y, target=target)
        return np.stack([loo[:, r].sum(axis=1) for r in groups], axis=1)

    def _own_loss_change(self):
        """Each row's own loss without it minus with it (LeafRefit, fixed trees)."""
        n = self.n_train_
        before = self.training_losses()
        out = np.empty(n)
        for rows in self._train_chunks_refit(0):
            (F_new,) = self._replay_without(
                [[i] for i in range(rows.start, rows.stop)], []
            )
            idx = np.arange(rows.start, rows.stop)
            own = F_new[idx, :, idx - rows.start]  # (m, K)
            out[rows] = self.loss_.loss(self.target_[idx], own)
        return out - before

    def _loo_own_refit(self):
        n = self.n_train_
        out = np.empty((n, self.ensemble_.n_outputs))
        for rows in self._train_chunks_refit(0):
            (F_new,) = self._replay_without(
                [[i] for i in range(rows.start, rows.stop)], []
            )
            idx = np.arange(rows.start, rows.stop)
            out[rows] = F_new[idx, :, idx - rows.start]
        return out

    def self_influence(self):
        w, W = self.weights_, self.weights_.sum()
        fitted = W * (w > 0)  # rows of weight 0 are not in the fit: 0
        if self.method == "boostin":
            # The row's own gradient at each round: the replay's g.
            return -fitted * (self.replay_.g * self.boostin_weights_).sum(axis=1)
        if self.method == "leaf_refit":
            change = self._own_loss_change()
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(w > 0, W / w * change, 0.0)
        # Every row is its own test row: one reverse pass per chunk of rows.
        out = np.empty(self.n_train_)
        for rows in chunk_slices(
            self.n_train_, 8 * self.n_train_ * (2 * self.ensemble_.n_outputs + 3)
        ):
            idx = np.arange(rows.start, rows.stop)
            A = self.loss_.gradient_hessian(
                self.target_[idx], self.replay_.outputs[idx]
            )[0]
            D = leaf_influence(
                self.ensemble_,
                self.loss_,
                self.replay_,
                self.leaves_,
                self.weights_,
                self.leaves_[idx],
                A,
            )
            out[rows] = -fitted[idx] * D[idx, np.arange(len(idx))]
        return out

    def parameter_change_norms(self):
        """``W ||d v / d delta_i||`` over the row's own leaves (others fixed)."""
        return self.weights_.sum() * np.sqrt((self.derivatives_**2).sum(axis=1))

    def test_loss(self, X, y):
        _, _, F = self._test_side(X)
        return self.loss_.loss(self.loss_.encode(check_test_labels(y, F.shape[0])), F)

    # -- training rows, for the applications ----------------------------------------
    def training_data(self):
        """``(X, y, weights)``: the final model's input (in the columns its
        trees split), labels, effective weights."""
        return self.X_model_, self.y_, self.weights_

    def training_outputs(self, refitted=None):
        """Raw outputs of the training rows, shape (n, K): the fit's or a refit's."""
        return self.replay_.outputs if refitted is None else refitted.outputs

    def training_losses(self, eta=None):
        """Each training row's loss at raw outputs ``eta`` (default: the fit's)."""
        eta = self.training_outputs() if eta is None else eta
        return self.loss_.loss(self.target_, eta)

    def loo_own_outputs(self):
        """Each row's raw outputs under the model without it, shape (n, K).

        'boostin': first order, other leaves fixed (``F_i - w_i dF_i/d delta_i``);
        'leaf_influence' and 'leaf_refit': the exact LeafRefit replay.
        """
        if self.method == "boostin":
            ens = self.ensemble_
            d = _boostin.own_output_derivatives(
                self.derivatives_, ens.n_rounds, ens.n_outputs
            )
            return self.replay_.outputs - self.weights_[:, None] * d
        return self._loo_own_refit()

    def held_out_losses(self, eta_loo):
        """Mislabel scores: the held-out loss averaged with its boosting curve.

        Half the loss of each row's label at ``eta_loo`` (the final model
        without the row), half its mean over the rounds of the same loss under
        the ensemble truncated after each round (first order, every other leaf
        value fixed; :func:`._boostin.held_out_loss_curve`). A wrong label is
        fitted late, if at all: its row stays costly through the rounds, where
        a hard correct row is learned early; the structure, fitted with the
        row, cannot forget it, and the curve sees what the final model hides.
        """
        out = np.empty(self.n_train_)
        ens = self.ensemble_
        for rows in chunk_slices(self.n_train_, 8 * 3 * ens.n_trees):
            out[rows] = _boostin.held_out_loss_curve(
                ens,
                self.loss_,
                self.leaves_[rows],
                self.derivatives_[rows],
                self.weights_[rows],
                self.baseline_[rows],
                self.target_[rows],
            )
        return 0.5 * (self.training_losses(eta_loo) + out)

    def whitening(self):
        """Nothing to precondition: refits replay the trees (for the detector)."""
        return None

    def refit_without(self, rows, *, whitening=None, start=None, gtol=None):
        """``(RefitOutputs, True)``: LeafRefit without ``rows``, trees fixed."""
        (F_new,) = self._replay_without([rows], [])
        return RefitOutputs(F_new[:, :, 0], None), True

    def refit_test_losses(self, removals, X, y, n_jobs=None, *, fixed_structure=False):
        """Change of the summed test loss when each set of rows is removed.

        Retrains a clone of the final estimator (same parameters, so the same
        ``random_state``) on the other rows, earlier Pipeline steps fixed; the
        splits may then change. ``fixed_structure=True`` (``refit_options`` of
        :func:`skinfluence.validate_loo`) instead replays the fitted trees
        without the rows (LeafRefit): the exact reference of the
        structure-fixed methods.
        """
        Xm = self._model_frame(X)
        t = self.loss_.encode(check_test_labels(y, Xm.shape[0]))
        before = self.test_loss(X, y).sum()
        if fixed_structure:
            leaves, base, _ = self._test_side(X)
            _, F_new = self._replay_without(list(removals), [(leaves, base)])
            return self.loss_.loss(t, F_new).sum(axis=0) - before
        check_retrainable(self.model_)
        n_jobs = self.n_jobs if n_jobs is None else n_jobs
        losses = Parallel(n_jobs=n_jobs)(
            delayed(_refit_loss)(self, rows, Xm, t) for rows in removals
        )
        return np.asarray(losses) - before


def encoded_columns(X, model):
    """Which of DataFrame ``X``'s columns a HistGradientBoosting ``model``
    encodes as categories itself: those of pandas categorical dtype, and
    those it names in ``categorical_features`` (column names, positions or a
    boolean mask). All False for other models.
    """
    columns = list(X.columns)
    if not type(model).__name__.startswith("HistGradientBoosting"):
        return [False] * len(columns)
    encoded = [isinstance(d, pd.CategoricalDtype) for d in X.dtypes]
    declared = model.get_params().get("categorical_features")
    if declared is None or isinstance(declared, str):  # None, 'from_dtype'
        return encoded
    declared = np.asarray(declared)
    if declared.dtype == bool:
        named = declared if len(declared) == len(columns) else encoded
    elif declared.dtype.kind in "iu":
        positions = {
            int(j) % len(columns) for j in declared if -len(columns) <= j < len(columns)
        }
        named = [j in positions for j in range(len(columns))]
    else:
        names = set(map(str, declared))
        named = [str(c) in names for c in columns]
    return [bool(a or b) for a, b in zip(encoded, named)]


def check_numeric_columns(X, model, categorical=False):
    """Refuse a DataFrame's non-numeric columns, naming the encodings that work.

    ``categorical``: the columns the model encodes itself are valid (pandas
    categorical columns, and those it names in ``categorical_features``).
    """
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None:
        return
    encoded = encoded_columns(X, model) if categorical else [False] * len(dtypes)
    named = [
        c
        for (c, d), e in zip(dtypes.items(), encoded)
        if not pd.api.types.is_numeric_dtype(d) and not e
    ]
    if not named:
        return
    listed = ", ".join(map(str, named[:3]))
    if categorical:
        fix = (
            f"Make them pandas categorical columns (X[{str(named[0])!r}]"
            ".astype('category')) or name them in categorical_features, and "
            "the model encodes them itself; or encode them in a Pipeline step "
            "ahead of the model."
        )
    else:
        fix = (
            "Encode them in a Pipeline step ahead of the model (e.g. "
            "OrdinalEncoder), or use HistGradientBoosting with pandas "
            "categorical columns, which it encodes itself."
        )
    raise ValueError(
        f"X has non-numeric columns ({listed}); the tree backend reads "
        f"{type(model).__name__}'s input as numbers. {fix}"
    )


def _refit_loss(backend, rows, X_test, t_test):
    keep = np.ones(backend.n_train_, dtype=bool)
    keep[np.asarray(rows, dtype=int)] = False
    weights = backend.sample_weight_[keep]
    # Unit weights are left out: a HistGradientBoosting fit given any
    # sample_weight bins its features another way (and much more slowly)
    # than the fit without one that they stand for.
    extra = {} if np.all(weights == 1.0) else {"sample_weight": weights}
    refit = clone(backend.model_).fit(
        _safe_indexing(backend.X_input_, keep), backend.y_[keep], **extra
    )
    return backend.loss_.loss(t_test, _raw(refit, X_test)).sum()
