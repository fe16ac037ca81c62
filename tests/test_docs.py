"""The README's code and the docstring examples run and say what they claim."""

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Modules whose docstrings must hold examples.
MODULES = [
    "skinfluence.explainer",
    "skinfluence.loo",
    "skinfluence.svm._classes",
    "skinfluence.cleaning._detector",
    "skinfluence.refine",
]
# Every module of the package: the examples of each, where it has some, run.
ALL_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "skinfluence").rglob("*.py")
    if path.name != "__main__.py"
)


def test_readme_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "helpful" in out and "harmful" in out
    r = float(out.strip().splitlines()[-1])
    assert r > 0.9


def test_other_readme_examples_run(capsys):
    # ```py blocks (not ```python) need outside resources, e.g. a dask cluster.
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)[1:]
    assert blocks, "the README should show the cleaning tools too"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "suggested_label" in capsys.readouterr().out


@pytest.mark.parametrize("name", ALL_MODULES)
def test_docstring_examples(name):
    if name.split(".")[:2] == ["skinfluence", "torch"]:
        pytest.importorskip("torch")
    if name == "skinfluence.backends._dask":
        pytest.importorskip("dask")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name in MODULES:
        assert result.attempted > 0


def test_demo_prints_explanation(capsys):
    from skinfluence.cli import main

    assert main(["demo", "--noise", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "but the model says" in out
    found = re.search(r"finds (\d+) of the (\d+) flipped labels", out)
    # Self-influence must beat checking at random (10%) by a wide margin.
    assert int(found.group(1)) > 0.5 * int(found.group(2))
