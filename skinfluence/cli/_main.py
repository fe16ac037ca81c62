"""Command line: ``skinfluence demo`` and ``skinfluence clean``."""

import argparse
import sys
import time

import numpy as np

from .. import __version__
from . import _clean, _parser

_SHADES = " .:-=+*#%@"


def _ascii_digit(pixels):
    """An 8x8 digits image (values 0-16) as lines of ASCII shades."""
    levels = (
        np.clip(
            (np.asarray(pixels) / 16 * (len(_SHADES) - 1)).round(), 0, len(_SHADES) - 1
        )
        .astype(int)
        .reshape(8, 8)
    )
    return ["".join(_SHADES[v] * 2 for v in row) for row in levels]


def _side_by_side(blocks, titles, gap=4):
    width = 16
    lines = ["".join(t[:width].ljust(width + gap) for t in titles)]
    for r in range(8):
        lines.append("".join(b[r].ljust(width + gap) for b in blocks))
    return "\n".join(lines)


def run_demo(noise=0.05, seed=0, out=None):
    """Explain a digits classifier: one misclassified test image, then label noise."""
    # Looked up at call time: a default of sys.stdout would be the stream of
    # whenever the module was imported.
    out = sys.stdout if out is None else out
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..explainer import InfluenceExplainer

    def say(text=""):
        print(text, file=out, flush=True)

    start = time.perf_counter()
    digits = load_digits()
    X, y = digits.data, digits.target
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    rng = np.random.default_rng(seed)
    n_flip = int(noise * len(y_train))
    flipped = rng.choice(len(y_train), n_flip, replace=False)
    y_noisy = y_train.copy()
    y_noisy[flipped] = (y_train[flipped] + rng.integers(1, 10, n_flip)) % 10

    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.05, tol=1e-8, max_iter=2000)
    )
    explainer = InfluenceExplainer(model).fit(X_train, y_noisy)
    acc = explainer.score(X_test, y_test)
    say("skinfluence demo: which training images made the model say that?")
    say(
        f"digits: {len(y_train)} training images ({n_flip} labels flipped on "
        f"purpose), {len(y_test)} test images"
    )
    say(
        f"model: StandardScaler + LogisticRegression(C=0.05), {explainer.n_params_} "
        f"parameters, test accuracy {acc:.3f}\n"
    )

    wrong = np.flatnonzero(explainer.predict(X_test) != y_test)
    t = wrong[0]
    pred = explainer.predict(X_test[t : t + 1])[0]
    say(f"1. Test image #{t} is a {y_test[t]}, but the model says {pred}.")
    table = explainer.top_influential(X_test[t : t + 1], y_test[t : t + 1], k=3)
    table["loss change if removed"] = table.pop("loo_change")
    table["given label"] = table.pop("label")
    table["flipped?"] = np.isin(table["train_row"], flipped)
    table["true label"] = y_train[table["train_row"]]
    blocks = [_ascii_digit(X_test[t])] + [
        _ascii_digit(X_train[i]) for i in table["train_row"][table["kind"] == "harmful"]
    ]
    titles = [f"test: {y_test[t]}"] + [
        f"harm: label {y_noisy[i]}"
        for i in table["train_row"][table["kind"] == "harmful"]
    ]
    say(_side_by_side(blocks, titles))
    say(
        "\nMost helpful rows lower its loss; harmful rows push it towards the "
        "wrong answer:"
    )
    show = table.drop(columns=["test_row", "score"])
    say(show.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    scores = explainer.self_influence()
    order = np.argsort(-scores)
    say(
        "\n2. Training rows ranked by self-influence (how much each row bends "
        "the model to fit itself):"
    )
    top = explainer.top_self_influence(k=10).drop(columns="rank")
    top["given label"] = top.pop("label")
    top["suggested"] = top.pop("suggested_label")
    top["true label"] = y_train[top["train_row"]]
    top["flipped?"] = np.isin(top["train_row"], flipped)
    say(top.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    checked = int(0.1 * len(y_train))
    found = np.isin(order[:checked], flipped).sum()
    say(
        f"\nChecking the top 10% ({checked} rows) by self-influence finds {found} "
        f"of the {n_flip} flipped labels ({found / n_flip:.0%}); checking 10% at "
        "random finds about 10%."
    )
    say(f"\ndone in {time.perf_counter() - start:.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="skinfluence", description="Influence functions for scikit-learn."
    )
    parser.add_argument(
        "--version", action="version", version=f"skinfluence {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="explain a digits classifier")
    demo.add_argument(
        "--noise",
        type=float,
        default=0.05,
        help="fraction of training labels flipped (default 0.05)",
    )
    demo.add_argument("--seed", type=int, default=0)
    _parser.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(noise=args.noise, seed=args.seed)
    elif args.command == "clean":
        return _clean.run_clean(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
