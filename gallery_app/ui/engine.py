"""The jobs the window runs in the background (Task subclasses) and what they hand back.

Each task gets the core objects it needs when it is created and returns plain core objects;
nothing here is read by the GUI thread while a task runs. torch and transformers are imported
inside `LoadModelTask.work`, after the window is on screen.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal

from gallery_app.core.errors import (
    GalleryError,
    LibraryInUse,
    LibraryUnreachable,
    ModelUnavailable,
)
from gallery_app.ui.tasks import Task

if TYPE_CHECKING:
    from gallery_app.core.embeddings import SiglipEncoder
    from gallery_app.core.indexer import IndexReport
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
    device: str = "cpu"
    image_fp16: bool = False  # the image tower runs under fp16 autocast (an accelerator)


@dataclass(frozen=True)
class Session:
    """A loaded model and the library it searches: handed to the GUI thread once, then lent
    to the tasks that need it (the catalog is thread-safe; the GUI only reads `info`)."""

    info: ModelInfo
    encoder: SiglipEncoder
    library: Library
    searcher: Searcher


@dataclass(frozen=True)
class FolderState:
    """One library folder as the library panel shows it."""

    path: str
    photos: int  # searchable
    failed: int  # files that could not be read
    online: bool  # the folder exists (an unplugged drive's folder keeps its photos)


@dataclass(frozen=True)
class Listing:
    images: list[Any]  # ImageInfo, newest first
    folders: list[FolderState] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, why) not readable


def open_library(
    data_dir: Path, model_id: str, dim: int | None
) -> tuple[Library | None, list[str]]:
    """The library of `model_id` (read-only beside another writer) and what to tell the user.

    With dim None, only a library that already exists is opened (browsing needs no model)."""
    from gallery_app.core.library import Library, library_dim

    if dim is None:
        dim = library_dim(data_dir, model_id)  # SQLite here, or GALLERY_APP_LIBRARY's server
        if dim is None:
            return None, []  # nothing indexed for this model yet
    notes: list[str] = []
    try:
        library = Library(data_dir, model_id, dim)
    except LibraryInUse as exc:
        # Another gallery-app (say, `gallery-app index`) is writing: browse and search what it
        # has committed, and leave the writing to it.
        library = Library(data_dir, model_id, dim, read_only=True)
        notes.append(
            f"{exc} Opened read-only: browsing and searching work; adding folders waits "
            "until it is done."
        )
    notes += library.warnings  # e.g. the index was rebuilt, the catalog upgraded
    return library, notes


class LoadModelTask(Task):
    """Open the library for browsing, fetch the model if needed, load it: a Session."""

    title = "Loading the model"
    library_opened = Signal(object)  # Library, before the model is there
    library_unreachable = Signal(str)  # the shared library's server cannot be reached
    note = Signal(str)  # something the user should hear about, not a failure
    download_progress = Signal(object)  # DownloadProgress
    unavailable = Signal(str)  # the model cannot be loaded: why, and what to do

    def __init__(
        self,
        data_dir: Path,
        model: str | None,
        expansions_file: Path | None,
        fast: bool | None,
        library: Library | None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.model = model
        self.expansions_file = expansions_file
        self.fast = fast
        self.library = library  # the one already open, reused when it is this model's

    def work(self) -> Session | None:
        from gallery_app.core.embeddings import resolve_model_id

        model_id = resolve_model_id(self.model, self.data_dir)
        if self.library is None or self.library.model_id != model_id:
            try:
                self._use(*open_library(self.data_dir, model_id, None))
            except GalleryError as exc:
                self.note.emit(str(exc))
        from gallery_app.core.download import DownloadCancelled

        try:
            return self._load(model_id)
        except DownloadCancelled:
            self.unavailable.emit(
                f"Download of {model_id} cancelled. What was downloaded is kept: Retry "
                "continues from there."
            )
        except ModelUnavailable as exc:
            self.unavailable.emit(str(exc))
        except LibraryUnreachable as exc:  # the model is fine; the shared library's server is not
            self.library_unreachable.emit(str(exc))
        except GalleryError:
            raise
        except Exception as exc:  # a model that cannot load is a state, not a crash
            log.exception("loading the model failed")
            self.unavailable.emit(f"Cannot load model {model_id!r}: {exc}")
        return None

    def _load(self, model_id: str) -> Session:
        from gallery_app.core.download import download_model, is_cached
        from gallery_app.core.embeddings import SiglipEncoder, resolve_precision
        from gallery_app.core.expansion import Expander, load_dictionary
        from gallery_app.core.search import Searcher

        if not is_cached(model_id):
            download_model(
                model_id,
                progress=self.download_progress.emit,
                cancelled=lambda: self.token.cancelled,
            )
        encoder = SiglipEncoder.load(model_id, precision=resolve_precision(self.fast))
        expander = Expander(load_dictionary(self.expansions_file))
        if self.library is None or self.library.model_id != encoder.model_id:
            self._use(*open_library(self.data_dir, encoder.model_id, encoder.dim))
        assert self.library is not None
        info = ModelInfo(
            encoder.model_id,
            encoder.dim,
            encoder.logit_scale,
            encoder.logit_bias,
            encoder.precision,
            encoder.device,
            encoder.image_fp16,
        )
        return Session(info, encoder, self.library, Searcher(self.library, encoder, expander))

    def _use(self, library: Library | None, notes: list[str]) -> None:
        for note in notes:
            self.note.emit(note)
        if library is not None:
            self.library = library
            self.library_opened.emit(library)


class ListLibraryTask(Task):
    """Every searchable photo (newest first) and each folder's count, failures and state."""

    title = "Listing the library"

    def __init__(self, library: Library) -> None:
        super().__init__()
        self.library = library

    def work(self) -> Listing:
        catalog = self.library.catalog
        folders = []
        for folder in catalog.folders():
            files = catalog.files_in_folder(folder.id).values()
            folders.append(
                FolderState(
                    folder.path,
                    sum(1 for f in files if f.indexed),
                    sum(1 for f in files if f.error is not None),
                    os.path.isdir(folder.path),
                )
            )
        return Listing(catalog.browse(), folders, catalog.failures())


class SearchTask(Task):
    """Progressive: the query as typed is answered first, the expanded search refines it.

    Exact over the whole library (top_k=None): "Hide below" and every count are the truth,
    not a cut of a candidate pool."""

    title = "Search"
    answered = Signal(int, object, bool)  # request id, SearchHits, final (complete) answer

    def __init__(
        self, searcher: Searcher, request_id: int, query: str, expand: bool, aggregate: str
    ) -> None:
        super().__init__()
        self.searcher = searcher
        self.request_id = request_id
        self.query = query
        self.expand = expand
        self.aggregate = aggregate

    def work(self) -> None:
        # A query of parts ("beach -people") is one CombinedHits, the parts as typed first.
        for hits, final in self.searcher.search_steps(
            self.query, top_k=None, expand=self.expand, aggregate=self.aggregate, progressive=True
        ):
            if self.cancelled:  # a newer search was asked for: skip the expensive next step
                return
            self.answered.emit(self.request_id, hits, final)


class ImageSearchTask(Task):
    """Find similar: every photo by its cosine with a library photo (no model call), on the
    image-to-image scale; answered once, complete."""

    title = "Find similar"
    answered = Signal(int, object, bool)  # request id, SearchHits, final (always True)

    def __init__(self, searcher: Searcher, request_id: int, image_id: int) -> None:
        super().__init__()
        self.searcher = searcher
        self.request_id = request_id
        self.image_id = image_id

    def work(self) -> None:
        from gallery_app.core.similar import photo_query

        query = photo_query(self.searcher.library, self.image_id)
        if not self.cancelled:
            self.answered.emit(self.request_id, self.searcher.search_image(query), True)


class IndexTask(Task):
    """One indexing run over one folder (incremental: only new or changed files are encoded)."""

    title = "Indexing"
    progress = Signal(int, int, float)  # done, total, images/s

    def __init__(self, library: Library, encoder: SiglipEncoder, folder: str) -> None:
        super().__init__()
        self.library = library
        self.encoder = encoder
        self.folder = folder

    def work(self) -> IndexReport:
        from gallery_app.core.indexer import Indexer, Progress

        def report(progress: Progress) -> None:
            self.progress.emit(progress.done, progress.total, progress.rate)

        return Indexer(self.library, self.encoder).index(
            [self.folder], progress=report, cancel=self.token
        )


class RemoveFolderTask(Task):
    """Forget a folder and its photos (the files on disk are never touched)."""

    title = "Removing the folder"

    def __init__(self, library: Library, folder: str) -> None:
        super().__init__()
        self.library = library
        self.folder = folder

    def work(self) -> str:
        if self.library.read_only:
            raise GalleryError("The library is open read-only (another gallery-app is writing).")
        _, ids = self.library.catalog.remove_folder(self.folder)
        self.library.index.remove(ids)
        self.library.save_index()
        return self.folder


class PrecomputeTask(Task):
    """Encodes the expansion dictionary's prompts once per model, in the background.

    The searcher lets a typed search go ahead of the next batch, so this never delays one by
    more than a batch; each batch is stored as it finishes, so cancelling loses at most one.
    """

    title = "Preparing synonyms"
    progress = Signal(int, int)  # done, total

    def __init__(self, searcher: Searcher) -> None:
        super().__init__()
        self.searcher = searcher

    def work(self) -> int:
        from gallery_app.core.indexer import Progress

        def report(progress: Progress) -> None:
            self.progress.emit(progress.done, progress.total)

        return self.searcher.precompute_dictionary(progress=report, cancel=self.token)
