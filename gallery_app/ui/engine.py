"""Workers: the engine (model + library + search) and indexing runs, each on its own QThread."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from gallery_app.core.errors import GalleryError, LibraryInUse, ModelUnavailable

if TYPE_CHECKING:  # the real imports happen on the worker thread, after the window is shown
    from gallery_app.core.embeddings import SiglipEncoder
    from gallery_app.core.library import Library
    from gallery_app.core.search import Searcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    dim: int
    logit_scale: float
    logit_bias: float
    precision: str = "fp32"


class EngineWorker(QObject):
    """Owns the encoder, the library and the searcher; lives on one QThread for the session.

    The GUI talks to it only through queued signals; results come back as signals carrying
    plain core objects. torch and transformers are imported here, after the window is shown.
    """

    model_ready = Signal(object)  # ModelInfo
    model_unavailable = Signal(str)
    download_progress = Signal(object)  # DownloadProgress, on the first run with a hub id
    library_listed = Signal(object)  # list[ImageInfo], newest first
    folders_listed = Signal(object)  # list[str]
    searched = Signal(int, object, bool)  # request id, SearchHits, final (expanded) answer
    error = Signal(str)

    def __init__(
        self,
        data_dir: Path,
        model_id: str | None,
        expansions_file: Path | None,
        fast: bool | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.requested_model = model_id
        self.expansions_file = expansions_file
        self.fast = fast  # int8 ("--fast"); None: $GALLERY_APP_INT8 decides
        self.encoder: SiglipEncoder | None = None
        self.library: Library | None = None
        self.searcher: Searcher | None = None
        self.latest_request = 0

    @Slot()
    def start(self) -> None:
        """Open the library first (browsing needs no model), then load the model."""
        from gallery_app.core.embeddings import resolve_model_id

        model_id = resolve_model_id(self.requested_model)
        try:
            self._open_library(model_id, dim=None)
        except GalleryError as exc:
            self.error.emit(str(exc))
        self._load_model(model_id)

    @Slot(str)
    def retry(self, model: str) -> None:
        """Try again, possibly with another model (hub id or folder)."""
        from gallery_app.core.embeddings import resolve_model_id

        self.requested_model = model or self.requested_model
        self._load_model(resolve_model_id(self.requested_model))

    def _load_model(self, model_id: str) -> None:
        from gallery_app.core.embeddings import SiglipEncoder, resolve_precision
        from gallery_app.core.expansion import Expander, load_dictionary
        from gallery_app.core.search import Searcher

        try:
            self._fetch_if_needed(model_id)
            encoder = SiglipEncoder.load(model_id, precision=resolve_precision(self.fast))
            expander = Expander(load_dictionary(self.expansions_file))
            if self.library is None or self.library.model_id != encoder.model_id:
                self._open_library(encoder.model_id, encoder.dim)
        except GalleryError as exc:
            if isinstance(exc, ModelUnavailable):
                self.model_unavailable.emit(str(exc))
            else:
                self.error.emit(str(exc))
            return
        except Exception as exc:  # never let a worker die silently
            log.exception("loading the model failed")
            self.model_unavailable.emit(f"Cannot load model {model_id!r}: {exc}")
            return
        assert self.library is not None
        self.encoder = encoder
        self.searcher = Searcher(self.library, encoder, expander)
        self.model_ready.emit(
            ModelInfo(
                encoder.model_id,
                encoder.dim,
                encoder.logit_scale,
                encoder.logit_bias,
                encoder.precision,
            )
        )

    def _fetch_if_needed(self, model_id: str) -> None:
        """A hub id not in the cache yet is downloaded here, with progress, before loading."""
        from gallery_app.core.download import download_model, is_cached

        if is_cached(model_id):
            return
        download_model(model_id, progress=self.download_progress.emit)

    def _open_library(self, model_id: str, dim: int | None) -> None:
        from gallery_app.core.catalog import stored_dim
        from gallery_app.core.library import Library, library_folder

        if dim is None:
            dim = stored_dim(library_folder(self.data_dir, model_id) / "catalog.sqlite")
            if dim is None:
                return  # nothing indexed for this model yet
        if self.library is not None:
            self.library.close()
            self.library = None
            self.searcher = None
        try:
            library = Library(self.data_dir, model_id, dim)
        except LibraryInUse as exc:
            # Another gallery-app (say, `gallery-app index`) is writing: browse and search what
            # it has committed, and leave the writing to it.
            library = Library(self.data_dir, model_id, dim, read_only=True)
            self.error.emit(
                f"{exc} Opened read-only: browsing and searching work; adding folders "
                "waits until it is done."
            )
        self.library = library
        for warning in library.warnings:  # e.g. the index was rebuilt, the catalog upgraded
            self.error.emit(warning)
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        if self.library is None:
            self.folders_listed.emit([])
            self.library_listed.emit([])
            return
        self.folders_listed.emit([f.path for f in self.library.catalog.folders()])
        self.library_listed.emit(self.library.catalog.browse())

    @Slot(int, str, bool)
    def search(self, request_id: int, query: str, expand: bool) -> None:
        """Progressive: the query as typed is answered first, the expanded search refines it.

        `latest_request` is written by the GUI thread; a search that is no longer the latest
        is skipped, or stops before its next (expensive) step.
        """
        if request_id != self.latest_request:
            return
        if self.searcher is None:
            self.error.emit("The model is not loaded yet, so searching is not possible.")
            return
        try:
            wanted = len(self.searcher.variants(query, expand))
            # top_k=None: every photo, exactly, so "Hide below" and the count are the truth.
            for hits in self.searcher.search_progressive(query, top_k=None, expand=expand):
                self.searched.emit(request_id, hits, len(hits.listed) == wanted)
                if request_id != self.latest_request:
                    return
        except GalleryError as exc:
            self.error.emit(str(exc))
        except Exception as exc:
            log.exception("search failed")
            self.error.emit(f"Search failed: {type(exc).__name__}: {exc}")

    @Slot(str)
    def remove_folder(self, path: str) -> None:
        if self.library is None:
            return
        if self.library.read_only:
            self.error.emit("The library is open read-only (another gallery-app is writing).")
            return
        _, ids = self.library.catalog.remove_folder(path)
        self.library.index.remove(ids)
        self.library.save_index()
        self.refresh()

    @Slot()
    def shutdown(self) -> None:
        if self.library is not None:
            self.library.close()
            self.library = None


class IndexWorker(QObject):
    """One indexing run (superqt pattern: started -> run, done -> quit, deleteLater)."""

    progress = Signal(int, int, float)  # done, total, images/s
    done = Signal(object)  # IndexReport, or None when the run failed
    failed = Signal(str)

    def __init__(self, library: object, encoder: object, folders: list[str]) -> None:
        super().__init__()
        from gallery_app.core.indexer import CancelToken

        self.library = library
        self.encoder = encoder
        self.folders = folders
        self.token = CancelToken()

    def cancel(self) -> None:
        """Thread-safe: the run stops after the current batch."""
        self.token.cancel()

    @Slot()
    def run(self) -> None:
        from gallery_app.core.indexer import Indexer, Progress

        def report(progress: Progress) -> None:
            self.progress.emit(progress.done, progress.total, progress.rate)

        try:
            result = Indexer(self.library, self.encoder).index(  # type: ignore[arg-type]
                self.folders, progress=report, cancel=self.token
            )
        except GalleryError as exc:
            self.failed.emit(str(exc))
            result = None
        except Exception as exc:
            log.exception("indexing failed")
            self.failed.emit(f"Indexing failed: {type(exc).__name__}: {exc}")
            result = None
        self.done.emit(result)


class PrecomputeWorker(QObject):
    """Encodes the expansion dictionary's prompts once per model, in the background.

    The searcher lets a typed search go ahead of the next batch, so this never delays one by
    more than a batch; each batch is stored as it finishes, so cancelling loses at most one.
    """

    progress = Signal(int, int)  # done, total
    done = Signal(int)  # prompts encoded in this run
    failed = Signal(str)

    def __init__(self, searcher: Searcher) -> None:
        super().__init__()
        from gallery_app.core.indexer import CancelToken

        self.searcher = searcher
        self.token = CancelToken()

    def cancel(self) -> None:
        self.token.cancel()

    @Slot()
    def run(self) -> None:
        from gallery_app.core.indexer import Progress

        def report(progress: Progress) -> None:
            self.progress.emit(progress.done, progress.total)

        encoded = 0
        try:
            encoded = self.searcher.precompute_dictionary(progress=report, cancel=self.token)
        except Exception as exc:  # a cache that could not be filled only costs speed
            log.exception("precomputing the dictionary failed")
            self.failed.emit(f"Preparing synonyms failed: {type(exc).__name__}: {exc}")
        self.done.emit(encoded)
