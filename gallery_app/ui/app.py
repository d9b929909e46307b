"""Start the desktop app: QApplication, the main window, and the last-resort error hooks."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


def run_app(
    data_dir: Path, model: str | None, argv: list[str] | None = None, fast: bool | None = None
) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gallery_app.core.library import default_config_dir
    from gallery_app.ui.main_window import MainWindow
    from gallery_app.ui.platform_check import check

    if QApplication.instance() is None:
        check()  # raises CannotStart instead of letting Qt abort the process
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("gallery-app")
    app.setOrganizationName("gallery-app")
    window = MainWindow(
        data_dir, model, expansions_file=default_config_dir() / "expansions.json", fast=fast
    )
    relay = install_error_hooks(window.report_error)
    window.show()
    QTimer.singleShot(0, window.start_engine)  # the model loads after the window is on screen
    code = int(app.exec())
    relay.deleteLater()
    return code


class ErrorRelay(QObject):
    """Carries an error message from any thread to the GUI thread (a queued signal)."""

    message = Signal(str)


def install_error_hooks(show: Callable[[str], None]) -> ErrorRelay:
    """Uncaught errors go to the window's error channel instead of killing the app."""
    relay = ErrorRelay()
    relay.message.connect(show)

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        log.error("uncaught error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        relay.message.emit(f"Unexpected error: {kind.__name__}: {value}")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        log.error(
            "uncaught error in thread %s:\n%s",
            args.thread.name if args.thread else "?",
            "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)),
        )
        relay.message.emit(f"Unexpected error in a background thread: {args.exc_value}")

    sys.excepthook = excepthook
    threading.excepthook = thread_hook
    return relay
