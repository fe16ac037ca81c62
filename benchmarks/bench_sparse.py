"""Sparse bag-of-words logistic regression: skinfluence's CG against pyDVL's CG.

n_train = 20,000 documents, d = 50,000 words, 1% density (500 distinct words
per document, uniform vocabulary, tf = log1p(count), rows scaled to unit
norm), labels from a sparse logistic model. ``LogisticRegression(C=1,
fit_intercept=False)`` (lbfgs, tol 1e-10): the mean-form penalty is
``lambda = 1 / (C n) = 5e-5``, and with d > n most directions of the Hessian
have curvature lambda only, so CG converges slowly. Influence of every
training row on the loss of 100 test rows, the full (100, 20,000) matrix:

- **skinfluence cg**: ``InfluenceExplainer(FrozenEstimator(model),
  solver=CGSolver(tol=1e-10))``: block conjugate gradients on all 100 test
  gradients at once, each Hessian product two sparse products (in panels of
  16 columns). Timed: ``fit`` (incl. the stationarity check) and
  ``influence`` (the solve plus the products with the training gradients);
- **skinfluence woodbury** (``--woodbury``, exact, slow: an (n, n)
  Cholesky): ``H = lambda I + U' U`` with ``U`` the (n, d) sparse matrix of
  scaled rows, inverted through ``I + U U' / lambda``;
- **pyDVL 0.10 CgInfluence** on the same model (``nn.Linear(d, 1,
  bias=False)`` in float64, mean BCE loss, ``regularization = 1 / (C n)``,
  the same Hessian), all 100 right-hand sides solved together
  (``solve_simultaneously=True``), its default ``rtol=1e-4``; torch takes
  dense batches, so the DataLoader densifies 1,000 rows at a time.
  ``--pydvl-maxiter`` caps its CG iterations (the time per iteration is
  reported).

**Checks of ours.** The dense Hessian (50,000^2 floats, 20 GB) is out of
reach, so each solution ``x`` is certified independently: the script computes
``r = H x - g_t`` with its own sparse Hessian product, and since ``H >=
lambda I`` (every coefficient is penalized, no intercept), ``||x - x*|| <=
||r|| / lambda``; the printed bound on the influence error follows from it.
Errors of pyDVL are measured against ours.

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
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
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


def run_skinfluence(model, X, y, X_test, y_test, solver):
    """Times of ``fit`` and ``influence``, and the test rows' solutions."""
    t0 = time.perf_counter()
    explainer = InfluenceExplainer(FrozenEstimator(model), solver=solver)
    explainer.fit(X, y)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    values = explainer.influence(X_test, y_test)
    t_influence = time.perf_counter() - t0
    obj = explainer.objective_
    G_test = obj.expand(X_test, obj.residuals(X_test, obj.family.encode(y_test)))
    V = explainer.solver_.solve(G_test.T)  # untimed: for the certificate
    return explainer, values, V, G_test, (t_fit, t_influence)


def certified_bound(model, X, explainer, values, V, G_test):
    """Bound on the influence matrix's max error relative to its largest entry."""
    resid = np.linalg.norm(hessian_product(model, X, V) - G_test.T, axis=0)
    lam = 1.0 / (model.C * X.shape[0])
    g_train = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel()) * np.abs(
        explainer.backend_.residuals_[:, 0]
    )
    return g_train.max() * (resid / lam).max() / np.abs(values).max()


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
    parser.add_argument("--pydvl-maxiter", type=int, default=20)
    parser.add_argument("--pydvl-batch", type=int, default=1000)
    parser.add_argument("--cg-tol", type=float, default=1e-10)
    parser.add_argument("--woodbury", action="store_true")
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

    rows, results = [], {}
    solvers = {"cg": CGSolver(tol=args.cg_tol, maxiter=3000)}
    if args.woodbury:
        solvers["woodbury"] = "woodbury"
    for name, solver in solvers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            ex, values, V, G_test, (t_fit, t_infl) = run_skinfluence(
                model, X, y, X_test, y_test, solver
            )
        bound = certified_bound(model, X, ex, values, V, G_test)
        results[name] = (t_fit + t_infl, values, bound)
        iters = ex.solver_.n_iter_ if name == "cg" else "-"
        label = f"tol {args.cg_tol:g}" if name == "cg" else "exact"
        rows.append(
            (
                f"skinfluence {name} ({label}), all {args.n_test} test rows",
                f"{t_fit + t_infl:.1f} s (fit {t_fit:.1f} + influence {t_infl:.1f})",
                f"<= {bound:.1e} (certified)",
                iters,
            )
        )
        print(rows[-1], flush=True)
    t_ours, ours, bound = results["cg"]

    def err(a):
        return float(np.abs(a - ours).max() / np.abs(ours).max())

    if "woodbury" in results:
        rows[-1] = (
            rows[-1][:2]
            + (f"{rows[-1][2]}; vs cg {err(results['woodbury'][1]):.1e}",)
            + rows[-1][3:]
        )
    if not args.no_pydvl:
        values, t_pydvl_solve, t_pydvl = run_pydvl(
            model, X, y, X_test, y_test, args.pydvl_maxiter, args.pydvl_batch
        )
        e_pydvl = err(values)
        rows.append(
            (
                f"pyDVL CgInfluence (rtol 1e-4, maxiter {args.pydvl_maxiter})",
                f"{t_pydvl:.1f} s (solve {t_pydvl_solve:.1f})",
                f"{e_pydvl:.1e}",
                f"<= {args.pydvl_maxiter}",
            )
        )
    lines = [
        f"n={args.n:,}, d={args.d:,}, density {density:.4f}, {args.n_test} test "
        f"rows; load {load:.2f} (2 cores, shared); sklearn fit {t_model:.1f} s",
        "",
        "| method | time | max rel err of influence | CG iterations |",
        "|---|---|---|---|",
    ]
    for name, t, e, it in rows:
        lines.append(f"| {name} | {t} | {e} | {it} |")
    lines += [
        "",
        "Certified bound: the relative residual ||H x - g|| / ||g|| of each "
        "solution (Hessian products written in this script) over the penalty, "
        "times the largest training gradient, relative to the largest influence.",
    ]
    if not args.no_pydvl:
        ratio = t_pydvl / t_ours
        if e_pydvl > bound:
            lines.append(
                f"pyDVL / skinfluence cg time: {ratio:.0f}x; pyDVL, capped at "
                f"{args.pydvl_maxiter} iterations, still has error {e_pydvl:.1e} "
                f"(ours <= {bound:.1e}): at least {ratio:.0f}x."
            )
        else:
            lines.append(f"pyDVL / skinfluence cg time: {ratio:.0f}x.")
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
