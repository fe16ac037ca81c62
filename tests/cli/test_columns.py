"""``skinfluence clean``: which columns are features, and how they are read."""

import numpy as np
import pandas as pd
import pytest

from skinfluence.cli import _clean as _cli_clean
from skinfluence.cli import _columns as _cli_columns
from skinfluence.cli import main


def _clean(*args):
    return main(["clean", *map(str, args)])


@pytest.fixture
def fitted(monkeypatch):
    """What the model is fitted on: the feature frame and its column types."""
    seen = {}
    fit_and_score = _cli_clean._fit_and_score

    def spy(X, y, numeric, categorical, args, stages):
        seen.update(X=X.copy(), numeric=list(numeric), categorical=list(categorical))
        return fit_and_score(X, y, numeric, categorical, args, stages)

    monkeypatch.setattr(_cli_clean, "_fit_and_score", spy)
    return seen


def _churn(n=300, seed=0):
    """A churn table: a text customer id seen twice, numbers, a category."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    monthly = rng.uniform(18, 120, n).round(2)
    contract = rng.choice(["month", "year", "two years"], n)
    logit = -0.05 * tenure + 0.02 * monthly + 1.5 * (contract == "month") - 1
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    ids = [f"{i:04d}-{''.join(rng.choice(list('ABCXYZ'), 5))}" for i in range(n)]
    ids[7] = ids[3]
    total = (tenure * monthly + rng.normal(0, 20, n)).clip(0).round(2)
    return pd.DataFrame(
        {
            "customerId": ids,
            "tenure": tenure,
            "MonthlyCharges": monthly,
            "TotalCharges": [f"{v:.2f}" for v in total],
            "Contract": contract,
            "Churn": churn,
        }
    )


# -- identifiers -------------------------------------------------------------------
def test_text_id_with_a_repeated_value_is_not_a_feature(tmp_path, fitted, capsys):
    src, report = tmp_path / "churn.csv", tmp_path / "issues.csv"
    frame = _churn()
    frame.to_csv(src, index=False)
    args = ["--target", "Churn", "--out", tmp_path / "o.csv", "--report", report]
    assert _clean(src, *args, "--contamination", "0.05") == 0
    captured = capsys.readouterr()
    assert (
        "note: 'customerId' (299 distinct values in 300 rows) looks like a row "
        "identifier: it is not used as a feature" in captured.err
    )
    assert "--keep-column customerId (or --no-detect-ids)" in captured.err
    assert "identifier 'customerId' not a feature" in captured.out
    assert "customerId" not in fitted["X"].columns
    assert fitted["categorical"] == ["Contract"]
    issues = pd.read_csv(report)
    assert issues.columns[0] == "customerId"
    np.testing.assert_array_equal(
        issues["customerId"], frame["customerId"].to_numpy()[issues["row"]]
    )

    args[3] = tmp_path / "p.csv"
    assert _clean(src, *args, "--keep-column", "customerId", "--force") == 0
    assert "row identifier" not in capsys.readouterr().err
    assert "customerId" in fitted["categorical"]


def test_id_detection_allows_a_few_repeats_to_text_and_id_names():
    rng = np.random.default_rng(0)
    n = 100
    codes = np.array([f"K{i:03d}" for i in range(n)], dtype=object)
    X = pd.DataFrame(
        {
            "account": np.r_[codes[:-3], codes[:3]],  # 97 distinct texts
            "city": rng.choice(codes[:90], n),  # repeated text
            "notes": np.r_[codes[:20], [None] * (n - 20)],  # mostly empty
            "visits": np.r_[np.arange(n - 2), [5, 9]],  # 98 distinct counts
            "userId": np.r_[np.arange(n - 1), 0],  # an id seen twice
            "weight": rng.normal(size=n),  # unique floats: a measurement
            "sparse_id": np.r_[np.arange(60.0), 3, [np.nan] * 39],
        }
    )
    found = _cli_columns._id_columns(X)
    assert found == {
        "userId": "99 distinct integers in 100 rows",
        "sparse_id": "60 distinct integers in 61 non-empty rows",
        "account": "97 distinct values in 100 rows",
    }
    X.loc[:6, "account"] = "K000"  # 93 distinct values: repeated enough
    assert "account" not in _cli_columns._id_columns(X)


# -- numbers with a few stray cells ------------------------------------------------
def test_numbers_with_stray_cells_are_read_as_numbers(tmp_path, fitted, capsys):
    src, out = tmp_path / "churn.csv", tmp_path / "o.csv"
    frame = _churn()
    stray = {12: " ", 40: " ", 77: "?", 150: " ", 201: "?"}
    for row, cell in stray.items():
        frame.loc[row, "TotalCharges"] = cell
    frame.to_csv(src, index=False)
    args = ["--target", "Churn", "--out", out, "--action", "relabel"]
    assert _clean(src, *args, "--contamination", "0.05") == 0
    err = capsys.readouterr().err
    assert (
        "note: 'TotalCharges' is read as numbers; 5 of its cells are not "
        "(' ' 3 times, '?' 2 times): read as missing, they are filled with the "
        "column's median like empty cells. To leave the column out: --exclude "
        "TotalCharges" in err
    )
    assert "'TotalCharges' (" not in err  # not taken for an identifier
    assert fitted["numeric"] == ["tenure", "MonthlyCharges", "TotalCharges"]
    total = fitted["X"]["TotalCharges"]
    assert total.isna().sum() == len(stray) and total.isna()[list(stray)].all()
    numbers = frame["TotalCharges"].drop(list(stray)).astype(float)
    np.testing.assert_allclose(total.drop(list(stray)), numbers)
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written["TotalCharges"].to_list() == frame["TotalCharges"].to_list()


def test_decimal_comma_numbers_with_stray_cells(tmp_path, fitted):
    """A TSV with decimal commas: the numbers are read, and a CSV output
    writes them with decimal points, the stray cells as written."""
    src, out = tmp_path / "churn.tsv", tmp_path / "o.csv"
    frame = _churn()
    frame.loc[[5, 9], "TotalCharges"] = "?"
    frame["TotalCharges"] = frame["TotalCharges"].str.replace(".", ",")
    frame.to_csv(src, sep="\t", decimal=",", index=False)
    args = ["--target", "Churn", "--out", out, "-q", "--contamination", "0.05"]
    assert _clean(src, *args, "--action", "flag") == 0
    assert fitted["numeric"] == ["tenure", "MonthlyCharges", "TotalCharges"]
    assert fitted["X"]["TotalCharges"].isna().sum() == 2
    written = pd.read_csv(out, dtype=str, keep_default_na=False)["TotalCharges"]
    assert (written[[5, 9]] == "?").all()
    expected = frame["TotalCharges"].drop([5, 9]).str.replace(",", ".")
    assert written.drop([5, 9]).to_list() == expected.to_list()


@pytest.mark.parametrize(
    "cells, decimal, expected",
    [
        (["1.5", " ", "2"] + ["3"] * 20, ".", {" ": 1}),
        (["?"] * 30 + ["1", "2"] * 10, ".", {"?": 30}),  # any share of markers
        (["N/A", "-", "."] + ["7"] * 10, ".", {"N/A": 1, "-": 1, ".": 1}),
        (["x", "inf"] + ["3"] * 40, ".", {"x": 1, "inf": 1}),  # 2 of 42: a few
        (["x", "inf"] + ["3"] * 30, ".", None),  # 2 of 32: too many
        (["1,5", "?", "1.234"] + ["3,25"] * 40, ",", {"?": 1, "1.234": 1}),
        (["red", "blue", "?"], ".", None),  # no numbers
        (["1", "2"], ".", None),  # no stray cell: kept as the file types it
    ],
)
def test_stray_cell_rules(cells, decimal, expected):
    found = _cli_columns._stray_cells(pd.Series(cells, dtype=object), decimal)
    assert (found if found is None else found.to_dict()) == expected


def test_categorical_columns_are_not_read_as_numbers():
    column = pd.Series(["1", "2", "?"] * 10, dtype="category")
    assert _cli_columns._stray_cells(column) is None


def test_decimal_comma_numbers_read_as_text_are_no_identifier(tmp_path, capsys):
    """Nearly unique decimal-comma numbers read with '.' are text, but numbers:
    the note on --decimal names them, not the one on identifiers."""
    src = tmp_path / "churn.csv"
    frame = _churn()
    frame["TotalCharges"] = frame["TotalCharges"].str.replace(".", ",")
    frame.to_csv(src, sep=";", decimal=",", index=False)
    args = ["--target", "Churn", "--out", tmp_path / "o.csv", "--decimal", "."]
    assert _clean(src, *args, "--contamination", "0.05") == 0
    err = capsys.readouterr().err
    assert "'MonthlyCharges', 'TotalCharges' hold numbers written with a decimal" in err
    assert "'customerId' (299 distinct values in 300 rows) looks like" in err
