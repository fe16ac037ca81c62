"""MislabelDetector in a notebook: the rounds bar, and per-row results in pandas."""

import re

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

from skinfluence import MislabelDetector


def last_state(err, desc):
    return [s for s in re.split(r"[\r\n]", err) if desc in s][-1]


def _flipped(loader, k):
    X, y = loader(return_X_y=True)
    y = y.copy()
    rows = np.random.default_rng(0).choice(len(y), k, replace=False)
    y[rows] = (y[rows] + 1) % len(np.unique(y))
    return X, y


# -- the rounds bar -----------------------------------------------------------------
@pytest.mark.parametrize(
    "loader, k, n_rounds, reason",
    [
        (load_breast_cancer, 20, 6, "stopped: the flags repeat"),
        (load_iris, 0, 3, "stopped: no row to refit without"),
        (load_breast_cancer, 20, 2, None),
    ],
)
def test_rounds_bar_ends_at_the_rounds_run(capsys, bar, loader, k, n_rounds, reason):
    X, y = _flipped(loader, k)
    detector = MislabelDetector(n_rounds=n_rounds, verbose=1).fit(X, y)
    n = detector.n_rounds_
    assert (n < n_rounds) == (reason is not None)
    err = capsys.readouterr().err
    state = last_state(err, "MislabelDetector rounds")
    assert re.findall(r"(\d+)/(\d+)", state) == [(str(n), str(n))], state
    if reason is not None:
        assert reason in state
    else:
        assert "stopped" not in err
    for r in range(2, n + 1):
        assert f"round {r}: refit without" in err
    assert f"round {n + 1}:" not in err


def test_rounds_bar_silent_at_verbose_zero(capsys, bar):
    X, y = _flipped(load_breast_cancer, 20)
    MislabelDetector(n_rounds=6).fit(X, y)
    assert capsys.readouterr() == ("", "")
