"""hnswlib vector index: an acceleration structure over the catalog's vectors."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

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
        verify_deleted: bool = False,
    ) -> tuple[VectorIndex, IndexState]:
        """Load an index and its sidecar; raises OSError/RuntimeError/ValueError if unusable
        (ValueError when the file is not the one its sidecar describes: truncated, damaged).

        verify_deleted asks hnswlib itself which labels are deleted instead of trusting the
        sidecar (slow, ~40 us a label): for a format-1 sidecar (no checksum) that may be older
        than the index. A checksummed sidecar is exact, so it is trusted.
        """
        import hnswlib

        state = _matching_state(path, dim)
        verify_deleted = verify_deleted and state.crc32 is None
        self = cls.__new__(cls)
        self.dim = dim
        self.ef_search = ef_search
        self._lock = threading.Lock()
        self._index = hnswlib.Index(space=SPACE, dim=dim)
        self._index.load_index(str(path), max_elements=0, allow_replace_deleted=True)
        if self._index.dim != dim:
            raise ValueError(f"index dim {self._index.dim} != {dim}")
        self._index.set_ef(ef_search)  # ef is not saved with the index
        labels = self._index.get_ids_list()
        if verify_deleted:
            self._deleted = {label for label in labels if not self._has_live(label)}
        else:
            self._deleted = set(state.deleted) & set(labels)
        self._init_duplicates()
        nodes = set(labels) - self._deleted
        for alias, node in state.aliases:
            if node in nodes and alias not in nodes:
                self._node_of[alias] = node
                self._copies.setdefault(node, set()).add(alias)
        return self, state

    def _has_live(self, label: int) -> bool:
        try:
            self._index.get_items([label])
        except RuntimeError:  # hnswlib: "Label not found" for deleted labels
            return False
        return True

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
        self, vectors: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Nearest ids and their cosine similarities, nearest first.

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
            self._index.set_ef(max(self.ef_search, k))
            labels, distances = self._index.knn_query(queries, k=k)
            copies = {node: sorted(c) for node, c in self._copies.items()}
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
        """Atomically write the sidecar, then the index (temp file + fsync + os.replace)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        side = sidecar_path(path)
        side_tmp = side.with_name(side.name + ".tmp")
        with self._lock:
            self._index.save_index(str(tmp))
            deleted = frozenset(self._deleted)
            aliases = tuple(sorted(self._node_of.items()))
        _fsync(tmp)
        size, crc = _checksum(tmp)
        state = IndexState(generation, deleted, size, crc, aliases)
        # The sidecar goes first and also describes the index it replaces: a crash between the
        # two replaces leaves the old index with a sidecar that still describes it exactly.
        previous = _previous_state(path, self.dim)
        side_tmp.write_text(
            json.dumps(
                {
                    "format": SIDECAR_FORMAT,
                    "dim": self.dim,
                    **state.to_json(),
                    "previous": previous.to_json() if previous else None,
                }
            ),
            encoding="utf-8",
        )
        _fsync(side_tmp)
        os.replace(side_tmp, side)
        os.replace(tmp, path)


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
    """The state a sidecar records (or the one before it, when previous and it has one)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") not in (1, SIDECAR_FORMAT) or data.get("dim") != dim:
        raise ValueError(f"{path}: unexpected sidecar format or dim")
    if previous:
        data = data.get("previous")
        if not data:
            raise ValueError(f"{path}: no previous state")
    checked = data.get("crc32") is not None
    return IndexState(
        int(data["generation"]),
        frozenset(int(i) for i in data["deleted"]),
        int(data["size"]) if checked else None,
        int(data["crc32"]) if checked else None,
        tuple((int(alias), int(node)) for alias, node in data.get("aliases") or ()),
    )


def _matching_state(path: Path, dim: int) -> IndexState:
    """The sidecar state that describes the index file as it is on disk, else ValueError."""
    state = read_sidecar(sidecar_path(path), dim)
    if state.crc32 is None:
        return state  # format 1: nothing to check against
    size, crc = _checksum(path)
    if state.describes(size, crc):
        return state
    with contextlib.suppress(ValueError, KeyError, TypeError):
        previous = read_sidecar(sidecar_path(path), dim, previous=True)
        if previous.describes(size, crc):
            return previous  # the process died between the sidecar's and the index's replace
    raise ValueError(
        f"{path.name} is not the index its sidecar describes ({size} bytes, CRC "
        f"{crc:08x}; expected {state.size} bytes, CRC {state.crc32:08x}): truncated or damaged"
    )


def _previous_state(path: Path, dim: int) -> IndexState | None:
    """The state of the index about to be replaced, if it is intact and checksummed."""
    try:
        state = _matching_state(path, dim)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if state.crc32 is not None else None


def _checksum(path: Path) -> tuple[int, int]:
    """(size, CRC-32) of a file, read in 1 MiB chunks (zlib's CRC runs at GB/s)."""
    crc = 0
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, crc


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
