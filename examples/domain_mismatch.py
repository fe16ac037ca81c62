"""Debugging a domain mismatch (Koh & Liang 2017, section 5.3), on generated data.
===============================================================================

The paper's hospital data: among 20K patients, 24 children; 20 healthy
children were dropped from training, leaving 3 re-admitted and 1 healthy, so
the model learns "children are re-admitted" and gets healthy test children
wrong. Influence on the wrong predictions names the remaining children, and
``I_pert,loss`` on them names the feature that marks a child.

Here the patients are generated (age bracket, clinical scores, flags), the
same healthy children are dropped, and ``skinfluence.explain_errors`` reports
the rows, subgroups and features that drive the errors.

Run: ``.venv/bin/python examples/domain_mismatch.py``
"""

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from skinfluence import InfluenceExplainer, explain_errors


def make_patients(n, rng):
    """Patients with an age bracket, five clinical scores and two flags."""
    age = rng.choice(["child", "adult", "senior"], size=n, p=[0.01, 0.64, 0.35])
    X = pd.DataFrame(
        {
            "age_child": (age == "child").astype(float),
            "age_adult": (age == "adult").astype(float),
            "age_senior": (age == "senior").astype(float),
            **{f"score_{j}": rng.normal(size=n) for j in range(5)},
            "insulin": rng.binomial(1, 0.3, n).astype(float),
            "emergency_admission": rng.binomial(1, 0.2, n).astype(float),
        }
    )
    logit = 3.0 * (
        -0.8
        + 1.0 * X.age_senior
        - 1.0 * X.age_child
        + 1.0 * X.score_0
        - 0.8 * X.score_1
        + 0.6 * X.score_2
        + 0.8 * X.insulin
        + 0.5 * X.emergency_admission
    )
    y = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    return X, pd.Series(y, name="readmitted"), pd.Series(age, name="age")


def main():
    rng = np.random.default_rng(0)
    X, y, age = make_patients(20000, rng)
    train = np.arange(len(y)) < 10000
    # The mismatch: drop most healthy children from the training half only.
    healthy_children = np.flatnonzero(train & (age == "child") & (y == 0))
    drop = healthy_children[: max(len(healthy_children) - 1, 0)]
    keep = train.copy()
    keep[drop] = False
    X_train, y_train, age_train = X[keep], y[keep], age[keep]
    X_test, y_test, age_test = X[~train], y[~train], age[~train]
    print(
        f"training children: {int((age_train == 'child').sum())} "
        f"({int(((age_train == 'child') & (y_train == 1)).sum())} re-admitted); "
        f"test children: {int((age_test == 'child').sum())} "
        f"({int(((age_test == 'child') & (y_test == 1)).sum())} re-admitted)"
    )
    model = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    wrong = explainer.predict(X_test) != y_test
    print(
        f"test errors: {int(wrong.sum())} of {len(y_test)}; error rate children "
        f"{wrong[age_test == 'child'].mean():.2f}, others "
        f"{wrong[age_test != 'child'].mean():.2f}"
    )
    result = explain_errors(explainer, X_test, y_test, groups=age_train)
    print("\nMost influential training rows for the test errors:")
    print(result.rows.head(6).to_string(index=False))
    print("\nSubgroups (largest mean |influence| per row first):")
    print(result.groups.to_string(index=False))
    print(
        "\nRemoving each group, refitted: change of the errors' summed log loss "
        f"(predicted: removal_change, {result.groups.attrs['removal_change_method']})"
    )
    X_err, y_err = X_test[wrong], y_test[wrong]
    base = log_loss(y_err, explainer.predict_proba(X_err), normalize=False)
    for group, predicted in zip(result.groups.group, result.groups.removal_change):
        kept = age_train != group
        refit = clone(model).fit(X_train[kept], y_train[kept])
        actual = log_loss(y_err, refit.predict_proba(X_err), normalize=False) - base
        print(f"  {group:>6}: refit {actual:+8.1f}   predicted {predicted:+8.1f}")
    print("\nFeatures (I_pert,loss summed over the 10 most influential rows):")
    print(result.features.head(5).to_string(index=False))

    is_child = result.rows.group == "child"
    ratio = result.rows.influence[is_child].abs().mean() / (
        result.rows.influence[~is_child].abs().mean()
    )
    n_child = int(is_child.sum())
    in_top = int(is_child[:n_child].sum())
    print("\npaper (hospital data)               | ours (generated)")
    print(
        "children: 30-40x the influence      | children: "
        f"{ratio:.0f}x the others' mean |influence|"
    )
    print(
        "top rows: the 4 remaining children  | top "
        f"{n_child} rows: {in_top} of the {n_child} training children"
    )
    print(
        "top subgroup: children              | top subgroup: "
        f"{result.groups.group.iloc[0]}"
    )
    print(
        "top feature: the child indicator    | top feature: "
        f"{result.features.feature.iloc[0]}"
    )

    # The paper's view: one healthy test child the model gets wrong.
    child = np.flatnonzero(wrong.to_numpy() & (age_test == "child").to_numpy())[0]
    mask = np.zeros(len(y_test), dtype=bool)
    mask[child] = True
    one = explain_errors(explainer, X_test, y_test, groups=age_train, errors=mask)
    top = one.rows.head(n_child)
    mean_abs = one.groups.mean_abs_influence
    print(
        f"\nOne wrong test child (row {X_test.index[child]}): "
        f"{int((top.group == 'child').sum())} of its {n_child} most influential "
        f"training rows are children ({n_child} in training); children's mean "
        f"|influence| is {mean_abs.iloc[0] / mean_abs.iloc[1]:.0f}x "
        f"the next group's; top subgroup {one.groups.group.iloc[0]}, top "
        f"feature {one.features.feature.iloc[0]}"
    )


# %%
# Generate the patients, drop the healthy children from training, fit, and
# let :func:`skinfluence.explain_errors` report rows, groups and features.

if __name__ == "__main__":
    main()
