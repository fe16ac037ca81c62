"""Memory budget and chunked loops under scikit-learn's ``working_memory``."""

import os

import numpy as np
from joblib import effective_n_jobs
from sklearn import get_config
from sklearn.utils.parallel import Parallel, delayed

# Refuse to allocate a result larger than this share of physical memory.
# Refuse to allocate a result larger than this share of physical memory.
_MEMORY_SHARE = 0.5


def physical_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def check_result_size(shape, what, alternative):
    """Raise MemoryError, naming the size and a cheaper call, if ``shape`` is huge."""
    n_bytes = 8 * float(np.prod(shape, dtype=np.float64))
    limit = _MEMORY_SHARE * physical_memory_bytes()
    if n_bytes > limit:
        raise MemoryError(
            f"{what} of shape {tuple(shape)} would need {n_bytes / 2**30:.1f} GiB, "
            f"more than half of this machine's memory ({limit / 2**30 * 2:.1f} GiB). "
            f"{alternative}"
        )


# -- memory budget and chunked loops ------------------------------------------
# Cap on rows per chunk whatever the budget: a Hessian built from 16,384-row
# chunks took ~25% longer than from 65,536-row ones (50,000 x 300), while
# working_memory still bounds the temporaries.
MAX_CHUNK_ROWS = 65536


def n_workers(n_jobs):
    """Number of workers ``n_jobs`` means (None = 1, -1 = all cores), as joblib."""
    return effective_n_jobs(n_jobs)


def chunk_slices(n_rows, row_bytes, n_jobs=None, max_rows=MAX_CHUNK_ROWS):
    """Row slices whose temporaries stay within scikit-learn's ``working_memory``.

    Parameters
    ----------
    n_rows : int
    row_bytes : float
        Bytes of temporaries one row of a chunk needs.
    n_jobs : int or None
        Chunks processed at once; they share the budget.
    max_rows : int
        Rows per chunk at most, whatever the budget.

    Returns
    -------
    list of slice
        Consecutive slices covering ``range(n_rows)``; at least one row each.
    """
    budget = get_config()["working_memory"] * 2**20 / n_workers(n_jobs)
    size = int(max(1, min(n_rows, max_rows, budget // max(row_bytes, 1.0))))
    return [slice(s, min(s + size, n_rows)) for s in range(0, n_rows, size)]


def map_chunks(func, chunks, n_jobs=None):
    """``func(chunk)`` for every chunk, in order, as an iterator.

    With ``n_jobs`` > 1 the calls run in joblib threads (BLAS and numpy's large
    array loops release the GIL, and threads share the training data instead
    of copying it into each worker); results arrive in order, at most a few
    chunks ahead of the consumer. scikit-learn's config (``working_memory``)
    is passed on to the threads.
    """
    if n_workers(n_jobs) == 1 or len(chunks) < 2:
        return map(func, chunks)
    return Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
        delayed(func)(chunk) for chunk in chunks
    )
