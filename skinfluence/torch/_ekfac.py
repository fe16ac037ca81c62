"""EK-FAC: eigenvalue-corrected Kronecker factors of the Gauss-Newton matrix.

George, Laurent, Bouthillier, Ballas & Vincent (2018), "Fast Approximate
Natural Gradient Descent in a Kronecker-factored Eigenbasis", as used for
influence by Grosse et al. (2023) and Kronfluence. For each ``nn.Linear`` and
``nn.Conv2d`` layer with weight ``W`` (``out x in'``, the bias as a last
column fed by a constant 1), the Gauss-Newton block of the mean objective is

    GN = 1/n sum_i sum_k vec(M_ik) vec(M_ik)',   M_ik = sum_l g_ikl a_il'

with ``a_il`` the layer's input at location ``l`` (the im2col patch of a
convolution) and ``g_ikl`` the gradient at its output of the k-th
"pseudo-loss" ``c_ik' f(x_i)``, where ``D_i = C_i C_i'`` is the Hessian of the
loss with respect to the network's outputs. Using every column of ``C_i``
(not a sampled label, as Kronfluence does) makes these sums the *exact*
Gauss-Newton matrix, so no sampling noise enters.

K-FAC approximates ``GN ~ A kron G`` with ``A = sum a a'``, ``G = sum g g'``;
EK-FAC keeps their eigenvectors ``U_A, U_G`` but replaces the eigenvalues by
the exact diagonal of ``GN`` in that basis,
``Lambda = 1/n sum_ik (U_G' M_ik U_A)^2``. The inverse is then
``(U_G kron U_A) diag(1 / (Lambda + wd + damping)) (U_G kron U_A)'``, layer by
layer (cross-layer blocks are dropped). It is exact when a layer's Gauss-Newton
block *is* a Kronecker product in that basis, e.g. least squares on one
linear layer. The decay ``wd`` enters through its exact diagonal in the
eigenbasis (uniform decay: exactly).

The Hessian's second-order term (curvature of the network itself) is left
out: EK-FAC is always positive semi-definite, including at a saddle.
"""

import numbers
import warnings

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, hessian, vmap
from torch.nn import functional as F

from ..core._stationarity import stationarity_rows
from ..exceptions import SingularHessianError, TruncationWarning
from ..solvers._spectrum import resolve_damping
from ..solvers.cg import _not_invertible
from ..utils._warn import caller_stacklevel
from ._model import per_sample_loss

#: Rows whose gradients check the approximation at fit, and the relative
#: residual above which it warns (LiSSA's bound: a residual of 0.1 went
#: with influence about 5% off the exact solver's).
_N_CHECK_ROWS = 8
_RESIDUAL_LIMIT = 0.1


class _Layer:
    """One Linear/Conv2d layer: where its parameters sit in theta."""

    def __init__(self, name, module, offsets):
        self.name, self.module = name, module
        self.w_off = offsets[f"{name}.weight" if name else "weight"]
        b_key = f"{name}.bias" if name else "bias"
        self.b_off = offsets.get(b_key)
        w = module.weight
        self.n_out = w.shape[0]
        self.n_in = int(np.prod(w.shape[1:]))
        self.width = self.n_in + (self.b_off is not None)

    def patches(self, x):
        """Inputs as (b, L, in') with the bias column of ones."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            a = F.unfold(
                x,
                m.kernel_size,
                dilation=m.dilation,
                padding=m.padding,
                stride=m.stride,
            ).transpose(1, 2)
        else:
            a = x.reshape(x.shape[0], -1, x.shape[-1])
        if self.b_off is not None:
            a = torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)
        return a

    def output_grads(self, g):
        """Output gradients as (b, L, out)."""
        if isinstance(self.module, nn.Conv2d):
            return g.flatten(2).transpose(1, 2)
        return g.reshape(g.shape[0], -1, g.shape[-1])

    def take(self, B):
        """The layer's block of B (p, m) as (m, out, in')."""
        m = B.shape[1]
        W = B[self.w_off : self.w_off + self.n_out * self.n_in].T
        W = W.reshape(m, self.n_out, self.n_in)
        if self.b_off is None:
            return W
        b = B[self.b_off : self.b_off + self.n_out].T.reshape(m, self.n_out, 1)
        return torch.cat([W, b], dim=2)

    def put(self, out, M):
        m = M.shape[0]
        out[self.w_off : self.w_off + self.n_out * self.n_in] = (
            M[:, :, : self.n_in].reshape(m, -1).T
        )
        if self.b_off is not None:
            out[self.b_off : self.b_off + self.n_out] = M[:, :, -1].T


def _layers(objective):
    """The Linear/Conv2d layers that own the explained parameters."""
    offsets, start = {}, 0
    for name, size in zip(objective.names, objective.sizes):
        offsets[name] = start
        start += size
    owners = {}
    for name in objective.names:
        owner, _, leaf = name.rpartition(".")
        owners.setdefault(owner, []).append(leaf)
    modules = dict(objective.module.named_modules())
    layers = []
    for owner, leaves in owners.items():
        mod = modules[owner]
        ok = isinstance(mod, nn.Linear) or (
            isinstance(mod, nn.Conv2d)
            and mod.groups == 1
            and mod.padding_mode == "zeros"
            and not isinstance(mod.padding, str)
        )
        if not ok or "weight" not in leaves:
            raise ValueError(
                f"solver='ekfac' supports nn.Linear and nn.Conv2d layers (zero "
                f"padding, groups=1) with their weight explained; parameters "
                f"{[f'{owner}.{leaf}' for leaf in leaves]} belong to "
                f"{type(mod).__name__}. Pick other params= or another solver."
            )
        layers.append(_Layer(owner, mod, offsets))
    return layers


def _output_curvature_roots(kind, out, y):
    """``C_i`` with ``C_i C_i' = d^2 loss_i / d out^2``: shape (b, K, K)."""

    def row_loss(o, t):
        return per_sample_loss(kind, o[None], t[None])[0]

    D = vmap(hessian(row_loss))(out, y)
    D = (D + D.transpose(1, 2)) / 2
    vals, vecs = torch.linalg.eigh(D)
    return vecs * vals.clamp_min(0).sqrt()[:, None, :]


class EkfacSolver:
    """Layer-wise EK-FAC approximation of ``(H + damping I)^-1``.

    Torch-native: factors are gathered with forward/backward hooks in row
    batches on the network's device. See the module docstring for the
    method; it needs every explained parameter to be the weight or bias of an
    ``nn.Linear`` or ``nn.Conv2d`` layer.

    Parameters
    ----------
    damping : float or 'auto', default=0.0
        Added to every corrected eigenvalue (with the weight decay).
    batch_size : int, default=256
        Training rows per forward/backward pass.

    Attributes
    ----------
    damping_ : float
    eigenvalues_ : dict
        Layer name -> corrected eigenvalues ``Lambda`` of shape (out, in').
    residual_ : float
        The largest relative residual ``||(H + damping I) x - g|| / ||g||``
        of its solves ``x`` for 8 training rows' gradients ``g``, measured
        with exact Hessian-vector products at fit: 0 where EK-FAC is exact.
        A :class:`~skinfluence.exceptions.TruncationWarning` says when it is
        above 0.1.
    """

    def __init__(self, damping=0.0, batch_size=256):
        self.damping = damping
        self.batch_size = batch_size

    def fit(self, operator):
        if not (isinstance(self.batch_size, numbers.Integral) and self.batch_size > 0):
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        obj = operator.torch_objective
        self.n_params_ = obj.n_params
        self._layers = _layers(obj)
        self.damping_ = resolve_damping(self.damping, operator)
        self._dtype, self._device = obj.dtype, obj.device
        sums = self._accumulate(obj, None)
        self._bases = {}
        for layer in self._layers:
            A, G = sums[layer.name]
            self._bases[layer.name] = (
                torch.linalg.eigh(G)[1],
                torch.linalg.eigh(A)[1],
            )
        lam = self._accumulate(obj, self._bases)
        self.eigenvalues_ = {}
        self._denominators = {}
        wd = obj.weight_decay
        for layer in self._layers:
            UG, UA = self._bases[layer.name]
            L = lam[layer.name] / obj.n_samples
            self.eigenvalues_[layer.name] = L
            decay = layer.take(wd[:, None])[0]  # (out, in') of decay values
            decay_kfe = (UG**2).T @ decay @ (UA**2)
            self._denominators[layer.name] = L + decay_kfe + self.damping_
        lo = min(float(d.min()) for d in self._denominators.values())
        hi = max(float(d.max()) for d in self._denominators.values())
        if lo <= 1e-12 * hi:
            raise SingularHessianError(
                f"The EK-FAC eigenvalues plus weight decay and damping go down to "
                f"{lo:.3g} (largest {hi:.3g}), so the approximation is singular. "
                "Pass a damping > 0 (damping='auto' picks one)."
            )
        self.residual_ = self._residual(operator, obj)
        if self.residual_ > _RESIDUAL_LIMIT:
            warnings.warn(
                f"EK-FAC's inverse is far from this Hessian's: its solves for "
                f"training rows' gradients leave a relative residual up to "
                f"{self.residual_:.2g} (> {_RESIDUAL_LIMIT}; residual_), as "
                "when cross-layer curvature or the network's own second-order "
                "term matters; influence is then off in scale and ranking. "
                "For exact values use solver='cg' or 'exact'.",
                TruncationWarning,
                stacklevel=caller_stacklevel(),
            )
        return self

    def _residual(self, operator, obj):
        """Largest relative residual of the solves for a few rows' gradients."""
        rows = stationarity_rows(obj.n_samples)[:_N_CHECK_ROWS]
        rows = torch.as_tensor(rows, device=obj.device)
        B = obj.per_sample_gradients(obj.X[rows], obj.y[rows]).T
        B = B.detach().cpu().numpy().astype(np.float64)
        X = self.solve(B)
        R = operator.matmat(X) + self.damping_ * X - B
        scale = np.maximum(np.linalg.norm(B, axis=0), np.finfo(float).tiny)
        return float(np.max(np.linalg.norm(R, axis=0) / scale))

    def _accumulate(self, obj, bases):
        """Pass over the data: factor sums (bases None) or corrected eigenvalues."""
        acts, grads_out = {}, {}
        hooks = []
        for layer in self._layers:

            def hook(mod, inp, out, name=layer.name):
                acts[name] = inp[0].detach()
                grads_out[name] = out

            hooks.append(layer.module.register_forward_hook(hook))
        result = {}
        try:
            for start in range(0, obj.n_samples, self.batch_size):
                rows = slice(start, min(start + self.batch_size, obj.n_samples))
                self._batch(obj, rows, acts, grads_out, bases, result)
        finally:
            for h in hooks:
                h.remove()
        return result

    def _batch(self, obj, rows, acts, outs, bases, result):
        # The module's own autograd (hooks need it), at the fitted theta.
        state = {
            k: v.detach().requires_grad_(True)
            for k, v in obj.unflatten(obj.theta).items()
        }
        with torch.enable_grad():
            out = functional_call(obj.module, {**obj._fixed, **state}, (obj.X[rows],))
        out = out.reshape(out.shape[0], -1)
        C = _output_curvature_roots(obj.spec.loss, out.detach(), obj.y[rows])
        patches = {ly.name: ly.patches(acts[ly.name]) for ly in self._layers}
        if bases is None:
            for ly in self._layers:
                a = patches[ly.name]
                result[ly.name] = [
                    result.get(ly.name, [0, 0])[0] + torch.einsum("bli,blj->ij", a, a),
                    result.get(ly.name, [0, 0])[1],
                ]
        for k in range(C.shape[2]):
            gs = torch.autograd.grad(
                out,
                [outs[ly.name] for ly in self._layers],
                grad_outputs=C[:, :, k],
                retain_graph=k < C.shape[2] - 1,
                allow_unused=True,
            )
            for ly, g in zip(self._layers, gs):
                if g is None:  # the layer does not reach the output
                    continue
                g = ly.output_grads(g)
                if bases is None:
                    result[ly.name][1] = result[ly.name][1] + torch.einsum(
                        "bli,blj->ij", g, g
                    )
                else:
                    UG, UA = bases[ly.name]
                    kfe = UG.T @ torch.einsum("blo,bli->boi", g, patches[ly.name]) @ UA
                    result[ly.name] = result.get(ly.name, 0) + (kfe**2).sum(0)

    def solve(self, B):
        """EK-FAC estimate of ``(H + damping I)^-1 B``, B of shape (p,) or (p, m)."""
        B = np.asarray(B, dtype=np.float64)
        vector = B.ndim == 1
        Bt = torch.as_tensor(
            B.reshape(self.n_params_, -1), dtype=self._dtype, device=self._device
        )
        out = torch.zeros_like(Bt)
        for layer in self._layers:
            UG, UA = self._bases[layer.name]
            M = layer.take(Bt)
            M = UG.T @ M @ UA / self._denominators[layer.name]
            layer.put(out, UG @ M @ UA.T)
        out = out.cpu().numpy().astype(np.float64)
        return out[:, 0] if vector else out

    def inverse(self):
        raise _not_invertible(self)
