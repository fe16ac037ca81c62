"""Influence functions on dask arrays: blockwise work over chunks of rows.

The training matrix ``X`` stays distributed; only ``n``-vectors (labels,
weights) and ``p``-sized quantities (parameters, Hessian, test directions)
live on the client:

- the Hessian, its products and diagonal, and the mean gradient are sums of
  per-chunk terms: ``sum_c W_c / W * f(chunk c)`` (each chunk's own mean-form
  quantity weighted by its share of the training weight), reduced as a tree;
- ``influence``, ``self_influence`` and ``loo_change`` are lazy dask arrays
  with one block per chunk of ``X``, computed by the same functions as the
  in-memory path;
- ``top_influential`` keeps the top ``k`` rows of each chunk on its worker
  and merges those candidates on the client.

The model is not fitted here: influence is defined at the optimum of the
estimator's own objective, and scikit-learn's estimators take in-memory data,
so the explainer takes an estimator already fitted (on the full data however
it fits: in memory, on a larger machine, by dask-ml) and wrapped in
``FrozenEstimator``. The stationarity check then measures,
on the distributed data, how far that model is from the optimum.

dask is imported only here, and this module only when ``X`` is a dask array.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.frozen import FrozenEstimator

from ..adapters import build_objective
from ..core import _formulas
from ..core._stationarity import stationarity, stationarity_rows
from ..core._topk import StreamingTopK
from ..exceptions import UnsupportedOperationError
from ..objectives._operator import HessianOperator
from ..solvers import make_solver
from ..solvers.lissa import LissaSolver
from ._base import check_single_output
from ._closed_form import ClosedFormBackend, _check_newton_target, _quantity_change

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "X is a dask array but dask is not installed: pip install 'skinfluence[dask]'."
    ) from exc


def _delayed_blocks(X):
    """One Delayed per chunk of rows of a 2-d dask array with one column chunk."""
    return list(X.to_delayed()[:, 0])


def _row_aligned(values, X):
    """A numpy array split like ``X``'s rows, persisted (sent to workers once)."""
    arr = da.from_array(np.asarray(values), chunks=(X.chunks[0],) + values.shape[1:])
    return arr.persist()


def _check_X(X):
    if not isinstance(X, da.Array):
        raise TypeError(
            f"Expected a dask array, got {type(X).__name__}; for a dask "
            "DataFrame pass df.to_dask_array(lengths=True)."
        )
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d, got a dask array of shape {X.shape}.")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            "X has unknown chunk sizes; call X.compute_chunk_sizes() first."
        )
    if len(X.chunks[1]) > 1:  # each block must hold whole rows
        X = X.rechunk({1: -1})
    return X if X.dtype == np.float64 else X.astype(np.float64)


def _gather(values):
    """A client-side numpy array of a dask array (labels, weights) or array-like."""
    if values is None:
        return None
    return np.asarray(values.compute() if hasattr(values, "compute") else values)


def _map_rows(func, X, d_out):
    """``func`` applied to every chunk of rows, as a float64 dask array."""

    def block(b):
        out = func(b)
        return np.asarray(out.toarray() if sp.issparse(out) else out, dtype=np.float64)

    return X.map_blocks(block, dtype=np.float64, chunks=(X.chunks[0], (d_out,)))


def _feature_arrays(prefix, objective, X):
    """``(input of the final model, features it is linear in)``, both lazy."""
    if prefix is not None:
        width = np.asarray(prefix.transform(X[:1].compute())).shape[1]
        X = _map_rows(prefix.transform, X, width)
    kernel = objective.feature_map
    if kernel is None:
        return X, X
    width = np.asarray(kernel.transform(X[:1].compute())).shape[1]
    return X, _map_rows(kernel.transform, X, width)


class DaskHessianOperator(HessianOperator):
    """The Hessian of an objective on a dask array: sums over its row chunks.

    :class:`skinfluence.solvers.HessianOperator` with ``to_dense``,
    ``matmat`` and ``diagonal`` each one tree reduction on the cluster
    returning a numpy array (``shape`` and ``null_space`` are inherited).

    Parameters
    ----------
    objective : LinearObjective
    X : dask array of shape (n, d), one column chunk
    target, weights : dask arrays chunked like ``X``'s rows
    """

    def __init__(self, objective, X, target, weights):
        self.objective = objective
        self.X = X
        self.target = target
        self.weights = weights
        self.total_weight = float(weights.sum().compute())
        self._shared_objective = dask.delayed(objective, pure=True)

    def reduce(self, name, *args):
        """``sum_c W_c / W * objective.<name>(X_c, target_c, w_c, *args)``."""
        obj = self._shared_objective
        shared = [dask.delayed(a, pure=True) for a in args]
        parts = []
        for xb, tb, wb in zip(
            _delayed_blocks(self.X),
            self.target.to_delayed().ravel(),
            self.weights.to_delayed().ravel(),
        ):
            part = dask.delayed(_weighted_part)(
                obj, name, self.total_weight, xb, tb, wb, *shared
            )
            parts.append(part)
        return _tree_sum(parts)

    def to_dense(self):
        return self.reduce("hessian")

    def matmat(self, V):
        V = np.asarray(V, dtype=np.float64).reshape(self.shape[0], -1)
        return self.reduce("hessian_vector_product", V)

    def diagonal(self):
        return self.reduce("hessian_diagonal")

    def mean_gradient(self):
        return self.reduce("mean_gradient")


def _weighted_part(objective, name, total_weight, X, target, weights, *args):
    if not np.any(weights):
        return None
    share = weights.sum() / total_weight
    return share * getattr(objective, name)(X, target, weights, *args)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _tree_sum(parts, split_every=8):
    """Sum of Delayed arrays as a tree (few large transfers per level)."""
    while len(parts) > 1:
        parts = [
            dask.delayed(_sum_list)(parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0].compute()


def _sum_list(values):
    total = None
    for v in values:
        total = _add(total, v)
    return total


# -- the backend ----------------------------------------------------------------
class DaskBackend(ClosedFormBackend):
    """The closed forms on a dask array of training rows.

    Test rows, directions and the Hessian's factor live on the client; the
    training rows stay distributed. ``influence``, ``self_influence`` and
    ``loo_change`` (first order or one Newton step) are lazy dask arrays with
    one block per chunk of rows; ``top_influential`` merges per-chunk
    candidates and gathers only the listed rows for their leave-one-out
    change. Perturbation influence, parameter influence, groups and refits
    need the rows in memory.
    """

    capabilities = frozenset({"sample_weight", "loo_change", "newton"})
    name = "dask"

    def alternatives(self, capability):
        return (
            "On a dask array use influence, loo_change, self_influence, "
            "top_influential or influence_blocks, or fit on an in-memory array."
        )

    def check_estimator(self, estimator):
        if not isinstance(estimator, FrozenEstimator):
            raise TypeError(
                "On a dask array the explainer does not fit the estimator: fit "
                "it first (e.g. model.fit(X.compute(), y) when it fits in memory, "
                "or with dask-ml) and pass InfluenceExplainer(FrozenEstimator("
                f"model)). Got an unfitted {type(estimator).__name__}."
            )
        super().check_estimator(estimator)

    def validate_training_input(
        self, explainer, X, y, sample_weight, prefixed, frozen=False
    ):
        X = _check_X(X)
        n = X.shape[0]
        y = _gather(y)
        check_single_output(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"y must be 1-d with {n} labels, got shape {y.shape}.")
        sw = _gather(sample_weight)
        sw = np.ones(n) if sw is None else np.asarray(sw, dtype=np.float64)
        explainer.n_features_in_ = X.shape[1]
        if hasattr(explainer, "feature_names_in_"):
            del explainer.feature_names_in_
        return X, y, sw

    def fit(self, model, X, y, sample_weight, prefix=None):
        self.prefix_ = prefix
        self.model_ = model
        n = X.shape[0]
        self.objective_, self.weights_ = build_objective(model, y, sample_weight)
        self.sample_weight_ = sample_weight
        self.y_ = y
        self.target_ = self.objective_.family.encode(y)
        self.X_input_, self.X_ = _feature_arrays(prefix, self.objective_, X)
        self.n_params_ = self.objective_.n_params
        self.n_train_ = n
        self.dask_target_ = _row_aligned(self.target_, self.X_)
        self.dask_weights_ = _row_aligned(self.weights_, self.X_)
        operator = DaskHessianOperator(
            self.objective_, self.X_, self.dask_target_, self.dask_weights_
        )
        solver = make_solver(
            self.solver,
            self.damping,
            n_params=self.n_params_,
            n_samples=n,
            verbose=self.verbose,
        )
        if isinstance(solver, LissaSolver) and solver.batch_size is not None:
            raise ValueError(
                "LiSSA with minibatches (batch_size) is not supported on dask "
                "arrays; use batch_size=None, or solver='cg'."
            )
        self.solver_ = solver.fit(operator)
        rows = stationarity_rows(n)
        X_rows = self.X_[rows].compute()
        obj = self.objective_
        R_rows = obj.residuals(X_rows, self.target_[rows])
        G = obj.expand(X_rows, R_rows) + obj.reweight_term()
        shares = self.weights_[rows] / self.weights_.sum()
        self.stationarity_ = stationarity(
            self.solver_, operator.mean_gradient(), G, shares
        )
        return self

    def training_data(self):
        return self.X_input_, self.y_, self.weights_

    def _local_solver(self, what):
        """The fitted solver, if its solves need no pass over the training data."""
        solver = self.solver_
        if hasattr(solver, "operator_"):
            raise UnsupportedOperationError(
                f"{what} on a dask array solves against every training row, "
                f"which {type(solver).__name__} would do by distributed Hessian "
                "products per chunk; use solver='exact' (up to a few thousand "
                "parameters) or solver='lowrank'."
            )
        return solver

    def _chunks(self):
        """``(X_c, target_c, weights_c, rows_c)`` per chunk of rows: Delayed
        blocks and the chunk's slice of row positions."""
        stops = np.cumsum(self.X_.chunks[0]).astype(int)
        return zip(
            _delayed_blocks(self.X_),
            self.dask_target_.to_delayed().ravel(),
            self.dask_weights_.to_delayed().ravel(),
            [slice(int(b - n), int(b)) for b, n in zip(stops, self.X_.chunks[0])],
        )

    def _per_chunk(self, func, out_shape, *shared):
        """Lazy blocks of ``func(X_c, target_c, weights_c, rows_c, *shared)``
        over the chunks of X; ``out_shape(n_rows)`` is a block's shape."""
        shared = [dask.delayed(s, pure=True) for s in shared]
        blocks = []
        for xb, tb, wb, rows in self._chunks():
            value = dask.delayed(func)(xb, tb, wb, rows, *shared)
            n_rows = rows.stop - rows.start
            blocks.append(
                da.from_delayed(value, shape=out_shape(n_rows), dtype=np.float64)
            )
        return blocks

    def influence(self, X, y=None, *, target="loss"):
        """Lazy ``(n_test, n_train)`` influence, one block per chunk of rows."""
        V = self.test_directions(X, y, target)
        m = V.shape[1]
        blocks = self._per_chunk(_influence_block, lambda r: (m, r), self.objective_, V)
        return da.concatenate(blocks, axis=1)

    def loo_change(
        self, X, y=None, *, method="influence", target="loss", train_rows=None
    ):
        """Lazy ``(n_test, n_train)`` leave-one-out change, one block per chunk.

        With ``train_rows`` (a table's few rows), those rows are gathered and
        the result is a numpy array of shape (n_test, len(train_rows)).
        """
        Xt, F, t = self.test_factors(X, y, target)
        obj = self.objective_
        if method == "influence":
            func = _loo_first_order_block
            V = _formulas.test_directions(obj, self.solver_, Xt, F)
            shared = (obj, self.weights_, V)
        else:
            _check_newton_target(target)
            func = _loo_newton_block
            shared = (obj, self.newton_inverse(), self.weights_, Xt, target, t)
        if train_rows is not None:
            rows = np.asarray(train_rows)
            X_rows = self.X_[rows].compute()
            return func(X_rows, self.target_[rows], self.weights_[rows], rows, *shared)
        n_test = Xt.shape[0]
        blocks = self._per_chunk(func, lambda r: (n_test, r), *shared)
        return da.concatenate(blocks, axis=1)

    def influence_blocks(self, X, y=None, *, target="loss"):
        """``(test_rows, train_rows, block)`` per chunk of rows, computed in turn."""
        M = self.influence(X, y, target=target)
        start = 0
        for j, rows in enumerate(self.X_.chunks[0]):
            yield (
                slice(0, M.shape[0]),
                slice(start, start + rows),
                M.blocks[:, j].compute(),
            )
            start += rows

    def self_influence(self):
        """Lazy ``(n_train,)`` self-influence, one block per chunk of rows."""
        solver = self._local_solver("self_influence")
        blocks = self._per_chunk(
            _self_influence_block, lambda r: (r,), self.objective_, solver
        )
        return da.concatenate(blocks)

    def top_k(self, X, y, *, k, target="loss", relatif=None):
        """Per-chunk candidates on the workers, merged here."""
        obj = self.objective_
        solver = None
        if relatif is not None:
            solver = self._local_solver("A RelatIF ranking")
        V = self.test_directions(X, y, target)
        shared = [dask.delayed(s, pure=True) for s in (obj, solver, V)]
        parts = [
            dask.delayed(_top_block)(xb, tb, wb, rows, *shared, k, relatif)
            for xb, tb, wb, rows in self._chunks()
        ]
        parts = dask.compute(*parts)
        top = parts[0]
        for part in parts[1:]:
            top.merge(part)
        return top


def _influence_block(X, target, weights, rows, objective, V):
    R = objective.residuals(X, target)
    M = _formulas.influence_matrix(objective, X, R, V)
    return _formulas.zero_outside_fit(M, weights)


def _self_influence_block(X, target, weights, rows, objective, solver):
    R = objective.residuals(X, target)
    s = _formulas.self_influence(objective, solver, X, R)
    return _formulas.zero_outside_fit(s, weights, axis=0)


def _loo_first_order_block(X, target, weights, rows, objective, all_weights, V):
    R = objective.residuals(X, target)
    return _formulas.loo_first_order(objective, X, R, all_weights, V, rows)


def _loo_newton_block(
    X, target, weights, rows, objective, H_inv, all_weights, Xt, quantity, t
):
    delta = _formulas.newton_parameter_changes_of(
        objective, H_inv, X, target, all_weights, rows
    )
    d_eta = _formulas.output_changes(objective, Xt, delta)
    return _quantity_change(objective, Xt, quantity, t, d_eta)


def _top_block(X, target, weights, rows, objective, solver, V, k, relatif):
    R = objective.residuals(X, target)
    scores, infl = _formulas.block_scores(objective, solver, X, R, V, relatif)
    if relatif is not None:  # else one array, zeroed below
        _formulas.zero_outside_fit(scores, weights)
    _formulas.zero_outside_fit(infl, weights)
    top = StreamingTopK(k)
    top.update(rows.start, scores, infl)
    return top
