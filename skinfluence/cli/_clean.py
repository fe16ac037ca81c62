"""``skinfluence clean``: find mislabeled rows of a table; drop, relabel, flag.

The command runs in stages: read the table (`_files`), choose the feature
columns and check the target (`_columns`), fit the model and the detector
(`_model`), write the outputs (`_files`), print the summary. Its options are
in `_parser`.
"""

import dataclasses
import signal
import sys
import time

import numpy as np
import pandas as pd

from ._columns import (
    _check_target,
    _decimal_comma_note,
    _header_warning,
    _id_note,
    _label_values,
    _split_columns,
    _stray_note,
)
from ._errors import CleanError, _listing, _quote
from ._files import (
    STDOUT,
    TextTable,
    _check_paths,
    _dialect,
    _read,
    _read_text,
    _terminable,
    _Terminated,
    _write_all,
)
from ._model import _fit_and_score

FLAG_COLUMNS = ("label_issue", "suggested_label")


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

    0 on success, 2 on bad input (or too little memory), 128 + 15 on SIGTERM
    while writing and 130 on an interrupt (the shell's codes for those signals).
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
    except MemoryError as exc:  # where no stage turned it into a CleanError
        stages.fail()
        print(
            f"error: out of memory ({exc or 'an allocation failed'})",
            file=err,
            flush=True,
        )
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
    frame, text, dialects = _load(src, formats["input"], args, stages)

    decimal = "." if text is None else text.decimal
    X, numeric, categorical, ids, strays = _split_columns(
        frame, args.target, args, decimal
    )
    for col, counts in strays.items():
        _note(stages, _stray_note(col, counts))
    if strays and text is not None:  # their numbers take an output's decimal mark
        text = dataclasses.replace(text, numeric=[*text.numeric, *strays])
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
    # CSV outputs copy the input's text; Parquet keeps the parsed types.
    source = frame if text is None or formats["--out"] == "parquet" else text
    cleaned, action_note = _apply(source, frame, detector, y_out, args)
    report = _report(detector, frame if text is None else text.cells, ids)

    written = [(cleaned, outputs["--out"], formats["--out"])]
    if "--report" in outputs:
        written.append((report, outputs["--report"], formats["--report"]))
    stages.begin("writing " + ", ".join(_shown(p, name=True) for _, p, _ in written))
    with _terminable():
        _write_all(written, dialects, args.force, out)
    stages.end()

    # With a table on standard output, the summary goes with the stage lines.
    summary = stages.stream if any(p is STDOUT for _, p, _ in written) else out
    _summary(
        summary, src, frame, X, counts, args, ids, report, action_note, written, stages
    )


def _shown(path, name=False):
    """An output's path (or name) for the stage lines and the summary."""
    if path is STDOUT:
        return "standard output"
    return path.name if name else str(path)


def _load(src, fmt, args, stages):
    """The input table, parsed; its text (None for Parquet); and the
    ``(delimiter, decimal)`` of CSV/TSV outputs."""
    sep, decimal, note = ",", ".", ""
    header = not args.no_header
    if fmt == "parquet" and (args.sep or args.decimal):
        raise CleanError("--sep and --decimal are for .csv/.tsv input, not Parquet")
    if fmt == "parquet" and not header:
        raise CleanError("--no-header is for .csv/.tsv input, not Parquet")
    if fmt != "parquet":
        sep, decimal, sniffed = _dialect(src, fmt, args.sep, args.decimal, header)
        if sep == decimal:
            raise CleanError(f"--sep and --decimal are both {sep!r}")
        shown = "tab" if sep == "\t" else repr(sep)
        note = f", {shown}-separated" if sniffed or args.sep else ""
        note += ", decimal comma" if decimal == "," else ""
    stages.begin(f"reading {src.name}")
    frame = _read(src, fmt, sep, decimal, header).reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    text = None
    if fmt != "parquet":
        text = _read_text(src, sep, decimal, frame, header)
    n_cols = frame.shape[1]
    stages.end(f"{len(frame):,} rows x {n_cols} column{'s' * (n_cols != 1)}{note}")
    warning = text is not None and _header_warning(text.header, decimal)
    if warning:
        print(f"warning: {warning}", file=stages.stream, flush=True)
    # A .csv output copies a .csv input's dialect; .tsv outputs its decimal mark.
    if fmt == "csv":
        return frame, text, {"csv": (sep, decimal), "tsv": ("\t", decimal)}
    return frame, text, {"csv": (",", "."), "tsv": ("\t", decimal)}


def _report(detector, cells, ids):
    """The detector's report, led by the identifier columns of each row, as
    ``cells`` (the table, or its text) holds them."""
    report = detector.get_label_issues(reasons=True)
    rows = report["row"].to_numpy()  # positions: the frame has a RangeIndex
    for i, col in enumerate(ids):
        name = col if col not in report.columns else f"{col} (input)"
        report.insert(i, name, cells[col].to_numpy()[rows])
    return report


def _label_text(text, frame, target, labels):
    """``labels`` (classes of the target) as the input writes them."""
    given = _label_values(frame[target])
    first = ~pd.Series(given).duplicated().to_numpy()
    spelled = dict(zip(given[first], text.cells[target].to_numpy()[first]))
    return pd.Series(np.asarray(labels)).map(spelled).to_numpy()


def _apply(table, frame, detector, y_out, args):
    """``table`` (``frame``, or its `TextTable`) cleaned, and a sentence on
    what was done. The text keeps every cell as written but the new labels."""
    target, is_text = args.target, isinstance(table, TextTable)
    cells = table.cells if is_text else table
    if args.action == "flag":
        issues, suggested = detector.label_issues_, detector.suggested_labels_
        note = f"flag: {int(issues.sum()):,} rows marked in column 'label_issue'"
        cleaned = cells.copy()
        if not is_text:
            cleaned[FLAG_COLUMNS[0]] = issues
            cleaned[FLAG_COLUMNS[1]] = suggested
            return cleaned, note
        cleaned[FLAG_COLUMNS[0]] = np.where(issues, "True", "False")
        cleaned[FLAG_COLUMNS[1]] = _label_text(table, frame, target, suggested)
        header = None if table.header is None else [*table.header, *FLAG_COLUMNS]
        return dataclasses.replace(table, cells=cleaned, header=header), note
    keep = detector.sample_indices_
    if args.action == "drop":
        cleaned = cells.iloc[keep].copy()
        note = f"drop: {len(frame) - len(keep):,} rows removed"
    else:
        new = np.asarray(y_out)
        changed = new != _label_values(frame[target])
        note = f"relabel: {int(changed.sum()):,} labels replaced"
        cleaned = cells.copy()
        if is_text:
            spelled = _label_text(table, frame, target, new)
            cleaned[target] = np.where(changed, spelled, cleaned[target].to_numpy())
        else:
            cleaned[target] = _relabeled(cleaned[target], new)
    if is_text:
        return dataclasses.replace(table, cells=cleaned), note
    return cleaned, note


def _relabeled(column, new):
    """``new`` labels with the dtype of the target ``column``."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return pd.Categorical(new, categories=column.cat.categories)
    try:
        return pd.Series(new, index=column.index).astype(column.dtype)
    except (TypeError, ValueError):
        return new


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
        # A number as written (00087), text quoted ('S001').
        as_written = bool(ids) and pd.api.types.is_numeric_dtype(frame[ids[0]])
        key = [
            f"{name} {v if as_written and isinstance(v, str) else _listing([v])}, "
            for v in top[first]
        ]
        key = key if ids else [""] * 3
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
        say(f"  wrote:         {_shown(path)} ({len(frame_out):,} rows)")
    say(f"  time:          {time.perf_counter() - stages.start:.1f} s")
