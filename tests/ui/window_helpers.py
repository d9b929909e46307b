"""The window under test: fixtures that open real MainWindows and fail on a leftover thread,
and helpers that drive it as a user would (index a folder, search)."""

from __future__ import annotations

import weakref
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt, QThread

import gallery_app.ui.tasks as tasks_module
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

    monkeypatch.setattr(tasks_module, "QThread", TrackedThread)
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
        model: str | None,
        wait_ready: bool = True,
        precompute: bool = False,
        fast: bool | None = False,
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
    reports = []

    def keep(report):
        reports.append(report)

    window.indexing_finished.connect(keep)
    with qtbot.waitSignal(window.library.idle, timeout=WAIT_MS):
        assert window.start_indexing([str(folder)])
    window.indexing_finished.disconnect(keep)
    return next(r for r in reversed(reports) if r is not None)


def search(qtbot, window: MainWindow, query: str) -> None:
    box = window.results_panel.search_box
    box.clear()
    qtbot.keyClicks(box, query)
    with qtbot.waitSignal(window.search_done, timeout=WAIT_MS):
        qtbot.keyClick(box, Qt.Key.Key_Return)


def session(window: MainWindow):
    assert window.model.session is not None
    return window.model.session
