"""Fits real screens: every control reachable at 1024×700 and 1366×768, the first window no
bigger than the screen, the debug dock closed at first and wide enough once opened."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from window_helpers import index_folder, search


def inside(window, widget) -> bool:
    top_left = widget.mapTo(window, QPoint(0, 0))
    return widget.isVisible() and QRect(QPoint(0, 0), window.size()).contains(
        QRect(top_left, widget.size())
    )


@pytest.mark.parametrize("size", [(1024, 700), (1366, 768)])
def test_every_control_is_reachable(qtbot, open_window, tiny_model_dir, size):
    window = open_window(str(tiny_model_dir))
    window.resize(*size)
    qtbot.waitUntil(lambda: window.size().width() == size[0], timeout=5000)
    hint = window.minimumSizeHint()
    assert hint.width() <= size[0] and hint.height() <= size[1]
    bar, library, panel = window.calibration_bar, window.library_panel, window.results_panel
    for widget in (
        library.add_folder_button,
        library.rescan_button,
        library.remove_folder_button,
        panel.search_box,
        panel.expand_box,
        bar.preset_box,
        bar.temperature_slider,
        bar.min_score_box,
        bar.save_button,
        bar.reset_button,
        window.statusBar(),
    ):
        assert inside(window, widget), widget


def test_the_first_window_fits_the_screen_and_the_debug_dock_starts_closed(
    qtbot, open_window, tiny_model_dir
):
    window = open_window(str(tiny_model_dir))
    screen = window.screen().availableGeometry()
    assert window.width() <= screen.width() and window.height() <= screen.height()
    assert not window.debug_dock.isVisible()


def test_the_debug_dock_opens_wide_enough_for_all_its_columns(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    window.resize(1366, 768)
    index_folder(qtbot, window, make_images(4)[0].parent)
    search(qtbot, window, "dog on the beach")
    window.debug_dock.show()
    table = window.debug_panel._view
    header = table.horizontalHeader()
    last = window.debug_panel.table_model().SCORE  # then one column per word, scrolled to

    def score_column_on_screen() -> bool:
        right = header.sectionViewportPosition(last) + header.sectionSize(last)
        return right <= table.viewport().width()

    qtbot.waitUntil(score_column_on_screen, timeout=5000)
    assert window.debug_dock.width() <= 1366 // 2


def test_the_viewer_fits_a_large_photo_in_a_small_window(
    qtbot, open_window, tiny_model_dir, tmp_path
):
    from PIL import Image

    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("RGB", (3000, 2000), (90, 140, 60)).save(folder / "big.jpg")
    window = open_window(str(tiny_model_dir))
    window.resize(1024, 700)
    index_folder(qtbot, window, folder)
    window.results_panel.open_row(0)
    viewer = window.results_panel.viewer
    qtbot.waitUntil(lambda: viewer.shown_size().width() > 0, timeout=5000)
    area = viewer.scroll_area.viewport().size()
    shown = viewer.shown_size()
    assert shown.width() <= area.width() and shown.height() <= area.height()
    assert inside(window, viewer.next_button) and inside(window, viewer.back_button)


def test_thumbnails_follow_the_screens_pixel_ratio(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(2)[0].parent)
    window.grid_model.set_device_pixel_ratio(1.0)
    window.windowHandle().screenChanged.emit(window.screen())  # as when dragged to a screen
    assert window.grid_model._dpr == window.devicePixelRatioF()
    window.grid_model.set_device_pixel_ratio(2.0)
    index = window.grid_model.index(0)
    placeholder = window.thumbnails.placeholder(2.0).cacheKey()
    qtbot.waitUntil(
        lambda: window.grid_model.data(index, 1).cacheKey() != placeholder, timeout=10_000
    )
    thumbnail = window.grid_model.data(index, 1)
    assert thumbnail.devicePixelRatio() == 2.0  # made for the HiDPI screen, not scaled up
