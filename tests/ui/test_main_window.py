"""The main window, driven like a user would: index, search, move the slider, cancel, close."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from window_helpers import WAIT_MS, _alive, index_folder, search, session

from gallery_app.core.search import Searcher
from gallery_app.ui.engine import PrecomputeTask


def test_results_appear_and_debug_table_matches_core(
    qtbot, open_window, tiny_model_dir, make_images, library_backend
):
    window = open_window(str(tiny_model_dir))
    photos = make_images(9)
    report = index_folder(qtbot, window, photos[0].parent)
    assert report.indexed == 9
    assert window.grid_model.rowCount() == 9  # the library, before any query
    assert window.library_panel.folder_list.count() == 1

    search(qtbot, window, "dog on the beach")
    window.search.set_show_all(True)
    grid = window.grid_model.items()
    assert len(grid) == 9 and all(item.score is not None for item in grid)

    s = session(window)
    core = Searcher(s.library, s.encoder, s.searcher.expander)
    expected = core.search("dog on the beach", top_k=500).rank(window.calibration(), top_k=None)
    assert [item.path for item in grid] == [r.path for r in expected]
    np.testing.assert_allclose([item.score for item in grid], [r.score for r in expected])

    table = window.debug_panel.table_model()
    assert table.rowCount() == len(expected)
    raw_column = [table.index(row, table.RAW).data(table.SortRole) for row in range(len(expected))]
    score_column = [
        table.index(row, table.SCORE).data(table.SortRole) for row in range(len(expected))
    ]
    np.testing.assert_allclose(raw_column, [r.raw for r in expected], atol=1e-7)
    np.testing.assert_allclose(score_column, [r.score for r in expected])


def test_hide_below_is_exact_over_the_whole_library_and_the_count_is_true(
    qtbot, open_window, tiny_model_dir, make_images
):
    from gallery_app.core.calibrate import calibrated_score

    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(30)[0].parent)
    s = session(window)
    search(qtbot, window, "dog on the beach")
    hits = window.search.hits
    assert hits.complete and len(hits.image_ids) == 30  # every photo, not a candidate pool
    assert hits.aggregate == "ensemble"
    cal = window.calibration()
    scores = sorted(r.score for r in window.search.results)
    cut = scores[len(scores) // 2]
    window.calibration_bar.min_score_box.setValue(int(cut * 100))
    min_score = window.settings.min_score
    core = Searcher(s.library, s.encoder, s.searcher.expander)
    expected = core.search("dog on the beach", top_k=None).rank(
        cal, top_k=None, min_score=min_score
    )
    assert [r.image_id for r in window.search.results] == [r.image_id for r in expected]
    assert window.results_panel.header.isVisible()
    assert window.statusBar().currentMessage().startswith(f"{len(expected)} result(s)")

    # The ensemble's score is the model's own sigmoid of cos(image, e); the debug panel
    # shows each word's own cosine beside it.
    table = window.debug_panel.table_model()
    first = window.search.results[0]
    assert first.score == pytest.approx(
        float(calibrated_score(first.raw, cal.temperature, cal.centre))
    )
    listed = [v.text for v in hits.listed]
    assert table.columnCount() == table.FIRST_VARIANT + len(listed)
    own = hits.variant_cosines([first.position])[0]
    row = next(r for r in range(table.rowCount()) if table.results()[r] == first)
    for i in range(len(listed)):
        assert table.index(row, table.FIRST_VARIANT + i).data(table.SortRole) == pytest.approx(
            float(own[i])
        )


def test_the_aggregate_choice_searches_again_and_is_remembered(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(4)[0].parent)
    search(qtbot, window, "dog on the beach")
    box = window.results_panel.aggregate_box
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        box.setCurrentIndex(box.findData("max"))
    assert window.search.hits.aggregate == "max"
    window.results_panel.expand_box.setChecked(False)
    assert not box.isEnabled()  # one word: nothing to combine
    window.close()
    again = open_window(str(tiny_model_dir))
    assert again.results_panel.aggregate() == "max" == again.search.aggregate


def test_slider_recalibrates_in_place_without_calling_the_encoder(
    qtbot, open_window, tiny_model_dir, make_images, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(6)[0].parent)
    search(qtbot, window, "red car")
    window.search.set_show_all(True)
    before = [item.score for item in window.grid_model.items()]
    hits = window.search.hits
    grid = window.results_panel.grid
    picked = window.grid_model.item(2).image_id
    grid.setCurrentIndex(window.grid_model.index(2))
    resets = []
    window.grid_model.modelReset.connect(lambda: resets.append(1))

    calls = []
    encoder = session(window).encoder
    monkeypatch.setattr(encoder, "encode_prompts", lambda *a: calls.append(a) or 1 / 0)
    monkeypatch.setattr(encoder, "encode_pixels", lambda *a: calls.append(a) or 1 / 0)
    bar = window.calibration_bar
    bar.temperature_slider.setValue(bar.temperature_slider.value() + 40)

    after = [item.score for item in window.grid_model.items()]
    assert calls == []
    assert window.calibration_state.preset == "custom"
    assert window.settings.preset == "model"  # the view changed, the saved one did not
    assert before != after
    assert window.search.hits is hits  # same raw cosines, re-ranked
    assert resets == []  # reordered in place: the selection follows its photo
    assert window.grid_model.item(grid.currentIndex().row()).image_id == picked
    assert bar.temperature_label.text() == f"{window.calibration().temperature:.0f}"
    assert f"{window.calibration().temperature:.1f}" in window.debug_panel.calibration_text()
    assert "changed" in bar.saved_label.text()  # and not saved

    bar.min_score_box.setValue(99)
    assert all(item.score >= 0.99 for item in window.grid_model.items())
    bar.min_score_box.setValue(100)  # nothing can score 100%: a message, not a blank grid
    assert window.grid_model.rowCount() == 0
    header = window.results_panel.header_label.text()
    assert "No photo scores 100% or more" in header and "Hide below" in header
    bar.reset_button.click()
    assert window.calibration_state.preset == "model"
    assert bar.saved_label.text() == ""


def test_saved_calibration_changes_only_on_save_and_can_be_undone(
    qtbot, open_window, tiny_model_dir
):
    from gallery_app.core.settings_store import UserSettings, load_settings, save_settings

    save_settings(UserSettings("custom", 33.0, 0.12))  # what `tune apply` wrote
    window = open_window(str(tiny_model_dir))
    bar = window.calibration_bar
    bar.temperature_slider.setValue(80)
    bar.preset_box.setCurrentIndex(bar.preset_box.findData("seed"))
    bar.temperature_slider.setValue(70)
    window.settings.flush()
    assert load_settings() == UserSettings("custom", 33.0, 0.12)  # nothing written
    assert not bar.undo_button.isVisibleTo(window)

    bar.save_button.click()
    saved = load_settings()
    assert (saved.preset, saved.custom_temperature) == ("custom", 70.0)
    assert bar.undo_button.isVisibleTo(window) and not bar.save_button.isEnabled()

    bar.undo_button.click()
    assert load_settings() == UserSettings("custom", 33.0, 0.12)
    assert window.calibration().temperature == 33.0  # the view follows the saved one back
    assert not bar.undo_button.isVisibleTo(window)


def test_settings_persist(qtbot, open_window, tiny_model_dir, store, tmp_path):
    window = open_window(str(tiny_model_dir))
    bar = window.calibration_bar
    bar.temperature_slider.setValue(42)
    bar.save_button.click()
    bar.min_score_box.setValue(25)
    window.results_panel.expand_box.setChecked(False)
    window.close()
    again = open_window(str(tiny_model_dir))
    assert again.settings.preset == "custom"
    assert again.calibration().temperature == 42.0
    assert again.calibration_bar.min_score_box.value() == 25
    assert not again.results_panel.expand_box.isChecked()


def test_indexing_reports_progress_and_cancel_stops_between_batches(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    photos = make_images(40)
    progress = []

    def on_progress(done, total, rate):
        progress.append((done, total))
        if done > 0:
            window.status_area.cancel_button.click()

    window.indexing_progress.connect(on_progress)
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS) as done:
        assert window.start_indexing([str(photos[0].parent)])
    report = done.args[0]
    assert report.cancelled
    assert 0 < report.indexed < 40
    assert progress[0] == (0, 40)
    assert window.status_area.progress_bar.isHidden()
    assert not window.library.indexing


def test_stale_search_results_are_dropped(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(4)[0].parent)
    search(qtbot, window, "snow")
    current = window.search.hits
    old_id = window.search.latest_request - 1
    window.search._on_answered(old_id, object(), True)  # an answer to an older request
    assert window.search.hits is current


def test_a_newer_query_supersedes_one_still_running(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(4)[0].parent)
    shown = []
    window.results_shown.connect(lambda: shown.append(window.search.hits.query))
    window.search.search("first query")
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        window.search.search("second query")
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=WAIT_MS)
    assert shown and shown[-1] == "second query"
    assert window.search.hits.query == "second query"


def test_typing_is_debounced_into_one_search(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(3)[0].parent)
    requests = []
    panel = window.results_panel
    panel.search_requested.connect(requests.append)
    with qtbot.waitSignal(window.results_shown, timeout=WAIT_MS):
        qtbot.keyClicks(panel.search_box, "sunset")
    assert requests == ["sunset"]
    qtbot.keyClick(panel.search_box, Qt.Key.Key_Escape)
    assert panel.search_box.text() == "" and window.search.hits is None
    assert all(item.score is None for item in window.grid_model.items())
    assert window.grid_model.rowCount() == 3  # back to the library


def test_model_unavailable_shows_banner_library_browses_and_folders_wait(
    qtbot, open_window, tiny_model_dir, make_images, tmp_path
):
    model = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, model)
    window = open_window(str(model))
    index_folder(qtbot, window, make_images(3)[0].parent)
    window.close()

    weights = model / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(b"broken")  # e.g. an interrupted copy
    window = open_window(str(model), wait_ready=False)
    with qtbot.waitSignals([window.model_missing, window.library_shown], timeout=WAIT_MS):
        window.start_engine()
    panel = window.results_panel
    assert panel.banner.isVisible()
    assert "my-model" in panel.banner_label.text()
    assert "could not be loaded" in panel.banner_label.text()
    assert window.grid_model.rowCount() == 3  # browsing needs no model
    window.results_panel.search_box.setText("dog")
    window.run_search()
    assert "failed to load" in window.statusBar().currentMessage()  # not "still loading"

    later = make_images(2, folder="later")[0].parent
    assert window.start_indexing([str(later)])  # queued, not thrown away
    rows = {r.path: r.state for r in window.library.rows()}
    assert rows[str(later)] == "waiting for the model"

    weights.write_bytes(good)
    with qtbot.waitSignal(window.library.idle, timeout=WAIT_MS):
        window.results_panel.retry_button.click()
    qtbot.waitUntil(lambda: not window.library.busy, timeout=WAIT_MS)
    assert not panel.banner.isVisible()
    qtbot.waitUntil(lambda: len(window.search.library_items) == 5, timeout=WAIT_MS)
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        window.run_search()  # the query typed while the model was missing, over all 5
    assert len(window.search.results) == 5


def test_retry_pressed_while_the_failed_load_winds_down_loads_again(
    qtbot, open_window, tiny_model_dir, tmp_path
):
    # The banner (and its Retry) shows on `unavailable`, before the failed load's task has
    # finished: a click then must load again once it has, not be dropped.
    model = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(b"broken")
    window = open_window(str(model), wait_ready=False)
    clicks = []

    def retry_at_once(_state: str, _message: str) -> None:
        if not clicks:
            weights.write_bytes(good)
            clicks.append(window.model.start())

    window.model.unavailable.connect(retry_at_once)
    with qtbot.waitSignal(window.model.ready, timeout=WAIT_MS):
        window.start_engine()
    assert clicks == [True]
    assert not window.results_panel.banner.isVisible()


def test_a_missing_model_folder_says_missing(qtbot, open_window, tmp_path):
    window = open_window(str(tmp_path / "no-such-model"), wait_ready=False)
    with qtbot.waitSignal(window.model_missing, timeout=WAIT_MS):
        window.start_engine()
    assert "cannot be found" in window.results_panel.banner_label.text()


def test_closing_during_indexing_cancels_and_waits(
    qtbot, open_window, tiny_model_dir, make_images, thread_registry
):
    window = open_window(str(tiny_model_dir))
    photos = make_images(60)
    assert window.start_indexing([str(photos[0].parent)])
    window.close()
    assert [t for t in list(thread_registry) if _alive(t) and t.isRunning()] == []
    assert window.runner.running() == []


def test_window_is_shown_before_torch_is_imported(tmp_path):
    code = textwrap.dedent(
        f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication
        from gallery_app.ui.main_window import MainWindow
        app = QApplication([])
        store = QSettings({str(tmp_path / "s.ini")!r}, QSettings.Format.IniFormat)
        window = MainWindow({tmp_path / "data"!r}, "unused", store)
        window.show()
        app.processEvents()
        print("visible", window.isVisible(), "torch", "torch" in sys.modules,
              "transformers", "transformers" in sys.modules)
        window.close()
        """
    ).replace("PosixPath(", "__import__('pathlib').Path(")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["visible", "True", "torch", "False", "transformers", "False"]


def test_removing_a_folder_asks_then_empties_library_and_results(
    qtbot, open_window, tiny_model_dir, make_images, monkeypatch, library_backend
):
    window = open_window(str(tiny_model_dir))
    folder = make_images(3)[0].parent
    index_folder(qtbot, window, folder)
    panel = window.library_panel
    item = panel.folder_list.item(0)
    assert item.toolTip() == str(folder)
    assert item.text().splitlines() == [folder.name, "3 photos · up to date"]
    search(qtbot, window, "dog")
    assert window.search.results
    panel.folder_list.setCurrentRow(0)
    from PySide6.QtWidgets import QMessageBox

    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *args: asked.append(args[2]) or answers.pop(0)
    )
    panel.remove_folder_button.click()  # cancelled: nothing is removed
    assert str(folder) in asked[0] and not window.library.busy
    with qtbot.waitSignals([window.search_done, window.library.idle], timeout=WAIT_MS):
        panel.remove_folder_button.click()
    assert panel.folder_list.count() == 0
    assert window.search.results == []  # the query was run again over what is left
    window.clear_search()
    assert window.grid_model.rowCount() == 0
    assert window.results_panel.stack.currentWidget() is window.results_panel.empty_label


def test_first_download_shows_progress_then_a_clear_banner_offline(qtbot, open_window, monkeypatch):
    """A hub id not in the cache is downloaded with progress in the status bar."""
    import gallery_app.core.download as download
    from gallery_app.core.download import DownloadProgress
    from gallery_app.core.errors import ModelUnavailable

    def fake_download(model_id, progress=None, cancelled=None):
        for done in (0, 400_000_000, 800_000_000):
            progress(DownloadProgress(done, 800_000_000, "model.safetensors"))
        raise ModelUnavailable(f"Downloading model.safetensors of {model_id} failed: reset")

    monkeypatch.setattr(download, "is_cached", lambda model_id: False)
    monkeypatch.setattr(download, "download_model", fake_download)
    window = open_window("someone/siglip-not-cached", wait_ready=False)
    messages = []
    window.statusBar().messageChanged.connect(messages.append)
    with qtbot.waitSignal(window.model_missing, timeout=WAIT_MS):
        window.start_engine()
    assert "Downloading model.safetensors: 400 of 800 MB" in messages
    assert "Model downloaded; loading it…" in messages
    panel = window.results_panel
    assert panel.banner.isVisible() and "failed: reset" in panel.banner_label.text()
    assert window.status_area.progress_bar.isHidden()


def test_uncaught_errors_reach_the_log_view_not_a_crash(qtbot, open_window, monkeypatch):
    import threading

    from gallery_app.ui.app import install_error_hooks

    window = open_window("unused", wait_ready=False)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    relay = install_error_hooks(window.report_error)

    def boom():
        raise ValueError("disk on fire")

    with qtbot.waitSignal(relay.message, timeout=WAIT_MS):
        worker = threading.Thread(target=boom)
        worker.start()
    worker.join()
    qtbot.waitUntil(lambda: "disk on fire" in window.log_view.toPlainText(), timeout=WAIT_MS)
    assert "background thread" in window.statusBar().currentMessage()


def test_broken_files_are_listed_badged_and_the_rest_indexed(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    photos = make_images(3)
    (photos[0].parent / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos[0].parent / "empty.png").write_bytes(b"")
    report = index_folder(qtbot, window, photos[0].parent)
    assert report.indexed == 3 and len(report.failed) == 2
    log_text = window.log_view.toPlainText()
    assert "truncated.jpg" in log_text and "empty.png" in log_text
    assert window.grid_model.rowCount() == 3
    badge = window.status_area.failures_button
    assert badge.isVisible() and "2 files could not be read" in badge.text()
    assert "2 unreadable" in window.library_panel.folder_list.item(0).text()
    search(qtbot, window, "dog")  # a search does not take the failures away
    assert badge.isVisible()
    badge.click()
    assert window.log_dock.isVisible()


def test_searching_while_indexing_never_errors(
    qtbot, open_window, tiny_model_dir, make_images, library_backend
):
    """Searches run on their own threads while the index thread writes the same library."""
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(4)[0].parent)
    more = make_images(48, folder="more")
    errors, answered = [], []
    window.log_view.textChanged.connect(lambda: errors.append(window.log_view.toPlainText()))
    window.results_shown.connect(
        lambda: answered.append([item.path for item in window.grid_model.items()])
    )
    window.results_panel.search_box.setText("a dog")
    window.run_search()
    window.search.set_show_all(True)
    window.indexing_progress.connect(lambda *_: window.run_search())
    with qtbot.waitSignal(window.library.idle, timeout=WAIT_MS):
        assert window.start_indexing([str(more[0].parent)])
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        window.run_search()
    assert errors == []
    assert len(answered) >= 2
    known = {item.path for item in window.search.library_items}
    for paths in answered:
        assert set(paths) <= known  # never a result without its catalog entry
    assert len(answered[-1]) == 52


def test_the_window_uses_the_calibration_tune_saved(qtbot, open_window, tiny_model_dir):
    from gallery_app.core.settings_store import UserSettings, save_settings

    save_settings(UserSettings("custom", 33.0, 0.12, min_score=0.2, expand=False))
    window = open_window(str(tiny_model_dir))
    bar = window.calibration_bar
    assert bar.preset_box.currentData() == "custom"
    assert bar.temperature_slider.value() == 33
    assert window.calibration().centre == pytest.approx(0.12)
    assert bar.min_score_box.value() == 20
    assert not window.results_panel.expand_box.isChecked()


def test_a_broken_settings_file_is_reported_and_never_overwritten(
    qtbot, open_window, tiny_model_dir
):
    from gallery_app.core.settings_store import settings_path

    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"preset": "custom", "custom_temperature": "hot"}')
    window = open_window(str(tiny_model_dir))
    assert "custom_temperature" in window.log_view.toPlainText()
    assert window.settings.preset == "model"  # defaults for this session
    window.calibration_bar.temperature_slider.setValue(50)
    window.calibration_bar.save_button.click()
    window.close()
    assert path.read_text() == '{"preset": "custom", "custom_temperature": "hot"}'


def test_synonyms_toggle_searches_again_without_expansion(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(3)[0].parent)
    search(qtbot, window, "dog on the beach")
    assert len(window.search.hits.listed) > 1
    with qtbot.waitSignal(window.results_shown, timeout=WAIT_MS):
        window.results_panel.expand_box.setChecked(False)
    assert [v.text for v in window.search.hits.listed] == ["dog on the beach"]


def test_the_query_as_typed_shows_first_then_synonyms_refine_it(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(5)[0].parent)
    shown = []
    window.results_shown.connect(lambda: shown.append([v.text for v in window.search.hits.listed]))
    window.results_panel.search_box.setText("dog in the snow")
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        window.run_search()
    assert shown[0] == ["dog in the snow"]  # one text forward, then results
    assert len(shown[-1]) > 1 and shown[-1][0] == "dog in the snow"
    assert len(shown) == 2

    shown.clear()  # every prompt is cached now: one complete answer, no preview
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        window.run_search()
    assert len(shown) == 1 and len(shown[0]) > 1


def test_dictionary_is_encoded_in_the_background_then_needs_no_model(
    qtbot, open_window, tiny_model_dir, make_images, monkeypatch
):
    window = open_window(str(tiny_model_dir), wait_ready=False, precompute=True)
    with qtbot.waitSignal(window.precompute_finished, timeout=WAIT_MS) as finished:
        window.start_engine()
    assert finished.args[0] > 100  # the dictionary's prompts, encoded and stored
    qtbot.waitUntil(window.status_area.precompute_label.isHidden, timeout=WAIT_MS)
    index_folder(qtbot, window, make_images(3)[0].parent)

    calls = []
    encoder = session(window).encoder
    original = encoder.encode_prompts
    monkeypatch.setattr(encoder, "encode_prompts", lambda p: calls.append(p) or original(p))
    search(qtbot, window, "puppies")
    assert calls == []
    assert len(window.search.hits.listed) > 1


def test_closing_while_the_dictionary_is_being_encoded(
    qtbot, open_window, tiny_model_dir, thread_registry
):
    window = open_window(str(tiny_model_dir), wait_ready=False, precompute=True)
    with qtbot.waitSignal(window.model_loaded, timeout=WAIT_MS):
        window.start_engine()
    assert window.runner.running(PrecomputeTask)
    window.close()
    assert [t for t in list(thread_registry) if _alive(t) and t.isRunning()] == []


def test_a_library_another_process_writes_opens_read_only(
    qtbot, open_window, tiny_model_dir, make_images, tmp_path
):
    from gallery_app.core.library import Library

    window = open_window(str(tiny_model_dir))
    folder = make_images(3)[0].parent
    index_folder(qtbot, window, folder)
    library = session(window).library
    library_args = (library.data_dir, library.model_id, library.dim)
    window.close()

    writer = Library(*library_args)  # stands in for `gallery-app index` in another process
    try:
        window = open_window(str(tiny_model_dir))
        assert "in use" in window.log_view.toPlainText()
        assert session(window).library.read_only
        qtbot.waitUntil(lambda: window.grid_model.rowCount() == 3, timeout=WAIT_MS)  # browsing
        search(qtbot, window, "dog")  # and searching
        assert len(window.search.results) == 3
        assert not window.start_indexing([str(folder)])
        assert "Another gallery-app" in window.statusBar().currentMessage()
    finally:
        writer.close()


def test_fast_mode_loads_the_int8_model_into_the_same_library(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(3)[0].parent)
    window.close()
    fast = open_window(str(tiny_model_dir), fast=True)
    assert fast.model_info.precision == "int8"
    assert session(fast).encoder.precision == "int8"
    qtbot.waitUntil(lambda: fast.grid_model.rowCount() == 3, timeout=WAIT_MS)
    search(qtbot, fast, "dog")
    assert len(fast.search.results) == 3


def test_the_main_window_only_wires():
    source = Path(main_window_module_file()).read_text().splitlines()
    assert len(source) <= 250, f"main_window.py has {len(source)} lines"
    assert "QThread(" not in "\n".join(source)  # threads belong to the TaskRunner


def main_window_module_file() -> str:
    import gallery_app.ui.main_window as module

    return module.__file__


def test_the_model_chosen_in_the_window_is_used_next_time(
    qtbot, open_window, tiny_model_dir, tmp_path
):
    from gallery_app.core.settings_store import load_settings

    chosen = tmp_path / "chosen-model"
    shutil.copytree(tiny_model_dir, chosen)
    window = open_window(str(tmp_path / "gone"), wait_ready=False)
    with qtbot.waitSignal(window.model_missing, timeout=WAIT_MS):
        window.start_engine()
    with qtbot.waitSignal(window.model_loaded, timeout=WAIT_MS):
        window.results_panel.model_chosen.emit(str(chosen))  # as "Choose model folder…" does
    window.close()
    assert load_settings().model == str(chosen)
    again = open_window(None)  # no --model: the saved choice, not the hub default
    assert again.model_info.model_id == str(chosen)
    assert not again.results_panel.banner.isVisible()


def test_closing_while_the_model_loads_drops_its_late_answers(
    qtbot, qapp, open_window, tiny_model_dir, make_images, isolated_dirs
):
    from gallery_app.core.library import Library

    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(2)[0].parent)
    library_args = (session(window).library.model_id, session(window).library.dim)
    window.close()
    again = open_window(str(tiny_model_dir), wait_ready=False)
    again.start_engine()
    again.close()  # waits for the load; its answers are still queued
    errors = []
    again.log_view.textChanged.connect(lambda: errors.append(again.log_view.toPlainText()))
    qapp.processEvents()
    assert errors == []
    Library(isolated_dirs, *library_args).close()  # the lock was released
