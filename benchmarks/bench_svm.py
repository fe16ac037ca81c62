"""SmoothHingeSVC against scikit-learn's SVC and LinearSVC at the same C.

Test accuracy and fit time, side by side in one process, on bundled data
(breast cancer, digits 3-vs-8, digits 10 classes) and on generated data at
n=5,000.

Fit times are single-threaded (``--threads``), as libsvm is.

Run: ``python benchmarks/bench_svm.py`` (or ``python3 dev.py bench bench_svm.py``).
"""

import argparse
import time
import warnings
from functools import partial

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import threadpool_limits

from skinfluence import SmoothHingeSVC


def datasets(large):
    X, y = load_breast_cancer(return_X_y=True)
    yield "breast cancer", X, y
    X, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 8)
    yield "digits 3 vs 8", X[keep], y[keep]
    yield "digits (10 classes)", X, y
    if large:
        X, y = make_classification(
            n_samples=6250, n_features=20, n_informative=10, flip_y=0.05, random_state=0
        )
        yield "generated, n_train=5,000", X, y


def best_time(make, X, y, repeats):
    best, model = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        model = make().fit(X, y)
        best = min(best, time.perf_counter() - start)
    return best, model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--no-large", action="store_true", help="skip the n=5,000 generated data set"
    )
    parser.add_argument("--temperature", type=float, default=0.001)
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS threads (libsvm uses one)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with threadpool_limits(args.threads):
        rows = run(args)
    table = pd.DataFrame(rows)
    table["acc diff (points)"] = 100 * (table["acc SmoothHingeSVC"] - table["acc peer"])
    print(f"\nSmoothHingeSVC(temperature={args.temperature}) vs scikit-learn, C=1:")
    print(
        table.to_markdown(index=False, floatfmt=".3g")
        if _has_tabulate()
        else table.to_string(index=False, float_format=lambda v: f"{v:.3g}")
    )


def run(args):
    rows = []
    for name, X, y in datasets(not args.no_large):
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.2, stratify=y, random_state=0
        )
        scaler = StandardScaler().fit(X_tr)
        X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
        repeats = 1 if len(y_tr) > 2000 else 3
        for kernel in ("linear", "rbf"):
            ours = partial(
                SmoothHingeSVC, C=1.0, kernel=kernel, temperature=args.temperature
            )
            if kernel == "linear":
                peer_name = "LinearSVC(hinge)"
                peer = partial(LinearSVC, C=1.0, loss="hinge", max_iter=100000)
            else:
                peer_name, peer = "SVC(rbf)", partial(SVC, C=1.0, kernel="rbf")
            t_ours, m_ours = best_time(ours, X_tr, y_tr, repeats)
            t_peer, m_peer = best_time(peer, X_tr, y_tr, repeats)
            rows.append(
                {
                    "data": name,
                    "n_train": len(y_tr),
                    "kernel": kernel,
                    "peer": peer_name,
                    "acc SmoothHingeSVC": m_ours.score(X_te, y_te),
                    "acc peer": m_peer.score(X_te, y_te),
                    "fit s SmoothHingeSVC": t_ours,
                    "fit s peer": t_peer,
                    "time ratio": t_ours / t_peer,
                }
            )
            print(rows[-1], flush=True)
    return rows


def _has_tabulate():
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
