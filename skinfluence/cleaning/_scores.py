"""How the detector scores each training row: its default model and methods."""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..exceptions import UnsupportedOperationError

METHODS = ("loo_loss", "self_influence", "training_loss")


def default_estimator(sparse=False):
    """The detector's default model: standardized L2 logistic regression."""
    return make_pipeline(
        StandardScaler(with_mean=not sparse),
        LogisticRegression(C=1.0, tol=1e-8, max_iter=5000),
    )


def score_rows(explainer, method):
    """``(scores, held-out outputs)`` for every training row; higher = suspect.

    Every score walks chunks of rows within ``working_memory`` (threads:
    ``explainer.n_jobs``), so the ``(n_train, n_params)`` Newton changes are
    never held.
    """
    backend = explainer.backend_
    if not backend.supports("training_problem"):  # else: held-out outputs served
        backend.require("held_out_outputs", "MislabelDetector")
    try:
        eta_loo = backend.loo_own_outputs()
    except UnsupportedOperationError:
        if method == "loo_loss":
            raise
        eta_loo = backend.training_outputs()  # iterative solver: full model's labels
    if method == "loo_loss":
        scores = backend.held_out_losses(eta_loo)
    elif method == "self_influence":
        scores = np.asarray(explainer.self_influence())  # an array in any output
    else:
        scores = backend.training_losses()
    return scores, eta_loo
