"""The viewer inside the window, the grid's actions, shortcuts and the Help menu."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QWheelEvent
from PySide6.QtWidgets import QMessageBox
from window_helpers import WAIT_MS, index_folder, search

from gallery_app.ui import file_actions
from gallery_app.ui.grid_model import GridItem
from gallery_app.ui.viewer import Viewer


def photo_with_exif(path: Path, size=(1500, 1000)) -> Path:
    image = Image.new("RGB", size, (120, 160, 200))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R6"
    exif.get_ifd(0x8769)[0x9003] = "2024:07:01 14:03:22"
    image.save(path, exif=exif)
    return path


@pytest.fixture
def viewer(qtbot, make_images, tmp_path):
    photos = make_images(3)
    exif = photo_with_exif(tmp_path / "photos" / "camera.jpg")
    items = [GridItem(i, str(p), p.stat().st_mtime_ns) for i, p in enumerate([exif, *photos])]
    widget = Viewer()
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    widget.show_items(items, 0)
    return widget


def test_viewer_shows_date_camera_size_and_walks_with_the_arrows(qtbot, viewer):
    info = viewer.info.text()
    assert "Taken 2024-07-01 14:03" in info
    assert "Camera: Canon EOS R6" in info
    assert "1500 × 1000 px" in info
    assert viewer.position_label.text() == "1 of 4"
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.row == 1 and "64 × 48 px" in viewer.info.text()
    qtbot.keyClick(viewer, Qt.Key.Key_End)
    assert viewer.row == 3 and not viewer.next_button.isEnabled()
    qtbot.keyClick(viewer, Qt.Key.Key_Right)  # stays on the last one
    assert viewer.row == 3
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert viewer.row == 2
    with qtbot.waitSignal(viewer.closed, timeout=1000):
        qtbot.keyClick(viewer, Qt.Key.Key_Escape)


def test_viewer_fits_by_default_and_zooms(qtbot, viewer):
    area = viewer.scroll_area.viewport().size()
    fitted = viewer.shown_size()
    assert viewer.zoom is None
    assert fitted.width() <= area.width() and fitted.height() <= area.height()
    assert fitted.width() < 1500  # the viewer is smaller than the photo: fit shrinks it
    assert fitted.width() / fitted.height() == pytest.approx(1.5, abs=0.01)
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert viewer.zoom == 1.0 and viewer.shown_size().width() == 1500
    wheel = QWheelEvent(
        QPointF(10, 10),
        QPointF(10, 10),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QGuiApplication.sendEvent(viewer, wheel)
    assert viewer.zoom == 1.5 and viewer.shown_size().width() == 2250
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert viewer.zoom is None


def test_a_photo_gone_from_disk_says_so(qtbot, make_images):
    photo = make_images(1)[0]
    item = GridItem(1, str(photo), 0, 0.83, 0.15, "puppy")
    photo.unlink()
    widget = Viewer()
    qtbot.addWidget(widget)
    widget.show_items([item], 0)
    assert "Cannot show this image" in widget.picture.text()
    assert "no longer on disk" in widget.info.text()


def test_file_actions_open_show_and_copy(qtbot, qapp, monkeypatch, tmp_path):
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    monkeypatch.setattr(file_actions, "_show_items_over_dbus", lambda paths: False)  # no D-Bus
    paths = [str(tmp_path / "a.jpg"), str(tmp_path / "sub" / "b.jpg")]
    assert file_actions.open_with_default_app(paths)
    assert [u.toLocalFile() for u in opened] == paths
    opened.clear()
    assert file_actions.show_in_file_manager(paths)
    assert [u.toLocalFile() for u in opened] == [str(tmp_path), str(tmp_path / "sub")]
    file_actions.copy_paths(paths)
    assert QGuiApplication.clipboard().text() == "\n".join(paths)


def test_enter_opens_the_viewer_over_the_results_and_esc_comes_back(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(5)[0].parent)
    search(qtbot, window, "dog")
    window.search.set_show_all(True)
    panel = window.results_panel
    grid = panel.grid
    grid.setFocus()
    grid.setCurrentIndex(window.grid_model.index(1))
    qtbot.keyClick(grid, Qt.Key.Key_Return)
    assert panel.stack.currentWidget() is panel.viewer
    shown = panel.viewer.current()
    assert shown == window.grid_model.item(1)
    assert "for “dog”" in panel.viewer.info.text() and "cosine" in panel.viewer.info.text()
    qtbot.keyClick(panel.viewer, Qt.Key.Key_Right)
    assert panel.viewer.current() == window.grid_model.item(2)  # the results' order
    window.calibration_bar.temperature_slider.setValue(77)  # a refinement keeps the viewer
    assert panel.stack.currentWidget() is panel.viewer
    qtbot.keyClick(panel.viewer, Qt.Key.Key_Escape)
    assert panel.stack.currentWidget() is grid
    current = window.grid_model.item(grid.currentIndex().row())
    assert current.image_id == panel.viewer.current().image_id  # where the viewer was


def test_multi_select_and_thumbnail_sizes(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    photos = make_images(4)
    index_folder(qtbot, window, photos[0].parent)
    panel = window.results_panel
    model = window.grid_model
    selection = panel.grid.selectionModel()
    selection.select(model.index(0), selection.SelectionFlag.Select)
    selection.select(model.index(2), selection.SelectionFlag.Select)
    assert panel.selected_paths() == [model.item(0).path, model.item(2).path]

    size = panel.thumbnail_px
    menu_action(window, "Larger thumbnails").trigger()
    assert panel.thumbnail_px == size + 32 and window.thumbnails.size == size + 32
    assert panel.grid.iconSize().width() == size + 32
    wheel = QWheelEvent(
        QPointF(10, 10),
        QPointF(10, 10),
        QPoint(0, 0),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QGuiApplication.sendEvent(panel.grid.viewport(), wheel)
    assert panel.thumbnail_px == size


def menu_action(window, text):
    from PySide6.QtGui import QAction

    return next(a for a in window.findChildren(QAction) if a.text() == text)


def test_ctrl_f_focuses_search_and_help_menu_explains(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    assert menu_action(window, "Search").shortcut().toString() == "Ctrl+F"
    window.results_panel.search_box.setText("old query")
    window.activateWindow()
    menu_action(window, "Search").trigger()
    assert window.results_panel.search_box.hasFocus()
    assert window.results_panel.search_box.selectedText() == "old query"

    for title, expected in (
        ("How scores work", "estimated probability"),
        ("Search tips", "beach without people"),
        ("Keyboard shortcuts", "Ctrl+F"),
        ("About gallery-app", str(window.settings.path)),
    ):
        menu_action(window, title).trigger()
        dialog = window.findChild(QMessageBox, "help_dialog")
        qtbot.waitUntil(dialog.isVisible, timeout=WAIT_MS)
        assert expected in dialog.text()
        if title.startswith("About"):
            assert window.model_info.model_id in dialog.text()
        dialog.close()
        dialog.deleteLater()
        qtbot.waitUntil(
            lambda: window.findChild(QMessageBox, "help_dialog") is None, timeout=WAIT_MS
        )
