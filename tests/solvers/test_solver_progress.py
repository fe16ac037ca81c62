"""verbose on the iterative solvers: a transient bar per solve, from the explainer
down through the backend and the solver factory; nothing at verbose=0."""

import re

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.adapters import build_objective
from skinfluence.solvers import (
    CGSolver,
    ExactSolver,
    HessianOperator,
    LissaSolver,
    make_solver,
)


def last_state(err, desc):
    return [s for s in re.split(r"[\r\n]", err) if desc in s][-1]


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:200], y[:200]


@pytest.fixture(scope="module")
def problem(data):
    X, y = data
    model = LogisticRegression(tol=1e-10, max_iter=5000).fit(X, y)
    objective, weights = build_objective(model, y, np.ones(len(y)))
    target = objective.family.encode(y)
    B = objective.gradients(X[:4], target[:4]).T
    return HessianOperator(objective, X, target, weights), B


def test_cg_bar_ends_at_the_iterations_run(problem, capsys, bar):
    operator, B = problem
    solver = CGSolver(verbose=1).fit(operator)
    solver.solve(B)
    state = last_state(capsys.readouterr().err, "CG solve (4 right-hand sides)")
    assert re.search(rf"\b{solver.n_iter_}( iterations|it)\b", state), state
    assert "4/4 converged" in state
    residual = float(re.search(r"residual (\S+)", state).group(1))
    assert residual <= 1e-10
    if bar == "plain":
        assert state.startswith("[skinfluence] CG solve")


def test_lissa_bar_stopped_at_tol_ends_at_its_steps(problem, capsys, bar):
    operator, B = problem
    solver = LissaSolver(verbose=1).fit(operator)
    solver.solve(B[:, 0])
    n = solver.n_iter_
    assert n < solver.depth  # stopped at tol, before depth
    state = last_state(capsys.readouterr().err, "LiSSA solve (1 right-hand side)")
    assert f"{n}/{n}" in state and f"/{solver.depth}" not in state
    assert "step " in state


def test_solvers_silent_by_default(problem, capsys):
    operator, B = problem
    CGSolver().fit(operator).solve(B)
    LissaSolver().fit(operator).solve(B)
    assert capsys.readouterr() == ("", "")


def test_factory_gives_verbose_to_the_iterative_solvers_it_names():
    assert make_solver("cg", 0.0, verbose=1).verbose == 1
    assert make_solver("lissa", 0.0, verbose=1).verbose == 1
    assert make_solver("cg", 0.0).verbose == 0
    assert isinstance(make_solver("exact", 0.0, verbose=1), ExactSolver)
    # A solver object keeps its own verbose.
    assert make_solver(CGSolver(verbose=0), 0.0, verbose=1).verbose == 0


@pytest.mark.parametrize("solver, name", [("cg", "CG"), ("lissa", "LiSSA")])
def test_explainer_verbose_reaches_its_solver(data, capsys, bar, solver, name):
    X, y = data
    ex = InfluenceExplainer(LogisticRegression(), solver=solver, verbose=1)
    ex.fit(X, y)
    assert ex.solver_.verbose == 1
    # The fit's own solves (stationarity, polish) go through the solver
    # unless it is approximate: LiSSA's are conjugate gradients' instead.
    fit_err = capsys.readouterr().err
    assert (f"{name} solve (" in fit_err) == (solver == "cg")
    ex.influence(X[:3], y[:3])
    assert f"{name} solve (3 right-hand sides)" in capsys.readouterr().err
    quiet = InfluenceExplainer(LogisticRegression(), solver=solver).fit(X, y)
    quiet.influence(X[:3], y[:3])
    assert capsys.readouterr() == ("", "")
