"""Attribution quality and time: skinfluence against dattri and TRAK (traker).

Every method scores the same fitted models on the same test rows (100), and
is judged on the same refits:

- LDS (Park et al., 2023): 100 random halves of the training rows, each
  refitted warm-started from the full fit (skinfluence's ``refit_outputs``:
  whitened L-BFGS, in memory or on the network); per test row, the Spearman
  correlation over the subsets between the method's predicted test loss and
  the refitted one, averaged over test rows.
- LOO: 40 random training rows, each removed and the model refitted; Pearson
  correlation between the predicted and the actual change of the summed test
  loss.
- noisy-label AUC: 10% of the labels flipped, the model refitted on them,
  training rows ranked by each method's self-influence.
- time: attributing the test rows (fitting the explainer included), in
  seconds.

Tasks (``--tasks``; ``--quick`` shrinks the training sets):

- ``speed``: ``validate_lds`` timed on a 5,000 x 784 binary logistic model.
- ``digits``: L2 logistic regression, 10 classes, no intercept (so the
  penalty is ``lam I`` exactly, as the peers' ``regularization`` adds it),
  ``C=1`` on 1,200 digits (pixels / 16; ``lam = 1 / (C n)``), 640 parameters.
- ``mnist-shaped``: the same model, ``C=0.1``, on 5,000 generated rows shaped
  like dattri's MNIST benchmark (:func:`mnist_shaped`): 28 x 28 pixels in
  [0, 1], about 80% of them 0, neighbouring pixels correlated (blurred
  strokes), 10 classes whose templates every row blends with another
  class's (weight up to 0.6), plus a Gaussian mix of 30 shared stroke
  images; 7,840 parameters. The rows span a few hundred directions and the
  Hessian's spectrum falls off over them, so approximations of ``H^-1``
  (few CG steps, a truncated series, a low-rank or identity Hessian) rank
  the subsets differently from the exact solve.
- ``digits-mlp``: a torch MLP on the digits of ``digits``: 64 - 16 tanh - 10
  logits (1,210 parameters, float64), coupled weight decay 1e-2 on every
  parameter (``lam``; the Hessian of the decayed mean loss is then positive
  definite at the fit), trained by Adam without decay, then full-batch
  L-BFGS on the decayed objective to a stationary point
  (``skinfluence.torch.refine``); explained through
  ``skinfluence.torch.TorchModel``, with the exact solver. Its refits
  retrain every parameter from the fitted ones (full-batch L-BFGS, largest
  gradient entry below 1e-8 for the LDS, 1e-10 for LOO).

Orientation of scores. Each method gives ``h[t, i]``, positive when removing
training row i raises test row t's loss (a helpful row): skinfluence's
``loo_change`` (``-I_up / n``, plus for the MLP a shift common to every row:
removing a row also makes the fixed decay relatively stronger), RelatIF's
``-I_up / (n ||H^-1 g_i||)``, gradient similarity ``g_t . g_i / n``; dattri's
IF scores are ``g_i' H^-1 g_t = -I_up`` (the same orientation, ``n`` times
larger), TracIn ``g_i . g_t``, TRAK its helpfulness to the test margin. A
subset S is then predicted to have the test loss ``-sum_{i in S} h[t, i]`` up
to a constant, and Spearman ignores the scale. The notes column compares
each peer's scores with skinfluence's ``-I_up``: the least-squares scale
between them and the largest difference after it, relative to the largest
score.

Peer settings: ``regularization=lam`` (explicit IF, CG, Arnoldi, TRAK; traker
``lambda_reg=lam``), otherwise their defaults (CG 10 iterations, Arnoldi 100
dimensions, LiSSA depth 5000 of one row each, TRAK and traker one checkpoint
with a 512-dimensional projection). LiSSA's recursion adds ``damping *
scaling`` to ``H``, so ``damping = lam / scaling``; its ``scaling`` must exceed
every sampled row's Hessian norm for the recursion to contract: 50 (its
default) for digits and the MLP, ``max ||x_i||^2 / 2`` (the bound for a
softmax linear model) where that is larger.

Peers run in their own virtual environment (they pin torch and numpy
differently): this script writes the data and the fitted parameters to an
.npz, runs itself as ``--peer NAME TAG IN OUT`` under that environment's
python (TAG 'clean': scores of the test rows; 'noisy': self-influence on the
flipped labels; each within ``--peer-timeout`` seconds and ``--peer-memory``
GiB of data memory, as ``RLIMIT_DATA``), and reads the scores back::

    python -m venv /tmp/attr-venv
    /tmp/attr-venv/bin/pip install torch==2.13.0 dattri==0.3.0 traker
    python benchmarks/bench_attribution.py --peer-python /tmp/attr-venv/bin/python
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

PEERS = (
    "dattri_explicit",
    "dattri_cg",
    "dattri_lissa",
    "dattri_arnoldi",
    "dattri_tracin",
    "dattri_trak",
    "traker",
)
# The generated task's LogisticRegression C (the mean objective's L2 penalty
# is 1 / (C n)).
MNIST_SHAPED_C = 0.1
# The MLP: 64 pixels, one tanh layer, 10 logits; coupled decay on every
# parameter; Adam epochs before L-BFGS; the refits' largest gradient entry.
MLP_HIDDEN = 16
MLP_DECAY = 1e-2
MLP_EPOCHS = 30
MLP_REFIT_TOL = 1e-8


# -- peer side: runs in the peers' environment (numpy, torch, dattri, trak) -------
def _network(nn, n_features, n_classes, hidden):
    """The explained network: linear without bias (hidden=0), or one tanh layer."""
    if not hidden:
        return nn.Linear(n_features, n_classes, bias=False)
    return nn.Sequential(
        nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, n_classes)
    )


def _peer(name, tag, path_in, path_out):
    """Scores of the test rows ('clean') or self-influence ('noisy') to an .npz."""
    import torch
    from torch import nn

    torch.set_num_threads(2)
    # Some attributors build float tensors of their own: float64 throughout.
    torch.set_default_dtype(torch.float64)
    data = np.load(path_in)
    X = torch.as_tensor(data["X_train"])
    y = torch.as_tensor(data[f"y_{tag}"]).long()
    Xt = torch.as_tensor(data["X_test"])
    yt = torch.as_tensor(data["y_test"]).long()
    model = _network(nn, X.shape[1], int(data["n_classes"]), int(data["hidden"]))
    model = model.double()
    prefix = f"{tag}:"
    model.load_state_dict(
        {
            key[len(prefix) :]: torch.as_tensor(data[key])
            for key in data.files
            if key.startswith(prefix)
        }
    )
    lam, scaling = float(data["lam"]), float(data["lissa_scaling"])
    start = time.perf_counter()
    scores, own = _peer_scores(name, model, X, y, Xt, yt, lam, scaling, tag)
    out = {"seconds": time.perf_counter() - start}
    if scores is not None:
        out["scores"] = scores
    if own is not None:
        out["self"] = own
    np.savez(path_out, **out)


def _peer_scores(name, model, X, y, Xt, yt, lam, scaling, tag):
    """``(scores (n_test, n_train) or None, self-influence (n_train,) or None)``."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    d = X.shape[1]
    train = DataLoader(TensorDataset(X, y), batch_size=len(y), shuffle=False)
    test = DataLoader(TensorDataset(Xt, yt), batch_size=len(yt), shuffle=False)
    if name == "traker":
        return _traker_scores(model, X, y, Xt, yt, lam, torch, tag)
    from dattri.algorithm import influence_function as IF
    from dattri.algorithm.tracin import TracInAttributor
    from dattri.algorithm.trak import TRAKAttributor
    from dattri.task import AttributionTask

    def logits_of(params, x, rows=-1):
        # Some attributors hand over float32 data or parameters: follow the
        # parameters' dtype.
        first = next(iter(params.values())) if isinstance(params, dict) else params
        x = x.reshape(rows, d).to(first.dtype)
        return torch.func.functional_call(model, params, x)

    def loss_func(params, batch):
        x, label = batch
        return F.cross_entropy(logits_of(params, x), label.reshape(-1).long())

    def margin(params, batch):  # TRAK's output function: log-odds of the label
        x, label = batch
        logp = F.log_softmax(logits_of(params, x), dim=1)
        p = logp.gather(1, label.reshape(-1, 1).long()).squeeze(1)
        return (p - torch.log1p(-p.exp().clamp(max=1 - 1e-12))).sum()

    def correct_probability(params, batch):
        x, label = batch
        logits = logits_of(params, x, rows=1)
        return torch.exp(-F.cross_entropy(logits, label.reshape(1).long()))

    checkpoint = {k: v.detach().clone() for k, v in model.state_dict().items()}
    proj = {"proj_dim": 512, "device": "cpu", "proj_seed": 0}
    if name == "dattri_trak":
        task = AttributionTask(margin, model, checkpoint)  # as dattri's examples
        attributor = TRAKAttributor(
            task, correct_probability, projector_kwargs=proj, regularization=lam
        )
    else:
        task = AttributionTask(loss_func, model, checkpoint)
        attributor = {
            "dattri_explicit": lambda: IF.IFAttributorExplicit(
                task, regularization=lam
            ),
            "dattri_cg": lambda: IF.IFAttributorCG(task, regularization=lam),
            # Its recursion adds damping * scaling to H; a scaling above every
            # per-row Hessian's norm keeps it contracting (see the docstring).
            "dattri_lissa": lambda: IF.IFAttributorLiSSA(
                task, damping=lam / scaling, scaling=scaling
            ),
            "dattri_arnoldi": lambda: IF.IFAttributorArnoldi(task, regularization=lam),
            "dattri_tracin": lambda: TracInAttributor(
                task,
                weight_list=torch.ones(1),
                normalized_grad=False,
                projector_kwargs=None,
            ),
        }[name]()
    trak = name == "dattri_trak"
    if trak and tag == "noisy":  # its self_attribute takes the rows uncached
        own = attributor.self_attribute(train)
        return None, own.detach().numpy().astype(np.float64)
    if name == "dattri_tracin":
        attributor.cache()  # TracIn caches nothing from the data
    else:
        attributor.cache(train)
    if tag == "clean":  # TRAK attributes against the cached rows
        scores = (
            attributor.attribute(test) if trak else attributor.attribute(train, test)
        )
        return scores.T.detach().numpy().astype(np.float64), None
    own = attributor.self_attribute(train)
    return None, own.detach().numpy().astype(np.float64)


def _traker_scores(model, X, y, Xt, yt, lam, torch, tag):
    from trak import TRAKer
    from trak.projectors import BasicProjector, ProjectionType

    model = model.float()
    p = sum(q.numel() for q in model.parameters())
    projector = BasicProjector(
        grad_dim=p,
        proj_dim=512,
        seed=0,
        proj_type=ProjectionType.normal,
        device="cpu",
    )
    save = tempfile.mkdtemp(prefix="traker-")
    traker = TRAKer(
        model=model,
        task="image_classification",
        train_set_size=len(y),
        save_dir=save,
        device="cpu",
        projector=projector,
        use_half_precision=False,
        lambda_reg=lam,
    )
    traker.load_checkpoint(model.state_dict(), model_id=0)
    for s in range(0, len(y), 500):
        batch = (X[s : s + 500].float(), y[s : s + 500])
        traker.featurize(batch=batch, num_samples=len(batch[1]))
    traker.finalize_features()
    if tag == "noisy":
        targets, n_targets = (X.float(), y), len(y)
    else:
        targets, n_targets = (Xt.float(), yt), len(yt)
    traker.start_scoring_checkpoint(
        exp_name="bench",
        checkpoint=model.state_dict(),
        model_id=0,
        num_targets=n_targets,
    )
    for s in range(0, n_targets, 500):
        batch = (targets[0][s : s + 500], targets[1][s : s + 500])
        traker.score(batch=batch, num_samples=len(batch[1]))
    scores = np.asarray(traker.finalize_scores(exp_name="bench"), dtype=np.float64)
    if tag == "noisy":  # TRAK has no self-influence: the train-train diagonal
        return None, np.diag(scores).copy()
    return scores.T, None


# -- main side: the project's environment ------------------------------------------
class Task(NamedTuple):
    """Training and test rows, and the model: ``C`` of L2 logistic regression,
    or (``hidden`` > 0) an MLP's hidden units and weight ``decay``."""

    name: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    C: float = None
    decay: float = None
    hidden: int = 0


def _tasks(quick):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    n = 600 if quick else 1200
    digits = X[:n], y[:n], X[n : n + 100], y[n : n + 100]
    yield Task("digits", *digits, C=1.0)
    n = 1000 if quick else 5000
    Xg, yg = mnist_shaped(n + 100, np.random.default_rng(0))
    yield Task("mnist-shaped", Xg[:n], yg[:n], Xg[n:], yg[n:], C=MNIST_SHAPED_C)
    yield Task("digits-mlp", *digits, decay=MLP_DECAY, hidden=MLP_HIDDEN)


def _strokes(rng, n_images, n_strokes, size=28):
    """Images of ``n_strokes`` random segments each, blurred, peak 1, flattened."""
    from scipy.ndimage import gaussian_filter

    images = np.zeros((n_images, size, size))
    t = np.linspace(0, 1, 40)[:, None]
    for image in images:
        for _ in range(n_strokes):
            a, b = rng.uniform(6, size - 6, (2, 2))
            r, c = np.rint(a + t * (b - a)).astype(int).T
            image[r, c] = 1
        image[:] = gaussian_filter(image, 1.0)
        image /= image.max()
    return images.reshape(n_images, -1)


def mnist_shaped(n, rng, n_classes=10, n_parts=30, mix=0.6, part_scale=0.35):
    """MNIST-shaped rows: 28 x 28 pixels in [0, 1], mostly 0, classes overlapping.

    Each class has a template of three blurred strokes; each row blends its
    class's template with another class's (weight uniform in [0, ``mix``]),
    adds ``part_scale`` times a Gaussian combination of ``n_parts`` shared
    one-stroke images, clips to [0, 1] and zeroes pixels below 0.1.
    """
    templates = _strokes(rng, n_classes, 3)
    parts = _strokes(rng, n_parts, 1)
    y = rng.integers(0, n_classes, n)
    other = (y + rng.integers(1, n_classes, n)) % n_classes
    blend = rng.uniform(0, mix, n)[:, None]
    X = (1 - blend) * templates[y] + blend * templates[other]
    X = np.clip(X + part_scale * rng.normal(size=(n, n_parts)) @ parts, 0, 1)
    X[X < 0.1] = 0
    return X, y


def _flip(y, rng, share=0.1):
    y = y.copy()
    rows = rng.choice(len(y), size=int(share * len(y)), replace=False)
    classes = np.unique(y)
    for i in rows:
        y[i] = rng.choice(classes[classes != y[i]])
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rows] = True
    return y, flipped


def _fit(task, X, y):
    """``(estimator to explain, {parameter name: array} for the peers)``."""
    if task.hidden:
        return _fit_mlp(task, X, y)
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=task.C, fit_intercept=False, tol=1e-10, max_iter=5000
    ).fit(X, y)
    return FrozenEstimator(model), {"weight": model.coef_}


def _fit_mlp(task, X, y):
    """Adam without decay, then full-batch L-BFGS on the decayed objective.

    Fitting the data first and adding the decay only in the L-BFGS stage
    keeps the net away from the all-zero stationary point that strong decay
    from random weights can collapse it to (see bench_torch_loo.py).
    """
    import torch

    from skinfluence.torch import TorchModel, refine

    torch.manual_seed(0)
    net = _network(torch.nn, X.shape[1], len(np.unique(y)), task.hidden).double()
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(MLP_EPOCHS):
        for rows in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(Xt[rows]), yt[rows]).backward()
            opt.step()
    model = TorchModel(net, loss="cross_entropy", weight_decay=task.decay).fit(X, y)
    refine(model, X, y, max_iter=5000)
    params = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    return model, params


def _explain(estimator, X, y):
    from skinfluence import InfluenceExplainer

    return InfluenceExplainer(estimator, solver="exact").fit(X, y)


def _skinfluence_scores(estimator, X, y, X_test, y_test):
    """``{method: (h of shape (n_test, n_train), seconds)}`` and the explainer."""
    start = time.perf_counter()
    explainer = _explain(estimator, X, y)
    setup = time.perf_counter() - start
    n = len(y)
    methods = {
        "influence": lambda: explainer.loo_change(X_test, y_test),
        "relatif": lambda: -explainer.relative_influence(X_test, y_test) / n,
        "gradient_similarity": lambda: (
            explainer.backend_.gradient_similarity(
                explainer.validate_test_input(X_test), y_test
            )
            / n
        ),
    }
    n_outputs = len(explainer.classes_)
    if (
        explainer.backend_.supports("newton")
        and explainer.n_params_ * n * n_outputs < 1e8
    ):
        # One Newton step per row: a (K, K) Woodbury update each, which costs
        # n K solves with H^-1: left out of the large task.
        methods["newton"] = lambda: explainer.loo_change(
            X_test, y_test, method="newton"
        )
    out = {}
    for name, fn in methods.items():
        start = time.perf_counter()
        h = fn()
        out[name] = (h, setup + time.perf_counter() - start)
    return out, explainer


def _skinfluence_self(estimator, X, y):
    explainer = _explain(estimator, X, y)
    own = explainer.self_influence()
    return {
        "influence": own,
        "newton": own,
        "relatif": own / explainer.backend_.parameter_change_norms(),
        "gradient_similarity": _gradient_norms_squared(explainer, X, y),
    }


def _gradient_norms_squared(explainer, X, y):
    """``||g_i||^2`` of every training row (TracIn's self-influence)."""
    obj = explainer.objective_
    if explainer.backend_.name == "torch":
        blocks = obj.gradient_blocks(256)
    else:  # rows r_i kron x_i
        blocks = obj.gradient_blocks(X, obj.residuals(X, obj.family.encode(y)))
    out = np.empty(len(y))
    for rows, G in blocks:
        out[rows] = np.asarray((G**2).sum(1))
    return out


def _lissa_scaling(task, X):
    """50 (dattri's default), or more: above every per-row Hessian's norm.

    For a softmax linear model that norm is at most ``||x_i||^2 / 2``.
    """
    return 50.0 if task.hidden else max(50.0, 0.5 * float((X**2).sum(1).max()))


def _lds(h, masks, actual):
    from skinfluence.lds import spearman_columns

    predicted = -masks.astype(float) @ h.T  # test loss of each subset, up to a shift
    return float(np.nanmean(spearman_columns(predicted, actual)))


def _run_peer(python, name, tag, npz, timeout, memory_gib):
    out = Path(npz).with_suffix(f".{name}.{tag}.npz")
    cmd = [python, __file__, "--peer", name, tag, npz, str(out)]

    def limit_memory():  # an allocation past the cap fails in the peer alone
        cap = int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))

    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s"
    if done.returncode < 0:  # the kernel's OOM killer sends SIGKILL
        return None, f"killed by signal {-done.returncode}"
    if done.returncode:
        # The last line naming an error (progress bars write to stderr too).
        lines = [ln for ln in done.stderr.splitlines() if "Error" in ln]
        return None, f"failed: {(lines or ['(no message)'])[-1].strip()[:200]}"
    return dict(np.load(out)), None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--peer-timeout", type=float, default=600)
    parser.add_argument(
        "--peer-memory", type=float, default=20, help="GiB of data per peer run"
    )
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", default="speed,digits,mnist-shaped,digits-mlp")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    from skinfluence import validate_lds

    tasks = args.tasks.split(",")
    if "speed" in tasks:
        _time_validate_lds(validate_lds)
    rows = []
    for task in _tasks(args.quick):
        if task.name in tasks:
            start = time.perf_counter()
            rows += _run_task(task, args, validate_lds)
            _print(rows, task.name, time.perf_counter() - start)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


def _run_task(task, args, validate_lds):
    from sklearn.metrics import roc_auc_score

    X, y, X_test, y_test = task.X, task.y, task.X_test, task.y_test
    rng = np.random.default_rng(1)
    n = len(y)
    estimator, params = _fit(task, X, y)
    y_noisy, flipped = _flip(y, rng)
    noisy, noisy_params = _fit(task, X, y_noisy)
    scores, explainer = _skinfluence_scores(estimator, X, y, X_test, y_test)
    # Refits: in memory, whitened L-BFGS to its default gtol for the LDS and
    # to 1e-8 for the much smaller one-row changes; a network, full-batch
    # L-BFGS to the given largest gradient entry.
    lds_options, loo_options = (
        ({"tol": MLP_REFIT_TOL}, {}) if task.hidden else ({}, {"gtol": 1e-8})
    )
    start = time.perf_counter()
    lds = validate_lds(
        explainer,
        X_test,
        y_test,
        n_subsets=100,
        method=list(scores),
        random_state=0,
        refit_options=lds_options,
    )
    lds_time = time.perf_counter() - start
    print(
        f"[{task.name}] validate_lds: {n} rows, {explainer.n_params_} parameters, "
        f"{len(y_test)} test rows, 100 subsets, {len(scores)} methods: "
        f"{lds_time:.1f} s",
        flush=True,
    )
    loo_rows = rng.choice(n, size=40, replace=False)
    loo_masks = np.ones((40, n), dtype=bool)
    loo_masks[np.arange(40), loo_rows] = False
    base = explainer.test_loss(X_test, y_test).sum()
    loo_actual = (
        explainer.backend_.refit_outputs(
            loo_masks, explainer.validate_test_input(X_test), y_test, **loo_options
        ).sum(axis=1)
        - base
    )
    own = _skinfluence_self(noisy, X, y_noisy)
    rows = []
    for name, (h, seconds) in scores.items():
        assert np.isclose(_lds(h, lds.keep_masks, lds.actual), lds.mean[name])
        rows.append(
            {
                "task": task.name,
                "method": f"skinfluence {name}",
                "lds": lds.mean[name],
                "loo_r": float(np.corrcoef(h[:, loo_rows].sum(0), loo_actual)[0, 1]),
                "noisy_auc": roc_auc_score(flipped, own[name]),
                "seconds": seconds,
            }
        )
    if not args.peer_python:
        return rows
    npz = str(Path(tempfile.mkdtemp(prefix="bench-attr-")) / f"{task.name}.npz")
    np.savez(
        npz,
        X_train=X,
        y_clean=y,
        y_noisy=y_noisy,
        X_test=X_test,
        y_test=y_test,
        lam=_ridge(task, n),
        hidden=task.hidden,
        n_classes=len(np.unique(y)),
        lissa_scaling=_lissa_scaling(task, X),
        **{f"clean:{k}": v for k, v in params.items()},
        **{f"noisy:{k}": v for k, v in noisy_params.items()},
    )
    reference = -explainer.influence(X_test, y_test)  # g_t' H^-1 g_i
    for peer in args.peers.split(","):
        row = {"task": task.name, "method": peer}
        rows.append(row)
        # Test rows of the clean model; self-influence of the noisy one.
        for tag, what in (("clean", "test rows"), ("noisy", "self-influence")):
            result, error = _run_peer(
                args.peer_python, peer, tag, npz, args.peer_timeout, args.peer_memory
            )
            if error is not None:
                row.setdefault("errors", []).append(f"{what} {error}")
                print(f"[{task.name}] {peer} {what}: {error}", flush=True)
            elif tag == "clean":
                row.update(_compare(result, reference, lds, loo_rows, loo_actual))
            elif "self" in result:
                row["noisy_auc"] = roc_auc_score(flipped, result["self"])
    return rows


def _compare(result, reference, lds, loo_rows, loo_actual):
    """LDS, LOO r and the match with ``reference`` of a peer's test-row scores."""
    s = result["scores"]
    ratio = (s * reference).sum() / (reference**2).sum()
    gap = np.abs(s / ratio - reference).max() / np.abs(reference).max()
    return {
        "seconds": float(result["seconds"]),
        "lds": _lds(s, lds.keep_masks, lds.actual),
        "loo_r": float(np.corrcoef(s[:, loo_rows].sum(0), loo_actual)[0, 1]),
        "vs_influence": f"scale {ratio:.4g}, max rel. diff {gap:.2e}",
    }


def _ridge(task, n):
    """The L2 penalty ``lam`` of the mean objective: ``H = H_loss + lam I``."""
    return task.decay if task.hidden else 1.0 / (task.C * n)


def _time_validate_lds(validate_lds):
    """validate_lds on a 5,000-row binary logistic model, 100 subsets."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression

    from skinfluence import InfluenceExplainer
    from skinfluence.lds import METHODS

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5100, 784))
    y = (X @ rng.normal(size=784) / 28 * 3 + rng.logistic(size=5100) > 0).astype(int)
    model = LogisticRegression(C=0.02, tol=1e-8, max_iter=2000).fit(X[:5000], y[:5000])
    start = time.perf_counter()
    explainer = InfluenceExplainer(FrozenEstimator(model)).fit(X[:5000], y[:5000])
    result = validate_lds(
        explainer,
        X[5000:],
        y[5000:],
        n_subsets=100,
        method=list(METHODS),
        random_state=0,
    )
    seconds = time.perf_counter() - start
    scores = ", ".join(f"{m} {v:.3f}" for m, v in result.mean.items())
    print(
        f"[speed] binary logistic, 5000 x 784, 100 test rows: explainer fit and "
        f"validate_lds over 100 subsets, {len(METHODS)} methods: {seconds:.1f} s "
        f"(LDS: {scores})",
        flush=True,
    )


def _print(rows, task, seconds):
    print(f"\n{task} (fits, attributions, refits and peers: {seconds:.0f} s)")
    print(f"{'method':34s} {'LDS':>6s} {'LOO r':>6s} {'AUC':>6s} {'time s':>8s}  notes")
    for r in rows:
        if r["task"] != task:
            continue

        def num(key, fmt, r=r):
            return format(r[key], fmt) if key in r else "-"

        notes = "; ".join(r.get("errors", []) + [r.get("vs_influence", "")])
        notes = notes.strip("; ")
        print(
            f"{r['method']:34s} {num('lds', '6.3f'):>6s} {num('loo_r', '6.3f'):>6s} "
            f"{num('noisy_auc', '6.3f'):>6s} {num('seconds', '8.2f'):>8s}  {notes}"
        )
    print(flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--peer":
        _peer(*sys.argv[2:])
    else:
        main()
