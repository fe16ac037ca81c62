"""``skinfluence clean``: a CSV/Parquet table in, a cleaned table and a report out."""

import gzip
import hashlib
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from skinfluence.cli import _columns as _cli_columns
from skinfluence.cli import _errors as _cli_errors
from skinfluence.cli import _files as _cli_files
from skinfluence.cli import _model as _cli_model
from skinfluence.cli import main

NAMES = np.array(["barolo", "grignolino", "barbera"], dtype=object)


@pytest.fixture(scope="module")
def wine_table():
    """Wine as a table: an id, a categorical column, a NaN, 10% flipped labels."""
    frame = load_wine(as_frame=True).frame
    rng = np.random.default_rng(0)
    true = NAMES[frame.pop("target").to_numpy()]
    frame.insert(0, "id", np.arange(1000, 1000 + len(frame)))
    frame["cellar"] = rng.choice(np.array(["north", "south", None]), len(frame))
    frame.loc[5, "alcohol"] = np.nan
    flipped = np.sort(rng.choice(len(frame), 18, replace=False))
    given = true.copy()
    for i in flipped:
        given[i] = rng.choice(NAMES[NAMES != true[i]])
    frame["cultivar"] = given
    return frame, true, flipped


@pytest.fixture
def wine_csv(tmp_path, wine_table):
    frame, _, _ = wine_table
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _clean(*args):
    return main(["clean", *map(str, args)])


def test_drop_finds_flipped_labels(wine_csv, wine_table, capsys):
    frame, _, flipped = wine_table
    before = _digest(wine_csv)
    out, report = wine_csv.with_name("cleaned.csv"), wine_csv.with_name("issues.csv")
    args = ["--target", "cultivar", "--exclude", "id", "--out", out, "--report"]
    assert _clean(wine_csv, *args, report) == 0
    captured = capsys.readouterr()
    assert _digest(wine_csv) == before  # the input is untouched

    issues = pd.read_csv(report)
    assert list(issues.columns) == [
        "row",
        "given_label",
        "suggested_label",
        "score",
        "rank",
        "mislabel_probability",
        "reason",
    ]
    assert issues["score"].is_monotonic_decreasing
    recall = np.isin(flipped, issues["row"]).mean()
    assert recall >= 0.6
    assert np.isin(issues["row"], flipped).mean() >= 0.5
    np.testing.assert_array_equal(
        issues["given_label"], frame["cultivar"].to_numpy()[issues["row"]]
    )

    cleaned = pd.read_csv(out)
    assert list(cleaned.columns) == list(frame.columns)  # id kept, not a feature
    kept = np.setdiff1d(np.arange(len(frame)), issues["row"])
    assert len(cleaned) == len(kept)
    np.testing.assert_array_equal(cleaned["id"], frame["id"].to_numpy()[kept])
    pd.testing.assert_frame_equal(
        cleaned, pd.read_csv(wine_csv).iloc[kept].reset_index(drop=True)
    )

    for stage in ("reading", "fitting", "scoring 178 rows", "writing"):
        assert stage in captured.err
    for line in ("rows read:", "classes:", "rows flagged:", "action:", "wrote:"):
        assert line in captured.out
    assert f"{len(issues)} rows removed" in captured.out
    assert str(out) in captured.out and str(report) in captured.out


def test_relabel(wine_csv, wine_table, capsys):
    frame, true, _ = wine_table
    out, report = wine_csv.with_name("relabeled.csv"), wine_csv.with_name("r.csv")
    args = ["--target", "cultivar", "--exclude", "id", "--action", "relabel"]
    assert _clean(wine_csv, *args, "--out", out, "--report", report) == 0
    cleaned, issues = pd.read_csv(out), pd.read_csv(report)
    original = pd.read_csv(wine_csv)
    assert cleaned.shape == original.shape
    changed = np.flatnonzero(cleaned["cultivar"] != original["cultivar"])
    assert set(changed) <= set(issues["row"])
    expected = issues.set_index("row").loc[changed, "suggested_label"]
    np.testing.assert_array_equal(cleaned["cultivar"].to_numpy()[changed], expected)
    pd.testing.assert_frame_equal(
        cleaned.drop(columns="cultivar"), original.drop(columns="cultivar")
    )
    # More labels right than before.
    assert (cleaned["cultivar"] == true).sum() > (original["cultivar"] == true).sum()
    assert f"{len(changed)} labels replaced" in capsys.readouterr().out
    # The report says why each row is flagged, and which keep their label.
    keeps = issues["suggested_label"] == issues["given_label"]
    assert issues["reason"].str.contains("predicts another class").eq(~keeps).all()
    assert issues["mislabel_probability"].between(0, 1).all()


def test_flag_adds_columns(wine_csv, tmp_path):
    out = tmp_path / "flagged.tsv"
    assert (
        _clean(wine_csv, "--target", "cultivar", "--action", "flag", "--out", out) == 0
    )
    cleaned = pd.read_csv(out, sep="\t")
    original = pd.read_csv(wine_csv)
    assert list(cleaned.columns) == [
        *original.columns,
        "label_issue",
        "suggested_label",
    ]
    assert cleaned["label_issue"].dtype == bool
    assert 0 < cleaned["label_issue"].sum() < 0.3 * len(cleaned)
    assert set(cleaned["suggested_label"]) <= set(NAMES)
    pd.testing.assert_frame_equal(cleaned[original.columns], original)


def test_options_and_integer_labels(tmp_path, wine_table):
    """Integer labels stay integers; SVM, methods and contamination run."""
    frame, true, flipped = wine_table
    codes = {name: i for i, name in enumerate(NAMES)}
    table = frame.assign(cultivar=frame["cultivar"].map(codes))
    src = tmp_path / "codes.csv.gz"
    table.to_csv(src, index=False)
    out = tmp_path / "out.csv"
    args = ["--target", "cultivar", "--model", "svm", "--method", "training_loss"]
    assert _clean(src, *args, "--contamination", "0.1", "--action", "relabel",
                  "--out", out, "-q") == 0  # fmt: skip
    cleaned = pd.read_csv(out)
    assert cleaned["cultivar"].dtype == np.int64
    changed = np.flatnonzero(cleaned["cultivar"] != table["cultivar"])
    assert 0 < len(changed) <= round(0.1 * len(table))
    assert np.isin(changed, flipped).mean() >= 0.6


def test_rounds_option(wine_csv, wine_table):
    """--rounds 1 ranks by one fit's --method scores; the default (2) rescores
    by a model refitted without the first round's flags, as the detector."""
    _, _, flipped = wine_table
    found = {}
    for rounds in ("1", "2"):
        report = wine_csv.with_name(f"issues{rounds}.csv")
        args = ["--target", "cultivar", "--exclude", "id", "--rounds", rounds]
        args += ["--out", wine_csv.with_name(f"c{rounds}.csv"), "--report", report]
        assert _clean(wine_csv, *args, "--method", "training_loss", "-q") == 0
        issues = pd.read_csv(report)
        found[rounds] = issues.sort_values("rank")["row"].to_numpy()
    top = len(flipped)
    # Row positions: the table has a default RangeIndex.
    assert not np.array_equal(found["1"][:top], found["2"][:top])
    assert np.isin(found["2"][:top], flipped).mean() >= 0.8


def test_parquet_round_trip(tmp_path, wine_table):
    pytest.importorskip("pyarrow")
    frame, _, flipped = wine_table
    table = frame.assign(cellar=frame["cellar"].astype("category"))
    src = tmp_path / "wine.parquet"
    table.to_parquet(src, index=False)
    out, report = tmp_path / "clean.parquet", tmp_path / "issues.parquet"
    args = ["--target", "cultivar", "--exclude", "id", "--out", out, "--report"]
    assert _clean(src, *args, report) == 0
    cleaned, issues = pd.read_parquet(out), pd.read_parquet(report)
    assert isinstance(cleaned["cellar"].dtype, pd.CategoricalDtype)
    assert len(cleaned) == len(table) - len(issues)
    assert np.isin(flipped, issues["row"]).mean() >= 0.6


def test_subprocess(wine_csv, wine_table):
    _, _, flipped = wine_table
    out, report = wine_csv.with_name("sub.csv"), wine_csv.with_name("sub_issues.csv")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    args = ["--target", "cultivar", "--exclude", "id", "--out", out, "--report"]
    result = subprocess.run(
        [sys.executable, "-m", "skinfluence", "clean", wine_csv, *args, report],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "rows flagged:" in result.stdout
    assert np.isin(flipped, pd.read_csv(report)["row"]).mean() >= 0.6

    bad = subprocess.run(
        [sys.executable, "-m", "skinfluence", "clean", wine_csv, "--target", "nope",
         "--out", wine_csv.with_name("never.csv")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "error: column 'nope' (--target) not in the input" in bad.stderr
    assert not wine_csv.with_name("never.csv").exists()


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["clean", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("--target", "--out", "--report", "--model", "--method",
                 "--contamination", "--action", "parquet", "examples"):  # fmt: skip
        assert word in text


# -- bad input: exit status 2, a message, nothing written ---------------------------
def _variant(frame, case):
    frame = frame.copy()
    if case == "nan-target":
        frame.loc[[3, 7], "cultivar"] = np.nan
    elif case == "one-nan-target":
        frame.loc[[5], "cultivar"] = np.nan
    elif case == "single-class":
        frame["cultivar"] = "barolo"
    elif case == "class-with-one-row":
        frame.loc[10, "cultivar"] = "nebbiolo"
    elif case == "continuous-target":
        frame["cultivar"] = np.linspace(0, 1, len(frame))
    elif case == "flag-column-exists":
        frame["label_issue"] = False
    return frame


BAD = {
    # case: (extra arguments, expected message)
    "missing-input": (["--target", "cultivar"], "not found"),
    "unknown-target": (
        ["--target", "colour"],
        "column 'colour' (--target) not in the input",
    ),
    "unknown-exclude": (
        ["--target", "cultivar", "--exclude", "id,vintage"],
        "column 'vintage' (--exclude) not in the input; available columns: 'id'",
    ),
    "nan-target": (["--target", "cultivar"], "has 2 missing values (rows 3, 7, 0-"),
    "one-nan-target": (
        ["--target", "cultivar"],
        "has 1 missing value (row 5, 0-based positions in the input as in the "
        "report); drop or fill it first",
    ),
    "single-class": (["--target", "cultivar"], "single class"),
    "class-with-one-row": (["--target", "cultivar"], "'nebbiolo' has a single row"),
    "continuous-target": (["--target", "cultivar"], "does not hold class labels"),
    "out-is-input": (["--target", "cultivar"], "never overwrites its input"),
    "report-is-input": (["--target", "cultivar"], "never overwrites its input"),
    "out-is-report": (["--target", "cultivar"], "are the same file"),
    "unknown-out-format": (["--target", "cultivar"], "unknown format '.xlsx'"),
    "unknown-in-format": (["--target", "cultivar"], "unknown format '.json'"),
    "missing-out-dir": (["--target", "cultivar"], "does not exist"),
    "empty-input": (["--target", "cultivar"], "is empty"),
    "header-only": (["--target", "cultivar"], "has a header but no data rows"),
    "keep-and-exclude": (
        ["--target", "cultivar", "--exclude", "id", "--keep-column", "id"],
        "--keep-column 'id' is also --exclude'd; drop one of the two",
    ),
    "keep-target": (
        ["--target", "cultivar", "--keep-column", "cultivar"],
        "--keep-column 'cultivar' is the target column",
    ),
    "unknown-keep-column": (
        ["--target", "cultivar", "--keep-column", "serial"],
        "column 'serial' (--keep-column) not in the input",
    ),
    "flag-column-exists": (
        ["--target", "cultivar", "--action", "flag"],
        "already has ['label_issue']",
    ),
    "only-target": (
        [
            "--target",
            "cultivar",
            "--exclude",
            "id,alcohol,malic_acid,ash,"
            "alcalinity_of_ash,magnesium,total_phenols,flavanoids,nonflavanoid_phenols,"
            "proanthocyanins,color_intensity,hue,od280/od315_of_diluted_wines,proline,"
            "cellar",
        ],
        "no feature columns",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input(case, tmp_path, wine_table, capsys):
    frame, _, _ = wine_table
    src = tmp_path / ("wine.json" if case == "unknown-in-format" else "wine.csv")
    if case == "empty-input":
        src.write_text("")
    elif case == "header-only":
        frame.head(0).to_csv(src, index=False)
    elif case != "missing-input":
        _variant(frame, case).to_csv(src, index=False)
    out, report = tmp_path / "out.csv", tmp_path / "report.csv"
    if case == "out-is-input":
        out = tmp_path / "sub" / ".." / "wine.csv"
        (tmp_path / "sub").mkdir()
    elif case == "report-is-input":
        report = src
    elif case == "out-is-report":
        report = out
    elif case == "unknown-out-format":
        out = tmp_path / "out.xlsx"
    elif case == "missing-out-dir":
        out = tmp_path / "nowhere" / "out.csv"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    extra, message = BAD[case]
    status = _clean(src, *extra, "--out", out, "--report", report)
    assert status == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err, err
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing changed, no temp files


def test_bad_option_value(wine_csv, tmp_path, capsys):
    out = tmp_path / "out.csv"
    with pytest.raises(SystemExit) as exc:
        _clean(wine_csv, "--target", "cultivar", "--contamination", "0.7", "--out", out)
    assert exc.value.code == 2
    assert "must be in (0, 0.5]" in capsys.readouterr().err
    assert not out.exists()
    # A threshold and a share are two answers to one question.
    with pytest.raises(SystemExit) as exc:
        _clean(
            wine_csv, "--target", "cultivar", "--threshold", "5",
            "--contamination", "0.1", "--out", out,
        )  # fmt: skip
    assert exc.value.code == 2
    assert "--contamination: not allowed with argument --threshold" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_parquet_without_pyarrow(wine_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_cli_files, "_has_pyarrow", lambda: False)
    out = tmp_path / "out.parquet"
    assert _clean(wine_csv, "--target", "cultivar", "--out", out) == 2
    assert "pip install pyarrow" in capsys.readouterr().err
    assert not out.exists()


def test_failed_write_leaves_nothing(wine_csv, tmp_path, monkeypatch, capsys):
    """The report fails to write: the cleaned table is not left behind either."""
    real = pd.DataFrame.to_csv

    def flaky(self, path, *args, **kwargs):
        if "report" in str(path):
            raise OSError("disk full")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", flaky)
    out, report = tmp_path / "out.csv", tmp_path / "report.csv"
    args = ["--target", "cultivar", "--out", out, "--report", report]
    assert _clean(wine_csv, *args) == 2
    assert "disk full" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wine.csv"]


# -- identifier columns --------------------------------------------------------------
def test_id_column_detected_and_reported(wine_csv, wine_table, capsys):
    frame, _, flipped = wine_table
    out, report = wine_csv.with_name("out.csv"), wine_csv.with_name("issues.csv")
    assert (
        _clean(wine_csv, "--target", "cultivar", "--out", out, "--report", report) == 0
    )
    captured = capsys.readouterr()
    assert (
        "note: 'id' (178 unique integers) looks like a row identifier" in captured.err
    )
    assert "--keep-column id (or --no-detect-ids)" in captured.err
    assert "13 numeric and 1 categorical columns" in captured.err  # id not among them
    assert "identifier 'id' not a feature" in captured.out

    issues = pd.read_csv(report)
    assert list(issues.columns) == [
        "id",
        "row",
        "given_label",
        "suggested_label",
        "score",
        "rank",
        "mislabel_probability",
        "reason",
    ]
    np.testing.assert_array_equal(issues["id"], frame["id"].to_numpy()[issues["row"]])
    assert np.isin(flipped, issues["row"]).mean() >= 0.6
    first = issues.iloc[0]
    assert f"row {first['row']} (id {first['id']}, " in captured.out
    assert list(pd.read_csv(out).columns) == list(frame.columns)  # still in OUT


@pytest.mark.parametrize("option", [["--keep-column", "id"], ["--no-detect-ids"]])
def test_id_column_kept_on_request(option, wine_csv, capsys):
    report = wine_csv.with_name("issues.csv")
    args = ["--target", "cultivar", "--out", wine_csv.with_name("out.csv")]
    assert _clean(wine_csv, *args, "--report", report, *option) == 0
    err = capsys.readouterr().err
    assert "row identifier" not in err
    assert "14 numeric and 1 categorical columns" in err
    assert pd.read_csv(report).columns[0] == "row"


def test_id_detection_rules():
    rng = np.random.default_rng(0)
    n = 60
    X = pd.DataFrame(
        {
            "code": [f"S{i:03d}" for i in rng.permutation(n)],  # unique text
            "serial": rng.permutation(n) * 7,  # unique integers, any name
            "user_id": np.r_[np.arange(n - 1.0), np.nan],  # ids read as floats
            "customerId": rng.permutation(n),
            "ID": np.arange(n),
            "weight": rng.normal(size=n),  # unique floats: a measurement
            "count": rng.integers(0, 5, n),  # repeated integers
            "colour": rng.choice(["red", "blue"], n),
            "flag": rng.random(n) < 0.5,
            "score_id": rng.integers(0, 5, n),  # id-named but repeated
            "ratio_id": rng.random(n),  # id-named but fractional
            "paid": rng.permutation(n) + 0.5,  # "id" inside a word, floats
        }
    )
    found = _cli_columns._id_columns(X)
    # Id-named columns first, then the others in table order.
    assert list(found) == ["user_id", "customerId", "ID", "code", "serial"]
    assert found["user_id"] == "59 unique integers"
    assert found["code"] == "60 unique values"
    X.loc[3, "serial"] = X.loc[4, "serial"]
    assert "serial" not in _cli_columns._id_columns(X)


def test_id_column_named_like_a_report_column(tmp_path, wine_table, capsys):
    frame, _, _ = wine_table
    src, report = tmp_path / "wine.csv", tmp_path / "issues.csv"
    frame.rename(columns={"id": "row"}).to_csv(src, index=False)
    args = ["--target", "cultivar", "--out", tmp_path / "o.csv", "--report", report]
    assert _clean(src, *args) == 0
    issues = pd.read_csv(report)
    assert list(issues.columns[:2]) == ["row (input)", "row"]
    np.testing.assert_array_equal(issues["row (input)"], issues["row"] + 1000)
    first = issues.iloc[0]
    assert f"row {first['row']} (row {first['row'] + 1000}, " in capsys.readouterr().out


def test_only_id_columns_left(tmp_path, capsys):
    src = tmp_path / "ids.csv"
    pd.DataFrame({"row_id": range(20), "y": [0, 1] * 10}).to_csv(src, index=False)
    assert _clean(src, "--target", "y", "--out", tmp_path / "o.csv") == 2
    err = capsys.readouterr().err
    assert "no feature columns left besides the target ('row_id' look" in err
    assert "--keep-column" in err


# -- continuous targets --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["integral-floats", "fractional", "integers"])
def test_continuous_target_refused(kind, tmp_path, wine_table, capsys):
    """A regression target (e.g. diabetes progression, 171.0, 75.0, ...) is
    refused up front instead of as 'N classes have a single row'."""
    frame, _, _ = wine_table
    y = frame["proline"]  # floats with integer values, 121 distinct in 178 rows
    if kind == "fractional":
        y = frame["alcohol"].fillna(13.0)
    elif kind == "integers":
        y = y.astype(int)
    src, out = tmp_path / "reg.csv", tmp_path / "out.csv"
    frame.assign(cultivar=y).to_csv(src, index=False)
    assert _clean(src, "--target", "cultivar", "--out", out) == 2
    err = capsys.readouterr().err
    assert (
        "error: target column 'cultivar' does not hold class labels: it looks " in err
    )
    assert f"continuous ({y.nunique()} distinct numbers in 178 rows, e.g. " in err
    assert "skinfluence clean is for class labels" in err
    assert "single row" not in err
    assert not out.exists()


def test_many_classes_with_a_rare_one_are_not_continuous(tmp_path, capsys):
    """30 integer classes, one seen once: the single-row error, not 'continuous'."""
    y = np.r_[np.repeat(np.arange(29), 7), 99]
    src = tmp_path / "many.csv"
    pd.DataFrame({"x": np.arange(len(y)) % 5, "y": y}).to_csv(src, index=False)
    assert _clean(src, "--target", "y", "--out", tmp_path / "o.csv") == 2
    err = capsys.readouterr().err
    assert "class 99 has a single row" in err and "continuous" not in err


def test_few_non_integer_codes_are_named_not_called_continuous(tmp_path, capsys):
    y = np.array([1.5, 2.0] * 30)
    src = tmp_path / "codes.csv"
    pd.DataFrame({"x": np.arange(60) % 7, "y": y}).to_csv(src, index=False)
    assert _clean(src, "--target", "y", "--out", tmp_path / "o.csv") == 2
    err = capsys.readouterr().err
    assert "holds 2 distinct non-integer numbers (1.5, 2.0)" in err
    assert "write them as integers or text" in err and "looks continuous" not in err


def test_float_class_codes_accepted(tmp_path, wine_table):
    """Few distinct float values (0.0, 1.0, 2.0) are class labels."""
    frame, _, _ = wine_table
    codes = frame["cultivar"].map({n: float(i) for i, n in enumerate(NAMES)})
    src, out = tmp_path / "codes.csv", tmp_path / "out.csv"
    frame.assign(cultivar=codes).to_csv(src, index=False)
    assert _clean(src, "--target", "cultivar", "--out", out, "-q") == 0


# -- writing -------------------------------------------------------------------------
def test_existing_out_needs_force(wine_csv, tmp_path, capsys):
    out, report = tmp_path / "out.csv", tmp_path / "report.csv"
    out.write_text("precious\n")
    args = ["--target", "cultivar", "--out", out, "--report", report]
    assert _clean(wine_csv, *args) == 2
    assert (
        f"error: --out '{out}' already exists; pass --force to overwrite it"
        in capsys.readouterr().err
    )
    assert out.read_text() == "precious\n" and not report.exists()

    out.unlink()
    report.write_text("precious\n")
    assert _clean(wine_csv, *args) == 2
    assert f"--report '{report}' already exists" in capsys.readouterr().err
    assert report.read_text() == "precious\n" and not out.exists()

    out.write_text("precious\n")
    assert _clean(wine_csv, *args, "--force") == 0
    assert len(pd.read_csv(out)) + len(pd.read_csv(report)) == 178


def test_output_appearing_during_the_run_is_kept(wine_csv, tmp_path, monkeypatch):
    """The check is repeated just before the rename."""
    out = tmp_path / "out.csv"
    real = _cli_files._write_temp

    def racing(frame, path, *args):
        tmp = real(frame, path, *args)
        path.write_text("written by someone else\n")
        return tmp

    monkeypatch.setattr(_cli_files, "_write_temp", racing)
    assert _clean(wine_csv, "--target", "cultivar", "--out", out) == 2
    assert out.read_text() == "written by someone else\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "wine.csv"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_file_mode_follows_umask(umask, mode, wine_csv, tmp_path):
    out, report = tmp_path / "out.csv", tmp_path / "report.csv"
    previous = os.umask(umask)
    try:
        args = ["--target", "cultivar", "--out", out, "--report", report, "-q"]
        assert _clean(wine_csv, *args) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert stat.S_IMODE(report.stat().st_mode) == mode


def test_overwritten_file_keeps_its_mode(wine_csv, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    assert _clean(wine_csv, "--target", "cultivar", "--out", out, "--force", "-q") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert out.read_text() != "old\n"


SLOW_WRITER = """
import sys, time
import pandas as pd
from skinfluence.cli import main

real = pd.DataFrame.to_csv


def slow(self, *args, **kwargs):
    real(self, *args, **kwargs)
    time.sleep(120)


pd.DataFrame.to_csv = slow
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_writing_leaves_no_part_file(wine_csv, tmp_path):
    out, report = tmp_path / "out.csv", tmp_path / "report.csv"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    args = ["clean", wine_csv, "--target", "cultivar", "--out", out, "--report"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, *map(str, args), str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size for p in tmp_path.glob(".out.csv.*.part")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the CLI never started writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM; no partly written files left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wine.csv"]


def test_sigterm_handler_restored(wine_csv, tmp_path):
    def mine(signum, frame):  # pragma: no cover - never called
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert _clean(wine_csv, "--target", "cultivar", "--out", tmp_path / "o.csv",
                      "-q") == 0  # fmt: skip
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_version(capsys):
    import skinfluence

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"skinfluence {skinfluence.__version__}\n"


# -- delimiters ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "sep, decimal, option",
    [
        (";", ".", ["--sep", ";"]),
        (";", ".", []),  # sniffed
        ("\t", ".", []),  # a tab-separated .csv
        ("|", ".", ["--sep", "|"]),
        (";", ",", []),  # spreadsheet export with a decimal comma
        (";", ",", ["--sep", "semicolon", "--decimal", ","]),
    ],
)
def test_separators(sep, decimal, option, tmp_path, wine_table, capsys):
    frame, _, flipped = wine_table
    src, out = tmp_path / "wine.csv", tmp_path / "out.csv"
    report = tmp_path / "issues.csv"
    frame.to_csv(src, index=False, sep=sep, decimal=decimal)
    args = ["--target", "cultivar", "--out", out, "--report", report, *option]
    assert _clean(src, *args) == 0
    err = capsys.readouterr().err
    shown = "tab" if sep == "\t" else repr(sep)
    assert f"178 rows x 16 columns, {shown}-separated" in err
    assert ("decimal comma" in err) == (decimal == ",")
    # Outputs are written the way the input was.
    issues = pd.read_csv(report, sep=sep, decimal=decimal)
    assert np.isin(flipped, issues["row"]).mean() >= 0.6
    cleaned = pd.read_csv(out, sep=sep, decimal=decimal)
    original = pd.read_csv(src, sep=sep, decimal=decimal)
    kept = np.setdiff1d(np.arange(len(frame)), issues["row"])
    pd.testing.assert_frame_equal(cleaned, original.iloc[kept].reset_index(drop=True))


def test_sniffing_keeps_commas_with_semicolons_in_text(tmp_path):
    src = tmp_path / "notes.csv"
    src.write_text("a,note,y\n" + "".join(f"{i},x;y;z,{i % 2}\n" for i in range(10)))
    assert _cli_files._dialect(src, "csv") == (",", ".", False)
    gz = tmp_path / "semi.csv.gz"
    pd.DataFrame({"a": [1.5, 2.5], "y": [0, 1]}).to_csv(gz, sep=";", index=False)
    assert _cli_files._dialect(gz, "csv") == (";", ".", True)


def test_wrong_separator_hint(tmp_path, wine_table, capsys):
    frame, _, _ = wine_table
    src = tmp_path / "wine.csv"
    frame.to_csv(src, index=False, sep=";")
    assert _clean(src, "--target", "cultivar", "--out", tmp_path / "o.csv",
                  "--sep", ",") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "178 rows x 1 column, ','-separated" in err
    assert (
        "(read as a single column: if the file is ';'-separated, pass --sep ';')" in err
    )


def test_bad_separator_option(wine_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _clean(wine_csv, "--target", "cultivar", "--out", tmp_path / "o.csv",
               "--sep", ";;")  # fmt: skip
    assert exc.value.code == 2
    assert "expected one character such as ';' or '|', or 'tab'" in (
        capsys.readouterr().err
    )
    assert _clean(wine_csv, "--target", "cultivar", "--out", tmp_path / "o.csv",
                  "--sep", ",", "--decimal", ",") == 2  # fmt: skip
    assert "--sep and --decimal are both ','" in capsys.readouterr().err


def test_warnings_give_their_advice_as_options(tmp_path, capsys):
    """Labels moved between two classes: 'auto' flags few and warns, and the
    advice names this command's options, not the Python API's."""
    frame = load_wine(as_frame=True).frame
    moved = np.random.default_rng(0).choice(len(frame), 15, replace=False)
    frame.loc[moved, "target"] = (frame.loc[moved, "target"] + 1) % 3
    src = tmp_path / "wine.csv"
    frame.to_csv(src, index=False)
    assert _clean(src, "--target", "target", "--out", tmp_path / "o.csv") == 0
    err = capsys.readouterr().err
    assert "--contamination SHARE (e.g. 0.1) with --action flag and --report" in err
    assert "get_label_issues" not in err
    status = _clean(
        src, "--target", "target", "--out", tmp_path / "p.csv", "--threshold", "1"
    )
    captured = capsys.readouterr()
    assert status == 0 and "threshold 1" in captured.out
    assert "contamination auto" not in captured.out
    if "Dropping" in captured.err:
        assert (
            "--action flag with --report FILE to review them first, or "
            "--contamination auto" in captured.err
        )


def test_decimal_commas_read_as_text_are_pointed_out(tmp_path, wine_table, capsys):
    frame, _, _ = wine_table
    src = tmp_path / "wine.csv"
    frame.to_csv(src, sep=";", decimal=",", index=False)
    args = ["--target", "cultivar", "--exclude", "id", "--sep", ";"]
    assert _clean(src, *args, "--decimal", ".", "--out", tmp_path / "a.csv") == 0
    err = capsys.readouterr().err
    assert "'alcohol'" in err and "pass --decimal ','" in err
    assert _clean(src, *args, "--decimal", ",", "--out", tmp_path / "b.csv") == 0
    assert "read as categories" not in capsys.readouterr().err


def test_every_translated_advice_is_in_the_detectors_messages():
    """The CLI rewrites the detector's advice into options by exact text: each
    phrase it rewrites must still be in a message of skinfluence.cleaning."""
    import ast
    import inspect

    from skinfluence.cleaning import _classifier, _detector, _noise, _scores
    from skinfluence.cli._model import _OPTION_WORDING

    source = "\n".join(
        inspect.getsource(module)
        for module in (_scores, _noise, _detector, _classifier)
    )
    texts = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            texts.append(
                "".join(
                    v.value if isinstance(v, ast.Constant) else "{}"
                    for v in node.values
                )
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
    for phrase in _OPTION_WORDING:
        assert any(phrase in text for text in texts), phrase


# -- the input's text, copied ---------------------------------------------------------
def _spreadsheet_lines(frame, sep, decimal):
    """Wine as another tool writes it: zero-padded codes, trailing zeros,
    exponents, TRUE/FALSE, 'NA' and a repeated column name."""
    rng = np.random.default_rng(1)

    def number(fmt, values):
        return [format(v, fmt).replace(".", decimal) for v in values]

    columns = {
        "zip": [f"{i:05d}" for i in range(len(frame))],
        "alcohol": number(".3f", frame["alcohol"].fillna(13.0)),
        "flavanoids": number(".3f", frame["flavanoids"]),
        "proline": number(".2e", frame["proline"]),
        "checked": rng.choice(["TRUE", "FALSE"], len(frame)),
        "note": rng.choice(["NA", "ok", ""], len(frame)),
        "hue": number(".3f", frame["hue"]),
        "cultivar": frame["cultivar"],
    }
    header = ["zip", "alcohol", "flavanoids", "proline", "checked", "note",
              "flavanoids", "cultivar"]  # fmt: skip
    columns["hue"], header[6] = columns["hue"], "flavanoids"  # pandas: flavanoids.1
    rows = zip(*columns.values())
    return [sep.join(header)] + [sep.join(row) for row in rows]


def _read_lines(path, line_end):
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    text = data.decode()
    assert text.endswith(line_end) and text.count("\n") == text.count(line_end)
    return text[: -len(line_end)].split(line_end)


@pytest.mark.parametrize("action", ["drop", "relabel", "flag"])
@pytest.mark.parametrize(
    "name, sep, decimal, line_end",
    [("in.csv", ",", ".", "\r\n"), ("in.csv.gz", ";", ",", "\n")],
)
def test_outputs_copy_the_input_text(
    action, name, sep, decimal, line_end, tmp_path, wine_table
):
    """Kept cells are written as read: '00087' stays 00087, '14.230' keeps its
    zero, TRUE, 'NA' and the header line stay, and so do CRLF line ends."""
    frame, _, _ = wine_table
    lines = _spreadsheet_lines(frame, sep, decimal)
    src = tmp_path / name
    data = (line_end.join(lines) + line_end).encode()
    (src.write_bytes(gzip.compress(data)) if name.endswith(".gz") else
     src.write_bytes(data))  # fmt: skip
    out, report = tmp_path / f"out{''.join(src.suffixes)}", tmp_path / "issues.csv"
    args = ["--target", "cultivar", "--contamination", "0.05", "--action", action]
    assert _clean(src, *args, "--out", out, "--report", report, "-q") == 0

    issues = pd.read_csv(report, sep=sep, dtype=str, keep_default_na=False)
    rows = issues["row"].astype(int).to_numpy()
    assert len(rows) and (issues["zip"] == [f"{r:05d}" for r in rows]).all()
    written = _read_lines(out, line_end)
    assert written[0].startswith(lines[0])  # the repeated name stays
    if action == "drop":
        kept = np.setdiff1d(np.arange(len(frame)), rows)
        assert written == [lines[0]] + [lines[1 + i] for i in kept]
        return
    suggested = dict(zip(rows, issues["suggested_label"]))
    for i, (before, after) in enumerate(zip(lines[1:], written[1:])):
        *cells, label = before.split(sep)
        if action == "flag":
            flagged = str(i in suggested)
            assert after.startswith(f"{before}{sep}{flagged}{sep}")
        elif i in suggested:
            assert after == sep.join([*cells, suggested[i]])
        else:
            assert after == before
    if action == "flag":
        assert written[0] == f"{lines[0]}{sep}label_issue{sep}suggested_label"


def test_tsv_decimal_comma_to_csv_output(tmp_path, wine_table):
    """A CSV output writes decimal points: numbers' marks change, text does not."""
    frame, _, _ = wine_table
    src, out = tmp_path / "in.tsv", tmp_path / "out.csv"
    lines = _spreadsheet_lines(frame, "\t", ",")
    src.write_text("\n".join(lines) + "\n")
    args = ["--target", "cultivar", "--out", out, "-q", "--contamination", "0.05"]
    assert _clean(src, *args) == 0
    cleaned = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert cleaned["alcohol"].str.fullmatch(r"\d+\.\d{3}").all()
    assert cleaned["zip"].str.fullmatch(r"\d{5}").all()
    assert set(cleaned["note"]) == {"NA", "ok", ""}


def test_out_to_stdout(wine_csv, tmp_path, capsys):
    report = tmp_path / "issues.csv"
    args = ["--target", "cultivar", "--report", report]
    assert _clean(wine_csv, *args, "--out", "-") == 0
    captured = capsys.readouterr()
    lines = wine_csv.read_text().splitlines()
    rows = pd.read_csv(report)["row"]
    kept = np.setdiff1d(np.arange(len(lines) - 1), rows)
    assert captured.out.splitlines() == [lines[0]] + [lines[1 + i] for i in kept]
    assert "wrote:         standard output (" in captured.err  # the summary
    assert "rows flagged:" in captured.err

    assert _clean(wine_csv, "--target", "cultivar", "--out", "-", "--report", "-") == 2
    assert "cannot both be '-'" in capsys.readouterr().err


# -- rbf-svm: sizes ------------------------------------------------------------------
def test_rbf_svm_landmarks_keep_the_exact_solver(tmp_path, wine_table, monkeypatch):
    """Beyond the parameters the explainer factorizes exactly, the exact kernel
    (one parameter per row and class) left it conjugate gradients, with which
    the held-out scores fail; landmark rows keep it exact. Digits (1797 rows,
    10 classes, 17,980 parameters) in small: the limits lowered to 400 (and
    to 400 rows x classes for the Woodbury solver, which digits exceeds)."""
    from skinfluence import solvers
    from skinfluence.solvers import woodbury

    monkeypatch.setattr(solvers, "AUTO_EXACT_MAX_PARAMS", 400)
    monkeypatch.setattr(solvers, "AUTO_EXACT_WIDE_MAX_PARAMS", 400)
    monkeypatch.setattr(woodbury, "AUTO_WOODBURY_MAX_ROWS", 400)
    frame, _, flipped = wine_table
    src, report = tmp_path / "wine.csv", tmp_path / "issues.csv"
    frame.to_csv(src, index=False)
    args = ["--target", "cultivar", "--model", "rbf-svm", "--rounds", "1"]
    assert _clean(src, *args, "--out", tmp_path / "o.csv", "--report", report) == 0
    assert np.isin(flipped, pd.read_csv(report)["row"]).mean() >= 0.5


def test_rbf_svm_size_rules():
    assert _cli_model.rbf_landmarks(178, 3) is None  # exact kernel: 537 parameters
    assert _cli_model.rbf_landmarks(4999, 2) is None
    assert _cli_model.rbf_landmarks(1797, 10) == 499  # digits: 10 x 500 parameters
    assert _cli_model.rbf_landmarks(20_000, 2) == _cli_model.RBF_MAX_LANDMARKS
    with pytest.raises(_cli_errors.CleanError, match="fits at most 20,000 rows"):
        _cli_model.rbf_landmarks(100_000, 2)
    with pytest.raises(_cli_errors.CleanError, match="with 60 classes fits at most"):
        _cli_model.rbf_landmarks(1000, 60)


def test_rbf_svm_refuses_too_many_rows_up_front(tmp_path, capsys):
    n = _cli_model.RBF_MAX_ROWS + 1
    src = tmp_path / "big.csv"
    x = np.random.default_rng(0).normal(size=(n, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.arange(n) % 2}).to_csv(
        src, index=False
    )
    args = ["--target", "y", "--model", "rbf-svm", "--out", tmp_path / "o.csv"]
    assert _clean(src, *args) == 2
    err = capsys.readouterr().err
    assert f"--model rbf-svm fits at most {n - 1:,} rows, the input has {n:,}" in err
    assert "--model logistic or --model svm" in err
    assert "fitting" not in err  # refused before any work


def test_help_names_the_rbf_svm_limit(capsys):
    with pytest.raises(SystemExit):
        main(["clean", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "rbf-svm: SmoothHingeSVC(kernel='rbf') on at most 20,000 rows" in text
    assert "--no-header" in text and "'-' for standard output" in text


@pytest.mark.parametrize("where", ["fit", "read"])
def test_out_of_memory_is_an_error_not_a_traceback(
    where, wine_csv, tmp_path, monkeypatch, capsys
):
    from skinfluence.svm import _classes

    def allocate(*args, **kwargs):
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape "
                          "(100000, 100000) and data type float64")  # fmt: skip

    if where == "fit":
        monkeypatch.setattr(_classes.SmoothHingeSVC, "fit", allocate)
    else:
        monkeypatch.setattr(pd, "read_csv", allocate)
    out = tmp_path / "o.csv"
    assert _clean(wine_csv, "--target", "cultivar", "--model", "svm",
                  "--out", out) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "error: " in err and "out of memory (Unable to allocate" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.slow
def test_rbf_svm_on_digits(tmp_path):
    """The user's case: 1797 rows, 10 classes (minutes on few cores)."""
    from sklearn.datasets import load_digits

    src, out = tmp_path / "digits.csv", tmp_path / "o.csv"
    load_digits(as_frame=True).frame.to_csv(src, index=False)
    assert _clean(src, "--target", "target", "--model", "rbf-svm", "--out", out) == 0


# -- headers -------------------------------------------------------------------------
def test_no_header(tmp_path, wine_table, capsys):
    """Without a header line every row is scored, and rows are not shifted."""
    frame, _, flipped = wine_table
    src, out = tmp_path / "wine.csv", tmp_path / "out.csv"
    report = tmp_path / "issues.csv"
    frame.to_csv(src, index=False, header=False)
    target = str(frame.columns.get_loc("cultivar"))
    args = ["--target", target, "--no-header", "--out", out, "--report", report]
    assert _clean(src, *args) == 0
    captured = capsys.readouterr()
    assert "178 rows x 16 columns" in captured.err and "warning" not in captured.err
    assert "identifier '0' not a feature" in captured.out
    issues = pd.read_csv(report)
    assert np.isin(flipped, issues["row"]).mean() >= 0.6
    np.testing.assert_array_equal(
        issues["given_label"], frame["cultivar"].to_numpy()[issues["row"]]
    )
    lines = src.read_text().splitlines()
    kept = np.setdiff1d(np.arange(len(frame)), issues["row"])
    assert out.read_text().splitlines() == [lines[i] for i in kept]  # no header


def test_numeric_header_is_pointed_out(tmp_path, wine_table, capsys):
    frame, _, _ = wine_table
    codes = frame["cultivar"].map({n: i for i, n in enumerate(NAMES)})
    table = frame.drop(columns=["cellar"]).assign(cultivar=codes)
    src, out = tmp_path / "wine.csv", tmp_path / "out.csv"
    table.to_csv(src, index=False, header=False)
    first = pd.read_csv(src).columns  # what the first row becomes
    assert _clean(src, "--target", first[-1], "--out", out, "-q") == 0
    err = capsys.readouterr().err
    assert "warning: every cell of the header line is a number ('1000', " in err
    assert "pass --no-header" in err
    # A name the first row does not hold: the same hint in the error.
    assert _clean(src, "--target", "14", "--out", out, "--force", "-q") == 2
    assert "(if the file has no header line, pass --no-header)" in (
        capsys.readouterr().err
    )
    # 0, 1, 2, ...: the header pandas writes for unnamed columns, not a data row.
    table.set_axis(range(table.shape[1]), axis=1).to_csv(src, index=False)
    assert _clean(src, "--target", "14", "--out", out, "--force", "-q") == 0
    assert "warning: every cell" not in capsys.readouterr().err


def test_no_header_is_for_text_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_cli_files, "_has_pyarrow", lambda: True)
    src = tmp_path / "wine.parquet"
    src.write_bytes(b"PAR1")  # refused before it is read
    args = ["--target", "cultivar", "--no-header", "--out", tmp_path / "o.csv"]
    assert _clean(src, *args) == 2
    assert "--no-header is for .csv/.tsv input" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_threshold_must_be_finite(value, wine_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _clean(wine_csv, "--target", "cultivar", f"--threshold={value}",
               "--out", tmp_path / "o.csv")  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --threshold: must be a finite number, got {value}" in err
    assert "MislabelDetector" not in err
