"""A network's Hessian behind the numpy solver protocol (``solvers._base``).

The numpy solvers (exact, cg, lissa, lowrank) only call ``matmat``,
``to_dense``, ``shape`` and ``null_space``; LiSSA's minibatches call
``objective.hessian_vector_product(X[idx], target[idx], weights[idx], V)``.
Here ``X`` is the vector of training row numbers, so a minibatch is a set of
rows and the product runs on the network in torch. Conversion to numpy costs
one (p, m) copy per product, small beside the product itself.
"""

import numpy as np
import torch


class _RowHessian:
    """LiSSA's minibatch hook: Hessian products on a subset of rows."""

    def __init__(self, objective):
        self.objective = objective

    def hessian_vector_product(self, rows, target, weights, V):
        obj = self.objective
        Vt = torch.as_tensor(np.asarray(V), dtype=obj.dtype, device=obj.device)
        rows = np.asarray(rows)
        if rows.size == obj.n_samples and (rows == np.arange(rows.size)).all():
            rows = None  # a full batch: reuse the kept gradient graph
        else:
            rows = torch.as_tensor(rows, device=obj.device)
        return obj.hvp(Vt.reshape(obj.n_params, -1), rows=rows).cpu().numpy()


class TorchHessianOperator:
    """``H`` of a :class:`TorchObjective` as a numpy linear operator.

    Attributes
    ----------
    torch_objective : TorchObjective
        For torch-native solvers (EK-FAC).
    dense_ : ndarray of shape (p, p) or None
        The dense Hessian once ``to_dense`` was called (kept to report
        its spectrum).
    n_products_ : int
        Hessian-vector products computed so far (columns).
    """

    null_space = None

    def __init__(self, objective):
        self.torch_objective = objective
        self.objective = _RowHessian(objective)
        n = objective.n_samples
        self.X = np.arange(n)
        self.target = np.arange(n)
        self.weights = np.ones(n)
        self.dense_ = None
        self.n_products_ = 0

    @property
    def shape(self):
        p = self.torch_objective.n_params
        return (p, p)

    def to_dense(self):
        if self.dense_ is None:
            self.dense_ = self.torch_objective.hessian().cpu().numpy()
            self.n_products_ += self.shape[0]
        return self.dense_.copy()

    def matmat(self, V):
        obj = self.torch_objective
        V = np.asarray(V, dtype=np.float64).reshape(self.shape[0], -1)
        self.n_products_ += V.shape[1]
        Vt = torch.as_tensor(V, dtype=obj.dtype, device=obj.device)
        return obj.hvp(Vt).cpu().numpy().astype(np.float64)
