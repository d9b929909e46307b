"""The debug panel shows what core computed: variants, per-result raw and score, warnings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtTest import QAbstractItemModelTester

from gallery_app.core.calibrate import Calibration, model_preset
from gallery_app.core.search import PromptVariant, SearchHits
from gallery_app.ui.debug_panel import THUMBNAIL_SIZE, DebugPanel, ResultsTableModel

# Qt warnings (the model tester reports through them) fail the test.
pytestmark = pytest.mark.qt_log_level_fail("WARNING")

MODEL = model_preset(math.log(117.0), -12.9)  # T = 117, c ~ 0.110
COLUMNS = ResultsTableModel


def make_hits(raw: np.ndarray, query: str = "dog") -> SearchHits:
    variants = (
        PromptVariant("dog", "a photo of dog.", 1.0),
        PromptVariant("puppy", "a photo of puppy.", 0.9, "dog -> puppy"),
        PromptVariant("pet", "a photo of pet.", 0.6, "dog -> pet"),
    )
    raw = np.asarray(raw, dtype=np.float32).reshape(-1, len(variants))
    n = raw.shape[0]
    return SearchHits(
        query,
        variants,
        np.arange(100, 100 + n, dtype=np.int64),
        tuple(f"/photos/img_{i:03d}.jpg" for i in range(n)),
        raw,
    )


def healthy_hits(n: int = 12) -> SearchHits:
    rng = np.random.default_rng(7)
    return make_hits(rng.uniform(0.0, 0.2, (n, 3)))


@pytest.fixture
def panel(qtbot):
    widget = DebugPanel()
    qtbot.addWidget(widget)
    # Checks every signal and answer of the model from here on; problems are Qt warnings.
    tester = QAbstractItemModelTester(
        widget.table_model(), QAbstractItemModelTester.FailureReportingMode.Warning
    )
    yield widget
    del tester


def column(model, col: int, role=Qt.ItemDataRole.DisplayRole) -> list:
    return [model.data(model.index(row, col), role) for row in range(model.rowCount())]


def test_rows_are_the_results_in_ranking_order(panel):
    hits = healthy_hits()
    results = hits.rank(MODEL)
    panel.show_search(hits, results, MODEL)
    model = panel.table_model()
    assert model.rowCount() == len(results) == 12
    assert (
        model.columnCount() == COLUMNS.FIRST_VARIANT + 3
    )  # and one per variant: its own cosine and score
    assert column(model, COLUMNS.FILE) == [r.path.rsplit("/", 1)[1] for r in results]
    assert column(model, COLUMNS.VARIANT) == [r.variant for r in results]
    assert column(model, COLUMNS.RAW) == [f"{r.raw:.4f}" for r in results]
    assert column(model, COLUMNS.SCORE) == [f"{r.score:.4f}" for r in results]
    assert column(model, COLUMNS.RAW, COLUMNS.SortRole) == [r.raw for r in results]
    assert column(model, COLUMNS.SCORE, COLUMNS.SortRole) == [r.score for r in results]
    assert column(model, COLUMNS.FILE, Qt.ItemDataRole.ToolTipRole) == [r.path for r in results]
    assert model.results() == results


def test_each_variant_has_its_own_cosine_and_score_column(panel):
    hits = healthy_hits()
    results = hits.rank(MODEL)
    panel.show_search(hits, results, MODEL)
    model = panel.table_model()
    headers = [
        model.headerData(COLUMNS.FIRST_VARIANT + i, Qt.Orientation.Horizontal) for i in range(3)
    ]
    assert headers == ["dog", "puppy", "pet"]
    own = hits.variant_cosines([r.position for r in results])
    for i in range(3):
        np.testing.assert_allclose(
            column(model, COLUMNS.FIRST_VARIANT + i, COLUMNS.SortRole), own[:, i]
        )
        assert column(model, COLUMNS.FIRST_VARIANT + i) == [
            f"{cos:.4f} → {MODEL.score(cos):.4f}" for cos in own[:, i].tolist()
        ]
    model.sort(COLUMNS.FIRST_VARIANT + 1, Qt.SortOrder.DescendingOrder)  # by puppy's own cosine
    assert column(model, COLUMNS.FIRST_VARIANT + 1, COLUMNS.SortRole) == sorted(
        own[:, 1].tolist(), reverse=True
    )


def test_sorting_keeps_persistent_indexes_on_their_results(panel):
    hits = healthy_hits()
    results = hits.rank(MODEL)
    panel.show_search(hits, results, MODEL)
    model = panel.table_model()
    last = QPersistentModelIndex(model.index(len(results) - 1, COLUMNS.FILE))
    model.sort(COLUMNS.SCORE, Qt.SortOrder.AscendingOrder)
    assert last.row() == 0  # the lowest-ranked result moved to the top, and its index with it
    assert last.data() == results[-1].path.rsplit("/", 1)[1]
    assert model.results() == results  # the ranking itself is unchanged


def test_sorting_by_score_and_raw_is_numeric(panel):
    # Scores from ~0.09 to ~0.91; sorting compares floats, not the text.
    hits = make_hits(np.repeat(np.linspace(0.09, 0.13, 10), 3))
    results = hits.rank(MODEL)
    panel.show_search(hits, results, MODEL)
    table = panel.table_model()

    table.sort(COLUMNS.SCORE, Qt.SortOrder.DescendingOrder)
    scores = [float(s) for s in column(table, COLUMNS.SCORE)]
    assert scores == sorted(scores, reverse=True)
    assert column(table, COLUMNS.SCORE, COLUMNS.SortRole) == sorted(
        (r.score for r in results), reverse=True
    )

    table.sort(COLUMNS.SCORE, Qt.SortOrder.AscendingOrder)
    assert column(table, COLUMNS.SCORE, COLUMNS.SortRole) == sorted(r.score for r in results)

    table.sort(COLUMNS.RAW, Qt.SortOrder.AscendingOrder)
    assert column(table, COLUMNS.RAW, COLUMNS.SortRole) == sorted(r.raw for r in results)

    # Sorting by the thumbnail column restores the ranking.
    table.sort(COLUMNS.THUMBNAIL, Qt.SortOrder.AscendingOrder)
    assert column(table, COLUMNS.FILE) == [r.path.rsplit("/", 1)[1] for r in results]


def test_summary_shows_min_mean_max_std_of_the_results_raw(panel):
    hits = healthy_hits()
    results = hits.rank(MODEL)
    panel.show_search(hits, results, MODEL)
    raw = np.array([r.raw for r in results])
    text = panel.summary_text()
    assert f"{len(results)} results" in text
    for name, value in (
        ("min", raw.min()),
        ("mean", raw.mean()),
        ("max", raw.max()),
        ("std", raw.std()),
    ):
        assert f"{name} {value:.4f}" in text


def test_healthy_results_have_no_warnings(panel):
    hits = make_hits(np.repeat(np.linspace(0.0, 0.2, 12), 3))
    panel.show_search(hits, hits.rank(MODEL), MODEL)
    assert panel.warning_texts() == []


def test_all_negative_results_warn_about_the_pipeline(panel):
    hits = make_hits(np.linspace(-0.0918, -0.0011, 30))
    panel.show_search(hits, hits.rank(MODEL), MODEL)
    warnings = panel.warning_texts()
    assert len(warnings) == 1
    assert 'padding="max_length"' in warnings[0]
    assert "different checkpoints" in warnings[0]


def test_saturation_warning_carries_the_suggestion(panel):
    hits = make_hits(np.repeat(np.linspace(-0.05, 0.05, 12), 3))
    panel.show_search(hits, hits.rank(MODEL), MODEL)
    (warning,) = panel.warning_texts()
    assert "below 0.02" in warning
    assert "Try T = " in warning and "c = " in warning


def test_variants_are_listed_with_weights(panel):
    hits = healthy_hits()
    panel.show_search(hits, hits.rank(MODEL), MODEL)
    assert panel.variant_rows() == [("dog", 1.0), ("puppy", 0.9), ("pet", 0.6)]


def test_calibration_text_shows_preset_t_and_c(panel):
    hits = healthy_hits()
    panel.show_search(hits, hits.rank(MODEL), MODEL)
    text = panel.calibration_text()
    assert "model" in text
    assert f"T = {MODEL.temperature:.2f}" in text
    assert f"c = {MODEL.centre:.4f}" in text


def test_recalibration_updates_scores_and_calibration(panel):
    hits = healthy_hits()
    panel.show_search(hits, hits.rank(MODEL), MODEL)
    custom = MODEL.with_overrides(temperature=20.0, centre=0.05)
    results = hits.rank(custom)
    panel.show_search(hits, results, custom)
    model = panel.table_model()
    assert column(model, COLUMNS.SCORE, COLUMNS.SortRole) == [r.score for r in results]
    assert column(model, COLUMNS.RAW, COLUMNS.SortRole) == [r.raw for r in results]
    assert "custom" in panel.calibration_text()
    assert "T = 20.00" in panel.calibration_text()
    assert "c = 0.0500" in panel.calibration_text()


def test_clear_empties_everything(panel):
    hits = make_hits(np.linspace(-0.09, -0.01, 30))
    panel.show_search(hits, hits.rank(MODEL), MODEL)
    panel.clear()
    assert panel.table_model().rowCount() == 0
    assert panel.variant_rows() == []
    assert panel.warning_texts() == []
    assert panel.summary_text() == ""


def test_no_results(panel):
    hits = make_hits(np.zeros((0, 3)))
    panel.show_search(hits, [], MODEL)
    assert panel.table_model().rowCount() == 0
    assert panel.summary_text() == "No results."
    assert panel.warning_texts() == []


def test_thumbnails_come_from_the_callback_and_refresh(qtbot):
    ready: dict[str, QPixmap] = {}
    asked: list[str] = []

    def thumbnail_for(path: str) -> QPixmap | None:
        asked.append(path)
        return ready.get(path)

    panel = DebugPanel(thumbnail_for)
    qtbot.addWidget(panel)
    tester = QAbstractItemModelTester(
        panel.table_model(), QAbstractItemModelTester.FailureReportingMode.Warning
    )
    hits = healthy_hits(3)
    results = hits.rank(Calibration("custom", 10.0, 0.1))
    panel.show_search(hits, results, MODEL)
    model = panel.table_model()
    first = model.index(0, COLUMNS.THUMBNAIL)
    assert model.data(first, Qt.ItemDataRole.DecorationRole) is None
    assert model.data(model.index(0, COLUMNS.FILE), Qt.ItemDataRole.DecorationRole) is None

    big = QPixmap(160, 120)
    big.fill(QColor("teal"))
    ready[results[0].path] = big
    with qtbot.waitSignal(model.dataChanged) as blocker:
        panel.refresh_thumbnails()
    top_left, bottom_right, roles = blocker.args
    assert (top_left.row(), top_left.column()) == (0, COLUMNS.THUMBNAIL)
    assert (bottom_right.row(), bottom_right.column()) == (2, COLUMNS.THUMBNAIL)
    assert Qt.ItemDataRole.DecorationRole in roles

    shown = model.data(first, Qt.ItemDataRole.DecorationRole)
    assert isinstance(shown, QPixmap)
    assert max(shown.width(), shown.height()) == THUMBNAIL_SIZE
    # Scaled once, then reused until the next refresh.
    asked.clear()
    model.data(first, Qt.ItemDataRole.DecorationRole)
    assert asked == []
    del tester


def test_refresh_with_no_rows_emits_nothing(panel, qtbot):
    with qtbot.assertNotEmitted(panel.table_model().dataChanged):
        panel.refresh_thumbnails()


def test_model_answers_nothing_outside_its_rows(panel):
    model = panel.table_model()
    assert model.rowCount(model.index(0, 0)) == 0
    assert model.data(QModelIndex()) is None
    assert model.headerData(COLUMNS.SCORE, Qt.Orientation.Horizontal) == "Score"


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen QPA
def test_panel_renders_offscreen(panel, qtbot, tmp_path):
    hits = make_hits(np.linspace(-0.0918, -0.0011, 30))
    panel.show_search(hits, hits.rank(MODEL), MODEL)
    panel.resize(520, 640)
    panel.show()
    qtbot.waitExposed(panel)
    shot = panel.grab()
    assert not shot.isNull()
    assert shot.save(str(tmp_path / "debug_panel.png"))
