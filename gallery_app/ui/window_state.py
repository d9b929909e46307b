"""Where the window opens and how big: restored from last time, else fitted to the screen."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QSplitter, QWidget

from gallery_app.ui.settings import UiState

PREFERRED_SIZE = QSize(1280, 800)
SCREEN_SHARE = 0.92  # leave room for panels and docks of the desktop itself


def first_size(window: QWidget) -> QSize:
    """The preferred size, shrunk to fit the screen the window is on (1366×768 laptops)."""
    screen = window.screen()
    if screen is None:
        return PREFERRED_SIZE
    available = screen.availableGeometry().size()
    return QSize(
        min(PREFERRED_SIZE.width(), int(available.width() * SCREEN_SHARE)),
        min(PREFERRED_SIZE.height(), int(available.height() * SCREEN_SHARE)),
    )


def widen_when_opened(window: QMainWindow, dock: QDockWidget, wanted: Callable[[], int]) -> None:
    """A dock opened by the user gets the width its content asks for, within half the
    window, so a table's last column is on screen rather than behind a scroll bar."""

    def widen(visible: bool) -> None:
        if visible:
            width = min(wanted(), window.width() // 2)
            window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)

    dock.visibilityChanged.connect(widen)


def follow_screen(window: QWidget, set_ratio: Callable[[float], None]) -> None:
    """Call set_ratio with the window's device pixel ratio whenever it changes screen."""
    handle = window.windowHandle()
    if handle is None or handle.property("follows_screen"):
        return
    handle.setProperty("follows_screen", True)
    handle.screenChanged.connect(lambda _screen: set_ratio(window.devicePixelRatioF()))


def restore(window: QMainWindow, splitter: QSplitter, state: UiState, docks: list[QWidget]) -> None:
    geometry = state.bytes_value("geometry")
    if geometry is None or not window.restoreGeometry(geometry):
        window.resize(first_size(window))
    layout = state.bytes_value("window_state")
    if layout is None or not window.restoreState(layout):
        for dock in docks:  # closed on a first run: the grid gets the room
            dock.hide()
    sizes = state.bytes_value("splitter")
    if sizes is not None:
        splitter.restoreState(sizes)


def save(window: QMainWindow, splitter: QSplitter, state: UiState) -> None:
    state.set_value("geometry", window.saveGeometry())
    state.set_value("window_state", window.saveState())
    state.set_value("splitter", splitter.saveState())
