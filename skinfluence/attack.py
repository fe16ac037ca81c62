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
from .backends._base import check_finite_input
from .core import _formulas
from .exceptions import FlatLossWarning, StationarityWarning
from .solvers import HessianOperator, make_solver
from .svm._newton import newton_minimize
from .utils._checks import (
    fit_params_for,
    pandas_index,
    split_model,
    train_positions,
    warn_if_misaligned,
)
from .utils._progress import progress
from .utils._warn import caller_stacklevel

SELECTIONS = ("lookahead", "first_order", "influence", "nearest", "random")


@dataclass
class AttackResult:
    """What :func:`training_set_attack` did to each target.

    Targets are in the order of ``X_target``. Training rows are named as the
    training data names them: by their index labels when the explainer was
    fitted on a DataFrame (``X_train.loc[rows[j]]`` are target j's rows), by
    positions otherwise.

    Attributes
    ----------
    rows : ndarray of shape (n_targets, n_rows)
        The changed training rows, per target: index labels of the training
        data, or positions when it had no index.
    X_rows : ndarray of shape (n_targets, n_rows, n_features) or DataFrame
        Their final (perturbed) features. When the training data was a
        DataFrame: a DataFrame of ``n_targets * n_rows`` rows indexed by
        ``(target, train_row)`` (``targets`` and ``rows``' labels), with the
        training columns, so ``X_rows.loc[targets[j]]`` holds target j's rows
        by their training labels.
    flipped : ndarray of bool, shape (n_targets,)
        Whether the target ends up predicted as another class than
        ``y_target``: by the estimator refitted from scratch on the attacked
        training set, or, for targets ``already_flipped``, by the fitted model.
    n_iter : ndarray of shape (n_targets,)
        Steps taken (the attack stops at the first flip; 0 for targets
        ``already_flipped``).
    history : pandas.DataFrame
        One row per target and step (step 0: the unattacked model):
        ``target`` (as in ``targets``), ``step``, ``test_loss`` (at
        ``y_target``, after the refit), ``flipped``.
    already_flipped : ndarray of bool, shape (n_targets,)
        Targets the fitted model already predicts as another class than
        ``y_target`` before any row moves: flipped at step 0, so not attacked
        (their ``rows``, still chosen by the rule, are left unmoved) and left
        out of ``flip_rate``.
    targets : ndarray of shape (n_targets,)
        The targets' index labels in ``X_target``, or positions when it had
        no index.
    """

    rows: np.ndarray
    X_rows: np.ndarray | pd.DataFrame
    flipped: np.ndarray
    n_iter: np.ndarray
    history: pd.DataFrame
    already_flipped: np.ndarray | None = None
    targets: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.flipped)
        if self.already_flipped is None:
            self.already_flipped = np.zeros(n, dtype=bool)
        if self.targets is None:
            self.targets = np.arange(n)

    @property
    def flip_rate(self):
        """Share of the attacked targets whose prediction flipped.

        Over the targets the model classified as ``y_target`` before the
        attack (not ``already_flipped``); NaN when there are none.
        """
        attacked = np.asarray(self.flipped, dtype=bool)[~self.already_flipped]
        return float(attacked.mean()) if attacked.size else np.nan


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


def _attack_one(explainer, label, x, t, rows, already, params):
    epsilon, lo, hi, step, max_iter, refit, fast = params
    state = _State(explainer, fast)
    if fast:
        state._solver = explainer.solver_
    x0 = state.X[rows].copy()
    history = [(label, 0, state.loss(x, t), already)]
    if already:  # flipped at step 0: nothing to attack
        return x0, 0, history, state.X, state.obj, state._explainer
    low, high = np.maximum(x0 - epsilon, lo), np.minimum(x0 + epsilon, hi)
    P = state.pert(x, t, rows)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        state.X[rows] = np.clip(state.X[rows] + step * np.sign(P), low, high)
        if refit:
            state.refit()
        flipped = state.predicted(x) != t
        history.append((label, n_iter, state.loss(x, t), flipped))
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


def _warn_if_flat_targets(explainer, X_target, y_target, labels, by_label):
    """Warn about targets whose loss gives the attack no direction."""
    obj = explainer.objective_
    fmap = obj.feature_map
    Xt = X_target if fmap is None else fmap.transform(X_target)
    F = obj.family.gradient(obj.family.encode(y_target), obj.linear_predictor(Xt))
    flat = np.flatnonzero(_formulas.flat_outputs(F))
    if flat.size:
        warnings.warn(
            f"The loss of {flat.size} of {len(F)} targets (e.g. "
            f"{_target_name(labels, by_label, flat[0])}) is flat: its "
            "gradient is zero (a hinge-type loss outside the margin, or a "
            "label the model is certain of), which gives the attack no "
            "direction, so their rows do not move and their predictions do "
            "not flip. Attack targets near the decision boundary.",
            FlatLossWarning,
            stacklevel=caller_stacklevel(),
        )


def _warn_if_already_flipped(already, labels, by_label):
    """Warn about targets the model gets wrong before the attack."""
    if already.any():
        warnings.warn(
            f"{int(already.sum())} of {len(already)} targets (e.g. "
            f"{_target_name(labels, by_label, np.flatnonzero(already)[0])}) "
            "are already predicted as another class than y_target before "
            "any training row moves: they are reported flipped at step 0 "
            "(already_flipped), with n_iter 0 and their rows unmoved, and "
            "left out of flip_rate. To attack only the others, pass the "
            "targets where explainer.predict(X_target) == y_target.",
            UserWarning,
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


def _check_targets(explainer, X_target, y_target):
    """``(X, y, labels, by_label)``: dense float rows, ``y_target`` checked.

    ``labels`` name the targets: ``X_target``'s index labels (``by_label``),
    else positions.
    """
    if getattr(X_target, "ndim", 2) == 1:
        raise ValueError(
            "X_target must be 2-D, one row per target; got a 1-D "
            f"{type(X_target).__name__} of {len(X_target)} values. For one "
            "target pass X.iloc[[i]] (a DataFrame), or x.reshape(1, -1) for "
            "an array."
        )
    index = pandas_index(X_target)
    warn_if_misaligned(index, "X_target", y_target=y_target)
    try:
        X = explainer.model_input(X_target)
    except ValueError:
        check_finite_input(X_target, "X_target")  # that message, in our names
        raise
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    y = np.asarray(y_target)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            "y_target must be 1-d with one label per row of X_target "
            f"({X.shape[0]}), got shape {y.shape}."
        )
    labels = np.arange(X.shape[0]) if index is None else np.asarray(index)
    return X, y, labels, index is not None


def _target_name(labels, by_label, j):
    """Target j as messages name it."""
    if by_label:
        return f"the target labelled {labels[j : j + 1].tolist()[0]!r}"
    return f"target {j} (row {j} of X_target)"


def _check_selection(explainer, selection, n_targets, n_rows):
    """Row positions per target for an array ``selection``; None for a rule."""
    if isinstance(selection, str):
        if selection not in SELECTIONS:
            raise ValueError(
                f"selection must be one of {SELECTIONS} or an array of rows, "
                f"got {selection!r}."
            )
        return None
    try:
        chosen = np.asarray(selection)
    except ValueError:  # ragged lists
        chosen = np.asarray(selection, dtype=object)
    if chosen.shape != (n_targets, n_rows):
        raise ValueError(
            f"selection as an array must have shape (n_targets, n_rows) = "
            f"{(n_targets, n_rows)}, got {chosen.shape}: one row of n_rows "
            "training rows per target."
        )
    index = explainer.train_index_
    if chosen.dtype == bool or (
        index is None and not np.issubdtype(chosen.dtype, np.integer)
    ):
        kind = "positions (integers)" if index is None else "index labels"
        raise ValueError(
            f"selection must hold the training rows to change as {kind}, "
            f"as the training data names them; got {chosen.tolist()[0]} "
            f"(dtype {chosen.dtype})."
        )
    positions = train_positions(
        chosen.ravel(), index, explainer.n_train_, "selection"
    ).reshape(chosen.shape)
    for j, rows in enumerate(positions):
        if np.unique(rows).size < n_rows:
            raise ValueError(
                f"Row {j} of selection repeats a training row: "
                f"{chosen[j].tolist()}. Give n_rows={n_rows} different rows."
            )
    return positions


def _result(explainer, positions, runs, flipped, already, labels):
    """The AttackResult, rows named as the training data names them."""
    X_rows = np.stack([run[0] for run in runs])
    index = explainer.train_index_
    rows = positions if index is None else np.asarray(index)[positions]
    if index is not None:
        n_targets, n_rows, n_features = X_rows.shape
        names = getattr(explainer, "feature_names_in_", None)
        X_rows = pd.DataFrame(
            X_rows.reshape(n_targets * n_rows, n_features),
            index=pd.MultiIndex.from_arrays(
                [np.repeat(labels, n_rows), rows.ravel()],
                names=["target", "train_row"],
            ),
            columns=pd.RangeIndex(n_features) if names is None else names,
        )
    history = pd.DataFrame(
        [h for run in runs for h in run[2]],
        columns=["target", "step", "test_loss", "flipped"],
    )
    return AttackResult(
        rows=rows,
        X_rows=X_rows,
        flipped=flipped,
        n_iter=np.array([run[1] for run in runs]),
        history=history,
        already_flipped=already,
        targets=labels,
    )


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

    A target the fitted model already predicts as another class than its
    ``y_target`` is flipped before any step: it is reported so
    (``already_flipped``, ``flipped``, step 0 of ``history``), not attacked,
    left out of ``flip_rate``, and a warning counts such targets.

    Parameters
    ----------
    explainer : fitted InfluenceExplainer
        Of a classifier without a Pipeline prefix.
    X_target : array-like of shape (n_targets, n_features)
        A DataFrame's index labels name the targets in the result.
    y_target : array-like of shape (n_targets,)
        The targets' true labels: the attack flips the prediction away from
        them.
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
        - an array: the training rows to change for each target, named as
          the result's ``rows`` names them: index labels when the explainer
          was fitted on a DataFrame, positions otherwise.
    random_state : int, RandomState instance or None, default=None
        For ``selection='random'``.
    n_jobs : int, default=None
        Targets attacked in parallel (joblib).
    verbose : int, default=0
        1 shows progress over the targets (a tqdm bar when tqdm is installed).

    Returns
    -------
    AttackResult
        ``rows`` and ``X_rows`` name training rows by their index labels (and
        ``X_rows`` is a DataFrame with the training columns) when the
        explainer was fitted on a DataFrame; ``history`` names the targets by
        ``X_target``'s index labels when it has an index.

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
    X_target, y_target, labels, by_label = _check_targets(explainer, X_target, y_target)
    if hasattr(explainer.backend_.training_data()[0], "toarray"):
        raise ValueError("training_set_attack needs dense training data.")
    t_target = _class_positions(explainer, y_target)
    fast = (
        hasattr(explainer.objective_, "with_theta")
        and explainer.objective_.feature_map is None
        and _closed_form(explainer)
    )
    if _closed_form(explainer):
        _warn_if_flat_targets(explainer, X_target, y_target, labels, by_label)
    chosen = _check_selection(explainer, selection, X_target.shape[0], n_rows)
    rng = check_random_state(random_state)
    base = _State(explainer, fast)
    already = np.array(
        [base.predicted(x) != t for x, t in zip(X_target, t_target)], dtype=bool
    )
    _warn_if_already_flipped(already, labels, by_label)
    codes = _class_positions(explainer, _training_labels(explainer))
    row_sets = []
    for j, (x, t) in enumerate(zip(X_target, t_target)):
        if chosen is not None:
            row_sets.append(chosen[j])
            continue
        others = np.flatnonzero(codes != t)
        if others.size < n_rows:
            raise ValueError(
                f"n_rows={n_rows}, but only {others.size} training rows are of "
                "another class than the y_target of "
                f"{_target_name(labels, by_label, j)}; lower n_rows."
            )
        row_sets.append(
            _select(base, x, t, others, n_rows, selection, epsilon, lo, hi, rng)
        )
    params = (float(epsilon), lo, hi, step, max_iter, refit, fast)
    runs = Parallel(n_jobs=n_jobs)(
        delayed(_attack_one)(explainer, label, x, t, rows, wrong, params)
        for label, x, t, rows, wrong in progress(
            list(zip(labels, X_target, t_target, row_sets, already)),
            desc="training_set_attack targets",
            verbose=verbose,
        )
    )
    flipped = np.array(
        [
            wrong or _predicted_label(explainer, run[3], x, run[4], run[5]) != y
            for run, x, y, wrong in zip(runs, X_target, y_target, already)
        ],
        dtype=bool,
    )
    positions = np.vstack(row_sets).astype(np.intp)
    return _result(explainer, positions, runs, flipped, already, labels)
