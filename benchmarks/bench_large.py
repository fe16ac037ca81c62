"""One million training rows: time against the GEMM floor, peak memory, dask.

Sections (each in a fresh subprocess, so that its peak resident memory is its
own):

- ``memory``: n_train = 1,000,000, d = 100 (X float64 is 763 MiB), L2 logistic
  regression. Times scikit-learn's fit (lbfgs), then
  ``InfluenceExplainer(FrozenEstimator(model)).fit(X, y)`` (Hessian, Cholesky,
  stationarity check) and ``self_influence()`` of every row (the best of
  ``--repeats`` runs, each listed), and compares the explainer's time with
  the GEMM floor: the flops of the necessary dense
  products (``X' D X`` as a symmetric rank-k update, ``n p^2``; the
  self-influence quadratic forms ``||L^-1 g_i||^2`` as one triangular solve,
  ``n p^2``; the Cholesky, ``p^3 / 3``) over this machine's measured float64
  GEMM rate (measured in the parent process just before and just after the
  child, the faster of the two). Reports the
  child process's peak resident memory (``ru_maxrss``: X, and the interpreter
  with numpy, scipy, scikit-learn and pandas loaded) over the size of X.
- ``dask``: the same explainer on a dask array of the same data (chunks of
  100,000 rows, persisted on the workers first, as data read there would
  be) on a 2-worker ``LocalCluster`` (threads, loopback), against the
  in-memory path in the same process: fit, self-influence, top-k.

Usage::

    python benchmarks/bench_large.py                 # both sections
    python benchmarks/bench_large.py --sections memory --n 1000000
    python benchmarks/bench_large.py --working-memory 64

Runs in the project's environment (numpy 2; no pyDVL needed). The markdown
table goes to ``benchmarks/results/bench_large.md``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench_large.md"


def _load():
    return os.getloadavg()[0]


def gemm_rate(n=2000, repeats=5):
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a @ b
    best = min(_timed(lambda: a @ b)[0] for _ in range(repeats))
    return 2.0 * n**3 / best


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def make_data(n, d, seed=0):
    """Standard normal features, labels from a logistic model (C order, float64)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d) / np.sqrt(d)
    y = (X @ w + rng.logistic(size=n) > 0).astype(np.int64)
    return X, y


def _fit_model(X, y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, tol=1e-8, max_iter=1000).fit(X, y)


def child_memory(args):
    """The ``memory`` section; prints one JSON line."""
    import numpy as np
    import sklearn
    from sklearn.frozen import FrozenEstimator

    from skinfluence import InfluenceExplainer

    n, d = args.n, args.d
    X, y = make_data(n, d)
    after_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t_model, model = _timed(lambda: _fit_model(X, y))
    config = (
        {} if args.working_memory is None else {"working_memory": args.working_memory}
    )
    runs = []  # (fit, self-influence) seconds per repeat
    with sklearn.config_context(**config):
        for _ in range(args.repeats):
            explainer = s = None  # free the previous repeat's first
            explainer = InfluenceExplainer(FrozenEstimator(model))
            t_fit, _ = _timed(partial(explainer.fit, X, y))
            t_self, s = _timed(explainer.self_influence)
            runs.append((t_fit, t_self))
    assert np.shares_memory(explainer.backend_.X_, X)
    t_fit, t_self = min(runs, key=sum)  # noise on a shared machine only adds
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    p = d + 1
    flops = 2 * n * p * p + p**3 / 3
    # A check of the values on a few rows: g_i' H^-1 g_i from scratch.
    rows = np.arange(0, n, n // 7)[:7]
    G = explainer.objective_.expand(X[rows], explainer.backend_.residuals_[rows])
    H = explainer.objective_.hessian(
        X, explainer.backend_.target_, explainer.backend_.weights_
    )
    check = np.einsum("ij,ji->i", G, np.linalg.solve(H, G.T))
    print(
        json.dumps(
            {
                "n": n,
                "d": d,
                "X_bytes": X.nbytes,
                "flops": flops,
                "fit_model_s": t_model,
                "model_n_iter": int(np.max(model.n_iter_)),
                "explainer_fit_s": t_fit,
                "self_influence_s": t_self,
                "all_totals_s": [sum(r) for r in runs],
                "rss_after_data": after_data,
                "peak_rss": peak,
                "working_memory": sklearn.get_config()["working_memory"]
                if args.working_memory is None
                else args.working_memory,
                "stationarity": explainer.stationarity_,
                "check_rel_err": float(np.max(np.abs(s[rows] - check) / check)),
            }
        )
    )


def child_dask(args):
    """The ``dask`` section; prints one JSON line."""
    import dask.array as da
    import numpy as np
    from distributed import Client, LocalCluster
    from sklearn.frozen import FrozenEstimator

    from skinfluence import InfluenceExplainer

    X, y = make_data(args.n, args.d)
    model = FrozenEstimator(_fit_model(X, y))
    X_test, y_test = X[:20], y[:20]

    def run(data):
        ex = InfluenceExplainer(model)
        t_fit, _ = _timed(lambda: ex.fit(data, y))
        t_self, s = _timed(lambda: np.asarray(ex.self_influence()))
        t_top, top = _timed(lambda: ex.top_influential(X_test, y_test, k=5))
        return {"fit": t_fit, "self": t_self, "top": t_top}, s, top

    memory, s_mem, top_mem = run(X)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster),
    ):
        # Data already on the workers, as when read from storage there.
        t_persist, Xd = _timed(
            lambda: da.from_array(X, chunks=(args.dask_chunk, args.d)).persist()
        )
        on_dask, s_dask, top_dask = run(Xd)
        on_dask["persist"] = t_persist
    err = float(np.max(np.abs(s_dask - s_mem)) / np.max(np.abs(s_mem)))
    same = bool((top_dask["train_row"].values == top_mem["train_row"].values).all())
    print(
        json.dumps(
            {
                "n": args.n,
                "d": args.d,
                "chunk": args.dask_chunk,
                "memory": memory,
                "dask": on_dask,
                "self_rel_err": err,
                "same_top": same,
            }
        )
    )


def _run_child(section, args):
    cmd = [sys.executable, __file__, "--child", section, "--n", str(args.n)]
    cmd += ["--d", str(args.d), "--dask-chunk", str(args.dask_chunk)]
    cmd += ["--repeats", str(args.repeats)]
    if args.working_memory is not None:
        cmd += ["--working-memory", str(args.working_memory)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"section {section} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mib(b):
    return f"{b / 2**20:,.0f} MiB"


def report_memory(r, load):
    floor = r["flops"] / r["gemm_rate"]
    ours = r["explainer_fit_s"] + r["self_influence_s"]
    lines = [
        f"**memory** (n={r['n']:,}, d={r['d']}, X {_mib(r['X_bytes'])}; "
        f"working_memory={r['working_memory']} MiB; load {load:.2f}; "
        f"GEMM {r['gemm_rate'] / 1e9:.1f} GFLOP/s)",
        "",
        "| step | time | x GEMM floor |",
        "|---|---|---|",
        f"| GEMM floor ({r['flops'] / 1e9:.1f} GFLOP) | {floor:.3f} s | 1.00 |",
        f"| explainer fit (Hessian, Cholesky, stationarity) | "
        f"{r['explainer_fit_s']:.3f} s | {r['explainer_fit_s'] / floor:.2f} |",
        f"| self_influence (every row) | {r['self_influence_s']:.3f} s | "
        f"{r['self_influence_s'] / floor:.2f} |",
        f"| explainer fit + self_influence (best of {len(r['all_totals_s'])}) | "
        f"{ours:.3f} s | {ours / floor:.2f} |",
        f"| LogisticRegression(lbfgs).fit, for scale | {r['fit_model_s']:.1f} s "
        f"({r['model_n_iter']} iterations) | {r['fit_model_s'] / floor:.1f} |",
        "",
        f"Peak resident memory of the process: {_mib(r['peak_rss'])} = "
        f"{r['peak_rss'] / r['X_bytes']:.2f}x X (after generating the data: "
        f"{_mib(r['rss_after_data'])}). Every repeat's fit + self_influence, x "
        "floor: "
        + ", ".join(f"{t / floor:.2f}" for t in r["all_totals_s"])
        + ". The floor uses the faster of the GEMM rates measured before and "
        f"after the section. Self-influence checked on 7 rows "
        f"against a dense solve: max rel. error {r['check_rel_err']:.1e}.",
    ]
    return "\n".join(lines)


def report_dask(r, load):
    m, k = r["memory"], r["dask"]
    lines = [
        f"**dask** (n={r['n']:,}, d={r['d']}, chunks of {r['chunk']:,} rows, "
        f"2-worker LocalCluster, threads; load {load:.2f})",
        "",
        "| step | in memory | dask | overhead |",
        "|---|---|---|---|",
    ]
    for key, name in (
        ("fit", "fit (Hessian reduction)"),
        ("self", "self_influence, computed"),
        ("top", "top_influential, 20 test rows, k=5"),
    ):
        lines.append(
            f"| {name} | {m[key]:.3f} s | {k[key]:.3f} s | {k[key] / m[key]:.2f}x |"
        )
    lines.append("")
    lines.append(
        f"Moving X to the workers first (`persist`, not counted above): "
        f"{k['persist']:.2f} s. Self-influence agrees to "
        f"{r['self_rel_err']:.1e} (relative to the largest); same top-k rows: "
        f"{r['same_top']}."
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="memory,dask")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--dask-chunk", type=int, default=100_000)
    parser.add_argument("--working-memory", type=float, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", default=None)
    args = parser.parse_args(argv)
    if args.child == "memory":
        return child_memory(args)
    if args.child == "dask":
        return child_dask(args)
    parts = []
    for section in args.sections.split(","):
        load = _load()
        rate = gemm_rate()  # here, so that its arrays stay out of the child's RSS
        result = _run_child(section, args)
        result["gemm_rate"] = max(rate, gemm_rate())  # the more demanding floor
        text = (report_memory if section == "memory" else report_dask)(result, load)
        print(text + "\n", flush=True)
        parts.append(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
