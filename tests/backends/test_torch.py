"""The torch backend: derivatives, solvers, closed forms, skorch, Figure 2."""

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.preprocessing import scale  # noqa: E402
from torch import nn  # noqa: E402

from skinfluence import InfluenceExplainer, StationarityWarning  # noqa: E402
from skinfluence.exceptions import TruncationWarning  # noqa: E402
from skinfluence.solvers import SingularHessianError  # noqa: E402
from skinfluence.torch import (  # noqa: E402
    NegativeCurvatureWarning,
    TorchModel,
    TorchObjective,
    describe,
    refine,
    select_parameters,
    validate_loo,
)

torch.set_num_threads(1)


def _rel(a, b):
    a, b = (x.numpy() if torch.is_tensor(x) else np.asarray(x) for x in (a, b))
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.fixture(scope="module")
def mlp_data():
    """A tanh MLP on 3 classes, refined to a stationary point."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0.5)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    model = TorchModel(net, weight_decay=0.05).fit(X, y)
    assert refine(model, X, y) < 1e-8
    return model, X, y


def _objective(model, X, y, params="all"):
    spec = describe(model)
    names = select_parameters(spec.module, params)
    return TorchObjective(
        spec, names, torch.as_tensor(X), torch.as_tensor(y, dtype=torch.long)
    )


def test_import_skinfluence_does_not_import_torch():
    code = "import sys, skinfluence; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


# -- derivatives against finite differences -------------------------------------
def test_gradients_hvp_mixed_against_finite_differences(mlp_data):
    model, X, y = mlp_data
    obj = _objective(model, X, y)
    theta, p, h = obj.theta, obj.n_params, 1e-6
    rng = np.random.default_rng(1)
    E = torch.eye(p, dtype=torch.float64)
    # per-sample gradients: central differences of the per-sample losses
    G = obj.per_sample_gradients(obj.X[:5], obj.y[:5])
    fd = torch.stack(
        [
            (
                obj.losses(theta + h * E[j], obj.X[:5], obj.y[:5])
                - obj.losses(theta - h * E[j], obj.X[:5], obj.y[:5])
            )
            / (2 * h)
            for j in range(p)
        ],
        dim=1,
    )
    assert _rel(G, fd) < 1e-7
    # Hessian-vector products: differences of the mean gradient (with decay)
    V = torch.as_tensor(rng.normal(size=(p, 2)))

    HV = obj.hvp(V)
    for k in range(2):
        shifted = [TorchObjective(obj.spec, obj.names, obj.X, obj.y) for _ in range(2)]
        shifted[0].theta = theta + h * V[:, k]
        shifted[1].theta = theta - h * V[:, k]
        fd = (shifted[0].mean_gradient() - shifted[1].mean_gradient()) / (2 * h)
        assert _rel(HV[:, k], fd) < 1e-6
    assert _rel(obj.hessian() @ V, HV) < 1e-12
    # mixed derivative d/dx (g_i . v): differences in the input
    M = obj.mixed_products(obj.X[:3], obj.y[:3], V)  # (3, 2, d)
    d = X.shape[1]
    for j in range(d):
        Xp, Xm = obj.X[:3].clone(), obj.X[:3].clone()
        Xp[:, j] += h
        Xm[:, j] -= h
        gv = (
            (
                obj.per_sample_gradients(Xp, obj.y[:3])
                - obj.per_sample_gradients(Xm, obj.y[:3])
            )
            / (2 * h)
            @ V
        )
        assert _rel(M[:, :, j], gv) < 1e-6


# -- the closed form of L2 logistic regression ----------------------------------
# (the ``logistic_pair`` fixture lives in conftest.py)


@pytest.mark.parametrize(
    "method, args",
    [
        ("influence", "test"),
        ("self_influence", None),
        ("influence_params", None),
        ("perturbation_influence", "test"),
        ("relative_influence", "test"),
        ("test_loss", "test"),
    ],
)
def test_logistic_regression_closed_form(logistic_pair, method, args):
    ref, ours, X, y = logistic_pair
    call = (X[:4], y[:4]) if args else ()
    assert _rel(getattr(ours, method)(*call), getattr(ref, method)(*call)) < 1e-6


@pytest.mark.parametrize("target", ["decision_function", "predict_proba"])
def test_logistic_regression_targets(logistic_pair, target):
    ref, ours, X, y = logistic_pair
    assert (
        _rel(ours.influence(X[:4], target=target), ref.influence(X[:4], target=target))
        < 1e-6
    )


def test_logistic_regression_loo_and_top(logistic_pair):
    ref, ours, X, y = logistic_pair
    n = len(y)
    # Mean loss + fixed decay: removing a row also strengthens the decay by 1/n,
    # which adds g_t' H^-1 q / n with q = wd * theta (zero for the bias).
    obj = ours.objective_
    Gt = obj.test_gradients(
        torch.as_tensor(X[:3]), torch.as_tensor(y[:3]).double(), "loss"
    )
    H = torch.as_tensor(ref.solver_.inverse())
    shift = (Gt @ H @ obj.penalty_gradient()).numpy()
    expected = -ref.influence(X[:3], y[:3]) / n + shift[:, None] / n
    assert _rel(ours.loo_change(X[:3], y[:3]), expected) < 1e-6
    a = ours.top_influential(X[:2], y[:2], k=3)
    b = ref.top_influential(X[:2], y[:2], k=3)
    assert (a["train_row"].to_numpy() == b["train_row"].to_numpy()).all()
    blocks = list(ours.influence_blocks(X[:2], y[:2]))
    full = np.hstack([block for _, _, block in blocks])
    assert _rel(full, ref.influence(X[:2], y[:2])) < 1e-6
    # The table's loo_change comes from the listed rows' gradients alone.
    loo = ours.loo_change(X[:2], y[:2])
    listed = loo[a["test_row"].to_numpy(), a["train_row"].to_numpy()]
    np.testing.assert_allclose(a["loo_change"], listed, rtol=1e-12, atol=1e-15)


def test_row_index_kept_in_top_influential(logistic_pair):
    import pandas as pd

    ref, ours, X, y = logistic_pair
    names = [f"img{i}" for i in range(len(y))]
    model = ours.estimator_
    ex = InfluenceExplainer(model).fit(pd.DataFrame(X, index=names), y)
    table = ex.top_influential(pd.DataFrame(X[:1], index=["t0"]), y[:1], k=2)
    assert set(table["test_row"]) == {"t0"}
    assert all(str(r).startswith("img") for r in table["train_row"])


# -- every solver against the exact inverse -------------------------------------
@pytest.mark.parametrize(
    "solver, tol",
    [("cg", 1e-8), ("lowrank", 1e-10), ("arnoldi", 1e-10), ("lissa", 1e-3)],
)
def test_solvers_match_exact(mlp_data, solver, tol):
    model, X, y = mlp_data
    # LiSSA's error falls as (1 - lambda_min / scale)^depth: damping keeps it short.
    damping = 0.5 if solver == "lissa" else 0.0
    exact = InfluenceExplainer(model, solver="exact", damping=damping).fit(X, y)
    if solver in ("lowrank", "arnoldi"):
        from skinfluence.solvers import LowRankSolver

        solver_obj = LowRankSolver(rank=exact.n_params_)  # full rank: exact
        other = InfluenceExplainer(model, solver=solver).fit(X, y)
        assert type(other.solver_).__name__ == "LowRankSolver"
        other = InfluenceExplainer(model, solver=solver_obj).fit(X, y)
    else:
        other = InfluenceExplainer(model, solver=solver, damping=damping).fit(X, y)
    assert _rel(other.influence(X[:3], y[:3]), exact.influence(X[:3], y[:3])) < tol


def test_ekfac_exact_on_kronecker_hessian():
    """One linear layer under squared error: H = E[a a'] kron (2/K) I exactly."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    Y = X @ rng.normal(size=(5, 2)) + 0.3 * rng.normal(size=(80, 2))
    model = TorchModel(nn.Linear(5, 2).double(), loss="mse", weight_decay=0.1)
    model.fit(X, Y)
    refine(model, X, Y)
    exact = InfluenceExplainer(model, solver="exact").fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # exact: no warning
        ekfac = InfluenceExplainer(model, solver="ekfac").fit(X, Y)
    assert ekfac.solver_.residual_ < 1e-10
    assert _rel(ekfac.influence(X[:3], Y[:3]), exact.influence(X[:3], Y[:3])) < 1e-10


def test_ekfac_far_from_the_hessian_says_so():
    # A tanh MLP with weak decay: cross-layer blocks and the network's own
    # curvature matter, and EK-FAC's influence was 3.7 times the exact norm.
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16, y[:300]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 10)).double()
    model = TorchModel(net, weight_decay=1e-3).fit(X, y)
    refine(model, X, y, max_iter=2000)
    with pytest.warns(TruncationWarning, match="EK-FAC's inverse is far") as record:
        ekfac = InfluenceExplainer(model, solver="ekfac").fit(X, y)
    assert record[0].filename == __file__
    exact = InfluenceExplainer(model).fit(X, y)
    # The residual it reports is the one of its solves.
    G = exact.objective_.per_sample_gradients(
        exact.objective_.X[:5], exact.objective_.y[:5]
    )
    B = G.T.detach().numpy()
    H = exact.objective_.hessian().numpy()
    R = H @ ekfac.solver_.solve(B) - B
    worst = np.max(np.linalg.norm(R, axis=0) / np.linalg.norm(B, axis=0))
    assert 0.1 < worst and worst <= 1.5 * ekfac.solver_.residual_
    error = _rel(ekfac.influence(X[:3], y[:3]), exact.influence(X[:3], y[:3]))
    assert error > 0.1


def test_ekfac_eigenvalues_are_the_exact_diagonal_in_its_basis():
    """On a conv layer (a linear map of its weights) the Gauss-Newton block is
    the Hessian: EK-FAC's corrected eigenvalues must be its exact diagonal in
    the Kronecker eigenbasis."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:60] / 16, y[:60]
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 2, 3, stride=2),
        nn.Flatten(),
        nn.Linear(18, 10),
    ).double()
    model = TorchModel(net, weight_decay=0.1).fit(X, y)
    ex = InfluenceExplainer(model, solver="ekfac", params=["1"], stationarity_tol=1e9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex.fit(X, y)
    solver = ex.solver_
    UG, UA = solver._bases["1"]
    H = ex.objective_.hessian()  # weight (2, 9) then bias (2,)
    order = np.concatenate([np.arange(18).reshape(2, 9), 18 + np.arange(2)[:, None]], 1)
    Hm = H[order.ravel()][:, order.ravel()]
    U = torch.kron(UG, UA)
    diag = torch.diag(U.T @ Hm @ U).reshape(2, 10)
    assert _rel(solver._denominators["1"], diag) < 1e-10


def test_ekfac_tracks_exact_on_a_cnn():
    X, y = load_digits(return_X_y=True)
    X, y = X[:100] / 16, y[:100]
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 3, 3, padding=1),
        nn.Softplus(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(48, 10),
    ).double()
    model = TorchModel(net, weight_decay=0.05).fit(X, y)
    refine(model, X, y)
    exact = InfluenceExplainer(model).fit(X, y).influence(X[:4], y[:4])
    ekfac = InfluenceExplainer(model, solver="ekfac").fit(X, y).influence(X[:4], y[:4])
    r = np.corrcoef(exact.ravel(), ekfac.ravel())[0, 1]
    assert r > 0.9


# -- parameter selection -------------------------------------------------------
def test_params_last_is_the_exact_top_layer_block(mlp_data):
    model, X, y = mlp_data
    full = InfluenceExplainer(model).fit(X, y)
    last = InfluenceExplainer(model, params="last").fit(X, y)
    named = InfluenceExplainer(model, params=["2"]).fit(X, y)
    assert last.backend_.parameter_names_ == ["2.weight", "2.bias"]
    assert last.n_params_ == 18
    # -g_t' H_LL^-1 g_i from the full Hessian's last-layer block
    obj = full.objective_
    H = obj.hessian()[-18:, -18:]
    Xt = torch.as_tensor(X[:2])
    Gt = obj.test_gradients(Xt, torch.as_tensor(y[:2]), "loss")[:, -18:]
    G = obj.per_sample_gradients(obj.X, obj.y)[:, -18:]
    expected = -(Gt @ torch.linalg.solve(H, G.T)).numpy()
    assert _rel(last.influence(X[:2], y[:2]), expected) < 1e-10
    assert _rel(named.influence(X[:2], y[:2]), expected) < 1e-10


def test_params_and_solver_validation(mlp_data):
    model, X, y = mlp_data
    X2, y2 = X[:, :2], X[:, 0]
    with pytest.raises(ValueError, match="are for torch models"):
        InfluenceExplainer(Ridge(), params="last").fit(X2, y2)
    with pytest.raises(ValueError, match="are for torch models"):
        InfluenceExplainer(Ridge(), solver="ekfac").fit(X2, y2)
    arnoldi = InfluenceExplainer(Ridge(), solver="arnoldi").fit(X2, y2)
    assert type(arnoldi.solver_).__name__ == "LowRankSolver"
    with pytest.raises(ValueError, match="matches no parameter"):
        InfluenceExplainer(model, params=["nope"]).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        InfluenceExplainer(model).fit(X, y, sample_weight=np.ones(len(y)))
    with pytest.raises(ValueError, match="method='influence' only"):
        InfluenceExplainer(model).fit(X, y).loo_change(X[:1], y[:1], method="newton")


# -- non-convexity ----------------------------------------------------------------
def test_far_from_stationary_warns_and_negative_curvature_is_reported():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    model = TorchModel(net, weight_decay=1e-3)
    with pytest.warns(StationarityWarning, match="refine"):
        ex = InfluenceExplainer(model, damping=10.0).fit(X, y)
    assert ex.backend_.gradient_norm_ > 1e-3
    # At random weights the Hessian is indefinite: refused undamped ...
    with pytest.raises(SingularHessianError, match="negative curvature"):
        InfluenceExplainer(model, stationarity_tol=1e9).fit(X, y)
    # ... reported when damping makes it invertible
    with pytest.warns(NegativeCurvatureWarning):
        ex = InfluenceExplainer(model, damping=10.0, stationarity_tol=1e9).fit(X, y)
    assert ex.backend_.eigenvalue_range_[0] < 0


# -- skorch -------------------------------------------------------------------
class MLP(nn.Module):
    """A float64 two-layer net for skorch (module level: it must pickle)."""

    def __init__(self, hidden=6):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, 3)
        self.double()

    def forward(self, x):
        return self.head(self.body(x))


def _skorch_net(module=None, **kw):
    skorch = pytest.importorskip("skorch")
    params = dict(
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        optimizer__weight_decay=3e-2,
        lr=0.05,
        max_epochs=5,
        batch_size=64,
        train_split=None,
        verbose=0,
    )
    params.update(kw)
    return skorch.NeuralNetClassifier(MLP if module is None else module, **params)


def _wine():
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    return X[:, :8], y


def test_skorch_pipeline_gridsearch_pickle():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _wine()
    pipe = make_pipeline(StandardScaler(), _skorch_net())
    assert describe(pipe.fit(X, y)[-1]).weight_decay["head.weight"] == 3e-2
    refine(pipe[-1], pipe[:-1].transform(X), y)
    ex = InfluenceExplainer(FrozenEstimator(pipe)).fit(X, y)
    assert ex.backend_.gradient_norm_ < 1e-6
    infl = ex.influence(X[:3], y[:3])
    again = pickle.loads(pickle.dumps(ex))
    np.testing.assert_allclose(again.influence(X[:3], y[:3]), infl, rtol=1e-10)
    # The explainer inside a grid search, refitting the net each time.
    search = GridSearchCV(
        InfluenceExplainer(pipe, damping=1.0, stationarity_tol=1e9),
        {"estimator__neuralnetclassifier__module__hidden": [3, 6]},
        cv=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    best = pickle.loads(pickle.dumps(search.best_estimator_))
    assert best.influence(X[:2], y[:2]).shape == (2, len(y))
    assert best.score(X, y) > 0.5


def test_skorch_refuses_decoupled_decay_and_train_split():
    X, y = _wine()
    Xs = scale(X)
    net = _skorch_net(optimizer=torch.optim.AdamW, optimizer__weight_decay=1e-2)
    with pytest.raises(ValueError, match="decoupled weight decay"):
        InfluenceExplainer(net).fit(Xs, y)
    from skorch.dataset import ValidSplit

    net = _skorch_net(train_split=ValidSplit(5))
    with pytest.raises(ValueError, match="train_split=None"):
        InfluenceExplainer(net).fit(Xs, y)


# -- Koh & Liang's Figure 2 on a CNN ---------------------------------------------
def _bench_loo():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import bench_torch_loo

    return bench_torch_loo


def test_cnn_per_sample_gradients_match_a_loop_and_differ():
    """vmap over grad through Unflatten/Conv2d/AvgPool equals one autograd.grad
    per row, and distinct images give distinct gradients (a collapsed or
    mis-batched model would give every row of a class the same one)."""
    bench = _bench_loo()
    X, y, _, _ = bench.digits(40, 0)
    torch.manual_seed(0)
    model = TorchModel(bench.make_cnn(), weight_decay=1e-2).fit(X, y)
    obj = _objective(model, X, y)
    G = obj.per_sample_gradients(obj.X[:6], obj.y[:6])
    loop = []
    for i in range(6):
        theta = obj.theta.clone().requires_grad_(True)
        loss = obj.losses(theta, obj.X[i : i + 1], obj.y[i : i + 1])[0]
        loop.append(torch.autograd.grad(loss, theta)[0])
    assert _rel(G, torch.stack(loop)) < 1e-12
    same = y[:6][:, None] == y[:6][None]
    dist = torch.cdist(G, G).numpy()
    assert (dist[~same] > 1e-3 * np.abs(G.numpy()).max()).all()


def test_decay_from_the_start_collapses_the_cnn():
    """The symptom behind identical influences: Adam with coupled decay 1e-2
    from random weights drives this CNN to the all-zero stationary point
    (class priors for every image). ``bench_torch_loo.train`` fits the data
    first and adds the decay in the L-BFGS stage (checked in the Figure-2
    test below)."""
    bench = _bench_loo()
    X, y, _, _ = bench.digits(100, 0)
    torch.manual_seed(0)
    module = bench.make_cnn(channels=(4, 3))
    opt = torch.optim.Adam(module.parameters(), lr=1e-2, weight_decay=1e-2)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(30):
        for idx in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(module(Xt[idx]), yt[idx]).backward()
            opt.step()
    collapsed = TorchModel(module, weight_decay=1e-2).fit(X, y)
    proba = collapsed.predict_proba(X)
    assert proba.std(axis=0).max() < 0.02  # the same prediction for every image


def _figure2(n_train, n_remove, seed, weight_decay, channels, max_iter=2000):
    """The documented CNN and recipe (benchmarks/bench_torch_loo.py)."""
    bench = _bench_loo()
    Xtr, ytr, Xte, yte = bench.digits(n_train, seed)
    model, gnorm = bench.train(
        bench.make_cnn(channels=channels), Xtr, ytr, weight_decay, seed, 60, max_iter
    )
    assert gnorm < 1e-4
    assert model.score(Xtr, ytr) > 0.8  # fitted, not collapsed
    ex = InfluenceExplainer(model).fit(Xtr, ytr)
    t = bench.pick_test_point(ex, Xte, yte)
    return validate_loo(ex, Xte[t : t + 1], yte[t : t + 1], n_remove=n_remove)


def test_figure2_small_cnn_fast():
    """100 images, a 281-parameter softplus CNN, decay 5e-2: R 0.9999 measured."""
    check = _figure2(100, 6, seed=0, weight_decay=5e-2, channels=(4, 3), max_iter=1000)
    assert check.pearson_r > 0.98, check.table
    assert 0.5 < check.slope < 1.3
    assert np.ptp(check.table["predicted"]) > 0.1  # rows differ: no collapse


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_figure2_small_cnn_full(seed):
    check = _figure2(1200, 30, seed=seed, weight_decay=1e-2, channels=(8, 6))
    assert check.pearson_r > 0.95, check.table


# -- the final linear layer's Hessian block in closed form --------------------
class _TiedHead(nn.Module):
    """The head's weight also feeds the body: the closed form must step aside."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.head = nn.Linear(3, 3)
        self.double()

    def forward(self, x):
        h = torch.tanh(self.body(x))
        h = h + 0.3 * torch.tanh(h @ self.head.weight)
        return self.head(h)


def _closed_form_cases():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    y3 = rng.integers(0, 3, size=40)
    y2 = (X[:, 0] > 0).astype(int)
    yr = X[:, :2] @ np.array([[1.0, -0.5], [0.3, 2.0]]) + 0.1 * rng.normal(size=(40, 2))

    def mlp(out, last=None):
        layers = [nn.Linear(4, 5), nn.Softplus(), nn.Linear(5, out)]
        return nn.Sequential(*layers, *([last] if last else [])).double()

    cnn = nn.Sequential(
        nn.Unflatten(1, (1, 2, 2)),
        nn.Conv2d(1, 2, 2, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(18, 3),
    ).double()
    return {
        "cross_entropy": (mlp(3), "cross_entropy", X, y3, True),
        "cnn": (cnn, "cross_entropy", X, y3, True),
        "bce": (mlp(1), "bce_with_logits", X, y2, True),
        "mse": (mlp(2), "mse", X, yr, True),
        # log-probabilities after the layer: the output is not the layer's
        "log_softmax": (mlp(3, nn.LogSoftmax(dim=1)), "nll", X, y3, False),
        "tied": (_TiedHead(), "cross_entropy", X, y3, False),
    }


@pytest.mark.parametrize("case", list(_closed_form_cases()))
@pytest.mark.parametrize("params", ["all", "last"])
def test_last_layer_closed_form_equals_products(case, params):
    from skinfluence.torch._last_layer import last_layer_hessian

    torch.manual_seed(0)
    net, loss, X, y, applies = _closed_form_cases()[case]
    model = TorchModel(net, loss=loss, weight_decay=0.05).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StationarityWarning)  # untrained: fine here
        explainer = InfluenceExplainer(model, params=params, solver="cg").fit(X, y)
    obj = explainer.objective_
    assert (last_layer_hessian(obj) is not None) == applies
    eye = torch.eye(obj.n_params, dtype=obj.dtype)
    by_products = obj.hvp(eye)
    assert _rel(obj.hessian(), (by_products + by_products.T) / 2) < 1e-12


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_refine_says_when_it_stops_short(dtype):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).to(getattr(torch, dtype))
    model = TorchModel(net, weight_decay=1e-2).fit(X.astype(dtype), y)
    advice = "raise max_iter" if dtype == "float64" else r"module\.double\(\)"
    max_iter = 2 if dtype == "float64" else 500
    with pytest.warns(ConvergenceWarning, match=advice) as record:
        refine(model, X.astype(dtype), y, max_iter=max_iter)
    assert record[0].filename == __file__
    if dtype == "float64":
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert refine(model, X, y) < 1e-8


def test_refine_reaches_a_minimum_an_adam_fit_stopped_short_of():
    # An Adam-trained MLP with weak decay is ill-conditioned: plain L-BFGS
    # crawled (2000 iterations left the gradient at 1e-7 on digits). Whitened
    # by the Hessian it reaches tol, and the explainer finds it stationary.
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(64, 8)
            self.out = nn.Linear(8, 10)

        def forward(self, x):
            return self.out(nn.functional.softplus(self.hidden(x)))

    torch.manual_seed(0)
    net = _skorch_net(Net, optimizer__weight_decay=1e-3, lr=0.01, max_epochs=20).fit(
        X.astype(np.float32), y
    )
    net.module_.double()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", StationarityWarning)
        refine(net, X, y, max_iter=300)
        explainer = InfluenceExplainer(FrozenEstimator(net)).fit(X, y)
    assert explainer.stationarity_ < 1e-3


def test_a_mismatched_x_is_named_at_fit():
    net = nn.Sequential(nn.Linear(4, 2)).double()
    with pytest.raises(ValueError, match=r"shape \(5, 3\).*number of columns"):
        TorchModel(net).fit(np.zeros((5, 3)), np.zeros(5, dtype=int))


def test_string_labels_name_the_classes_parameter():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), np.array(["a", "b"] * 10)
    net = nn.Sequential(nn.Linear(3, 2)).double()
    with pytest.raises(ValueError, match=r"e\.g\. \['a', 'b'\].*classes=\[\.\.\.\]"):
        InfluenceExplainer(TorchModel(net, weight_decay=1e-2)).fit(X, y)
    model = TorchModel(net, weight_decay=1e-2, classes=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StationarityWarning)  # an untrained net
        explainer = InfluenceExplainer(model).fit(X, y)
    assert explainer.influence(X[:2], y[:2]).shape == (2, 20)


def test_a_regressor_on_two_dimensional_targets_lists_its_rows():
    # skorch's NeuralNetRegressor needs y of shape (n, 1).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = (X @ [1.0, -0.5, 0.3] + 0.1 * rng.normal(size=80)).reshape(-1, 1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    model = TorchModel(net, loss="mse", weight_decay=1e-2).fit(X[:60], y[:60])
    assert refine(model, X[:60], y[:60], max_iter=3000) < 1e-8
    ex = InfluenceExplainer(FrozenEstimator(model)).fit(X[:60], y[:60])
    table = ex.top_influential(X[60:62], y[60:62], k=3)
    infl = ex.influence(X[60:62], y[60:62])
    assert table.label.dtype == np.float64
    np.testing.assert_array_equal(table.label, y[:60, 0][table.train_row])
    np.testing.assert_array_equal(
        table.influence, infl[table.test_row, table.train_row]
    )


def test_the_detector_refuses_a_network_before_training_it(mlp_data):
    from skinfluence import MislabelDetector

    model, X, y = mlp_data
    for estimator in (model, FrozenEstimator(model)):
        with pytest.raises(TypeError, match="neural network.*top_self_influence"):
            MislabelDetector(estimator).fit(X, y)
