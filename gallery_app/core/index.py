"""hnswlib vector index: an acceleration structure over the catalog's vectors."""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import mmap
import os
import struct
import threading
import traceback
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from gallery_app.core.errors import CorruptIndex, GalleryError
from gallery_app.core.fileio import (
    disk_full,
    is_out_of_space,
    make_private_dirs,
    nearly_full,
    open_regular,
    remove_quietly,
    write_atomic,
)

Buffer = bytes | memoryview

# M=32 beat M=16 at equal latency in benchmarks/run.py's index section. ef from
# scripts/ef_sweep.py: 100,000 clustered SigLIP-like photos (concept families, a modality gap,
# true-match cosines 0.01-0.17; exact duplicates deduplicated), 300 text queries, recall@10:
# ef 50: 0.965, 100: 0.998, 150: 0.9987, 200-400: 0.9987. 150 leaves a margin above 0.99 for
# harder libraries; query() raises ef to k, and a search asks for at least 100 candidates.
DEFAULT_M = 32
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 150
# Format 2 adds the index file's size and CRC-32: hnswlib trusts the offsets in its file, and
# one damaged header byte is enough to crash the process on the first query.
SIDECAR_FORMAT = 2
MAX_SIDECAR_BYTES = 64 << 20  # ~9M deleted labels; a bigger "sidecar" is not one
# Vectors are stored L2-normalized by us, in hnswlib's inner-product space: cosine, with the
# stored bytes exactly ours, so an identical vector can be recognised after a reload. (An
# index saved in the cosine space holds normalized vectors too and loads unchanged.)
SPACE = "ip"
# Two vectors are the same photo when no component differs by more than DUPLICATE_ATOL: the
# same file encoded in two batches differs by ~1e-7 (measured on the tiny test model), two
# different photos by ~0.1. A cosine differs then by at most sqrt(dim) x 1e-6 (3e-5 at 768),
# and re-ranking uses each photo's own vector anyway. A new vector is compared with its nearest
# node when their distance (1 - cos) is within DUPLICATE_DISTANCE.
DUPLICATE_ATOL = 1e-6
DUPLICATE_DISTANCE = 1e-5
# Vectors placed per step of an add: each step's nodes are in the graph before the next step
# looks for copies in it, and copies within a step are found pairwise.
DEDUPE_CHUNK = 256


@dataclass(frozen=True)
class IndexState:
    """What the sidecar says the saved index reflects."""

    generation: int
    deleted: frozenset[int]
    size: int | None = None  # of the index file it describes (None: format-1 sidecar)
    crc32: int | None = None
    aliases: tuple[tuple[int, int], ...] = ()  # (id, node id) of vectors stored once, by node

    def describes(self, size: int, crc32: int) -> bool:
        return self.size == size and self.crc32 == crc32

    def to_json(self) -> dict[str, object]:
        return {
            "generation": self.generation,
            "deleted": sorted(self.deleted),
            "size": self.size,
            "crc32": self.crc32,
            "aliases": [list(pair) for pair in self.aliases],
        }


class VectorIndex:
    """Cosine hnswlib index with a lock, growing capacity, replace-deleted and atomic save.

    hnswlib persists deleted marks but offers no way to list them, and it does not persist
    the query-time ef. So a JSON sidecar stores the deleted labels and the catalog generation
    the index reflects, and ef is set on every load (and raised to k on every query). The
    sidecar also holds the index file's checksum, checked before hnswlib reads the file.
    """

    def __init__(
        self,
        dim: int,
        capacity: int = 1024,
        ef_search: int = DEFAULT_EF_SEARCH,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ) -> None:
        import hnswlib

        self.dim = dim
        self.ef_search = ef_search
        self._lock = threading.Lock()
        self._index = hnswlib.Index(space=SPACE, dim=dim)
        self._index.init_index(
            max_elements=max(capacity, 16),
            ef_construction=ef_construction,
            M=m,
            allow_replace_deleted=True,
        )
        self._index.set_ef(ef_search)
        self._deleted: set[int] = set()
        self._init_duplicates()

    @classmethod
    def load(
        cls,
        path: Path,
        dim: int,
        ef_search: int = DEFAULT_EF_SEARCH,
    ) -> tuple[VectorIndex, IndexState]:
        """Load an index and its sidecar; raises OSError/RuntimeError/ValueError if unusable
        (ValueError when the file is not the one its sidecar describes, or not a well-formed
        hnswlib index of this dim: truncated, damaged, foreign).

        hnswlib trusts every size and offset in its file (a damaged one crashes the process
        or asks for terabytes), so nothing reaches it unchecked: the checksum recorded in the
        sidecar, then the file's whole structure (`inspect_hnsw`), all read through the one
        descriptor hnswlib then loads from. The deleted marks come from the file itself.
        """
        import hnswlib

        sidecar = read_sidecar(sidecar_path(path), dim)
        fd = open_regular(path)
        try:
            with _mapped(fd) as data:
                state = _matching_state(sidecar, path, dim, data)
                layout = inspect_hnsw(data, dim)
            self = cls.__new__(cls)
            self.dim = dim
            self.ef_search = ef_search
            self._lock = threading.Lock()
            self._index = hnswlib.Index(space=SPACE, dim=dim)
            # An explicit capacity: hnswlib would otherwise allocate what the header asks for.
            capacity = max(layout.count, min(layout.max_elements, 2 * layout.count + 1024))
            self._index.load_index(_hnswlib_path(path, fd), capacity, True)
        finally:
            os.close(fd)
        if self._index.dim != dim or self._index.get_current_count() != layout.count:
            raise ValueError(f"{path.name} changed while it was being loaded")
        self._index.set_ef(ef_search)  # ef is not saved with the index
        self._deleted = set(layout.deleted_labels)
        self._init_duplicates()
        nodes = set(self._index.get_ids_list()) - self._deleted
        for alias, node in state.aliases:
            if node in nodes and alias not in nodes:
                self._node_of[alias] = node
                self._copies.setdefault(node, set()).add(alias)
        aliases = tuple(sorted(self._node_of.items()))
        return self, IndexState(
            state.generation, frozenset(self._deleted), state.size, state.crc32, aliases
        )

    def _init_duplicates(self) -> None:
        # Identical vectors (copies, hard links, the same photo in two folders) are one graph
        # node: many nodes at distance 0 from each other cut a graph into pieces that a search
        # never leaves. _node_of maps such an id to the node holding its vector, _copies the
        # other way.
        self._node_of: dict[int, int] = {}
        self._copies: dict[int, set[int]] = {}

    def __len__(self) -> int:
        with self._lock:
            return self._index.get_current_count() - len(self._deleted) + len(self._node_of)

    def live_ids(self) -> set[int]:
        with self._lock:
            return (set(self._index.get_ids_list()) - self._deleted) | set(self._node_of)

    @property
    def node_count(self) -> int:
        """Graph nodes: one per distinct live vector."""
        with self._lock:
            return self._index.get_current_count() - len(self._deleted)

    @property
    def capacity(self) -> int:
        return int(self._index.get_max_elements())

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Insert or update vectors under integer ids (re-adding a deleted id restores it).

        A vector the same as one already in the graph (within DUPLICATE_ATOL: the same photo
        encoded in another batch differs in the last bits) is not inserted again: its id
        becomes a copy of that node, returned beside it by query().
        """
        labels = np.asarray(ids, dtype=np.int64).reshape(-1)
        data = _normalized(np.asarray(vectors, dtype=np.float32).reshape(len(labels), self.dim))
        if len(labels) == 0:
            return
        # The last vector given for an id wins, as with hnswlib.
        last = {int(label): row for row, label in enumerate(labels.tolist())}
        rows = sorted(last.values())
        labels, data = labels[rows], data[rows]
        with self._lock:
            pending = self._changed_rows(labels, data)
            for label in labels[pending].tolist():
                self._detach(label)
            for start in range(0, len(pending), DEDUPE_CHUNK):
                chunk = pending[start : start + DEDUPE_CHUNK]
                self._add_chunk(labels[chunk], data[chunk])

    def _changed_rows(
        self, labels: npt.NDArray[np.int64], data: npt.NDArray[np.float32]
    ) -> list[int]:
        """Rows whose id is new, deleted, or live with another vector (an unchanged one needs
        nothing, and re-adding it must not split it from its copies)."""
        live = self._live_labels()
        stored_of = [self._node_of.get(int(label), int(label)) for label in labels]
        known = [row for row, node in enumerate(stored_of) if node in live]
        changed = [row for row, node in enumerate(stored_of) if node not in live]
        if known:
            stored = np.asarray(
                self._index.get_items([stored_of[row] for row in known]), dtype=np.float32
            )
            for row, vector in zip(known, stored, strict=True):
                if not _same_vector(vector, data[row]):
                    changed.append(row)
        return sorted(changed)

    def _add_chunk(self, labels: npt.NDArray[np.int64], data: npt.NDArray[np.float32]) -> None:
        """Place one chunk: copies of graph nodes, copies within the chunk, then new nodes."""
        live = self._live_labels()
        node_of_row: list[int | None] = self._existing_nodes(data)
        # The same vector earlier in this chunk: the earlier row's node, or that row itself.
        close = np.argwhere(np.triu(data @ data.T >= 1.0 - DUPLICATE_DISTANCE, k=1))
        for earlier, row in sorted(close.tolist(), key=lambda pair: (pair[1], pair[0])):
            if node_of_row[row] is None and _same_vector(data[earlier], data[row]):
                node = node_of_row[earlier]
                node_of_row[row] = int(labels[earlier]) if node is None else node
        nodes = []
        for row, (label, node) in enumerate(zip(labels.tolist(), node_of_row, strict=True)):
            if node is None or node == label:
                nodes.append(row)
                continue
            self._node_of[label] = node
            self._copies.setdefault(node, set()).add(label)
            if label in live:  # its old vector must not stay a node
                self._index.mark_deleted(label)
                self._deleted.add(label)
        if nodes:
            self._insert(labels[nodes], data[nodes])

    def _live_labels(self) -> set[int]:
        return set(self._index.get_ids_list()) - self._deleted

    def _existing_nodes(self, data: npt.NDArray[np.float32]) -> list[int | None]:
        """For each vector, the live node holding the same vector, if any."""
        live = self._index.get_current_count() - len(self._deleted)
        found: list[int | None] = [None] * len(data)
        if live <= 0:
            return found
        self._index.set_ef(max(self.ef_search, 1))
        labels, distances = self._index.knn_query(data, k=1)
        close = np.flatnonzero(np.abs(distances[:, 0]) <= DUPLICATE_DISTANCE)
        if len(close):
            stored = np.asarray(self._index.get_items(labels[close, 0].tolist()), np.float32)
            for row, vector in zip(close.tolist(), stored, strict=True):
                if _same_vector(vector, data[row]):
                    found[row] = int(labels[row, 0])
        return found

    def _detach(self, label: int) -> int | None:
        """Take an id out of the graph's bookkeeping before its vector changes or goes: a
        copy is forgotten; a node with copies hands its vector to one of them (returned)."""
        node = self._node_of.pop(label, None)
        if node is not None:
            self._copies[node].discard(label)
            if not self._copies[node]:
                del self._copies[node]
            return None
        copies = self._copies.pop(label, None)
        if not copies or label in self._deleted:
            return None
        heir = min(copies)
        rest = copies - {heir}
        self._node_of.pop(heir, None)
        for other in rest:
            self._node_of[other] = heir
        if rest:
            self._copies[heir] = rest
        vector = np.asarray(self._index.get_items([label]), dtype=np.float32)
        self._insert(np.array([heir], np.int64), vector)
        return heir  # now a graph node

    def _insert(self, labels: npt.NDArray[np.int64], data: npt.NDArray[np.float32]) -> None:
        """hnswlib add of graph nodes (caller holds the lock): known labels in place."""
        known = set(self._index.get_ids_list())
        is_known = np.array([int(label) in known for label in labels], dtype=bool)
        for label in labels[is_known]:
            if int(label) in self._deleted:
                # With replace-deleted on, hnswlib refuses to update a deleted label.
                self._index.unmark_deleted(int(label))
                self._deleted.discard(int(label))
        if is_known.any():
            # Known labels are updated in place; replace_deleted=True would put the new
            # vector in some other deleted slot and leave the old one live (a duplicate).
            self._index.add_items(data[is_known], labels[is_known], replace_deleted=False)
        new = ~is_known
        if new.any():
            reusable = min(len(self._deleted), int(new.sum()))
            needed = self._index.get_current_count() + int(new.sum()) - reusable
            if needed > self._index.get_max_elements():
                self._index.resize_index(max(needed, 2 * self._index.get_max_elements()))
            self._index.add_items(data[new], labels[new], replace_deleted=True)
            if self._deleted:
                # Reused slots drop their old labels from hnswlib: forget them too.
                self._deleted &= set(self._index.get_ids_list())

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            present = set(self._index.get_ids_list())
            for label in map(int, ids):
                if label in self._node_of:
                    self._detach(label)
                elif label in present and label not in self._deleted:
                    heir = self._detach(label)  # a node with copies hands its vector on first
                    if heir is not None:
                        present.add(heir)
                    # RuntimeError: already deleted in hnswlib, though unknown to us.
                    with contextlib.suppress(RuntimeError):
                        self._index.mark_deleted(label)
                    self._deleted.add(label)

    def query(
        self, vectors: npt.ArrayLike, k: int, ef: int = 0
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Nearest ids and their cosine similarities, nearest first; the graph is searched
        with ef = the largest of ef_search, k and `ef` (a caller's width for a large library).

        k counts graph nodes; each node's identical copies follow it (same similarity), so a
        row may hold more than k ids; short rows are padded with id -1 and similarity NaN.
        Shape (n_queries, width), width = min(k, live nodes) when there are no copies.
        """
        queries = _normalized(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        with self._lock:
            live = self._index.get_current_count() - len(self._deleted)
            k = min(k, live)
            if k <= 0 or len(queries) == 0:
                return np.zeros((len(queries), 0), np.int64), np.zeros(
                    (len(queries), 0), np.float32
                )
            self._index.set_ef(max(self.ef_search, k, ef))
            labels, distances = self._index.knn_query(queries, k=k)
            # Only the copies of the nodes found: a library with thousands of copies must not
            # pay for all of them on every query.
            copies = {
                node: sorted(self._copies[node])
                for node in set(labels.ravel().tolist())
                if node in self._copies
            }
        # The ip space's distance is 1 - dot, on unit vectors 1 - cos.
        similarity = (1.0 - distances).astype(np.float32)
        labels = labels.astype(np.int64)
        if not copies:
            return labels, similarity
        rows_ids: list[list[int]] = []
        rows_sims: list[list[float]] = []
        for row_labels, row_sims in zip(labels.tolist(), similarity.tolist(), strict=True):
            ids: list[int] = []
            sims: list[float] = []
            for label, sim in zip(row_labels, row_sims, strict=True):
                extra = copies.get(label, [])
                ids += [label, *extra]
                sims += [sim] * (1 + len(extra))
            rows_ids.append(ids)
            rows_sims.append(sims)
        width = max(len(r) for r in rows_ids)
        out_ids = np.full((len(rows_ids), width), -1, np.int64)
        out_sims = np.full((len(rows_ids), width), np.nan, np.float32)
        for row, (ids, sims) in enumerate(zip(rows_ids, rows_sims, strict=True)):
            out_ids[row, : len(ids)] = ids
            out_sims[row, : len(sims)] = sims
        return out_ids, out_sims

    def get_vectors(self, ids: Iterable[int]) -> npt.NDArray[np.float32]:
        labels = [int(i) for i in ids]
        if not labels:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            nodes = [self._node_of.get(label, label) for label in labels]
            return np.asarray(self._index.get_items(nodes), dtype=np.float32)

    def present_vectors(
        self, ids: Iterable[int]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(ids, vectors) of those ids still live: an indexer may remove or reuse a slot
        between a query and this call, and that must shrink a search, not fail it."""
        labels = [int(i) for i in ids]
        with self._lock:
            if not labels:
                return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
            nodes = [self._node_of.get(label, label) for label in labels]
            try:  # the usual case, in one call
                vectors = np.asarray(self._index.get_items(nodes), dtype=np.float32)
            except RuntimeError:  # "Label not found": keep the ones still there
                live = set(self._index.get_ids_list()) - self._deleted
                kept = [(lab, n) for lab, n in zip(labels, nodes, strict=True) if n in live]
                labels = [lab for lab, _ in kept]
                vectors = np.asarray(
                    self._index.get_items([n for _, n in kept])
                    if kept
                    else np.zeros((0, self.dim)),
                    dtype=np.float32,
                ).reshape(len(labels), self.dim)
        return np.asarray(labels, np.int64), vectors

    def save(self, path: Path, generation: int) -> None:
        """Atomically write the sidecar, then the index (temp file + fsync + os.replace).

        hnswlib's save_index reports no write error (a full disk leaves a short file behind
        silently), so the written file is read back and checked, structure and count, before
        it may replace the old one; a failed or short write keeps the old index and raises.
        """
        folder = path.parent
        make_private_dirs(folder)
        tmp = path.with_name(path.name + ".tmp")
        side = sidecar_path(path)
        try:
            os.close(open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))  # owner-only
            with self._lock:
                self._index.save_index(os.fsencode(tmp))  # bytes: any folder name
                count = self._index.get_current_count()
                labels = set(self._index.get_ids_list())
                deleted = frozenset(self._deleted)
                aliases = tuple(sorted(self._node_of.items()))
            size, crc = _verify_written(tmp, self.dim, count, labels)
            state = IndexState(generation, deleted, size, crc, aliases)
            # The sidecar goes first and also describes the index it replaces: a crash between
            # the two replaces leaves the old index with a sidecar that still describes it.
            previous = _previous_state(path, self.dim)
            sidecar = {
                "format": SIDECAR_FORMAT,
                "dim": self.dim,
                **state.to_json(),
                "previous": previous.to_json() if previous else None,
            }
            write_atomic(side, json.dumps(sidecar).encode("utf-8"))
            os.replace(tmp, path)
        except OSError as exc:
            remove_quietly(tmp)
            if is_out_of_space(exc):
                raise disk_full(
                    folder,
                    f"the vector index {path.name} could not be saved (the previous one was kept)",
                ) from exc
            raise GalleryError(
                f"Cannot save the vector index {path} ({exc.strerror or exc}); the previous "
                "one was kept and the catalog holds every vector. Check that you may write to "
                f"{folder}."
            ) from exc
        except ValueError as exc:  # the file read back is not what was written
            remove_quietly(tmp)
            if nearly_full(folder):
                raise disk_full(
                    folder,
                    f"the vector index {path.name} was written short (the previous one was kept)",
                ) from exc
            raise CorruptIndex(
                f"The vector index written to {tmp} did not read back correctly ({exc}); the "
                "previous one was kept and the catalog holds every vector. Check the disk."
            ) from exc


def _normalized(data: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Unit rows in float32 (a zero row stays zero): deterministic, so equal input vectors
    are equal stored bytes."""
    norms = np.linalg.norm(data, axis=1, keepdims=True)
    return np.ascontiguousarray(data / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def _same_vector(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> bool:
    return bool(np.max(np.abs(a - b)) <= DUPLICATE_ATOL)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path, dim: int, previous: bool = False) -> IndexState:
    """The state a sidecar records (or the one before it, when previous and it has one).
    ValueError for anything but the JSON object gallery-app writes, checked field by field."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_SIDECAR_BYTES:
            raise ValueError(f"{path.name} is {size} bytes, too large for a sidecar")
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path.name} is not a sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds {type(data).__name__}, not a sidecar object")
    if data.get("format") not in (1, SIDECAR_FORMAT) or data.get("dim") != dim:
        raise ValueError(f"{path}: unexpected sidecar format or dim")
    if previous:
        data = data.get("previous")
        if not isinstance(data, dict):
            raise ValueError(f"{path}: no previous state")
    return _state_from_json(data, path)


def _state_from_json(data: dict[str, Any], path: Path) -> IndexState:
    generation = data.get("generation")
    deleted = data.get("deleted", [])
    size, crc = data.get("size"), data.get("crc32")
    if not _is_count(generation):
        raise ValueError(f"{path.name}: generation {generation!r} is not a count")
    if not isinstance(deleted, list) or not all(_is_count(label) for label in deleted):
        raise ValueError(f"{path.name}: the deleted labels are not a list of counts")
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(_is_count(i) for i in pair)
        for pair in aliases
    ):
        raise ValueError(f"{path.name}: the aliases are not a list of [id, node id] pairs")
    copies = tuple((int(alias), int(node)) for alias, node in aliases)
    if crc is None:  # format 1: nothing to check against
        return IndexState(generation, frozenset(deleted), aliases=copies)
    if not _is_count(size) or not _is_count(crc) or crc > 0xFFFFFFFF:
        raise ValueError(f"{path.name}: size {size!r} and CRC {crc!r} are not a checksum")
    return IndexState(generation, frozenset(deleted), size, crc, copies)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _matching_state(sidecar: IndexState, path: Path, dim: int, data: Buffer) -> IndexState:
    """The sidecar state that describes the index file as it is on disk, else ValueError."""
    if sidecar.crc32 is None:
        return sidecar  # format 1: the structure check is all there is
    size, crc = len(data), zlib.crc32(data)
    if sidecar.describes(size, crc):
        return sidecar
    with contextlib.suppress(OSError, ValueError):
        previous = read_sidecar(sidecar_path(path), dim, previous=True)
        if previous.describes(size, crc):
            return previous  # the process died between the sidecar's and the index's replace
    raise ValueError(
        f"{path.name} is not the index its sidecar describes ({size} bytes, CRC "
        f"{crc:08x}; expected {sidecar.size} bytes, CRC {sidecar.crc32:08x}): truncated or "
        "damaged"
    )


def _previous_state(path: Path, dim: int) -> IndexState | None:
    """The state of the index about to be replaced, if it is intact and checksummed."""
    try:
        sidecar = read_sidecar(sidecar_path(path), dim)
        fd = open_regular(path)
        try:
            with _mapped(fd) as data:
                state = _matching_state(sidecar, path, dim, data)
        finally:
            os.close(fd)
    except (OSError, ValueError, GalleryError):
        return None
    return state if state.crc32 is not None else None


# The hnswlib file format (hnswalg.h, saveIndex/loadIndex, 0.7 and 0.8): a header of
# offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset,
# offsetData (size_t), maxlevel (int), enterpoint_node (uint32), maxM, maxM0, M (size_t),
# mult (double), ef_construction (size_t); then cur_element_count level-0 records of
# [uint16 neighbour count, uint8 flags, uint8, maxM0 x uint32 neighbours, dim x float32,
# uint64 label]; then per element a uint32 byte size and that many bytes of upper-level
# neighbour lists, each [uint16 count, 2 bytes, maxM x uint32].
_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
_DELETE_MARK = 0x01
_MAX_M = 4096  # hnswlib itself warns above 10000; ours is 32


@dataclass(frozen=True)
class HnswLayout:
    """What a well-formed hnswlib file holds, as checked by `inspect_hnsw`."""

    count: int
    max_elements: int
    labels: npt.NDArray[np.uint64]
    deleted_labels: frozenset[int]


def inspect_hnsw(data: Buffer, dim: int) -> HnswLayout:
    """Check every size, offset, count and neighbour id of an hnswlib file against the file
    itself, so that hnswlib never reads past its buffers; ValueError says what is wrong."""
    size = len(data)
    if size < _HEADER.size:
        raise ValueError(f"{size} bytes: too short for an hnswlib index")
    (offset0, max_elements, count, per_element, label_offset, offset_data, max_level, entry,
     max_m, max_m0, m, mult, _ef_construction) = _HEADER.unpack_from(data, 0)  # fmt: skip
    links0 = 4 + 4 * max_m0
    expected = {
        "offsetLevel0": (offset0, 0),
        "maxM": (max_m, m),
        "maxM0": (max_m0, 2 * m),
        "offsetData": (offset_data, links0),
        "label_offset": (label_offset, links0 + 4 * dim),
        "size_data_per_element": (per_element, links0 + 4 * dim + 8),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            raise ValueError(f"header field {name} is {found}, expected {wanted} (dim {dim})")
    if not 2 <= m <= _MAX_M or not math.isfinite(mult) or mult <= 0:
        raise ValueError(f"header holds M={m}, mult={mult}")
    if count > max_elements or _HEADER.size + count * (per_element + 4) > size:
        raise ValueError(
            f"header claims {count} elements (capacity {max_elements}) in {size} bytes"
        )
    upper_at = _HEADER.size + count * per_element
    if count == 0:
        if size != upper_at:
            raise ValueError(f"an empty index of {size} bytes")
        return HnswLayout(0, max_elements, np.zeros(0, np.uint64), frozenset())
    if not 0 <= entry < count or not 0 <= max_level <= 255:
        raise ValueError(f"entry point {entry} at level {max_level} for {count} elements")
    records = np.ndarray((count, per_element), np.uint8, buffer=data, offset=_HEADER.size)
    neighbour_counts = records[:, 0].astype(np.int64) | (records[:, 1].astype(np.int64) << 8)
    if int(neighbour_counts.max()) > max_m0:
        raise ValueError(f"a level-0 list holds more than {max_m0} neighbours")
    neighbours = np.ndarray(
        (count, max_m0), "<u4", buffer=data, offset=_HEADER.size + 4, strides=(per_element, 4)
    )
    used = np.arange(max_m0)[None, :] < neighbour_counts[:, None]
    if used.any() and int(neighbours[used].max()) >= count:
        raise ValueError("a level-0 neighbour id lies outside the index")
    labels = np.ndarray(
        (count,), "<u8", buffer=data, offset=_HEADER.size + label_offset, strides=(per_element,)
    ).astype(np.uint64)
    ordered = np.sort(labels)
    if (ordered[1:] == ordered[:-1]).any():
        raise ValueError("two elements share a label")
    deleted = labels[(records[:, 2] & _DELETE_MARK) != 0]

    # Upper levels: a chain of variable-sized lists, one size word per element. Most are 0
    # (level-0 only): the walk jumps over runs of zero words and stops only at real lists.
    words_per_level = 1 + max_m
    if (size - upper_at) % 4:
        raise ValueError("the upper-level lists do not fill the file")
    tail = np.frombuffer(data, "<u4", offset=upper_at)
    nonzero = np.flatnonzero(tail).tolist()
    levels = np.zeros(count, np.int64)
    list_starts: list[int] = []  # word offset of each (element, level) list
    list_levels: list[int] = []
    element = at = 0
    while True:
        following = bisect.bisect_left(nonzero, at)
        next_nonzero = nonzero[following] if following < len(nonzero) else len(tail)
        skipped = min(next_nonzero - at, count - element)  # elements without upper levels
        element += skipped
        at += skipped
        if element == count:
            break
        if at >= len(tail):
            raise ValueError(f"the file ends after {element} of {count} upper-level lists")
        nbytes = int(tail[at])
        level = nbytes // (4 * words_per_level)
        if nbytes % (4 * words_per_level) or level > max_level:
            raise ValueError(f"element {element} has an upper-level list of {nbytes} bytes")
        levels[element] = level
        list_starts += range(at + 1, at + 1 + level * words_per_level, words_per_level)
        list_levels += range(1, level + 1)
        element += 1
        at += 1 + nbytes // 4
        if at > len(tail):
            raise ValueError(f"element {element - 1}'s upper-level list runs past the file")
    if at != len(tail):
        raise ValueError(f"{4 * (len(tail) - at)} bytes follow the last upper-level list")
    if levels[entry] != max_level:
        raise ValueError(f"the entry point is at level {levels[entry]}, not {max_level}")
    if list_starts:
        starts = np.asarray(list_starts, np.int64)
        listed = tail[starts].astype(np.int64) & 0xFFFF
        if int(listed.max()) > max_m:
            raise ValueError(f"an upper-level list holds more than {max_m} neighbours")
        slots = starts[:, None] + 1 + np.arange(max_m)[None, :]
        used = np.arange(max_m)[None, :] < listed[:, None]
        ids = tail[slots[used]].astype(np.int64)
        wanted = np.broadcast_to(np.asarray(list_levels)[:, None], used.shape)[used]
        if len(ids) and (
            int(ids.max()) >= count or (levels[np.minimum(ids, count - 1)] < wanted).any()
        ):
            raise ValueError("an upper-level list links to a node missing at that level")
    return HnswLayout(count, max_elements, labels, frozenset(int(i) for i in deleted))


def _verify_written(path: Path, dim: int, count: int, labels: set[int]) -> tuple[int, int]:
    """fsync the file hnswlib just wrote, read it back and check it is the index in memory;
    (size, CRC-32) of what is on disk."""
    fd = open_regular(path, os.O_RDWR)
    try:
        os.fsync(fd)
        with _mapped(fd) as data:
            layout = inspect_hnsw(data, dim)
            if layout.count != count or set(layout.labels.tolist()) != labels:
                raise ValueError(f"holds {layout.count} elements, the index {count}")
            return len(data), zlib.crc32(data)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _mapped(fd: int) -> Iterator[Buffer]:
    """The file's bytes, memory-mapped (an empty file maps to b"")."""
    size = os.fstat(fd).st_size
    if size == 0:
        yield b""
        return
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            yield view
        except BaseException as exc:
            # A failed check's traceback still holds numpy views of the map; let them go so
            # that the map can close (else BufferError would hide the real error).
            traceback.clear_frames(exc.__traceback__)
            raise
        finally:
            view.release()


def _hnswlib_path(path: Path, fd: int) -> bytes:
    """What hnswlib opens: on Linux the checked descriptor itself (a file swapped in after the
    check cannot be loaded instead), elsewhere the path, as bytes for any folder name."""
    proc = f"/proc/self/fd/{fd}"
    return os.fsencode(proc) if os.path.exists(proc) else os.fsencode(path)
