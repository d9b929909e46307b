"""The main window, driven like a user would: index, search, move the slider, cancel, close."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt, QThread
from PySide6.QtWidgets import QLabel

import gallery_app.ui.main_window as main_window_module
from gallery_app.core.search import Searcher
from gallery_app.ui.main_window import MainWindow

WAIT_MS = 60_000


@pytest.fixture
def thread_registry(monkeypatch):
    """Records every QThread the window creates; the test fails if one is left running."""
    created: weakref.WeakSet[QThread] = weakref.WeakSet()

    class TrackedThread(QThread):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.add(self)

    monkeypatch.setattr(main_window_module, "QThread", TrackedThread)
    yield created
    running = [t for t in list(created) if _alive(t) and t.isRunning()]
    assert running == [], "a QThread was left running"


def _alive(thread: QThread) -> bool:
    try:
        thread.objectName()
    except RuntimeError:  # already deleted on the C++ side: certainly not running
        return False
    return True


@pytest.fixture
def store(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def open_window(qtbot, tmp_path, store, thread_registry):
    windows: list[MainWindow] = []

    def make(
        model: str, wait_ready: bool = True, precompute: bool = False, fast: bool | None = False
    ) -> MainWindow:
        # The dictionary precompute has a test of its own; elsewhere it would only add noise.
        window = MainWindow(
            tmp_path / "data", model, store, precompute_dictionary=precompute, fast=fast
        )
        qtbot.addWidget(window)
        windows.append(window)
        window.show()
        if wait_ready:
            with qtbot.waitSignal(window.model_loaded, timeout=WAIT_MS):
                window.start_engine()
        return window

    yield make
    for window in windows:
        window.close()


# Wait on the window's own signals: they fire after the window has applied an event, while
# a worker's signal can be seen by the test before the window's queued slot has run.
def index_folder(qtbot, window: MainWindow, folder: Path):
    with qtbot.waitSignals([window.indexing_finished, window.library_shown], timeout=WAIT_MS):
        assert window.start_indexing([str(folder)])
    return window.last_index_report


def search(qtbot, window: MainWindow, query: str) -> None:
    window.search_box.clear()
    qtbot.keyClicks(window.search_box, query)
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        qtbot.keyClick(window.search_box, Qt.Key.Key_Return)


def test_results_appear_and_debug_table_matches_core(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    photos = make_images(9)
    report = index_folder(qtbot, window, photos[0].parent)
    assert report.indexed == 9
    assert window.grid_model.rowCount() == 9  # the library, before any query
    assert window.folder_list.count() == 1

    search(qtbot, window, "dog on the beach")
    grid = window.grid_model.items()
    assert len(grid) == 9 and all(item.score is not None for item in grid)

    core = Searcher(window.engine.library, window.engine.encoder, window.engine.searcher.expander)
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


def test_slider_recalibrates_without_calling_the_encoder(
    qtbot, open_window, tiny_model_dir, make_images, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(6)[0].parent)
    search(qtbot, window, "red car")
    before = [item.score for item in window.grid_model.items()]
    hits = window.hits

    calls = []
    encoder = window.engine.encoder
    monkeypatch.setattr(encoder, "encode_prompts", lambda *a: calls.append(a) or 1 / 0)
    monkeypatch.setattr(encoder, "encode_pixels", lambda *a: calls.append(a) or 1 / 0)
    window.temperature_slider.setValue(window.temperature_slider.value() + 40)

    after = [item.score for item in window.grid_model.items()]
    assert calls == []
    assert window.settings.preset == "custom"
    assert before != after
    assert window.hits is hits  # same raw cosines, re-ranked: the winning variant may change
    assert "T = " in window.temperature_label.text()
    assert f"{window.calibration().temperature:.1f}" in window.debug_panel.calibration_text()

    window.min_score_box.setValue(0.99)
    assert all(item.score >= 0.99 for item in window.grid_model.items())
    window.reset_button.click()
    assert window.settings.preset == "model"


def test_settings_persist(qtbot, open_window, tiny_model_dir, store, tmp_path):
    window = open_window(str(tiny_model_dir))
    window.temperature_slider.setValue(42)
    window.min_score_box.setValue(0.25)
    window.close()
    again = open_window(str(tiny_model_dir))
    assert again.settings.preset == "custom"
    assert again.calibration().temperature == 42.0
    assert again.min_score_box.value() == pytest.approx(0.25)


def test_indexing_reports_progress_and_cancel_stops_between_batches(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    photos = make_images(40)
    progress = []

    def on_progress(done, total, rate):
        progress.append((done, total))
        if done > 0:
            window.cancel_indexing()

    window.indexing_progress.connect(on_progress)
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS) as done:
        assert window.start_indexing([str(photos[0].parent)])
    report = done.args[0]
    assert report.cancelled
    assert 0 < report.indexed < 40
    assert progress[0] == (0, 40)
    assert window.progress_bar.isHidden()
    assert not window.indexing


def test_stale_search_results_are_dropped(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(4)[0].parent)
    search(qtbot, window, "snow")
    current = window.hits
    old_id = window._latest_request - 1
    window._on_searched(old_id, object(), True)  # an answer to an older request arrives late
    assert window.hits is current


def test_typing_is_debounced_into_one_search(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(3)[0].parent)
    requests = []
    window.request_search.connect(lambda rid, q, e: requests.append(q))
    with qtbot.waitSignal(window.results_shown, timeout=WAIT_MS):
        qtbot.keyClicks(window.search_box, "sunset")
    assert requests == ["sunset"]
    qtbot.keyClick(window.search_box, Qt.Key.Key_Escape)
    assert window.search_box.text() == "" and window.hits is None
    assert all(item.score is None for item in window.grid_model.items())


def test_model_unavailable_shows_banner_and_library_still_browses(
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
    assert window.banner.isVisible()
    assert "my-model" in window.banner_label.text()
    assert window.grid_model.rowCount() == 3  # browsing needs no model
    assert not window.start_indexing([str(tmp_path)])  # refused with a message, no crash
    assert "not loaded" in window.statusBar().currentMessage()

    weights.write_bytes(good)
    with qtbot.waitSignal(window.model_loaded, timeout=WAIT_MS):
        window.retry_button.click()
    assert not window.banner.isVisible()
    assert window.grid_model.rowCount() == 3


def test_closing_during_indexing_cancels_and_waits(
    qtbot, open_window, tiny_model_dir, make_images, thread_registry
):
    window = open_window(str(tiny_model_dir))
    photos = make_images(60)
    assert window.start_indexing([str(photos[0].parent)])
    window.close()
    assert [t for t in list(thread_registry) if _alive(t) and t.isRunning()] == []


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


def test_removing_a_folder_empties_the_library(
    qtbot, open_window, tiny_model_dir, make_images, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    folder = make_images(3)[0].parent
    index_folder(qtbot, window, folder)
    item = window.folder_list.item(0)
    assert item.toolTip() == str(folder) and item.text() == folder.name
    window.folder_list.setCurrentRow(0)
    from PySide6.QtWidgets import QMessageBox

    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *args: asked.append(args[2]) or answers.pop(0)
    )
    requested = []
    window.request_remove_folder.connect(requested.append)
    window.remove_folder_button.click()  # cancelled: the engine is not asked
    assert requested == [] and str(folder) in asked[0]
    with qtbot.waitSignal(window.library_shown, timeout=WAIT_MS):
        window.remove_folder_button.click()
    assert requested == [str(folder)]
    assert window.folder_list.count() == 0
    assert window.grid_model.rowCount() == 0
    assert window.stack.currentWidget() is window.empty_label


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
    assert window.banner.isVisible() and "failed: reset" in window.banner_label.text()
    assert window.progress_bar.isHidden()


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


def test_preview_shows_the_image_and_its_details(qtbot, make_images):
    from gallery_app.ui.grid_model import GridItem
    from gallery_app.ui.main_window import PreviewDialog

    photo = make_images(1)[0]
    item = GridItem(1, str(photo), photo.stat().st_mtime_ns, 0.8312, 0.1543, "puppy")
    dialog = PreviewDialog(item)
    qtbot.addWidget(dialog)
    texts = [label.text() for label in dialog.findChildren(QLabel)]
    pictures = [
        label.pixmap() for label in dialog.findChildren(QLabel) if not label.pixmap().isNull()
    ]
    assert len(pictures) == 1
    details = next(t for t in texts if str(photo) in t)
    assert "64 × 48 px" in details and "score 0.8312" in details and "puppy" in details

    photo.unlink()
    gone = PreviewDialog(item)
    qtbot.addWidget(gone)
    assert any("Cannot show this image" in label.text() for label in gone.findChildren(QLabel))


def test_broken_files_are_listed_and_the_rest_indexed(
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


def test_searching_while_indexing_never_errors(qtbot, open_window, tiny_model_dir, make_images):
    """Searches run on the engine thread while the index thread writes the same library."""
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(4)[0].parent)
    more = make_images(48, folder="more")
    errors, answered = [], []
    window.log_view.textChanged.connect(lambda: errors.append(window.log_view.toPlainText()))
    window.results_shown.connect(
        lambda: answered.append([item.path for item in window.grid_model.items()])
    )
    window.search_box.setText("a dog")
    window.indexing_progress.connect(lambda *_: window.run_search())
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS):
        assert window.start_indexing([str(more[0].parent)])
    with qtbot.waitSignal(window.results_shown, timeout=WAIT_MS):
        window.run_search()
    assert errors == []
    assert len(answered) >= 2
    known = {item.path for item in window._library_items}
    for paths in answered:
        assert set(paths) <= known  # never a result without its catalog entry
    assert len(answered[-1]) == 52


def test_the_window_uses_the_calibration_tune_saved(qtbot, open_window, tiny_model_dir):
    from gallery_app.core.settings_store import UserSettings, save_settings

    save_settings(UserSettings("custom", 33.0, 0.12, min_score=0.2, expand=False))
    window = open_window(str(tiny_model_dir))
    assert window.preset_box.currentText() == "custom"
    assert window.temperature_slider.value() == 33
    assert window.calibration().centre == pytest.approx(0.12)
    assert window.min_score_box.value() == pytest.approx(0.2)
    assert not window.expand_box.isChecked()


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
    window.temperature_slider.setValue(50)
    window.close()
    assert path.read_text() == '{"preset": "custom", "custom_temperature": "hot"}'


def test_synonyms_toggle_searches_again_without_expansion(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(3)[0].parent)
    search(qtbot, window, "dog on the beach")
    assert len(window.hits.listed) > 1
    with qtbot.waitSignal(window.results_shown, timeout=WAIT_MS):
        window.expand_box.setChecked(False)
    assert [v.text for v in window.hits.listed] == ["dog on the beach"]


def test_the_query_as_typed_shows_first_then_synonyms_refine_it(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(5)[0].parent)
    shown = []
    window.results_shown.connect(lambda: shown.append([v.text for v in window.hits.listed]))
    window.search_box.setText("dog in the snow")
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
    assert window.precompute_label.isHidden()
    index_folder(qtbot, window, make_images(3)[0].parent)

    calls = []
    encoder = window.engine.encoder
    original = encoder.encode_prompts
    monkeypatch.setattr(encoder, "encode_prompts", lambda p: calls.append(p) or original(p))
    search(qtbot, window, "puppies")
    assert calls == []
    assert len(window.hits.listed) > 1


def test_closing_while_the_dictionary_is_being_encoded(
    qtbot, open_window, tiny_model_dir, thread_registry
):
    window = open_window(str(tiny_model_dir), wait_ready=False, precompute=True)
    with qtbot.waitSignal(window.model_loaded, timeout=WAIT_MS):
        window.start_engine()
    assert window._precompute_thread is not None
    window.close()
    assert [t for t in list(thread_registry) if _alive(t) and t.isRunning()] == []


def test_a_library_another_process_writes_opens_read_only(
    qtbot, open_window, tiny_model_dir, make_images, tmp_path
):
    from gallery_app.core.library import Library

    window = open_window(str(tiny_model_dir))
    folder = make_images(3)[0].parent
    index_folder(qtbot, window, folder)
    library_args = (
        window.engine.library.data_dir,
        window.engine.library.model_id,
        window.engine.library.dim,
    )
    window.close()

    writer = Library(*library_args)  # stands in for `gallery-app index` in another process
    try:
        window = open_window(str(tiny_model_dir))
        assert "in use" in window.log_view.toPlainText()
        assert window.engine.library.read_only
        assert window.grid_model.rowCount() == 3  # browsing works
        search(qtbot, window, "dog")  # and searching
        assert len(window.results) == 3
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
    assert fast.engine.encoder.precision == "int8"
    assert fast.grid_model.rowCount() == 3  # fp32 vectors, searched with int8 text vectors
    search(qtbot, fast, "dog")
    assert len(fast.results) == 3
