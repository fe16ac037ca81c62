"""Tables in and out for ``skinfluence clean``.

The format comes from the file extension; the delimiter and decimal mark of a
.csv/.tsv input are sniffed from its first lines. A .csv/.tsv input is also
kept as the text of its cells (`TextTable`), which CSV outputs copy: a value
is written as it was read, not as pandas would print its parsed form. Outputs
are written to temporary files beside their final names and renamed into
place only when all of them are written, with the mode ``open(path, 'w')``
would give; SIGTERM while writing removes the temporary files. ``-`` writes
to standard output.
"""

import bz2
import contextlib
import csv
import dataclasses
import gzip
import importlib.util
import lzma
import os
import re
import signal
import stat
import tempfile
import threading
import zipfile
from pathlib import Path

import pandas as pd

from ._errors import CleanError

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
# Delimiters the sniffer may choose, in pandas' and csv.Sniffer's preference order.
_DELIMITERS = ",\t;|"
#: The OUT or REPORT name that means standard output.
STDOUT = "-"


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
    """Resolved (input, out, report) paths and formats; raise on any problem.

    An output named ``-`` is standard output (`STDOUT`), written as text in
    the input's format (CSV for a Parquet input).
    """
    src = Path(args.input).expanduser()
    if not src.is_file():
        what = "is a directory" if src.is_dir() else "not found"
        raise CleanError(f"input file {str(src)!r} {what}")
    src = src.resolve()
    formats = {"input": _format(src, "input")}
    names = {"--out": args.out, "--report": args.report}
    if args.out == args.report == STDOUT:
        raise CleanError("--out and --report cannot both be '-' (standard output)")
    outputs = {}
    for option, name in names.items():
        if name == STDOUT:
            outputs[option] = STDOUT
            formats[option] = "tsv" if formats["input"] == "tsv" else "csv"
        elif name is not None:
            outputs[option] = Path(name).expanduser().resolve()
    for option, path in outputs.items():
        if path is STDOUT:
            continue
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
    if not args.force:
        _refuse_existing((o, p) for o, p in outputs.items() if p is not STDOUT)
    if "parquet" in formats.values() and not _has_pyarrow():
        raise CleanError(
            "reading or writing Parquet needs pyarrow: pip install pyarrow"
        )
    return src, outputs, formats


def _refuse_existing(outputs):
    """Raise if any ``(option, path)`` exists: only --force replaces a file."""
    for option, path in outputs:
        if os.path.lexists(path):
            raise CleanError(
                f"{option} {str(path)!r} already exists; pass --force to "
                "overwrite it, or choose another name"
            )


def _head(path, size=1 << 16):
    """The first ``size`` bytes of a file, decompressed; b'' where that fails."""
    openers = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
    compression = _COMPRESSION.get(path.suffix.lower())
    try:
        if compression is None:
            handle = open(path, "rb")
        elif compression in openers:
            handle = openers[compression](path, "rb")
        elif compression == "zip":
            archive = zipfile.ZipFile(path)
            names = archive.namelist()
            if len(names) != 1:
                return b""
            handle = archive.open(names[0])
        else:  # zstd: not in the standard library; pandas reads it
            return b""
        with handle:
            return handle.read(size)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError):
        return b""


def _sample(path, size=1 << 16):
    """The first lines of a text file, decompressed; '' where that fails."""
    data = _head(path, size)
    lines = data.decode("utf-8", errors="replace").splitlines()
    if len(data) == size:
        lines = lines[:-1]  # the last line is probably cut off
    return "\n".join(lines[:20])


def _line_ending(path):
    """The first line's ending, which CSV outputs copy ('\\n' if unknown)."""
    found = re.search(rb"\r\n|\r|\n", _head(path))
    return found.group().decode() if found else "\n"


def _dialect(path, fmt, sep=None, decimal=None, header=True):
    """``(delimiter, decimal mark, sniffed)`` of a .csv/.tsv file."""
    default = "\t" if fmt == "tsv" else ","
    sample = _sample(path) if sep is None or decimal is None else ""
    sniffed = sep is None
    if sep is None:
        sep = default
        first = sample.split("\n", 1)[0]
        try:
            found = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
        except csv.Error:
            found = default
        # A sniffed delimiter the header does not contain is a guess from the
        # data rows (commas in text, say): keep the extension's default.
        if found in first:
            sep = found
    if decimal is None:
        decimal = "." if sep == "," else _sniff_decimal(sample, sep, header)
    return sep, decimal, sniffed and sep != default


def _sniff_decimal(sample, sep, header=True):
    """',' if the sample's numbers are written with a decimal comma only."""
    rows = csv.reader(sample.splitlines()[int(header) :], delimiter=sep)
    fields = [field.strip() for row in rows for field in row]
    comma = sum(bool(re.fullmatch(r"[-+]?\d*,\d+", f)) for f in fields)
    point = sum(bool(re.fullmatch(r"[-+]?\d*\.\d+", f)) for f in fields)
    return "," if comma and not point else "."


def _delimiter_hint(columns):
    """A hint when one column's name holds a delimiter: the wrong one was used."""
    if len(columns) != 1:
        return ""
    seen = [d for d in _DELIMITERS if d in columns[0]]
    shown = " or ".join("tab" if d == "\t" else repr(d) for d in seen)
    return (
        f" (read as a single column: if the file is {shown}-separated, pass "
        f"--sep {shown if len(seen) == 1 else 'CHAR'})"
        if seen
        else ""
    )


@contextlib.contextmanager
def _reading(path):
    """Read errors as `CleanError`."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise CleanError(f"input file {str(path)!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise CleanError(f"cannot read {str(path)!r}: {exc}") from None


def _read(path, fmt, sep, decimal, header=True):
    """The table, parsed; without ``header`` its columns are 0, 1, 2, ..."""
    with _reading(path):
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=sep, decimal=decimal, header=0 if header else None)


@dataclasses.dataclass
class TextTable:
    """The cells of a .csv/.tsv input as written, which CSV outputs copy.

    ``cells`` holds a str per cell (an empty cell is ''), its columns named as
    those of the parsed table; ``header`` the header line's cells (None: the
    input has none); ``numeric`` the columns parsed as numbers, whose decimal
    mark is rewritten for an output that uses another.
    """

    cells: pd.DataFrame
    header: list | None = None
    line_end: str = "\n"
    decimal: str = "."
    numeric: list = ()

    def __len__(self):
        return len(self.cells)

    def to_csv(self, target, sep, decimal, compression=None):
        cells = self.cells
        if decimal != self.decimal and len(self.numeric):
            cells = cells.copy()
            for col in self.numeric:
                cells[col] = cells[col].str.replace(self.decimal, decimal, regex=False)
        cells.to_csv(
            target,
            index=False,
            header=False if self.header is None else self.header,
            sep=sep,
            lineterminator=self.line_end,
            compression=compression,
        )


def _read_text(path, sep, decimal, frame, header=True):
    """The cells of a .csv/.tsv file as a `TextTable` aligned with ``frame``,
    the table `_read` parsed from it (a RangeIndex, columns as named there)."""
    as_text = {"sep": sep, "dtype": str, "keep_default_na": False}
    with _reading(path):
        # Read as the parsed table was, so rows and columns line up; the
        # header line again on its own, since pandas renames repeated names.
        cells = pd.read_csv(path, header=0 if header else None, **as_text)
        names = None
        if header:
            names = pd.read_csv(path, header=None, nrows=1, **as_text)
            names = names.iloc[0].tolist()
    cells = cells.reset_index(drop=True)
    if cells.shape != frame.shape or (header and len(names) != frame.shape[1]):
        raise CleanError(
            f"cannot read {str(path)!r}: its cells read as text give a table of "
            f"{cells.shape}, not {frame.shape} as parsed"
        )
    cells.columns = frame.columns
    numeric = [
        col
        for col in frame.columns
        if pd.api.types.is_numeric_dtype(frame[col])
        and not pd.api.types.is_bool_dtype(frame[col])
    ]
    return TextTable(cells, names, _line_ending(path), decimal, numeric)


def _new_file_mode(path):
    """The mode ``open(path, 'w')`` would give: kept if the file exists, else
    0o666 less the umask (mkstemp's own 0o600 would survive the rename)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        pass
    mask = os.umask(0o077)  # the only way to read it; restored at once
    os.umask(mask)
    return 0o666 & ~mask


def _to_csv(table, target, fmt, dialects, compression=None):
    """Write a DataFrame or `TextTable` as CSV/TSV text."""
    sep, decimal = dialects[fmt]
    if isinstance(table, TextTable):
        table.to_csv(target, sep, decimal, compression)
    else:
        table.to_csv(
            target, index=False, sep=sep, decimal=decimal, compression=compression
        )


def _write_temp(frame, path, fmt, dialects):
    """Write ``frame`` to a temporary file beside ``path``; return its path.

    ``dialects`` maps 'csv' and 'tsv' to their ``(delimiter, decimal mark)``.
    """
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.close(fd)
        os.chmod(tmp, mode)
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            # The temporary name hides the extension: say what to compress with.
            compression = _COMPRESSION.get(path.suffix.lower())
            _to_csv(frame, tmp, fmt, dialects, compression)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def _write_all(items, dialects, force, stdout=None):
    """Write every ``(frame, path, fmt)``, then move them in place together.

    A path `STDOUT` is written to ``stdout`` once the files are written, before
    they are moved. Temporary files are removed on any failure,
    KeyboardInterrupt and SIGTERM (see `_terminable`) included.
    """
    temps = []
    path = None
    try:
        for frame, path, fmt in items:
            if path is not STDOUT:
                temps.append((_write_temp(frame, path, fmt, dialects), path))
        if not force:  # one may have appeared while we worked
            _refuse_existing(("output", path) for _, path in temps)
        for frame, path, fmt in items:
            if path is STDOUT:
                _to_csv(frame, stdout, fmt, dialects)
                stdout.flush()
        for i, (tmp, path) in enumerate(temps):
            os.replace(tmp, path)
            temps[i] = (None, path)
    except BaseException as exc:
        for tmp, _ in temps:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        if isinstance(exc, OSError):
            where = "standard output" if path is STDOUT else repr(str(path))
            raise CleanError(f"cannot write {where}: {exc}") from None
        raise


class _Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt, so cleanup code runs."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise _Terminated(signum)


@contextlib.contextmanager
def _terminable():
    """Within the block SIGTERM raises `_Terminated`; the old handler returns after.

    Without this, SIGTERM kills the process before ``_write_all`` can remove
    its temporary files.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        # None: a handler installed outside Python; the default is closest.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
