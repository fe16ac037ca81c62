"""Every error and warning skinfluence raises.

They are re-exported from :mod:`skinfluence`; each subclasses the numpy or
scikit-learn class that code catching a generic error would already expect.
"""

import numpy as np
from sklearn.exceptions import ConvergenceWarning


class StationarityWarning(ConvergenceWarning):
    """The wrapped model is too far from its optimum for reliable influence."""


class SingularHessianError(np.linalg.LinAlgError, ValueError):
    """The Hessian is singular or indefinite at the fitted parameters."""


class WoodburyNotApplicableError(ValueError):
    """The model's Hessian lacks the structure that
    :class:`~skinfluence.solvers.WoodburySolver` needs."""


class NegativeCurvatureWarning(UserWarning):
    """The Hessian at the fitted parameters has negative eigenvalues."""


class FlatLossWarning(UserWarning):
    """The test loss is flat at some test rows, so influence on it is zero.

    Hinge-type models (SVMs) have zero loss, and a zero gradient, at every
    row outside the margin: ``target='decision_function'`` then says which
    training rows move the prediction.
    """


class OverCleaningWarning(UserWarning):
    """More rows dropped or relabeled than the estimated number of wrong labels."""


class TruncationWarning(UserWarning):
    """An approximate solver leaves out much of the Hessian: a low-rank
    solver drops directions that carry much of the influence, or EK-FAC's
    layer-wise Gauss-Newton factors miss the curvature its solves need."""


class UnsupportedOperationError(NotImplementedError, ValueError):
    """The explainer's backend cannot compute the requested quantity.

    Raised, with the alternatives it does offer, for instance for
    ``loo_change(method='newton')`` on a torch model or
    ``perturbation_influence`` on a dask-fitted explainer.
    """


__all__ = [
    "FlatLossWarning",
    "NegativeCurvatureWarning",
    "OverCleaningWarning",
    "SingularHessianError",
    "StationarityWarning",
    "TruncationWarning",
    "UnsupportedOperationError",
    "WoodburyNotApplicableError",
]
