"""The library kept current: folder states, one queue of writes (index, rescan, remove), and a
file-system watcher that turns bursts of changes into one incremental rescan per folder.

A QObject without widgets. Writes run one at a time as tasks, so indexing and removing never
race over the vector index; a folder added before the model is there waits in the queue.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal, Slot

from gallery_app.core.catalog import is_within
from gallery_app.ui.engine import IndexTask, Listing, ListLibraryTask, RemoveFolderTask
from gallery_app.ui.tasks import Task, TaskRunner

if TYPE_CHECKING:
    from gallery_app.core.embeddings import SiglipEncoder
    from gallery_app.core.indexer import IndexReport
    from gallery_app.core.library import Library

log = logging.getLogger(__name__)

WATCH_SETTLE_MS = 1500  # a copy of 500 photos is one rescan, started once it has settled
MAX_WATCHED_DIRS = 4000  # inotify watches are a per-user budget; past this, rescans cover it

# Folder states, as the library panel words them.
INDEXING = "indexing"
QUEUED = "queued"
UP_TO_DATE = "up to date"
OFFLINE = "offline"
WAITING = "waiting for the model"
READ_ONLY = "read-only"


@dataclass(frozen=True)
class FolderRow:
    path: str
    photos: int
    failed: int
    state: str


class LibraryController(QObject):
    listed = Signal(object)  # Listing: after every change, the library as it is now
    folders_changed = Signal(object)  # list[FolderRow]
    indexing_started = Signal(str, int)  # folder, folders still queued after it
    indexing_progress = Signal(int, int, float)  # done, total, images/s
    indexing_finished = Signal(object)  # IndexReport (or None when the run failed)
    changed = Signal()  # photos were added, changed or removed: results may be stale
    idle = Signal()  # nothing queued or running, and the listing is current
    message = Signal(str)  # a passing note for the status bar
    refused = Signal(str)  # a request that cannot be done now, and why

    def __init__(self, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.library: Library | None = None
        self.encoder: SiglipEncoder | None = None
        self.listing = Listing([], [])
        self.last_report: IndexReport | None = None
        self._queue: deque[tuple[str, str]] = deque()  # (action, folder)
        self._task: Task | None = None
        self._current: tuple[str, str] | None = None
        self._offline: set[str] = set()  # folders whose last scan found them unplugged
        self._list_again = False
        self._listing_task: ListLibraryTask | None = None
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._on_directory_changed)
        self._settle: dict[str, QTimer] = {}
        self.settle_ms = WATCH_SETTLE_MS
        self._stopped = False
        self._walked: set[str] = set()  # roots whose subfolders are being watched
        self._rewalk: set[str] = set()  # roots that changed since: walk them again

    # -- inputs -----------------------------------------------------------------------------
    def set_library(self, library: Library) -> None:
        """A library to browse (the model may still be loading)."""
        if self.encoder is not None and self.encoder.model_id != library.model_id:
            self.encoder = None  # another model's library: its folders wait for that model
        self.library = library
        self.refresh()

    def set_encoder(self, library: Library, encoder: SiglipEncoder) -> None:
        """The model is there: every folder is rescanned in the background, then watched."""
        self.library, self.encoder = library, encoder
        if not library.read_only:
            for folder in library.catalog.folders():
                self._enqueue("index", folder.path)
        self._next()
        self.refresh()

    @property
    def read_only(self) -> bool:
        return self.library is not None and self.library.read_only

    @property
    def busy(self) -> bool:
        return self._task is not None or bool(self._queue)

    @property
    def indexing(self) -> bool:
        return self._current is not None and self._current[0] == "index"

    def add_folders(self, folders: list[str]) -> bool:
        """Queue folders for indexing; False (and `refused`) when they cannot be."""
        if self.read_only:
            self.refused.emit(
                "Another gallery-app is writing to this library; add folders when it is done."
            )
            return False
        for folder in folders:
            self._enqueue("index", os.path.abspath(folder))
        if self.encoder is None:
            self.message.emit("The folder will be indexed as soon as the model is loaded.")
            self._emit_folders()
        self._next()
        return True

    @Slot(str)
    def rescan(self, folder: str = "") -> bool:
        """Rescan one folder, or every folder when "" (incremental: only changes encode)."""
        if self.read_only:
            self.refused.emit("The library is open read-only (another gallery-app is writing).")
            return False
        folders = [folder] if folder else [row.path for row in self.listing.folders]
        for path in folders:
            self._enqueue("index", path)
        self._next()
        return True

    def remove(self, folder: str) -> None:
        self._queue = deque(job for job in self._queue if job[1] != folder)
        if self._current == ("index", folder) and self._task is not None:
            self._task.cancel()
        self._enqueue("remove", folder)
        self._next()

    def cancel(self) -> None:
        """Stop the running index after its batch and drop what is queued."""
        self._queue = deque(job for job in self._queue if job[0] != "index")
        if self._task is not None and self.indexing:
            self._task.cancel()

    @Slot()
    def refresh(self) -> None:
        if self._stopped:
            return
        if self.library is None:
            self._on_listed(Listing([], []))
            return
        if self._listing_task is not None:
            self._list_again = True  # one more listing after this one, not one per request
            return
        task = ListLibraryTask(self.library)
        task.result.connect(self._on_listed)
        task.done.connect(self._on_listing_done)
        self._listing_task = task
        self.runner.start(task)

    def stop(self) -> None:
        self._stopped = True
        self._queue.clear()
        for timer in self._settle.values():
            timer.stop()

    # -- the write queue ---------------------------------------------------------------------
    def _enqueue(self, action: str, folder: str) -> None:
        if (action, folder) not in self._queue:
            self._queue.append((action, folder))

    def _next(self) -> None:
        if self._task is not None or self.library is None or self._stopped:
            return
        while self._queue:
            action, folder = self._queue[0]
            if action == "index" and self.encoder is None:
                return  # waits for the model
            self._queue.popleft()
            if action == "index" and not os.path.isdir(folder):
                self._offline.add(folder)  # an unplugged drive: its photos stay
                continue
            self._start(action, folder)
            return
        self._emit_folders()

    def _start(self, action: str, folder: str) -> None:
        assert self.library is not None
        task: Task
        if action == "index":
            assert self.encoder is not None
            task = IndexTask(self.library, self.encoder, folder)
            task.progress.connect(self.indexing_progress)
            task.result.connect(self._on_index_report)
            task.errored.connect(self._on_index_failed)
        else:
            task = RemoveFolderTask(self.library, folder)
        task.done.connect(self._on_task_done)
        self._task, self._current = task, (action, folder)
        self.last_report = None
        self._emit_folders()
        if action == "index":
            self.indexing_started.emit(folder, len(self._queue))
        self.runner.start(task)

    @Slot(object)
    def _on_index_report(self, report: IndexReport) -> None:
        from gallery_app.core.indexer import EMPTIED_FOLDER

        self.last_report = report
        if self._current is not None:
            folder = self._current[1]
            emptied = any(f.reason.startswith(EMPTIED_FOLDER) for f in report.failed)
            (self._offline.add if emptied else self._offline.discard)(folder)

    @Slot(str)
    def _on_index_failed(self, _message: str) -> None:
        self.last_report = None

    @Slot()
    def _on_task_done(self) -> None:
        if self._stopped:
            return
        action = self._current[0] if self._current else ""
        self._task, self._current = None, None
        report = self.last_report
        if action == "index":
            self.indexing_finished.emit(report)
        if action == "remove" or (report is not None and (report.indexed or report.removed)):
            self.changed.emit()
        self.refresh()
        self._next()

    # -- listing ---------------------------------------------------------------------------
    @Slot(object)
    def _on_listed(self, listing: Listing) -> None:
        if self._stopped:
            return  # the window closed while the listing ran
        self.listing = listing
        self._watch([row.path for row in listing.folders if row.online])
        self._emit_folders()
        self.listed.emit(listing)

    @Slot()
    def _on_listing_done(self) -> None:
        self._listing_task = None
        if self._list_again:
            self._list_again = False
            self.refresh()
        elif not self.busy:
            self.idle.emit()

    def rows(self) -> list[FolderRow]:
        rows = []
        known = set()
        for folder in self.listing.folders:
            known.add(folder.path)
            rows.append(FolderRow(folder.path, folder.photos, folder.failed, self._state(folder)))
        for action, path in self._queue:  # added before the model was there
            if action == "index" and path not in known:
                known.add(path)
                rows.append(FolderRow(path, 0, 0, WAITING if self.encoder is None else QUEUED))
        if self._current is not None and self._current[1] not in known:
            rows.append(FolderRow(self._current[1], 0, 0, INDEXING))
        return rows

    def _state(self, folder: Any) -> str:
        if self._current == ("index", folder.path):
            return INDEXING
        if not folder.online or folder.path in self._offline:
            return OFFLINE
        if ("index", folder.path) in self._queue:
            return WAITING if self.encoder is None else QUEUED
        if self.read_only:
            return READ_ONLY
        return UP_TO_DATE if self.encoder is not None else WAITING

    def _emit_folders(self) -> None:
        self.folders_changed.emit(self.rows())

    # -- watching ----------------------------------------------------------------------------
    def _watch(self, roots: list[str]) -> None:
        """Watch every folder's subfolders (inotify is not recursive); walked once per root,
        again only after a change under it."""
        current = set(self._watcher.directories())
        gone = [d for d in current if not any(is_within(d, root) for root in roots)]
        if gone:
            self._watcher.removePaths(gone)
        self._walked &= set(roots)
        new: list[str] = []
        budget = MAX_WATCHED_DIRS - len(current) + len(gone)
        for root in roots:
            if root in self._walked and root not in self._rewalk:
                continue
            self._walked.add(root)
            self._rewalk.discard(root)
            for directory, subdirs, _files in os.walk(root):
                subdirs[:] = [d for d in subdirs if not d.startswith(".")]
                if directory not in current and len(new) < budget:
                    new.append(directory)
        if new:
            self._watcher.addPaths(new)

    @Slot(str)
    def _on_directory_changed(self, directory: str) -> None:
        root = next((r.path for r in self.listing.folders if is_within(directory, r.path)), None)
        if root is None or self.encoder is None or self.read_only:
            return
        timer = self._settle.get(root)
        if timer is None:
            timer = QTimer(self, singleShot=True, interval=self.settle_ms)
            timer.timeout.connect(lambda root=root: self._settled(root))
            self._settle[root] = timer
        timer.start()  # restarted by every change: one rescan per burst

    def _settled(self, root: str) -> None:
        # During a scan of the same folder this queues one more pass after it.
        self._enqueue("index", root)
        self._rewalk.add(root)  # a new subfolder gets watched too
        self._next()
