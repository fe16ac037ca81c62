#!/usr/bin/env python3
"""Mislabel detection: skinfluence's MislabelDetector vs cleanlab, side by side.

For each dataset and seed, 10% of the labels are flipped uniformly to another
class, and in one process, with the same base model (the detector's default:
``StandardScaler`` + ``LogisticRegression(C=1, tol=1e-8, max_iter=5000)``):

* skinfluence, default: ``MislabelDetector().fit(X, y_noisy)`` (up to three
  rounds: held-out loss, then refits without the rows the previous round
  flags, every row rescored by a model that never saw it); the time includes
  fitting the model;
* skinfluence, one round: ``MislabelDetector(method=m, n_rounds=1)`` for every
  method (``loo_loss``, ``self_influence``, ``training_loss``).
  Ranking: ``ranking_``; flagged set: ``label_issues_``
  (``contamination='auto'``: the rows whose held-out prediction is another
  class);
* cleanlab: ``cross_val_predict(model, X, y_noisy, cv=5,
  method='predict_proba')``, then ``cleanlab.rank.get_label_quality_scores``
  (the ranking) and ``cleanlab.filter.find_label_issues`` (the flagged set,
  ``n_jobs=1``: its multiprocessing only adds start-up time on data this size);
  the time covers the cross-validation and both cleanlab calls. A second
  cleanlab row uses scikit-learn's default ``tol=1e-4`` (faster, not the same
  model) so that the speed-up is not an artefact of the tight tolerance;
* random: checking rows in random order finds, in expectation, the share of
  rows checked.

Everything runs with one BLAS thread (``--threads``): on a shared 2-core
machine, spinning BLAS threads made single fits swing by 10x.

Reported per dataset, averaged over the seeds: recall of the flipped labels
among the top 10% of the ranking (the paper's Figure 4 read at 10%), size,
precision and recall of the flagged set, seconds (best of a few calls) and the
speed-up over cleanlab (same model). The table is printed and written to
``benchmarks/results/bench_cleaning.md``.

Usage::

    python3 dev.py bench bench_cleaning.py        # installs the bench extra
    python benchmarks/bench_cleaning.py [--seeds 3] [--datasets wine,iris]

Needs ``cleanlab`` (``pip install -e '.[bench]'``); it works with numpy 2, so
no separate environment is needed.
"""

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_classification,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skinfluence
from skinfluence import MislabelDetector
from skinfluence.cleaning import METHODS, default_estimator

try:
    import cleanlab
    import cleanlab.filter
    import cleanlab.rank
except ImportError:  # pragma: no cover - message for the user
    sys.exit(
        "bench_cleaning.py needs cleanlab: pip install cleanlab "
        "(or pip install -e '.[bench]')"
    )

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench_cleaning.md"
NOISE = 0.10
CHECKED = 0.10
DEFAULT = "skinfluence default (3 rounds)"


def _synthetic(n, d, k, seed=0):
    return make_classification(
        n_samples=n,
        n_features=d,
        n_informative=d // 2,
        n_redundant=0,
        n_classes=k,
        n_clusters_per_class=1,
        class_sep=1.5,
        flip_y=0.0,
        random_state=seed,
    )


DATASETS = {
    "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
    "wine": lambda: load_wine(return_X_y=True),
    "iris": lambda: load_iris(return_X_y=True),
    "digits": lambda: load_digits(return_X_y=True),
    "synthetic-4class": lambda: _synthetic(3000, 20, 4),
    "synthetic-binary-20k": lambda: _synthetic(20000, 40, 2),
}


def flip_labels(y, noise, rng):
    """Flip ``noise`` of the labels, each to a uniformly drawn other class."""
    classes = np.unique(y)
    n_flip = int(round(noise * len(y)))
    rows = np.sort(rng.choice(len(y), n_flip, replace=False))
    y_noisy = y.copy()
    for i in rows:
        y_noisy[i] = rng.choice(classes[classes != y[i]])
    return y_noisy, rows


def timed(fn, min_calls=1, budget_s=1.0, max_calls=5):
    """Best wall time of a few calls of ``fn`` (more calls while cheap)."""
    times, out, start = [], None, time.perf_counter()
    while len(times) < min_calls or (
        len(times) < max_calls and time.perf_counter() - start < budget_s
    ):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def recall_at(ranking, flipped, checked=CHECKED):
    k = int(np.ceil(checked * len(ranking)))
    return np.isin(ranking[:k], flipped).sum() / len(flipped)


def flagged_stats(mask, flipped):
    n_flag = int(mask.sum())
    hits = int(mask[flipped].sum())
    return n_flag, hits / max(n_flag, 1), hits / len(flipped)


def run_skinfluence(X, y, method):
    def fit():
        return MislabelDetector(method=method, n_rounds=1).fit(X, y)

    seconds, det = timed(fit)
    return seconds, det.ranking_, det.label_issues_


def run_default(X, y):
    """``MislabelDetector()``: up to 3 rounds (clean, refit, rescore every row)."""

    def fit():
        return MislabelDetector().fit(X, y)

    seconds, det = timed(fit)
    return seconds, det.ranking_, det.label_issues_


def run_cleanlab(X, y, model):
    def fit():
        proba = cross_val_predict(model, X, y, cv=5, method="predict_proba")
        quality = cleanlab.rank.get_label_quality_scores(y, proba)
        issues = cleanlab.filter.find_label_issues(y, proba, n_jobs=1)
        return quality, issues

    seconds, (quality, issues) = timed(fit)
    return seconds, np.argsort(quality, kind="stable"), issues


def bench_dataset(name, seeds):
    X, y = DATASETS[name]()
    X = np.asarray(X, dtype=float)
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        y_noisy, flipped = flip_labels(y, NOISE, rng)
        for method in METHODS:
            seconds, ranking, flags = run_skinfluence(X, y_noisy, method)
            rows.append(
                (
                    f"skinfluence {method}, one round",
                    seed,
                    recall_at(ranking, flipped),
                    *flagged_stats(flags, flipped),
                    seconds,
                )
            )
        seconds, ranking, flags = run_default(X, y_noisy)
        rows.append(
            (
                DEFAULT,
                seed,
                recall_at(ranking, flipped),
                *flagged_stats(flags, flipped),
                seconds,
            )
        )
        for label, model in (
            ("cleanlab (same model)", default_estimator()),
            (
                "cleanlab (tol=1e-4)",
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
            ),
        ):
            seconds, ranking, flags = run_cleanlab(X, y_noisy, model)
            rows.append(
                (
                    label,
                    seed,
                    recall_at(ranking, flipped),
                    *flagged_stats(flags, flipped),
                    seconds,
                )
            )
        k = int(np.ceil(CHECKED * len(y)))
        rows.append(("random", seed, k / len(y), np.nan, np.nan, np.nan, np.nan))
    table = pd.DataFrame(
        rows,
        columns=[
            "method",
            "seed",
            "recall@10%",
            "flagged",
            "flagged precision",
            "flagged recall",
            "seconds",
        ],
    )
    summary = table.groupby("method", sort=False).mean(numeric_only=True)
    summary = summary.drop(columns="seed")
    reference = summary.loc["cleanlab (same model)", "seconds"]
    summary["speed-up vs cleanlab"] = reference / summary["seconds"]
    n, d = X.shape
    summary = summary.reset_index()
    summary.insert(0, "dataset", f"{name} ({n}x{d}, {len(np.unique(y))} classes)")
    return summary, table


def to_markdown(summary):
    def fmt(col, v):
        if pd.isna(v):
            return ""
        if col == "flagged":
            return f"{v:.0f}"
        if col == "seconds":
            return f"{v:.3f}"
        if col == "speed-up vs cleanlab":
            return f"{v:.1f}x"
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    cols = list(summary.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in summary.iterrows():
        lines.append("| " + " | ".join(fmt(c, row[c]) for c in cols) + " |")
    return "\n".join(lines)


def verdict(summaries):
    """Per dataset: recall@10% of loo_loss >= cleanlab's, and the speed-up."""
    out, ok_recall, ok_speed = [], True, True
    for s in summaries:
        s = s.set_index("method")
        name = s["dataset"].iloc[0]
        ours = s.loc[DEFAULT]
        ref = s.loc["cleanlab (same model)"]
        best = s.loc[[m for m in s.index if m.startswith("skinfluence")]]
        best = best.drop(index=DEFAULT)
        r_ok = ours["recall@10%"] >= ref["recall@10%"] - 1e-12
        v_ok = ours["speed-up vs cleanlab"] >= 2
        ok_recall &= r_ok
        ok_speed &= v_ok
        out.append(
            f"- {name}: recall@10% {ours['recall@10%']:.3f} vs cleanlab "
            f"{ref['recall@10%']:.3f} ({'met' if r_ok else 'NOT met'}); "
            f"{ours['speed-up vs cleanlab']:.1f}x faster "
            f"({'met' if v_ok else 'NOT met'}); best one-round method here: "
            f"{best['recall@10%'].idxmax().split()[1].rstrip(',')}"
        )
    both = pd.concat(summaries)
    means = both.groupby("method", sort=False)["recall@10%"].mean()
    out.append(
        "\nMean recall@10% over the datasets: "
        + ", ".join(f"{m} {v:.3f}" for m, v in means.items() if m != "random")
    )
    recall = both.pivot(index="dataset", columns="method", values="recall@10%")
    wins = recall.ge(recall["cleanlab (same model)"] - 1e-12, axis=0).sum()
    out.append(
        "Datasets where recall@10% >= cleanlab's: "
        + ", ".join(
            f"{m} {wins[m]}/{len(summaries)}"
            for m in means.index
            if m.startswith("skinfluence")
        )
    )
    out.append(
        f"\nTargets (the default detector vs cleanlab, same model): recall@10% "
        f">= cleanlab's on every dataset: {'MET' if ok_recall else 'NOT MET'}; "
        f">= 2x faster on every dataset: {'MET' if ok_speed else 'NOT MET'}."
    )
    return "\n".join(out)


def header(seeds):
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
            for i in threadpool_info()
        )
    except ImportError:
        blas = "threadpoolctl not installed"
    return (
        f"skinfluence {skinfluence.__version__}, cleanlab {cleanlab.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; {blas}.\n"
        f"{NOISE:.0%} of labels flipped uniformly to another class, {seeds} seeds "
        "(means shown); recall@10% = share of the flipped labels among the 10% "
        "top-ranked rows; flagged = skinfluence contamination='auto' / "
        "cleanlab.filter.find_label_issues; seconds: best of up to 5 calls, "
        "model fitting included."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help=f"comma-separated subset of {', '.join(DATASETS)}",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads for everything (default 1: on a shared "
        "machine, spinning BLAS threads make timings swing by 10x); 0 = leave "
        "as is",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {list(DATASETS)}")
    warnings.filterwarnings("ignore", category=FutureWarning)
    print(header(args.seeds), flush=True)
    summaries = []
    for name in names:
        t0 = time.perf_counter()
        summary, _ = bench_dataset(name, args.seeds)
        summaries.append(summary)
        print(f"\n{to_markdown(summary)}", flush=True)
        print(f"({name}: {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    text = "\n".join(
        [
            "# bench_cleaning.py",
            "",
            header(args.seeds),
            "",
            to_markdown(pd.concat(summaries, ignore_index=True)),
            "",
            verdict(summaries),
            "",
        ]
    )
    print("\n" + verdict(summaries))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
