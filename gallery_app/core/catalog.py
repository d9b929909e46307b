"""SQLite catalog, the library's source of truth: folders, images, vectors, model id, version."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import numpy.typing as npt

from gallery_app.core.errors import CorruptIndex, LibraryMismatch

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path TEXT NOT NULL UNIQUE,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    width INTEGER,
    height INTEGER,
    taken_at TEXT,
    error TEXT,
    vector BLOB,
    generation INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_folder ON images(folder_id);
CREATE INDEX IF NOT EXISTS images_generation ON images(generation);
CREATE TABLE IF NOT EXISTS text_cache (prompt TEXT PRIMARY KEY, vector BLOB NOT NULL);
"""


@dataclass(frozen=True)
class Folder:
    id: int
    path: str


@dataclass(frozen=True)
class FileState:
    """What the catalog knows about one file, for the incremental (mtime, size) check."""

    id: int
    mtime_ns: int
    size: int
    indexed: bool
    error: str | None


@dataclass(frozen=True)
class ImageRecord:
    """One file's outcome from an indexing batch: a vector, or an error saying why not."""

    path: str
    folder_id: int
    mtime_ns: int
    size: int
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    vector: npt.NDArray[np.float32] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ImageInfo:
    id: int
    path: str
    width: int | None
    height: int | None
    taken_at: str | None
    mtime_ns: int
    size: int


class Catalog:
    """One SQLite file per library. Thread-safe: one connection behind one lock."""

    def __init__(self, path: Path, model_id: str, dim: int) -> None:
        self.path = path
        self.model_id = model_id
        self.dim = dim
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._check_identity()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise CorruptIndex(
                f"The library catalog {path} cannot be read ({exc}). Move it aside and run "
                "`gallery-app index` on your folders again to rebuild it."
            ) from exc
        except LibraryMismatch:
            self._close_quietly()
            raise

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()

    def _check_identity(self) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        if not meta:
            with self._transaction() as db:
                db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("model_id", self.model_id),
                        ("dim", str(self.dim)),
                        ("generation", "0"),
                    ],
                )
            return
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise LibraryMismatch(
                f"The library {self.path} was written by a newer gallery-app "
                f"(schema {version}, this one reads {SCHEMA_VERSION}). Upgrade gallery-app."
            )
        if meta.get("model_id") != self.model_id or int(meta.get("dim", "0")) != self.dim:
            raise LibraryMismatch(
                f"The library {self.path} holds vectors of model {meta.get('model_id')!r} "
                f"(dim {meta.get('dim')}), not {self.model_id!r} (dim {self.dim}); "
                "vectors of two models are never mixed."
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _bump_generation(self, db: sqlite3.Connection) -> int:
        db.execute(
            "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
            "WHERE key = 'generation'"
        )
        return int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    @property
    def generation(self) -> int:
        """Bumped by every change to the vectors; the index records the one it reflects."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    # Folders ----------------------------------------------------------------------------
    def add_folder(self, path: str) -> Folder:
        """Register a folder; one inside a known folder is already covered by it."""
        with self._transaction() as db:
            for folder_id, known in db.execute("SELECT id, path FROM folders").fetchall():
                if is_within(path, known):
                    return Folder(folder_id, known)
            cur = db.execute(
                "INSERT INTO folders(path, added_at) VALUES (?, ?)", (path, time.time())
            )
            folder = Folder(int(cur.lastrowid or 0), path)
            # Folders inside the new one are absorbed so each image has exactly one owner.
            for child_id, child in db.execute(
                "SELECT id, path FROM folders WHERE id != ?", (folder.id,)
            ).fetchall():
                if is_within(child, path):
                    db.execute(
                        "UPDATE images SET folder_id = ? WHERE folder_id = ?", (folder.id, child_id)
                    )
                    db.execute("DELETE FROM folders WHERE id = ?", (child_id,))
            return folder

    def folders(self) -> list[Folder]:
        with self._lock:
            rows = self._db.execute("SELECT id, path FROM folders ORDER BY path").fetchall()
        return [Folder(int(i), p) for i, p in rows]

    def remove_folder(self, path: str) -> tuple[int, list[int]]:
        """Forget a folder and its images; returns (generation, ids of removed vectors)."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM folders WHERE path = ?", (path,)).fetchone()
            if row is None:
                return self._current_generation(db), []
            ids = [
                int(i)
                for (i,) in db.execute(
                    "SELECT id FROM images WHERE folder_id = ? AND vector IS NOT NULL", (row[0],)
                )
            ]
            db.execute("DELETE FROM images WHERE folder_id = ?", (row[0],))
            db.execute("DELETE FROM folders WHERE id = ?", (row[0],))
            return self._bump_generation(db), ids

    def _current_generation(self, db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    # Images -----------------------------------------------------------------------------
    def files_in_folder(self, folder_id: int) -> dict[str, FileState]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, mtime_ns, size, vector IS NOT NULL, error FROM images "
                "WHERE folder_id = ?",
                (folder_id,),
            ).fetchall()
        return {
            path: FileState(int(i), int(m), int(s), bool(ok), err)
            for i, path, m, s, ok, err in rows
        }

    def write_batch(self, records: Sequence[ImageRecord]) -> tuple[int, list[int]]:
        """Upsert one batch in one transaction; returns (generation, ids in record order)."""
        if not records:
            return self.generation, []
        now = time.time()
        with self._transaction() as db:
            generation = self._bump_generation(db)
            ids = []
            for rec in records:
                blob = None
                if rec.vector is not None:
                    blob = np.ascontiguousarray(rec.vector, dtype=np.float32).tobytes()
                row = db.execute(
                    "INSERT INTO images(folder_id, path, mtime_ns, size, width, height, "
                    "taken_at, error, vector, generation, indexed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET folder_id=excluded.folder_id, "
                    "mtime_ns=excluded.mtime_ns, size=excluded.size, width=excluded.width, "
                    "height=excluded.height, taken_at=excluded.taken_at, error=excluded.error, "
                    "vector=excluded.vector, generation=excluded.generation, "
                    "indexed_at=excluded.indexed_at RETURNING id",
                    (
                        rec.folder_id,
                        rec.path,
                        rec.mtime_ns,
                        rec.size,
                        rec.width,
                        rec.height,
                        rec.taken_at,
                        rec.error,
                        blob,
                        generation,
                        now,
                    ),
                ).fetchone()
                ids.append(int(row[0]))
            return generation, ids

    def remove_images(self, ids: Iterable[int]) -> int:
        """Delete image rows; returns the new generation."""
        ids = list(ids)
        with self._transaction() as db:
            db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in ids])
            return self._bump_generation(db)

    def vector_ids(self) -> set[int]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM images WHERE vector IS NOT NULL")
            return {int(i) for (i,) in rows}

    def vectors(
        self, ids: Iterable[int] | None = None, since_generation: int | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(ids, matrix) of stored vectors: all, the given ids, or those newer than a generation."""
        query = "SELECT id, vector FROM images WHERE vector IS NOT NULL"
        params: list[int] = []
        if since_generation is not None:
            query += " AND generation > ?"
            params.append(since_generation)
        with self._lock:
            if ids is None:
                rows = self._db.execute(query, params).fetchall()
            else:
                wanted = list(ids)
                rows = []
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows += self._db.execute(
                        f"{query} AND id IN ({marks})", [*params, *chunk]
                    ).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
        return np.array([i for i, _ in rows], np.int64), matrix.reshape(len(rows), self.dim)

    def images(self, ids: Iterable[int]) -> dict[int, ImageInfo]:
        wanted = list(ids)
        out: dict[int, ImageInfo] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    "SELECT id, path, width, height, taken_at, mtime_ns, size FROM images "
                    f"WHERE id IN ({marks})",
                    chunk,
                ):
                    out[int(row[0])] = ImageInfo(*row)
        return out

    def browse(self) -> list[ImageInfo]:
        """Every searchable image, newest first (EXIF date when known, else file time)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, width, height, taken_at, mtime_ns, size FROM images "
                "WHERE vector IS NOT NULL "
                "ORDER BY COALESCE(taken_at, strftime('%Y-%m-%dT%H:%M:%S', mtime_ns / 1e9, "
                "'unixepoch')) DESC, path"
            ).fetchall()
        return [ImageInfo(*row) for row in rows]

    def failures(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT path, error FROM images WHERE error IS NOT NULL ORDER BY path"
            ).fetchall()

    def count(self) -> int:
        """Images that are searchable (have a vector)."""
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM images WHERE vector IS NOT NULL").fetchone()[
                    0
                ]
            )

    # Text embedding cache (per model, since the catalog is) -------------------------------
    def cached_text_vectors(self, prompts: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        if not prompts:
            return {}
        marks = ",".join("?" * len(prompts))
        with self._lock:
            rows = self._db.execute(
                f"SELECT prompt, vector FROM text_cache WHERE prompt IN ({marks})", list(prompts)
            ).fetchall()
        return {p: np.frombuffer(blob, dtype=np.float32).copy() for p, blob in rows}

    def store_text_vectors(self, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
        if not vectors:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO text_cache(prompt, vector) VALUES (?, ?)",
                [(p, np.asarray(v, np.float32).tobytes()) for p, v in vectors.items()],
            )


def stored_dim(path: Path) -> int | None:
    """The vector size of an existing catalog, without knowing its model's details."""
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row else None


def is_within(path: str, folder: str) -> bool:
    """True when path is folder itself or lies under it."""
    return PurePath(path).is_relative_to(PurePath(folder))
