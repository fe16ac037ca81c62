"""The displays draw exactly the data they compute (Agg backend)."""

import doctest
import importlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, scale

from skinfluence import InfluenceExplainer, MislabelDetector
from skinfluence.cleaning import METHODS
from skinfluence.plotting import (
    FeatureInfluenceDisplay,
    InfluentialExamplesDisplay,
    LDSDisplay,
    LOOAgreementDisplay,
    MislabelCurveDisplay,
    feature_influence,
)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = scale(X)
    explainer = InfluenceExplainer(LogisticRegression(C=0.1, tol=1e-10))
    return X, y, explainer.fit(X[:200], y[:200])


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(n_class=2, return_X_y=True)
    model = LogisticRegression(C=0.1, tol=1e-10, max_iter=2000)
    return X, y, InfluenceExplainer(model).fit(X[:150], y[:150])


def test_import_does_not_load_matplotlib():
    code = (
        "import sys, skinfluence, skinfluence.plotting; "
        "from skinfluence import LOOAgreementDisplay; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    display = LOOAgreementDisplay(predicted=[0, 1], actual=[0, 1])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"skinfluence\[plot\]"):
        display.plot()
    with pytest.raises(ImportError, match="MislabelCurveDisplay.from_predictions"):
        MislabelCurveDisplay.from_predictions([1.0, 0.0], [True, False])


# -- LOOAgreementDisplay -------------------------------------------------------
def test_loo_from_estimator_plots_the_refits(cancer):
    X, y, explainer = cancer
    display = LOOAgreementDisplay.from_estimator(
        explainer, X[300:301], y[300:301], n_remove=4, n_random=2, random_state=0
    )
    offsets = display.scatter_.get_offsets()
    np.testing.assert_array_equal(offsets[:, 0], display.actual)
    np.testing.assert_array_equal(offsets[:, 1], display.predicted)
    # The predictions are the explainer's, the actual values real refits.
    rows = display.train_row.astype(int)
    predicted = explainer.loo_change(X[300:301], y[300:301])[0, rows]
    np.testing.assert_allclose(display.predicted, predicted)
    keep = np.ones(200, dtype=bool)
    keep[rows[0]] = False
    model = clone(explainer.estimator).fit(X[:200][keep], y[:200][keep])
    full = explainer.estimator_
    p_new, p_old = (m.predict_proba(X[300:301])[0, y[300]] for m in (model, full))
    np.testing.assert_allclose(
        display.actual[0], np.log(p_old) - np.log(p_new), rtol=1e-4
    )
    assert list(display.selection) == ["top"] * 4 + ["random"] * 2
    assert display.pearson_r > 0.95
    assert f"{display.pearson_r:.3f}" in display.ax_.get_legend().get_title().get_text()


def test_loo_from_result_and_refit_options_for_trees():
    """from_result draws a validate_loo result as from_estimator does; the
    trees' fixed-structure check goes through from_estimator's refit_options
    (LeafRefit: the structure-fixed LeafInfluence agrees closely)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from skinfluence import InfluenceExplainer, validate_loo

    X, y = load_breast_cancer(return_X_y=True)
    explainer = InfluenceExplainer(
        HistGradientBoostingClassifier(max_iter=10, random_state=0),
        solver="leaf_influence",
    ).fit(X[:300], y[:300])
    test = (X[400:401], y[400:401])
    options = dict(n_remove=8, n_random=4, random_state=0)
    options["refit_options"] = {"fixed_structure": True}
    result = validate_loo(explainer, *test, **options)
    display = LOOAgreementDisplay.from_result(result)
    np.testing.assert_array_equal(display.actual, result.table["actual"])
    assert display.pearson_r == result.pearson_r > 0.99
    drawn = LOOAgreementDisplay.from_estimator(explainer, *test, **options)
    np.testing.assert_allclose(drawn.actual, display.actual)
    assert "LOOValidation(n_removed=12 (top 8, random 4), method='influence'" in (
        repr(result)
    )
    # Unnamed, a result is labelled by how its changes were predicted.
    assert display.name == "first order"
    assert display.ax_.get_legend().get_title().get_text().startswith("first order")


def test_feature_influence_of_trees_is_refused_by_its_own_name():
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from skinfluence import InfluenceExplainer
    from skinfluence.exceptions import UnsupportedOperationError

    X, y = load_breast_cancer(return_X_y=True)
    explainer = InfluenceExplainer(
        HistGradientBoostingClassifier(max_iter=5, random_state=0)
    ).fit(X[:200], y[:200])
    with pytest.raises(
        UnsupportedOperationError, match="FeatureInfluenceDisplay.*piecewise constant"
    ):
        FeatureInfluenceDisplay.from_estimator(explainer, X[300:301], y[300:301])


def test_mislabel_curves_of_trees_draw_the_ranking_without_flag_warnings(rng):
    """The curves use the detector's ranking, whatever 'auto' would flag: no
    warning that it flags nothing for a tree ensemble, and the same curve as
    the detector's own scores."""
    import warnings

    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from skinfluence import MislabelDetector

    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:300], y[:300].copy()
    flipped = rng.choice(len(y), 30, replace=False)
    noisy = y.copy()
    noisy[flipped] = 1 - noisy[flipped]
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        display = MislabelCurveDisplay.from_estimator(
            model, X, noisy, y_true=y, methods=["detector"]
        )
    with pytest.warns(UserWarning, match="contamination="):
        detector = MislabelDetector(model).fit(X, noisy)
    expected = MislabelCurveDisplay.from_predictions(detector.scores_, noisy != y)
    np.testing.assert_allclose(
        display.fraction_found["detector"], expected.fraction_found["scores"]
    )


def test_loo_from_predictions_line_stats_and_style():
    predicted = np.array([0.1, -0.2, 0.45, 0.0])
    actual = np.array([0.12, -0.25, 0.5, 0.01])
    fig, ax = plt.subplots()
    display = LOOAgreementDisplay.from_predictions(
        predicted,
        actual,
        selection=["top", "top", "top", "random"],
        name="ridge",
        ax=ax,
        line_kwargs={"color": "red"},
        s=50,
    )
    assert display.ax_ is ax and display.figure_ is fig
    xs, ys = display.line_.get_data()
    np.testing.assert_allclose(xs, [-0.25, 0.5])
    np.testing.assert_allclose(ys, [-0.25, 0.5])
    assert display.line_.get_color() == "red"
    np.testing.assert_array_equal(display.scatter_.get_sizes(), [50])
    colours = display.scatter_.get_facecolors()
    assert len({tuple(c) for c in colours[:3]}) == 1
    assert tuple(colours[0]) != tuple(colours[3])
    np.testing.assert_allclose(display.pearson_r, np.corrcoef(predicted, actual)[0, 1])
    np.testing.assert_allclose(display.slope, np.polyfit(actual, predicted, 1)[0])
    title = display.ax_.get_legend().get_title().get_text()
    assert title.startswith("ridge") and "slope = " in title


def test_loo_from_predictions_colour_kwarg_and_errors():
    display = LOOAgreementDisplay.from_predictions(
        [0.1, 0.2], [0.1, 0.3], selection=["top", "random"], color="k"
    )
    np.testing.assert_allclose(
        display.scatter_.get_facecolors()[:, :3], np.zeros((1, 3))
    )
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LOOAgreementDisplay.from_predictions([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="finite"):
        LOOAgreementDisplay.from_predictions([0.1, np.nan], [0.1, 0.2])


def _two_methods():
    """Predicted and actual changes of two methods for the same removed rows."""
    actual = np.array([0.3, -0.2, 0.1, 0.02, -0.01, 0.0])
    selection = ["top"] * 4 + ["random"] * 2
    first = dict(predicted=0.7 * actual + 0.01, actual=actual, selection=selection)
    newton = dict(predicted=1.1 * actual, actual=actual, selection=selection)
    return first, newton


def test_loo_displays_on_one_axes_add_their_series():
    """A second plot on the Axes adds its points in new colours, its own
    legend entries (name and R) beside the first's, and one y = x line."""
    first, newton = _two_methods()
    fig, ax = plt.subplots()
    a = LOOAgreementDisplay.from_predictions(**first, name="first order", ax=ax)
    assert a.ax_.get_legend().get_title().get_text().startswith("first order\n")
    b = LOOAgreementDisplay.from_predictions(**newton, name="newton", ax=ax)
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == [
        f"first order: Pearson R = {a.pearson_r:.3f}, slope = {a.slope:.2f}",
        "largest predicted effect (4)",
        "random rows (2)",
        f"newton: Pearson R = {b.pearson_r:.3f}, slope = {b.slope:.2f}",
        "largest predicted effect (4)",
        "random rows (2)",
        "y = x",
    ]
    assert legend.get_title().get_text() == ""
    weights = [t.get_fontweight() for t in legend.get_texts()]
    assert [i for i, w in enumerate(weights) if w == "bold"] == [0, 3]  # headings
    # Every point keeps its own plot's colours; none is shared.
    colours_a = {tuple(c) for c in a.scatter_.get_facecolors()}
    colours_b = {tuple(c) for c in b.scatter_.get_facecolors()}
    assert len(colours_a) == len(colours_b) == 2 and not colours_a & colours_b
    # legend_handles since matplotlib 3.7; legendHandles before.
    handles = getattr(legend, "legend_handles", None) or legend.legendHandles
    entry_colours = [to_rgba(h.get_color()) for h in handles[1:3] + handles[4:6]]
    assert len(set(entry_colours)) == 4
    assert handles[1].get_marker() != handles[4].get_marker()
    # One y = x line, spanning both plots' data.
    identity = [line for line in ax.lines if line.get_label() == "y = x"]
    assert len(identity) == 1 and a.line_ is b.line_ is identity[0]
    drawn = [line for line in ax.lines if len(line.get_xdata())]
    assert drawn == identity
    values = np.r_[first["predicted"], newton["predicted"], first["actual"]]
    np.testing.assert_allclose(identity[0].get_xdata(), [values.min(), values.max()])
    lo, hi = ax.get_xlim()
    assert lo <= values.min() and values.max() <= hi


def test_loo_third_plot_without_selection_or_name():
    """A plot without selections adds one entry ('removed rows') in a colour
    of its own; one without a name is headed by its statistics."""
    first, newton = _two_methods()
    fig, ax = plt.subplots()
    LOOAgreementDisplay.from_predictions(**first, name="first order", ax=ax)
    LOOAgreementDisplay.from_predictions(**newton, ax=ax)
    plain = LOOAgreementDisplay.from_predictions(
        newton["predicted"] + 0.01, newton["actual"], name="shifted", ax=ax
    )
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[3].startswith("Pearson R = ")
    assert texts[-3:] == [
        f"shifted: Pearson R = {plain.pearson_r:.3f}, slope = {plain.slope:.2f}",
        "removed rows",
        "y = x",
    ]
    used = {to_rgba(f"C{i}") for i in range(4)}
    (colour,) = {tuple(c) for c in plain.scatter_.get_facecolors()}
    assert colour[:3] == to_rgba("C4")[:3] and to_rgba("C4") not in used
    assert sum(line.get_label() == "y = x" for line in ax.lines) == 1


# -- InfluentialExamplesDisplay ------------------------------------------------
def test_influential_images_are_the_training_rows(digits):
    X, y, explainer = digits
    display = InfluentialExamplesDisplay.from_estimator(
        explainer, X[[300]], y[[300]], k=3, image_shape="auto", cmap="viridis"
    )
    table = explainer.top_influential(X[[300]], y[[300]], k=3)
    assert display.images_.shape == (2, 3)
    for i, kind in enumerate(("helpful", "harmful")):
        part = table[table.kind == kind].sort_values("rank")
        for j, row in enumerate(part.train_row):
            image = display.images_[i, j]
            np.testing.assert_array_equal(image.get_array(), X[row].reshape(8, 8))
            assert image.get_cmap().name == "viridis"
            assert f"row {row}\n" in display.axes_[i, j].get_title()
    np.testing.assert_array_equal(display.test_image_.get_array(), X[300].reshape(8, 8))
    lo, hi = display.images_[0, 0].get_clim()
    assert lo == min(X[table.train_row].min(), X[300].min())
    assert hi == max(X[table.train_row].max(), X[300].max())


def test_influential_images_draw_inside_the_given_axes(digits):
    X, y, explainer = digits
    fig, (left, right) = plt.subplots(1, 2)
    display = InfluentialExamplesDisplay.from_estimator(
        explainer, X[[300]], y[[300]], k=2, image_shape=(8, 8), ax=right
    )
    assert display.ax_ is right and display.figure_ is fig
    assert not right.axison
    box = right.get_position()
    for sub in display.axes_.ravel():
        inner = sub.get_position()
        assert inner.x0 >= box.x0 - 1e-9 and inner.x1 <= box.x1 + 1e-9


def test_influential_bars_pandas_index_and_pipeline():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.index = y.index = X.index * 10 + 7  # labels that are not positions
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10))
    explainer = InfluenceExplainer(model).fit(X[:200], y[:200])
    X_test, y_test = X.iloc[[250]], y.iloc[[250]]
    display = InfluentialExamplesDisplay.from_estimator(
        explainer, X_test, y_test, k=4, X_train=X[:200], edgecolor="k"
    )
    table = display.table
    widths = [bar.get_width() for bar in display.bars_]
    np.testing.assert_array_equal(widths, table.score)
    assert all(to_rgba(b.get_edgecolor()) == to_rgba("k") for b in display.bars_)
    np.testing.assert_array_equal(display.rows, X.loc[table.train_row].to_numpy())
    np.testing.assert_array_equal(display.test_row, X_test.to_numpy()[0])
    # Bars are ordered by score: the most harmful at the top.
    ys = np.array([bar.get_y() for bar in display.bars_])
    assert np.all(np.diff(ys[np.argsort(table.score.to_numpy())]) > 0)
    # Without X_train: the rows fit received, not the standardized ones (the
    # model input is the fallback for rows that cannot be drawn, tested below).
    raw = InfluentialExamplesDisplay.from_estimator(explainer, X_test, y_test, k=4)
    np.testing.assert_array_equal(raw.rows, X.loc[table.train_row].to_numpy())
    np.testing.assert_array_equal(raw.test_row, X_test.to_numpy()[0])
    assert list(raw.feature_names) == list(X.columns)


def test_influential_errors(cancer, digits):
    X, y, explainer = cancer
    with pytest.raises(ValueError, match="one test row"):
        InfluentialExamplesDisplay.from_estimator(explainer, X[300:302], y[300:302])
    with pytest.raises(ValueError, match="square number of features"):
        InfluentialExamplesDisplay.from_estimator(
            explainer, X[[300]], y[[300]], image_shape="auto"
        )
    with pytest.raises(ValueError, match=r"holds 16 values"):
        InfluentialExamplesDisplay.from_estimator(
            explainer, X[[300]], y[[300]], image_shape=(4, 4)
        )
    table = explainer.top_influential(X[300:302], y[300:302], k=2)
    with pytest.raises(ValueError, match="several test rows"):
        InfluentialExamplesDisplay.from_predictions(table)


def test_influential_from_predictions(digits):
    X, y, explainer = digits
    table = explainer.top_influential(X[[300]], y[[300]], k=2)
    rows = X[:150][table.train_row]
    display = InfluentialExamplesDisplay.from_predictions(
        table, rows, test_row=X[300], image_shape=(8, 8)
    )
    np.testing.assert_array_equal(
        display.images_[1, 0].get_array(),
        X[table[table.kind == "harmful"].train_row.iloc[0]].reshape(8, 8),
    )


def _mixed_frame():
    """Breast cancer's first columns and a string one, through a ColumnTransformer."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4].copy()
    X["size"] = np.where(X["mean area"] > 700, "large", "small")
    prefix = ColumnTransformer(
        [
            ("num", StandardScaler(), list(X.columns[:4])),
            ("cat", OneHotEncoder(), ["size"]),
        ]
    )
    model = make_pipeline(prefix, LogisticRegression(tol=1e-10))
    return X, y, InfluenceExplainer(model).fit(X[:200], y[:200])


def _inside_figure(fig, texts):
    """The texts (non-empty ones) whose drawn box leaves the figure."""
    fig.canvas.draw()
    box = fig.bbox
    outside = []
    for text in texts:
        if not text.get_visible() or not text.get_text():
            continue
        ext = text.get_window_extent()
        if (
            ext.x0 < box.x0 - 1
            or ext.x1 > box.x1 + 1
            or ext.y0 < box.y0 - 1
            or (ext.y1 > box.y1 + 1)
        ):
            outside.append(text.get_text())
    return outside


def _axes_texts(ax):
    """The tick labels matplotlib draws (ticks in view), axis labels and title."""
    texts = [ax.xaxis.label, ax.yaxis.label, ax.title, ax.xaxis.get_offset_text()]
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        slack = 1e-9 * (hi - lo)
        for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels()):
            if lo - slack <= loc <= hi + slack:
                texts.append(label)
    return texts


def test_influential_pipeline_default_draws_the_input_rows():
    X, y = load_digits(n_class=3, return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, tol=1e-10))
    explainer = InfluenceExplainer(model).fit(X[:300], y[:300])
    display = InfluentialExamplesDisplay.from_estimator(
        explainer, X[[400]], y[[400]], k=3, image_shape="auto"
    )
    table = explainer.top_influential(X[[400]], y[[400]], k=3)
    scaled = explainer.training_data()[0]
    for i, kind in enumerate(("helpful", "harmful")):
        part = table[table.kind == kind].sort_values("rank")
        for j, row in enumerate(part.train_row):
            drawn = display.images_[i, j].get_array()
            np.testing.assert_array_equal(drawn, X[row].reshape(8, 8))
            assert not np.allclose(drawn, scaled[row].reshape(8, 8))
    np.testing.assert_array_equal(display.test_image_.get_array(), X[400].reshape(8, 8))
    # Raw pixels: 0 (white) to 16 (black) on one colour scale.
    assert display.images_[0, 0].get_clim() == (0.0, 16.0)
    titles = [sub.title for sub in display.axes_.ravel()]
    ylabels = [display.axes_[i, 0].yaxis.label for i in range(2)]
    texts = [*titles, *ylabels, display.test_ax_.title]
    assert _inside_figure(display.figure_, texts) == []
    assert display.axes_[1, 0].get_ylabel() == "most harmful"
    # X_train= still overrides the default.
    override = InfluentialExamplesDisplay.from_estimator(
        explainer, X[[400]], y[[400]], k=3, X_train=X[:300] / 16, image_shape="auto"
    )
    row = table[(table.kind == "helpful") & (table["rank"] == 1)].train_row.iloc[0]
    np.testing.assert_array_equal(
        override.images_[0, 0].get_array(), X[row].reshape(8, 8) / 16
    )


def test_influential_strings_fall_back_to_the_model_input():
    X, y, explainer = _mixed_frame()
    X_test, y_test = X.iloc[[250]], y.iloc[[250]]
    display = InfluentialExamplesDisplay.from_estimator(explainer, X_test, y_test, k=3)
    positions = X.index.get_indexer(display.table.train_row)
    np.testing.assert_allclose(display.rows, explainer.training_data()[0][positions])
    np.testing.assert_allclose(display.test_row, explainer.model_input(X_test)[0])
    expected = explainer.estimator_[0].get_feature_names_out()
    assert list(display.feature_names) == list(expected)
    assert "cat__size_large" in display.feature_names
    widths = [bar.get_width() for bar in display.bars_]
    np.testing.assert_array_equal(widths, display.table.score)


def test_influential_bar_labels_fit_in_the_figure():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.index = y.index = [f"patient-{i:06d}" for i in range(len(X))]  # long labels
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10))
    explainer = InfluenceExplainer(model).fit(X[:200], y[:200])
    display = InfluentialExamplesDisplay.from_estimator(
        explainer, X.iloc[[250]], y.iloc[[250]], k=4
    )
    labels = [t.get_text() for t in display.ax_.get_yticklabels()]
    assert all(label.startswith("row patient-") for label in labels)
    assert _inside_figure(display.figure_, _axes_texts(display.ax_)) == []
    assert "test row patient-000250: label" in display.ax_.get_title()
    assert display.ax_.get_xlabel().startswith("influence on the test loss\n")


def test_influential_axes_name_the_score_and_quantity_ranked_by(digits):
    X, y, explainer = digits
    bars = InfluentialExamplesDisplay.from_estimator(
        explainer,
        X[[300]],
        y[[300]],
        k=3,
        method="l_relatif",
        target="decision_function",
    )
    assert bars.ax_.get_xlabel().startswith("L-RelatIF on the decision function")
    assert "moved the decision function most" in bars.ax_.get_title()
    images = InfluentialExamplesDisplay.from_estimator(
        explainer,
        X[[300]],
        y[[300]],
        k=3,
        method="divine",
        image_shape=(8, 8),
    )
    assert images.axes_[0, 0].get_ylabel() == "helpful, diverse\n(in the order chosen)"
    plain = InfluentialExamplesDisplay.from_estimator(
        explainer, X[[300]], y[[300]], k=3, image_shape=(8, 8)
    )
    assert plain.axes_[1, 0].get_ylabel() == "most harmful"


def _top_table(k, seed=0):
    """A top-k table (k helpful, k harmful) and random 8 x 8 rows for it."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "kind": ["helpful"] * k + ["harmful"] * k,
            "rank": [*range(1, k + 1)] * 2,
            "train_row": np.arange(2 * k) * 37 + 1000,
            "score": np.r_[-np.arange(k, 0, -1), np.arange(k, 0, -1)] * 1.5,
            "label": rng.integers(0, 10, 2 * k),
        }
    )
    return table, rng.random((2 * k, 64))


def _grid_lines(axes):
    """The distinct (rounded) left and bottom edges of ``axes``."""
    boxes = [a.get_position() for a in axes]
    return sorted({round(b.x0, 4) for b in boxes}), sorted(
        {round(b.y0, 4) for b in boxes}, reverse=True
    )


def test_influential_images_wrap_many_rows_onto_lines():
    """k=30: ten images a line, three lines of helpful rows above three of
    harmful ones, in rank order; a figure of readable proportions whose
    captions keep their size and do not run into one another."""
    table, rows = _top_table(30)
    display = InfluentialExamplesDisplay.from_predictions(
        table, rows, test_row=rows[0], test_label=3, image_shape=(8, 8)
    )
    assert display.images_.shape == display.axes_.shape == (2, 30)
    fig = display.figure_
    fig.canvas.draw()
    xs, ys = _grid_lines(display.axes_.ravel())
    assert len(xs) == 10 and len(ys) == 6
    width, height = fig.get_size_inches()
    assert width <= 17 and width / height < 2
    for i in range(2):  # rank j at line j // 10, column j % 10
        for j in range(30):
            box = display.axes_[i, j].get_position()
            assert round(box.x0, 4) == xs[j % 10]
            assert round(box.y0, 4) == ys[3 * i + j // 10]
    titles = [a.title for a in display.axes_.ravel()]
    assert all(t.get_fontsize() >= 8 for t in titles)
    boxes = [t.get_window_extent() for t in titles]
    for n, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[n + 1 :])
    assert _inside_figure(fig, titles) == []
    # The side labels name each kind at its first line.
    assert display.axes_[0, 0].get_ylabel() == "most helpful"
    assert display.axes_[1, 0].get_ylabel() == "most harmful"


def test_influential_images_n_cols(digits):
    X, y, explainer = digits
    display = InfluentialExamplesDisplay.from_estimator(
        explainer, X[[300]], y[[300]], k=6, image_shape=(8, 8), n_cols=4
    )
    xs, ys = _grid_lines(display.axes_.ravel())
    # At most 4 a line: two lines of 3 for each kind.
    assert display.axes_.shape == (2, 6) and len(xs) == 3 and len(ys) == 4
    twelve, _ = _top_table(12)
    balanced = InfluentialExamplesDisplay.from_predictions(
        twelve, np.ones((24, 64)), image_shape=(8, 8)
    )
    xs, ys = _grid_lines(balanced.axes_.ravel())
    assert len(xs) == 6 and len(ys) == 4  # not lines of 10 and 2
    few = InfluentialExamplesDisplay.from_estimator(
        explainer, X[[300]], y[[300]], k=3, image_shape=(8, 8)
    )
    xs, ys = _grid_lines(few.axes_.ravel())
    assert len(xs) == 3 and len(ys) == 2  # k <= n_cols: one line a kind
    with pytest.raises(ValueError, match="n_cols must be a positive int, got 0"):
        InfluentialExamplesDisplay.from_estimator(
            explainer, X[[300]], y[[300]], k=3, image_shape=(8, 8), n_cols=0
        )


def test_influential_title_shows_a_regressors_prediction():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    explainer = InfluenceExplainer(Ridge(alpha=1.0)).fit(X[:300], y[:300])
    X_test, y_test = X.iloc[[310]], y.iloc[[310]]
    predicted = explainer.predict(X_test)[0]
    display = InfluentialExamplesDisplay.from_estimator(explainer, X_test, y_test, k=3)
    assert display.test_prediction == pytest.approx(predicted)
    title = display.ax_.get_title().splitlines()[-1]
    assert (
        title == f"test row 310: label {y_test.iloc[0]:.4g}, predicted {predicted:.4g}"
    )
    labels = [t.get_text() for t in display.ax_.get_yticklabels()]
    assert all(label.endswith(")") and ".0)" not in label for label in labels)
    # from_predictions takes the prediction too (image mode: the test row's title).
    table, rows = _top_table(2)
    images = InfluentialExamplesDisplay.from_predictions(
        table,
        rows,
        test_row=rows[0],
        test_label=4,
        test_prediction=9,
        image_shape=(8, 8),
    )
    assert images.test_ax_.get_title() == "test row:\nlabel 4, predicted 9"


def test_influential_title_of_a_classifier_names_the_class(digits):
    X, y, explainer = digits
    display = InfluentialExamplesDisplay.from_estimator(explainer, X[[300]], y[[300]])
    predicted = explainer.predict(X[[300]])[0]
    assert display.ax_.get_title().endswith(f"label {y[300]}, predicted {predicted}")


# -- MislabelCurveDisplay ------------------------------------------------------
def test_mislabel_curves_from_predictions():
    is_flipped = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    perfect = is_flipped.astype(float)
    worst = -perfect
    display = MislabelCurveDisplay.from_predictions(
        {"perfect": perfect, "worst": worst},
        is_flipped,
        lw=3,
        curve_kwargs={"worst": {"color": "k"}},
    )
    x = display.fraction_checked
    np.testing.assert_allclose(x, np.arange(11) / 10)
    found = display.fraction_found
    np.testing.assert_allclose(found["perfect"], [0, 0.5] + [1] * 9)
    np.testing.assert_allclose(found["worst"], [0] * 9 + [0.5, 1])
    for name, line in display.lines_.items():
        xs, ys = line.get_data()
        np.testing.assert_array_equal(xs, x)
        np.testing.assert_array_equal(ys, found[name])
        assert (xs[0], ys[0], xs[-1], ys[-1]) == (0, 0, 1, 1)
        assert line.get_linewidth() == 3
    assert to_rgba(display.lines_["worst"].get_color()) == to_rgba("k")
    xs, ys = display.chance_level_.get_data()
    assert list(xs) == [0, 1] and list(ys) == [0, 1]
    assert display.lines_["perfect"].get_label() == "perfect: 100%"
    assert display.lines_["worst"].get_label() == "worst: 0%"
    legend = display.ax_.get_legend()
    assert legend.get_title().get_text() == "flipped labels found at 20% checked"


def test_mislabel_curves_that_coincide_are_both_visible():
    is_flipped = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    scores = np.arange(10.0)
    display = MislabelCurveDisplay.from_predictions(
        {"a": scores, "b": 2 * scores, "c": -scores}, is_flipped
    )
    lines = display.lines_
    assert lines["a"].get_linestyle() == "-" and lines["c"].get_linestyle() == "-"
    assert lines["b"].get_linestyle() != "-"
    assert lines["b"].get_label() == "b: the same curve as a"
    assert lines["c"].get_label() == "c: 50%"


def test_mislabel_curves_a_step_apart_are_dashed_too():
    # 40 rows, 4 flipped: "b" finds one of them a row later than "a" (a
    # mean gap of 1/160), "c" much later.
    is_flipped = np.zeros(40, dtype=bool)
    is_flipped[[39, 38, 37, 36]] = True
    a = np.arange(40.0)
    b = a.copy()
    b[[36, 35]] = b[[35, 36]]
    c = -a
    scores = {"a": a, "b": b, "c": c}
    display = MislabelCurveDisplay.from_predictions(scores, is_flipped)
    gap = np.abs(display.fraction_found["a"] - display.fraction_found["b"])
    assert 0 < gap.mean() < 0.01
    lines = display.lines_
    assert lines["b"].get_linestyle() != "-" and lines["c"].get_linestyle() == "-"
    assert "the same curve" not in lines["b"].get_label()


def test_mislabel_from_estimator_matches_detectors():
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:250], y[:250]
    noisy = y.copy()
    flip = np.random.default_rng(0).choice(250, 25, replace=False)
    noisy[flip] = 1 - noisy[flip]
    fig, ax = plt.subplots()
    display = MislabelCurveDisplay.from_estimator(
        MislabelDetector(), X, noisy, y_true=y, ax=ax, plot_chance_level=False
    )
    assert display.ax_ is ax and display.chance_level_ is None
    is_flipped = noisy != y
    for method in METHODS:
        found = display.fraction_found[method]
        detector = MislabelDetector(method=method, n_rounds=1)
        scores = detector.fit(X, noisy).scores_
        ranked = is_flipped[np.argsort(-scores, kind="stable")]
        np.testing.assert_allclose(found, np.r_[0, np.cumsum(ranked)] / 25)
    # The paper's point: far better than checking at random.
    assert display.fraction_found["self_influence"][25] > 0.5
    # A fitted explainer (used as it is) gives the same curves.
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, tol=1e-8, max_iter=5000)
    )
    explainer = InfluenceExplainer(model).fit(X, noisy)
    again = MislabelCurveDisplay.from_estimator(
        explainer, X, noisy, is_flipped=is_flipped, methods=["self_influence"]
    )
    np.testing.assert_allclose(
        again.fraction_found["self_influence"],
        display.fraction_found["self_influence"],
    )


def test_mislabel_errors():
    X, y = load_breast_cancer(return_X_y=True)
    with pytest.raises(ValueError, match="exactly one of"):
        MislabelCurveDisplay.from_estimator(MislabelDetector(), X, y)
    with pytest.raises(ValueError, match="Unknown methods"):
        MislabelCurveDisplay.from_estimator(
            MislabelDetector(), X, y, y_true=y, methods=["nope"]
        )
    with pytest.raises(ValueError, match="no row"):
        MislabelCurveDisplay.from_predictions([1.0, 2.0], [False, False])
    with pytest.raises(ValueError, match="inconsistent"):
        MislabelCurveDisplay.from_predictions([1.0, 2.0, 3.0], [True, False])


def test_mislabel_curves_include_the_default_detector():
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:250], y[:250]
    noisy = y.copy()
    flip = np.random.default_rng(1).choice(250, 25, replace=False)
    noisy[flip] = 1 - noisy[flip]
    is_flipped = noisy != y
    detector = MislabelDetector().fit(X, noisy)
    assert detector.n_rounds == 3
    ranked = is_flipped[np.argsort(-detector.scores_, kind="stable")]
    expected = np.r_[0, np.cumsum(ranked)] / 25
    display = MislabelCurveDisplay.from_estimator(
        MislabelDetector(), X, noisy, y_true=y
    )
    assert list(display.lines_) == [*METHODS, "detector"]
    xs, ys = display.lines_["detector"].get_data()
    np.testing.assert_array_equal(xs, display.fraction_checked)
    np.testing.assert_allclose(ys, expected)
    label = display.lines_["detector"].get_label()
    assert label.startswith(f"MislabelDetector ({detector.n_rounds_} rounds")
    assert label.endswith("%")
    title = display.ax_.get_legend().get_title().get_text()
    assert title == "flipped labels found at 10% checked"
    assert not _covers_diagonal(display.ax_)
    assert display.ax_.get_title().startswith("Finding the flipped labels")
    assert _inside_figure(display.figure_, _axes_texts(display.ax_)) == []
    # A bare classifier gets the default detector too.
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, tol=1e-8, max_iter=5000)
    )
    bare = MislabelCurveDisplay.from_estimator(
        model, X, noisy, is_flipped=is_flipped, methods=["detector"]
    )
    assert list(bare.lines_) == ["detector"]
    np.testing.assert_allclose(bare.fraction_found["detector"], expected)


def _covers_diagonal(ax):
    """Whether the legend's box, in data coordinates, crosses y = x."""
    ax.figure.canvas.draw()
    box = ax.get_legend().get_window_extent().transformed(ax.transData.inverted())
    return max(box.x0, box.y0) <= min(box.x1, box.y1)


def test_mislabel_legend_leaves_the_diagonal_and_curves_clear(rng):
    """Wine-sized data, useful scores: the legend sits below the diagonal,
    off the curves (matplotlib's 'best' among short entries)."""
    flipped = rng.random(178) < 0.1
    scores = {
        "loo_loss": flipped + rng.normal(scale=0.3, size=178),
        "self_influence": flipped + rng.normal(scale=0.5, size=178),
        "training_loss": flipped + rng.normal(scale=0.4, size=178),
        "detector": flipped + rng.normal(scale=0.2, size=178),
    }
    labels = {"detector": "MislabelDetector (3 rounds, held-out loss)"}
    display = MislabelCurveDisplay.from_predictions(scores, flipped, labels=labels)
    ax = display.ax_
    assert not _covers_diagonal(ax)
    box = ax.get_legend().get_window_extent()
    for line in display.lines_.values():
        points = line.get_transform().transform(line.get_xydata())
        assert not box.count_contains(points)
    assert _inside_figure(display.figure_, ax.get_legend().get_texts()) == []


# -- LDSDisplay ----------------------------------------------------------------
def _lds_display(scores):
    rng = np.random.default_rng(0)
    actual = rng.random(12)
    return LDSDisplay(
        predicted=actual + rng.normal(scale=0.1, size=12),
        actual=actual,
        scores=np.asarray(scores, dtype=float),
        test_row=7,
        method="influence",
        output="loss",
    ).plot()


def test_lds_title_says_how_many_rows_were_left_out():
    """A test row without a correlation (flat loss, NaN) is not counted
    silently: the histogram's title says 19 of 20, and why."""
    scores = np.linspace(0.5, 0.95, 20)
    scores[12] = np.nan
    display = _lds_display(scores)
    right = display.ax_[1]
    assert right.get_title() == (
        "influence: 19 of 20 test rows\n(1 with a flat loss left out)"
    )
    assert sum(bar.get_height() for bar in display.hist_) == 19
    assert right.get_legend().get_texts()[0].get_text() == (
        f"LDS = {np.nanmean(scores):.3f}"
    )
    assert _inside_figure(display.figure_, [right.title, display.ax_[0].title]) == []
    whole = _lds_display(np.linspace(0.5, 0.95, 20))
    assert whole.ax_[1].get_title() == "influence: 20 test rows"


# -- FeatureInfluenceDisplay ---------------------------------------------------
def test_feature_influence_aggregates_in_chunks(cancer):
    X, y, explainer = cancer
    X_test, y_test = X[300:312], y[300:312]
    P = explainer.perturbation_influence(X_test, y_test)
    with config_context(working_memory=0.2):  # a few test rows per chunk
        signed = feature_influence(explainer, X_test, y_test, aggregate="signed")
        absolute = feature_influence(explainer, X_test, y_test)
        some = feature_influence(explainer, X_test, y_test, train_rows=[3, 1, 4])
    np.testing.assert_allclose(signed, P.sum(axis=(0, 1)) / 12)
    np.testing.assert_allclose(absolute, np.abs(P).sum(axis=(0, 1)) / 12)
    np.testing.assert_allclose(some, np.abs(P[:, [3, 1, 4]]).sum(axis=(0, 1)) / 12)
    with pytest.raises(ValueError, match="aggregate must be"):
        feature_influence(explainer, X_test, y_test, aggregate="max")


def test_feature_display_bars_and_names():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10))
    explainer = InfluenceExplainer(model).fit(X[:200], y[:200])
    fig, ax = plt.subplots()
    display = FeatureInfluenceDisplay.from_estimator(
        explainer, X[300:305], y[300:305], aggregate="signed", max_features=6, ax=ax
    )
    assert display.ax_ is ax
    scores = display.feature_scores
    order = np.argsort(-np.abs(scores), kind="stable")[:6]
    np.testing.assert_array_equal(display.shown_, order)
    widths = [bar.get_width() for bar in display.bars_]
    np.testing.assert_array_equal(widths, scores[order])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    top_first = [labels[i] for i in np.argsort([-b.get_y() for b in display.bars_])]
    assert top_first == list(X.columns[order])
    # Signed bars: red raises the test loss, blue lowers it.
    for bar, value in zip(display.bars_, scores[order]):
        expected = "tab:red" if value > 0 else "tab:blue"
        assert to_rgba(bar.get_facecolor()) == to_rgba(expected)


def test_feature_display_from_predictions():
    scores = pd.Series([0.5, -2.0, 1.0], index=["a", "b", "c"])
    display = FeatureInfluenceDisplay.from_predictions(scores, alpha=0.5)
    assert [b.get_width() for b in display.bars_] == [-2.0, 1.0, 0.5]
    assert display.bars_[0].get_alpha() == 0.5
    assert list(display.feature_names) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 feature names for 3 scores"):
        FeatureInfluenceDisplay.from_predictions([1.0, 2.0, 3.0], ["a", "b"])


def test_feature_display_title_and_names_from_a_dataframe():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = pd.DataFrame(scale(X), columns=X.columns)
    explainer = InfluenceExplainer(LogisticRegression(C=0.1, tol=1e-10))
    explainer.fit(X[:200], y[:200])
    display = FeatureInfluenceDisplay.from_estimator(
        explainer, X[300:310], y[300:310], max_features=8
    )
    ax = display.ax_
    assert ax.get_title() == "Which features of the training rows drive the test loss"
    assert ax.get_xlabel().startswith("How much moving this feature of the training")
    assert "I_pert" not in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert set(labels) <= set(X.columns) and len(labels) == 8
    top_first = [labels[i] for i in np.argsort([-b.get_y() for b in display.bars_])]
    assert top_first == list(X.columns[display.shown_])
    assert _inside_figure(display.figure_, _axes_texts(ax)) == []


def test_feature_display_names_from_a_column_transformer():
    X, y, explainer = _mixed_frame()
    display = FeatureInfluenceDisplay.from_estimator(
        explainer, X[200:260], y[200:260], aggregate="signed"
    )
    names = explainer.estimator_[0].get_feature_names_out()
    assert list(display.feature_names) == list(names)
    labels = [t.get_text() for t in display.ax_.get_yticklabels()]
    assert sorted(labels) == sorted(names)  # 6 features, all shown
    assert "cat__size_small" in labels and "num__mean radius" in labels
    assert display.ax_.get_xlabel().startswith("How the test loss changes when")
    assert display.ax_.get_title().startswith("Which features")
    assert _inside_figure(display.figure_, _axes_texts(display.ax_)) == []


@pytest.mark.parametrize(
    "name", ["_loo", "_influential", "_mislabel", "_features", "_lds"]
)
def test_docstring_examples(name):
    module = importlib.import_module(f"skinfluence.plotting.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_influential_bars_refuse_x_train_with_strings_naming_the_column():
    X, y, explainer = _mixed_frame()
    with pytest.raises(ValueError, match=r"not numbers \(size\).*X_train=None"):
        InfluentialExamplesDisplay.from_estimator(
            explainer, X.iloc[[300]], y.iloc[[300]], k=3, X_train=X[:200]
        )
    with pytest.raises(ValueError, match="X_train has 100 rows"):
        InfluentialExamplesDisplay.from_estimator(
            explainer, X.iloc[[300]], y.iloc[[300]], k=3, X_train=X[:100]
        )
    # The numeric columns alone are drawn as given.
    numeric = X.columns[:4]
    display = InfluentialExamplesDisplay.from_estimator(
        explainer, X.iloc[[300]], y.iloc[[300]], k=3, X_train=X[:200][numeric]
    )
    assert list(display.feature_names) == list(numeric)


def test_titles_wrap_to_a_narrow_axes_of_the_callers():
    rng = np.random.default_rng(0)
    scores, flipped = rng.normal(size=178), rng.random(178) < 0.1
    alone = MislabelCurveDisplay.from_predictions(scores, flipped)
    assert alone.ax_.get_title().count("\n") == 1  # a figure of its own: as written
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    display = MislabelCurveDisplay.from_predictions(scores, flipped, ax=axes[1])
    title = display.ax_.title
    assert title.get_text().count("\n") >= 2
    fig.canvas.draw()
    box, ax_box = title.get_window_extent(), axes[1].get_window_extent()
    assert ax_box.x0 - 1 <= box.x0 and box.x1 <= ax_box.x1 + 1
    plt.close("all")
