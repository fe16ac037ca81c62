"""Diverse influential training rows (DIVINE, Bhatt et al. 2021) on digits.
========================================================================

The most helpful training images for a test image are often near-copies of
one another. DIVINE picks k rows that maximise total influence plus gamma
times a diversity term (here facility location over an rbf similarity), by
lazy greedy submodular maximisation; gamma=0 is the plain top k. The paper
shows the gain qualitatively; here we print, per gamma, the share of the
plain top-k influence kept and how spread out the chosen images are.

Run: ``.venv/bin/python examples/diverse_points.py``
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer


def mean_distance(rows):
    return np.mean(
        np.linalg.norm(rows[:, None] - rows[None], axis=2)[
            np.triu_indices(len(rows), 1)
        ]
    )


def main():
    X, y = load_digits(return_X_y=True)
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.1, tol=1e-8, max_iter=5000)
    )
    explainer = InfluenceExplainer(model).fit(X[:1200], y[:1200])
    X_test, y_test = X[1200:1220], y[1200:1220]
    print("helpful rows for 20 test images, k=5 (averages over the test images)")
    print(
        f"{'gamma':>6} {'diversity':>18} {'influence kept':>15} "
        f"{'mean distance':>14} {'distinct labels':>16}"
    )
    plain = explainer.top_influential(X_test, y_test, k=5).query("kind == 'helpful'")
    plain_total = plain.groupby("test_row").influence.sum()
    for diversity in ("facility_location", "sum_redundancy", "mmd"):
        for gamma in (0.0, 0.5, 2.0):
            table = explainer.top_influential(
                X_test, y_test, k=5, method="divine", gamma=gamma, diversity=diversity
            ).query("kind == 'helpful'")
            kept = (table.groupby("test_row").influence.sum() / plain_total).mean()
            spread = np.mean(
                [
                    mean_distance(X[:1200][part.train_row.to_numpy()])
                    for _, part in table.groupby("test_row")
                ]
            )
            labels = table.groupby("test_row").label.nunique().mean()
            print(
                f"{gamma:>6} {diversity:>18} {kept:>15.0%} "
                f"{spread:>14.1f} {labels:>16.2f}"
            )


# %%
# Select 5 helpful training images per test image for several values of
# ``gamma`` and print the influence kept and the spread of the chosen images.

if __name__ == "__main__":
    main()
