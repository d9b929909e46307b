"""hnswlib vector index: an acceleration structure over the catalog's vectors."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

# Chosen from benchmarks/run.py's index section (100,000 SigLIP-like vectors, text queries,
# which lie outside the images' distribution and are the hard case for a graph): M=32 beat
# M=16 at equal latency. A search asks for its 100-candidate pool, and query() raises ef to k,
# so ef 100 is the floor; on the 2-core benchmark CPU it gave p50 1.4-1.6 ms and recall@10
# 0.985, against 1.8-2.1 ms and 0.995 at ef 128 (RESULTS.md has the sweep).
DEFAULT_M = 32
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 100
SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class IndexState:
    """What the sidecar says the saved index reflects."""

    generation: int
    deleted: frozenset[int]


class VectorIndex:
    """Cosine hnswlib index with a lock, growing capacity, replace-deleted and atomic save.

    hnswlib persists deleted marks but offers no way to list them, and it does not persist
    the query-time ef. So a JSON sidecar stores the deleted labels and the catalog generation
    the index reflects, and ef is set on every load (and raised to k on every query).
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
        self._index = hnswlib.Index(space="cosine", dim=dim)
        self._index.init_index(
            max_elements=max(capacity, 16),
            ef_construction=ef_construction,
            M=m,
            allow_replace_deleted=True,
        )
        self._index.set_ef(ef_search)
        self._deleted: set[int] = set()

    @classmethod
    def load(
        cls,
        path: Path,
        dim: int,
        ef_search: int = DEFAULT_EF_SEARCH,
        verify_deleted: bool = False,
    ) -> tuple[VectorIndex, IndexState]:
        """Load an index and its sidecar; raises OSError/RuntimeError/ValueError if unusable.

        verify_deleted asks hnswlib itself which labels are deleted instead of trusting the
        sidecar (slow, ~40 us a label): for when the sidecar may be older than the index.
        """
        import hnswlib

        state = read_sidecar(sidecar_path(path), dim)
        self = cls.__new__(cls)
        self.dim = dim
        self.ef_search = ef_search
        self._lock = threading.Lock()
        self._index = hnswlib.Index(space="cosine", dim=dim)
        self._index.load_index(str(path), max_elements=0, allow_replace_deleted=True)
        if self._index.dim != dim:
            raise ValueError(f"index dim {self._index.dim} != {dim}")
        self._index.set_ef(ef_search)  # ef is not saved with the index
        labels = self._index.get_ids_list()
        if verify_deleted:
            self._deleted = {label for label in labels if not self._has_live(label)}
        else:
            self._deleted = set(state.deleted) & set(labels)
        return self, state

    def _has_live(self, label: int) -> bool:
        try:
            self._index.get_items([label])
        except RuntimeError:  # hnswlib: "Label not found" for deleted labels
            return False
        return True

    def __len__(self) -> int:
        with self._lock:
            return self._index.get_current_count() - len(self._deleted)

    def live_ids(self) -> set[int]:
        with self._lock:
            return set(self._index.get_ids_list()) - self._deleted

    @property
    def capacity(self) -> int:
        return int(self._index.get_max_elements())

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Insert or update vectors under integer ids (re-adding a deleted id restores it)."""
        labels = np.asarray(ids, dtype=np.int64).reshape(-1)
        data = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(labels), self.dim)
        if len(labels) == 0:
            return
        with self._lock:
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
                if label in present and label not in self._deleted:
                    # RuntimeError: already deleted in hnswlib, though unknown to us.
                    with contextlib.suppress(RuntimeError):
                        self._index.mark_deleted(label)
                    self._deleted.add(label)

    def query(
        self, vectors: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Nearest ids and their cosine similarities, shape (n_queries, min(k, len))."""
        queries = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            live = self._index.get_current_count() - len(self._deleted)
            k = min(k, live)
            if k <= 0 or len(queries) == 0:
                return np.zeros((len(queries), 0), np.int64), np.zeros(
                    (len(queries), 0), np.float32
                )
            self._index.set_ef(max(self.ef_search, k))
            labels, distances = self._index.knn_query(queries, k=k)
        # hnswlib's cosine space returns 1 - cos.
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)

    def get_vectors(self, ids: Iterable[int]) -> npt.NDArray[np.float32]:
        labels = [int(i) for i in ids]
        if not labels:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return np.asarray(self._index.get_items(labels), dtype=np.float32)

    def save(self, path: Path, generation: int) -> None:
        """Atomically write the index, then its sidecar (temp file + fsync + os.replace)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        side = sidecar_path(path)
        side_tmp = side.with_name(side.name + ".tmp")
        with self._lock:
            self._index.save_index(str(tmp))
            deleted = sorted(self._deleted)
        _fsync(tmp)
        side_tmp.write_text(
            json.dumps(
                {
                    "format": SIDECAR_FORMAT,
                    "dim": self.dim,
                    "generation": generation,
                    "deleted": deleted,
                }
            ),
            encoding="utf-8",
        )
        _fsync(side_tmp)
        # A crash between the two replaces leaves an older sidecar: its lower generation
        # makes the next open re-check the index against the catalog, so nothing is lost.
        os.replace(tmp, path)
        os.replace(side_tmp, side)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path, dim: int) -> IndexState:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != SIDECAR_FORMAT or data.get("dim") != dim:
        raise ValueError(f"{path}: unexpected sidecar format or dim")
    return IndexState(int(data["generation"]), frozenset(int(i) for i in data["deleted"]))


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
