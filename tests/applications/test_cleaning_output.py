"""MislabelDetector in a notebook: the rounds bar, and per-row results in pandas."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, load_wine

from skinfluence import MislabelDetector, OverCleaningWarning


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


# -- pandas output ------------------------------------------------------------------
PER_ROW = {
    "scores_": "score",
    "label_issues_": "label_issue",
    "suggested_labels_": "suggested_label",
    "mislabel_probability_": "mislabel_probability",
}


@pytest.fixture(scope="module")
def wine_frame():
    X, y = load_wine(return_X_y=True, as_frame=True)
    y = y.to_numpy().copy()
    y[:12] = (y[:12] + 1) % 3
    X.index = [f"bottle{i}" for i in range(len(X))]
    return X, y


@pytest.fixture(scope="module")
def plain_detector(wine_frame):
    return MislabelDetector().fit(*wine_frame)


def test_per_row_attributes_are_series_by_the_rows_labels(wine_frame, plain_detector):
    X, y = wine_frame
    detector = MislabelDetector().set_output(transform="pandas").fit(X, y)
    for attr, name in PER_ROW.items():
        series = getattr(detector, attr)
        assert isinstance(series, pd.Series) and series.name == name, attr
        pd.testing.assert_index_equal(series.index, X.index)
        np.testing.assert_array_equal(series.to_numpy(), getattr(plain_detector, attr))
    assert isinstance(detector.ranking_, np.ndarray)  # positions stay positions
    np.testing.assert_array_equal(detector.ranking_, plain_detector.ranking_)
    # Read when read: the default output gives the arrays back.
    detector.set_output(transform="default")
    assert all(isinstance(getattr(detector, a), np.ndarray) for a in PER_ROW)


def test_repeated_index_warning_names_the_detectors_outputs(wine_frame):
    X, y = wine_frame
    X = X.set_axis([f"bottle{i // 2}" for i in range(len(X))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector = MislabelDetector(contamination=0.05).fit(X, y)
    repeated = [str(w.message) for w in caught if "repeated labels" in str(w.message)]
    assert len(repeated) == 1
    assert "get_label_issues()" in repeated[0]
    assert "top_influential" not in repeated[0]
    assert detector.get_label_issues()["row"].iloc[0].startswith("bottle")


def test_global_config_and_the_detectors_own_setting(wine_frame):
    X, y = wine_frame
    X = X.set_axis(np.arange(len(X)) + 500)
    with sklearn.config_context(transform_output="pandas"):
        detector = MislabelDetector(method="self_influence", contamination=0.1)
        detector.fit(X, y)
        scores, issues = detector.scores_, detector.label_issues_
        report = detector.get_label_issues()
        with warnings.catch_warnings():  # 10% dropped: more than it estimates
            warnings.simplefilter("ignore", OverCleaningWarning)
            X_clean, _ = detector.fit_resample(X, y)
        own = clone(detector).set_output(transform="default").fit(X, y)
        assert isinstance(own.scores_, np.ndarray)
    pd.testing.assert_index_equal(scores.index, X.index)
    assert set(report["row"]) == set(issues.index[issues]) and len(report)
    assert len(X_clean) == len(X) - int(detector.label_issues_.sum())
    assert isinstance(detector.scores_, np.ndarray)  # outside the context


def test_positions_without_an_index(wine_frame):
    X, y = wine_frame
    detector = MislabelDetector(n_rounds=1).set_output(transform="pandas")
    scores = detector.fit(X.to_numpy(), y).scores_
    pd.testing.assert_index_equal(scores.index, pd.RangeIndex(len(y)))


def test_set_output_checks_its_argument():
    with pytest.raises(ValueError, match="'default' or 'pandas', got 'polars'"):
        MislabelDetector().set_output(transform="polars")
    detector = MislabelDetector()
    assert detector.set_output() is detector
    assert not hasattr(detector, "scores_")  # not fitted
