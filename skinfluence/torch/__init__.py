"""Influence functions for torch networks (optional extra ``skinfluence[torch]``).

:class:`~skinfluence.InfluenceExplainer` explains a skorch
``NeuralNetClassifier``/``NeuralNetRegressor`` (fitted in place, or already
fitted inside ``FrozenEstimator``) or a trained
``torch.nn.Module`` wrapped in :class:`TorchModel`; it builds a
:class:`TorchInfluence` backend from this package at ``fit``. Importing
:mod:`skinfluence` never imports torch.

======== ==================================================== ==============
solver   method                                                cost
======== ==================================================== ==============
exact    dense Hessian (p Hessian-vector products), Cholesky   small p
cg       conjugate gradients on Hessian-vector products        any p
lissa    stochastic Neumann series (Koh & Liang 2017)          many rows
lowrank  top eigenpairs by Lanczos (alias 'arnoldi')           many test rows
ekfac    eigenvalue-corrected K-FAC, Linear/Conv2d layers      large p
======== ==================================================== ==============
"""

from ..exceptions import NegativeCurvatureWarning
from ._backend import AUTO_EXACT_MAX_PARAMS, TorchInfluence, make_torch_solver
from ._ekfac import EkfacSolver
from ._minimise import minimise
from ._model import NetSpec, TorchModel, describe
from ._objective import TorchObjective, select_parameters
from ._refine import refine, validate_loo

__all__ = [
    "AUTO_EXACT_MAX_PARAMS",
    "EkfacSolver",
    "NegativeCurvatureWarning",
    "NetSpec",
    "TorchInfluence",
    "TorchModel",
    "TorchObjective",
    "describe",
    "make_torch_solver",
    "minimise",
    "refine",
    "select_parameters",
    "validate_loo",
]
