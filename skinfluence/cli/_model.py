"""The model ``skinfluence clean`` fits, and the detector that scores its rows."""

import sys
import warnings

import numpy as np

from .. import solvers
from ._errors import CleanError

#: ``--model rbf-svm`` fits at most this many rows: its Newton fit works on
#: a (rows, landmarks) feature matrix, many products per iteration.
RBF_MAX_ROWS = 20_000
#: Landmark rows of its Nystroem feature map, where the exact kernel has more
#: parameters than the explainer factorizes exactly (see `rbf_landmarks`).
RBF_MAX_LANDMARKS = 1000
_RBF_MIN_LANDMARKS = 100


def rbf_landmarks(n_rows, n_classes):
    """``SmoothHingeSVC(n_components=...)`` of ``--model rbf-svm``.

    The held-out scores need the explainer's exact solver, which ``solver=
    'auto'`` picks up to ``AUTO_EXACT_MAX_PARAMS`` parameters. The exact
    kernel has one per row and one-vs-rest output (and an intercept each):
    None (the exact kernel) while they fit, else as many landmark rows as
    fit, at most ``RBF_MAX_LANDMARKS``. Raises `CleanError` beyond
    ``RBF_MAX_ROWS`` rows, or with too many classes for 100 landmarks.
    """
    alternative = "use --model logistic or --model svm (linear) instead"
    most = solvers.AUTO_EXACT_MAX_PARAMS  # the explainer's, read when it reads it
    if n_rows > RBF_MAX_ROWS:
        raise CleanError(
            f"--model rbf-svm fits at most {RBF_MAX_ROWS:,} rows, the input has "
            f"{n_rows:,}; {alternative}"
        )
    n_outputs = 1 if n_classes == 2 else n_classes
    budget = most // n_outputs - 1
    if n_rows <= budget:
        return None
    if budget < _RBF_MIN_LANDMARKS:
        raise CleanError(
            f"--model rbf-svm with {n_classes} classes fits at most {budget:,} "
            f"rows (one parameter per row and class, at most {most:,}), the "
            f"input has {n_rows:,}; {alternative}"
        )
    return min(budget, RBF_MAX_LANDMARKS)


def _as_str(X):
    """Categorical values as strings (mixed numbers and text would not sort)."""
    return np.asarray(X, dtype=object).astype(str)


def build_model(
    numeric,
    categorical,
    model="logistic",
    C=1.0,
    max_categories=50,
    n_components=None,
):
    """The default pipeline: a ColumnTransformer and the classifier.

    ``n_components``: landmark rows of ``model='rbf-svm'`` (None: exact kernel).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    from ..svm._classes import SmoothHingeSVC

    parts = []
    if numeric:
        parts.append(
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                numeric,
            )
        )
    if categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    FunctionTransformer(_as_str, feature_names_out="one-to-one"),
                    OneHotEncoder(
                        handle_unknown="ignore", max_categories=max_categories
                    ),
                ),
                categorical,
            )
        )
    if model == "logistic":
        clf = LogisticRegression(C=C, tol=1e-8, max_iter=5000)
    elif model == "svm":
        clf = SmoothHingeSVC(C=C)
    else:
        clf = SmoothHingeSVC(C=C, kernel="rbf", n_components=n_components)
    return Pipeline([("features", ColumnTransformer(parts)), ("model", clf)])


def _out_of_memory(what, exc, args):
    hint = "; use --model logistic or svm" if args.model == "rbf-svm" else ""
    return CleanError(
        f"{what} ran out of memory ({exc or 'an allocation failed'}): try a "
        f"smaller table{hint}"
    )


def _fit_and_score(X, y_values, numeric, categorical, args, stages):
    """Fit the pipeline once, then the detector on it; ``(detector, new y)``."""
    from sklearn.frozen import FrozenEstimator

    from ..cleaning import MislabelDetector
    from ..exceptions import SingularHessianError

    landmarks = None
    if args.model == "rbf-svm":
        landmarks = rbf_landmarks(len(X), len(np.unique(y_values)))
    model = build_model(
        numeric, categorical, args.model, args.C, args.max_categories, landmarks
    )
    shown = f" ({landmarks:,} landmark rows)" if landmarks else ""
    stages.begin(
        f"fitting {args.model} model on {len(X):,} rows{shown}, {len(numeric)} "
        f"numeric and {len(categorical)} categorical columns"
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. all-NaN columns
            model.fit(X, y_values)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise CleanError(f"fitting the model failed: {exc}") from None
    except MemoryError as exc:
        raise _out_of_memory("fitting the model", exc, args) from None
    stages.end()

    how = args.method if args.rounds == 1 else f"up to {args.rounds} rounds"
    stages.begin(f"scoring {len(X):,} rows ({how})")
    detector = MislabelDetector(
        FrozenEstimator(model),
        method=args.method,
        n_rounds=args.rounds,
        contamination=args.contamination,
        threshold=args.threshold,
        action=args.action,
        # A bar over the rounds in a terminal; logs keep the stage lines only.
        verbose=int(sys.stderr.isatty() and not args.quiet),
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, y_out = detector.fit_resample(X, y_values)
    except (ValueError, SingularHessianError) as exc:
        raise CleanError(f"scoring failed: {exc}") from None
    except MemoryError as exc:
        raise _out_of_memory("scoring", exc, args) from None
    notes = [
        _as_options(str(w.message))
        for w in caught
        if not issubclass(w.category, (FutureWarning, DeprecationWarning))
    ]
    stages.end(f"{int(detector.label_issues_.sum()):,} flagged")
    for note in dict.fromkeys(notes):
        print(f"warning: {note}", file=stages.stream, flush=True)
    return detector, y_out


#: The detector's advice in Python terms, and the same in this command's.
_OPTION_WORDING = {
    "use contamination=<share of rows> with action='flag', then "
    "get_label_issues()": "use --contamination SHARE (e.g. 0.1) with --action "
    "flag and --report FILE",
    "Use action='flag' to review them (get_label_issues) first, or "
    "contamination='auto' to change only the rows 'auto' flags": "Use --action "
    "flag with --report FILE to review them first, or --contamination auto to "
    "change only the rows it flags",
    "Use n_rounds=1, or a model with a stronger penalty": "Use --rounds 1, or "
    "a smaller --C",
}


def _as_options(message):
    """A detector warning with its advice in command-line options."""
    for python, command in _OPTION_WORDING.items():
        message = message.replace(python, command)
    return message
