"""verbose=0 prints nothing; verbose=1 shows progress, with or without tqdm."""

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, validate_loo


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_explainer_stages(data, capsys, bar):
    X, y = data
    InfluenceExplainer(LogisticRegression(), verbose=1).fit(X[:200], y[:200])
    err = capsys.readouterr().err
    assert "fitting LogisticRegression" in err
    assert "Hessian of LogisticRegression's objective" in err
    assert "Newton step" in err  # the default tol leaves a step to finish


def test_validate_loo_progress(data, capsys, bar):
    X, y = data
    ex = InfluenceExplainer(LogisticRegression(tol=1e-10)).fit(X[:150], y[:150])
    capsys.readouterr()
    validate_loo(ex, X[200:201], y[200:201], n_remove=4, n_random=0, verbose=1)
    err = capsys.readouterr().err
    assert "validate_loo refits" in err
    if bar == "plain":
        assert "4/4" in err


def test_silent_by_default(data, capsys):
    X, y = data
    ex = InfluenceExplainer(LogisticRegression()).fit(X[:150], y[:150])
    validate_loo(ex, X[200:201], y[200:201], n_remove=3, n_random=0)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


def test_detector_progress_and_silence(data, capsys, bar):
    from skinfluence import MislabelDetector

    X, y = data
    y = y.copy()
    y[:20] = 1 - y[:20]
    MislabelDetector(verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "round 1: held-out scores (loo_loss)" in err
    assert "MislabelDetector rounds" in err
    MislabelDetector().fit(X, y)
    assert capsys.readouterr().err == ""
