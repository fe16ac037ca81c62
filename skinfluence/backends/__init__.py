"""Influence backends behind one protocol (:class:`InfluenceBackend`).

========== ================================= ==================================
backend    data                              models
========== ================================= ==================================
in-memory  numpy arrays, scipy.sparse        every estimator of
                                             ``skinfluence.adapters``
dask       a dask array of training rows     the same, fitted beforehand
torch      numpy arrays                      skorch nets, ``TorchModel``
trees      numpy arrays (NaN allowed)        HistGradientBoosting*,
                                             GradientBoosting* (scikit-learn),
                                             LGBM*, XGB* (extra ``trees``)
========== ================================= ==================================

For tree ensembles the explainer's ``solver`` names the method:
'auto' is 'boostin', or one of 'boostin', 'leaf_influence', 'leaf_refit'
(see ``TreeBackend``).

:func:`make_backend` is the one place that chooses; detection never imports
the optional libraries (a dask collection is known by ``__dask_graph__``, a
torch model by the module of its class).
"""

from ..utils._checks import split_model
from ._base import TARGETS, InfluenceBackend
from ._closed_form import ClosedFormBackend, TrainingProblem

_NUMPY_SOLVERS = "'auto', 'exact', 'cg', 'lissa', 'lowrank' ('arnoldi'), 'woodbury'"


def is_dask(X):
    """Whether X is a dask collection (checked without importing dask)."""
    return callable(getattr(X, "__dask_graph__", None))


def is_torch_model(estimator):
    """A skorch net or a TorchModel (checked without importing torch)."""
    _, model = split_model(estimator)
    return any(
        c.__module__.startswith(("skorch", "skinfluence.torch"))
        for c in type(model).__mro__
    )


def is_tree_ensemble(estimator):
    """A boosted tree ensemble the tree backend reads (checked by class name)."""
    from .trees._structure import is_tree_model

    return is_tree_model(split_model(estimator)[1])


def make_backend(
    estimator, X, *, solver="auto", damping=0.0, params="all", n_jobs=None, verbose=0
):
    """The unfitted backend that serves ``estimator`` on training data ``X``.

    ``verbose`` reaches the solver (iterative solves) and the torch backend's
    L-BFGS refits.
    """
    if is_tree_ensemble(estimator):
        from .trees import TREE_METHODS, TreeBackend

        method = "boostin" if isinstance(solver, str) and solver == "auto" else solver
        if method not in TREE_METHODS or params != "all" or damping not in (0, 0.0):
            raise ValueError(
                f"Tree ensembles take solver='auto' (BoostIn) or one of "
                f"{list(TREE_METHODS)}, with damping=0 and params='all'; got "
                f"solver={solver!r}, damping={damping!r}, params={params!r}."
            )
        return TreeBackend(method=method, n_jobs=n_jobs)
    from .trees import TREE_METHODS

    if isinstance(solver, str) and solver in TREE_METHODS:
        raise ValueError(
            f"solver={solver!r} is a method for boosted tree ensembles "
            f"(HistGradientBoosting*, GradientBoosting*, LGBM*, XGB*), not for "
            f"{type(split_model(estimator)[1]).__name__}; its solvers are "
            f"{_NUMPY_SOLVERS}."
        )
    if is_torch_model(estimator):
        from ..torch import TorchInfluence

        return TorchInfluence(
            params=params, solver=solver, damping=damping, verbose=verbose
        )
    if params != "all" or (isinstance(solver, str) and solver == "ekfac"):
        raise ValueError(
            f"params={params!r} and solver='ekfac' are for torch models; "
            f"{type(split_model(estimator)[1]).__name__} takes params='all' and "
            f"the solvers {_NUMPY_SOLVERS}."
        )
    if isinstance(solver, str) and solver == "arnoldi":
        solver = "lowrank"  # Lanczos is Arnoldi for a symmetric matrix
    if is_dask(X):
        from ._dask import DaskBackend

        return DaskBackend(
            solver=solver, damping=damping, n_jobs=n_jobs, verbose=verbose
        )
    return ClosedFormBackend(
        solver=solver, damping=damping, n_jobs=n_jobs, verbose=verbose
    )


__all__ = [
    "TARGETS",
    "ClosedFormBackend",
    "InfluenceBackend",
    "TrainingProblem",
    "is_dask",
    "is_torch_model",
    "is_tree_ensemble",
    "make_backend",
]
