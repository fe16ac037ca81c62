"""Group influence and DIVINE through the torch backend match the closed form."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import scale  # noqa: E402
from torch import nn  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402
from skinfluence.torch import TorchModel  # noqa: E402


def test_group_influence_first_order_on_torch(logistic_pair):
    ref, ours, X, y = logistic_pair
    labels = np.arange(len(y)) % 7
    got = ours.group_influence(labels, X[:3], y[:3])
    # torch's mean objective: the per-row changes include the stronger decay.
    loo = ours.loo_change(X[:3], y[:3])
    expected = np.stack([loo[:, labels == g].sum(1) for g in range(7)], axis=1)
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-12)
    # Without that decay term the two backends agree: sklearn's penalty is fixed.
    shift = loo - (-ref.influence(X[:3], y[:3]) / len(y))
    plain = got.to_numpy() - np.stack(
        [shift[:, labels == g].sum(1) for g in range(7)], axis=1
    )
    closed = ref.group_influence(labels, X[:3], y[:3]).to_numpy()
    np.testing.assert_allclose(plain, closed, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="method='influence'"):
        ours.group_influence(labels, X[:3], y[:3], method="newton")


def test_divine_on_torch_matches_closed_form(logistic_pair):
    ref, ours, X, y = logistic_pair
    a = ours.top_influential(X[:2], y[:2], k=4, method="divine", gamma=2.0)
    b = ref.top_influential(X[:2], y[:2], k=4, method="divine", gamma=2.0)
    assert (a["train_row"].to_numpy() == b["train_row"].to_numpy()).all()
    # Diversity changes the choice: it is not the plain top-k.
    plain = ref.top_influential(X[:2], y[:2], k=4)
    assert set(a["train_row"]) != set(plain["train_row"])


def test_explain_errors_on_torch_matches_closed_form(logistic_pair):
    from skinfluence import explain_errors

    ref, ours, X, y = logistic_pair
    groups = np.arange(len(y)) % 3
    a = explain_errors(ours, X, y, groups=groups, errors=np.arange(len(y)) < 40)
    b = explain_errors(ref, X, y, groups=groups, errors=np.arange(len(y)) < 40)
    assert list(a.rows.train_row[:10]) == list(b.rows.train_row[:10])
    assert list(a.features.feature[:5]) == list(b.features.feature[:5])


def test_training_set_attack_on_torch_matches_closed_form():
    """Same rows chosen and the same flips as the closed-form logistic model."""
    from sklearn.datasets import load_digits

    from skinfluence import training_set_attack

    X, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 8)
    X_train, y_train = X[keep][::2], y[keep][::2]
    X_target, y_target = X[keep][1::2][:2], y[keep][1::2][:2]
    n = len(y_train)
    model = LogisticRegression(tol=1e-12, max_iter=10_000)
    ref = InfluenceExplainer(model).fit(X_train, y_train)
    lin = nn.Linear(64, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(ref.estimator_.coef_))
        lin.bias.copy_(torch.as_tensor(ref.estimator_.intercept_))
    net = TorchModel(
        lin, loss="bce_with_logits", weight_decay={"weight": 1 / n}, classes=[3, 8]
    )
    ours = InfluenceExplainer(net).fit(X_train, y_train)
    kw = dict(n_rows=1, epsilon=6, feature_range=(0, 16), max_iter=10)
    a = training_set_attack(ref, X_target, y_target, selection="first_order", **kw)
    b = training_set_attack(ours, X_target, y_target, selection="first_order", **kw)
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(a.flipped, b.flipped)
    assert a.flipped.any()  # the attack does something on this data
    assert np.abs(b.X_rows - X_train[b.rows]).max() <= 6 + 1e-12


def test_validate_loo_and_display_on_torch(logistic_pair):
    """The public validate_loo (and its display) retrain torch models too."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skinfluence import LOOAgreementDisplay, validate_loo

    _, ours, _, _ = logistic_pair
    X, y = load_breast_cancer(return_X_y=True)
    X = scale(X)
    worst = 200 + np.argmax(ours.test_loss(X[200:], y[200:]))  # held out, high loss
    x, t = X[worst : worst + 1], y[worst : worst + 1]
    result = validate_loo(ours, x, t, n_remove=6, n_random=0)
    # The highest-loss point: first order ranks right but underestimates.
    assert result.pearson_r > 0.95 and result.slope > 0.3
    display = LOOAgreementDisplay.from_estimator(ours, x, t, n_remove=6, n_random=0)
    np.testing.assert_allclose(
        np.sort(display.scatter_.get_offsets()[:, 1]),
        np.sort(result.table["predicted"]),
        rtol=1e-8,
    )
    plt.close("all")
