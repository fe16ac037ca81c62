"""The options of ``skinfluence clean``, its help text, and the option checks."""

import argparse

import numpy as np

from ..cleaning import METHODS
from ..solvers import AUTO_EXACT_MAX_PARAMS
from ._model import RBF_MAX_LANDMARKS, RBF_MAX_ROWS

MODELS = ("logistic", "svm", "rbf-svm")
ACTIONS = ("drop", "relabel", "flag")
_SEP_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}

DESCRIPTION = """\
Find training rows whose label is probably wrong, with influence functions
(Koh & Liang, 2017), and write a cleaned copy of the table.

Features are every column but the target and the --exclude'd ones: numeric
columns median-imputed and standardized, the others (text, category, bool)
most-frequent-imputed and one-hot encoded. A text column of numbers with a
few other cells (' ', '?', 'N/A') is read as numbers, those cells as missing,
with a note. Columns that look like row identifiers (text with a different
value in 95% of the rows or more, integers with a different value in every
row, or such values under a name such as id, ID, row_id, customerId) are left
out with a note and listed in REPORT instead (--keep-column, --no-detect-ids).

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
'label_issue' (True/False) and 'suggested_label' (the held-out model's class
for every row: on unflagged rows it may differ from the label, a row the
model finds hard but does not call wrong). A CSV/TSV OUT of a CSV/TSV input
copies the text of every cell as written (leading zeros, 'NA', the header
line and line endings included). REPORT lists the flagged rows, most
suspicious first: the identifier columns found (if any, as written), row
(0-based position in the input), given_label, suggested_label, score, rank.
'-' as OUT or REPORT writes that table to standard output (CSV, or TSV for
a .tsv input) and the summary to standard error. Files are written only
when everything succeeded, with the permissions your umask gives; the input
is never overwritten, an existing OUT or REPORT only with --force. Errors
(out of memory included) exit with status 2; SIGTERM removes partly written
files and exits with status 143.

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
        help="cleaned table to write (.csv, .tsv or .parquet; never the input), "
        "or '-' for standard output",
    )
    p.add_argument(
        "--report",
        metavar="REPORT",
        help="also write the flagged rows, most suspicious first, with the "
        "reason each is flagged, here",
    )
    p.add_argument(
        "--model",
        choices=MODELS,
        default="logistic",
        help="logistic: LogisticRegression (default); svm: linear SmoothHingeSVC; "
        f"rbf-svm: SmoothHingeSVC(kernel='rbf') on at most {RBF_MAX_ROWS:,} "
        f"rows: the exact kernel up to {AUTO_EXACT_MAX_PARAMS:,} parameters (one "
        f"per row and class), else {RBF_MAX_LANDMARKS:,} landmark rows "
        "(Nystroem; fewer with 5 or more classes)",
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
    flagging = p.add_mutually_exclusive_group()
    flagging.add_argument(
        "--contamination",
        type=_contamination,
        default="auto",
        metavar="auto|FLOAT",
        help="share of rows to flag, in (0, 0.5]; 'auto' (default): the rows "
        "whose held-out prediction is another class and whose label is at "
        "least twice as likely wrong as right under a fitted noise model",
    )
    flagging.add_argument(
        "--threshold",
        type=_finite_float,
        default=None,
        metavar="FLOAT",
        help="flag rows scoring above this instead of a share (not with "
        "--contamination)",
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
        "--no-header",
        action="store_true",
        help="the .csv/.tsv INPUT has no header line: its columns are named "
        "0, 1, 2, ... (as in --target 0), and CSV outputs have no header line "
        "either",
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


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
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
