"""Stationary points of a network's training objective, and the LOO check.

Influence functions assume the parameters minimise the training objective
``1/n sum_i loss_i + 1/2 sum_j wd_j theta_j^2``. Minibatch SGD/Adam stop where
the gradient is still about the size of one row's effect; full-batch L-BFGS
(strong Wolfe line search, float64) brings it down by orders of magnitude.
The same minimiser retrains without a row, starting from the fitted
parameters as Koh & Liang's Figure 2 does (the torch backend's refits).
"""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from ..loo import validate_loo as _validate_loo
from ..utils._warn import caller_stacklevel
from ._backend import TorchInfluence
from ._minimise import WHITEN_MAX_PARAMS, minimise, whitening_basis
from ._model import describe
from ._objective import TorchObjective, select_parameters


def refine(model, X, y, *, params="all", max_iter=500, tol=1e-10, verbose=0):
    """Minimise the training objective with full-batch L-BFGS, in place.

    Up to 5000 parameters, L-BFGS runs in coordinates whitened by the
    Cholesky factor of the Hessian where it is positive definite (at a
    saddle, plain L-BFGS first, then whitened from where it stopped): the
    problem is then close to isotropic.

    Parameters
    ----------
    model : skorch net or TorchModel
        Fitted; its module's parameters are updated in place. Use float64
        (``module.double()``) for the last digits.
    X, y : array-like
        The training data the explainer will see (after any Pipeline prefix).
    params : 'all', 'last' or list of str, default='all'
        The parameters to optimise (the others stay fixed).
    max_iter : int, default=500
        L-BFGS iterations at most.
    tol : float, default=1e-10
        Stop when the gradient's largest entry falls below ``tol``.
    verbose : int, default=0
        1 shows a bar over L-BFGS's evaluations of the objective, with its
        value and the gradient's largest entry, on standard error (tqdm when
        installed, else one closing line).

    Returns
    -------
    float
        The norm of the objective's gradient after refining. A
        ConvergenceWarning says when its largest entry is still above
        ``tol`` with the ``max_iter`` iterations spent, or with float32
        parameters (which stop far above it: use ``module.double()``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skinfluence.torch import TorchModel, refine
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
    ...                           torch.nn.Linear(4, 2)).double()
    >>> model = TorchModel(net, weight_decay=1e-2).fit(X, y)
    >>> bool(refine(model, X, y) < 1e-8)
    True
    """
    spec = describe(model)
    names = select_parameters(spec.module, params)
    Xt = TorchInfluence._tensor(X, spec)
    yt = TorchInfluence._encode(spec, np.asarray(y))
    info = {}
    obj = TorchObjective(spec, names, Xt, yt)

    # Whitened by the Hessian where it is positive definite (up to 5000
    # parameters), L-BFGS sees a near-isotropic problem: on an Adam-trained
    # MLP it reached what plain L-BFGS missed in 2000 iterations. At a saddle,
    # plain L-BFGS first, then whitened from where it stopped.
    def run(objective, basis):
        theta = minimise(
            objective,
            objective.theta,
            max_iter=max_iter,
            tol=tol,
            basis=basis,
            verbose=verbose,
            info=info,
        )
        _set_parameters(spec, objective, theta)
        return TorchObjective(spec, names, Xt, yt)

    basis = whitening_basis(obj)
    obj = run(obj, basis)
    if basis is None and obj.n_params <= WHITEN_MAX_PARAMS:
        # A saddle at the start: whitened from where plain L-BFGS stopped.
        basis = whitening_basis(obj)
        if basis is not None:
            obj = run(obj, basis)
    gradient = obj.mean_gradient()
    largest = float(gradient.abs().max())
    single = obj.dtype == torch.float32
    # float64 runs that stop early hit rounding, not the budget: no warning.
    if largest > tol and (single or info["spent"]):
        warnings.warn(
            f"refine stopped with the gradient's largest entry at {largest:.3g}, "
            f"above tol={tol:g}: "
            + (
                "float32 parameters cannot get much closer; convert the module "
                "with module.double() first (and pass float64 X)."
                if single
                else f"raise max_iter (it was {max_iter})."
            ),
            ConvergenceWarning,
            stacklevel=caller_stacklevel(),
        )
    return float(gradient.norm())


def _set_parameters(spec, objective, theta):
    """Write ``theta`` into the module's parameters, in place."""
    state = dict(spec.module.named_parameters())
    with torch.no_grad():
        for name, part in objective.unflatten(theta).items():
            state[name].copy_(part)


def validate_loo(
    explainer,
    X_test,
    y_test,
    *,
    n_remove=20,
    n_random=0,
    random_state=None,
    max_iter=500,
    tol=1e-10,
    verbose=0,
):
    """Koh & Liang's Figure 2 for a network: predicted vs actual LOO changes.

    :func:`skinfluence.validate_loo` with the torch backend's retraining
    settings: removes, one at a time, the ``n_remove`` training rows with the
    largest influence on the total test loss (``|explainer.influence|``) and
    ``n_random`` random others, retrains the explained parameters from the
    fitted ones with full-batch L-BFGS on the objective without the row (mean
    over the ``n - 1`` others plus the same decay; whitened by the full-data
    Hessian when it has at most 5000 parameters, a change of variables that
    leaves the optimum alone), and compares the actual change of the total
    test loss with ``explainer.loo_change`` (which includes the decay
    becoming relatively stronger, the same for every row).

    Parameters
    ----------
    explainer : InfluenceExplainer
        Fitted on a torch model.
    X_test, y_test : array-like
        Test rows; their losses are summed.
    n_remove, n_random : int
    random_state : int, RandomState or None
    max_iter, tol : L-BFGS settings of each retraining (see :func:`refine`).
    verbose : int, default=0
        1 shows a bar over the retrainings; each one's L-BFGS shows its own
        transient bar when the explainer has ``verbose=1``.

    Returns
    -------
    LOOValidation
    """
    check_is_fitted(explainer, "backend_")
    return _validate_loo(
        explainer,
        X_test,
        y_test,
        n_remove=n_remove,
        n_random=n_random,
        random_state=random_state,
        refit_options={"max_iter": max_iter, "tol": tol},
        verbose=verbose,
    )
