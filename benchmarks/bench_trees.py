#!/usr/bin/env python3
# ruff: noqa: E402 (thread settings go before the imports)
"""Influence for boosted trees: skinfluence's tree backend vs tree-influence.

Sections (``--sections a,b,c,d``; each runs alone):

a. Scores against ``tree-influence`` (Brophy et al.'s package) on the same
   fitted model: BoostIn and LeafInfluence local influence, test rows x
   training rows. tree-influence is an sdist that needs Cython and an old
   scikit-learn attribute; it runs in its own virtual environment
   (``--treeinf-python``, e.g. ``/tmp/treeinf-venv/bin/python``), here in a
   child process that unpickles the very model fitted here (same
   scikit-learn). BoostIn weighs each shared leaf by
   ``lr (g + v h) / (H + l2)``, ``v`` the stored leaf value (shrinkage
   included), in both; the table also shows that formula rebuilt here from
   the backend's arrays, as a check of what the two compute.
b. Brophy et al.'s removal evaluation: per test row, remove the k most
   helpful training rows (largest ``loo_change``) by each method, retrain the
   model (same parameters and random_state), and measure the increase of that
   row's test loss; k = 0.5%, 1%, 2%, 5% of the training set; against
   tree-influence's BoostIn and LeafInfluence rankings of the same fitted
   model (its positive local influence = helpful; skipped without
   ``--treeinf-python``), random rows and the rows of largest training
   loss. Mean over test rows. Then each method's agreement with LeafRefit
   (the exact removal with the structure fixed): Pearson r of its scores
   with LeafRefit's ``loo_change``, per test row, averaged.
c. Label noise: 10% of the labels flipped (``--seeds`` draws); recall of the
   flipped rows among the 10% most suspect,
   ``MislabelDetector(HistGradientBoostingClassifier(...), contamination=0.1)``
   vs cleanlab's label quality on 5-fold cross-validated probabilities of the
   same model: folds drawn as cleanlab draws them
   (``estimate_cv_predicted_probabilities``, shuffled, seeded by the draw),
   and sklearn's unshuffled stratified folds (one fixed split for every
   draw); the row's training loss for reference. Two base models: a small
   one and scikit-learn's defaults.
d. Speed on ``--speed-n`` rows x ``--speed-trees`` trees (default 50,000 x
   200): BoostIn self-influence and a test-by-train influence matrix, ours vs
   tree-influence's (same model, scores compared). tree-influence computes
   self-influence as one local influence per training row (``O(n^2 T)``), so
   it runs on ``--speed-self-rows`` rows and its time is scaled to ``n``.

Usage::

    python benchmarks/bench_trees.py --treeinf-python /tmp/treeinf-venv/bin/python
    python benchmarks/bench_trees.py --sections b,c
"""

import os

# One thread each: the machines this runs on are small and shared, and
# tree-influence runs on one core; set these before numpy/scikit-learn load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import pickle
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_wine,
    make_classification,
    make_friedman1,
)
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import cross_val_predict, train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from skinfluence import InfluenceExplainer, MislabelDetector
from skinfluence.backends.trees import _boostin

CHILD = textwrap.dedent(
    """
    import pickle, sys, time, types
    import numpy as np
    # tree-influence imports torch for TREX only: a stub keeps it out.
    torch = types.ModuleType("torch")
    for name in ("nn", "optim", "autograd"):
        sub = types.ModuleType("torch." + name)
        sys.modules["torch." + name] = sub
        setattr(torch, name, sub)
    torch.nn.Module = object
    torch.Tensor = type("Tensor", (), {})
    torch.autograd.Variable = object
    sys.modules["torch"] = torch
    from tree_influence.explainers import BoostIn, LeafInfluence

    for name in ("torch", "torch.nn", "torch.optim", "torch.autograd"):
        del sys.modules[name]  # scipy checks sys.modules for a real torch
    from tree_influence.explainers.parsers import util
    from sklearn.preprocessing import OneHotEncoder

    def one_hot(*args, sparse=False, **kwargs):  # sparse= is sparse_output= now
        return OneHotEncoder(*args, sparse_output=sparse, **kwargs)

    util.OneHotEncoder = one_hot

    with open(sys.argv[1], "rb") as f:
        job = pickle.load(f)
    model = job["model"]
    # scikit-learn >= 1.6 dropped _estimator_type; tree-influence reads it,
    # and wants a float baseline for one output.
    model._estimator_type = "classifier" if hasattr(model, "classes_") else "regressor"
    # ... and the losses by their old names.
    if hasattr(model, "_predictors"):
        if model.loss == "squared_error":
            model.loss = "least_squares"
    elif hasattr(model, "estimators_"):
        model.loss = {"squared_error": "ls", "log_loss": "deviance"}[model.loss]
    base = getattr(model, "_baseline_prediction", None)
    if base is not None and np.size(base) == 1:
        model._baseline_prediction = np.float64(np.ravel(base)[0])
    out = {}
    for name in job["methods"]:
        cls = {"boostin": BoostIn, "leaf_influence": LeafInfluence}[name]
        t0 = time.perf_counter()
        explainer = cls().fit(model, job["X"], job["y"])
        t1 = time.perf_counter()
        out[name] = explainer.get_local_influence(job["Xt"], job["yt"]).T
        t2 = time.perf_counter()
        if job.get("self"):  # its self-influence is a local influence per row
            rows = slice(0, job["self"])
            out[name + "_self"] = explainer.get_self_influence(
                job["X"][rows], job["y"][rows]
            )
        t3 = time.perf_counter()
        out[name + "_time"] = (t1 - t0, t2 - t1, t3 - t2)
    with open(sys.argv[2], "wb") as f:
        pickle.dump(out, f)
    """
)


def run_treeinf(python, job):
    """tree-influence's scores for ``job`` (a dict), in its own environment."""
    if not Path(python).exists():
        raise SystemExit(
            f"tree-influence's environment ({python}) is missing; this section "
            "compares with it. Create it as benchmarks/README.md says, or pass "
            "--treeinf-python PATH (section b runs without it)."
        )
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, n) for n in ("job.pkl", "out.pkl", "child.py")]
        with open(paths[0], "wb") as f:
            pickle.dump(job, f)
        Path(paths[2]).write_text(CHILD)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        subprocess.run([python, paths[2], paths[0], paths[1]], check=True, env=env)
        with open(paths[1], "rb") as f:
            return pickle.load(f)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def treeinf_boostin_formula(backend, X_test, y_test):
    """tree-influence's BoostIn from our arrays: ``lr (g + v h) / (H + l2)``.

    Its ``H`` is unweighted with no 1e-15 guard (unit weights here); its sign
    is positive = helpful, ours (``influence``) positive = harmful.
    """
    ens, state = backend.ensemble_, backend.replay_
    v = ens.leaf_values[backend.leaves_]
    H = state.H[backend.leaves_] + ens.l2 - (1e-15 if ens.l2 else 0.0)
    lr = ens.scale
    d = lr * (state.g + v * state.h) / H
    leaves, _, A = backend._test_factors(X_test, y_test, "loss", per_round=True)
    test = _boostin.leaf_matrix(leaves, A, ens.n_leaves)
    train = _boostin.leaf_matrix(backend.leaves_, d, ens.n_leaves)
    return (test @ train.T).toarray()


# -- a ---------------------------------------------------------------------------
def section_a(args):
    X, y = load_breast_cancer(return_X_y=True)
    Xd, yd = load_diabetes(return_X_y=True)
    cases = [
        (
            "HGB binary (breast_cancer)",
            HistGradientBoostingClassifier(
                max_iter=30, max_leaf_nodes=8, l2_regularization=1.0
            ),
            X[:300],
            y[:300],
            X[300:330],
            y[300:330],
        ),
        (
            "HGB regression (diabetes)",
            HistGradientBoostingRegressor(
                max_iter=30, max_leaf_nodes=8, l2_regularization=1.0
            ),
            Xd[:300],
            yd[:300],
            Xd[300:330],
            yd[300:330],
        ),
        (
            "GB binary (breast_cancer)",
            GradientBoostingClassifier(
                n_estimators=30,
                max_depth=3,
                criterion="friedman_mse",
                random_state=0,
            ),
            X[:300],
            y[:300],
            X[300:330],
            y[300:330],
        ),
    ]
    try:
        import lightgbm
    except ImportError:
        print("(a) lightgbm missing: LightGBM cases skipped (pip install lightgbm)")
    else:
        Xw, yw = load_wine(return_X_y=True)
        lgbm = dict(num_leaves=8, reg_lambda=1.0, verbose=-1, n_jobs=1)
        cases += [
            (
                "LightGBM binary (breast_cancer)",
                lightgbm.LGBMClassifier(n_estimators=30, **lgbm),
                X[:300],
                y[:300],
                X[300:330],
                y[300:330],
            ),
            (
                "LightGBM regression (diabetes)",
                lightgbm.LGBMRegressor(n_estimators=30, **lgbm),
                Xd[:300],
                yd[:300],
                Xd[300:330],
                yd[300:330],
            ),
            (
                "LightGBM multiclass (wine)",
                lightgbm.LGBMClassifier(
                    n_estimators=20, **dict(lgbm, num_leaves=6, min_child_samples=10)
                ),
                Xw[::2],
                yw[::2],
                Xw[1::2],
                yw[1::2],
            ),
        ]
    try:
        import xgboost
    except ImportError:
        print("(a) xgboost missing: XGBoost cases skipped (pip install xgboost)")
    else:
        # tree-influence takes XGBoost's baseline from base_score (0 margin for
        # classifiers): set it, rather than let XGBoost >= 2 estimate it.
        xgb = dict(max_depth=3, reg_lambda=1.0, learning_rate=0.1, n_jobs=1)
        cases += [
            (
                "XGBoost binary (breast_cancer)",
                xgboost.XGBClassifier(n_estimators=30, base_score=0.5, **xgb),
                X[:300],
                y[:300],
                X[300:330],
                y[300:330],
            ),
            (
                "XGBoost regression (diabetes)",
                xgboost.XGBRegressor(
                    n_estimators=30, base_score=float(yd[:300].mean()), **xgb
                ),
                Xd[:300],
                yd[:300],
                Xd[300:330],
                yd[300:330],
            ),
        ]
    rows = []
    for name, model, Xtr, ytr, Xt, yt in cases:
        exp = {
            m: InfluenceExplainer(model, solver=m).fit(Xtr, ytr)
            for m in ("boostin", "leaf_influence")
        }
        job = dict(
            model=exp["boostin"].estimator_,
            X=Xtr,
            y=ytr,
            Xt=Xt,
            yt=yt,
            methods=["boostin", "leaf_influence"],
        )
        theirs = run_treeinf(args.treeinf_python, job)
        ours_bi = exp["boostin"].loo_change(Xt, yt)  # = -D: positive = helpful
        formula = treeinf_boostin_formula(exp["boostin"].backend_, Xt, yt)
        ours_li = exp["leaf_influence"].loo_change(Xt, yt)
        for label, ours, ref in [
            ("BoostIn", ours_bi, theirs["boostin"]),
            ("BoostIn (formula rebuilt here)", -formula, -theirs["boostin"]),
            ("LeafInfluence", ours_li, theirs["leaf_influence"]),
        ]:
            rows.append(
                dict(
                    model=name,
                    scores=label,
                    max_rel_diff=_rel(ours, ref),
                    pearson=np.corrcoef(ours.ravel(), ref.ravel())[0, 1],
                )
            )
    table = pd.DataFrame(rows)
    print("\n(a) scores vs tree-influence (test x train matrices)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


# -- b ---------------------------------------------------------------------------
#: tree-influence's explainers in the removal table, by their column there.
TREEINF_NAMES = {
    "boostin": "tree-influence boostin",
    "leaf_influence": "tree-influence leaf_influence",
}


def _datasets(seed):
    X, y = load_breast_cancer(return_X_y=True)
    Xd, yd = load_diabetes(return_X_y=True)
    Xw, yw = load_wine(return_X_y=True)
    Xs, ys = make_classification(
        n_samples=1000, n_features=10, n_informative=5, flip_y=0.05, random_state=seed
    )
    Xf, yf = make_friedman1(n_samples=800, noise=1.0, random_state=seed)
    clf = dict(max_iter=30, max_leaf_nodes=8, l2_regularization=1.0, random_state=0)
    return [
        ("breast_cancer", X, y, HistGradientBoostingClassifier(**clf)),
        ("diabetes", Xd, yd, HistGradientBoostingRegressor(**clf)),
        ("wine", Xw, yw, HistGradientBoostingClassifier(**dict(clf, max_iter=20))),
        ("synthetic binary", Xs, ys, HistGradientBoostingClassifier(**clf)),
        ("friedman1", Xf, yf, HistGradientBoostingRegressor(**clf)),
    ]


def section_b(args):
    fractions = (0.005, 0.01, 0.02, 0.05)
    rng = np.random.default_rng(args.seed)
    results, agreement = [], []
    for name, X, y, model in _datasets(args.seed):
        if args.datasets and name not in args.datasets.split(","):
            continue
        strat = y if hasattr(model, "predict_proba") else None
        Xtr, Xte, ytr, yte = train_test_split(
            X, y, test_size=0.25, random_state=args.seed, stratify=strat
        )
        test = rng.choice(len(yte), size=min(args.test_rows, len(yte)), replace=False)
        scores = {}
        for method in ("boostin", "leaf_influence", "leaf_refit"):
            explainer = InfluenceExplainer(model, solver=method).fit(Xtr, ytr)
            scores[method] = explainer.loo_change(Xte[test], yte[test])
        scores.update(
            _treeinf_rankings(
                args, explainer.estimator_, Xtr, ytr, Xte[test], yte[test]
            )
        )
        for method, values in scores.items():
            if method != "leaf_refit":
                r = [pearsonr(a, b)[0] for a, b in zip(values, scores["leaf_refit"])]
                agreement.append(dict(dataset=name, method=method, r=np.mean(r)))
        backend = explainer.backend_
        base_loss = backend.test_loss(Xte[test], yte[test])
        train_loss = backend.training_losses()
        n = len(ytr)
        print(f"  (b) {name}: {n} training rows, scores done", flush=True)
        for frac in fractions:
            k = max(1, int(round(frac * n)))
            for method in (*scores, "random", "training_loss"):
                increases = []
                for j, t in enumerate(test):
                    if method == "random":
                        rows = rng.choice(n, size=k, replace=False)
                    elif method == "training_loss":
                        rows = np.argsort(-train_loss)[:k]
                    else:
                        rows = np.argsort(-scores[method][j])[:k]
                    keep = np.setdiff1d(np.arange(n), rows)
                    refit = clone(model).fit(Xtr[keep], ytr[keep])
                    new = _loss(backend, refit, Xte[t : t + 1], yte[t : t + 1])
                    increases.append(new - base_loss[j])
                results.append(
                    dict(
                        dataset=name,
                        k=f"{100 * frac:g}% ({k})",
                        method=method,
                        loss_increase=np.mean(increases),
                        per_row=np.asarray(increases),
                    )
                )
    table = pd.DataFrame(results).pivot_table(
        index=["dataset", "k"], columns="method", values="loss_increase", sort=False
    )
    print(
        "\n(b) removal of the k most helpful rows per test row, retrained: "
        f"mean test-loss increase ({args.test_rows} test rows; larger = better)"
    )
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    _print_paired(pd.DataFrame(results))
    agree = pd.DataFrame(agreement).pivot_table(
        index="dataset", columns="method", values="r", sort=False
    )
    print(
        "\n(b) agreement with LeafRefit (the exact removal, structure fixed): "
        "Pearson r of each method's scores with its loo_change, mean over test rows"
    )
    print(agree.to_string(float_format=lambda v: f"{v:.3f}"))


def _print_paired(results):
    """Where a method's ranking differs from tree-influence's: the paired
    difference of the increases over the test rows, with its standard error."""
    lines = []
    for (dataset, k), cell in results.groupby(["dataset", "k"], sort=False):
        rows = cell.set_index("method").per_row
        for ours, theirs in TREEINF_NAMES.items():
            if theirs not in rows:
                continue
            diff = rows[ours] - rows[theirs]
            if np.any(diff != 0):
                se = diff.std(ddof=1) / np.sqrt(len(diff))
                lines.append(
                    f"  {dataset} {k} {ours}: ours - tree-influence = "
                    f"{diff.mean():+.4f} (standard error {se:.4f}, "
                    f"{np.count_nonzero(diff)} of {len(diff)} test rows differ)"
                )
    if lines:
        print("\n(b) paired differences where the rankings differ")
        print("\n".join(lines))


def _treeinf_rankings(args, model, X, y, X_test, y_test):
    """tree-influence's BoostIn and LeafInfluence scores (positive = helpful)
    on the very model fitted here, by column name; none without its venv."""
    if not Path(args.treeinf_python).exists():
        return {}
    job = dict(model=model, X=X, y=y, Xt=X_test, yt=y_test, methods=list(TREEINF_NAMES))
    theirs = run_treeinf(args.treeinf_python, job)
    return {label: theirs[name] for name, label in TREEINF_NAMES.items()}


def _loss(backend, model, X, y):
    """The backend's loss of ``model``'s raw outputs (same family)."""
    from skinfluence.backends.trees._backend import _raw

    return float(backend.loss_.loss(backend.loss_.encode(y), _raw(model, X))[0])


# -- c ---------------------------------------------------------------------------
def _flip_labels(y, seed):
    """``(noisy labels, flipped rows)``: 10% of the rows moved to another class."""
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)
    classes = np.unique(y)
    shift = rng.integers(1, len(classes), size=len(flipped))
    noisy[flipped] = classes[
        (np.searchsorted(classes, y[flipped]) + shift) % len(classes)
    ]
    return noisy, flipped


def _noise_rows(name, X, y, model, seed):
    """Recall of the flipped rows among the 10% most suspect, per method."""
    from cleanlab.count import estimate_cv_predicted_probabilities
    from cleanlab.rank import get_label_quality_scores

    noisy, flipped = _flip_labels(y, seed)
    labels = np.searchsorted(np.unique(y), noisy)

    def recall(ranking):
        return np.isin(ranking[: len(flipped)], flipped).mean()

    t0 = time.perf_counter()
    det = MislabelDetector(model, contamination=0.1).fit(X, noisy)
    t1 = time.perf_counter()
    proba = estimate_cv_predicted_probabilities(
        X, labels, clf=model, cv_n_folds=5, seed=seed
    )
    quality = get_label_quality_scores(labels, proba)
    t2 = time.perf_counter()
    fixed = cross_val_predict(model, X, noisy, cv=5, method="predict_proba")
    train = det.explainer_.backend_.training_losses()
    return [
        dict(dataset=name, method=method, recall=r, seconds=sec)
        for method, r, sec in [
            ("MislabelDetector", recall(det.ranking_), t1 - t0),
            ("cleanlab (5-fold CV)", recall(np.argsort(quality)), t2 - t1),
            (
                "cleanlab (5 unshuffled folds)",
                recall(np.argsort(get_label_quality_scores(labels, fixed))),
                np.nan,
            ),
            ("training loss", recall(np.argsort(-train)), np.nan),
        ]
    ]


def section_c(args):
    Xs, ys = make_classification(
        n_samples=1500, n_features=10, n_informative=6, random_state=0
    )
    datasets = [
        ("breast_cancer", *load_breast_cancer(return_X_y=True)),
        ("synthetic", Xs, ys),
        ("wine", *load_wine(return_X_y=True)),
    ]
    models = [
        (
            "HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=8, "
            "l2_regularization=1)",
            HistGradientBoostingClassifier(
                max_iter=30, max_leaf_nodes=8, l2_regularization=1.0, random_state=0
            ),
        ),
        (
            "HistGradientBoostingClassifier() (defaults: 100 rounds, 31 leaves)",
            HistGradientBoostingClassifier(random_state=0),
        ),
    ]
    _noise_rows(*datasets[2], models[0][1], 0)  # imports and caches: untimed
    for title, model in models:
        rows = []
        for name, X, y in datasets:
            for seed in range(args.seeds):
                rows += _noise_rows(name, X, y, model, seed)
        table = pd.DataFrame(rows).groupby(["dataset", "method"], sort=False).mean()
        seconds = table["seconds"].unstack()
        ratio = seconds["cleanlab (5-fold CV)"] / seconds["MislabelDetector"]
        print(
            f"\n(c) recall of 10% flipped labels among the 10% most suspect, "
            f"mean of {args.seeds} seeds; {title}"
        )
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
        print("cleanlab seconds / MislabelDetector seconds:")
        print(ratio.to_string(float_format=lambda v: f"{v:.2f}"))


# -- d ---------------------------------------------------------------------------
def section_d(args):
    X, y = make_classification(
        n_samples=args.speed_n + args.speed_test,
        n_features=20,
        n_informative=10,
        random_state=0,
    )
    X, Xt, y, yt = (
        X[: args.speed_n],
        X[args.speed_n :],
        y[: args.speed_n],
        y[args.speed_n :],
    )
    model = HistGradientBoostingClassifier(
        max_iter=args.speed_trees,
        max_leaf_nodes=31,
        early_stopping=False,
        random_state=0,
    )
    fit_model = time.perf_counter()
    fitted = model.fit(X, y)
    fit_model = time.perf_counter() - fit_model
    t0 = time.perf_counter()
    explainer = InfluenceExplainer(FrozenEstimator(fitted)).fit(X, y)
    t1 = time.perf_counter()
    self_ours = explainer.self_influence()
    t2 = time.perf_counter()
    matrix = explainer.loo_change(Xt, yt)
    t3 = time.perf_counter()
    job = dict(
        model=fitted,
        X=X,
        y=y,
        Xt=Xt,
        yt=yt,
        methods=["boostin"],
        self=args.speed_self_rows,
    )
    theirs = run_treeinf(args.treeinf_python, job)
    formula = treeinf_boostin_formula(explainer.backend_, Xt, yt)
    ti_fit, ti_matrix, ti_self = theirs["boostin_time"]
    m_self = min(args.speed_self_rows, len(y))
    ti_self *= len(y) / m_self  # extrapolated: O(n) local influences of O(n T)
    ours_fit = t1 - t0
    table = pd.DataFrame(
        [
            dict(
                step="setup (trees read, gradients)",
                skinfluence=ours_fit,
                tree_influence=ti_fit,
            ),
            dict(
                step=f"self-influence (all rows; theirs: {m_self} rows x n/{m_self})",
                skinfluence=t2 - t1,
                tree_influence=ti_self,
            ),
            dict(
                step=f"influence matrix {len(yt)} x {len(y)}",
                skinfluence=t3 - t2,
                tree_influence=ti_matrix,
            ),
        ]
    )
    table["speed-up"] = table.tree_influence / table.skinfluence
    print(
        f"\n(d) BoostIn seconds, {len(y)} rows x "
        f"{explainer.backend_.ensemble_.n_trees} trees, one thread "
        f"(model fit {fit_model:.1f}s, not counted)"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(
        "scores: influence matrix ours vs theirs: max rel diff "
        f"{_rel(matrix, theirs['boostin']):.2e}; the formula rebuilt from our "
        f"arrays vs theirs: max rel diff "
        f"{_rel(-formula, -theirs['boostin']):.2e}; self-influence Spearman "
        f"{spearmanr(self_ours[:m_self], theirs['boostin_self'])[0]:.4f} (first "
        f"{m_self} rows)"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="a,b,c,d")
    parser.add_argument("--treeinf-python", default="/tmp/treeinf-venv/bin/python")
    parser.add_argument("--test-rows", type=int, default=10)
    parser.add_argument(
        "--datasets",
        default="",
        help="section b: comma-separated names (breast_cancer, diabetes, wine, "
        "synthetic binary, friedman1); all by default",
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-n", type=int, default=50_000)
    parser.add_argument("--speed-trees", type=int, default=200)
    parser.add_argument("--speed-test", type=int, default=100)
    parser.add_argument(
        "--speed-self-rows",
        type=int,
        default=200,
        help="rows tree-influence computes self-influence for (time scaled to n)",
    )
    args = parser.parse_args(argv)
    if not Path(args.treeinf_python).exists():
        print(
            f"tree-influence's environment ({args.treeinf_python}) is missing: "
            "section b leaves its columns out, and sections a, c and d stop "
            "(--sections b runs without it). Create it as benchmarks/README.md "
            "says, or pass --treeinf-python PATH."
        )
    warnings.filterwarnings("ignore", category=UserWarning)
    sections = {"a": section_a, "b": section_b, "c": section_c, "d": section_d}
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        sections[name.strip()](args)
        print(f"[section {name} took {time.perf_counter() - t0:.0f}s]")


if __name__ == "__main__":
    main()
