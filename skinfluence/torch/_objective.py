"""Derivatives of a network's training objective with ``torch.func``.

Conventions
-----------
``theta`` is the flat vector of the *explained* parameters (``params=``): the
selected ``module.named_parameters()`` in module order, each flattened in C
order. The others are held fixed at their fitted values. The objective is the
mean training loss plus the optimizer's coupled L2 decay (see ``_model``)::

    L(theta) = 1/n sum_i loss_i(theta) + 1/2 theta' diag(wd) theta,
    H        = 1/n sum_i d^2 loss_i / d theta^2 + diag(wd).

- per-sample gradients ``g_i``: ``vmap`` over ``grad`` of one row's loss;
- Hessian-vector products: reverse-over-reverse, one backward pass per
  column of ``V`` through the kept graph of the batch's gradient (never
  forms ``H`` unless asked);
- the mixed derivative ``d/dx (g_i . v)`` for perturbation influence:
  ``jvp`` along ``v`` (in theta) of the input gradient ``d loss_i / dx``
  (the mixed partials commute).

Everything runs in row batches on the module's device and dtype; inputs and
outputs of the public methods are torch tensors there.
"""

import numpy as np
import torch
from torch.func import functional_call, grad, jvp, vmap

from ._last_layer import last_layer_hessian
from ._model import per_sample_loss

# Rows x right-hand sides evaluated in one vmap: bounds activation memory.
_WORK_ITEMS = 16384
# Rows per kept gradient graph, and the rows x parameters up to which the
# training rows' graphs stay cached for repeated Hessian products.
_GRAPH_ROWS = 4096
_CACHE_ITEMS = 2**26


def _pick(vector, index):
    """``vector[index]`` for a (vmapped) 0-d index tensor."""
    return torch.gather(vector, 0, index.reshape(1))[0]


def select_parameters(module, params):
    """Names of the explained parameters for ``params`` ('all', 'last' or names).

    'last' is the last module (in registration order) that owns parameters
    directly: the top layer, as in Koh & Liang's frozen-Inception experiment.
    A list names modules (``'fc'``, ``'conv.0'``) or single parameters
    (``'fc.bias'``).
    """
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    if isinstance(params, str) and params == "all":
        return names
    if isinstance(params, str) and params == "last":
        owners = [m for m, mod in module.named_modules() if any(mod._parameters)]
        last = owners[-1]
        prefix = f"{last}." if last else ""
        return [
            n for n in names if n.startswith(prefix) and "." not in n[len(prefix) :]
        ]
    if isinstance(params, str):
        raise ValueError(
            f"params must be 'all', 'last' or a list of module names, got {params!r}."
        )
    chosen = []
    for key in params:
        hit = [n for n in names if n == key or n.startswith(f"{key}.")]
        if not hit:
            raise ValueError(
                f"params names {key!r}, which matches no parameter; the module has "
                f"{names}."
            )
        chosen.extend(h for h in hit if h not in chosen)
    return [n for n in names if n in chosen]  # module order


class TorchObjective:
    """Loss, gradients and Hessian products of a network's training objective.

    Parameters
    ----------
    spec : NetSpec
    names : list of str
        The explained parameters (see :func:`select_parameters`).
    X, y : torch.Tensor
        Training inputs and encoded targets on the module's device.
    """

    def __init__(self, spec, names, X, y):
        self.spec = spec
        self.module = spec.module.eval()
        self.names = list(names)
        state = dict(self.module.named_parameters())
        state.update(self.module.named_buffers())
        self._fixed = {k: v.detach() for k, v in state.items() if k not in names}
        self.shapes = [state[n].shape for n in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.theta = torch.cat([state[n].detach().reshape(-1) for n in self.names])
        self.n_params = self.theta.numel()
        self.weight_decay = torch.cat(
            [
                torch.full((size,), spec.weight_decay.get(n, 0.0), dtype=self.dtype)
                for n, size in zip(self.names, self.sizes)
            ]
        ).to(self.device)
        self.X, self.y = X, y
        self.n_samples = X.shape[0]

    @property
    def device(self):
        return self.spec.device

    @property
    def dtype(self):
        return self.spec.dtype

    # -- the functional model ----------------------------------------------------
    def unflatten(self, theta):
        parts = torch.split(theta, self.sizes)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}

    def outputs(self, theta, X):
        """Module outputs for inputs X of shape (b, d) at ``theta``."""
        state = {**self._fixed, **self.unflatten(theta)}
        return functional_call(self.module, state, (X,))

    def losses(self, theta, X, y):
        """Per-sample losses, shape (b,)."""
        return per_sample_loss(self.spec.loss, self.outputs(theta, X), y)

    def _row_loss(self, theta, x, y):
        return self.losses(theta, x[None], y[None])[0]

    def penalty_gradient(self):
        """``diag(wd) theta``: the gradient of the L2 term, q in the LOO formula."""
        return self.weight_decay * self.theta

    # -- batching ----------------------------------------------------------------
    def _row_batches(self, n, width=1):
        step = max(1, _WORK_ITEMS // max(width, 1))
        for start in range(0, n, step):
            yield slice(start, min(start + step, n))

    # -- first derivatives --------------------------------------------------------
    def per_sample_gradients(self, X, y):
        """``g_i`` for rows of (X, y): shape (b, p). One vmap over ``grad``."""
        fn = vmap(grad(self._row_loss), in_dims=(None, 0, 0))
        return torch.cat(
            [fn(self.theta, X[r], y[r]) for r in self._row_batches(X.shape[0], 8)]
        )

    def gradient_blocks(self, rows_per_block=None):
        """Yield ``(rows, G)``: training rows and their (b, p) gradients."""
        n = self.n_samples
        step = rows_per_block or max(1, min(n, 2**24 // max(self.n_params, 1)))
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            yield rows, self.per_sample_gradients(self.X[rows], self.y[rows])

    def mean_gradient(self):
        """Gradient of the training objective ``L`` at the fitted parameters."""
        total = torch.zeros_like(self.theta)
        for r in self._row_batches(self.n_samples, 4):
            total += grad(lambda t, r=r: self.losses(t, self.X[r], self.y[r]).sum())(
                self.theta
            )
        return total / self.n_samples + self.penalty_gradient()

    def objective_value(self):
        with torch.no_grad():
            total = sum(
                self.losses(self.theta, self.X[r], self.y[r]).sum()
                for r in self._row_batches(self.n_samples)
            )
        return float(
            total / self.n_samples + 0.5 * (self.weight_decay * self.theta**2).sum()
        )

    # -- second derivatives -------------------------------------------------------
    def _gradient_graph(self, X, y):
        """``(theta, g)``: the summed gradient of rows (X, y) with its graph kept."""
        theta = self.theta.detach().requires_grad_(True)
        with torch.enable_grad():
            total = self.losses(theta, X, y).sum()
            g = torch.autograd.grad(total, theta, create_graph=True)[0]
        return theta, g

    def _gradient_graphs(self, X, y):
        step = max(1, _GRAPH_ROWS)
        for start in range(0, X.shape[0], step):
            yield self._gradient_graph(X[start : start + step], y[start : start + step])

    def _cached_graphs(self):
        """The training rows' gradient graphs at ``theta``, kept while small.

        Every Hessian product on all rows reuses them: a product is then one
        backward pass through the gradient's graph, no new forward pass.
        """
        key = (id(self.theta), self.theta._version)
        cache = getattr(self, "_graph_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        graphs = self._gradient_graphs(self.X, self.y)
        if self.n_samples * self.n_params <= _CACHE_ITEMS:
            graphs = list(graphs)
            self._graph_cache = (key, graphs)
        return graphs

    def hvp(self, V, rows=None):
        """``H V`` for V of shape (p, m), on all rows or the index array ``rows``.

        Reverse-over-reverse: the gradient of the rows' summed loss is built
        once with its graph, then each column of V is one backward pass
        through it (on CPU a loop of these was no slower per column than
        ``vmap`` over forward-mode ``jvp`` or a batched backward pass, on a
        small CNN); the decay term
        is added once.
        """
        if rows is None:
            graphs, n = self._cached_graphs(), self.n_samples
        else:
            graphs = self._gradient_graphs(self.X[rows], self.y[rows])
            n = len(rows)
        out = torch.zeros_like(V)
        for theta, g in graphs:
            if not g.requires_grad:  # loss linear in theta: no curvature
                continue
            for k in range(V.shape[1]):
                hv = torch.autograd.grad(
                    g, theta, V[:, k], retain_graph=True, allow_unused=True
                )[0]
                if hv is not None:
                    out[:, k] += hv
        return out / n + self.weight_decay[:, None] * V

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_graph_cache", None)  # autograd graphs do not pickle
        return state

    def hessian(self):
        """The dense ``H`` of shape (p, p).

        One Hessian-vector product per parameter, except on a final linear
        layer whose block has a closed form (see ``_last_layer``): there the
        products are only needed for the other parameters, whose columns also
        hold the cross block.
        """
        p = self.n_params
        last = last_layer_hessian(self)
        if last is None:
            H = self.hvp(torch.eye(p, dtype=self.dtype, device=self.device))
            return (H + H.T) / 2
        index, block = last
        others = torch.ones(p, dtype=torch.bool, device=self.device)
        others[index] = False
        others = torch.nonzero(others).ravel()
        E = torch.zeros(p, len(others), dtype=self.dtype, device=self.device)
        E[others, torch.arange(len(others), device=self.device)] = 1.0
        cols = self.hvp(E)
        H = torch.empty(p, p, dtype=self.dtype, device=self.device)
        H[:, others] = cols
        H[others[:, None], index[None, :]] = cols[index].T
        H[index[:, None], index[None, :]] = block / self.n_samples + torch.diag(
            self.weight_decay[index]
        )
        return (H + H.T) / 2

    # -- test quantities ----------------------------------------------------------
    def quantity(self, target):
        """Per-row function ``(theta, x, t) -> scalar`` for an explainer target.

        ``t`` is the encoded label for 'loss', else the class index whose
        output or probability is differentiated.
        """
        kind = self.spec.loss
        if target == "loss":
            return self._row_loss

        def value(theta, x, t):
            out = self.outputs(theta, x[None])[0].reshape(-1)
            if target == "predict":
                return out[0]
            if kind == "bce_with_logits":
                z = out[0]
                if target == "decision_function":
                    return z
                return torch.where(t == 1, torch.sigmoid(z), torch.sigmoid(-z))
            if target == "decision_function":
                return _pick(out, t)
            if kind == "cross_entropy":
                return _pick(torch.softmax(out, 0), t)
            if kind == "nll":
                return _pick(out.exp(), t)
            return _pick(out, t)  # skorch NLL: the module outputs probabilities

        return value

    def test_gradients(self, X, t, target):
        """Gradients of the test quantity per row: shape (m, p)."""
        fn = vmap(grad(self.quantity(target)), in_dims=(None, 0, 0))
        return torch.cat(
            [fn(self.theta, X[r], t[r]) for r in self._row_batches(X.shape[0], 8)]
        )

    def mixed_products(self, X, y, V):
        """``d/dx (g_i . v)`` for each row and column of V: shape (b, m, d).

        Forward-over-reverse: the input gradient ``d loss_i / dx`` pushed
        forward along ``v`` in parameter space.
        """
        input_grad = grad(self._row_loss, argnums=1)

        def one(x, t, v):
            return jvp(lambda th: input_grad(th, x, t), (self.theta,), (v,))[1]

        over_v = vmap(one, in_dims=(None, None, 1))
        fn = vmap(over_v, in_dims=(0, 0, None))
        return torch.cat(
            [fn(X[r], y[r], V) for r in self._row_batches(X.shape[0], V.shape[1])]
        )
