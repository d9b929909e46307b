"""The window's menus and keyboard shortcuts, built over the window's panels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QKeySequence

if TYPE_CHECKING:
    from gallery_app.ui.main_window import MainWindow


def build_menus(window: MainWindow) -> None:
    file_menu = window.menuBar().addMenu("&File")
    file_menu.addAction("Add folder…", window.library_panel.choose_folder)
    file_menu.addAction(
        "Rescan all folders", lambda: window.library_panel.rescan_requested.emit("")
    )
    file_menu.addAction("Choose model folder…", window.results_panel.choose_model_folder)
    file_menu.addSeparator()
    file_menu.addAction("Quit", QKeySequence.StandardKey.Quit, window.close)
    view_menu = window.menuBar().addMenu("&View")
    view_menu.addAction(window.debug_dock.toggleViewAction())
    view_menu.addAction(window.log_dock.toggleViewAction())
