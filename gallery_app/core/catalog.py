"""SQLite catalog, the library's source of truth: folders, images, vectors, model id, version."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from gallery_app.core.errors import CorruptCatalog, GalleryError, LibraryInUse, LibraryMismatch

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

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
    indexed_at REAL NOT NULL,
    ctime_ns INTEGER,
    inode INTEGER,
    fingerprint TEXT
);
CREATE INDEX IF NOT EXISTS images_folder ON images(folder_id);
CREATE INDEX IF NOT EXISTS images_generation ON images(generation);
CREATE INDEX IF NOT EXISTS images_failed ON images(path) WHERE error IS NOT NULL;
CREATE TABLE IF NOT EXISTS text_cache (prompt TEXT PRIMARY KEY, vector BLOB NOT NULL);
"""

# Upgrades from schema version N to N + 1, applied in order inside one transaction after a backup.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2: the failures list (shown after every run and in the window) no longer scans every row.
    1: ("CREATE INDEX IF NOT EXISTS images_failed ON images(path) WHERE error IS NOT NULL",),
    # 3: a file replaced in place with the same size and mtime is told apart by its ctime and
    # inode, then its content fingerprint. NULL for rows written before: compared as before.
    2: (
        "ALTER TABLE images ADD COLUMN ctime_ns INTEGER",
        "ALTER TABLE images ADD COLUMN inode INTEGER",
        "ALTER TABLE images ADD COLUMN fingerprint TEXT",
    ),
}


@dataclass(frozen=True)
class Folder:
    id: int
    path: str


@dataclass(frozen=True)
class FileState:
    """What the catalog knows about one file, for the incremental check: (mtime, size), then
    (ctime, inode) and the content fingerprint (None for rows of an older schema)."""

    id: int
    mtime_ns: int
    size: int
    indexed: bool
    error: str | None
    ctime_ns: int | None = None
    inode: int | None = None
    fingerprint: str | None = None


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
    ctime_ns: int | None = None
    inode: int | None = None  # as SQLite's signed 64-bit (see signed_inode)
    fingerprint: str | None = None


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
    """One SQLite file per library. Thread-safe: one connection behind one lock.

    The catalog is the one file that cannot be rebuilt (it holds hours of encoding), so it is
    looked at read-only before anything writes to it, never deleted or overwritten, and copied
    aside before a schema upgrade.
    """

    busy_timeout_ms = 5000

    def __init__(self, path: Path, model_id: str, dim: int, read_only: bool = False) -> None:
        self.path = path
        self.model_id = model_id
        self.dim = dim
        self.read_only = read_only
        self.migrated_from: int | None = None  # the schema version upgraded from on open
        self.backup_path: Path | None = None  # the copy taken before that upgrade
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        try:
            if read_only and not path.exists():
                raise GalleryError(f"There is no library at {path} yet; index a folder first.")
            fresh = not path.exists() or path.stat().st_size == 0
            tables = set() if fresh else self._inspect()
            if read_only:
                self._db = sqlite3.connect(_read_only_uri(path), uri=True, check_same_thread=False)
                self.db.isolation_level = None
                self.db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                self.db.execute("PRAGMA query_only=ON")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self.db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute("PRAGMA foreign_keys=ON")
            if "meta" in tables:
                self._check_version_and_identity()
            else:
                self._create()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise self._translate(exc) from exc
        except BaseException:
            self._close_quietly()
            raise

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise GalleryError(f"The library catalog {self.path} is closed.")
        return self._db

    def _inspect(self) -> set[str]:
        """Integrity check and table names through a read-only connection: a damaged file is
        reported before any write (WAL switch, schema creation) could make it worse."""
        probe = sqlite3.connect(_read_only_uri(self.path), uri=True)
        try:
            probe.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            problems = [row[0] for row in probe.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise CorruptCatalog(self._damaged_message("; ".join(problems)))
            tables = {
                name
                for (name,) in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            rows = (
                probe.execute("SELECT COUNT(*) FROM meta").fetchone()[0] if "meta" in tables else 0
            )
        finally:
            probe.close()
        if tables and not rows:
            raise CorruptCatalog(
                f"{self.path} is an SQLite database but not a gallery-app catalog (no version "
                "record). It was left untouched; move it away from the library folder."
            )
        return tables

    def _create(self) -> None:
        if self.read_only:
            raise LibraryInUse(f"The library {self.path} is still being created; try again.")
        statements = [part.strip() for part in _SCHEMA.split(";") if part.strip()]
        with self._transaction() as db:  # schema and identity together, or neither
            for statement in statements:
                db.execute(statement)
            db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("model_id", self.model_id),
                    ("dim", str(self.dim)),
                    ("generation", "0"),
                ],
            )

    def _close_quietly(self) -> None:
        if self._db is not None:
            self.db.close()
            self._db = None

    def _check_version_and_identity(self) -> None:
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            raise CorruptCatalog(
                self._damaged_message(f"schema version {meta.get('schema_version')!r}")
            ) from None
        if version > SCHEMA_VERSION:
            raise LibraryMismatch(
                f"The library {self.path} was written by a newer gallery-app "
                f"(schema {version}, this one reads up to {SCHEMA_VERSION}). Upgrade "
                "gallery-app; the library was left untouched."
            )
        if meta.get("model_id") != self.model_id or meta.get("dim") != str(self.dim):
            raise LibraryMismatch(
                f"The library {self.path} holds vectors of model {meta.get('model_id')!r} "
                f"(dim {meta.get('dim')}), not {self.model_id!r} (dim {self.dim}); "
                "vectors of two models are never mixed."
            )
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        if any(step not in _MIGRATIONS for step in range(version, SCHEMA_VERSION)):
            raise CorruptCatalog(self._damaged_message(f"unknown schema version {version}"))
        if self.read_only:
            raise LibraryInUse(
                f"The library {self.path} needs an upgrade (schema {version} to "
                f"{SCHEMA_VERSION}) that only the process writing to it can do; try again "
                "when it has finished."
            )
        backup = self.backup(f"schema{version}")
        with self._transaction() as db:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    db.execute(statement)
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
        self.migrated_from = version
        self.backup_path = backup
        log.info("catalog %s upgraded from schema %d (backup: %s)", self.path, version, backup)

    def backup(self, label: str) -> Path:
        """A consistent copy next to the catalog (SQLite's online backup), never overwriting
        an older copy; taken before anything that changes the catalog's structure."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.{label}-{stamp}.bak")
        counter = 1
        while target.exists():
            counter += 1
            target = self.path.with_name(f"{self.path.name}.{label}-{stamp}-{counter}.bak")
        partial = target.with_name(target.name + ".tmp")
        copy = sqlite3.connect(partial)
        try:
            with self._lock:
                self.db.backup(copy)
        finally:
            copy.close()
        os.replace(partial, target)
        return target

    def _damaged_message(self, detail: str) -> str:
        return (
            f"The library catalog {self.path} is damaged ({detail}). It was left untouched. "
            "Restore it from a backup, or move it aside and run `gallery-app index` on your "
            "folders again to rebuild it."
        )

    def _translate(self, exc: sqlite3.DatabaseError) -> GalleryError:
        """An SQLite error as something a user can act on."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError):
            if "locked" in text or "busy" in text:
                return LibraryInUse(
                    f"The library catalog {self.path} is locked by another program ({text}). "
                    "Close other gallery-app windows or tools using it, then try again."
                )
            if "full" in text:
                return GalleryError(
                    f"Cannot write to the library catalog {self.path}: the disk is full. Free "
                    "some space and run the same command again; nothing committed is lost."
                )
            if "unable to open" in text or "readonly" in text or "read-only" in text:
                return GalleryError(
                    f"Cannot open the library catalog {self.path} for writing ({text}). Check "
                    "that its folder exists and that you may write to it."
                )
        return CorruptCatalog(self._damaged_message(text))

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise GalleryError(
                f"The library {self.path} is open read-only (another gallery-app is writing "
                "to it); searching works, changes must wait until it is done."
            )
        with self._lock:
            db = self.db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._translate(exc) from exc
            try:
                yield db
            except BaseException as exc:
                db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise self._translate(exc) from exc
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                db.execute("ROLLBACK")
                raise self._translate(exc) from exc

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
            row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    # Folders ----------------------------------------------------------------------------
    def add_folder(self, path: str) -> Folder:
        """Register a folder; one inside a known folder is already covered by it."""
        with self._transaction() as db:
            for folder_id, stored in db.execute("SELECT id, path FROM folders").fetchall():
                known = _from_db(stored)
                if is_within(path, known):
                    return Folder(folder_id, known)
            cur = db.execute(
                "INSERT INTO folders(path, added_at) VALUES (?, ?)", (_to_db(path), time.time())
            )
            folder = Folder(int(cur.lastrowid or 0), path)
            # Folders inside the new one are absorbed so each image has exactly one owner.
            for child_id, child in db.execute(
                "SELECT id, path FROM folders WHERE id != ?", (folder.id,)
            ).fetchall():
                if is_within(_from_db(child), path):
                    db.execute(
                        "UPDATE images SET folder_id = ? WHERE folder_id = ?", (folder.id, child_id)
                    )
                    db.execute("DELETE FROM folders WHERE id = ?", (child_id,))
            return folder

    def folders(self) -> list[Folder]:
        with self._lock:
            rows = self.db.execute("SELECT id, path FROM folders ORDER BY path").fetchall()
        return [Folder(int(i), _from_db(p)) for i, p in rows]

    def remove_folder(self, path: str) -> tuple[int, list[int]]:
        """Forget a folder and its images; returns (generation, ids of removed vectors)."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM folders WHERE path = ?", (_to_db(path),)).fetchone()
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
            rows = self.db.execute(
                "SELECT id, path, mtime_ns, size, vector IS NOT NULL, error, ctime_ns, inode, "
                "fingerprint FROM images WHERE folder_id = ?",
                (folder_id,),
            ).fetchall()
        return {
            _from_db(path): FileState(int(i), int(m), int(s), bool(ok), err, ctime, ino, digest)
            for i, path, m, s, ok, err, ctime, ino, digest in rows
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
                    "taken_at, error, vector, generation, indexed_at, ctime_ns, inode, "
                    "fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET folder_id=excluded.folder_id, "
                    "mtime_ns=excluded.mtime_ns, size=excluded.size, width=excluded.width, "
                    "height=excluded.height, taken_at=excluded.taken_at, error=excluded.error, "
                    "vector=excluded.vector, generation=excluded.generation, "
                    "indexed_at=excluded.indexed_at, ctime_ns=excluded.ctime_ns, "
                    "inode=excluded.inode, fingerprint=excluded.fingerprint RETURNING id",
                    (
                        rec.folder_id,
                        _to_db(rec.path),
                        rec.mtime_ns,
                        rec.size,
                        rec.width,
                        rec.height,
                        rec.taken_at,
                        rec.error,
                        blob,
                        generation,
                        now,
                        rec.ctime_ns,
                        rec.inode,
                        rec.fingerprint,
                    ),
                ).fetchone()
                ids.append(int(row[0]))
            return generation, ids

    def restamp(self, stamps: Sequence[tuple[int, int, int]]) -> None:
        """Record (id, ctime_ns, inode) of files found unchanged (their content fingerprint
        matched, or the row predates those columns); the vectors are untouched, so the
        generation is too."""
        if not stamps:
            return
        with self._transaction() as db:
            db.executemany(
                "UPDATE images SET ctime_ns = ?, inode = ? WHERE id = ?",
                [(ctime, inode, image_id) for image_id, ctime, inode in stamps],
            )

    def remove_images(self, ids: Iterable[int]) -> int:
        """Delete image rows; returns the new generation."""
        ids = list(ids)
        with self._transaction() as db:
            db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in ids])
            return self._bump_generation(db)

    def vector_ids(self) -> set[int]:
        with self._lock:
            rows = self.db.execute("SELECT id FROM images WHERE vector IS NOT NULL")
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
                rows = self.db.execute(query, params).fetchall()
            else:
                wanted = list(ids)
                rows = []
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows += self.db.execute(
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
                for row in self.db.execute(
                    "SELECT id, path, width, height, taken_at, mtime_ns, size FROM images "
                    f"WHERE id IN ({marks})",
                    chunk,
                ):
                    out[int(row[0])] = ImageInfo(row[0], _from_db(row[1]), *row[2:])
        return out

    def browse(self) -> list[ImageInfo]:
        """Every searchable image, newest first (EXIF date when known, else file time)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, path, width, height, taken_at, mtime_ns, size FROM images "
                "WHERE vector IS NOT NULL "
                "ORDER BY COALESCE(taken_at, strftime('%Y-%m-%dT%H:%M:%S', mtime_ns / 1e9, "
                "'unixepoch')) DESC, path"
            ).fetchall()
        return [ImageInfo(row[0], _from_db(row[1]), *row[2:]) for row in rows]

    def indexed_files(self) -> list[tuple[str, int]]:
        """(path, mtime_ns) of every searchable image: what the thumbnail cache should hold."""
        with self._lock:
            rows = self.db.execute(
                "SELECT path, mtime_ns FROM images WHERE vector IS NOT NULL ORDER BY path"
            ).fetchall()
        return [(_from_db(path), int(mtime_ns)) for path, mtime_ns in rows]

    def failures(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT path, error FROM images WHERE error IS NOT NULL ORDER BY path"
            ).fetchall()
        return [(_from_db(path), error) for path, error in rows]

    def count(self) -> int:
        """Images that are searchable (have a vector)."""
        with self._lock:
            return int(
                self.db.execute("SELECT COUNT(*) FROM images WHERE vector IS NOT NULL").fetchone()[
                    0
                ]
            )

    # Text embedding cache (per model, since the catalog is) -------------------------------
    def cached_text_vectors(self, prompts: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        if not prompts:
            return {}
        marks = ",".join("?" * len(prompts))
        with self._lock:
            rows = self.db.execute(
                f"SELECT prompt, vector FROM text_cache WHERE prompt IN ({marks})", list(prompts)
            ).fetchall()
        return {p: np.frombuffer(blob, dtype=np.float32).copy() for p, blob in rows}

    def store_text_vectors(self, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
        if not vectors or self.read_only:  # a cache: a reader just recomputes next time
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO text_cache(prompt, vector) VALUES (?, ?)",
                [(p, np.asarray(v, np.float32).tobytes()) for p, v in vectors.items()],
            )


def stored_dim(path: Path) -> int | None:
    """The vector size of an existing catalog, or None when there is none or it cannot be
    read (opening it as a library then says why)."""
    if not path.exists():
        return None
    try:
        return read_identity(path)[1]
    except CorruptCatalog:
        return None


def read_identity(path: Path) -> tuple[str, int]:
    """(model id, dim) a catalog was written for, read without opening it as a library."""
    try:
        probe = sqlite3.connect(_read_only_uri(path), uri=True)
        try:
            meta = dict(probe.execute("SELECT key, value FROM meta"))
        finally:
            probe.close()
        return str(meta["model_id"]), int(meta["dim"])
    except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
        raise CorruptCatalog(f"The library catalog {path} cannot be read ({exc}).") from exc


def _read_only_uri(path: Path) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro"


def _to_db(path: str) -> str | bytes:
    """Paths are TEXT; a name that is not valid UTF-8 (old archives, SMB shares) is stored as its
    raw bytes instead, since SQLite text must be UTF-8 and such a file is still a photo."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def signed_inode(inode: int) -> int:
    """An inode number (unsigned 64-bit on some filesystems) as SQLite's signed INTEGER."""
    return inode - (1 << 64) if inode >= 1 << 63 else inode


def is_within(path: str, folder: str) -> bool:
    """True when path is folder itself or lies under it."""
    return PurePath(path).is_relative_to(PurePath(folder))
