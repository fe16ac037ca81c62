"""``skinfluence clean``: find mislabeled rows of a table; drop, relabel, flag."""

import argparse
import signal
import sys
import time
import warnings

import numpy as np
import pandas as pd

from ..cleaning import METHODS
from ._columns import _check_target, _id_note, _label_values, _split_columns
from ._errors import CleanError, _listing, _quote
from ._files import (
    _check_paths,
    _dialect,
    _read,
    _terminable,
    _Terminated,
    _write_all,
)

MODELS = ("logistic", "svm", "rbf-svm")
ACTIONS = ("drop", "relabel", "flag")
FLAG_COLUMNS = ("label_issue", "suggested_label")
_SEP_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}

DESCRIPTION = """\
Find training rows whose label is probably wrong, with influence functions
(Koh & Liang, 2017), and write a cleaned copy of the table.

Features are every column but the target and the --exclude'd ones: numeric
columns median-imputed and standardized, the others (text, category, bool)
most-frequent-imputed and one-hot encoded. Columns that look like row
identifiers (text or integers with a different value in every row, or unique
values under a name such as id, ID, row_id, customerId) are left out with a
note and listed in REPORT instead (--keep-column, --no-detect-ids).

A model is fitted once; each row is then scored by the loss it would have
under the model fitted without it (one exact Newton step per row, no refits),
or by the method you choose. With '--contamination auto' a row is flagged
when the model fitted without it predicts another class and a label-noise
model fitted to those held-out predictions gives its label at least 2:1 odds
of being wrong (so hard but honest rows are kept); or give the share of
top-scoring rows to flag.
"""

EPILOG = """\
formats: .csv, .tsv (optionally compressed: .csv.gz, ...) and .parquet (needs
pyarrow: pip install pyarrow), chosen by file extension. The delimiter of a
.csv/.tsv input is sniffed from its first lines (',', tab, ';' or '|'; set
it with --sep), and a decimal comma is recognized in ';'- or tab-separated
files (set it with --decimal); CSV outputs are written the same way.

outputs: OUT holds the input's columns in the input's row order, with the
flagged rows dropped (--action drop), their labels replaced by the suggested
ones (relabel), or every row kept and two columns added (flag):
'label_issue' (bool) and 'suggested_label'. REPORT lists the flagged rows,
most suspicious first: the identifier columns found (if any), row (0-based
position in the input), given_label, suggested_label, score, rank. Files are
written only when everything succeeded, with the permissions your umask
gives; the input is never overwritten, an existing OUT or REPORT only with
--force. Errors exit with status 2; SIGTERM removes partly written files and
exits with status 143.

examples:
  skinfluence clean data.csv --target label --out cleaned.csv --report issues.csv
  skinfluence clean data.parquet --target y --action flag --out flagged.parquet
  skinfluence clean data.csv --target y --contamination 0.05 --exclude notes \\
      --model svm --out cleaned.csv --force
  skinfluence clean export.csv --sep ';' --target y --keep-column store_id \\
      --out cleaned.csv
"""


def add_parser(subparsers):
    """Register the ``clean`` subcommand."""
    p = subparsers.add_parser(
        "clean",
        help="find mislabeled rows of a CSV/Parquet table and write a cleaned copy",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="a .csv, .tsv or .parquet file")
    p.add_argument(
        "--target", required=True, metavar="COL", help="the label column (required)"
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="OUT",
        help="cleaned table to write (.csv, .tsv or .parquet; never the input)",
    )
    p.add_argument(
        "--report",
        metavar="REPORT",
        help="also write the flagged rows, most suspicious first, here",
    )
    p.add_argument(
        "--model",
        choices=MODELS,
        default="logistic",
        help="logistic: LogisticRegression (default); svm: linear SmoothHingeSVC; "
        "rbf-svm: SmoothHingeSVC(kernel='rbf')",
    )
    p.add_argument(
        "--C",
        type=_positive_float,
        default=1.0,
        metavar="C",
        help="inverse regularization strength of the model (default 1.0)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="loo_loss",
        help="how rows are ranked: loo_loss (default: loss under the model "
        "fitted without the row), self_influence (Koh & Liang), training_loss",
    )
    p.add_argument(
        "--rounds",
        type=_positive_int,
        default=3,
        metavar="N",
        help="rounds of scoring (default 3): each after the first rescores "
        "every row by a model refitted without the rows the previous round "
        "flags; 1: rank by --method scores of one fit",
    )
    p.add_argument(
        "--contamination",
        type=_contamination,
        default="auto",
        metavar="auto|FLOAT",
        help="share of rows to flag, in (0, 0.5]; 'auto' (default): the rows "
        "whose held-out prediction is another class and whose label is at "
        "least twice as likely wrong as right under a fitted noise model",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="FLOAT",
        help="flag rows scoring above this instead (overrides --contamination)",
    )
    p.add_argument(
        "--action",
        choices=ACTIONS,
        default="drop",
        help="drop the flagged rows (default), relabel them with the suggested "
        "label, or flag them in two extra columns",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="COL[,COL...]",
        help="columns not to use as features (identifiers, free text); "
        "repeatable. They are still written to OUT",
    )
    p.add_argument(
        "--keep-column",
        action="append",
        default=[],
        metavar="COL[,COL...]",
        help="use these columns as features even if they look like identifiers; "
        "repeatable",
    )
    p.add_argument(
        "--no-detect-ids",
        action="store_true",
        help="use every column not --exclude'd as a feature, identifiers included",
    )
    p.add_argument(
        "--sep",
        type=_separator,
        default=None,
        metavar="CHAR",
        help="field delimiter of a .csv/.tsv INPUT, e.g. ';' or tab (default: "
        "sniffed from the first lines); CSV outputs use it too",
    )
    p.add_argument(
        "--decimal",
        choices=(".", ","),
        default=None,
        metavar="MARK",
        help="'.' or ',': decimal mark of a .csv/.tsv INPUT (default: ',' when "
        "a ';'- or tab-separated file writes numbers that way, else '.')",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite OUT and REPORT if they exist (never INPUT)",
    )
    p.add_argument(
        "--max-categories",
        type=int,
        default=50,
        metavar="N",
        help="one-hot columns per categorical feature at most; rarer values "
        "share one column (default 50)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress lines on stderr (notes, warnings and errors remain)",
    )
    return p


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _separator(text):
    sep = _SEP_NAMES.get(text.lower(), text)
    if len(sep) != 1 or sep in '"\r\n':
        raise argparse.ArgumentTypeError(
            f"expected one character such as ';' or '|', or 'tab', got {text!r}"
        )
    return sep


def _contamination(text):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a number in (0, 0.5], got {text!r}"
        ) from None
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be in (0, 0.5], got {text}")
    return value


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
        verbose=int(sys.stderr.isatty()),
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, y_out = detector.fit_resample(X, y_values)
    except (ValueError, SingularHessianError, MemoryError) as exc:
        raise CleanError(f"scoring failed: {exc}") from None
    notes = [
        str(w.message)
        for w in caught
        if not issubclass(w.category, (FutureWarning, DeprecationWarning))
    ]
    stages.end(f"{int(detector.label_issues_.sum()):,} flagged")
    for note in dict.fromkeys(notes):
        print(f"warning: {note}", file=stages.stream, flush=True)
    return detector, y_out


def _report(detector, frame, ids):
    """The detector's report, led by the identifier columns of each row."""
    report = detector.get_label_issues()
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
        f"contamination {args.contamination}"
        + (f", threshold {args.threshold:g}" if args.threshold is not None else "")
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
