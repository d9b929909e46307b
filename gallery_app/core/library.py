"""A library on disk: one catalog + vector index per model, and the shared thumbnail cache."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gallery_app.core.catalog import Catalog
from gallery_app.core.imaging import ThumbnailCache
from gallery_app.core.index import VectorIndex, read_sidecar, sidecar_path

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


@dataclass(frozen=True)
class RepairReport:
    rebuilt: bool
    added: int
    removed: int

    @property
    def changed(self) -> bool:
        return self.rebuilt or self.added > 0 or self.removed > 0


class Library:
    """Catalog (truth) + index (speed), kept in agreement: the index is repaired on open."""

    def __init__(self, data_dir: Path, model_id: str, dim: int) -> None:
        self.data_dir = data_dir
        self.model_id = model_id
        self.dim = dim
        self.folder = library_folder(data_dir, model_id)
        self.catalog = Catalog(self.folder / "catalog.sqlite", model_id, dim)
        self.thumbnails = ThumbnailCache(data_dir / "thumbnails")
        self.index_path = self.folder / "vectors.hnsw"
        try:
            self.index, self.repair = self._open_index()
        except BaseException:
            self.catalog.close()
            raise

    def _open_index(self) -> tuple[VectorIndex, RepairReport]:
        catalog_ids = self.catalog.vector_ids()
        generation = self.catalog.generation
        if self.index_path.exists():
            try:
                sidecar = read_sidecar(sidecar_path(self.index_path), self.dim)
                # A sidecar from another generation may be older than the index file (a crash
                # between the two replaces): then ask hnswlib which labels are deleted.
                index, state = VectorIndex.load(
                    self.index_path, self.dim, verify_deleted=sidecar.generation != generation
                )
                report = self._repair(index, state.generation, catalog_ids)
            except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
                log.warning("vector index %s unusable (%s); rebuilding", self.index_path, exc)
            else:
                if report.changed:
                    log.info("index repaired from catalog: %s", report)
                    index.save(self.index_path, generation)
                return index, report
        return self._rebuild(len(catalog_ids))

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

    def _rebuild(self, count: int) -> tuple[VectorIndex, RepairReport]:
        index = VectorIndex(self.dim, capacity=max(1024, count))
        ids, vectors = self.catalog.vectors()
        index.add(ids, vectors)
        if len(ids) or self.index_path.exists():
            index.save(self.index_path, self.catalog.generation)
        return index, RepairReport(True, len(ids), 0)

    def save_index(self) -> None:
        self.index.save(self.index_path, self.catalog.generation)

    def remove_ids(self, ids: list[int]) -> None:
        """Remove images from catalog then index (the catalog commit is what counts)."""
        if ids:
            self.catalog.remove_images(ids)
            self.index.remove(ids)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
