"""The model's life in the window: loading, ready, failed or missing, and which one is used.

A QObject without widgets. Loading runs as a LoadModelTask; the GUI thread receives the
Session it builds and is from then on the only owner of those objects' lifetime.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from gallery_app.core.embeddings import MODEL_ENV, looks_like_path
from gallery_app.ui.engine import LoadModelTask, Session
from gallery_app.ui.settings import Settings
from gallery_app.ui.tasks import TaskRunner

if TYPE_CHECKING:
    from gallery_app.core.library import Library

LOADING, READY, FAILED, MISSING = "loading", "ready", "failed", "missing"
UNREACHABLE = "unreachable"  # the model is fine; the shared library's server cannot be reached


class ModelController(QObject):
    library_opened = Signal(object)  # Library: browsing works before the model is there
    ready = Signal(object)  # Session
    unavailable = Signal(str, str)  # FAILED or MISSING, and the message saying what to do
    download_progress = Signal(object)  # DownloadProgress
    note = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        settings: Settings,
        data_dir: Path,
        model: str | None,
        expansions_file: Path | None,
        fast: bool | None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.settings = settings
        self.data_dir = data_dir
        # --model or $GALLERY_APP_MODEL beat the model chosen in the window last time.
        self.requested = model or os.environ.get(MODEL_ENV) or settings.model
        self.expansions_file = expansions_file
        self.fast = fast
        self.state = LOADING
        self.session: Session | None = None
        self.library: Library | None = None
        self._task: LoadModelTask | None = None
        self._chosen_here = False
        self._closed = False  # the window closed: answers still queued are dropped
        # Retry pressed after a load failed but before its task finished: run once it has.
        self._retry: tuple[str | None] | None = None

    @property
    def current(self) -> str:
        """The model this window uses or is loading: hub id or folder, as resolved."""
        from gallery_app.core.embeddings import resolve_model_id

        return resolve_model_id(self.requested, self.data_dir)

    def switch(self, model: str) -> str | None:
        """Use another model (chosen in Preferences): its own library opens with it, the
        current one stays on disk untouched. Returns why not, or None when it started."""
        from gallery_app.core.embeddings import resolve_model_id

        if resolve_model_id(model, self.data_dir) == self.current and self.state in (
            LOADING,
            READY,
        ):
            return None  # already this one
        if self.state == LOADING and self._task is not None:
            return "A model is still loading; wait for it or cancel its download first."
        self.start(model)
        return None

    def cancel_download(self) -> None:
        """Cancel (the status bar's button): the download stops at its next chunk."""
        if self._task is not None:
            self._task.cancel()

    def start(self, model: str | None = None) -> bool:
        """Load `model` (a folder chosen in the window), or the requested one again."""
        if self._task is not None:
            if self.state == LOADING:
                return False
            # The failure is already shown (the banner's Retry is live) while its task winds
            # down: load again as soon as it has, instead of ignoring the click.
            self._retry = (model,)
            return True
        if model:
            self.requested, self._chosen_here = model, True
        self.state = LOADING
        task = LoadModelTask(
            self.data_dir, self.requested, self.expansions_file, self.fast, self.library
        )
        task.library_opened.connect(self._on_library_opened)
        task.note.connect(self.note)
        task.download_progress.connect(self.download_progress)
        task.unavailable.connect(self._on_unavailable)
        task.library_unreachable.connect(self._on_library_unreachable)
        task.result.connect(self._on_result)
        task.done.connect(self._on_done)
        self._task = task
        self.runner.start(task)
        return True

    @Slot(object)
    def _on_library_opened(self, library: Library) -> None:
        if self._closed:
            library.close()  # opened while the window was closing: release its lock
            return
        if self.library is not None and self.library is not library:
            self.library.close()
        self.library = library
        self.library_opened.emit(library)

    @Slot(str)
    def _on_unavailable(self, message: str) -> None:
        if self._closed:
            return
        model = self.requested or ""
        missing = looks_like_path(model) and not os.path.exists(os.path.expanduser(model))
        self.state = MISSING if missing else FAILED
        self.session = None
        self.unavailable.emit(self.state, message)

    @Slot(str)
    def _on_library_unreachable(self, message: str) -> None:
        if self._closed:
            return
        self.state = UNREACHABLE
        self.session = None
        self.unavailable.emit(UNREACHABLE, message)

    @Slot(object)
    def _on_result(self, session: Session | None) -> None:
        if session is None or self._closed:
            return
        self.session = session
        self.state = READY
        if self._chosen_here:
            self.settings.set_model(session.info.model_id)  # the next start uses it too
            self.settings.flush()
        self.ready.emit(session)

    @Slot()
    def _on_done(self) -> None:
        self._task = None
        if self.state == LOADING and not self._closed:  # failed with an error already reported
            self.state = FAILED
            self.unavailable.emit(FAILED, "The model could not be loaded (see View › Log).")
        if self._retry is not None and not self._closed:
            (model,), self._retry = self._retry, None
            self.start(model)

    def close(self) -> None:
        self._closed = True
        if self.library is not None:
            self.library.close()
            self.library = None
        self.session = None
