"""Which training images made the model say this? (Koh & Liang, Figures 1 and 4)
=============================================================================

An L2 logistic regression on scikit-learn's 8x8 digits (on standardized
pixels, through a Pipeline) gets a few test images wrong. For one of them,
draw the test image beside the five training images whose upweighting lowers
its loss most (helpful) and the five that raise it most (harmful), with
``InfluentialExamplesDisplay``; the harmful ones are typically images of the
wrongly predicted class that look like the test image, or mislabeled rows.
The images are drawn as the data came (raw pixels, 0 to 16), although the
model sees standardized ones: the display shows the Pipeline's input.

Run: ``.venv/bin/python examples/plot_influential_digits.py [--out digits.png]``
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
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402
from skinfluence.plotting import InfluentialExamplesDisplay  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", default=None, help="PNG to write (optional)")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    start = time.perf_counter()

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, tol=1e-10))
    explainer = InfluenceExplainer(model).fit(X_tr, y_tr)
    predicted = explainer.predict(X_te)
    wrong = np.flatnonzero(predicted != y_te)
    print(
        f"digits: {len(y_tr)} training images, test accuracy "
        f"{np.mean(predicted == y_te):.3f} ({len(wrong)} of {len(y_te)} wrong)"
    )

    fig, axes = plt.subplots(2, 1, figsize=(9.5, 9.6), gridspec_kw={"hspace": 0.2})
    for ax, t in zip(axes, wrong[:2]):
        display = InfluentialExamplesDisplay.from_estimator(
            explainer,
            X_te[[t]],
            y_te[[t]],
            k=args.k,
            image_shape=(8, 8),
            ax=ax,
        )
        table = display.table
        print(
            f"\ntest image {t}: label {y_te[t]}, predicted {predicted[t]}; "
            "the most helpful and harmful training images:"
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        harmful = table[table.kind == "harmful"]
        share = np.mean(harmful.label == predicted[t])
        print(f"harmful images labelled {predicted[t]} (the wrong answer): {share:.0%}")
    fig.suptitle(
        "Training images that helped (top line) and hurt (bottom line) two "
        "misclassified test images\n(score: influence on the test loss, "
        "I_up,loss; raw pixels shown, the L2 logistic regression (C=0.1) sees them "
        "standardized)",
        fontsize=10,
    )
    if args.out:
        fig.savefig(args.out, dpi=120, bbox_inches="tight")
        print(f"wrote {args.out}")
    print(f"\n({time.perf_counter() - start:.1f} s)")


# %%
# Fit the model, pick two misclassified test images, and draw the training
# images that helped and hurt each of them.

if __name__ == "__main__":
    main()
