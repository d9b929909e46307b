"""Find similar and queries of parts in the window: the grid, the viewer and the debug panel
show what core computes, on the scale each is computed on."""

from __future__ import annotations

import numpy as np
import pytest
from window_helpers import WAIT_MS, index_folder, search, session

from gallery_app.core.calibrate import image_calibration
from gallery_app.core.search import CombinedHits, Searcher
from gallery_app.core.similar import photo_query
from gallery_app.ui.debug_panel import ResultsTableModel

pytestmark = pytest.mark.qt_log_level_fail("WARNING")


def choose_from_context_menu(window, row: int, action_text: str) -> None:
    """Pick an action of a thumbnail's right-click menu (built as a right-click builds it)."""
    menu = window.results_panel.grid_menu(window.grid_model.index(row))
    assert menu is not None
    (action,) = [a for a in menu.actions() if a.text() == action_text]
    action.trigger()


def column(table, col: int) -> list[float]:
    return [table.index(row, col).data(table.SortRole) for row in range(table.rowCount())]


def test_find_similar_from_the_grid_ranks_on_the_image_scale(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(8)[0].parent)
    query_item = window.grid_model.item(2)
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        choose_from_context_menu(window, 2, "Find similar")
    window.search.set_show_all(True)

    s = session(window)
    expected = (
        Searcher(s.library, s.encoder)
        .search_image(photo_query(s.library, query_item.image_id))
        .rank(image_calibration(), top_k=None)
    )
    grid = window.grid_model.items()
    assert query_item.image_id not in {item.image_id for item in grid}  # left out
    assert [item.path for item in grid] == [r.path for r in expected] and len(grid) == 7
    np.testing.assert_allclose([item.score for item in grid], [r.score for r in expected])
    np.testing.assert_allclose([item.raw for item in grid], [r.raw for r in expected])

    panel = window.debug_panel
    assert "image-to-image scale" in panel.calibration_text()
    assert "T = 15.00" in panel.calibration_text()
    table = panel.table_model()
    np.testing.assert_allclose(column(table, ResultsTableModel.RAW), [r.raw for r in expected])
    np.testing.assert_allclose(column(table, ResultsTableModel.SCORE), [r.score for r in expected])
    header = window.results_panel.header_label.text()
    assert "image-to-image scale" in header and query_item.path.rsplit("/", 1)[1] in header
    assert window.results_panel.search_box.text() == ""

    # The text scale's Sharpness does not move image scores.
    bar = window.calibration_bar
    bar.temperature_slider.setValue(bar.temperature_slider.value() + 40)
    np.testing.assert_allclose(
        [item.score for item in window.grid_model.items()], [r.score for r in expected]
    )
    described = window.search.describe(window.grid_model.item(0))
    assert "image-to-image scale" in described and f"{expected[0].raw:.3f}" in described

    # Typing words goes back to a text search.
    search(qtbot, window, "red car")
    assert window.search.image_id is None
    assert window.search.hits is not None and window.search.hits.own_calibration is None


def test_find_similar_from_the_viewer(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(5)[0].parent)
    panel = window.results_panel
    panel.open_row(1)
    viewed = panel.viewer.current()
    assert viewed is not None
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        panel.similar_button.click()
    assert panel.stack.currentWidget() is panel.grid  # back to the results
    assert window.search.image_id == viewed.image_id
    window.search.set_show_all(True)
    assert len(window.grid_model.items()) == 4
    assert viewed.image_id not in {item.image_id for item in window.grid_model.items()}


def test_a_query_of_parts_shows_each_part_beside_the_combined_score(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(8)[0].parent)
    search(qtbot, window, "red car -people")
    window.search.set_show_all(True)
    hits = window.search.hits
    assert isinstance(hits, CombinedHits)

    s = session(window)
    expected = (
        Searcher(s.library, s.encoder, s.searcher.expander)
        .search_query("red car -people")
        .rank(window.calibration(), top_k=None)
    )
    grid = window.grid_model.items()
    assert [item.path for item in grid] == [r.path for r in expected]
    np.testing.assert_allclose([item.score for item in grid], [r.score for r in expected])

    table = window.debug_panel.table_model()
    first = len(ResultsTableModel._HEADERS)
    assert [table.headerData(first + i, _horizontal()) for i in range(2)] == [
        "red car",
        "people (not)",
    ]
    for part in range(2):
        np.testing.assert_allclose(
            column(table, first + part), [r.parts[part].raw for r in expected], atol=1e-7
        )
        shown = [table.index(row, first + part).data() for row in range(table.rowCount())]
        assert shown == [f"{r.parts[part].raw:.4f} → {r.parts[part].score:.4f}" for r in expected]
    np.testing.assert_allclose(column(table, ResultsTableModel.SCORE), [r.score for r in expected])
    assert "(1 − P(people))" in window.debug_panel.calibration_text()
    described = window.search.describe(grid[0])
    assert "Each part on its own" in described and "not people" in described


def _horizontal():
    from PySide6.QtCore import Qt

    return Qt.Orientation.Horizontal
