"""The Hessian block of a network's final linear layer, in closed form.

When the network's output *is* the output of its last ``nn.Linear``
(``out_i = W a_i + b``, nothing after it), the loss is a function of
``out_i`` alone and ``out_i`` is linear in ``(W, b)``, so the block of the
Hessian on those parameters is exactly the generalized Gauss-Newton term::

    sum_i  Lambda_i  kron  at_i at_i',     Lambda_i = d^2 loss_i / d out_i^2,

with ``at_i = [a_i, 1]`` the layer's input and a one (for the bias). It costs
one forward pass and a ``(K, K)`` output Hessian per row instead of one
Hessian-vector product per parameter of the layer: the whole Hessian when
only the top layer is explained (Koh & Liang's frozen-Inception setting), and
one column per *other* parameter otherwise (the cross block follows from
those columns by symmetry).

Detection is conservative: the last module owning parameters must be an
``nn.Linear`` called exactly once per forward pass on 2-d input, with the
network returning that very tensor; anything else (a softmax after it, a
reshape, a tied weight) falls back to Hessian-vector products.
"""

import torch
from torch import nn
from torch.func import hessian, vmap

from ._model import per_sample_loss

# Rows x (d + 1)^2 entries of the outer products held at once.
_OUTER_ITEMS = 2**22


def _final_linear(module, names):
    """``(weight name, bias name, layer)`` of the last parameter owner, or None."""
    owners = [(n, m) for n, m in module.named_modules() if any(m._parameters)]
    if not owners or not isinstance(owners[-1][1], nn.Linear):
        return None
    prefix = f"{owners[-1][0]}." if owners[-1][0] else ""
    weight, bias = f"{prefix}weight", f"{prefix}bias"
    if weight not in names and bias not in names:
        return None
    return weight, bias, owners[-1][1]


def _theta_positions(objective, weight, bias, K, d):
    """Positions in theta of the layer's ``(K, d + 1)`` grid, -1 if not explained."""
    grid = torch.full((K, d + 1), -1, dtype=torch.long)
    start = 0
    for name, size in zip(objective.names, objective.sizes):
        span = torch.arange(start, start + size)
        if name == weight:
            grid[:, :d] = span.reshape(K, d)
        elif name == bias:
            grid[:, d] = span
        start += size
    return grid.reshape(-1)


def last_layer_hessian(objective):
    """The final linear layer's block of the summed loss Hessian, or None.

    Parameters
    ----------
    objective : TorchObjective

    Returns
    -------
    (index, block) or None
        ``index``: positions in theta (LongTensor of length q) of the layer's
        explained parameters; ``block``: ``sum_i d^2 loss_i / d theta_index^2``
        of shape (q, q), without the 1/n and the decay. None when the
        network's structure does not allow the closed form.
    """
    found = _final_linear(objective.module, objective.names)
    if found is None:
        return None
    weight, bias, layer = found
    captured = []
    handle = layer.register_forward_hook(
        lambda mod, args, out: captured.append((args[0], out))
    )

    def row_loss(out, target):
        return per_sample_loss(objective.spec.loss, out[None], target[None])[0]

    output_hessians = vmap(hessian(row_loss))
    total = None
    try:
        with torch.no_grad():
            for rows in objective._row_batches(objective.n_samples):
                captured.clear()
                out = objective.outputs(objective.theta, objective.X[rows])
                if len(captured) != 1 or captured[0][1] is not out or out.dim() != 2:
                    return None
                a = captured[0][0]
                if a.dim() != 2:
                    return None
                Lam = output_hessians(out, objective.y[rows])  # (b, K, K)
                at = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)  # (b, d + 1)
                b, K, e = a.shape[0], out.shape[1], at.shape[1]
                step = max(1, _OUTER_ITEMS // (e * e))
                for s in range(0, b, step):
                    A = at[s : s + step]
                    outer = (A[:, :, None] * A[:, None, :]).reshape(A.shape[0], -1)
                    part = Lam[s : s + step].reshape(A.shape[0], K * K).T @ outer
                    total = part if total is None else total + part
    finally:
        handle.remove()
    # (k, l, a, c) -> (k, a, l, c): rows and columns in the (K, d + 1) grid.
    block = total.reshape(K, K, e, e).permute(0, 2, 1, 3).reshape(K * e, K * e)
    grid = _theta_positions(objective, weight, bias, K, e - 1)
    keep = torch.nonzero(grid >= 0).ravel()
    index = grid[keep].to(objective.device)
    block = block[keep.to(objective.device)][:, keep.to(objective.device)]
    return (index, block) if _agrees(objective, index, block) else None


def _agrees(objective, index, block):
    """One Hessian-vector product along a random direction of the layer.

    Guards the structural assumptions (e.g. a weight also used upstream
    through a functional call) for the price of one of the products saved.
    """
    gen = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(len(index), generator=gen, dtype=block.dtype).to(block.device)
    V = torch.zeros(objective.n_params, 1, dtype=block.dtype, device=block.device)
    V[index, 0] = v
    n = objective.n_samples
    hv = objective.hvp(V)[index, 0] - objective.weight_decay[index] * v
    info = torch.finfo(hv.dtype)
    scale = torch.linalg.vector_norm(hv) + info.tiny
    # Rounding differs between the two routes (~1e3 eps in float32); a broken
    # assumption shows as an O(1) difference.
    tol = max(1e-8, 1e3 * info.eps)
    return bool(torch.linalg.vector_norm(hv - block @ v / n) <= tol * scale)
