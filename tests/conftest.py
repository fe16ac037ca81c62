import numpy as np
import pytest


def pytest_configure(config):
    # numpy >= 1.25 moved RankWarning to numpy.exceptions; older ones lack it.
    where = "numpy.exceptions" if hasattr(np, "exceptions") else "numpy"
    config.addinivalue_line("filterwarnings", f"error::{where}.RankWarning")


@pytest.fixture(params=["tqdm", "plain"])
def bar(request, monkeypatch):
    """Progress drawn by tqdm, or (tqdm hidden) as plain lines."""
    if request.param == "tqdm":
        pytest.importorskip("tqdm")
    else:
        from skinfluence.utils import _progress

        monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    return request.param


@pytest.fixture(scope="session")
def logistic_pair():
    """LogisticRegression and the same model as a one-layer torch net.

    sklearn minimises ``C sum_i loss_i + 1/2 ||w||^2`` (bias unpenalized),
    i.e. ``mean loss + ||w||^2 / (2 C n)``: weight decay ``1 / (C n)`` on the
    weight only. Returns ``(reference explainer, torch explainer, X, y)``.
    """
    torch = pytest.importorskip("torch")
    from sklearn.datasets import load_breast_cancer
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import scale

    from skinfluence import InfluenceExplainer
    from skinfluence.torch import TorchModel

    torch.set_num_threads(1)
    X, y = load_breast_cancer(return_X_y=True)
    X, y = scale(X)[:250], y[:250]
    C, n = 0.5, len(y)
    lr = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
    ref = InfluenceExplainer(FrozenEstimator(lr)).fit(X, y)
    lin = torch.nn.Linear(X.shape[1], 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(lr.coef_))
        lin.bias.copy_(torch.as_tensor(lr.intercept_))
    model = TorchModel(
        lin, loss="bce_with_logits", weight_decay={"weight": 1 / (C * n)}
    )
    return ref, InfluenceExplainer(model).fit(X, y), X, y


@pytest.fixture
def rng():
    """A freshly seeded generator, so every test is reproducible on its own."""
    return np.random.default_rng(0)


def pytest_addoption(parser):
    parser.addoption(
        "--runslow",
        action="store_true",
        help="also run the long protocol reproductions marked @pytest.mark.slow",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow protocol reproduction: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
