"""The duplicates window: opened from the File menu, runs in the background, lists groups
with size, resolution, date and folder, reveals files (never deletes), can be cancelled."""

from __future__ import annotations

import os
import shutil

import pytest
from photos import random_photo
from PIL import Image
from window_helpers import WAIT_MS, index_folder

import gallery_app.core.duplicates as duplicates
from gallery_app.ui import duplicates_view, file_actions
from gallery_app.ui.duplicates_view import DuplicatesDialog


@pytest.fixture
def copies(tmp_path):
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for seed in range(4):
        Image.fromarray(random_photo(seed, (200, 150))).save(root / "a" / f"p{seed}.jpg")
    shutil.copyfile(root / "a" / "p0.jpg", root / "b" / "copy of p0.jpg")
    os.link(root / "a" / "p0.jpg", root / "b" / "link to p0.jpg")
    return root


def open_from_menu(window) -> DuplicatesDialog:
    file_menu = window.menuBar().actions()[0].menu()
    action = next(a for a in file_menu.actions() if a.text() == "Find duplicates…")
    action.trigger()
    dialog = window.findChild(DuplicatesDialog, "duplicates_dialog")
    assert dialog is not None and dialog.isVisible()
    return dialog


def test_the_dialog_lists_identical_copies_and_reveals_them(
    qtbot, open_window, tiny_model_dir, copies, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, copies)
    dialog = open_from_menu(window)
    dialog.similarity_box.setValue(1.0)  # only exact copies can reach it: the hashes decide
    with qtbot.waitSignal(dialog.finished_search, timeout=WAIT_MS) as finished:
        dialog.find_button.click()
    report = finished.args[0]
    assert report is not None and not report.cancelled
    assert dialog.tree.topLevelItemCount() == len(report.groups) == 1
    group = dialog.tree.topLevelItem(0)
    assert group.text(0).startswith("#1 Identical files — 3 copies")
    rows = [group.child(i) for i in range(group.childCount())]
    names = sorted(row.text(0).split(". ", 1)[1] for row in rows)
    assert names == ["copy of p0.jpg", "link to p0.jpg", "p0.jpg"]
    size = (copies / "a" / "p0.jpg").stat().st_size
    for row in rows:
        assert row.text(2) == duplicates_view.human_size(size)
        assert row.text(3) == "200 × 150"
        assert row.text(4) != "?" and os.path.isdir(row.text(1))
    assert any("hard link" in row.text(5) for row in rows)
    assert any("same bytes as #1" in row.text(5) for row in rows)

    shown = []
    monkeypatch.setattr(file_actions, "show_in_file_manager", lambda paths: shown.append(paths))
    assert not dialog.show_button.isEnabled()
    rows[1].setSelected(True)
    dialog.show_button.click()
    assert shown == [[rows[1].data(0, duplicates_view.PathRole)]]
    assert all(os.path.exists(row.data(0, duplicates_view.PathRole)) for row in rows)


def test_a_long_search_can_be_cancelled(qtbot, open_window, tiny_model_dir, copies, monkeypatch):
    def blocked_until_cancelled(path, cancel):
        assert cancel is not None
        cancel._event.wait(WAIT_MS / 1000)  # a huge file: reading stops only on Cancel
        return None

    monkeypatch.setattr(duplicates, "_sha256", blocked_until_cancelled)
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, copies)
    dialog = open_from_menu(window)
    dialog.find_button.click()
    assert dialog.running() and dialog.cancel_button.isVisible()
    with qtbot.waitSignal(dialog.finished_search, timeout=WAIT_MS) as finished:
        dialog.cancel_button.click()
    assert finished.args[0].cancelled
    assert "Stopped" in dialog.summary.text()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=WAIT_MS)
    assert dialog.find_button.isEnabled()
