"""The library's vectors in memory, scanned exactly: the default retrieval path of a search.

A `VectorStore` holds one matrix of the catalog's image vectors (float32, or float16 storage
with float32 accumulation), built from the catalog once and brought up to date incrementally
whenever the catalog's generation moves. A search takes a `VectorSnapshot`: rows are written
once and never again (an update appends a new row and retires the old one; a compaction or a
growth makes a new array), so a snapshot stays valid while the store moves on.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from gallery_app.core.store import CatalogStore

# Up to this many photos a search scans every vector exactly; beyond it hnswlib proposes
# candidates that are re-ranked exactly. Measured on the 2-core benchmark CPU with
# 100,000 x 768 float32 vectors: one ensemble scan (an expanded query is one text vector)
# p50 12 ms, the 9-column max-over-variants scan ~32-42 ms; scaling linearly, an expanded
# (ensemble) query stays within the 40 ms budget up to ~300k, and 200k leaves room for the
# rest of a search and a busy machine.
EXACT_SCAN_MAX = 200_000
# Rows per block when float16 storage is widened to float32 for the product: small enough
# to stay in cache, large enough that the BLAS call dominates.
SCAN_BLOCK = 8192
# Retired rows are dropped (one copy of the live rows) once they are this share of the matrix.
COMPACT_SHARE = 0.25
COMPACT_MIN_ROWS = 1024
STORAGE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


@dataclass(frozen=True, eq=False)
class VectorSnapshot:
    """The live image vectors at one catalog generation, in no particular order."""

    generation: int
    ids: npt.NDArray[np.int64]  # (n,) image ids
    rows: npt.NDArray[np.intp]  # (n,) the row of each id in matrix
    matrix: npt.NDArray[np.floating]  # (rows, dim): never written again
    paths: npt.NDArray[np.object_]  # (n,) path of each id

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def cosines(
        self,
        text: npt.NDArray[np.float32],
        positions: npt.NDArray[np.intp] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Exact cosines (len(positions) or n, len(text)) of unit text vectors, in float32."""
        rows = self.rows if positions is None else self.rows[positions]
        return matrix_cosines(self.matrix, text, rows)

    def positions_of(self, image_ids: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Positions of the given ids in this snapshot (ids it does not hold are dropped)."""
        wanted = np.asarray(image_ids, dtype=np.int64).ravel()
        if len(wanted) == 0 or len(self.ids) == 0:
            return np.zeros(0, np.intp)
        order = self._id_order
        sorted_ids = self.ids[order]
        slot = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
        found = sorted_ids[slot] == wanted
        return order[slot[found]].astype(np.intp)

    @cached_property
    def _id_order(self) -> npt.NDArray[np.intp]:
        return np.argsort(self.ids, kind="stable")


def matrix_cosines(
    matrix: npt.NDArray[np.floating],
    text: npt.NDArray[np.float32],
    rows: npt.NDArray[np.intp] | None = None,
) -> npt.NDArray[np.float32]:
    """matrix[rows] @ text.T with float32 accumulation, without copying a float32 matrix
    when rows are all of it in order (the common case of a scan with nothing retired)."""
    queries = np.ascontiguousarray(np.atleast_2d(text), dtype=np.float32)
    if rows is not None and len(rows) == len(matrix) and _is_identity(rows):
        rows = None
    count = len(matrix) if rows is None else len(rows)
    out = np.empty((count, len(queries)), np.float32)
    if count == 0:
        return out
    if matrix.dtype == np.float32 and rows is None:
        np.dot(matrix, queries.T, out=out)
        return out
    if matrix.dtype == np.float32 and rows is not None and count * 4 < len(matrix):
        np.dot(matrix[rows], queries.T, out=out)  # a few rows: gather them
        return out
    if matrix.dtype == np.float32:
        # Most rows: one product over the whole matrix, then pick (cheaper than a gather).
        return np.ascontiguousarray((matrix @ queries.T)[rows])
    for start in range(0, count, SCAN_BLOCK):
        stop = min(start + SCAN_BLOCK, count)
        block = matrix[start:stop] if rows is None else matrix[rows[start:stop]]
        np.dot(block.astype(np.float32), queries.T, out=out[start:stop])
    return out


def _is_identity(rows: npt.NDArray[np.intp]) -> bool:
    return bool(len(rows) == 0 or (rows[0] == 0 and np.all(np.diff(rows) == 1)))


class VectorStore:
    """The catalog's image vectors as one in-memory matrix, kept current by generation."""

    def __init__(self, catalog: CatalogStore, dtype: npt.DTypeLike = np.float32) -> None:
        storage = np.dtype(dtype)
        if storage not in STORAGE_DTYPES:
            raise ValueError(f"vector storage must be float32 or float16, not {storage}")
        self.catalog = catalog
        self.dtype = storage
        self._lock = threading.Lock()
        self._matrix = np.zeros((0, catalog.dim), storage)
        self._used = 0  # rows written so far (live and retired)
        self._row_of: dict[int, int] = {}
        self._path_of_row: list[str] = []
        self._snapshot: VectorSnapshot | None = None
        self._generation: int | None = None

    def snapshot(self) -> VectorSnapshot:
        """The vectors as of the catalog's current generation (a cheap check when unchanged)."""
        with self._lock:
            generation = self.catalog.generation
            if self._snapshot is not None and generation == self._generation:
                return self._snapshot
            # Read the generation first: a write landing during the reads below is read now
            # and again next time (re-applying it is harmless), never skipped.
            if self._generation is None:
                ids, vectors = self.catalog.vectors()
                removed: list[int] = []
            else:
                ids, vectors = self.catalog.vectors(since_generation=self._generation)
                live = self.catalog.vector_ids()
                removed = [i for i in self._row_of if i not in live]
            self._apply(ids, vectors, removed)
            self._generation = generation
            self._snapshot = self._make_snapshot(generation)
            return self._snapshot

    def _apply(
        self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32], removed: list[int]
    ) -> None:
        for image_id in removed:
            del self._row_of[image_id]
        if len(ids):
            info = self.catalog.images(ids.tolist())
            keep = np.array([int(i) in info for i in ids], dtype=bool)
            ids, vectors = ids[keep], vectors[keep]
            self._reserve(len(ids))
            first = self._used
            self._matrix[first : first + len(ids)] = vectors
            for offset, image_id in enumerate(ids.tolist()):
                self._row_of[image_id] = first + offset  # an updated id retires its old row
                self._path_of_row.append(info[image_id].path)
            self._used += len(ids)
        retired = self._used - len(self._row_of)
        if retired > max(COMPACT_MIN_ROWS, COMPACT_SHARE * self._used):
            self._compact()

    def _reserve(self, extra: int) -> None:
        needed = self._used + extra
        if needed <= len(self._matrix):
            return
        grown = np.zeros((max(needed, 2 * len(self._matrix), 1024), self.catalog.dim), self.dtype)
        grown[: self._used] = self._matrix[: self._used]
        self._matrix = grown  # snapshots keep the old array: it is never written again

    def _compact(self) -> None:
        ids = list(self._row_of)
        rows = np.array([self._row_of[i] for i in ids], dtype=np.intp)
        matrix = np.zeros((max(len(ids), 1024), self.catalog.dim), self.dtype)
        matrix[: len(ids)] = self._matrix[rows]
        self._path_of_row = [self._path_of_row[r] for r in rows.tolist()]
        self._row_of = {image_id: row for row, image_id in enumerate(ids)}
        self._matrix = matrix
        self._used = len(ids)

    def _make_snapshot(self, generation: int) -> VectorSnapshot:
        ids = np.fromiter(self._row_of.keys(), dtype=np.int64, count=len(self._row_of))
        rows = np.fromiter(self._row_of.values(), dtype=np.intp, count=len(self._row_of))
        order = np.argsort(rows, kind="stable")  # row order: a scan reads memory in sequence
        ids, rows = ids[order], rows[order]
        paths = np.empty(len(rows), dtype=object)
        paths[:] = [self._path_of_row[r] for r in rows.tolist()]
        view = self._matrix[: self._used]
        view.flags.writeable = False
        return VectorSnapshot(generation, ids, rows, view, paths)


_stores: weakref.WeakKeyDictionary[CatalogStore, VectorStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def vector_store(catalog: CatalogStore) -> VectorStore:
    """The one store per open catalog, shared by every searcher of that library."""
    with _stores_lock:
        store = _stores.get(catalog)
        if store is None:
            store = _stores[catalog] = VectorStore(catalog)
        return store
