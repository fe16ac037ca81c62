"""verbose in the torch backend: L-BFGS (refine, retraining) and the solvers."""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402
from skinfluence.torch import TorchModel, refine, validate_loo  # noqa: E402

torch.set_num_threads(1)


def last_state(err, desc):
    return [s for s in re.split(r"[\r\n]", err) if desc in s][-1]


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    return X, y


def _model(X, y):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    return TorchModel(net, weight_decay=0.05).fit(X, y)


def test_refine_shows_its_lbfgs(capsys, bar):
    X, y = _data()
    refine(_model(X, y), X, y, verbose=1)
    state = last_state(capsys.readouterr().err, "L-BFGS on 60 rows")
    assert re.search(r"\b\d+( evaluations|it)\b", state), state
    gradient = float(re.search(r"gradient (\S+) \(tol 1e-10\)", state).group(1))
    assert gradient < 1e-8  # the last evaluation: refined
    refine(_model(X, y), X, y)
    assert capsys.readouterr() == ("", "")


def test_retraining_and_solves_follow_the_explainer(capsys, bar):
    X, y = _data()
    model = _model(X, y)
    refine(model, X, y)
    ex = InfluenceExplainer(model, solver="cg", verbose=1).fit(X, y)
    assert ex.solver_.verbose == 1
    assert "CG solve (" in capsys.readouterr().err
    validate_loo(ex, X[:1], y[:1], n_remove=2, verbose=1)
    err = capsys.readouterr().err
    assert "L-BFGS on 59 rows" in err  # each retraining without one row
    assert "2/2" in last_state(err, "validate_loo refits")
    quiet = InfluenceExplainer(model, solver="cg").fit(X, y)
    validate_loo(quiet, X[:1], y[:1], n_remove=2)
    assert capsys.readouterr() == ("", "")
