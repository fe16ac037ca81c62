"""Progress on long work: a tqdm bar when tqdm is installed, else plain lines.

scikit-learn's convention: ``verbose=0`` prints nothing; ``verbose >= 1``
shows progress on standard error. tqdm (the ``progress`` extra) draws a bar
that works in terminals and in Jupyter; without it, a line per stage and one
per tenth of a loop.
"""

import sys
import time


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def progress(iterable, *, desc, total=None, verbose=0, leave=True):
    """``iterable``, wrapped in a progress bar when ``verbose``."""
    if not verbose:
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    tqdm = _tqdm()
    if tqdm is not None:
        return tqdm(iterable, desc=desc, total=total, leave=leave, file=sys.stderr)
    return _lines(iterable, desc, total)


def _lines(iterable, desc, total):
    start = time.perf_counter()
    step = max(1, (total or 10) // 10)
    done = 0
    for done, item in enumerate(iterable, 1):
        yield item
        if total and (done % step == 0 or done == total):
            elapsed = time.perf_counter() - start
            print(
                f"[skinfluence] {desc}: {done}/{total} ({elapsed:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    if not total:
        print(f"[skinfluence] {desc}: {done} done", file=sys.stderr, flush=True)


def stage(message, verbose=0):
    """One line naming a stage of long work, when ``verbose``."""
    if verbose:
        tqdm = _tqdm()
        line = f"[skinfluence] {message}"
        if tqdm is not None:
            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)
