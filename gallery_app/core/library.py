"""A library on disk: one catalog + vector index per model, and the shared thumbnail cache."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gallery_app.core.catalog import Catalog, read_identity, stored_dim
from gallery_app.core.errors import GalleryError, NotRegularFile
from gallery_app.core.imaging import ThumbnailCache
from gallery_app.core.index import IndexState, VectorIndex
from gallery_app.core.locking import WriterLock
from gallery_app.core.pg_catalog import (
    LIBRARY_ENV,
    PgCandidates,
    PgCatalog,
    is_postgres_url,
    pg_known_libraries,
    read_pg_identity,
)
from gallery_app.core.store import CandidateIndex, CatalogStore

log = logging.getLogger(__name__)

DATA_DIR_ENV = "GALLERY_APP_DATA_DIR"
CONFIG_DIR_ENV = "GALLERY_APP_CONFIG_DIR"
APP_NAME = "gallery-app"


def default_data_dir() -> Path:
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_dir() -> Path:
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def library_folder(data_dir: Path, model_id: str) -> Path:
    """A readable, collision-free folder name per model id."""
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id.rstrip("/\\").split("/")[-1])[-48:]
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:10]
    return data_dir / "libraries" / f"{tail}-{digest}"


def library_location(location: str | os.PathLike[str] | None = None) -> str | None:
    """Where the libraries live: a postgresql:// URL, a folder (its libraries/ hold the SQLite
    catalogs) or None (the data folder). Given (--library), else $GALLERY_APP_LIBRARY, else the
    one chosen in the window's Preferences (settings.json), as with the model."""
    if location is None:
        location = os.environ.get(LIBRARY_ENV) or saved_library_location()
    return None if location is None else os.fspath(location)


def saved_library_location() -> str | None:
    """The library address saved in Preferences; None when none is (or the settings file
    cannot be read: the commands that need it report that)."""
    from gallery_app.core.settings_store import load_settings

    try:
        return load_settings().library
    except GalleryError as exc:
        log.debug("no saved library address: %s", exc)
        return None


def library_dim(data_dir: Path, model_id: str, location: str | None = None) -> int | None:
    """The vector size of this model's existing library, None when there is none yet."""
    where = library_location(location)
    if is_postgres_url(where):
        assert where is not None
        identity = read_pg_identity(where, model_id)
        return None if identity is None else identity[1]
    root = data_dir if where is None else Path(where)
    return stored_dim(library_folder(root, model_id) / "catalog.sqlite")


def known_libraries(data_dir: Path | str) -> list[tuple[str, int]]:
    """(model id, dim) of every library under data_dir whose catalog can be read (or, given
    a postgresql:// URL, of every library in that database)."""
    if is_postgres_url(data_dir):
        assert isinstance(data_dir, str)
        return pg_known_libraries(data_dir)
    data_dir = Path(data_dir)
    found = []
    for catalog in sorted((data_dir / "libraries").glob("*/catalog.sqlite")):
        try:
            found.append(read_identity(catalog))
        except GalleryError as exc:
            log.warning("%s", exc)
    return found


@dataclass(frozen=True)
class RepairReport:
    rebuilt: bool
    added: int
    removed: int
    warnings: tuple[str, ...] = ()  # for the user: shown by the CLI on stderr, by the GUI

    @property
    def changed(self) -> bool:
        return self.rebuilt or self.added > 0 or self.removed > 0


class Library:
    """Catalog (truth) + index (speed), kept in agreement: the index is repaired on open.

    Where the catalog lives is `location` (see library_location): SQLite + hnswlib files in
    the data folder by default, or a PostgreSQL database shared by several clients (then the
    server keeps the HNSW index, and writers lock folders, not the library: `folder_lock`).
    Thumbnails and the decode journal stay in this machine's data folder either way.

    On SQLite one process writes to a library at a time (a `WriterLock`; a second writer gets
    `LibraryInUse`). read_only=True is how every reading command opens it (search, tune,
    debug-scores): no writer lock, so readers never keep an indexer out or each other; it
    sees what the writer has committed (SQLite's WAL), changes nothing on disk, and repairs or
    rebuilds the index in memory only. A library not created yet reads as empty.
    """

    catalog: CatalogStore
    index: CandidateIndex

    def __init__(
        self,
        data_dir: Path,
        model_id: str,
        dim: int,
        read_only: bool = False,
        location: str | os.PathLike[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.model_id = model_id
        self.dim = dim
        self.read_only = read_only
        self.location = library_location(location)
        self.shared = is_postgres_url(self.location)
        # The SQLite files, or (PostgreSQL) this client's own state: the decode journal.
        root = data_dir if self.location is None or self.shared else Path(self.location)
        self.folder = library_folder(root, model_id)
        self.index_path = self.folder / "vectors.hnsw"
        self.thumbnails = ThumbnailCache(data_dir / "thumbnails")
        self._hnsw: VectorIndex | None = None
        self._writer: WriterLock | None = None
        if self.shared:
            assert self.location is not None
            pg = PgCatalog(self.location, model_id, dim, read_only)
            self.catalog, self.index = pg, PgCandidates(pg)
            self.repair = RepairReport(False, 0, 0)
            return
        self._writer = WriterLock(self.folder / "library.lock", str(self.folder))
        if not read_only:
            self._writer.acquire()
        try:
            self.catalog = self._sqlite = Catalog(
                self.folder / "catalog.sqlite", model_id, dim, read_only
            )
            try:
                self._hnsw, self.repair = self._open_index()
                self.index = self._hnsw
            except BaseException:
                self.catalog.close()
                raise
        except BaseException:
            self._writer.release()
            raise

    @property
    def where(self) -> str:
        """Where the catalog lives, for the user (a database address has no password)."""
        return str(self.catalog.path)

    @contextmanager
    def folder_lock(self, folder: str) -> Iterator[None]:
        """The right to index `folder` for the block. SQLite: the WriterLock taken on open
        already covers the library. PostgreSQL: a per-folder lock on the server, so clients
        index different folders at once (a second one on the same folder gets LibraryInUse)."""
        if isinstance(self.catalog, PgCatalog) and not self.read_only:
            with self.catalog.folder_lock(folder):
                yield
        else:
            yield

    @property
    def warnings(self) -> list[str]:
        """What happened on open that the user should hear about (index rebuilt, upgrade)."""
        notes = list(self.repair.warnings)
        if self.shared and self.catalog.migrated_from is not None:
            notes.append(f"The library was upgraded from schema {self.catalog.migrated_from}.")
        elif self.catalog.migrated_from is not None:
            notes.append(
                f"The library was upgraded from schema {self.catalog.migrated_from}; the old "
                f"catalog was kept as {self._sqlite.backup_path}."
            )
        return notes

    def _open_index(self) -> tuple[VectorIndex, RepairReport]:
        catalog_ids = self.catalog.vector_ids()
        generation = self.catalog.generation
        warnings: tuple[str, ...] = ()
        if self.index_path.exists() or self.index_path.is_symlink():
            try:
                index, state = self._load_index()
                report = self._repair(index, state.generation, catalog_ids)
            except (OSError, RuntimeError, ValueError, MemoryError, NotRegularFile) as exc:
                warnings = (self._set_aside_unusable_index(exc),)
            else:
                if report.changed:
                    log.info("index repaired from catalog: %s", report)
                    report = self._save_on_open(index, generation, report)
                return index, report
        return self._rebuild(len(catalog_ids), warnings)

    def _load_index(self) -> tuple[VectorIndex, IndexState]:
        """VectorIndex.load; a reader tries again when the writer replaced the sidecar and the
        index between its two reads (each replace is atomic, the pair is not)."""
        attempts = 3 if self.read_only else 1
        for attempt in range(attempts):
            try:
                return VectorIndex.load(self.index_path, self.dim)
            except ValueError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _save_on_open(
        self, index: VectorIndex, generation: int, report: RepairReport
    ) -> RepairReport:
        """Save a repaired or rebuilt index (a writer's job). When that fails (a full disk),
        the index in memory is still right: say so, and the next start repairs it again."""
        if self.read_only:
            return report
        try:
            index.save(self.index_path, generation)
        except GalleryError as exc:
            log.warning("%s", exc)
            note = f"{exc} The index was repaired in memory; the next start repairs it again."
            return RepairReport(
                report.rebuilt, report.added, report.removed, (*report.warnings, note)
            )
        return report

    def _set_aside_unusable_index(self, exc: BaseException) -> str:
        """Keep the unusable file (one copy) for a bug report; the catalog rebuilds the index."""
        message = (
            f"The vector index {self.index_path} could not be used ({_short(exc)}); it was "
            "rebuilt from the catalog. No photos were lost."
        )
        if self.read_only:
            message = message.replace("it was rebuilt", "it was rebuilt in memory")
        else:
            aside = self.index_path.with_name(self.index_path.name + ".unusable")
            try:
                os.replace(self.index_path, aside)
            except OSError as move_error:
                log.debug("could not set %s aside: %s", self.index_path, move_error)
        log.warning("%s", message)
        return message

    def _repair(
        self, index: VectorIndex, index_generation: int, catalog_ids: set[int]
    ) -> RepairReport:
        """Make the index hold exactly the catalog's vectors."""
        live = index.live_ids()
        extra = live - catalog_ids
        # Vectors written after the index was saved may have changed in place.
        changed_ids, changed = self.catalog.vectors(since_generation=index_generation)
        missing = catalog_ids - live - set(changed_ids.tolist())
        missing_ids, missing_vectors = self.catalog.vectors(ids=sorted(missing))
        index.remove(extra)
        index.add(changed_ids, changed)
        index.add(missing_ids, missing_vectors)
        return RepairReport(False, len(missing_ids) + len(changed_ids), len(extra))

    def _rebuild(
        self, count: int, warnings: tuple[str, ...] = ()
    ) -> tuple[VectorIndex, RepairReport]:
        index = VectorIndex(self.dim, capacity=max(1024, count))
        generation = self.catalog.generation
        ids, vectors = self.catalog.vectors()
        index.add(ids, vectors)
        report = RepairReport(True, len(ids), 0, warnings)
        if len(ids) or self.index_path.exists() or warnings:
            report = self._save_on_open(index, generation, report)
        return index, report

    def save_index(self) -> None:
        """Persist the index (a writer's job; a read-only library keeps it in memory)."""
        if not self.read_only and self._hnsw is not None:
            self._hnsw.save(self.index_path, self.catalog.generation)

    def remove_ids(self, ids: list[int]) -> None:
        """Remove images from catalog then index (the catalog commit is what counts)."""
        if ids:
            self.catalog.remove_images(ids)
            self.index.remove(ids)

    def close(self) -> None:
        try:
            self.catalog.close()
        finally:
            if self._writer is not None:
                self._writer.release()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
