"""``skinfluence clean``: find mislabeled rows of a table; drop, relabel, flag.

The command runs in stages: read the table (`_files`), choose the feature
columns and check the target (`_columns`), fit the model and the detector,
write the outputs (`_files`), print the summary. Its options are in `_parser`.
"""

import signal
import sys
import time
import warnings

import numpy as np
import pandas as pd

from ._columns import (
    _check_target,
    _decimal_comma_note,
    _id_note,
    _label_values,
    _split_columns,
)
from ._errors import CleanError, _listing, _quote
from ._files import (
    _check_paths,
    _dialect,
    _read,
    _terminable,
    _Terminated,
    _write_all,
)

FLAG_COLUMNS = ("label_issue", "suggested_label")


def _as_str(X):
    """Categorical values as strings (mixed numbers and text would not sort)."""
    return np.asarray(X, dtype=object).astype(str)


def build_model(numeric, categorical, model="logistic", C=1.0, max_categories=50):
    """The default pipeline: a ColumnTransformer and the classifier."""
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
        clf = SmoothHingeSVC(C=C, kernel="rbf")
    return Pipeline([("features", ColumnTransformer(parts)), ("model", clf)])


# -- the command -------------------------------------------------------------------
class _Stages:
    """Stage lines with timings on stderr."""

    def __init__(self, stream, quiet):
        self.stream, self.quiet = stream, quiet
        self.start = time.perf_counter()
        self.t = None

    def begin(self, text):
        self.t = time.perf_counter()
        if not self.quiet:
            print(f"[skinfluence] {text} ...", end="", file=self.stream, flush=True)

    def end(self, note=""):
        if not self.quiet:
            note = f" {note}" if note else ""
            print(
                f" done{note} ({time.perf_counter() - self.t:.2f} s)",
                file=self.stream,
                flush=True,
            )
        self.t = None

    def fail(self):
        if not self.quiet and self.t is not None:
            print(" failed", file=self.stream, flush=True)
        self.t = None


def run_clean(args, out=None, err=None):
    """Run ``skinfluence clean``; returns the exit status.

    0 on success, 2 on bad input, 128 + 15 on SIGTERM while writing and 130 on
    an interrupt (the shell's codes for those signals).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    stages = _Stages(err, args.quiet)
    try:
        _clean(args, out, stages)
    except CleanError as exc:
        stages.fail()
        print(f"error: {exc}", file=err, flush=True)
        return 2
    except (_Terminated, KeyboardInterrupt) as exc:
        stages.fail()
        signum = getattr(exc, "signum", signal.SIGINT)
        name = signal.Signals(signum).name
        print(f"stopped by {name}; no partly written files left", file=err, flush=True)
        return 128 + signum
    return 0


def _note(stages, text):
    print(f"note: {text}", file=stages.stream, flush=True)


def _clean(args, out, stages):
    if args.max_categories < 2:
        raise CleanError("--max-categories must be at least 2")
    src, outputs, formats = _check_paths(args)
    frame, dialects = _load(src, formats["input"], args, stages)

    X, numeric, categorical, ids = _split_columns(frame, args.target, args)
    if ids:
        _note(stages, _id_note(ids))
    commas = _decimal_comma_note(X[categorical])
    if commas:
        _note(stages, commas)
    y = frame[args.target]
    counts = _check_target(y, args.target)
    if args.action == "flag":
        clash = [c for c in FLAG_COLUMNS if c in frame.columns]
        if clash:
            raise CleanError(
                f"--action flag adds the columns {list(FLAG_COLUMNS)}, but the input "
                f"already has {clash}"
            )

    detector, y_out = _fit_and_score(X, _label_values(y), numeric, categorical, args,
                                     stages)  # fmt: skip
    cleaned, action_note = _apply(frame, detector, y_out, args)
    report = _report(detector, frame, ids)

    written = [(cleaned, outputs["--out"], formats["--out"])]
    if "--report" in outputs:
        written.append((report, outputs["--report"], formats["--report"]))
    stages.begin("writing " + ", ".join(p.name for _, p, _ in written))
    with _terminable():
        _write_all(written, dialects, args.force)
    stages.end()

    _summary(
        out, src, frame, X, counts, args, ids, report, action_note, written, stages
    )


def _load(src, fmt, args, stages):
    """The input table, and the ``(delimiter, decimal)`` of CSV/TSV outputs."""
    sep, decimal, note = ",", ".", ""
    if fmt == "parquet" and (args.sep or args.decimal):
        raise CleanError("--sep and --decimal are for .csv/.tsv input, not Parquet")
    if fmt != "parquet":
        sep, decimal, sniffed = _dialect(src, fmt, args.sep, args.decimal)
        if sep == decimal:
            raise CleanError(f"--sep and --decimal are both {sep!r}")
        shown = "tab" if sep == "\t" else repr(sep)
        note = f", {shown}-separated" if sniffed or args.sep else ""
        note += ", decimal comma" if decimal == "," else ""
    stages.begin(f"reading {src.name}")
    frame = _read(src, fmt, sep, decimal)
    frame = frame.reset_index(drop=True)
    n_cols = frame.shape[1]
    stages.end(f"{len(frame):,} rows x {n_cols} column{'s' * (n_cols != 1)}{note}")
    # A .csv output copies a .csv input's dialect; .tsv outputs its decimal mark.
    if fmt == "csv":
        return frame, {"csv": (sep, decimal), "tsv": ("\t", decimal)}
    return frame, {"csv": (",", "."), "tsv": ("\t", decimal)}


def _fit_and_score(X, y_values, numeric, categorical, args, stages):
    """Fit the pipeline once, then the detector on it; ``(detector, new y)``."""
    from sklearn.frozen import FrozenEstimator

    from ..cleaning import MislabelDetector
    from ..exceptions import SingularHessianError

    model = build_model(numeric, categorical, args.model, args.C, args.max_categories)
    stages.begin(
        f"fitting {args.model} model on {len(X):,} rows, {len(numeric)} numeric "
        f"and {len(categorical)} categorical columns"
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. all-NaN columns
            model.fit(X, y_values)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise CleanError(f"fitting the model failed: {exc}") from None
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
    except (ValueError, SingularHessianError, MemoryError) as exc:
        raise CleanError(f"scoring failed: {exc}") from None
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


def _report(detector, frame, ids):
    """The detector's report, led by the identifier columns of each row."""
    report = detector.get_label_issues(reasons=True)
    rows = report["row"].to_numpy()  # positions: the frame has a RangeIndex
    for i, col in enumerate(ids):
        name = col if col not in report.columns else f"{col} (input)"
        report.insert(i, name, frame[col].to_numpy()[rows])
    return report


def _apply(frame, detector, y_out, args):
    """The table to write, and a sentence on what was done."""
    target = args.target
    if args.action == "flag":
        cleaned = frame.copy()
        cleaned[FLAG_COLUMNS[0]] = detector.label_issues_
        cleaned[FLAG_COLUMNS[1]] = detector.suggested_labels_
        n = int(detector.label_issues_.sum())
        return cleaned, f"flag: {n:,} rows marked in column 'label_issue'"
    keep = detector.sample_indices_
    if args.action == "drop":
        cleaned = frame.iloc[keep].copy()
        return cleaned, f"drop: {len(frame) - len(keep):,} rows removed"
    new = np.asarray(y_out)
    changed = new != _label_values(frame[target])
    cleaned = frame.copy()
    column = cleaned[target]
    if isinstance(column.dtype, pd.CategoricalDtype):
        cleaned[target] = pd.Categorical(new, categories=column.cat.categories)
    else:
        try:
            cleaned[target] = pd.Series(new, index=cleaned.index).astype(column.dtype)
        except (TypeError, ValueError):
            cleaned[target] = new
    return cleaned, f"relabel: {int(changed.sum()):,} labels replaced"


def _summary(
    out, src, frame, X, counts, args, ids, report, action_note, written, stages
):
    def say(text=""):
        print(text, file=out, flush=True)

    n = len(frame)
    classes = ", ".join(f"{_listing([c])}: {k:,}" for c, k in counts[:10].items())
    classes += f", ... ({len(counts) - 10} more)" if len(counts) > 10 else ""
    say(f"skinfluence clean {src.name}")
    ids = list(ids)
    left_out = ""
    if ids:
        left_out = f"; identifier {_listing(ids)} not a feature"
        if len(ids) > 1:
            left_out = f"; identifiers {_listing(ids)} not features"
    say(f"  rows read:     {n:,} ({X.shape[1]} feature columns{left_out})")
    say(f"  classes:       {len(counts)} ({classes})")
    say(
        f"  model:         {args.model} (C={args.C:g}), method {args.method}, "
        + (
            f"threshold {args.threshold:g}"
            if args.threshold is not None
            else f"contamination {args.contamination}"
        )
    )
    say(f"  rows flagged:  {len(report):,} ({len(report) / n:.1%})")
    if len(report):
        top = report.head(3)
        name = _quote(ids[0]) if ids else ""
        first = report.columns[0]  # the first identifier, if any: see _report
        key = [f"{name} {_listing([v])}, " for v in top[first]] if ids else [""] * 3
        say(
            "  most suspect:  "
            + ", ".join(
                f"row {r} ({k}{_listing([g])} -> {_listing([s])})"
                for k, r, g, s in zip(
                    key, top["row"], top["given_label"], top["suggested_label"]
                )
            )
            + (", ..." if len(report) > 3 else "")
        )
    say(f"  action:        {action_note}")
    for frame_out, path, _ in written:
        say(f"  wrote:         {path} ({len(frame_out):,} rows)")
    say(f"  time:          {time.perf_counter() - stages.start:.1f} s")
