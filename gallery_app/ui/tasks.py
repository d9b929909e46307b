"""The one worker pattern: a Task (QObject) per job on its own QThread, run by a TaskRunner.

superqt's wiring: the task is moved to a fresh thread, `started -> run`, `done -> quit`,
`finished -> deleteLater` on both. A task talks to the GUI only through its signals (connect
them to bound methods of objects living on the GUI thread, so Qt queues the calls); failures
leave through one `errored` signal, never as an exception on a worker thread. Cancelling is a
flag the job checks between batches. `stop_all` (on close) cancels every task and waits.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from gallery_app.core.errors import GalleryError

log = logging.getLogger(__name__)


class Task(QObject):
    """One job. Subclasses implement `work()`; its return value is emitted as `result`."""

    title = "A background task"  # "<title> failed: ..." is what the user reads on errors
    result = Signal(object)
    errored = Signal(str)
    done = Signal()  # always last: after result or errored

    def __init__(self) -> None:
        super().__init__()
        from gallery_app.core.indexer import CancelToken

        self.token = CancelToken()

    def cancel(self) -> None:
        """Thread-safe: the job stops at its next check."""
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def work(self) -> Any:  # pragma: no cover - every task overrides it
        raise NotImplementedError

    @Slot()
    def run(self) -> None:
        try:
            value = self.work()
        except GalleryError as exc:  # typed, with a message the user can act on
            self.errored.emit(str(exc))
        except Exception as exc:  # never let a worker die silently, never a bare traceback
            log.exception("%s failed", self.title)
            self.errored.emit(f"{self.title} failed: {exc or type(exc).__name__}")
        else:
            self.result.emit(value)
        self.done.emit()


class TaskRunner(QObject):
    """Starts tasks, one thread each, and keeps them alive until their thread has ended."""

    errored = Signal(str)  # every task's errors, for the window's one error channel
    idle = Signal()  # the last running task has finished

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[QThread, Task] = {}
        self.closed = False

    def start(
        self, task: Task, priority: QThread.Priority = QThread.Priority.InheritPriority
    ) -> Task:
        """Run `task` on a thread of its own; after stop_all, nothing starts any more."""
        if self.closed:
            task.deleteLater()
            return task
        thread = QThread(self)
        task.moveToThread(thread)
        thread.started.connect(task.run)
        task.errored.connect(self.errored)
        task.done.connect(thread.quit)
        thread.finished.connect(task.deleteLater)  # runs on the task's thread, as it ends
        thread.finished.connect(self._on_thread_finished)
        self._running[thread] = task
        thread.start(priority)
        return task

    def running(self, kind: type[Task] | None = None) -> list[Task]:
        return [t for t in self._running.values() if kind is None or isinstance(t, kind)]

    def stop_all(self) -> None:
        """Cancel every task and wait for its thread: no thread outlives the window."""
        self.closed = True
        for task in self._running.values():
            task.cancel()
        for thread in list(self._running):
            thread.quit()
            thread.wait()
            self._forget(thread)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self.sender()
        if isinstance(thread, QThread) and thread in self._running:
            thread.wait()  # finished is emitted just before the thread really ends
            self._forget(thread)
            if not self._running:
                self.idle.emit()

    def _forget(self, thread: QThread) -> None:
        self._running.pop(thread, None)
        thread.deleteLater()
