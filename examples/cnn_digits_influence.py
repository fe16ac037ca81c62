"""Why did the CNN misread this digit? Influence on a small convolutional net.
===========================================================================

A softplus CNN (two conv-pool layers of 4 and 3 channels, 281 parameters) is
fitted to 200 of scikit-learn's 8x8 digits in the recipe that influence
needs: Adam without weight decay to fit the data, then full-batch L-BFGS in
float64 on the objective with its coupled decay (``skinfluence.torch.refine``)
until the gradient is tiny. (Adam with the decay from the start collapses this
net to the all-zero stationary point, where every image gets the class
priors.) ``InfluenceExplainer`` wraps the trained module through
``TorchModel``; with 281 parameters it forms the exact Hessian.

For the misclassified test digit with the largest loss, it prints the five
training images whose upweighting lowers that loss most (helpful) and the five
that raise it most (harmful); with ``--out`` it draws them with
``InfluentialExamplesDisplay``.

Run: ``.venv/bin/python examples/cnn_digits_influence.py [--out cnn_digits.png]``
"""

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from skinfluence import InfluenceExplainer
from skinfluence.torch import TorchModel, refine


def make_cnn():
    """Rows of 64 pixels in, 10 logits out; smooth activations throughout."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 4, 3, padding=1),
        nn.Softplus(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 3, 3, padding=1),
        nn.Softplus(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 10),
    ).double()


def fit(X, y, weight_decay, seed=0):
    torch.manual_seed(seed)
    module = make_cnn()
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)  # no decay yet
    for _ in range(60):
        for idx in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(module(Xt[idx]), yt[idx]).backward()
            opt.step()
    model = TorchModel(module, weight_decay=weight_decay).fit(X, y)
    gradient_norm = refine(model, X, y, max_iter=1000)
    return model, gradient_norm


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", default=None, help="PNG to write (optional)")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(1)  # tiny convolutions: threads cost more than they give

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[: args.n_train], order[args.n_train :]
    X_tr, y_tr, X_te, y_te = X[train], y[train], X[test], y[test]

    model, gradient_norm = fit(X_tr, y_tr, weight_decay=3e-2)
    explainer = InfluenceExplainer(model).fit(X_tr, y_tr)
    predicted = explainer.predict(X_te)
    print(
        f"CNN with {explainer.n_params_} parameters on {len(y_tr)} digits: "
        f"train accuracy {model.score(X_tr, y_tr):.3f}, test accuracy "
        f"{np.mean(predicted == y_te):.3f}, |grad L| = {gradient_norm:.1e}"
    )

    losses = explainer.test_loss(X_te, y_te)
    t = int(np.argmax(np.where(predicted != y_te, losses, -np.inf)))
    table = explainer.top_influential(X_te[[t]], y_te[[t]], k=args.k)
    print(
        f"\ntest digit {test[t]}: label {y_te[t]}, predicted {predicted[t]} "
        f"(loss {losses[t]:.2f}); training images ranked by influence on its loss:"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    harmful = table[table.kind == "harmful"]
    print(
        f"harmful images labelled {predicted[t]} (the wrong answer): "
        f"{np.mean(harmful.label == predicted[t]):.0%}"
    )

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        from skinfluence.plotting import InfluentialExamplesDisplay

        display = InfluentialExamplesDisplay.from_estimator(
            explainer, X_te[[t]], y_te[[t]], k=args.k, image_shape=(8, 8)
        )
        display.figure_.suptitle(
            "Training digits that helped (top) and hurt (bottom) the CNN's "
            "answer\n(score: influence on the test loss, I_up,loss)",
            fontsize=10,
        )
        display.figure_.savefig(args.out, dpi=120, bbox_inches="tight")
        print(f"\nwrote {args.out}")
    print(f"({time.perf_counter() - start:.1f} s)")


# %%
# Fit the network, explain its worst test digit, and draw the most helpful
# and harmful training digits when ``--out`` is given.

if __name__ == "__main__":
    main()
