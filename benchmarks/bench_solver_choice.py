#!/usr/bin/env python3
"""Which exact solver ``solver='auto'`` should pick on wide data.

For penalized linear models with fewer rows than parameters, both
``solver='exact'`` (a Cholesky of the ``(p, p)`` Hessian) and
``solver='woodbury'`` (a Cholesky of an ``(m, m)`` matrix, ``m = n_samples *
n_outputs``) give influence to rounding. On dense Gaussian data (``Ridge()``
and ``LogisticRegression()`` at their defaults, already fitted), the script
times in one process, best of ``--repeats`` calls, one BLAS thread:

* ``fit``: the explainer's fit (Hessian or Woodbury factor, stationarity);
* ``influence``: ``influence(X[:100], y[:100])``;
* ``self``: ``self_influence()`` of every training row;

for both solvers and for ``'auto'`` (the solver it picked is shown), and the
largest difference of the two solvers' influence matrices, relative to their
largest entry, on the same ``FrozenEstimator`` (an unfrozen model is finished
by Newton steps in each explainer, whose optima differ by more than the
solvers' rounding).

Usage::

    python3 benchmarks/bench_solver_choice.py [--repeats 3]
"""

import argparse
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402

SHAPES = [
    (200, 4000, "ridge"),
    (500, 3000, "ridge"),
    (1000, 2000, "ridge"),
    (2000, 2500, "ridge"),
    (300, 3000, "logistic"),
    (1500, 3000, "logistic"),
]


def _data(n, d, kind, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ (rng.standard_normal(d) / np.sqrt(d)) + 0.1 * rng.standard_normal(n)
    if kind == "logistic":
        return X, (y > 0).astype(int), LogisticRegression().fit(X, y > 0)
    return X, y, Ridge().fit(X, y)


def _best(func, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return best, out


def _run(model, X, y, solver, repeats):
    fit_s, explainer = _best(
        lambda: InfluenceExplainer(model, solver=solver).fit(X, y), repeats
    )
    infl_s, infl = _best(lambda: explainer.influence(X[:100], y[:100]), repeats)
    self_s, _ = _best(explainer.self_influence, repeats)
    name = type(explainer.solver_).__name__.replace("Solver", "").lower()
    return (fit_s, infl_s, self_s), np.asarray(infl), name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        "| rows x features | model | exact: fit / influence / self (s) | "
        "woodbury: fit / influence / self (s) | 'auto' picks | "
        "max difference / max |influence| |"
    )
    print("|---|---|---|---|---|---|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n, d, kind in SHAPES:
            X, y, model = _data(n, d, kind)
            exact, _, _ = _run(model, X, y, "exact", args.repeats)
            wood, _, _ = _run(model, X, y, "woodbury", args.repeats)
            _, _, picked = _run(model, X, y, "auto", 1)
            frozen = FrozenEstimator(model)
            _, I_exact, _ = _run(frozen, X, y, "exact", 1)
            _, I_wood, _ = _run(frozen, X, y, "woodbury", 1)
            diff = np.abs(I_wood - I_exact).max() / np.abs(I_exact).max()
            cells = [" / ".join(f"{t:.3f}" for t in times) for times in (exact, wood)]
            print(
                f"| {n} x {d} | {kind} | {cells[0]} | {cells[1]} | {picked} | "
                f"{diff:.1e} |"
            )


if __name__ == "__main__":
    main()
