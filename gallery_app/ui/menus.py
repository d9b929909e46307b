"""The window's menus and keyboard shortcuts, and the Help menu's texts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMessageBox

from gallery_app import __version__
from gallery_app.ui import wording
from gallery_app.ui.duplicates_view import open_duplicates
from gallery_app.ui.preferences import open_preferences

if TYPE_CHECKING:
    from gallery_app.ui.main_window import MainWindow

SHORTCUTS = (
    ("Ctrl+F", "Go to the search box"),
    ("Esc", "Clear the search (in the viewer: back to the results)"),
    ("Enter / double-click", "Open the selected photo in the viewer"),
    ("Left / Right", "Previous / next photo in the viewer"),
    ("+ / − / F / 1", "Zoom in / out / fit / 100% in the viewer (or Ctrl+wheel)"),
    ("R / N", "Mark the photo in the viewer relevant / not relevant to the query (again: unmark)"),
    ("Ctrl++ / Ctrl+−", "Larger / smaller thumbnails (or Ctrl+wheel over the grid)"),
    ("Ctrl+A, Shift/Ctrl+click", "Select several photos (right-click: open, show, copy, tag)"),
    ("Right-click › Find similar", "Photos that look like this one (also in the viewer)"),
    ("Ctrl+Q", "Quit"),
)


def build_menus(window: MainWindow) -> None:
    panel = window.results_panel
    file_menu = window.menuBar().addMenu("&File")
    file_menu.addAction("Add folder…", window.library_panel.choose_folder)
    file_menu.addAction(
        "Rescan all folders", lambda: window.library_panel.rescan_requested.emit("")
    )
    file_menu.addAction("Choose model folder…", panel.choose_model_folder)
    file_menu.addAction("Find duplicates…", lambda: open_duplicates(window))
    file_menu.addAction(
        "Preferences…", QKeySequence.StandardKey.Preferences, lambda: open_preferences(window)
    )
    file_menu.addSeparator()
    file_menu.addAction("Quit", QKeySequence.StandardKey.Quit, window.close)
    view_menu = window.menuBar().addMenu("&View")
    view_menu.addAction("Search", QKeySequence.StandardKey.Find, lambda: focus_search(window))
    view_menu.addAction(
        "Larger thumbnails", QKeySequence.StandardKey.ZoomIn, lambda: panel.zoom_thumbnails(1)
    )
    bigger = view_menu.actions()[-1]
    bigger.setShortcuts([QKeySequence("Ctrl++"), QKeySequence("Ctrl+=")])
    view_menu.addAction(
        "Smaller thumbnails", QKeySequence.StandardKey.ZoomOut, lambda: panel.zoom_thumbnails(-1)
    )
    view_menu.addSeparator()
    view_menu.addAction(window.debug_dock.toggleViewAction())
    view_menu.addAction(window.log_dock.toggleViewAction())
    help_menu = window.menuBar().addMenu("&Help")
    help_menu.addAction(
        "Keyboard shortcuts", lambda: _show(window, "Keyboard shortcuts", shortcuts_html())
    )
    help_menu.addAction("Search tips", lambda: _show(window, "Search tips", wording.SEARCH_TIPS))
    help_menu.addAction(
        "How scores work", lambda: _show(window, "How scores work", wording.HOW_SCORES_WORK)
    )
    help_menu.addAction(
        "About gallery-app", lambda: _show(window, "About gallery-app", about_html(window))
    )


def focus_search(window: MainWindow) -> None:
    panel = window.results_panel
    panel.close_viewer()
    panel.search_box.setFocus()
    panel.search_box.selectAll()


def shortcuts_html() -> str:
    rows = "".join(f"<tr><td><b>{keys}</b></td><td>{what}</td></tr>" for keys, what in SHORTCUTS)
    return f"<table cellspacing=6>{rows}</table>"


def about_html(window: MainWindow) -> str:
    from gallery_app.core.library import default_config_dir

    info = window.model_info
    library = window.model.library
    rows = [
        ("Version", __version__),
        (
            "Model",
            f"{info.model_id} ({info.precision})" if info else f"not loaded ({window.model.state})",
        ),
        (
            "Library",
            (library.where if library.shared else str(library.folder)) if library else "none yet",
        ),
        ("Settings", str(window.settings.path)),
        ("Your expansions", str(default_config_dir() / "expansions.json")),
    ]
    table = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    return (
        "<h3>gallery-app</h3><p>Find photos in your folders by what they show, with SigLIP, "
        f"on this computer.</p><table cellspacing=4>{table}</table>"
    )


def _show(window: MainWindow, title: str, html: str) -> None:
    box = QMessageBox(
        QMessageBox.Icon.NoIcon, title, html, QMessageBox.StandardButton.Close, window
    )
    box.setObjectName("help_dialog")
    box.open()  # not modal to the event loop: the window keeps running behind it
