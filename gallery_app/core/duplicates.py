"""Identical (same bytes) and near-identical (image embeddings) photos, grouped for a person
to choose what to keep. Nothing here deletes, moves or writes a photo.

Identical: photos of the same size are read in full and compared by SHA-256 (the catalog's
`fingerprint` covers only the first and last 64 KiB, so it cannot say "same bytes"); a hard
link is the same file under another name, and is marked so. Near-identical: the cosine of
two photos' image embeddings is at least `min_similarity` (default 0.95, a cut commonly
used for near-duplicates with CLIP-family image embeddings: re-encoded and resized copies sit
just below 1; raise it when different shots of one scene are grouped). Identical bytes are
grouped whatever the cut. Every pair is compared exactly (blocked matrix products, fine up to
~100k photos); a group is a connected set of such pairs (union-find), so two photos of a
group may be linked through a third: each group says its lowest pairwise cosine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gallery_app.core.catalog import ImageInfo
from gallery_app.core.errors import GalleryError, describe_os_error
from gallery_app.core.filters import date_taken
from gallery_app.core.indexer import CancelToken
from gallery_app.core.store import CatalogStore
from gallery_app.core.vectors import vector_store

DEFAULT_MIN_SIMILARITY = 0.95
IDENTICAL, NEAR = "identical", "near"
HASHING, COMPARING = "hashing", "comparing"
BLOCK_ROWS = 1024  # rows of one product: a (BLOCK_ROWS x BLOCK_COLUMNS) float32 block is 64 MiB
BLOCK_COLUMNS = 16384
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class DuplicateProgress:
    stage: str  # HASHING (files read) or COMPARING (pairs of photos compared)
    done: int
    total: int
    rate: float  # per second so far


DuplicateCallback = Callable[[DuplicateProgress], None]


@dataclass(frozen=True)
class DuplicatePhoto:
    image_id: int
    path: str
    size: int  # bytes, as indexed
    width: int | None
    height: int | None
    mtime_ns: int
    taken: dt.datetime | None  # date taken (EXIF, else file time; see core.filters)
    taken_source: str  # "exif" or "file"
    similarity: float  # cosine to the group's first photo (1.0 for the first itself)
    copy_of: int | None = None  # index in the group of an earlier photo with the same bytes
    same_file: bool = False  # a hard link: another path of the group is this very file

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


@dataclass(frozen=True)
class DuplicateGroup:
    kind: str  # IDENTICAL (every photo has the same bytes) or NEAR
    photos: tuple[DuplicatePhoto, ...]  # most pixels first, then largest file, then oldest
    min_similarity: float  # the lowest cosine between two photos of the group


@dataclass(frozen=True)
class DuplicateReport:
    groups: list[DuplicateGroup]
    min_similarity: float
    photos: int  # photos compared
    hashed: int  # files read in full
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why) not read
    cancelled: bool = False  # stopped early: the groups are those found so far
    seconds: float = 0.0


class DuplicateError(GalleryError):
    """A duplicates search asked for something that cannot be done."""


def check_min_similarity(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise DuplicateError(
            f"--min-similarity must be a cosine above 0 and at most 1, not {value} "
            f"(the default is {DEFAULT_MIN_SIMILARITY})."
        )
    return float(value)


def find_duplicates(
    catalog: CatalogStore,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    progress: DuplicateCallback | None = None,
    cancel: CancelToken | None = None,
) -> DuplicateReport:
    """Every group of identical or near-identical searchable photos of the catalog."""
    started = time.perf_counter()
    min_similarity = check_min_similarity(min_similarity)
    snapshot = vector_store(catalog).snapshot()
    info = catalog.images(snapshot.ids.tolist())
    keep = np.array([int(i) in info for i in snapshot.ids], dtype=bool)
    ids, rows = snapshot.ids[keep], snapshot.rows[keep]
    photos = [info[int(i)] for i in ids]
    parent = np.arange(len(photos), dtype=np.intp)
    digests, files, skipped = _hash_same_sizes(photos, progress, cancel)
    by_digest: dict[bytes, list[int]] = defaultdict(list)
    for position, digest in digests.items():
        by_digest[digest].append(position)
    for members in by_digest.values():
        if len(members) > 1:
            first = np.full(len(members) - 1, members[0], dtype=np.intp)
            _link(parent, first, np.asarray(members[1:], dtype=np.intp))
    stopped = cancel is not None and cancel.cancelled
    if not stopped:
        _link_near(snapshot.matrix, rows, min_similarity, parent, progress, cancel)
        stopped = cancel is not None and cancel.cancelled
    _flatten(parent)
    members_of: dict[int, list[int]] = defaultdict(list)
    for position, root in enumerate(parent.tolist()):
        members_of[root].append(position)
    groups = [
        _group(photos, members, digests, files, snapshot.matrix, rows)
        for members in members_of.values()
        if len(members) > 1
    ]
    groups.sort(key=lambda g: (g.kind != IDENTICAL, -len(g.photos), g.photos[0].path))
    return DuplicateReport(
        groups,
        min_similarity,
        len(photos),
        len(digests),
        skipped,
        stopped,
        time.perf_counter() - started,
    )


def _hash_same_sizes(
    photos: list[ImageInfo],
    progress: DuplicateCallback | None,
    cancel: CancelToken | None,
) -> tuple[dict[int, bytes], dict[int, tuple[int, int]], list[tuple[str, str]]]:
    """SHA-256 of every photo that shares its size with another: (digests, (device, inode)
    of each file read, files that could not be read). A hard link is read once."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for position, photo in enumerate(photos):
        by_size[int(photo.size)].append(position)
    todo = [p for members in by_size.values() if len(members) > 1 for p in members]
    digests: dict[int, bytes] = {}
    files: dict[int, tuple[int, int]] = {}
    skipped: list[tuple[str, str]] = []
    seen: dict[tuple[int, int], bytes] = {}
    started = time.perf_counter()
    for done, position in enumerate(todo):
        if cancel is not None and cancel.cancelled:
            break
        path = photos[position].path
        try:
            stat = os.stat(path)
            file_id = (stat.st_dev, stat.st_ino)
            digest = seen.get(file_id) if stat.st_ino else None
            if digest is None:
                digest = _sha256(path, cancel)
                if digest is None:
                    break  # cancelled while reading
                seen[file_id] = digest
        except OSError as exc:
            skipped.append((path, describe_os_error(exc, path)))
            continue
        digests[position] = digest
        files[position] = file_id
        if progress is not None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress(DuplicateProgress(HASHING, done + 1, len(todo), (done + 1) / elapsed))
    return digests, files, skipped


def _sha256(path: str, cancel: CancelToken | None) -> bytes | None:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            if cancel is not None and cancel.cancelled:
                return None
    return digest.digest()


def _link_near(
    matrix: npt.NDArray[np.floating],
    rows: npt.NDArray[np.intp],
    min_similarity: float,
    parent: npt.NDArray[np.intp],
    progress: DuplicateCallback | None,
    cancel: CancelToken | None,
) -> None:
    """Union every pair (i < j) whose cosine is >= min_similarity, a block at a time."""
    count = len(rows)
    total = count * (count - 1) // 2
    done = 0
    started = time.perf_counter()
    contiguous = count > 0 and rows[0] == 0 and bool(np.all(np.diff(rows) == 1))

    def block(first: int, last: int) -> npt.NDArray[np.float32]:
        if contiguous:
            return np.asarray(matrix[first:last], dtype=np.float32)
        return np.asarray(matrix[rows[first:last]], dtype=np.float32)

    for top in range(0, count, BLOCK_ROWS):
        if cancel is not None and cancel.cancelled:
            return
        bottom = min(top + BLOCK_ROWS, count)
        left_block = block(top, bottom)
        for left in range(top, count, BLOCK_COLUMNS):
            right = min(left + BLOCK_COLUMNS, count)
            cosines = left_block @ block(left, right).T
            near = cosines >= min_similarity
            if left == top:  # the diagonal block: each pair once, never a photo with itself
                near &= np.triu(np.ones(near.shape, dtype=bool), k=1)
            a, b = np.nonzero(near)
            if len(a):
                _link(parent, a.astype(np.intp) + top, b.astype(np.intp) + left)
        done += sum(count - 1 - i for i in range(top, bottom))
        if progress is not None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress(DuplicateProgress(COMPARING, done, total, done / elapsed))


def _flatten(parent: npt.NDArray[np.intp]) -> None:
    """Point every element at its root (parent[i] <= i always holds, so roots are fixed)."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return
        parent[:] = grand


def _link(parent: npt.NDArray[np.intp], a: npt.NDArray[np.intp], b: npt.NDArray[np.intp]) -> None:
    """Union-find over numpy arrays: join the sets of a[k] and b[k] for every k. Each round
    hooks the larger root of each unjoined pair under the smallest root offered to it."""
    while len(a):
        _flatten(parent)
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        if not apart.any():
            return
        a, b, root_a, root_b = a[apart], b[apart], root_a[apart], root_b[apart]
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))


def _group(
    photos: list[ImageInfo],
    members: list[int],
    digests: dict[int, bytes],
    files: dict[int, tuple[int, int]],
    matrix: npt.NDArray[np.floating],
    rows: npt.NDArray[np.intp],
) -> DuplicateGroup:
    def keep_first(position: int) -> tuple[int, int, float, str]:
        info = photos[position]
        moment, _ = date_taken(info)
        stamp = moment.timestamp() if moment is not None else float("inf")
        return (-(info.width or 0) * (info.height or 0), -int(info.size), stamp, info.path)

    ordered = sorted(members, key=keep_first)
    vectors = np.asarray(matrix[rows[ordered]], dtype=np.float32)
    cosines = vectors @ vectors.T
    off_diagonal = cosines[~np.eye(len(ordered), dtype=bool)]
    first_with: dict[bytes, int] = {}
    linked: dict[tuple[int, int], int] = defaultdict(int)
    for position in ordered:
        if position in files:
            linked[files[position]] += 1
    out = []
    for index, position in enumerate(ordered):
        info = photos[position]
        digest = digests.get(position)
        copy_of = first_with.get(digest) if digest is not None else None
        if digest is not None and copy_of is None:
            first_with[digest] = index
        moment, source = date_taken(info)
        out.append(
            DuplicatePhoto(
                image_id=int(info.id),
                path=info.path,
                size=int(info.size),
                width=info.width,
                height=info.height,
                mtime_ns=int(info.mtime_ns),
                taken=moment,
                taken_source=source,
                similarity=1.0 if index == 0 else float(min(cosines[0, index], 1.0)),
                copy_of=copy_of,
                same_file=position in files and linked[files[position]] > 1,
            )
        )
    identical = all(p in digests for p in ordered) and len({digests[p] for p in ordered}) == 1
    return DuplicateGroup(
        IDENTICAL if identical else NEAR,
        tuple(out),
        1.0 if identical else float(min(off_diagonal.min(), 1.0)),
    )
