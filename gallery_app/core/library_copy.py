"""`library copy`: move a library between backends (SQLite <-> PostgreSQL) without re-encoding.

Copies folders, images (vectors, failures, dates, sizes, fingerprints), the file's keywords,
title and caption, the user's tags and descriptions, relevance marks and the text-vector
cache. Folder by folder, in batches of paths in sorted order, each batch one transaction in
the target: an interrupted copy run again skips what arrived (same path, mtime, size and
fingerprint) and continues. It ends by comparing counts and a checksum of the vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from gallery_app.core.catalog import FileState, ImageRecord
from gallery_app.core.errors import GalleryError
from gallery_app.core.library import Library
from gallery_app.core.store import CatalogStore

COPY_BATCH = 500

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class LibrarySummary:
    """What a library holds, compared between source and target after a copy."""

    folders: int
    photos: int  # searchable (with a vector)
    failures: int
    tagged: int  # photos with any tag, description, title or caption
    marks: int
    cached_texts: int
    vector_checksum: str  # order-free: every (path, vector) pair, summed as 64-bit hashes

    def lines(self) -> list[str]:
        return [
            f"folders {self.folders}, photos {self.photos}, failures {self.failures}",
            f"photos with metadata {self.tagged}, marks {self.marks}, "
            f"cached texts {self.cached_texts}",
            f"vector checksum {self.vector_checksum}",
        ]


@dataclass(frozen=True)
class CopyReport:
    copied: int  # image rows written this run
    skipped: int  # already in the target (an earlier, interrupted run)
    source: LibrarySummary
    target: LibrarySummary

    @property
    def verified(self) -> bool:
        return self.source == self.target


def summarize(catalog: CatalogStore) -> LibrarySummary:
    total = 0
    ids = sorted(catalog.vector_ids())
    for start in range(0, len(ids), COPY_BATCH):
        chunk = ids[start : start + COPY_BATCH]
        found, vectors = catalog.vectors(ids=chunk)
        info = catalog.images(found.tolist())
        for image_id, vector in zip(found.tolist(), vectors, strict=True):
            total += _row_hash(info[image_id].path, vector)
    return LibrarySummary(
        folders=len(catalog.folders()),
        photos=len(ids),
        failures=len(catalog.failures()),
        tagged=len(catalog.metadata()),
        marks=len(catalog.marks()),
        cached_texts=len(catalog.text_cache_items()),
        vector_checksum=f"{total % (1 << 64):016x}",
    )


def _row_hash(path: str, vector: np.ndarray) -> int:
    digest = hashlib.sha256(path.encode("utf-8", "surrogateescape"))
    digest.update(np.ascontiguousarray(vector, dtype="<f4").tobytes())
    return int.from_bytes(digest.digest()[:8], "little")


def copy_library(
    source: Library,
    target: Library,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = COPY_BATCH,
) -> CopyReport:
    """Copy source into target (opened for writing, same model); see the module docstring."""
    if (source.model_id, source.dim) != (target.model_id, target.dim):
        raise GalleryError("A library is copied only into a library of the same model.")
    if target.read_only:
        raise GalleryError(f"The target library {target.where} is open read-only.")
    src, dst = source.catalog, target.catalog
    copied = skipped = 0
    folders = src.folders()
    total = sum(len(src.files_in_folder(f.id)) for f in folders)
    for folder in folders:
        with target.folder_lock(folder.path):
            into = dst.add_folder(folder.path)
            states = src.files_in_folder(folder.id)
            present = dst.files_in_folder(into.id)
            todo = []
            for path in sorted(states):
                state, there = states[path], present.get(path)
                same = there is not None and (
                    there.mtime_ns,
                    there.size,
                    there.fingerprint,
                    there.indexed,
                    there.error,
                ) == (state.mtime_ns, state.size, state.fingerprint, state.indexed, state.error)
                if same:
                    skipped += 1
                else:
                    todo.append(path)
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                copied += _copy_batch(source, target, into.id, batch, states)
                if progress is not None:
                    progress(skipped + copied, total)
        # Metadata of photos skipped above may have changed since: brought up to date too.
        _copy_user_metadata(src, dst, sorted(states))
    _copy_marks(src, dst)
    for items in _chunks(src.text_cache_items(), batch_size):
        dst.store_text_vectors(dict(items))
    target.save_index()
    return CopyReport(copied, skipped, summarize(src), summarize(dst))


def _copy_batch(
    source: Library,
    target: Library,
    folder_id: int,
    paths: list[str],
    folder_states: dict[str, FileState],
) -> int:
    src, dst = source.catalog, target.catalog
    ids = src.ids_for_paths(paths)
    info = src.images(ids.values())
    vector_ids, vectors = src.vectors(ids=list(ids.values()))
    vector_of = dict(zip(vector_ids.tolist(), vectors, strict=True))
    metadata = src.metadata(ids.values())
    records = []
    for path in paths:
        image_id = ids[path]
        state, image, meta = folder_states[path], info[image_id], metadata.get(image_id)
        records.append(
            ImageRecord(
                path=path,
                folder_id=folder_id,
                mtime_ns=state.mtime_ns,
                size=state.size,
                width=image.width,
                height=image.height,
                taken_at=image.taken_at,
                vector=vector_of.get(image_id),
                error=state.error,
                ctime_ns=state.ctime_ns,
                inode=state.inode,
                fingerprint=state.fingerprint,
                file_keywords=meta.file_tags if meta else (),
                title=meta.title if meta else None,
                caption=meta.caption if meta else None,
            )
        )
    _, new_ids = dst.write_batch(records)
    stored = [(i, r.vector) for i, r in zip(new_ids, records, strict=True) if r.vector is not None]
    if stored:
        target.index.add([i for i, _ in stored], np.stack([v for _, v in stored]))
    return len(records)


def _copy_user_metadata(src: CatalogStore, dst: CatalogStore, paths: list[str]) -> None:
    for chunk in _chunks(paths, COPY_BATCH):
        src_ids, dst_ids = src.ids_for_paths(chunk), dst.ids_for_paths(chunk)
        wanted = {src_ids[p]: dst_ids[p] for p in chunk if p in src_ids and p in dst_ids}
        have = src.metadata(wanted.keys())
        there = dst.metadata(wanted.values())
        by_tag: dict[str, list[int]] = {}
        by_description: dict[str | None, list[int]] = {}
        for src_id, dst_id in wanted.items():
            meta, old = have.get(src_id), there.get(dst_id)
            missing = set(meta.user_tags if meta else ()) - set(old.user_tags if old else ())
            for tag in missing:
                by_tag.setdefault(tag, []).append(dst_id)
            description = meta.description if meta else None
            if description != (old.description if old else None):
                by_description.setdefault(description, []).append(dst_id)
        for tag, ids in by_tag.items():
            dst.edit_tags(ids, add=[tag])
        for description, ids in by_description.items():
            dst.set_description(ids, description)


def _copy_marks(src: CatalogStore, dst: CatalogStore) -> None:
    """Marks, oldest first (their order survives; the time becomes the copy's)."""
    marks = src.marks()
    ids = dst.ids_for_paths({m.path for m in marks})
    there = {(m.path, m.query): m.relevant for m in dst.marks()}
    for mark in marks:
        if mark.path in ids and there.get((mark.path, mark.query)) != mark.relevant:
            dst.set_mark(ids[mark.path], mark.query, mark.relevant)


def _chunks(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
