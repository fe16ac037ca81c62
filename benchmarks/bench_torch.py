#!/usr/bin/env python3
"""Influence on a small CNN: skinfluence's torch solvers vs pyDVL 0.10, Captum 0.9.

One run, the same fitted CNN (``bench_torch_loo.make_cnn``, softplus, weight
decay 1e-2, at a stationary point) on digits,
the same test images. Every method computes the (n_test, n_train) matrix
``I_up,loss`` from scratch (Hessian or factors, then the test directions and
the training gradients); the error is the largest deviation from
skinfluence's exact answer over that answer's largest entry.

LiSSA runs ``--lissa-depth`` full-batch steps in both packages with the same
``scale=100``, above the Hessian's top eigenvalue (pyDVL's ``scale=10``
diverged to NaN). On a network this small skinfluence forms ``H`` once (768
products) instead of the recursion's 3,000: the row "lissa, products only"
times the same recursion when ``H`` does not fit in ``working_memory``. CG's
``tol`` is set so that its error reaches pyDVL's; Arnoldi shares pyDVL's
rank, Krylov dimension (2 rank + 1) and ARPACK tol (1e-6).
pyDVL's ``regularization=wd`` adds ``wd I`` to its Hessian: the same decay as
the objective skinfluence differentiates. pyDVL's ``InfluenceMode.Up`` has no
minus sign; it is negated here. Captum 0.9's exact ``NaiveInfluenceFunction``
(dense Hessian by ``torch.autograd.functional.hessian``, all eigenpairs kept)
is timed beside 'exact' (see :func:`captum_methods` for its scaling).
The CNN is fitted with ``bench_torch_loo.train`` (Adam without decay, then
L-BFGS with it).

Runs in ``.bench-venv`` (see ``setup_env.py``), re-executing itself there.

Usage::

    python3 benchmarks/bench_torch.py [--n-train 200] [--n-test 3] [--no-pydvl]
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    import setup_env

    if not setup_env.in_env() and "--here" not in sys.argv:
        setup_env.reexec_in_env(
            Path(__file__).resolve(), sys.argv[1:], dict(os.environ)
        )

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(HERE))
from bench_torch_loo import digits, make_cnn, train  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402
from skinfluence.solvers import CGSolver, LissaSolver, LowRankSolver  # noqa: E402

WD = 1e-2
# LiSSA's scale for both packages: above the Hessian's top eigenvalue (~95).
LISSA_SCALE = 100.0


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def ours(model, X, y, Xt, yt, solver, working_memory=None):
    def run():
        memory = {} if working_memory is None else {"working_memory": working_memory}
        with warnings.catch_warnings(), sklearn.config_context(**memory):
            warnings.simplefilter("ignore")
            ex = InfluenceExplainer(model, solver=solver, stationarity_tol=1e9)
            return ex.fit(X, y).influence(Xt, yt)

    return timed(run)


def pydvl_methods(module, X, y, Xt, yt, rank, depth):
    from pydvl.influence import InfluenceMode
    from pydvl.influence.torch import (
        ArnoldiInfluence,
        CgInfluence,
        DirectInfluence,
        EkfacInfluence,
        LissaInfluence,
    )
    from torch.utils.data import DataLoader, TensorDataset

    loss = torch.nn.functional.cross_entropy
    tX, ty = torch.as_tensor(X), torch.as_tensor(y)
    tXt, tyt = torch.as_tensor(Xt), torch.as_tensor(yt)
    loader = DataLoader(TensorDataset(tX, ty), batch_size=len(y))
    makers = {
        "exact": lambda: DirectInfluence(module, loss, regularization=WD),
        "cg": lambda: CgInfluence(
            module, loss, regularization=WD, rtol=1e-10, atol=1e-12, maxiter=2000
        ),
        "lissa": lambda: LissaInfluence(
            module, loss, regularization=WD, maxiter=depth, scale=LISSA_SCALE, rtol=1e-4
        ),
        "arnoldi": lambda: ArnoldiInfluence(module, loss, regularization=WD, rank=rank),
        "ekfac": lambda: EkfacInfluence(module, hessian_regularization=WD),
    }
    for name, make in makers.items():

        def run(make=make):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                infl = make().fit(loader)
                values = infl.influences(tXt, tyt, tX, ty, mode=InfluenceMode.Up)
            return -values.detach().numpy()

        yield name, run


def captum_methods(module, X, y, Xt, yt, tmpdir):
    """Captum 0.9's influence functions, exact (all eigenpairs kept).

    ``NaiveInfluenceFunction`` forms the Hessian of the loss summed over the
    rows of one batch with ``torch.autograd.functional.hessian`` and keeps
    the eigenpairs above ``hessian_inverse_tol``; with ``reduction='sum'``
    and ``hessian_reg = n wd`` that Hessian is ``n H``, so its score
    ``g_t' (n H)^-1 g_i`` is ``-influence / n`` in skinfluence's terms
    (rescaled here). Captum's Arnoldi variant is its low-rank counterpart.
    """
    from captum.influence import NaiveInfluenceFunction
    from torch.utils.data import TensorDataset

    path = os.path.join(tmpdir, "cnn.pt")
    torch.save(module.state_dict(), path)

    def load(model, path):
        model.load_state_dict(torch.load(path))
        return 1.0

    n = len(y)
    data = TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    tXt, tyt = torch.as_tensor(Xt), torch.as_tensor(yt)
    p = sum(q.numel() for q in module.parameters())

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            infl = NaiveInfluenceFunction(
                module,
                data,
                path,
                checkpoints_load_func=load,
                loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"),
                batch_size=n,
                sample_wise_grads_per_batch=True,  # needed by a 'sum' loss
                projection_dim=p,
                hessian_reg=n * WD,
                hessian_inverse_tol=0.0,
            )
            values = infl.influence((tXt, tyt))
        return -n * values.detach().numpy()

    yield "exact", run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=3)
    parser.add_argument("--rank", type=int, default=50)
    parser.add_argument("--lissa-depth", type=int, default=1000)
    parser.add_argument("--channels", default="8,6", help="conv channels")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-pydvl", action="store_true")
    parser.add_argument("--no-captum", action="store_true")
    parser.add_argument("--here", action="store_true", help="do not re-execute")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y, Xte, yte = digits(args.n_train, 0)
    Xt, yt = Xte[: args.n_test], yte[: args.n_test]
    torch.manual_seed(0)
    module = make_cnn(channels=tuple(int(c) for c in args.channels.split(",")))
    model, gnorm = train(module, X, y, WD, 0)
    p = sum(q.numel() for q in module.parameters())
    print(
        f"CNN p={p}, n_train={len(y)}, n_test={len(yt)}, |grad|={gnorm:.1e}, "
        f"train accuracy {model.score(X, y):.3f}, "
        f"torch {torch.__version__} ({args.threads} threads), load "
        f"{os.getloadavg()[0]:.2f}"
    )
    # pyDVL's settings where the two share them (LiSSA's scale, Arnoldi's
    # rank, Krylov dimension and tol); CG's tol is set so that its error
    # reaches pyDVL's (its rtol=1e-10, atol=1e-12 stop lands at ~5e-13).
    lissa = LissaSolver(depth=args.lissa_depth, tol=1e-4, scale=LISSA_SCALE)
    solvers = {
        "exact": "exact",
        "cg": CGSolver(tol=1e-13),
        "lissa": lissa,
        # The same recursion on Hessian-vector products only: H does not fit
        # in a working_memory of 1 MiB, so it is not formed.
        "lissa, products only": (lissa, 1),
        "arnoldi": LowRankSolver(rank=args.rank),
        "ekfac": "ekfac",
    }
    results = {}
    for name, solver in solvers.items():
        memory = None
        if isinstance(solver, tuple):
            solver, memory = solver
        results[("skinfluence", name)] = ours(model, X, y, Xt, yt, solver, memory)
        print(
            f"  skinfluence {name}: {results[('skinfluence', name)][1]:.2f} s",
            flush=True,
        )
    if not args.no_pydvl:
        for name, run in pydvl_methods(
            module, X, y, Xt, yt, args.rank, args.lissa_depth
        ):
            try:
                results[("pyDVL", name)] = timed(run)
            except Exception as exc:  # e.g. EK-FAC on Conv2d: reported, not fatal
                print(f"  pyDVL {name} failed: {exc}", flush=True)
                continue
            print(f"  pyDVL {name}: {results[('pyDVL', name)][1]:.2f} s", flush=True)
    if not args.no_captum:
        with tempfile.TemporaryDirectory() as tmp:
            for name, run in captum_methods(module, X, y, Xt, yt, tmp):
                try:
                    results[("Captum", name)] = timed(run)
                except Exception as exc:  # reported, not fatal
                    print(f"  Captum {name} failed: {exc}", flush=True)
    ref = results[("skinfluence", "exact")][0]
    scale = np.abs(ref).max()
    print("| solver | package | time (s) | max rel err vs exact |")
    print("|---|---|---|---|")
    for name in solvers:
        for pkg in ("skinfluence", "pyDVL", "Captum"):
            if (pkg, name) not in results:
                continue
            values, seconds = results[(pkg, name)]
            err = np.abs(values - ref).max() / scale
            print(f"| {name} | {pkg} | {seconds:.2f} | {err:.4e} |")


if __name__ == "__main__":
    main()
