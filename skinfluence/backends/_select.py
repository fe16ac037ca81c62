"""Which backend serves an explainer call: the closed forms, dask or torch.

Detection never imports the optional libraries: a dask collection is known by
its ``__dask_graph__``, a torch model by the module of its class.
"""

import functools
import inspect

from sklearn.utils.validation import check_is_fitted

from ..utils._checks import split_model


def is_dask(X):
    """Whether X is a dask collection (checked without importing dask)."""
    return callable(getattr(X, "__dask_graph__", None))


def is_torch_model(estimator):
    """A skorch net or a TorchModel (checked without importing torch)."""
    _, model = split_model(estimator)
    return any(
        c.__module__.startswith(("skorch", "skinfluence.torch"))
        for c in type(model).__mro__
    )


def torch_backend(method):
    """Run ``method`` on the torch backend (``backend_``) for torch models.

    The explainer validates ``X_test``/``X`` and applies any Pipeline prefix;
    only the arguments the caller passed are forwarded.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        on_torch = getattr(self, "backend_", None) is not None
        if not on_torch or _served_here(method, kwargs):
            return method(self, *args, **kwargs)
        check_is_fitted(self)
        passed = signature.bind(self, *args, **kwargs).arguments
        passed.pop("self")
        for name in ("X_test", "X"):
            if name in passed:
                if method.__name__ == "top_influential":
                    passed["test_index"] = getattr(passed[name], "index", None)
                    passed["train_index"] = self._index
                passed[name] = self._features(self._validate_test_X(passed[name]))
        return getattr(self.backend_, method.__name__)(**passed)

    return run


def _served_here(method, kwargs):
    """Calls the explainer serves itself, from the backend's influence blocks."""
    return method.__name__ == "top_influential" and kwargs.get("method") == "divine"
