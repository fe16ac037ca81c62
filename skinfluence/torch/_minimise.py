"""Full-batch L-BFGS on a network's training objective (refine, refits)."""

import torch


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
