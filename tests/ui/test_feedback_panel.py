"""Teach it your photos in the window: mark in the debug panel and the viewer, fit, apply, clear."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QMessageBox
from window_helpers import WAIT_MS, index_folder, search, session

from gallery_app.core.calibrate import model_preset
from gallery_app.core.feedback import MIN_MARKS_EACH, fit_marks
from gallery_app.core.search import SearchResult
from gallery_app.ui import wording
from gallery_app.ui.debug_panel import ResultsTableModel
from gallery_app.ui.feedback_controller import FitTask


def select_rows(window, rows: list[int]) -> list[int]:
    """Select debug-table rows as a user would; returns their image ids."""
    view = window.debug_panel.table_view()
    selection = view.selectionModel()
    selection.clear()
    for row in rows:
        selection.select(
            view.model().index(row, 0),
            QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
        )
    return [r.image_id for r in window.debug_panel.selected_results()]


def click_and_wait(qtbot, window, button) -> None:
    with qtbot.waitSignal(window.feedback.marks_changed, timeout=WAIT_MS):
        button.click()


def marks_column(window) -> dict[int, str]:
    table = window.debug_panel.table_model()
    return {
        table.result_at(row).image_id: table.index(row, table.MARK).data()
        for row in range(table.rowCount())
    }


def panel_of(window):
    return window.debug_panel.findChild(type_of_panel())


def type_of_panel():
    from gallery_app.ui.feedback_panel import FeedbackPanel

    return FeedbackPanel


def bar_of(window):
    from gallery_app.ui.feedback_panel import MarkBar

    return window.results_panel.viewer.findChild(MarkBar)


def test_marks_from_the_debug_panel_and_the_viewer_are_shown_and_survive_reopening(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(8)[0].parent)
    search(qtbot, window, "Dog")
    panel = panel_of(window)
    relevant = select_rows(window, [0, 1])
    click_and_wait(qtbot, window, panel.relevant_button)
    not_relevant = select_rows(window, [5])
    click_and_wait(qtbot, window, panel.not_relevant_button)
    shown = marks_column(window)
    assert {i: shown[i] for i in relevant + not_relevant} == {
        **dict.fromkeys(relevant, "✓"),
        **dict.fromkeys(not_relevant, "✗"),
    }
    assert sum(1 for text in shown.values() if text) == 3
    catalog = session(window).library.catalog
    stored = {(m.image_id, m.query, m.relevant) for m in catalog.marks()}
    assert stored == {(i, "dog", True) for i in relevant} | {(not_relevant[0], "dog", False)}
    assert "“dog”: 2 ✓ · 1 ✗" in panel.counts_text()

    # The viewer shows the photo's mark; N marks it not relevant, N again takes it back.
    window.search.set_show_all(True)
    grid = window.grid_model.items()
    row = next(n for n, item in enumerate(grid) if item.image_id not in relevant + not_relevant)
    window.results_panel.open_row(row)
    viewer, bar = window.results_panel.viewer, bar_of(window)
    assert bar.isVisibleTo(viewer) and bar.mark() is None
    with qtbot.waitSignal(window.feedback.marks_changed, timeout=WAIT_MS):
        qtbot.keyClick(viewer, Qt.Key.Key_N)
    assert bar.mark() is False and bar.not_relevant_button.isChecked()
    assert marks_column(window)[grid[row].image_id] == "✗"
    with qtbot.waitSignal(window.feedback.marks_changed, timeout=WAIT_MS):
        qtbot.keyClick(viewer, Qt.Key.Key_N)
    assert bar.mark() is None and marks_column(window)[grid[row].image_id] == ""
    viewer.step(-row)  # to the first result, marked relevant in the table
    assert bar.mark() is (grid[0].image_id in relevant)
    window.close()

    again = open_window(str(tiny_model_dir))
    qtbot.waitUntil(lambda: len(again.feedback.marks) == 3, timeout=WAIT_MS)
    search(qtbot, again, "dog")
    shown = marks_column(again)
    assert [shown[i] for i in relevant + not_relevant] == ["✓", "✓", "✗"]


def mark_enough(qtbot, window) -> None:
    panel = panel_of(window)
    select_rows(window, list(range(MIN_MARKS_EACH)))
    click_and_wait(qtbot, window, panel.relevant_button)
    count = window.debug_panel.table_model().rowCount()
    select_rows(window, list(range(count - MIN_MARKS_EACH, count)))
    click_and_wait(qtbot, window, panel.not_relevant_button)


def test_too_few_marks_say_how_many_more_and_fit_stays_off(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(8)[0].parent)
    search(qtbot, window, "dog")
    panel = panel_of(window)
    select_rows(window, [0])
    click_and_wait(qtbot, window, panel.relevant_button)
    assert not panel.fit_button.isEnabled()
    assert f"mark {MIN_MARKS_EACH - 1} more relevant and {MIN_MARKS_EACH} more not relevant" in (
        panel.fit_text()
    )
    with qtbot.waitSignal(window.feedback.fit_failed, timeout=WAIT_MS) as failed:
        assert window.feedback.fit() is False
    assert "you have 1 and 0" in failed.args[0]
    assert not window.runner.running(FitTask)


def test_fit_runs_on_a_worker_shows_before_after_and_apply_makes_it_the_calibration(
    qtbot, open_window, tiny_model_dir, make_images, monkeypatch
):
    import gallery_app.ui.feedback_controller as controller_module
    from gallery_app.core.settings_store import load_settings

    fitted_on: list[threading.Thread] = []
    real_fit = controller_module.fit_marks

    def recording_fit(*args, **kwargs):
        fitted_on.append(threading.current_thread())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(controller_module, "fit_marks", recording_fit)
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(10)[0].parent)
    search(qtbot, window, "dog")
    mark_enough(qtbot, window)
    panel, controller = panel_of(window), window.feedback
    assert panel.fit_button.isEnabled() and not panel.apply_button.isEnabled()
    before = window.calibration()

    with qtbot.waitSignal(controller.fitted, timeout=WAIT_MS) as fitted:
        panel.fit_button.click()
        # The click returned with the fit handed to the TaskRunner, not done by this thread.
        assert window.runner.running(FitTask) and controller.outcome is None
        assert panel.fit_button.text() == "Fitting…" and not panel.fit_button.isEnabled()
    assert fitted_on and threading.main_thread() not in fitted_on
    outcome = fitted.args[0]

    s = session(window)
    expected, _ = fit_marks(
        s.searcher,
        s.library.catalog.marks(),
        before,
        model_preset(s.info.logit_scale, s.info.logit_bias),
    )
    assert outcome.feedback.calibration == expected.calibration
    assert outcome.current == before
    text = panel.fit_text()
    assert (
        f"Fitted on {2 * MIN_MARKS_EACH} marks ({MIN_MARKS_EACH} relevant, {MIN_MARKS_EACH} "
        "not relevant) across 1 query" in text
    )
    fit = expected.calibration
    assert f"T = {fit.temperature:.2f}, c = {fit.centre:.4f}" in text
    assert f"now T = {before.temperature:.2f}, c = {before.centre:.4f}" in text
    # The table's scores are the marked photos' scores in the search, now and fitted.
    now = {r.path: r.score for r in window.search.results}
    rows = panel.fit_rows()
    assert len(rows) == 2 * MIN_MARKS_EACH
    after = s.searcher.search("dog", top_k=None).rank(fit, top_k=None)
    after_by_name = {r.path.rsplit("/", 1)[-1]: r.score for r in after}
    now_by_name = {p.rsplit("/", 1)[-1]: score for p, score in now.items()}
    for name, query, mark, _rank, now_text, fitted_text in rows:
        assert query == "dog" and mark in ("✓", "✗")
        assert now_text == wording.percent(now_by_name[name])
        assert fitted_text == wording.percent(after_by_name[name])
    assert panel.apply_button.isEnabled()

    with qtbot.waitSignal(window.results_shown, timeout=WAIT_MS):
        panel.apply_button.click()
    assert window.calibration() == fit
    assert window.calibration_bar.preset_box.currentData() == "custom"
    saved = load_settings()
    assert (saved.preset, saved.custom_temperature, saved.custom_centre) == (
        "custom",
        fit.temperature,
        fit.centre,
    )
    # The grid is scored with it now.
    assert [r.score for r in window.search.results] == pytest.approx(
        [r.score for r in after][: len(window.search.results)]
    )
    assert window.calibration_bar.undo_button.isVisibleTo(window)

    # A mark changed after the fit: that fit no longer holds every mark, Apply goes off.
    select_rows(window, [MIN_MARKS_EACH])
    click_and_wait(qtbot, window, panel.relevant_button)
    assert not panel.apply_button.isEnabled() and not controller.apply()
    assert "fit again" in panel.stale_label.text()


def test_clearing_asks_first_then_forgets_this_query_or_all(
    qtbot, open_window, tiny_model_dir, make_images, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(6)[0].parent)
    panel, controller = panel_of(window), window.feedback
    for query in ("dog", "snow"):
        search(qtbot, window, query)
        select_rows(window, [0, 1])
        click_and_wait(qtbot, window, panel.relevant_button)
    assert controller.query_count == 2 and len(controller.marks) == 4

    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]
    asked: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *args: asked.append(args[2]) or answers.pop(0)
    )
    panel.clear_query_action.trigger()  # cancelled: nothing goes
    assert asked == ["Forget the 2 mark(s) for “snow”?"] and len(controller.marks) == 4
    with qtbot.waitSignal(controller.cleared, timeout=WAIT_MS) as cleared:
        panel.clear_query_action.trigger()
    assert cleared.args == [2]
    assert {m.query for m in session(window).library.catalog.marks()} == {"dog"}
    assert set(marks_column(window).values()) == {""}
    assert "2 marks forgotten" in panel.fit_text()

    answers[:] = [QMessageBox.StandardButton.Yes]
    with qtbot.waitSignal(controller.cleared, timeout=WAIT_MS):
        panel.clear_all_action.trigger()
    assert asked[-1] == "Forget all 2 marks in this library, for every query?"
    assert session(window).library.catalog.marks() == []
    assert controller.marks == [] and not panel.clear_all_action.isEnabled()


def result(image_id: int, score: float) -> SearchResult:
    return SearchResult(image_id, f"/p/{image_id}.jpg", score, score, "dog", "a dog", 1.0)


def test_the_mark_column_shows_and_sorts_marks(qapp):
    model = ResultsTableModel()
    model.set_results([result(1, 0.9), result(2, 0.5), result(3, 0.1)])
    model.set_marks({3: True, 1: False})
    column = [model.index(row, model.MARK).data() for row in range(3)]
    assert column == ["✗", "", "✓"]
    model.sort(model.MARK, Qt.SortOrder.DescendingOrder)
    assert [model.result_at(row).image_id for row in range(3)] == [3, 2, 1]
    model.set_marks({2: True})  # a new mark re-sorts a table sorted by marks
    assert model.result_at(0).image_id == 2
