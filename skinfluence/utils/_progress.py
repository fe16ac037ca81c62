"""Progress on long work: a tqdm bar when tqdm is installed, else plain lines.

scikit-learn's convention: ``verbose=0`` prints nothing; ``verbose >= 1``
shows progress on standard error. tqdm (the ``progress`` extra) draws a bar
that works in terminals and in Jupyter; without it, a line per stage and one
per tenth of a loop.

A bar that stops early (a loop left by ``break``, a solver that converged
before its iteration limit) ends at the count reached: :meth:`close` sets the
total to it, so nothing is left on screen at, say, "1/3". Inner bars
(``leave=False``: one solve, one refit) vanish when done under tqdm and print
one closing line without it.
"""

import sys
import time


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _line(text):
    print(f"[skinfluence] {text}", file=sys.stderr, flush=True)


class _Silent:
    """``verbose=0``: a bar that shows nothing."""

    n = 0

    def update(self, n=1):
        self.n += n

    def note(self, text):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _TqdmBar(_Silent):
    def __init__(self, tqdm, desc, total, leave):
        self._bar = tqdm(desc=desc, total=total, leave=leave, file=sys.stderr)

    @property
    def n(self):
        return self._bar.n

    def update(self, n=1):
        self._bar.update(n)

    def note(self, text):
        self._bar.set_postfix_str(text, refresh=False)

    def close(self):
        bar = self._bar
        if bar.disable:  # closed already
            return
        if bar.total is not None and bar.n < bar.total:
            bar.total = bar.n
        bar.refresh()
        bar.close()


class _LineBar(_Silent):
    """Without tqdm: a line per tenth of a known total, and a closing line."""

    def __init__(self, desc, total, leave, unit):
        self.desc, self.total, self.leave, self.unit = desc, total, leave, unit
        self.n, self.shown, self.text, self.closed = 0, 0, "", False
        self.start = time.perf_counter()

    def _show(self):
        elapsed = time.perf_counter() - self.start
        count = f"{self.n}/{self.total}" if self.total else f"{self.n} {self.unit}"
        text = f", {self.text}" if self.text else ""
        _line(f"{self.desc}: {count} ({elapsed:.1f} s){text}")
        self.shown = self.n

    def update(self, n=1):
        self.n += n
        if self.leave and self.total:
            step = max(1, self.total // 10)
            if self.n // step > self.shown // step or self.n >= self.total:
                self._show()

    def note(self, text):
        self.text = text

    def close(self):
        if self.closed:
            return
        self.closed = True
        early = bool(self.total) and self.n < self.total
        if early:
            self.total = self.n
        if early or self.n != self.shown or not self.leave or not self.n:
            self._show()


def progress_bar(desc, *, total=None, verbose=0, leave=True, unit="done"):
    """A bar to ``update`` by hand, with a ``note`` (tqdm's postfix).

    Use it as a context manager, or call ``close`` when done: the bar then
    ends at the count reached. ``verbose=0`` gives a bar that prints nothing.
    ``unit`` names the count in the plain line when ``total`` is unknown
    ("35 iterations").
    """
    if not verbose:
        return _Silent()
    tqdm = _tqdm()
    if tqdm is None:
        return _LineBar(desc, total, leave, unit)
    return _TqdmBar(tqdm, desc, total, leave)


def progress(iterable, *, desc, total=None, verbose=0, leave=True):
    """``iterable``, wrapped in a progress bar when ``verbose``.

    An item counts once the loop body that received it is done; leaving the
    loop early ends the bar at the items done (close the generator, e.g. with
    :func:`contextlib.closing`, for that to happen at once).
    """
    if not verbose:
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return _tracked(
        iterable, progress_bar(desc, total=total, verbose=verbose, leave=leave)
    )


def _tracked(iterable, bar):
    with bar:
        for item in iterable:
            yield item
            bar.update()


def stage(message, verbose=0):
    """One line naming a stage of long work, when ``verbose``."""
    if verbose:
        tqdm = _tqdm()
        line = f"[skinfluence] {message}"
        if tqdm is not None:
            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)
