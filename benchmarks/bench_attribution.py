"""Attribution quality and time: skinfluence against dattri and TRAK (traker).

Every method scores the same fitted L2 logistic regressions (no intercept, so
the penalty is ``lam I`` exactly, as the peers' ``regularization`` adds it) on
the same test rows, and is judged on the same refits:

- LDS (Park et al., 2023): 100 random halves of the training rows, each
  refitted (skinfluence's ``refit_outputs``, warm-started whitened L-BFGS);
  per test row, the Spearman correlation over the subsets between the
  method's predicted test loss and the refitted one, averaged over test rows.
- LOO: 40 random training rows, each removed and the model refitted; Pearson
  correlation between the predicted and the actual change of the summed test
  loss.
- noisy-label AUC: 10% of the labels flipped, the model refitted on them,
  training rows ranked by each method's self-influence.
- time: attributing the test rows (fitting included), in seconds.

Orientation of scores. Each method gives ``h[t, i]``, positive when removing
training row i raises test row t's loss (a helpful row): skinfluence's
``loo_change`` (``-I_up / n``), RelatIF's ``-I_up / (n ||H^-1 g_i||)``,
gradient similarity ``g_t . g_i / n``; dattri's IF scores are
``g_i' H^-1 g_t = -I_up`` (the same orientation, ``n`` times larger), TracIn
``g_i . g_t``, TRAK its helpfulness to the test margin. A subset S is then
predicted to have the test loss ``-sum_{i in S} h[t, i]`` up to a constant,
and Spearman ignores the scale.

Peers run in their own virtual environment (they pin torch and numpy
differently): this script writes the data and the fitted coefficients to an
.npz, runs itself as ``--peer NAME IN OUT`` under that environment's python,
and reads the scores back::

    python -m venv /tmp/attr-venv
    /tmp/attr-venv/bin/pip install torch==2.13.0 dattri==0.3.0 traker
    python benchmarks/bench_attribution.py --peer-python /tmp/attr-venv/bin/python
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


# -- peer side: runs in the peers' environment (numpy, torch, dattri, trak) -------
def _peer(name, path_in, path_out):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(2)
    # Some attributors build float tensors of their own: float64 throughout.
    torch.set_default_dtype(torch.float64)
    data = np.load(path_in)
    lam = float(data["lam"])
    out = {}
    for tag in ("clean", "noisy"):
        X = torch.as_tensor(data["X_train"])
        y = torch.as_tensor(data[f"y_{tag}"]).long()
        Xt = torch.as_tensor(data["X_test"])
        yt = torch.as_tensor(data["y_test"]).long()
        coef = torch.as_tensor(data[f"coef_{tag}"])
        model = nn.Linear(X.shape[1], coef.shape[0], bias=False).double()
        with torch.no_grad():
            model.weight.copy_(coef)
        start = time.perf_counter()
        scores, own = _peer_scores(name, model, X, y, Xt, yt, lam, torch, F, tag)
        out[f"time_{tag}"] = time.perf_counter() - start
        if scores is not None:
            out[f"scores_{tag}"] = scores
        if own is not None:
            out[f"self_{tag}"] = own
    np.savez(path_out, **out)


def _peer_scores(name, model, X, y, Xt, yt, lam, torch, F, tag):
    """``(scores (n_test, n_train) or None, self-influence (n_train,) or None)``."""
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
        weight = params["weight"] if isinstance(params, dict) else params
        x = x.reshape(rows, d).to(weight.dtype)
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
            # The default scaling (50) exceeds the per-row Hessian's norm
            # (at most max ||x||^2 / 2) on both tasks, so LiSSA converges; its
            # recursion adds damping * scaling to H.
            "dattri_lissa": lambda: IF.IFAttributorLiSSA(task, damping=lam / 50),
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
def _tasks(quick):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    n = 600 if quick else 1200
    yield "digits", X[:n], y[:n], X[n : n + 100], y[n : n + 100], 1.0
    rng = np.random.default_rng(0)
    n, d, K = (1000 if quick else 5000), 784, 10
    # MNIST-shaped: [0, 1] pixels, ten noisy class templates, some overlap.
    templates = rng.random((K, d)) < 0.2
    labels = rng.integers(0, K, size=n + 100)
    Xg = np.clip(templates[labels] * rng.uniform(0.3, 1.0, (n + 100, d)), 0, 1)
    Xg = np.clip(
        Xg + 0.35 * rng.normal(size=Xg.shape) * (rng.random(Xg.shape) < 0.3), 0, 1
    )
    yield "mnist-shaped", Xg[:n], labels[:n], Xg[n:], labels[n:], 0.05


def _flip(y, rng, share=0.1):
    y = y.copy()
    rows = rng.choice(len(y), size=int(share * len(y)), replace=False)
    classes = np.unique(y)
    for i in rows:
        y[i] = rng.choice(classes[classes != y[i]])
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rows] = True
    return y, flipped


def _fit(X, y, C):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, fit_intercept=False, tol=1e-10, max_iter=5000).fit(
        X, y
    )


def _skinfluence_scores(model, X, y, X_test, y_test, solver):
    """``{method: (h of shape (n_test, n_train), seconds)}`` and the explainer."""
    from sklearn.frozen import FrozenEstimator

    from skinfluence import InfluenceExplainer

    start = time.perf_counter()
    explainer = InfluenceExplainer(FrozenEstimator(model), solver=solver).fit(X, y)
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
    if explainer.n_params_ * len(y) * model.coef_.shape[0] < 1e8:
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


def _skinfluence_self(model, X, y, solver):
    from sklearn.frozen import FrozenEstimator

    from skinfluence import InfluenceExplainer

    explainer = InfluenceExplainer(FrozenEstimator(model), solver=solver).fit(X, y)
    obj = explainer.objective_
    residuals = obj.residuals(X, obj.family.encode(y))
    grad_sq = (residuals**2).sum(1) * (X**2).sum(1)  # ||r_i kron x_i||^2
    own = explainer.self_influence()
    return {
        "influence": own,
        "newton": own,
        "relatif": own / explainer.backend_.parameter_change_norms(),
        "gradient_similarity": grad_sq,
    }


def _lds(h, masks, actual):
    from skinfluence.lds import spearman_columns

    predicted = -masks.astype(float) @ h.T  # test loss of each subset, up to a shift
    return float(np.nanmean(spearman_columns(predicted, actual)))


def _run_peer(python, name, npz, timeout):
    out = Path(npz).with_suffix(f".{name}.npz")
    cmd = [python, __file__, "--peer", name, npz, str(out)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    if done.returncode:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        return None, f"failed: {tail[0][:200]}"
    return dict(np.load(out)), None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--peer-timeout", type=float, default=600)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", default="speed,digits,mnist-shaped")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from skinfluence import validate_lds

    if "speed" in args.tasks.split(","):
        _time_validate_lds(validate_lds)
    rows = []
    for task, X, y, X_test, y_test, C in _tasks(args.quick):
        if task not in args.tasks.split(","):
            continue
        rng = np.random.default_rng(1)
        n = len(y)
        lam = 1.0 / (C * n)  # LogisticRegression's C in mean form, no intercept
        model = _fit(X, y, C)
        y_noisy, flipped = _flip(y, rng)
        noisy = _fit(X, y_noisy, C)
        solver = "exact"
        scores, explainer = _skinfluence_scores(model, X, y, X_test, y_test, solver)
        start = time.perf_counter()
        lds = validate_lds(
            explainer,
            X_test,
            y_test,
            n_subsets=100,
            method=list(scores),
            random_state=0,
        )
        lds_time = time.perf_counter() - start
        print(
            f"[{task}] validate_lds: {n} rows, {model.coef_.size} parameters, "
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
                loo_masks, explainer.validate_test_input(X_test), y_test, gtol=1e-8
            ).sum(axis=1)
            - base
        )
        own = _skinfluence_self(noisy, X, y_noisy, solver)
        for name, (h, seconds) in scores.items():
            assert np.isclose(_lds(h, lds.keep_masks, lds.actual), lds.mean[name])
            rows.append(
                {
                    "task": task,
                    "method": f"skinfluence {name}",
                    "lds": lds.mean[name],
                    "loo_r": float(
                        np.corrcoef(h[:, loo_rows].sum(0), loo_actual)[0, 1]
                    ),
                    "noisy_auc": roc_auc_score(flipped, own[name]),
                    "seconds": seconds,
                }
            )
        if args.peer_python:
            npz = str(Path(tempfile.mkdtemp(prefix="bench-attr-")) / f"{task}.npz")
            np.savez(
                npz,
                X_train=X,
                y_clean=y,
                y_noisy=y_noisy,
                X_test=X_test,
                y_test=y_test,
                coef_clean=model.coef_,
                coef_noisy=noisy.coef_,
                lam=lam,
            )
            reference = -explainer.influence(X_test, y_test)  # g_t' H^-1 g_i
            for peer in args.peers.split(","):
                result, error = _run_peer(
                    args.peer_python, peer, npz, args.peer_timeout
                )
                row = {"task": task, "method": peer}
                if error is not None:
                    row["error"] = error
                    print(f"[{task}] {peer}: {error}", flush=True)
                    rows.append(row)
                    continue
                row["seconds"] = float(result["time_clean"])
                if "scores_clean" in result:
                    s = result["scores_clean"]
                    row["lds"] = _lds(s, lds.keep_masks, lds.actual)
                    row["loo_r"] = float(
                        np.corrcoef(s[:, loo_rows].sum(0), loo_actual)[0, 1]
                    )
                    ratio = (s * reference).sum() / (reference**2).sum()
                    gap = np.abs(s / ratio - reference).max() / np.abs(reference).max()
                    row["vs_influence"] = f"scale {ratio:.4g}, max rel. diff {gap:.2e}"
                if "self_noisy" in result:
                    row["noisy_auc"] = roc_auc_score(flipped, result["self_noisy"])
                rows.append(row)
        _print(rows, task)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


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


def _print(rows, task):
    print(f"\n{task}")
    print(f"{'method':34s} {'LDS':>6s} {'LOO r':>6s} {'AUC':>6s} {'time s':>8s}  notes")
    for r in rows:
        if r["task"] != task:
            continue

        def num(key, fmt, r=r):
            return format(r[key], fmt) if key in r else "-"

        notes = r.get("error", r.get("vs_influence", ""))
        print(
            f"{r['method']:34s} {num('lds', '6.3f'):>6s} {num('loo_r', '6.3f'):>6s} "
            f"{num('noisy_auc', '6.3f'):>6s} {num('seconds', '8.2f'):>8s}  {notes}"
        )
    print(flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--peer":
        _peer(*sys.argv[2:])
    else:
        main()
