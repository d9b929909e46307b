"""Preferences › Model: the catalog listed with the cached ones marked, switching models keeps
each model's library, the first-run download can be cancelled, and the device is shown."""

from __future__ import annotations

import shutil
import threading

import pytest
from huggingface_hub import constants
from PySide6.QtWidgets import QFileDialog
from window_helpers import WAIT_MS, index_folder

from gallery_app.core.embeddings import DEFAULT_MODEL
from gallery_app.core.model_catalog import load_catalog, model_choices
from gallery_app.ui.preferences import ID_ROLE, PreferencesDialog, open_preferences, switch_model


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def cache_model(hub_cache, model_id, source):
    repo = hub_cache / f"models--{model_id.replace('/', '--')}"
    shutil.copytree(source, repo / "snapshots" / "abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")


def rows(dialog):
    items = [
        dialog.model_list.topLevelItem(i) for i in range(dialog.model_list.topLevelItemCount())
    ]
    return {item.data(0, ID_ROLE): item for item in items if item is not None}


def test_the_list_is_the_catalog_with_cached_and_current_marked(qtbot, hub_cache, tiny_model_dir):
    cache_model(hub_cache, "google/siglip2-base-patch16-224", tiny_model_dir)
    dialog = PreferencesDialog(model_choices(), "google/siglip-base-patch16-224")
    qtbot.addWidget(dialog)
    listed = rows(dialog)
    assert list(listed) == [entry.id for entry in load_catalog()]
    assert [i for i, item in listed.items() if item.text(1)] == ["google/siglip2-base-patch16-224"]
    current = listed["google/siglip-base-patch16-224"]
    assert "in use" in current.text(0)
    assert [i for i, item in listed.items() if "(default)" in item.text(0)] == [DEFAULT_MODEL]
    assert dialog.selected() == "google/siglip-base-patch16-224"
    assert not dialog.use_button.isEnabled()  # already in use
    assert listed["google/siglip2-base-patch16-224"].text(3) == "multilingual"


def test_use_this_model_and_use_a_folder_say_what_was_chosen(qtbot, monkeypatch, tmp_path):
    dialog = PreferencesDialog(model_choices(), "google/siglip-base-patch16-224")
    qtbot.addWidget(dialog)
    assert dialog.select("google/siglip2-large-patch16-256")
    assert dialog.use_button.isEnabled()
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        dialog.use_button.click()
    assert chosen.args == ["google/siglip2-large-patch16-256"]

    folder = tmp_path / "my-model"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_a, **_k: str(folder))
    again = PreferencesDialog(model_choices(), "google/siglip-base-patch16-224")
    qtbot.addWidget(again)
    with qtbot.waitSignal(again.model_chosen) as chosen:
        again.folder_button.click()
    assert chosen.args == [str(folder)]


def test_switching_models_keeps_each_models_library(
    qtbot, open_window, tiny_model_dir, tmp_path, make_images, monkeypatch
):
    from gallery_app.core.settings_store import load_settings

    first, second = tmp_path / "model-a", tmp_path / "model-b"
    shutil.copytree(tiny_model_dir, first)
    shutil.copytree(tiny_model_dir, second)
    window = open_window(str(first))
    photos = make_images(3)
    index_folder(qtbot, window, photos[0].parent)
    assert "model-a" in window.library_panel.model_label.text()
    assert window.status_area.device_label.text() == "Model on CPU"

    dialog = open_preferences(window)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_a, **_k: str(second))
    with qtbot.waitSignals([window.model_loaded, window.library_shown], timeout=WAIT_MS):
        dialog.folder_button.click()
    assert window.model_info.model_id == str(second)
    assert "model-b" in window.library_panel.model_label.text()
    assert window.library_panel.folder_list.count() == 0  # model-b's own, empty library
    window.settings.flush()
    assert load_settings().model == str(second)  # remembered, for the CLI too

    with qtbot.waitSignals([window.model_loaded, window.library_shown], timeout=WAIT_MS):
        switch_model(window, str(first))
    assert window.model_info.model_id == str(first)
    qtbot.waitUntil(lambda: window.library_panel.folder_list.count() == 1, timeout=WAIT_MS)
    assert window.grid_model.rowCount() == 3  # model-a's photos, as they were left


def test_switching_is_refused_while_indexing(
    qtbot, open_window, tiny_model_dir, tmp_path, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    monkeypatch.setattr(type(window.library), "busy", property(lambda self: True))
    messages = []
    window.statusBar().messageChanged.connect(messages.append)
    switch_model(window, str(tmp_path / "other"))
    assert any("Indexing is running" in m for m in messages)
    assert window.model.state == "ready" and window.model_info is not None


def test_the_first_run_download_can_be_cancelled(qtbot, open_window, monkeypatch):
    """Cancel in the status bar reaches the download through the load's cancel token."""
    import gallery_app.core.download as download
    from gallery_app.core.download import DownloadCancelled, DownloadProgress

    asked = threading.Event()

    def fake_download(model_id, progress=None, cancelled=lambda: False):
        progress(DownloadProgress(100_000_000, 800_000_000, "model.safetensors", 5e6, 140))
        for _ in range(600):  # a slow line: chunks keep coming until Cancel
            if cancelled():
                asked.set()
                raise DownloadCancelled(f"download of {model_id} cancelled")
            threading.Event().wait(0.05)
        raise AssertionError("Cancel never reached the download")

    monkeypatch.setattr(download, "is_cached", lambda model_id: False)
    monkeypatch.setattr(download, "download_model", fake_download)
    window = open_window("someone/siglip-not-cached", wait_ready=False)
    status = window.status_area
    window.start_engine()
    qtbot.waitUntil(lambda: status.cancel_button.isVisible(), timeout=WAIT_MS)
    assert "100 of 800 MB · 5.0 MB/s · 2:20 left" in status.progress_label.text()
    with qtbot.waitSignal(window.model_missing, timeout=WAIT_MS) as missing:
        status.cancel_button.click()
    assert asked.is_set()
    assert "cancelled" in missing.args[0] and "Retry continues" in missing.args[0]
    assert window.results_panel.banner.isVisible()
    assert status.progress_bar.isHidden() and status.cancel_button.isHidden()


def test_offline_first_run_says_so_in_one_line(qtbot, open_window, hub_cache):
    """HF_HUB_OFFLINE=1 (as in these tests) and a model not in the cache: the banner says what
    to do at once, naming the download command, --model FOLDER and the cache folder."""
    window = open_window("google/siglip2-base-patch16-224", wait_ready=False)
    with qtbot.waitSignal(window.model_missing, timeout=WAIT_MS) as missing:
        window.start_engine()
    message = missing.args[0]
    assert "\n" not in message and "HF_HUB_OFFLINE is set" in message
    assert "gallery-app models download google/siglip2-base-patch16-224" in message
    assert "--model FOLDER" in message and str(hub_cache) in message
    assert window.results_panel.banner.isVisible()
    assert window.results_panel.choose_model_button.isVisibleTo(window.results_panel)


def test_the_library_address_is_saved_without_its_password(qtbot, open_window, tiny_model_dir):
    from gallery_app.core.settings_store import load_settings

    window = open_window(str(tiny_model_dir))
    dialog = open_preferences(window)
    dialog.library_edit.setText("/no/such/folder")
    dialog.library_chosen.emit(dialog.library_edit.text())
    assert "not a folder" in dialog.library_note.text()
    assert window.settings.library is None

    dialog.library_chosen.emit("postgresql://ann:secret@nas:5433/photos")
    assert window.settings.library == "postgresql://ann@nas:5433/photos"
    assert load_settings(window.settings.path).library == "postgresql://ann@nas:5433/photos"
    assert "secret" not in window.statusBar().currentMessage()
    assert dialog.library_edit.text() == "postgresql://ann@nas:5433/photos"
    dialog.library_chosen.emit("")
    assert window.settings.library is None


def test_an_unreachable_library_server_is_named_as_such_not_as_the_model(
    qtbot, open_window, tiny_model_dir, monkeypatch
):
    monkeypatch.setenv("GALLERY_APP_LIBRARY", "postgresql://nobody@127.0.0.1:9/photos")
    window = open_window(str(tiny_model_dir), wait_ready=False)
    with qtbot.waitSignal(window.model_missing, timeout=60_000) as blocker:
        window.start_engine()
    assert "postgresql://nobody@127.0.0.1:9/photos" in blocker.args[0]
    banner = window.results_panel.banner_label.text()
    assert "library's server cannot be reached" in banner
    assert "model could not be loaded" not in banner
    panel = window.results_panel
    assert panel.retry_button.isVisibleTo(panel)
    assert not panel.choose_model_button.isVisibleTo(panel)
