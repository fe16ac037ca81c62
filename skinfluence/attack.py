"""Training-set attacks (Koh & Liang 2017, section 5.2).

To flip a test prediction, a few training rows are moved (their labels kept)
by projected signed steps along ``I_pert,loss``, the gradient of the target's
test loss (at its true label) with respect to the rows' features, refitting
the model between steps. Each target is attacked on its own copy of the
training set.
"""

import copy
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .adapters._parameters import set_fitted_parameters
from .backends._base import check_test_labels
from .core import _formulas
from .exceptions import FlatLossWarning, StationarityWarning
from .solvers import HessianOperator, make_solver
from .svm._newton import newton_minimize
from .utils._checks import fit_params_for, split_model
from .utils._progress import progress
from .utils._warn import caller_stacklevel

SELECTIONS = ("lookahead", "first_order", "influence", "nearest", "random")


@dataclass
class AttackResult:
    """What :func:`training_set_attack` did to each target.

    Attributes
    ----------
    rows : ndarray of shape (n_targets, n_rows)
        Positions of the changed training rows, per target.
    X_rows : ndarray of shape (n_targets, n_rows, n_features)
        Their final (perturbed) features.
    flipped : ndarray of bool, shape (n_targets,)
        Whether the estimator refitted from scratch on the attacked training
        set predicts another class than ``y_target`` for the target.
    n_iter : ndarray of shape (n_targets,)
        Steps taken (the attack stops at the first flip).
    history : pandas.DataFrame
        One row per target and step (step 0: the unattacked model):
        ``target``, ``step``, ``test_loss`` (at the true label, after the
        refit), ``flipped``.
    """

    rows: np.ndarray
    X_rows: np.ndarray
    flipped: np.ndarray
    n_iter: np.ndarray
    history: pd.DataFrame

    @property
    def flip_rate(self):
        """Share of targets whose prediction flipped."""
        return float(np.mean(self.flipped)) if self.flipped.size else np.nan


class _State:
    """A model refitted on a modified training set, with its influence tools."""

    def __init__(self, explainer, fast):
        self.ex = explainer
        self.fast = fast
        self.obj = explainer.objective_
        X, self.y, self.weights = explainer.backend_.training_data()
        self.X = X.copy()
        self.target, self.sw = _target_and_sample_weight(explainer)
        self._solver = explainer.solver_
        self._explainer = explainer

    def refit(self):
        if self.fast:
            self.obj, _, _ = newton_minimize(
                self.obj, self.X, self.target, self.weights, tol=1e-12, max_iter=100
            )
            self._solver = None
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StationarityWarning)
            if not _closed_form(self.ex):
                self._explainer = _retrain_torch(self._explainer, self.X, self.y)
            else:
                self._explainer = clone(self.ex).fit(
                    self.X, self.y, sample_weight=self.sw
                )
        self.obj = self._explainer.objective_

    def solver(self):
        if self._solver is None:
            ex = self.ex
            self._solver = make_solver(
                "lowrank" if ex.solver == "arnoldi" else ex.solver,
                ex.damping,
                n_params=self.obj.n_params,
                n_samples=self.X.shape[0],
            ).fit(HessianOperator(self.obj, self.X, self.target, self.weights))
        return self._solver

    def features(self, X):
        fmap = self.obj.feature_map
        return X if fmap is None else fmap.transform(X)

    def eta(self, x):
        return self.obj.linear_predictor(self.features(x[None]))

    def loss(self, x, t):
        if not self.fast:
            return float(self._explainer.test_loss(x[None], self._label([t]))[0])
        return float(self.obj.family.loss(np.atleast_1d(t), self.eta(x))[0])

    def predicted(self, x):
        """Class position the current model predicts for x."""
        if not self.fast:
            label = self._explainer.predict(x[None])[0]
            return int(np.flatnonzero(np.asarray(self.ex.classes_) == label)[0])
        return int(_predicted_index(self.eta(x))[0])

    def pert(self, x, t, rows):
        """Change of the target's loss per unit move of each row: (len(rows), d)."""
        if not self.fast:
            label = self._label(np.atleast_1d(t))
            P = self._explainer.perturbation_influence(x[None], label)[0]
            P = P[rows]
        else:
            obj = self.obj
            F = obj.family.gradient(np.atleast_1d(t), obj.linear_predictor(x[None]))
            V = _formulas.test_directions(obj, self.solver(), x[None], F)
            P = -obj.perturbation_products(self.X[rows], self.target[rows], V)[:, 0]
        return P * (self.weights[rows] / self.weights.sum())[:, None]

    def _label(self, t):
        return np.asarray(self.ex.classes_)[np.asarray(t, dtype=int)]


def _closed_form(explainer):
    return explainer.backend_.supports("training_problem")


def _training_labels(explainer):
    return explainer.backend_.training_data()[1]


def _target_and_sample_weight(explainer):
    """Encoded training targets and sample weights (closed-form backends)."""
    if not _closed_form(explainer):
        return None, None
    problem = explainer.backend_.training_problem()
    return problem.target, problem.sample_weight


def _predicted_index(eta):
    return (eta[:, 0] > 0).astype(int) if eta.shape[1] == 1 else eta.argmax(1)


def _room(X, P, epsilon, lo, hi):
    """Distance each feature may move in the direction of P's sign."""
    up = np.minimum(epsilon, hi - X)
    down = np.minimum(epsilon, X - lo)
    return np.maximum(np.where(P > 0, up, down), 0.0)


def _select(state, x, t, others, n_rows, selection, epsilon, lo, hi, rng):
    X = state.X
    if selection == "random":
        return rng.choice(others, size=n_rows, replace=False)
    if selection == "nearest":
        d = ((X[others] - x) ** 2).sum(axis=1)
        return others[np.argsort(d, kind="stable")[:n_rows]]
    if selection == "influence":
        rows = np.arange(X.shape[0])
        norms = np.linalg.norm(state.pert(x, t, rows), axis=1)
        return rows[np.argsort(-norms, kind="stable")[:n_rows]]
    P = state.pert(x, t, others)
    gain = (np.abs(P) * _room(X[others], P, epsilon, lo, hi)).sum(axis=1)
    order = np.argsort(-gain, kind="stable")
    if selection == "first_order":
        return others[order[:n_rows]]
    pool = order[:40]
    ranked = _lookahead(state, x, t, others[pool], P[pool], epsilon, lo, hi)
    return others[pool][ranked[:n_rows]]


def _lookahead(state, x, t, rows, P, epsilon, lo, hi):
    """Order rows by the target's loss after refitting with each one moved.

    Each row goes to the linearized optimum (every feature as far as allowed
    in the direction of its ``I_pert`` sign), the model is refitted, and the
    target's loss read: the rows whose move pays off beyond first order come
    first.
    """
    X = state.X
    losses = np.empty(len(rows))
    for c, (row, p) in enumerate(zip(rows, P)):
        old = X[row].copy()
        X[row] = old + np.sign(p) * _room(old, p, epsilon, lo, hi)
        trial = copy.copy(state)  # shares X, refits its own model
        trial.refit()
        losses[c] = trial.loss(x, t)
        X[row] = old
    return np.argsort(-losses, kind="stable")


def _attack_one(explainer, j, x, t, rows, params):
    epsilon, lo, hi, step, max_iter, refit, fast = params
    state = _State(explainer, fast)
    if fast:
        state._solver = explainer.solver_
    x0 = state.X[rows].copy()
    low, high = np.maximum(x0 - epsilon, lo), np.minimum(x0 + epsilon, hi)
    history = [(j, 0, state.loss(x, t), False)]
    P = state.pert(x, t, rows)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        state.X[rows] = np.clip(state.X[rows] + step * np.sign(P), low, high)
        if refit:
            state.refit()
        flipped = state.predicted(x) != t
        history.append((j, n_iter, state.loss(x, t), flipped))
        if flipped and refit:
            break
        if refit:
            P = state.pert(x, t, rows)
    return state.X[rows].copy(), n_iter, history, state.X, state.obj, state._explainer


def _retrain_torch(explainer, X, y):
    """A copy of a torch model trained on to stationarity on ``(X, y)``.

    Full-batch L-BFGS from the current parameters (as the paper retrains its
    networks), then a new explainer on the retrained copy.
    """
    from sklearn.frozen import FrozenEstimator

    from .torch import refine

    _, model = split_model(explainer.estimator_)
    model = copy.deepcopy(model)
    refine(model, X, y, params=explainer.params)
    frozen = clone(explainer).set_params(estimator=FrozenEstimator(model))
    return frozen.fit(X, y)


def _predicted_label(explainer, X, x, objective, state_explainer):
    """The label the attacked model predicts for x (see _flipped_by_refit)."""
    if not _closed_form(explainer):
        # Torch: the last retraining is the refit (non-convex: no fresh start).
        if state_explainer is explainer:
            state_explainer = _retrain_torch(explainer, X, _training_labels(explainer))
        return state_explainer.predict(x[None])[0]
    return _flipped_by_refit(explainer, X, x, objective)


def _flipped_by_refit(explainer, X, x, objective):
    """The estimator's own prediction for x after fitting it on the attacked X.

    Where the estimator takes ``warm_start``, it starts from the attack's
    last refit (the objective's parameters) where they can be written back,
    else from its own fit; its solver then only confirms the optimum, the
    same as from scratch (convex objective).
    """
    _, fitted = split_model(explainer.estimator_)
    if "warm_start" in fitted.get_params():
        model = copy.deepcopy(fitted).set_params(warm_start=True)
        set_fitted_parameters(model, objective)
    else:
        model = clone(fitted)
    _, sw = _target_and_sample_weight(explainer)
    model.fit(X, _training_labels(explainer), **fit_params_for(model, sw))
    return model.predict(x[None])[0]


def _warn_if_flat_targets(explainer, X_target, y_target):
    """Warn about targets whose loss gives the attack no direction."""
    obj = explainer.objective_
    fmap = obj.feature_map
    Xt = X_target if fmap is None else fmap.transform(X_target)
    F = obj.family.gradient(obj.family.encode(y_target), obj.linear_predictor(Xt))
    flat = np.flatnonzero(_formulas.flat_outputs(F))
    if flat.size:
        warnings.warn(
            f"The loss of {flat.size} of {len(F)} targets (e.g. target "
            f"{int(flat[0])}) is flat: its gradient is zero (a hinge-type "
            "loss outside the margin, or a label the model is certain of), "
            "which gives the attack no direction, so their rows do not move "
            "and their predictions do not flip. Attack targets near the "
            "decision boundary.",
            FlatLossWarning,
            stacklevel=caller_stacklevel(),
        )


def _class_positions(explainer, labels):
    """Position of each label in ``explainer.classes_``."""
    lookup = {c: i for i, c in enumerate(np.asarray(explainer.classes_).tolist())}
    labels = np.asarray(labels).tolist()
    unknown = sorted({c for c in labels if c not in lookup}, key=str)
    if unknown:
        raise ValueError(f"y_target holds labels unseen in training: {unknown}.")
    return np.array([lookup[c] for c in labels], dtype=int)


def _check_params(explainer, n_rows, epsilon, feature_range, max_iter, step_size):
    check_is_fitted(explainer)
    if not is_classifier(explainer) and getattr(explainer, "classes_", None) is None:
        raise ValueError("training_set_attack flips a classifier's predictions.")
    if split_model(explainer.estimator_)[0] is not None:
        raise ValueError(
            "training_set_attack moves the rows the final estimator sees; a "
            "Pipeline prefix would have to be inverted. Explain the final "
            "estimator on the transformed data instead."
        )
    if not isinstance(n_rows, Integral) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}.")
    if not isinstance(epsilon, Real) or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}.")
    if not isinstance(max_iter, Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
    lo, hi = (-np.inf, np.inf) if feature_range is None else feature_range
    if not lo < hi:
        raise ValueError(f"feature_range must be (low, high), got {feature_range!r}.")
    step = epsilon / 10 if step_size is None else step_size
    if not isinstance(step, Real) or not step > 0:
        raise ValueError(f"step_size must be a positive number, got {step_size!r}.")
    return float(lo), float(hi), float(step)


def training_set_attack(
    explainer,
    X_target,
    y_target,
    *,
    n_rows=1,
    epsilon=1.0,
    feature_range=None,
    max_iter=50,
    step_size=None,
    refit=True,
    selection="lookahead",
    random_state=None,
    n_jobs=None,
    verbose=0,
):
    """Move a few training rows, within ``epsilon``, to flip each target.

    For each target (on its own copy of the training set) ``n_rows`` rows are
    chosen, then moved by ``x <- clip(x + step_size * sign(I_pert,loss))``,
    clipped to the L-infinity ball of radius ``epsilon`` around their original
    values and to ``feature_range``, the model refitted after each step, until
    the target's prediction flips or ``max_iter`` steps. ``I_pert,loss`` is the
    gradient of the target's loss at its *true* label with respect to the
    rows' features, so each step raises that loss. Labels never change.

    Parameters
    ----------
    explainer : fitted InfluenceExplainer
        Of a classifier without a Pipeline prefix.
    X_target : array-like of shape (n_targets, n_features)
    y_target : array-like of shape (n_targets,)
        The targets' true labels.
    n_rows : int, default=1
        Training rows changed per target.
    epsilon : float, default=1.0
        L-infinity radius of each row's change.
    feature_range : (float, float), default=None
        Valid feature values (e.g. ``(0, 16)`` for digits' pixels).
    max_iter : int, default=50
    step_size : float, default=None
        Step per iteration; ``epsilon / 10`` by default (full ``epsilon``
        steps oscillate between the corners of the box).
    refit : bool, default=True
        Refit between steps. Linear-output models without a feature map are
        refitted by Newton's method on the estimator's own objective from the
        previous optimum (the same optimum, in milliseconds); others by
        refitting a clone of the explainer; torch models by full-batch
        L-BFGS from the current parameters (:func:`skinfluence.torch.refine`,
        as the paper retrains its networks). ``False``: steps along the
        unattacked model's ``I_pert,loss`` for all ``max_iter`` steps.
        ``flipped`` comes from a clone of the estimator fitted on the attacked
        data (for torch models: the last retraining, since a non-convex fit
        from scratch would land elsewhere).
    selection : {'lookahead', 'first_order', 'influence', 'nearest', 'random'} \
            or array-like of shape (n_targets, n_rows), default='lookahead'
        How rows are chosen:

        - ``'first_order'``: rows of another class than the target, ranked by
          ``sum_j |I_pert,j| * room_j``, the largest rise of the target's loss
          that the linearized model predicts within the box (``room_j``: how
          far feature j may move in the helpful direction).
        - ``'lookahead'``: the 40 best by ``'first_order'``, re-ranked by
          the target's loss after refitting with the row moved to that
          linearized optimum (one refit per candidate): it sees how the row's
          own fit, and so its pull on the model, grows as it moves.
        - ``'influence'``: the paper's largest ``||I_pert,loss||``, any class.
        - ``'nearest'``: the rows of another class nearest to the target.
        - ``'random'``: random rows of another class.
        - an array: the row positions to change for each target.
    random_state : int, RandomState instance or None, default=None
        For ``selection='random'``.
    n_jobs : int, default=None
        Targets attacked in parallel (joblib).
    verbose : int, default=0
        1 shows progress over the targets (a tqdm bar when tqdm is installed).

    Returns
    -------
    AttackResult

    References
    ----------
    Koh, P. W. and Liang, P. (2017). Understanding Black-box Predictions via
    Influence Functions. ICML, section 5.2.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skinfluence import InfluenceExplainer, training_set_attack
    >>> X, y = load_digits(n_class=2, return_X_y=True)
    >>> explainer = InfluenceExplainer(LogisticRegression(tol=1e-8, max_iter=5000))
    >>> explainer = explainer.fit(X[::2], y[::2])
    >>> result = training_set_attack(
    ...     explainer, X[1:9:2], y[1:9:2], n_rows=2, epsilon=6,
    ...     feature_range=(0, 16),
    ... )
    >>> result.rows.shape, result.X_rows.shape
    ((4, 2), (4, 2, 64))
    >>> bool(np.abs(result.X_rows - X[::2][result.rows]).max() <= 6)
    True
    """
    lo, hi, step = _check_params(
        explainer, n_rows, epsilon, feature_range, max_iter, step_size
    )
    X_target = explainer.model_input(X_target)
    X_target = X_target.toarray() if hasattr(X_target, "toarray") else X_target
    X_target = np.asarray(X_target, dtype=np.float64)
    X_train = explainer.backend_.training_data()[0]
    if hasattr(X_train, "toarray"):
        raise ValueError("training_set_attack needs dense training data.")
    y_target = check_test_labels(y_target, X_target.shape[0])
    t_target = _class_positions(explainer, y_target)
    fast = (
        hasattr(explainer.objective_, "with_theta")
        and explainer.objective_.feature_map is None
        and _closed_form(explainer)
    )
    if _closed_form(explainer):
        _warn_if_flat_targets(explainer, X_target, y_target)
    if isinstance(selection, str):
        if selection not in SELECTIONS:
            raise ValueError(
                f"selection must be one of {SELECTIONS} or an array of rows, "
                f"got {selection!r}."
            )
    else:
        chosen = np.asarray(selection, dtype=int)
        if chosen.shape != (X_target.shape[0], n_rows):
            raise ValueError(
                f"selection as an array must have shape (n_targets, n_rows) = "
                f"{(X_target.shape[0], n_rows)}, got {chosen.shape}."
            )
    rng = check_random_state(random_state)
    base = _State(explainer, fast)
    codes = _class_positions(explainer, _training_labels(explainer))
    row_sets = []
    for j, (x, t) in enumerate(zip(X_target, t_target)):
        if not isinstance(selection, str):
            row_sets.append(chosen[j])
            continue
        others = np.flatnonzero(codes != t)
        if others.size < n_rows:
            raise ValueError(f"Fewer than n_rows={n_rows} rows of another class.")
        row_sets.append(
            _select(base, x, t, others, n_rows, selection, epsilon, lo, hi, rng)
        )
    params = (float(epsilon), lo, hi, step, max_iter, refit, fast)
    runs = Parallel(n_jobs=n_jobs)(
        delayed(_attack_one)(explainer, j, x, t, rows, params)
        for j, (x, t, rows) in progress(
            list(enumerate(zip(X_target, t_target, row_sets))),
            desc="training_set_attack targets",
            verbose=verbose,
        )
    )
    flipped = np.array(
        [
            _predicted_label(explainer, run[3], x, run[4], run[5]) != y
            for run, x, y in zip(runs, X_target, np.asarray(y_target))
        ],
        dtype=bool,
    )
    history = pd.DataFrame(
        [h for run in runs for h in run[2]],
        columns=["target", "step", "test_loss", "flipped"],
    )
    return AttackResult(
        rows=np.vstack(row_sets).astype(int),
        X_rows=np.stack([run[0] for run in runs]),
        flipped=flipped,
        n_iter=np.array([run[1] for run in runs]),
        history=history,
    )
