"""MislabelDetector: rows whose labels a held-out model finds wrong."""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..backends import is_torch_model
from ..exceptions import OverCleaningWarning
from ..explainer import InfluenceExplainer
from ..utils._checks import (
    REPEATED_INDEX,
    pandas_index,
    split_model,
    warn_if_misaligned,
    warn_if_repeated,
)
from ..utils._labels import encode_labels
from ..utils._output import PandasOutputMixin
from ..utils._progress import progress_bar, stage
from ..utils._warn import caller_stacklevel
from ._noise import EVIDENCE_LIMIT, NoiseModel, fit_noise_model, label_evidence
from ._scores import METHODS, default_estimator, score_rows

#: 'auto' flags a row once the odds that its label is wrong reach 2 to 1.
MIN_POSTERIOR = 2 / 3

#: Later rounds refit without the rows the held-out model contradicts whose
#: label is wrong at odds of at least 1 to 4: a suspect row left in the refit
#: still masks its neighbours, while a correct row left out costs only a
#: little sharpness (it is scored by the refit, which never saw it).
REFIT_POSTERIOR = 1 / 5


def _per_row_attribute(name, label):
    """A fitted per-row array, returned through :meth:`_per_row` (pandas output)."""

    def get(self):
        check_is_fitted(self)
        return self._per_row(getattr(self, name), self._index, label)

    return property(get)


class MislabelDetector(PandasOutputMixin, BaseEstimator):
    """Find training rows whose label is probably wrong, and clean them.

    Fits an :class:`~skinfluence.InfluenceExplainer` on the data and scores every row:

    - ``'loo_loss'`` (default): the row's loss under the model fitted
      *without* it, from one exact Newton step per row (a Woodbury update, no
      refits). A mislabeled row is one the rest of the data cannot explain.
      It needs the dense inverse Hessian (with the default solver: models
      up to 5,000 parameters, or up to 8,192 where the Woodbury identity
      does not apply and the matrix fits in a quarter of memory); beyond
      that use ``'self_influence'``, whose suggested labels are then the full model's
      predictions. For boosted trees, half of it is the row's held-out loss
      averaged over the boosting rounds (a wrong label is fitted late, if at
      all).
    - ``'self_influence'``: ``g_i' H^-1 g_i``, Koh & Liang's ranking.
    - ``'training_loss'``: the row's loss under the full model.

    Implements the imbalanced-learn sampler interface: ``fit_resample``
    returns the cleaned data, so the detector is a step of
    ``imblearn.pipeline.Pipeline``; for plain scikit-learn pipelines and
    grid searches, use :class:`CleanLabelsClassifier`.

    Parameters
    ----------
    estimator : classifier, default=None
        Any classifier the explainer supports (or a Pipeline ending in one)
        but a neural network, which has no held-out outputs to score by.
        None: ``StandardScaler`` followed by ``LogisticRegression(C=1)``.
    method : {'loo_loss', 'self_influence', 'training_loss'}, default='loo_loss'
        The first round's score (see above). Later rounds rank every row by
        its held-out loss whatever the method, so another method changes the
        result only with ``n_rounds=1`` (or when the rounds stop after the
        first); otherwise the detector warns that it was unused.
    contamination : 'auto' or float in (0, 0.5], default='auto'
        Share of rows to flag. 'auto': the rows whose held-out prediction is
        another class and whose ``mislabel_probability_`` is at least 2/3
        (odds of 2 to 1 that the label is wrong), under a label-noise model
        fitted to the held-out outputs (see Notes); ``noise_rate_`` is that
        model's estimate of the share of wrong labels. A boosted tree
        ensemble's held-out probabilities hide most wrong labels from that
        model, so with one 'auto' flags few rows or none, and warns: pass the
        share to flag.
    threshold : float, default=None
        Flag rows scoring above it instead (overrides ``contamination``).
    action : {'drop', 'relabel', 'flag'}, default='drop'
        What ``fit_resample`` does with flagged rows: remove them, replace
        their label by ``suggested_labels_``, or nothing (only report).
    n_rounds : int, default=3
        Rounds of scoring. After the first, each round refits without the
        rows the previous one found suspect (held-out prediction another
        class, ``mislabel_probability_`` above 1/5), by
        L-BFGS from the fitted optimum, preconditioned by the exact Hessian's
        Cholesky factor, or by its diagonal for iterative solvers (no new
        explainer, the feature map of a Pipeline kept); it rescores every row
        by a model that never saw it: flagged rows by their loss under the
        refit, the others by their held-out loss under it (their first-round
        leave-one-out change added), and refits the noise model's
        temperature to these outputs. The rate stays the first round's,
        estimated once from the exact leave-one-out outputs of the model
        fitted on every row: a refit without the flagged rows is sharper, and
        its rescaled outputs would trade rate for temperature (taking more
        hard rows for errors on hard tasks, fewer wrong labels on small easy
        ones). Mislabeled rows no longer mask one another.
        Rounds stop early once the flags repeat, or when there are none. On
        the bundled benchmark three rounds find more flipped labels than one
        (see the README). After the first round ``method`` picks nothing:
        every method ends ranked by held-out loss. 1: the ``method`` scores
        of the model fitted on all rows.
    tol : float, default=1e-3
        When a later round's refit stops: every component of its gradient, in
        coordinates where the full model's Hessian is the identity, below
        ``tol``. The default suffices to rank (the objective is then within
        about ``tol**2 * n_params / 2`` of its minimum; on nearly separable
        data a row's loss may still be off by a few hundredths); lower it for
        scores closer to an exact refit, at more iterations.
    n_jobs : int, default=None
        Threads for the loops over chunks of rows (the explainer's
        ``n_jobs``); None means 1.
    verbose : int, default=0
        1 shows progress on standard error: the model's fit, then a bar over
        the ``n_rounds`` rounds with a line per round (the held-out scores,
        each refit). When the rounds stop early the bar ends at the rounds
        run (``n_rounds_``) and says why. tqdm draws the bar when installed,
        else plain lines.

    Attributes
    ----------
    explainer_ : InfluenceExplainer
    n_rounds_ : int
        Rounds run (fewer than ``n_rounds`` when the flags repeated, nothing
        was flagged, or a class would have kept fewer than 2 rows).
    scores_ : ndarray or Series of shape (n_samples,)
        Higher means more likely mislabeled.
    ranking_ : ndarray of shape (n_samples,)
        Row positions sorted from most to least suspicious.
    label_issues_ : ndarray or Series of bool, shape (n_samples,)
    suggested_labels_ : ndarray or Series of shape (n_samples,)
        The class the model fitted without each row predicts for it. For a
        boosted tree ensemble, whose held-out prediction mostly repeats the
        given label (the structure was grown with the row), a flagged row
        gets the most probable other class instead.
    noise_rate_ : float
        Estimated share of wrong labels (the noise model's rate, see Notes);
        NaN, with a warning, when the held-out outputs explain the labels no
        better than the class shares (``label_evidence``), as a model at
        chance level does.
        Dropping or relabeling clearly more rows than ``noise_rate_ *
        n_samples`` raises an :class:`~skinfluence.exceptions.OverCleaningWarning`.
    mislabel_probability_ : ndarray or Series of shape (n_samples,)
        Each row's probability that its label is wrong under the noise model.
    sample_indices_ : ndarray
        Positions of the rows ``fit_resample`` returned.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has string column names.

    Notes
    -----
    With ``set_output`` ``(transform="pandas")`` (or
    ``sklearn.set_config(transform_output="pandas")``), the four per-row
    attributes ``scores_``, ``label_issues_``, ``suggested_labels_`` and
    ``mislabel_probability_`` are Series indexed by the training rows' index
    labels (positions when ``X`` had no index), named ``score``,
    ``label_issue``, ``suggested_label`` and ``mislabel_probability`` as the
    columns of :meth:`get_label_issues`; the setting is read when the
    attribute is read. ``ranking_`` and ``sample_indices_`` hold positions
    and stay arrays.

    Flagging every row the held-out model misclassifies removes honest
    ambiguity with the errors: on a task the model gets 77% right, a quarter
    of the rows. Confident learning's per-class thresholds (cleanlab's
    ``find_label_issues``) still flag about as many rows there, at low
    precision. 'auto' instead fits, by maximum
    likelihood on the held-out outputs ``eta``, a model of how the given
    labels arose: with probability ``1 - noise_rate_`` from the recalibrated
    probabilities ``softmax(temperature * eta)`` (sigmoid for two classes),
    else uniformly from the other classes. The temperature absorbs the
    flattening that wrong labels cause in the fit, so the rate is not taken
    for ambiguity; the rate lives in the rows the model is confident about,
    where a calibrated model makes few mistakes. Each row's posterior
    probability of a wrong label follows from Bayes' rule. A row the model
    finds hard (held-out probability of its label near 1/2) never reaches
    odds of 2 to 1, so a model that cannot tell errors from hard rows flags
    few rows. Odds of 2 to 1 rather than even: on the benchmark's hard task
    (a model 70% right, no flips) even odds flag about 6% of the rows, 2 to 1
    about 3%, and the flagged sets of the easy datasets barely change. The
    uniform model is the benchmark's flips. Labels moved between particular
    classes (class a recorded as b) can escape it: in one draw of 15 of
    wine's labels moved 0 -> 1 -> 2 -> 0, the held-out model contradicts all
    15 and 'auto' flags none. When 'auto' flags under a quarter of the rows
    the held-out model contradicts (at least 5%), the detector warns; the
    ranking (``contamination``) still finds such rows. When the linear model
    is misspecified (heavier tails than logistic), some hard rows look like errors, and
    ``noise_rate_`` is then an overestimate. For hinge models the outputs are
    margins, which the temperature rescales.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from skinfluence import MislabelDetector
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> flipped = np.random.default_rng(0).choice(len(y), 57, replace=False)
    >>> noisy = y.copy()
    >>> noisy[flipped] = 1 - noisy[flipped]  # 10% of the labels
    >>> detector = MislabelDetector().fit(X, noisy)
    >>> round(detector.noise_rate_, 2)
    0.1
    >>> int(detector.label_issues_.sum()), int(detector.label_issues_[flipped].sum())
    (53, 49)

    Per-row results indexed by the rows' labels:

    >>> import pandas as pd
    >>> frame = pd.DataFrame(X).set_axis([f"patient{i}" for i in range(len(X))])
    >>> _ = detector.set_output(transform="pandas").fit(frame, noisy)
    >>> detector.scores_.nlargest(2).round(1)
    patient461    52.4
    patient265    30.5
    Name: score, dtype: float64
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"]), None],
        "method": [StrOptions(set(METHODS))],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "threshold": [Interval(Real, None, None, closed="neither"), None],
        "action": [StrOptions({"drop", "relabel", "flag"})],
        "n_rounds": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        method="loo_loss",
        contamination="auto",
        threshold=None,
        action="drop",
        n_rounds=3,
        tol=1e-3,
        n_jobs=None,
        verbose=0,
    ):
        self.estimator = estimator
        self.method = method
        self.contamination = contamination
        self.threshold = threshold
        self.n_rounds = n_rounds
        self.tol = tol
        self.action = action
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Score every row of ``(X, y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MislabelDetector
        """
        if y is None:
            raise ValueError(
                "MislabelDetector requires y to be passed, but the target y is None."
            )
        y_arr = _label_array(y)
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = column_or_1d(y_arr, warn=True)
        if y_arr.ndim != 1:
            raise ValueError(f"y must be 1-d, got shape {y_arr.shape}.")
        if pd.isna(pd.Series(y_arr)).any():
            raise ValueError(
                "y contains missing labels (NaN); drop or fill those rows first."
            )
        check_classification_targets(y_arr)
        present = y_arr
        if sample_weight is not None:
            # Rows of weight 0 do not count: a class seen only there is absent.
            sw = np.asarray(sample_weight, dtype=float)
            if sw.shape == y_arr.shape and not np.any(sw > 0):
                raise ValueError("All sample weights are zero: nothing to fit.")
            if sw.shape == y_arr.shape:
                present = y_arr[sw > 0]
        classes, counts = np.unique(present, return_counts=True)
        if len(classes) < 2:
            raise ValueError(
                "MislabelDetector needs at least 2 classes; y holds only one "
                f"class: {classes.tolist()}."
            )
        if counts.min() < 2:
            rare = classes[counts < 2].tolist()
            if len(classes) > 20 and len(rare) >= len(classes) / 4:
                raise ValueError(
                    f"y holds {len(classes)} distinct values in {len(y_arr)} "
                    f"rows, {len(rare)} of them seen once (e.g. {rare[:3]}): "
                    "it looks like a continuous target. MislabelDetector "
                    "finds wrong class labels; bin a regression target into "
                    "classes first."
                )
            shown = f"{rare[:10]}{' ...' if len(rare) > 10 else ''}"
            raise ValueError(
                f"Classes {shown} have fewer than 2 rows: a held-out prediction "
                "cannot recover a class seen once. Remove or merge them."
            )
        index = pandas_index(X)
        warn_if_misaligned(index, y=y, sample_weight=sample_weight)
        if self.estimator is not None and is_torch_model(self.estimator):
            raise TypeError(
                f"MislabelDetector scores rows by the held-out outputs of a "
                f"linear-output model or a boosted tree ensemble; "
                f"{type(split_model(self.estimator)[1]).__name__} is a neural "
                "network, which has none. Rank its rows by "
                "InfluenceExplainer(model).top_self_influence() instead."
            )
        estimator = (
            default_estimator(sp.issparse(X))
            if self.estimator is None
            else self.estimator
        )
        with warnings.catch_warnings():
            # The explainer's wording names its own methods; ours follows.
            warnings.filterwarnings("ignore", REPEATED_INDEX)
            self.explainer_ = InfluenceExplainer(
                estimator, n_jobs=self.n_jobs, verbose=self.verbose
            ).fit(
                X, y_arr, None if sample_weight is None else np.asarray(sample_weight)
            )
        warn_if_repeated(
            index,
            "the indexes of scores_ and the other per-row attributes (with "
            "pandas output) and the 'row' column of get_label_issues()",
        )
        family = self.explainer_.objective_.family
        if getattr(family, "classes", None) is None:
            raise ValueError(
                "MislabelDetector needs a classifier; "
                f"{type(estimator).__name__} is a regressor."
            )
        self.classes_ = family.classes
        self.n_features_in_ = self.explainer_.n_features_in_
        if hasattr(self.explainer_, "feature_names_in_"):
            self.feature_names_in_ = self.explainer_.feature_names_in_
        t = encode_labels(y_arr, self.classes_)
        rounds = progress_bar(
            "MislabelDetector rounds", total=self.n_rounds, verbose=self.verbose
        )
        with rounds:
            stage(f"round 1: held-out scores ({self.method})", self.verbose)
            self._scores, eta_loo = score_rows(self.explainer_, self.method)
            self.n_rounds_ = 1
            noise = fit_noise_model(eta_loo, t)
            informative = self._check_evidence(eta_loo, t, noise)
            if not informative:
                noise = NoiseModel(np.nan, noise.temperature, np.full(len(t), np.nan))
            rounds.update()
            if self.n_rounds > 1 and informative:
                self._scores, eta_loo, noise = self._later_rounds(
                    t, eta_loo, noise, rounds
                )
        self._suggested_labels = self._suggest(eta_loo)
        self.noise_rate_ = noise.rate
        self._mislabel_probability = noise.posterior
        self.ranking_ = np.argsort(-self._scores, kind="stable")
        self._y = y_arr
        self._label_issues = self._flag(y_arr)
        self._repeats_label = np.zeros(len(y_arr), dtype=bool)
        if not self.explainer_.backend_.calibrated_held_out:
            self._suggest_other_classes(eta_loo, t)
        self._index = pandas_index(X)
        self._warn_about_auto()
        if self.n_rounds_ > 1 and self.method != "loo_loss":
            warnings.warn(
                f"method={self.method!r} scored the first round only: after "
                f"{self.n_rounds_} rounds every row is ranked by its held-out "
                "loss, whatever the method. Pass n_rounds=1 to rank by "
                f"{self.method!r}.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        return self

    def _check_evidence(self, eta, t, noise):
        """Whether the held-out outputs tell anything about the labels; warns if
        not (a model at chance level: every row looks as odd as any other)."""
        evidence = label_evidence(eta, t, noise)
        if evidence >= EVIDENCE_LIMIT:
            return True
        accuracy = float(np.mean(self._suggest(eta) == self.classes_[t]))
        majority = float(np.bincount(t).max() / len(t))
        outcome = (
            "contamination='auto' flags none"
            if self.contamination == "auto" and self.threshold is None
            else "the rows it flags are no likelier mislabeled than the others"
        )
        warnings.warn(
            f"The held-out model explains the labels no better than the class "
            f"shares do (held-out accuracy {accuracy:.3f}, the largest class "
            f"{majority:.3f}; likelihood-ratio statistic {evidence:.3g} < "
            f"{EVIDENCE_LIMIT:.3g}): it cannot tell a wrong label from a hard "
            f"row, so {outcome}, noise_rate_ and mislabel_probability_ are NaN "
            "and no later round runs. Use a model that predicts these labels "
            "(e.g. more regularization, C smaller, when there are more "
            "features than rows).",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
        return False

    def _suggest_other_classes(self, eta, t):
        """Flagged rows whose held-out prediction is their label: the likeliest
        other class under the held-out outputs.

        The ranking says which rows are suspect; outputs that repeat every
        row's label (a tree ensemble's) still say which other class is
        likeliest.
        """
        repeats = self._label_issues & (self._suggested_labels == self._y)
        if eta.shape[1] == 1:
            other = 1 - t
        else:
            masked = eta.copy()
            masked[np.arange(len(t)), t] = -np.inf
            other = masked.argmax(axis=1)
        self._suggested_labels = np.where(
            repeats, self.classes_[other], self._suggested_labels
        )
        self._repeats_label = repeats

    def _warn_about_auto(self):
        """Warn where 'auto' cannot be trusted to have found the wrong labels.

        Outputs that cannot give a noise rate (a tree ensemble's, whose
        structure was grown with every row), and, elsewhere, a held-out model
        that contradicts many labels 'auto' leaves unflagged: hard rows to the
        noise model, which spreads wrong labels evenly over the other classes,
        so labels moved between two particular classes can look the same.
        """
        if self.threshold is not None or self.contamination != "auto":
            return
        if np.isnan(self.noise_rate_):  # no noise model: fit said why
            return
        backend = self.explainer_.backend_
        n, flagged = len(self._y), int(self._label_issues.sum())
        if not backend.calibrated_held_out:
            message = (
                f"contamination='auto' flagged {flagged} of {n} rows "
                f"(noise_rate_={self.noise_rate_:.3g}): the {backend.name} "
                "backend's held-out probabilities come from a structure grown "
                "with every row, which hides most wrong labels from the noise "
                "model behind 'auto'. The ranking (scores_, ranking_) still "
                "finds them: pass contamination=<share of rows to flag>, e.g. "
                "0.05, or threshold=<score>."
            )
        else:
            disagree = int(np.sum(self._suggested_labels != self._y))
            if disagree < max(5, 0.05 * n) or flagged >= disagree / 4:
                return
            message = (
                f"contamination='auto' flagged {flagged} of {n} rows, but the "
                f"held-out model predicts another class for {disagree} "
                f"({disagree / n:.1%}). 'auto' flags only the rows its noise "
                "model (wrong labels spread evenly over the other classes) "
                "finds likelier wrong than hard; on few rows, or with labels "
                "moved between two particular classes, it flags few of them. "
                "To review them, use contamination=<share of rows> with "
                "action='flag', then get_label_issues()."
            )
        warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())

    scores_ = _per_row_attribute("_scores", "score")
    label_issues_ = _per_row_attribute("_label_issues", "label_issue")
    suggested_labels_ = _per_row_attribute("_suggested_labels", "suggested_label")
    mislabel_probability_ = _per_row_attribute(
        "_mislabel_probability", "mislabel_probability"
    )

    def _refit_flags(self, t, eta, noise):
        """Suspect rows: held-out prediction another class, and
        ``posterior > REFIT_POSTERIOR``, a laxer cut than the final flags'.
        Later rounds refit without them."""
        index = (eta[:, 0] > 0).astype(int) if eta.shape[1] == 1 else eta.argmax(1)
        return (noise.posterior > REFIT_POSTERIOR) & (index != t)

    def _suggest(self, eta):
        """The class each row of linear outputs predicts."""
        index = (eta[:, 0] > 0).astype(int) if eta.shape[1] == 1 else eta.argmax(1)
        return self.classes_[index]

    def _later_rounds(self, t, eta_loo, noise, bar):
        """Rescore every row by a model that never saw the previous flags.

        Each round refits without the rows the previous one found suspect
        (:meth:`_refit_flags`), then scores each of them
        by its loss under that model, and each kept row by its held-out loss
        under it (its first-round leave-one-out change added to its new
        output), and refits the noise model's temperature to these outputs
        (its rate kept from the first round). Mislabeled rows nearby no longer
        mask a flagged one. Rounds stop once the refit set
        or the rows 'auto' reports repeat, when nothing is flagged, or when
        too few rows of a class would remain; ``bar`` counts the rounds run
        and notes why they stopped early.
        """
        backend = self.explainer_.backend_
        whitening, loo_shift = None, None
        scores, eta, theta = self._scores, eta_loo, None
        flags = self._refit_flags(t, eta_loo, noise)
        shown = noise.posterior >= MIN_POSTERIOR
        first_rate = noise.rate
        for _ in range(2, self.n_rounds + 1):
            keep, flagged = np.flatnonzero(~flags), np.flatnonzero(flags)
            counts = np.bincount(t[keep], minlength=len(self.classes_))
            if not flags.any() or counts.min() < 2:
                bar.note(
                    "stopped: no row to refit without"
                    if not flags.any()
                    else "stopped: a class would keep fewer than 2 rows"
                )
                break
            stage(
                f"round {self.n_rounds_ + 1}: refit without {flagged.size} rows",
                self.verbose,
            )
            self.n_rounds_ += 1
            if whitening is None:  # first refit: the shared terms, once
                whitening = backend.whitening()
                loo_shift = eta_loo - backend.training_outputs()
            refitted, converged = backend.refit_without(
                flagged, whitening=whitening, start=theta, gtol=self.tol
            )
            if not converged:
                warnings.warn(
                    f"Round {self.n_rounds_}'s refit without the flagged rows "
                    "stopped before converging; its scores come from the last "
                    "iterate. Use n_rounds=1, or a model with a stronger penalty.",
                    ConvergenceWarning,
                    stacklevel=caller_stacklevel(),
                )
            theta = refitted.theta
            eta = backend.training_outputs(refitted)
            eta[keep] += loo_shift[keep]
            noise = fit_noise_model(eta, t, rate=first_rate, start=noise)
            previous, flags = flags, self._refit_flags(t, eta, noise)
            reported, shown = shown, noise.posterior >= MIN_POSTERIOR
            bar.update()
            # Another refit would change the scores, not what 'auto' reports.
            if np.array_equal(flags, previous) or np.array_equal(
                flags & shown, previous & reported
            ):
                if self.n_rounds_ < self.n_rounds:
                    bar.note("stopped: the flags repeat")
                break
        if self.n_rounds_ > 1:  # the scores of the last round only
            scores = backend.training_losses(eta)
        return scores, eta, noise

    def _flag(self, y):
        n = len(y)
        if self.threshold is not None:
            return self._scores > self.threshold
        if self.contamination == "auto":
            return (self._mislabel_probability >= MIN_POSTERIOR) & (
                self._suggested_labels != y
            )
        flags = np.zeros(n, dtype=bool)
        flags[self.ranking_[: max(1, int(round(self.contamination * n)))]] = True
        return flags

    def _protect_classes(self, flags):
        """The rows ``fit_resample`` drops or relabels.

        ``flags`` (for 'relabel', those whose suggested label differs), less the
        least suspicious row of any class the action would empty: dropping or
        relabeling every row of a class would remove it from the cleaned data,
        and a classifier fitted there would never predict it. Warns when so.
        """
        if self.action == "flag":
            return flags
        flags = flags.copy()
        if self.action == "relabel":
            flags &= self._suggested_labels != self._y
        emptied = []
        for c in self.classes_:
            rows = np.flatnonzero(self._y == c)
            if not rows.size or not flags[rows].all():
                continue
            if self.action == "relabel" and np.any(self._suggested_labels[flags] == c):
                continue  # other rows become c
            flags[rows[np.argmin(self._scores[rows])]] = False
            emptied.append(c.item() if hasattr(c, "item") else c)
        if emptied:
            warnings.warn(
                f"Every row of classes {emptied} was flagged; keeping the least "
                "suspicious row of each so that no class disappears.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        return flags

    def _warn_over_cleaning(self, n_changed):
        """Warn when more rows change than the noise rate estimate supports.

        Supported: the estimated number of wrong labels plus two binomial
        standard deviations and one row, so that 'auto' and a
        ``contamination`` at the true rate pass. Not where the held-out
        outputs cannot give the rate (a tree ensemble's: its estimate is
        about 0, and 'auto' warns instead).
        """
        if not self.explainer_.backend_.calibrated_held_out:
            return
        n, rate = len(self._y), self.noise_rate_
        verb = "Dropping" if self.action == "drop" else "Relabeling"
        if np.isnan(rate):  # uninformative held-out outputs (fit warned)
            if n_changed:
                warnings.warn(
                    f"{verb} {n_changed} of {n} rows ({n_changed / n:.1%}), but "
                    "the held-out model explains the labels no better than the "
                    "class shares (noise_rate_ is NaN): these rows are no "
                    "likelier mislabeled than the others.",
                    OverCleaningWarning,
                    stacklevel=caller_stacklevel(),
                )
            return
        expected = rate * n
        if n_changed <= expected + 2 * np.sqrt(expected * (1 - rate)) + 1:
            return
        estimate = (
            f"about {expected:.0f} wrong labels ({rate:.1%}, noise_rate_)"
            if round(expected)
            else f"no wrong labels (noise_rate_={rate:.2g})"
        )
        warnings.warn(
            f"{verb} {n_changed} of {n} rows ({n_changed / n:.1%}), but the "
            f"noise model estimates {estimate}: rows beyond that may be "
            "correct rows the model finds hard (the estimate can also fall "
            "short, on few rows or with labels moved between two classes). "
            "Use action='flag' to review them (get_label_issues) first, or "
            "contamination='auto' to change only the rows 'auto' flags.",
            OverCleaningWarning,
            stacklevel=caller_stacklevel(),
        )

    def fit_resample(self, X, y, sample_weight=None):
        """Fit, then return the cleaned ``(X, y)`` according to ``action``.

        With ``action='relabel'`` only the flagged rows whose suggested label
        differs change. Should the action remove every row of a class, its
        least suspicious row is kept as it is, with a warning, so that no class
        disappears from the cleaned data.

        Returns
        -------
        X_clean, y_clean
            Same types as the input (pandas index kept; sparse matrices other
            than CSR/CSC come back as CSR); rows dropped or labels replaced.
        """
        self.fit(X, y, sample_weight)
        keep = np.arange(len(self._y))
        y_new = self._y
        changed = self._protect_classes(self._label_issues)
        if self.action != "flag":
            self._warn_over_cleaning(int(changed.sum()))
        if self.action == "drop":
            keep = np.flatnonzero(~changed)
        elif self.action == "relabel":
            y_new = np.where(changed, self._suggested_labels, self._y)
        self.sample_indices_ = keep
        if sp.issparse(X):
            if X.format not in ("csr", "csc"):  # coo, dia, bsr: no row indexing
                X = X.tocsr()
        elif not (hasattr(X, "iloc") or isinstance(X, (np.ndarray, list))):
            X = np.asarray(X)
        X_out = _safe_indexing(X, keep)
        if isinstance(y, pd.Series):  # its dtype kept (category, Int64, ...)
            y_out = y.copy()
            if self.action == "relabel" and changed.any():
                rows = np.flatnonzero(changed)
                y_out.iloc[rows] = self._suggested_labels[rows]
            return X_out, y_out.iloc[keep]
        y_out = y_new[keep]
        if isinstance(y, np.ndarray) and y.ndim == 1:
            y_out = y_out.astype(y.dtype, copy=False)
        return X_out, y_out

    def get_label_issues(self, *, reasons=False):
        """The flagged rows, most suspicious first.

        Parameters
        ----------
        reasons : bool, default=False
            Add the columns ``mislabel_probability`` (see
            ``mislabel_probability_``) and ``reason``, which says by which rule
            each row is flagged and whether the held-out model predicts another
            class: a row flagged by a ``contamination`` share or a
            ``threshold`` may keep its given label as the suggestion ('auto'
            never flags those).

        Returns
        -------
        pandas.DataFrame
            Columns ``row``, ``given_label``, ``suggested_label``, ``score``,
            ``rank`` (1 = most suspicious), then those of ``reasons``; ``row``
            is the pandas index label when ``X`` was a DataFrame.
        """
        check_is_fitted(self)
        order = self.ranking_[self._label_issues[self.ranking_]]
        rank = np.empty(len(self.ranking_), dtype=int)
        rank[self.ranking_] = np.arange(1, len(self.ranking_) + 1)
        rows = order if self._index is None else np.asarray(self._index)[order]
        report = pd.DataFrame(
            {
                "row": rows,
                "given_label": self._y[order],
                "suggested_label": self._suggested_labels[order],
                "score": self._scores[order],
                "rank": rank[order],
            }
        )
        if not reasons:
            return report
        if self.threshold is not None:
            rule = f"score above threshold={self.threshold:g}"
        elif self.contamination == "auto":
            rule = "mislabel_probability >= 2/3"
        else:
            rule = f"in the top {self.contamination:.1%} by score"
        other = self._suggested_labels[order] != self._y[order]
        reason = np.where(
            other,
            f"{rule}; the held-out model predicts another class",
            f"{rule}; the held-out model predicts the given label",
        )
        reason = np.where(
            self._repeats_label[order],
            f"{rule}; the held-out model predicts the given label, the "
            "suggestion is the most probable other class",
            reason,
        )
        report["mislabel_probability"] = self._mislabel_probability[order]
        report["reason"] = reason
        return report

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.estimator is None:  # the default model takes both
            tags.input_tags.sparse = tags.input_tags.string = True
        else:
            inner = self.estimator.__sklearn_tags__().input_tags
            tags.input_tags.sparse = inner.sparse
            tags.input_tags.string = getattr(inner, "string", False)
        return tags


def _label_array(y):
    """``y`` as a numpy array; a nullable (Int64, boolean) Series without
    missing values as its numpy dtype, which older pandas leaves as objects."""
    dtype = getattr(y, "dtype", None)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if (
        isinstance(y, pd.Series)
        and pd.api.types.is_extension_array_dtype(dtype)
        and not isinstance(dtype, pd.CategoricalDtype)
        and numpy_dtype is not None
        and np.dtype(numpy_dtype).kind != "O"
        and not y.isna().any()
    ):
        return y.to_numpy(dtype=numpy_dtype)
    return np.asarray(y)
