"""Influence matches leave-one-out retraining: Koh & Liang's Figure 2, drawn.
==========================================================================

10-class logistic regression on scikit-learn's digits (the paper uses MNIST).
For one misclassified test image, remove each of the 30 training rows with the
largest predicted effect on its loss (and 10 at random), refit, and plot the
actual change of the test loss against the prediction. Left: the paper's
first-order influence (``LOOAgreementDisplay.from_estimator``). Right: the
same refits against one Newton step on the objective without the row
(``loo_change(method='newton')``, drawn with
``LOOAgreementDisplay.from_predictions``), which removes most of the
first-order under-estimate of large changes.

Run: ``.venv/bin/python examples/plot_loo_agreement.py [--out loo_agreement.png]``
"""

import argparse
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402
from skinfluence.plotting import LOOAgreementDisplay  # noqa: E402

PAPER_R = 0.99  # Koh & Liang (2017), Figure 2, logistic regression on MNIST


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", default=None, help="PNG to write (optional)")
    parser.add_argument("--n-remove", type=int, default=30)
    parser.add_argument("--n-random", type=int, default=10)
    args = parser.parse_args(argv)
    start = time.perf_counter()

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    model = LogisticRegression(C=1.0, tol=1e-10, solver="newton-cholesky")
    exact = InfluenceExplainer(model).fit(X_tr, y_tr)
    wrong = np.flatnonzero(exact.predict(X_te) != y_te)
    t = wrong[0]  # a misclassified test image, as in the paper
    X_t, y_t = X_te[[t]], y_te[[t]]

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.2))
    shown = LOOAgreementDisplay.from_estimator(
        exact,
        X_t,
        y_t,
        n_remove=args.n_remove,
        n_random=args.n_random,
        random_state=0,
        name="first-order influence (the paper)",
        ax=left,
    )
    # The same removed rows and refits, predicted by one Newton step.
    rows = shown.train_row.astype(int)
    predicted = exact.loo_change(X_t, y_t, method="newton")[0, rows]
    newton = LOOAgreementDisplay.from_predictions(
        predicted,
        shown.actual,
        selection=shown.selection,
        name="one Newton step without the row",
        ax=right,
    )
    fig.suptitle(
        f"digits, L2 logistic regression (C=1, {len(y_tr)} training rows): "
        f"removing one row, test image {t} (label {y_t[0]}, predicted "
        f"{exact.predict(X_t)[0]})",
        fontsize=11,
    )
    fig.tight_layout()
    if args.out:
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")

    print(
        f"Predicted vs actual change of one test loss, {args.n_remove} top + "
        f"{args.n_random} random rows removed and refitted:"
    )
    print(f"{'':<40}{'Pearson R':>10}{'slope':>8}")
    print(f"{'paper (Figure 2, MNIST)':<40}{PAPER_R:>10.2f}{'':>8}")
    for display in (shown, newton):
        print(f"{display.name:<40}{display.pearson_r:>10.4f}{display.slope:>8.3f}")
    print(f"({time.perf_counter() - start:.1f} s)")


# %%
# Refit without each selected row and draw the actual change of the test
# loss against both predictions.

if __name__ == "__main__":
    main()
