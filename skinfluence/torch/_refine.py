"""Stationary points of a network's training objective, and the LOO check.

Influence functions assume the parameters minimise the training objective
``1/n sum_i loss_i + 1/2 sum_j wd_j theta_j^2``. Minibatch SGD/Adam stop where
the gradient is still about the size of one row's effect; full-batch L-BFGS
(strong Wolfe line search, float64) brings it down by orders of magnitude.
The same minimiser retrains without a row, starting from the fitted
parameters as Koh & Liang's Figure 2 does, for :func:`validate_loo`.
"""

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..loo import LOOValidation
from ._backend import TorchInfluence
from ._model import describe
from ._objective import TorchObjective, select_parameters


def minimise(objective, theta0, rows=None, *, max_iter=500, tol=1e-10, basis=None):
    """Full-batch L-BFGS on ``objective`` restricted to ``rows`` (all if None).

    ``basis`` (p, p), optional: optimise over ``z`` with ``theta = theta0 +
    basis @ z``, a change of variables that leaves the minimiser unchanged;
    with ``basis = L^-T`` for the Cholesky factor ``H = L L'`` of a nearby
    Hessian the problem is close to isotropic and L-BFGS needs a few steps.
    Returns the minimiser (a new tensor); ``objective`` is not changed.
    """
    X, y = objective.X, objective.y
    if rows is not None:
        X, y = X[rows], y[rows]
    wd = objective.weight_decay
    start = theta0.detach().clone()
    if basis is None:
        z = start.clone().requires_grad_(True)

        def point(z):
            return z

    else:
        z = torch.zeros_like(start).requires_grad_(True)

        def point(z):
            return start + basis @ z

    opt = torch.optim.LBFGS(
        [z],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=0.0,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        theta = point(z)
        value = objective.losses(theta, X, y).mean() + 0.5 * (wd * theta**2).sum()
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        return point(z).detach()


def refine(model, X, y, *, params="all", max_iter=500, tol=1e-10):
    """Minimise the training objective with full-batch L-BFGS, in place.

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

    Returns
    -------
    float
        The norm of the objective's gradient after refining.

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
    obj = TorchObjective(spec, names, Xt, yt)
    theta = minimise(obj, obj.theta, max_iter=max_iter, tol=tol)
    state = dict(spec.module.named_parameters())
    with torch.no_grad():
        for name, part in obj.unflatten(theta).items():
            state[name].copy_(part)
    return float(TorchObjective(spec, names, Xt, yt).mean_gradient().norm())


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
):
    """Koh & Liang's Figure 2 for a network: predicted vs actual LOO changes.

    Removes, one at a time, the ``n_remove`` training rows with the largest
    influence on the total test loss (``|explainer.influence|``) and
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

    Returns
    -------
    LOOValidation
    """
    check_is_fitted(explainer, "backend_")
    backend = explainer.backend_
    obj = backend.objective_
    Xt = explainer._features(explainer._validate_test_X(X_test))
    Xt = backend._tensor(Xt, obj.spec)
    t = backend._encode(obj.spec, np.asarray(y_test))
    predicted = explainer.loo_change(X_test, y_test).sum(axis=0)
    own = explainer.influence(X_test, y_test).sum(axis=0)
    n = obj.n_samples
    # Rank by the row's own influence, as the paper does: the decay term of
    # loo_change is the same for every row.
    top = np.argsort(-np.abs(own))[:n_remove]
    rng = check_random_state(random_state)
    rest = np.setdiff1d(np.arange(n), top)
    rand = rng.choice(rest, size=min(n_random, rest.size), replace=False)
    with torch.no_grad():
        before = float(obj.losses(obj.theta, Xt, t).sum())
    basis = None
    if obj.n_params <= 5000:
        # Whitening by the full-data Hessian: the same optimum, few steps.
        H = backend.hessian_
        H = obj.hessian() if H is None else torch.as_tensor(H, device=obj.device)
        L = torch.linalg.cholesky_ex(H.to(obj.dtype))[0]
        if torch.isfinite(L).all():
            eye = torch.eye(obj.n_params, dtype=H.dtype, device=H.device)
            basis = torch.linalg.solve_triangular(L.T, eye, upper=True)
    rows, actual = [], []
    for i in np.concatenate([top, rand]).astype(int):
        keep = torch.as_tensor(np.delete(np.arange(n), i), device=obj.device)
        theta = minimise(obj, obj.theta, keep, max_iter=max_iter, tol=tol, basis=basis)
        with torch.no_grad():
            actual.append(float(obj.losses(theta, Xt, t).sum()) - before)
        rows.append(i)
    rows = np.asarray(rows)
    table = pd.DataFrame(
        {
            "train_row": rows,
            "selection": ["top"] * len(top) + ["random"] * len(rand),
            "predicted": predicted[rows],
            "actual": np.asarray(actual),
        }
    )
    r = float(stats.pearsonr(table["predicted"], table["actual"])[0])
    slope = float(np.polyfit(table["actual"], table["predicted"], 1)[0])
    return LOOValidation(table=table, pearson_r=r, slope=slope)
