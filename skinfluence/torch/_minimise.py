"""Full-batch L-BFGS on a network's training objective (refine, refits)."""

import torch

from ..utils._progress import progress_bar

#: Up to this many parameters, L-BFGS runs in coordinates whitened by the
#: dense Hessian's Cholesky factor (built by p Hessian-vector products).
WHITEN_MAX_PARAMS = 5000


def minimise(
    objective,
    theta0,
    rows=None,
    *,
    max_iter=500,
    tol=1e-10,
    basis=None,
    verbose=0,
    info=None,
):
    """Full-batch L-BFGS on ``objective`` restricted to ``rows`` (all if None).

    ``basis`` (p, p), optional: optimise over ``z`` with ``theta = theta0 +
    basis @ z``, a change of variables that leaves the minimiser unchanged;
    with ``basis = L^-T`` for the Cholesky factor ``H = L L'`` of a nearby
    Hessian the problem is close to isotropic and L-BFGS needs a few steps.
    Returns the minimiser (a new tensor); ``objective`` is not changed.
    ``verbose=1`` shows a transient bar over the objective's evaluations with
    its value and the gradient's largest entry (``tol`` stops there).
    ``info``, a dict, receives ``spent``: whether L-BFGS stopped on its budget
    (``max_iter`` iterations, or torch's 1.25 ``max_iter`` evaluations).
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

    bar = progress_bar(
        f"L-BFGS on {len(y)} rows", verbose=verbose, leave=False, unit="evaluations"
    )

    def closure():
        opt.zero_grad()
        theta = point(z)
        value = objective.losses(theta, X, y).mean() + 0.5 * (wd * theta**2).sum()
        value.backward()
        bar.update()
        if verbose:
            now, top = float(value.detach()), float(z.grad.abs().max())
            bar.note(f"objective {now:.6g}, gradient {top:.1e} (tol {tol:g})")
        return value

    with bar:
        opt.step(closure)
    if info is not None:
        state = opt.state[z]
        info["spent"] = state.get("n_iter", 0) >= max_iter or state.get(
            "func_evals", 0
        ) >= int(max_iter * 1.25)
    with torch.no_grad():
        return point(z).detach()


def whitening_basis(objective, hessian=None):
    """``L^-T`` for the Cholesky factor ``H = L L'`` of the Hessian at the
    objective's parameters (``hessian``, when already formed), or None: above
    ``WHITEN_MAX_PARAMS`` parameters, or where ``H`` is not positive definite
    (a saddle: no minimum nearby for the whitening to describe)."""
    if objective.n_params > WHITEN_MAX_PARAMS:
        return None
    H = objective.hessian() if hessian is None else hessian
    H = torch.as_tensor(H, device=objective.device).to(objective.dtype)
    L, status = torch.linalg.cholesky_ex(H)
    if int(status) != 0 or not torch.isfinite(L).all():
        return None
    eye = torch.eye(objective.n_params, dtype=L.dtype, device=L.device)
    return torch.linalg.solve_triangular(L.T, eye, upper=True)
