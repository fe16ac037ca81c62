"""Which columns of the table are features, which name rows, and the target.

Features are split into numeric and categorical columns; a text column of
numbers with a few cells that are not (' ', '?') is read as numbers, those
cells as missing; columns that look like row identifiers are left out (and
listed in the report); the target must hold class labels, each seen at least
twice.
"""

import re

import numpy as np
import pandas as pd

from ._errors import CleanError, _listing, _quote
from ._files import _delimiter_hint

# Names that say "identifier": id, ID, row_id, user-id, customerId, uuid.
_ID_NAME = re.compile(r"(?:^|[\W_])(?:id|uuid|guid)$", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z0-9](?:Id|ID)$")


def _names(items):
    """Column names from repeatable ``COL[,COL...]`` options."""
    return [c.strip() for item in items for c in item.split(",") if c.strip()]


def _split_columns(frame, target, args, decimal="."):
    """Feature frame, its numeric / categorical column names, the columns left
    out as identifiers (name -> what gave them away), and the text columns read
    as numbers (name -> counts of the cells read as missing, by text).

    ``decimal``: the decimal mark the input's numbers are written with.
    """
    excluded, keep = _names(args.exclude), _names(args.keep_column)
    columns = [str(c) for c in frame.columns]
    named = {target: "--target", **{c: "--exclude" for c in excluded}}
    named.update({c: "--keep-column" for c in keep if c not in named})
    missing = [c for c in named if c not in columns]
    if missing:
        flags = sorted({named[c] for c in missing})
        raise CleanError(
            f"column{'s' if len(missing) > 1 else ''} {_listing(missing)} "
            f"({', '.join(flags)}) not in the input; available columns: "
            f"{_listing(columns, limit=40)}"
            + (_delimiter_hint(columns) or _header_hint(columns, args.no_header))
        )
    both = [c for c in keep if c in [target, *excluded]]
    if both:
        raise CleanError(
            f"--keep-column {both[0]!r} is the target column, never a feature"
            if both[0] == target
            else f"--keep-column {both[0]!r} is also --exclude'd; drop one of the two"
        )
    frame.columns = columns
    X, strays = _read_numbers(frame.drop(columns=[target, *excluded]), decimal)
    ids = {} if args.no_detect_ids else _id_columns(X.drop(columns=keep))
    X = X.drop(columns=list(ids))
    if X.shape[1] == 0:
        hint = (
            f" ({_listing(ids)} look like identifiers: keep one with --keep-column)"
            if ids
            else ""
        )
        raise CleanError(f"no feature columns left besides the target{hint}")
    numeric, categorical = _by_type(X)
    X[categorical] = X[categorical].astype(object)
    return X, numeric, categorical, ids, strays


def _by_type(X):
    """Names of the numeric and of the categorical columns of ``X``; raise on
    any other type."""
    numeric, categorical, bad = [], [], []
    for col in X.columns:
        dtype = X[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            categorical.append(col)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(
            dtype
        ):
            numeric.append(col)
        elif _is_text(dtype):
            categorical.append(col)
        else:
            bad.append(f"{col!r} ({dtype})")
    if bad:
        raise CleanError(
            f"unsupported column types: {', '.join(bad)}; leave them out with --exclude"
        )
    return numeric, categorical


# -- numbers among text --------------------------------------------------------------
#: Cells that say "no value" (compared stripped and lower-cased). A text column
#: of numbers and such cells is read as numbers whatever their share.
_MISSING_TOKENS = frozenset(
    {"", "?", "-", "--", ".", "na", "n/a", "nan", "null", "none", "#n/a", "missing"}
)
#: Any other cells that are not numbers: a column is still read as numbers
#: when they make up at most this share of its non-empty cells.
_STRAY_SHARE = 0.05


def _read_numbers(X, decimal="."):
    """``X`` with its text columns of numbers and a few other cells (see
    `_stray_cells`) as floats, those cells missing; and, for each such
    column, the counts of those cells by text."""
    strays = {}
    for col in X.columns:
        counts = _stray_cells(X[col], decimal)
        if counts is not None:
            X[col] = _as_numbers(X[col], decimal)
            strays[col] = counts
    return X, strays


def _as_numbers(column, decimal="."):
    """The cells of a text column as floats; NaN where a cell is not a finite
    number (written with ``decimal`` as its decimal mark)."""
    text = column.astype(str).str.strip()
    if decimal != ".":
        # With a decimal comma, a point is a thousands mark pandas does not read.
        text = text.where(~text.str.contains(".", regex=False), "")
        text = text.str.replace(decimal, ".", regex=False)
    numbers = pd.to_numeric(text, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers) & column.notna())


def _stray_cells(column, decimal="."):
    """Counts by text of the cells that are not numbers, if ``column`` is text
    that reads as numbers but for them; else None.

    It does when it holds at least one number, and its cells that are not
    numbers are markers of a missing value (`_MISSING_TOKENS`: ' ', '?',
    'N/A', ...) or at most `_STRAY_SHARE` of its non-empty cells. A column
    pandas kept as text for no such cell (a Parquet string column of digits,
    say) is left as it is; so are categorical columns, typed by their writer.
    """
    if isinstance(column.dtype, pd.CategoricalDtype) or not _is_text(column.dtype):
        return None
    cells = column.dropna()
    numbers = _as_numbers(cells, decimal)
    if not numbers.notna().any() or numbers.notna().all():
        return None
    others = cells[numbers.isna()].astype(str)
    unknown = ~others.str.strip().str.lower().isin(_MISSING_TOKENS)
    if unknown.sum() > _STRAY_SHARE * len(cells):
        return None
    return others.value_counts()


def _stray_note(col, counts):
    """A note on the cells of ``col`` read as missing: how many, which."""
    shown = [f"{token!r} {n:,} time{'s' * (n != 1)}" for token, n in counts.items()]
    more = f", ... ({len(shown) - 5} more)" if len(shown) > 5 else ""
    total = int(counts.sum())
    several = total != 1
    return (
        f"{col!r} is read as numbers; {total:,} of its cells "
        f"{'are' if several else 'is'} not ({', '.join(shown[:5])}{more}): "
        f"read as missing, {'they are' if several else 'it is'} filled with the "
        "column's median like empty cells. To leave the column out: "
        f"--exclude {_quote(col)}"
    )


# A number written with a decimal comma (and optional dots or spaces for
# thousands): what a --decimal ',' file read with '.' leaves as text.
_DECIMAL_COMMA = r"^\s*[-+]?\d{1,3}(?:[. ]?\d{3})*,\d+\s*$"


def _decimal_comma_note(X):
    """A note naming text columns that hold decimal-comma numbers, or None."""
    found = [col for col in X.columns if _decimal_commas(X[col])]
    if not found:
        return None
    return (
        f"{_listing(found)} hold{'s' if len(found) == 1 else ''} numbers written "
        "with a decimal comma, read as categories; pass --decimal ',' to read "
        "them as numbers"
    )


def _decimal_commas(column):
    """Whether nine in ten of the non-empty cells of ``column`` are numbers
    written with a decimal comma."""
    values = column.dropna().astype(str)
    return bool(len(values)) and values.str.match(_DECIMAL_COMMA).mean() >= 0.9


def _is_number(cell, decimal="."):
    try:
        return bool(np.isfinite(float(str(cell).strip().replace(decimal, "."))))
    except ValueError:
        return False


def _header_hint(columns, no_header=False):
    """A hint when a column name is a number: the header may be a data row."""
    if no_header or not any(_is_number(c) for c in columns):
        return ""
    return " (if the file has no header line, pass --no-header)"


def _header_warning(names, decimal="."):
    """A warning when every cell of the header line is a number, or None."""
    if not names or not all(_is_number(cell, decimal) for cell in names):
        return None
    if names == [str(i) for i in range(len(names))]:
        return None  # the names pandas and numpy give unnamed columns: a header
    return (
        f"every cell of the header line is a number ({_listing(names, limit=3)}): "
        "if the file has no header line, pass --no-header; else its first row "
        "is read as column names, and never scored"
    )


def _is_text(dtype):
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


#: A text column, or an id-named one, whose distinct values make up at least
#: this share of its rows names them: 90% of its rows or more hold a value no
#: other row has, a one-hot column each, which lets the model fit those rows'
#: labels one by one and tells nothing about a row held out.
_ID_SHARE = 0.95


def _id_columns(X):
    """Columns that name rows rather than describe them: text with a
    different value in (almost) every row, integers with a different value in
    every row, or an id-like name and (almost) unique values.

    "Almost": the distinct values make up `_ID_SHARE` of the rows (of the
    non-empty ones under an id-like name), as when a customer id repeats. One-
    hot encoded, such a column gives every row its own feature; as a number, a
    row counter tracks the file's order (often sorted by class), but integers
    that repeat may be counts, so without an id-like name they must not. A
    float column with unique values is a measurement and stays.
    """
    found = {}
    for col in X.columns:
        named = bool(_ID_NAME.search(col) or _CAMEL_ID.search(col))
        reason = _id_reason(X[col], named)
        if reason is not None:
            found[col] = (named, reason)
    # Id-named columns first: the summary names flagged rows by the first.
    order = sorted(found, key=lambda col: not found[col][0])
    return {col: found[col][1] for col in order}


def _id_reason(column, named):
    """What makes ``column`` an identifier (e.g. '178 unique integers'), or
    None; ``named``: its name says "identifier"."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return None
    if pd.api.types.is_integer_dtype(dtype):
        kind = "integers"
    elif _is_text(dtype):
        kind = "values"
        if _decimal_commas(column):
            return None  # numbers: `_decimal_comma_note` tells how to read them
    elif named and pd.api.types.is_float_dtype(dtype):
        kind = "integers"  # integer ids with a gap are read as floats
    else:
        return None
    values = column.dropna()
    # An id-like name may leave rows empty; other identifiers name every row.
    rows = len(values) if named else len(column)
    if len(values) < 2:
        return None
    if kind == "integers" and not np.array_equal(values, np.round(values)):
        return None
    distinct = values.nunique()
    if distinct == rows:
        return f"{rows:,} unique {kind}"
    # Repeats are allowed to text, which is no count, and to id-named columns.
    if (named or kind == "values") and distinct >= _ID_SHARE * rows:
        where = "rows" if rows == len(column) else "non-empty rows"
        return f"{distinct:,} distinct {kind} in {rows:,} {where}"
    return None


def _id_note(ids):
    which = ", ".join(f"{col!r} ({reason})" for col, reason in ids.items())
    if len(ids) == 1:
        return (
            f"{which} looks like a row identifier: it is not used as a feature, "
            "but listed with each flagged row in the report. To use it as a "
            f"feature: --keep-column {_quote(next(iter(ids)))} (or --no-detect-ids)"
        )
    return (
        f"{which} look like row identifiers: they are not used as features, but "
        "listed with each flagged row in the report. To use one as a feature: "
        "--keep-column NAME (or --no-detect-ids)"
    )


def _check_target(y, target):
    if not len(y):
        raise CleanError("the input has a header but no data rows")
    missing = y.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        several = len(rows) > 1
        raise CleanError(
            f"target column {target!r} has {len(rows)} missing value"
            f"{'s' if several else ''} (row{'s' if several else ''} {shown}, "
            "0-based positions in the input as in the report); drop or fill "
            f"{'those rows' if several else 'it'} first"
        )
    from sklearn.utils.multiclass import type_of_target

    _refuse_continuous(y, target)
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


def _refuse_continuous(y, target):
    """Raise if the target reads as a measurement rather than class labels.

    Non-integer numbers, or more than 20 distinct numbers that make up a tenth
    of the rows or more, stored as floats or a quarter of them seen once (a
    few rare classes among many get the clearer "single row" error instead).
    """
    if pd.api.types.is_bool_dtype(y.dtype) or not pd.api.types.is_numeric_dtype(
        y.dtype
    ):
        return
    values = y.to_numpy()
    counts = y.value_counts(sort=False)
    is_float = pd.api.types.is_float_dtype(y.dtype)
    fractional = is_float and not np.array_equal(values, np.round(values))
    many = len(counts) > 20 and len(counts) >= 0.1 * len(y)
    singles = (counts == 1).sum()
    if not (fractional or (many and (is_float or singles >= len(counts) / 4))):
        return
    if fractional and len(counts) <= 20:
        raise CleanError(
            f"target column {target!r} holds {len(counts)} distinct non-integer "
            f"numbers ({_listing(counts.index, limit=5)}): scikit-learn's "
            "classifiers read non-integer numbers as a continuous target. If "
            "they are class codes, write them as integers or text"
        )
    codes = is_float and not fractional and not singles
    raise CleanError(
        f"target column {target!r} does not hold class labels: it looks "
        f"continuous ({len(counts):,} distinct numbers in {len(y):,} rows, e.g. "
        f"{_listing(y.iloc[:3], limit=3)}). skinfluence clean is for class labels "
        "(classification); bin a regression target into classes first"
        + ("; class codes written as floats: write them as integers" if codes else "")
    )


def _label_values(y):
    """The target column as a numpy array (text and categories as objects)."""
    if isinstance(y.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(
        y.dtype
    ):
        return y.astype(object).to_numpy()
    return y.to_numpy()
