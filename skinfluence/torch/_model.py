"""What the torch backend needs to know about a network, from skorch or plain torch.

A network is described by a :class:`NetSpec`: the fitted module, the
per-sample loss its training minimised, the weight decay its optimizer applied
to each parameter, and the class labels of a classifier. :func:`describe`
reads one from a skorch ``NeuralNet*`` or from a :class:`TorchModel` (the
adapter for a fitted ``torch.nn.Module`` without skorch).

Weight decay
------------
The training objective is the *mean* loss plus a coupled L2 penalty,

    L(theta) = 1/n sum_i loss_i(theta) + 1/2 sum_j wd_j theta_j^2,

which is what ``torch.optim.SGD``/``Adam``/``RMSprop``/``Adagrad`` minimise
with ``weight_decay=wd`` (they add ``wd * theta`` to the minibatch gradient of
the mean loss). Decoupled decay (``AdamW``, ``Adam(decoupled_weight_decay=
True)``) shrinks the weights outside the gradient: its fixed point is not the
minimum of any objective, so influence is not defined for it and such nets
are refused (train with coupled ``weight_decay``, or refine the net with
:func:`~skinfluence.torch.refine`, which minimises ``L`` above).
"""

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

_LOSSES = ("cross_entropy", "nll", "bce_with_logits", "mse")


@dataclass
class NetSpec:
    """A fitted network in the terms the backend differentiates."""

    module: nn.Module
    loss: str  # one of _LOSSES, or "skorch_nll" (probabilities, log(p + eps))
    weight_decay: dict = field(default_factory=dict)  # parameter name -> wd
    classes: np.ndarray | None = None

    @property
    def classifier(self):
        return self.classes is not None

    @property
    def device(self):
        return next(self.module.parameters()).device

    @property
    def dtype(self):
        return next(self.module.parameters()).dtype


def per_sample_loss(kind, output, target):
    """Per-sample loss of a batch, shape (b,), as the training criterion saw it."""
    b = output.shape[0]
    if kind == "cross_entropy":
        return F.cross_entropy(output, target, reduction="none")
    if kind == "nll":
        return F.nll_loss(output, target, reduction="none")
    if kind == "skorch_nll":
        # skorch's NeuralNetClassifier feeds log(p + eps) to NLLLoss.
        eps = torch.finfo(output.dtype).eps
        return F.nll_loss(torch.log(output + eps), target, reduction="none")
    if kind == "bce_with_logits":
        return F.binary_cross_entropy_with_logits(
            output.reshape(b), target.reshape(b).to(output.dtype), reduction="none"
        )
    if kind == "mse":
        diff = output.reshape(b, -1) - target.reshape(b, -1).to(output.dtype)
        return (diff**2).mean(dim=1)
    raise ValueError(f"Unknown loss {kind!r}; expected one of {_LOSSES}.")


def _loss_kind(criterion, skorch_classifier):
    """The loss name of a criterion class or instance."""
    cls = criterion if isinstance(criterion, type) else type(criterion)
    if not isinstance(criterion, type):
        if getattr(criterion, "weight", None) is not None:
            raise ValueError("Class-weighted criteria are not supported.")
        if getattr(criterion, "label_smoothing", 0.0):
            raise ValueError("label_smoothing is not supported.")
        if getattr(criterion, "pos_weight", None) is not None:
            raise ValueError("BCEWithLogitsLoss(pos_weight=...) is not supported.")
    kinds = {
        nn.CrossEntropyLoss: "cross_entropy",
        nn.NLLLoss: "skorch_nll" if skorch_classifier else "nll",
        nn.BCEWithLogitsLoss: "bce_with_logits",
        nn.MSELoss: "mse",
    }
    for base, kind in kinds.items():
        if issubclass(cls, base):
            return kind
    raise TypeError(
        f"The torch backend supports the criteria CrossEntropyLoss, NLLLoss, "
        f"BCEWithLogitsLoss and MSELoss; got {cls.__name__}."
    )


def _optimizer_weight_decay(module, optimizer):
    """``{parameter name: coupled weight decay}`` as ``optimizer`` applied it."""
    names = {id(p): name for name, p in module.named_parameters()}
    decay = dict.fromkeys(names.values(), 0.0)
    for group in optimizer.param_groups:
        wd = float(group.get("weight_decay", 0.0) or 0.0)
        decoupled = isinstance(optimizer, torch.optim.AdamW) or group.get(
            "decoupled_weight_decay", False
        )
        if wd and decoupled:
            raise ValueError(
                f"{type(optimizer).__name__} applies decoupled weight decay "
                f"(weight_decay={wd}), which is not the gradient of any training "
                "objective, so influence is undefined. Train with coupled L2 "
                "decay (torch.optim.Adam or SGD with weight_decay), or explain "
                "the trained module as TorchModel(module, weight_decay=...) "
                "after skinfluence.torch.refine brings it to that objective's "
                "minimum."
            )
        for p in group["params"]:
            if id(p) in names:
                decay[names[id(p)]] = wd
    return decay


def _skorch_spec(net):
    check_is_fitted(net, "module_")
    if getattr(net, "train_split", None) is not None:
        raise ValueError(
            f"{type(net).__name__} has train_split={net.train_split!r}: it trained "
            "on a random part of the rows it was given, so its influence on the "
            "others is undefined. Pass train_split=None."
        )
    skorch_classifier = type(net).__name__ == "NeuralNetClassifier" or any(
        c.__name__ == "NeuralNetClassifier" for c in type(net).__mro__
    )
    kind = _loss_kind(net.criterion_, skorch_classifier)
    classes = getattr(net, "classes_", None)
    if kind == "bce_with_logits" and classes is None:
        classes = np.array([0, 1])
    if kind == "mse":
        classes = None
    return NetSpec(
        module=net.module_,
        loss=kind,
        weight_decay=_optimizer_weight_decay(net.module_, net.optimizer_),
        classes=None if classes is None else np.asarray(classes),
    )


def describe(model):
    """The :class:`NetSpec` of a fitted skorch net or :class:`TorchModel`."""
    if isinstance(model, TorchModel):
        check_is_fitted(model)
        return model.spec_
    if any(c.__module__.startswith("skorch") for c in type(model).__mro__):
        return _skorch_spec(model)
    raise TypeError(
        f"{type(model).__name__} is not a skorch net or a skinfluence.torch.TorchModel."
    )


class TorchModel(BaseEstimator):
    """A fitted ``torch.nn.Module`` and the loss it was trained on, for the explainer.

    For users without skorch: wrap the trained network so that
    :class:`~skinfluence.InfluenceExplainer` knows its training objective,
    ``1/n sum_i loss_i + 1/2 sum_j weight_decay_j theta_j^2``. ``fit`` does
    not train: it only checks the module and records the data's shape.

    Parameters
    ----------
    module : torch.nn.Module
        The trained network. It takes a float tensor of shape (b, n_features)
        (reshape inside, e.g. ``nn.Unflatten(1, (1, 8, 8))`` for images) and
        returns logits of shape (b, n_classes) (``'cross_entropy'``),
        log-probabilities (``'nll'``), one logit per row
        (``'bce_with_logits'``) or predictions (``'mse'``).
    loss : {'cross_entropy', 'nll', 'bce_with_logits', 'mse'}, \
            default='cross_entropy'
        The per-sample loss averaged in training (``'mse'`` averages over
        outputs, like ``nn.MSELoss``).
    weight_decay : float or dict, default=0.0
        The coupled L2 decay the optimizer applied (``weight_decay`` of SGD or
        Adam), one float for every parameter or ``{parameter name: float}``
        (missing names: 0), e.g. ``{'fc.weight': 1e-2}`` to leave a bias
        unpenalized.
    classes : array-like or None, default=None
        Class labels (targets are their positions ``0..K-1``); ``None``
        means ``0..K-1`` for the classification losses.

    Attributes
    ----------
    spec_ : NetSpec
    classes_ : ndarray, for classification losses.
    n_features_in_ : int

    Examples
    --------
    >>> import torch
    >>> from skinfluence.torch import TorchModel
    >>> net = torch.nn.Linear(3, 2).double()
    >>> model = TorchModel(net, loss="cross_entropy", weight_decay=1e-2)
    >>> X = torch.randn(5, 3).double().numpy()
    >>> model.fit(X, [0, 1, 0, 1, 1]).predict(X).shape
    (5,)
    """

    def __init__(self, module, *, loss="cross_entropy", weight_decay=0.0, classes=None):
        self.module = module
        self.loss = loss
        self.weight_decay = weight_decay
        self.classes = classes

    def fit(self, X, y=None):
        """Check the module and loss; the module is used as trained."""
        if not isinstance(self.module, nn.Module):
            raise TypeError(
                f"module must be a torch.nn.Module, got {type(self.module).__name__}."
            )
        if self.loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {self.loss!r}.")
        names = [name for name, _ in self.module.named_parameters()]
        if isinstance(self.weight_decay, dict):
            unknown = sorted(set(self.weight_decay) - set(names))
            if unknown:
                raise ValueError(
                    f"weight_decay names unknown parameters {unknown}; the module "
                    f"has {names}."
                )
            decay = {n: float(self.weight_decay.get(n, 0.0)) for n in names}
        else:
            decay = dict.fromkeys(names, float(self.weight_decay))
        if any(v < 0 for v in decay.values()):
            raise ValueError("weight_decay must be >= 0.")
        classes = None
        try:  # one row through the module: a mismatched X fails here, named
            k = self._n_outputs(X)
        except RuntimeError as exc:
            raise ValueError(
                f"The module cannot take X of shape {np.shape(X)}: {exc}. Check "
                "X's number of columns against the module's first layer."
            ) from None
        if self.loss in ("cross_entropy", "nll"):
            classes = np.arange(k) if self.classes is None else np.asarray(self.classes)
        elif self.loss == "bce_with_logits":
            classes = np.array([0, 1]) if self.classes is None else self.classes
        if classes is not None:
            self.classes_ = np.asarray(classes)
        self.spec_ = NetSpec(self.module, self.loss, decay, classes)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def _n_outputs(self, X):
        spec_dtype = next(self.module.parameters()).dtype
        device = next(self.module.parameters()).device
        x = torch.as_tensor(np.asarray(X)[:1], dtype=spec_dtype, device=device)
        with torch.no_grad():
            out = self.module.eval()(x)
        return out.shape[1] if out.ndim > 1 else 1

    def _forward(self, X):
        check_is_fitted(self)
        p = next(self.module.parameters())
        x = torch.as_tensor(np.asarray(X), dtype=p.dtype, device=p.device)
        with torch.no_grad():
            return self.module.eval()(x).cpu().numpy()

    def decision_function(self, X):
        """The module's outputs (logits), shape (n_samples, n_outputs)."""
        return self._forward(X)

    def predict_proba(self, X):
        """Class probabilities (classification losses only)."""
        out = torch.as_tensor(self._forward(X))
        if self.loss == "bce_with_logits":
            p = torch.sigmoid(out.reshape(-1))
            return torch.stack([1 - p, p], dim=1).numpy()
        if self.loss == "nll":
            return out.exp().numpy()
        if self.loss == "cross_entropy":
            return torch.softmax(out, dim=1).numpy()
        raise AttributeError("predict_proba needs a classification loss.")

    def predict(self, X):
        """Predicted class labels, or the outputs for ``loss='mse'``."""
        if self.loss == "mse":
            out = self._forward(X)
            return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def score(self, X, y):
        """Accuracy (classification) or R^2 (``loss='mse'``)."""
        mixin = RegressorMixin if self.loss == "mse" else ClassifierMixin
        return mixin.score(self, X, y)
