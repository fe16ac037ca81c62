"""Finding mislabeled training rows: Koh & Liang's Figure 6, on bundled data.
==========================================================================

Flip 10% of the training labels of a scikit-learn dataset, rank the training
rows with :class:`skinfluence.MislabelDetector` (each method, one round, and
the default three rounds) and check them in
that order. Left: the share of flipped labels found against the share of the
training data checked (random order finds them in proportion), drawn by
:class:`skinfluence.plotting.MislabelCurveDisplay`. Right: the test accuracy
once the checked rows get their true labels back.

Run: ``.venv/bin/python examples/mislabel_detection.py [--dataset digits] [--out FILE]``
(draws the figure; ``--out FILE`` also writes it as a PNG).
"""

import argparse
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, load_wine  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skinfluence import MislabelDetector  # noqa: E402
from skinfluence.cleaning import METHODS, default_estimator  # noqa: E402
from skinfluence.plotting import MislabelCurveDisplay  # noqa: E402

DATASETS = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
}
LABELS = {
    "loo_loss": "held-out loss (one Newton step)",
    "self_influence": "self-influence (Koh & Liang)",
    "training_loss": "training loss",
    "default (3 rounds)": "MislabelDetector() (3 rounds)",
    "random": "random",
}
STYLE = {
    "loo_loss": dict(color="C0", lw=2.2),
    "self_influence": dict(color="C1", lw=1.6),
    "training_loss": dict(color="C2", lw=1.6, ls="--"),
    "default (3 rounds)": dict(color="C3", lw=2.2),
    "random": dict(color="0.5", lw=1.2, ls=":"),
}


def flip_labels(y, noise, rng):
    """Flip ``noise`` of the labels, each to a uniformly drawn other class."""
    classes = np.unique(y)
    rows = rng.choice(len(y), int(round(noise * len(y))), replace=False)
    y_noisy = y.copy()
    for i in rows:
        y_noisy[i] = rng.choice(classes[classes != y[i]])
    return y_noisy, np.sort(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument("--noise", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="PNG to write (optional)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    X, y = DATASETS[args.dataset](return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=args.seed
    )
    rng = np.random.default_rng(args.seed)
    y_noisy, flipped = flip_labels(y_tr, args.noise, rng)
    n = len(y_tr)

    scores = {
        method: MislabelDetector(method=method, n_rounds=1).fit(X_tr, y_noisy).scores_
        for method in METHODS
    }
    scores["default (3 rounds)"] = MislabelDetector().fit(X_tr, y_noisy).scores_
    rankings = {m: np.argsort(-s, kind="stable") for m, s in scores.items()}
    rankings["random"] = rng.permutation(n)

    # Share of the flipped labels among the first k rows checked, every k.
    is_flipped = np.zeros(n, dtype=bool)
    is_flipped[flipped] = True
    found = {
        m: np.r_[0, np.cumsum(is_flipped[r])] / len(flipped)
        for m, r in rankings.items()
    }

    # Test accuracy after restoring the true labels of the checked rows.
    grid = np.linspace(0, 0.3, 13)

    def accuracy(labels):
        # The detector's model at scikit-learn's default tol: the detector
        # needs the tight optimum, a test score does not (66 fits, 10x faster).
        model = default_estimator().set_params(logisticregression__tol=1e-4)
        return model.fit(X_tr, labels).score(X_te, y_te)

    accuracies = {}
    for m, r in rankings.items():
        accuracies[m] = []
        for share in grid:
            fixed = y_noisy.copy()
            top = r[: int(round(share * n))]
            fixed[top] = y_tr[top]
            accuracies[m].append(accuracy(fixed))
    clean_acc = accuracy(y_tr)

    print(
        f"{args.dataset}: {n} training rows, {len(flipped)} labels flipped "
        f"({args.noise:.0%}), {len(y_te)} test rows"
    )
    print(f"{'method':<34} found at 5%  10%   20%   test acc. after fixing 10%")
    k10 = int(np.argmin(np.abs(grid - 0.1)))
    for m in rankings:
        at = [found[m][int(np.ceil(s * n))] for s in (0.05, 0.10, 0.20)]
        print(
            f"{LABELS[m]:<34} {at[0]:9.2f} {at[1]:5.2f} {at[2]:5.2f}"
            f"   {accuracies[m][k10]:.3f}"
        )
    print(
        f"test accuracy: {accuracies['random'][0]:.3f} with the noisy labels, "
        f"{clean_acc:.3f} with all labels right"
    )

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3))
    MislabelCurveDisplay.from_predictions(
        scores,
        is_flipped,
        labels=LABELS,
        curve_kwargs={m: STYLE[m] for m in scores},
        chance_level_kw=STYLE["random"],
        ax=left,
    )
    for m in rankings:
        right.plot(grid, accuracies[m], marker="o", ms=3.5, **STYLE[m])
    left.axvline(args.noise, color="0.8", lw=0.8, zorder=0)
    left.set(xlim=(0, 0.35), title="Finding the flipped labels")
    right.axhline(clean_acc, color="k", lw=0.8, ls="--")
    right.text(0.005, clean_acc, " all labels right", va="bottom", fontsize=8)
    right.set(
        xlim=(0, 0.3),
        xlabel="fraction of training data checked (and fixed)",
        ylabel="test accuracy",
        title="Test accuracy after fixing the checked rows",
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"{args.dataset}: {args.noise:.0%} of {n} training labels flipped; "
        "StandardScaler + LogisticRegression(C=1)",
        fontsize=11,
    )
    fig.tight_layout()
    if args.out:
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")
    print(f"({time.perf_counter() - start:.1f} s)")


# %%
# Flip the labels, rank the rows with every method, and draw the share of
# flipped labels found and the test accuracy after fixing the checked rows.

if __name__ == "__main__":
    main()
