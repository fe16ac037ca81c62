"""skinfluence.utils._progress: bars that end where the work ended, silence at 0."""

import contextlib
import re

import numpy as np

from skinfluence.utils import _progress
from skinfluence.utils._progress import progress, progress_bar, stage


def last_state(err, desc):
    """The last state of the bar named ``desc`` in captured standard error."""
    return [s for s in re.split(r"[\r\n]", err) if desc in s][-1]


def test_plain_lines_every_tenth(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    items = list(progress(range(20), desc="work", verbose=1))
    assert items == list(range(20))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("[skinfluence] work: 20/20")
    np.testing.assert_array_equal(
        [int(line.split(": ")[1].split("/")[0]) for line in lines],
        np.arange(2, 21, 2),
    )


def test_bar_stopped_early_ends_at_the_count_reached(capsys, bar):
    with progress_bar("rounds", total=5, verbose=1) as b:
        b.update()
        b.update()
        b.note("stopped early")
    state = last_state(capsys.readouterr().err, "rounds")
    assert "2/2" in state and "/5" not in state
    assert "stopped early" in state


def test_loop_left_early_ends_at_the_items_done(capsys, bar):
    with contextlib.closing(progress(range(5), desc="loop", verbose=1)) as items:
        for i in items:
            if i == 2:
                break
    state = last_state(capsys.readouterr().err, "loop")
    assert "2/2" in state and "/5" not in state


def test_plain_inner_bar_prints_one_closing_line(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    with progress_bar("solve", verbose=1, leave=False, unit="iterations") as b:
        for _ in range(35):
            b.update()
        b.note("residual 1e-11")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"\[skinfluence\] solve: 35 iterations \(\d+\.\d s\), residual 1e-11",
        lines[0],
    )


def test_plain_bar_closed_twice_prints_its_last_line_once(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    b = progress_bar("twice", total=4, verbose=1)
    b.update(3)
    b.close()
    b.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "[skinfluence] twice: 3/4",
        "[skinfluence] twice: 3/3",
    ]


def test_verbose_zero_prints_nothing(capsys, bar):
    items = range(3)
    assert progress(items, desc="loop", verbose=0) is items
    with progress_bar("quiet", total=3, verbose=0) as b:
        b.update()
        b.note("nothing")
    stage("a stage", verbose=0)
    assert capsys.readouterr() == ("", "")


def test_explainer_fit_names_its_stages(capsys):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from skinfluence import InfluenceExplainer

    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000)  # default tol: polished after
    ex = InfluenceExplainer(model, solver="cg", verbose=1).fit(X, y)
    lines = [
        line
        for line in capsys.readouterr().err.replace("\r", "\n").splitlines()
        # Without tqdm the CG solves print plain lines of their own.
        if line.startswith("[skinfluence]") and "CG solve" not in line
    ]
    assert lines[0] == "[skinfluence] fitting LogisticRegression"
    assert lines[1].endswith("in-memory backend): building its solver")
    assert lines[2].startswith("[skinfluence] CGSolver ready; finishing the fit")
    assert lines[3].startswith(
        f"[skinfluence] finished the fit with {ex.n_polish_steps_} Newton step(s)"
    )
