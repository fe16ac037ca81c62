"""The error ``skinfluence clean`` reports, and how its messages show values."""

import re


class CleanError(Exception):
    """Bad input: reported as ``error: ...`` with exit status 2."""


def _listing(values, limit=10):
    """``'a', 'b', ...`` for at most ``limit`` values."""
    values = list(values)
    text = ", ".join(
        repr(v.item() if hasattr(v, "item") else v) for v in values[:limit]
    )
    return text + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


def _quote(name):
    """``name`` as one shell word."""
    return name if re.fullmatch(r"[\w./:@%+-]+", name) else repr(name)
