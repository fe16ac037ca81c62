"""Sparse bag-of-words logistic regression: skinfluence's cg against pyDVL's CG.

n_train = 20,000 documents, d = 50,000 words, 1% density (500 distinct words
per document, uniform vocabulary, tf = log1p(count), rows scaled to unit
norm), labels from a sparse logistic model. ``LogisticRegression(C=1,
fit_intercept=False)`` (lbfgs, tol 1e-10). Influence of every training row on
the loss of 100 test rows, the full (100, 20,000) matrix:

- **skinfluence**: ``InfluenceExplainer(FrozenEstimator(model),
  solver='cg')`` (block CG, Jacobi-preconditioned, tol 1e-10, on the sparse
  matrix: Hessian products ``X' (D (X V))``), ``fit`` plus ``influence``;
- **pyDVL 0.10 CgInfluence** on the same model (``nn.Linear(d, 1,
  bias=False)`` in float64, mean BCE loss, ``regularization = 1 / (C n)``,
  the same Hessian), all 100 right-hand sides solved together
  (``solve_simultaneously=True``), its default ``rtol=1e-4``; torch takes
  dense batches, so the DataLoader densifies 1,000 rows at a time.
  ``--pydvl-maxiter`` caps its CG iterations (its time per iteration is
  reported, so the uncapped time can be estimated).

**Reference.** The dense Hessian (50,000^2 floats, 20 GB) is out of reach, so
the reference solves ``H x = g_t`` by skinfluence's CG at ``tol=1e-13`` and
certifies it independently: the script computes the residual
``r = H x - g_t`` with its own sparse Hessian product, and, since
``H >= lambda I`` (every coefficient is penalized, no intercept),
``||x - x*|| <= ||r|| / lambda``; the printed bound on the reference's
influence error follows from it.

Runs in ``.bench-venv`` (pyDVL needs numpy<2, see ``setup_env.py``), into
which it re-executes itself. ``--no-pydvl`` skips pyDVL.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _bootstrap():
    sys.path.insert(0, str(HERE))
    import setup_env

    if not setup_env.in_env():
        setup_env.reexec_in_env(
            Path(__file__).resolve(), sys.argv[1:], dict(os.environ)
        )


if __name__ == "__main__" and "--no-pydvl" not in sys.argv:
    _bootstrap()

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.special import expit  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402
from skinfluence.solvers import CGSolver  # noqa: E402

RESULTS = HERE / "results" / "bench_sparse.md"


def make_data(n, d, words, n_test, seed=0):
    rng = np.random.default_rng(seed)
    rows = n + n_test
    cols = rng.integers(0, d, size=(rows, words))
    counts = sp.csr_matrix(
        (np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, words)),
        shape=(rows, d),
    )
    counts.sum_duplicates()
    counts.data = np.log1p(counts.data)
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
    X = sp.diags(1.0 / norms) @ counts
    X = X.tocsr()
    w = rng.standard_normal(d) * (rng.random(d) < 0.05) * 40.0
    y = (rng.random(rows) < expit(X @ w)).astype(np.float64)
    return X[:n], y[:n], X[n:], y[n:]


def hessian_product(model, X, V):
    """``H V`` written out here: ``X' diag(p (1 - p)) X V / n + V / (C n)``."""
    n = X.shape[0]
    prob = expit(X @ model.coef_.ravel())
    D = prob * (1 - prob)
    return X.T @ (D[:, None] * (X @ V)) / n + V / (model.C * n)


def run_skinfluence(model, X, y, X_test, y_test, tol):
    explainer = InfluenceExplainer(
        FrozenEstimator(model), solver=CGSolver(tol=tol, maxiter=100_000)
    )
    explainer.fit(X, y)
    return explainer, explainer.influence(X_test, y_test)


def run_pydvl(model, X, y, X_test, y_test, maxiter, batch):
    warnings.filterwarnings("ignore")
    import torch
    from pydvl.influence import InfluenceMode
    from pydvl.influence.torch import CgInfluence
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    torch.set_num_threads(os.cpu_count() or 1)
    n, d = X.shape

    class Dense(Dataset):
        """Batches of CSR rows, densified on the fly (torch wants dense)."""

        def __len__(self):
            return -(-n // batch)

        def __getitem__(self, i):
            rows = slice(i * batch, min((i + 1) * batch, n))
            return torch.as_tensor(X[rows].toarray()), torch.as_tensor(y[rows])

    net = nn.Linear(d, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        net.weight.copy_(torch.as_tensor(model.coef_))
    net.eval()

    def loss(output, target):
        return nn.functional.binary_cross_entropy_with_logits(output[:, 0], target)

    loader = DataLoader(Dense(), batch_size=None)
    lam = 1.0 / (model.C * n)
    t0 = time.perf_counter()
    infl = CgInfluence(
        net,
        loss,
        regularization=lam,
        maxiter=maxiter,
        solve_simultaneously=True,
        warn_on_max_iteration=False,
    ).fit(loader)
    xt, yt = torch.as_tensor(X_test.toarray()), torch.as_tensor(y_test)
    factors = infl.influence_factors(xt, yt)
    t_solve = time.perf_counter() - t0
    blocks = []
    for xb, yb in loader:
        blocks.append(
            infl.influences_from_factors(factors, xb, yb, mode=InfluenceMode.Up)
        )
    values = -torch.cat(blocks, dim=1).detach().numpy()
    return values, t_solve, time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--d", type=int, default=50_000)
    parser.add_argument("--words", type=int, default=505)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--pydvl-maxiter", type=int, default=100)
    parser.add_argument("--pydvl-batch", type=int, default=1000)
    parser.add_argument("--no-pydvl", action="store_true")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    X, y, X_test, y_test = make_data(args.n, args.d, args.words, args.n_test)
    density = X.nnz / (X.shape[0] * X.shape[1])
    t0 = time.perf_counter()
    model = LogisticRegression(C=1.0, fit_intercept=False, tol=1e-10, max_iter=5000)
    model.fit(X, y)
    t_model = time.perf_counter() - t0
    print(f"data: {X.shape}, density {density:.4f}; model fit {t_model:.1f} s")

    t0 = time.perf_counter()
    ours_ex, ours = run_skinfluence(model, X, y, X_test, y_test, tol=1e-10)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_ex, ref = run_skinfluence(model, X, y, X_test, y_test, tol=1e-13)
    t_ref = time.perf_counter() - t0
    # Certificate of the reference: ||x - x*|| <= ||H x - g|| / lambda.
    obj = ref_ex.objective_
    G_test = obj.expand(X_test, obj.residuals(X_test, obj.family.encode(y_test)))
    V = ref_ex.solver_.solve(G_test.T)
    resid = np.linalg.norm(hessian_product(model, X, V) - G_test.T, axis=0)
    lam = 1.0 / (model.C * args.n)
    g_train = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel()) * np.abs(
        ref_ex._R[:, 0]
    )
    bound = g_train.max() * (resid / lam).max() / np.abs(ref).max()

    def err(a):
        return float(np.abs(a - ref).max() / np.abs(ref).max())

    rows = [
        ("skinfluence cg (tol 1e-10)", t_ours, err(ours), ours_ex.solver_.n_iter_),
        ("reference: skinfluence cg (tol 1e-13)", t_ref, 0.0, ref_ex.solver_.n_iter_),
    ]
    if not args.no_pydvl:
        values, t_solve, t_all = run_pydvl(
            model, X, y, X_test, y_test, args.pydvl_maxiter, args.pydvl_batch
        )
        rows.append(
            (
                f"pyDVL CgInfluence (rtol 1e-4, maxiter {args.pydvl_maxiter})",
                t_all,
                err(values),
                f"<= {args.pydvl_maxiter} (solve {t_solve:.1f} s)",
            )
        )
    lines = [
        f"n={args.n:,}, d={args.d:,}, density {density:.4f}, {args.n_test} test "
        f"rows; load {load:.2f}; sklearn fit {t_model:.1f} s",
        "",
        "| method | time (fit + influence) | max rel err vs reference "
        "| CG iterations |",
        "|---|---|---|---|",
    ]
    for name, t, e, it in rows:
        lines.append(f"| {name} | {t:.2f} s | {e:.1e} | {it} |")
    lines += [
        "",
        f"Reference certificate: influence error at most {bound:.1e} of the "
        "largest entry (residual over the penalty, times the largest gradient).",
    ]
    if not args.no_pydvl:
        lines.append(f"pyDVL / skinfluence time: {rows[-1][1] / t_ours:.0f}x.")
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
