"""A library on disk: one catalog + vector index per model, and the shared thumbnail cache."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gallery_app.core.catalog import Catalog, read_identity
from gallery_app.core.errors import GalleryError, NotRegularFile
from gallery_app.core.imaging import ThumbnailCache
from gallery_app.core.index import IndexState, VectorIndex
from gallery_app.core.locking import WriterLock

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


def known_libraries(data_dir: Path) -> list[tuple[str, int]]:
    """(model id, dim) of every library under data_dir whose catalog can be read."""
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

    One process writes to a library at a time (a `WriterLock`; a second writer gets
    `LibraryInUse`). read_only=True is how every reading command opens it (search, tune,
    debug-scores): no writer lock, so readers never keep an indexer out or each other; it
    sees what the writer has committed (SQLite's WAL), changes nothing on disk, and repairs or
    rebuilds the index in memory only. A library not created yet reads as empty.
    """

    def __init__(self, data_dir: Path, model_id: str, dim: int, read_only: bool = False) -> None:
        self.data_dir = data_dir
        self.model_id = model_id
        self.dim = dim
        self.read_only = read_only
        self.folder = library_folder(data_dir, model_id)
        self.index_path = self.folder / "vectors.hnsw"
        self.thumbnails = ThumbnailCache(data_dir / "thumbnails")
        self._writer = WriterLock(self.folder / "library.lock", str(self.folder))
        if not read_only:
            self._writer.acquire()
        try:
            self.catalog = Catalog(self.folder / "catalog.sqlite", model_id, dim, read_only)
            try:
                self.index, self.repair = self._open_index()
            except BaseException:
                self.catalog.close()
                raise
        except BaseException:
            self._writer.release()
            raise

    @property
    def warnings(self) -> list[str]:
        """What happened on open that the user should hear about (index rebuilt, upgrade)."""
        notes = list(self.repair.warnings)
        if self.catalog.migrated_from is not None:
            notes.append(
                f"The library was upgraded from schema {self.catalog.migrated_from}; the old "
                f"catalog was kept as {self.catalog.backup_path}."
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
        if not self.read_only:
            self.index.save(self.index_path, self.catalog.generation)

    def remove_ids(self, ids: list[int]) -> None:
        """Remove images from catalog then index (the catalog commit is what counts)."""
        if ids:
            self.catalog.remove_images(ids)
            self.index.remove(ids)

    def close(self) -> None:
        try:
            self.catalog.close()
        finally:
            self._writer.release()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
