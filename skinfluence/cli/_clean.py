"""``skinfluence clean``: find mislabeled rows of a table; drop, relabel, flag."""

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..cleaning import METHODS

MODELS = ("logistic", "svm", "rbf-svm")
ACTIONS = ("drop", "relabel", "flag")
FLAG_COLUMNS = ("label_issue", "suggested_label")
_CSV = (".csv", ".txt")
_TSV = (".tsv", ".tab")
_PARQUET = (".parquet", ".pq")
_COMPRESSION = {
    ".gz": "gzip",
    ".bz2": "bz2",
    ".zip": "zip",
    ".xz": "xz",
    ".zst": "zstd",
}

DESCRIPTION = """\
Find training rows whose label is probably wrong, with influence functions
(Koh & Liang, 2017), and write a cleaned copy of the table.

Every feature column is used: numeric ones are median-imputed and
standardized, the others (text, category, bool) most-frequent-imputed and
one-hot encoded. A model is fitted once; each row is then scored by the loss
it would have under the model fitted without it (one exact Newton step per
row, no refits), or by the method you choose. Rows are flagged when the model
fitted without them predicts another class ('--contamination auto'), or the
given share of top-scoring rows.
"""

EPILOG = """\
formats: .csv, .tsv (optionally compressed: .csv.gz, ...) and .parquet (needs
pyarrow: pip install pyarrow), chosen by file extension.

outputs: OUT holds the input's columns in the input's row order, with the
flagged rows dropped (--action drop), their labels replaced by the suggested
ones (relabel), or every row kept and two columns added (flag):
'label_issue' (bool) and 'suggested_label'. REPORT lists the flagged rows,
most suspicious first: row (0-based position in the input), given_label,
suggested_label, score, rank. Files are written only when everything
succeeded; the input is never overwritten. Errors exit with status 2.

examples:
  skinfluence clean data.csv --target label --out cleaned.csv --report issues.csv
  skinfluence clean data.parquet --target y --action flag --out flagged.parquet
  skinfluence clean data.csv --target y --contamination 0.05 --exclude id \\
      --model svm --out cleaned.csv
"""


class CleanError(Exception):
    """Bad input: reported as ``error: ...`` with exit status 2."""


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
        "whose held-out prediction is another class",
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
        "--max-categories",
        type=int,
        default=50,
        metavar="N",
        help="one-hot columns per categorical feature at most; rarer values "
        "share one column (default 50)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines on stderr"
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


# -- files -------------------------------------------------------------------------
def _format(path, role):
    """'csv', 'tsv' or 'parquet', from the extension (compression suffix ignored)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in _CSV:
        return "csv"
    if ext in _TSV:
        return "tsv"
    if ext in _PARQUET:
        return "parquet"
    raise CleanError(
        f"{role} {str(path)!r}: unknown format {ext or '(no extension)'!r}; "
        "use .csv, .tsv or .parquet"
    )


def _has_pyarrow():
    return importlib.util.find_spec("pyarrow") is not None


def _check_paths(args):
    """Resolved (input, out, report) paths and formats; raise on any problem."""
    src = Path(args.input).expanduser()
    if not src.is_file():
        what = "is a directory" if src.is_dir() else "not found"
        raise CleanError(f"input file {str(src)!r} {what}")
    src = src.resolve()
    formats = {"input": _format(src, "input")}
    outputs = {"--out": Path(args.out).expanduser().resolve()}
    if args.report is not None:
        outputs["--report"] = Path(args.report).expanduser().resolve()
    for option, path in outputs.items():
        formats[option] = _format(path, option)
        if path == src or (path.exists() and path.samefile(src)):
            raise CleanError(
                f"{option} {str(path)!r} is the input file; "
                "skinfluence clean never overwrites its input"
            )
        if path.is_dir():
            raise CleanError(f"{option} {str(path)!r} is a directory")
        if not path.parent.is_dir():
            raise CleanError(f"{option}: directory {str(path.parent)!r} does not exist")
    if len(outputs) == 2 and outputs["--out"] == outputs["--report"]:
        raise CleanError("--out and --report are the same file")
    if "parquet" in formats.values() and not _has_pyarrow():
        raise CleanError(
            "reading or writing Parquet needs pyarrow: pip install pyarrow"
        )
    return src, outputs, formats


def _read(path, fmt):
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    except pd.errors.EmptyDataError:
        raise CleanError(f"input file {str(path)!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise CleanError(f"cannot read {str(path)!r}: {exc}") from None


def _write_temp(frame, path, fmt):
    """Write ``frame`` to a temporary file beside ``path``; return its path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            # The temporary name hides the extension: say what to compress with.
            compression = _COMPRESSION.get(path.suffix.lower())
            frame.to_csv(
                tmp,
                index=False,
                sep="\t" if fmt == "tsv" else ",",
                compression=compression,
            )
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _write_all(items):
    """Write every ``(frame, path, fmt)``, then move them in place together."""
    temps = []
    try:
        for frame, path, fmt in items:
            temps.append((_write_temp(frame, path, fmt), path))
    except Exception as exc:
        for tmp, _ in temps:
            os.unlink(tmp)
        raise CleanError(f"cannot write {str(path)!r}: {exc}") from None
    done = []
    try:
        for tmp, path in temps:
            os.replace(tmp, path)
            done.append(path)
    except OSError as exc:  # pragma: no cover - a full disk, a permission change
        for tmp, path in temps:
            if path not in done and os.path.exists(tmp):
                os.unlink(tmp)
        raise CleanError(f"cannot write {str(path)!r}: {exc}") from None


# -- data --------------------------------------------------------------------------
def _split_columns(frame, target, exclude):
    """Feature frame and its numeric / categorical column names."""
    excluded = [c.strip() for item in exclude for c in item.split(",") if c.strip()]
    columns = [str(c) for c in frame.columns]
    missing = [c for c in [target, *excluded] if c not in columns]
    if missing:
        raise CleanError(
            f"column{'s' if len(missing) > 1 else ''} {_listing(missing)} not in "
            f"the input; available columns: {_listing(columns, limit=40)}"
        )
    frame.columns = columns
    X = frame.drop(columns=[target, *excluded])
    if X.shape[1] == 0:
        raise CleanError("no feature columns left besides the target")
    numeric, categorical, bad = [], [], []
    for col in X.columns:
        dtype = X[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            categorical.append(col)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(
            dtype
        ):
            numeric.append(col)
        elif (
            pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
        ):
            categorical.append(col)
        else:
            bad.append(f"{col!r} ({dtype})")
    if bad:
        raise CleanError(
            f"unsupported column types: {', '.join(bad)}; leave them out with --exclude"
        )
    X[categorical] = X[categorical].astype(object)
    return X, numeric, categorical


def _check_target(y, target):
    missing = y.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise CleanError(
            f"target column {target!r} has {len(rows)} missing value"
            f"{'s' if len(rows) > 1 else ''} (rows {shown}); drop or fill "
            "those rows first"
        )
    from sklearn.utils.multiclass import type_of_target

    kind = type_of_target(y.to_numpy())
    if kind not in ("binary", "multiclass"):
        raise CleanError(
            f"target column {target!r} does not hold class labels "
            f"(scikit-learn sees {kind!r} values, {y.nunique()} distinct)"
        )
    counts = y.value_counts(sort=False)
    if len(counts) < 2:
        raise CleanError(
            f"target column {target!r} holds a single class "
            f"({_listing(counts.index)}): "
            "there is nothing to tell apart"
        )
    rare = counts[counts < 2]
    if len(rare):
        raise CleanError(
            f"target column {target!r}: "
            + (
                f"class {_listing(rare.index)} has"
                if len(rare) == 1
                else f"{len(rare)} classes ({_listing(rare.index)}) have"
            )
            + " a single row; a held-out prediction cannot recover a class seen "
            "once (remove or merge them)"
        )
    return counts


def _label_values(y):
    """The target column as a numpy array (text and categories as objects)."""
    if isinstance(y.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(
        y.dtype
    ):
        return y.astype(object).to_numpy()
    return y.to_numpy()


def _listing(values, limit=10):
    """``'a', 'b', ...`` for at most ``limit`` values."""
    values = list(values)
    text = ", ".join(
        repr(v.item() if hasattr(v, "item") else v) for v in values[:limit]
    )
    return text + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


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
    """Run ``skinfluence clean``; returns the exit status (0, or 2 on bad input)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    stages = _Stages(err, args.quiet)
    try:
        _clean(args, out, stages)
    except CleanError as exc:
        stages.fail()
        print(f"error: {exc}", file=err, flush=True)
        return 2
    return 0


def _clean(args, out, stages):
    from sklearn.frozen import FrozenEstimator

    from ..cleaning import MislabelDetector
    from ..exceptions import SingularHessianError

    if args.max_categories < 2:
        raise CleanError("--max-categories must be at least 2")
    src, outputs, formats = _check_paths(args)

    stages.begin(f"reading {src.name}")
    frame = _read(src, formats["input"])
    frame = frame.reset_index(drop=True)
    stages.end(f"{len(frame):,} rows x {frame.shape[1]} columns")

    X, numeric, categorical = _split_columns(frame, args.target, args.exclude)
    y = frame[args.target]
    counts = _check_target(y, args.target)
    if args.action == "flag":
        clash = [c for c in FLAG_COLUMNS if c in frame.columns]
        if clash:
            raise CleanError(
                f"--action flag adds the columns {list(FLAG_COLUMNS)}, but the input "
                f"already has {clash}"
            )
    y_values = _label_values(y)

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
    flags = detector.label_issues_
    stages.end(f"{int(flags.sum()):,} flagged")
    for note in dict.fromkeys(notes):
        print(f"warning: {note}", file=stages.stream, flush=True)

    cleaned, action_note = _apply(frame, detector, y_out, args)
    report = detector.get_label_issues()

    written = [(cleaned, outputs["--out"], formats["--out"])]
    if "--report" in outputs:
        written.append((report, outputs["--report"], formats["--report"]))
    stages.begin("writing " + ", ".join(p.name for _, p, _ in written))
    _write_all(written)
    stages.end()

    _summary(out, src, frame, X, counts, args, report, action_note, written, stages)


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


def _summary(out, src, frame, X, counts, args, report, action_note, written, stages):
    def say(text=""):
        print(text, file=out, flush=True)

    n = len(frame)
    classes = ", ".join(f"{_listing([c])}: {k:,}" for c, k in counts[:10].items())
    classes += f", ... ({len(counts) - 10} more)" if len(counts) > 10 else ""
    say(f"skinfluence clean {src.name}")
    say(f"  rows read:     {n:,} ({X.shape[1]} feature columns)")
    say(f"  classes:       {len(counts)} ({classes})")
    say(
        f"  model:         {args.model} (C={args.C:g}), method {args.method}, "
        f"contamination {args.contamination}"
        + (f", threshold {args.threshold:g}" if args.threshold is not None else "")
    )
    say(f"  rows flagged:  {len(report):,} ({len(report) / n:.1%})")
    if len(report):
        top = report.head(3)
        say(
            "  most suspect:  "
            + ", ".join(
                f"row {r} ({_listing([g])} -> {_listing([s])})"
                for r, g, s in zip(
                    top["row"], top["given_label"], top["suggested_label"]
                )
            )
            + (", ..." if len(report) > 3 else "")
        )
    say(f"  action:        {action_note}")
    for frame_out, path, _ in written:
        say(f"  wrote:         {path} ({len(frame_out):,} rows)")
    say(f"  time:          {time.perf_counter() - stages.start:.1f} s")
