"""SQLite catalog, the library's source of truth: folders, images, vectors, model id, version."""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from gallery_app.core.errors import (
    CorruptCatalog,
    DiskFull,
    GalleryError,
    LibraryInUse,
    LibraryMismatch,
)
from gallery_app.core.fileio import (
    check_regular,
    create_private,
    disk_full,
    make_private_dirs,
    nearly_full,
    remove_quietly,
    tighten,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

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
    fingerprint TEXT,
    description TEXT,
    title TEXT,
    caption TEXT
);
CREATE INDEX IF NOT EXISTS images_folder ON images(folder_id);
CREATE INDEX IF NOT EXISTS images_generation ON images(generation);
CREATE INDEX IF NOT EXISTS images_failed ON images(path) WHERE error IS NOT NULL;
CREATE TABLE IF NOT EXISTS text_cache (prompt TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tags (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('user', 'file')),
    tag TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (image_id, source, tag)
);
CREATE INDEX IF NOT EXISTS tags_tag ON tags(tag);
CREATE TABLE IF NOT EXISTS marks (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    query TEXT NOT NULL,
    relevant INTEGER NOT NULL CHECK (relevant IN (0, 1)),
    marked_at REAL NOT NULL,
    PRIMARY KEY (image_id, query)
);
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
    # 4: what people say about a photo. Tags typed in the app ('user') and keywords read from
    # the file ('file', replaced whenever the file is encoded again), a description, the
    # file's own title and caption; and relevance marks for the feedback fit. Rows go with
    # their image (ON DELETE CASCADE), which is kept while its folder is unreachable.
    3: (
        "ALTER TABLE images ADD COLUMN description TEXT",
        "ALTER TABLE images ADD COLUMN title TEXT",
        "ALTER TABLE images ADD COLUMN caption TEXT",
        "CREATE TABLE IF NOT EXISTS tags (image_id INTEGER NOT NULL REFERENCES images(id) "
        "ON DELETE CASCADE, source TEXT NOT NULL CHECK (source IN ('user', 'file')), "
        "tag TEXT NOT NULL COLLATE NOCASE, PRIMARY KEY (image_id, source, tag))",
        "CREATE INDEX IF NOT EXISTS tags_tag ON tags(tag)",
        "CREATE TABLE IF NOT EXISTS marks (image_id INTEGER NOT NULL REFERENCES images(id) "
        "ON DELETE CASCADE, query TEXT NOT NULL, relevant INTEGER NOT NULL "
        "CHECK (relevant IN (0, 1)), marked_at REAL NOT NULL, PRIMARY KEY (image_id, query))",
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('metadata_generation', '0')",
    ),
}


# SQLite's primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_INTERRUPT, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 9, 10, 13, 14
_SQLITE_AUTH = 23

# A read that fails with one of these found a stored value it cannot use (a vector blob of the
# wrong length, a number stored as text, bytes that are not UTF-8): SQLite has no page
# checksums, so damage inside a page often shows up only here.
_DECODING_ERRORS = (ValueError, TypeError, KeyError, OverflowError, UnicodeDecodeError)

_UNIT_TOLERANCE = 1e-3  # float32 embeddings normalized by the encoder are within ~1e-6

_Method = TypeVar("_Method", bound=Callable[..., Any])


class _StoredValueError(ValueError):
    """A value read back from the catalog is not what gallery-app stores there."""


def _guard(value_errors: tuple[type[Exception], ...]) -> Callable[[_Method], _Method]:
    """A decorator turning an SQLite error into the designed error (in use, disk full,
    damaged ...) and `value_errors` into "damaged": never a bare exception."""

    def decorate(method: _Method) -> _Method:
        @functools.wraps(method)
        def wrapper(self: Catalog, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise self._translate(exc) from exc
            except value_errors as exc:
                raise self._damaged(f"a stored value cannot be read: {_short(exc)}") from exc

        return wrapper  # type: ignore[return-value]

    return decorate


# Every catalog read: a value that cannot be decoded is damage.
_guarded = _guard(_DECODING_ERRORS)
# Every catalog write: a TypeError or ValueError from the records handed in is the caller's
# bug, not damage; only values read back (_StoredValueError) are checked.
_guarded_write = _guard((_StoredValueError,))


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
    # Read from the file (IPTC/XMP): stored as 'file' tags, title and caption, replacing what
    # an earlier encode of the file stored. None: not read (an older reader), left as it was.
    file_keywords: tuple[str, ...] | None = None
    title: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class PhotoMetadata:
    """What is known about one photo beyond its pixels: the user's tags and description, and
    the keywords, title and caption its file carries."""

    user_tags: tuple[str, ...] = ()
    file_tags: tuple[str, ...] = ()
    description: str | None = None
    title: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class Mark:
    """A person's judgement: this photo is (not) what this query asks for."""

    image_id: int
    path: str
    query: str
    relevant: bool
    marked_at: float


@dataclass(frozen=True)
class ImageInfo:
    id: int
    path: str
    width: int | None
    height: int | None
    taken_at: str | None
    mtime_ns: int
    size: int


# The columns write_batch sets, in order: one upsert for both backends (their placeholders
# and their path and text encodings differ, nothing else).
_IMAGE_COLUMNS = (
    "folder_id", "path", "mtime_ns", "size", "width", "height", "taken_at", "error", "vector",
    "generation", "indexed_at", "ctime_ns", "inode", "fingerprint",
)  # fmt: skip


def image_upsert(placeholder: str) -> str:
    """INSERT … ON CONFLICT (path) DO UPDATE of every _IMAGE_COLUMNS, RETURNING id."""
    updates = ", ".join(f"{c}=excluded.{c}" for c in _IMAGE_COLUMNS if c != "path")
    return (
        f"INSERT INTO images({', '.join(_IMAGE_COLUMNS)}) VALUES "
        f"({', '.join([placeholder] * len(_IMAGE_COLUMNS))}) "
        f"ON CONFLICT (path) DO UPDATE SET {updates} RETURNING id"
    )


def image_values(
    rec: ImageRecord,
    path: object,
    vector: object,
    generation: int,
    now: float,
    text: Callable[[str | None], str | None] = lambda value: value,
) -> tuple[object, ...]:
    """One record's values for image_upsert, the path and vector already in the backend's
    form, its free text passed through `text`."""
    return (
        rec.folder_id,
        path,
        rec.mtime_ns,
        rec.size,
        rec.width,
        rec.height,
        text(rec.taken_at),
        text(rec.error),
        vector,
        generation,
        now,
        rec.ctime_ns,
        rec.inode,
        text(rec.fingerprint),
    )


def new_library_meta(schema_version: int, model_id: str, dim: int) -> list[tuple[str, str]]:
    """The meta rows of a new library, on either backend."""
    return [
        ("schema_version", str(schema_version)),
        ("model_id", model_id),
        ("dim", str(dim)),
        ("generation", "0"),
        ("metadata_generation", "0"),
    ]


def checked_schema_version(
    meta: Mapping[str, str],
    where: str,
    model_id: str,
    dim: int,
    supported: int,
    damaged: Callable[[], str],
) -> int:
    """A library's schema version from its meta rows, once it is known to be one this
    gallery-app reads and of this model: a newer schema or another model raise
    LibraryMismatch, an unreadable version CorruptCatalog (with the message `damaged()`)."""
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise CorruptCatalog(damaged()) from None
    if version > supported:
        raise LibraryMismatch(
            f"The library {where} was written by a newer gallery-app "
            f"(schema {version}, this one reads up to {supported}). Upgrade "
            "gallery-app; the library was left untouched."
        )
    if meta.get("model_id") != model_id or meta.get("dim") != str(dim):
        raise LibraryMismatch(
            f"The library {where} holds vectors of model {meta.get('model_id')!r} "
            f"(dim {meta.get('dim')}), not {model_id!r} (dim {dim}); "
            "vectors of two models are never mixed."
        )
    return version


def metadata_from_rows(
    field_rows: Iterable[Sequence[Any]], tag_rows: Iterable[Sequence[Any]]
) -> dict[int, PhotoMetadata]:
    """PhotoMetadata by image id from rows (id, description, title, caption) and rows
    (image id, source, tag) in tag order, on either backend."""
    fields = {int(i): (d, t, c) for i, d, t, c in field_rows}
    tags: dict[int, tuple[list[str], list[str]]] = {}
    for image_id, source, tag in tag_rows:
        user, file = tags.setdefault(int(image_id), ([], []))
        (user if source == "user" else file).append(str(tag))
    out = {}
    for image_id in fields.keys() | tags.keys():
        description, title, caption = fields.get(image_id, (None, None, None))
        user, file = tags.get(image_id, ([], []))
        out[image_id] = PhotoMetadata(tuple(user), tuple(file), description, title, caption)
    return out


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
        self._damage: str | None = None  # set once damage is seen: no write after that
        self._in_memory = False
        try:
            for companion in _companions(path):  # a FIFO here would hang SQLite's first read
                check_regular(companion)
            exists = check_regular(path)
            if read_only and not exists:
                # Nothing indexed yet: an empty catalog in memory, so a reader shows an empty
                # library (and says how to fill it) without creating anything on disk.
                self._in_memory = True
                self._db = sqlite3.connect(":memory:", check_same_thread=False)
                self.db.isolation_level = None
                self._create_schema(self.db)
                return
            fresh = not exists or path.stat().st_size == 0
            tables = set() if fresh else self._inspect()
            if read_only:
                self._db = _connect_read_only(path, check_same_thread=False)
                self.db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                self.db.execute("PRAGMA query_only=ON")
            else:
                make_private_dirs(path.parent)
                # Owner-only, whatever the umask: SQLite gives -wal and -shm the same mode.
                create_private(path)
                tighten(path)
                self._db = sqlite3.connect(
                    _uri(path, "rw"), uri=True, check_same_thread=False, isolation_level=None
                )
                self.db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                self.db.execute("PRAGMA journal_mode=WAL")
                # FULL, not NORMAL: in WAL mode NORMAL syncs only at checkpoints, so a power cut
                # can roll back batches that had already committed. FULL syncs the WAL on every
                # commit, so a committed batch survives a power cut and only the batch in
                # flight can be lost (the README's promise), for one fsync per batch.
                self.db.execute("PRAGMA synchronous=FULL")
                self.db.execute("PRAGMA foreign_keys=ON")
            if "meta" in tables:
                self._check_version_and_identity()
            else:
                self._create()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise self._translate(exc) from exc
        except _DECODING_ERRORS as exc:
            self._close_quietly()
            raise self._damaged(f"a stored value cannot be read: {_short(exc)}") from exc
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
        probe = _connect_read_only(self.path)
        try:
            probe.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            problems = [str(row[0]) for row in probe.execute("PRAGMA quick_check(5)")]
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
        with self._transaction() as db:  # schema and identity together, or neither
            self._create_schema(db)

    def _create_schema(self, db: sqlite3.Connection) -> None:
        for statement in (part.strip() for part in _SCHEMA.split(";")):
            if statement:
                db.execute(statement)
        db.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            new_library_meta(SCHEMA_VERSION, self.model_id, self.dim),
        )

    def _close_quietly(self) -> None:
        if self._db is not None:
            self.db.close()
            self._db = None

    def _check_version_and_identity(self) -> None:
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        version = checked_schema_version(
            meta,
            str(self.path),
            self.model_id,
            self.dim,
            SCHEMA_VERSION,
            lambda: self._damaged_message(f"schema version {meta.get('schema_version')!r}"),
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
        create_private(partial)  # a backup holds the same photo paths: owner-only too
        try:
            copy = sqlite3.connect(_uri(partial, "rw"), uri=True)
            try:
                with self._lock:
                    self.db.backup(copy)
            finally:
                copy.close()
            os.replace(partial, target)
        except sqlite3.DatabaseError as exc:
            remove_quietly(partial)
            raise self._translate(exc) from exc
        except OSError:
            remove_quietly(partial)
            raise
        return target

    def _damaged_message(self, detail: str) -> str:
        return (
            f"The library catalog {self.path} is damaged ({detail}). It was left untouched. "
            "Restore it from a backup, or move it aside and run `gallery-app index` on your "
            "folders again to rebuild it."
        )

    def _translate(self, exc: sqlite3.DatabaseError) -> GalleryError:
        """An SQLite error as something a user can act on; a strange one has the file checked
        (PRAGMA quick_check) and is reported as damage."""
        text = _short(exc)
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) and code > 0 else None
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or (
            primary is None and ("locked" in text or "busy" in text)
        ):
            return LibraryInUse(
                f"The library catalog {self.path} is locked by another program ({text}). "
                "Close other gallery-app windows or tools using it, then try again."
            )
        if primary == _SQLITE_FULL or "database or disk is full" in text:
            return disk_full(self.path.parent, "the library catalog could not grow")
        if primary == _SQLITE_IOERR and nearly_full(self.path.parent):
            return disk_full(self.path.parent, f"writing the library catalog failed ({text})")
        if primary in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM, _SQLITE_AUTH):
            return GalleryError(
                f"Cannot open the library catalog {self.path} for writing ({text}). Check "
                "that its folder exists and that you may write to it."
            )
        if primary == _SQLITE_INTERRUPT:
            return GalleryError(f"Reading the library catalog {self.path} was interrupted.")
        if isinstance(exc, sqlite3.ProgrammingError):  # e.g. used after close()
            return GalleryError(f"The library catalog {self.path} is closed ({text}).")
        if primary == _SQLITE_IOERR:
            problems = self._quick_check()
            if problems in (["ok"], None):
                return GalleryError(
                    f"The disk holding the library catalog {self.path} reported an error "
                    f"({text}). The catalog was left as it was; check the disk, then run the "
                    "same command again."
                )
            return self._damaged("; ".join(problems))
        problems = self._quick_check()
        detail = text if problems in (["ok"], None) else "; ".join(problems)
        return self._damaged(detail)

    def _quick_check(self) -> list[str] | None:
        """SQLite's own look at the file, through a connection of its own (the one that just
        failed may be mid-transaction); None when even that cannot read it."""
        if self._in_memory:
            return None
        try:
            probe = _connect_read_only(self.path)
            try:
                probe.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                return [str(row[0]) for row in probe.execute("PRAGMA quick_check(5)")]
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            return [_short(exc)]
        except OSError:
            return None

    def _damaged(self, detail: str) -> CorruptCatalog:
        """The designed error for damage; from now on this catalog is never written to."""
        self._damage = self._damage or detail
        log.warning("catalog %s is damaged: %s", self.path, detail)
        return CorruptCatalog(self._damaged_message(detail))

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise GalleryError(
                f"The library {self.path} is open read-only, for reading (searching, tuning); "
                "changes are made by `gallery-app index` or the window."
            )
        if self._damage is not None:
            raise CorruptCatalog(self._damaged_message(self._damage))
        with self._lock:
            db = self.db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._translate(exc) from exc
            try:
                yield db
            except BaseException as exc:
                self._rollback(db)
                if isinstance(exc, sqlite3.DatabaseError):
                    raise self._translate(exc) from exc
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self._rollback(db)
                raise self._translate(exc) from exc

    def _rollback(self, db: sqlite3.Connection) -> None:
        """Undo what is left of a failed transaction. After SQLITE_FULL or an I/O error SQLite
        may have rolled it back already; a second ROLLBACK would then fail ("no transaction is
        active") and hide the error that matters."""
        if not db.in_transaction:
            return
        try:
            db.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            log.debug("rollback of %s failed: %s", self.path, exc)

    def _bump_generation(self, db: sqlite3.Connection) -> int:
        db.execute(
            "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
            "WHERE key = 'generation'"
        )
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return _stored_int(row[0])

    @property
    @_guarded
    def generation(self) -> int:
        """Bumped by every change to the vectors; the index records the one it reflects."""
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return _stored_int(row[0])

    # Folders ----------------------------------------------------------------------------
    @_guarded_write
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

    @_guarded
    def folders(self) -> list[Folder]:
        with self._lock:
            rows = self.db.execute("SELECT id, path FROM folders ORDER BY path").fetchall()
        return [Folder(int(i), _from_db(p)) for i, p in rows]

    @_guarded_write
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
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return _stored_int(row[0])

    # Images -----------------------------------------------------------------------------
    @_guarded
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

    @_guarded_write
    def write_batch(self, records: Sequence[ImageRecord]) -> tuple[int, list[int]]:
        """Upsert one batch in one transaction; returns (generation, ids in record order)."""
        if not records:
            return self.generation, []
        now = time.time()
        with self._transaction() as db:
            generation = self._bump_generation(db)
            ids, metadata_changed = [], False
            upsert = image_upsert("?")
            for rec in records:
                blob = None
                if rec.vector is not None:
                    blob = np.ascontiguousarray(rec.vector, dtype=np.float32).tobytes()
                row = db.execute(
                    upsert, image_values(rec, _to_db(rec.path), blob, generation, now)
                ).fetchone()
                image_id = int(row[0])
                ids.append(image_id)
                if rec.file_keywords is not None:
                    metadata_changed |= self._store_file_metadata(db, image_id, rec)
            if metadata_changed:  # once per batch, and only for a change: readers re-read
                self._bump_metadata_generation(db)
            return generation, ids

    def _store_file_metadata(self, db: sqlite3.Connection, image_id: int, rec: ImageRecord) -> bool:
        """Replace what the file said (title, caption, 'file' tags); True when it changed."""
        changed = db.execute(
            "UPDATE images SET title = ?, caption = ? WHERE id = ? "
            "AND (title IS NOT ? OR caption IS NOT ?)",
            (rec.title, rec.caption, image_id, rec.title, rec.caption),
        ).rowcount
        wanted = _clean_tags(rec.file_keywords or ())
        stored = [
            str(tag)
            for (tag,) in db.execute(
                "SELECT tag FROM tags WHERE image_id = ? AND source = 'file' ORDER BY rowid",
                (image_id,),
            )
        ]
        if sorted(stored) == sorted(wanted):
            return bool(changed)
        db.execute("DELETE FROM tags WHERE image_id = ? AND source = 'file'", (image_id,))
        db.executemany(
            "INSERT OR IGNORE INTO tags(image_id, source, tag) VALUES (?, 'file', ?)",
            [(image_id, tag) for tag in wanted],
        )
        return True

    @_guarded_write
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

    @_guarded_write
    def remove_images(self, ids: Iterable[int]) -> int:
        """Delete image rows; returns the new generation."""
        ids = list(ids)
        with self._transaction() as db:
            db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in ids])
            return self._bump_generation(db)

    @_guarded
    def vector_ids(self) -> set[int]:
        with self._lock:
            rows = self.db.execute("SELECT id FROM images WHERE vector IS NOT NULL")
            return {int(i) for (i,) in rows}

    @_guarded
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
        width = self.dim * 4
        for image_id, blob in rows:
            if not isinstance(blob, bytes) or len(blob) != width:
                raise ValueError(f"the vector of image {image_id} is not {width} bytes")
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
        matrix = matrix.reshape(len(rows), self.dim)
        # Vectors are stored unit-length (cosines are dot products): a changed byte in one
        # shows as NaN or a wrong length, which no page-level check of SQLite's would see.
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.linalg.norm(matrix, axis=1)
        if not (np.abs(norms - 1.0) <= _UNIT_TOLERANCE).all():
            bad = int(np.argmax(~(np.abs(norms - 1.0) <= _UNIT_TOLERANCE)))
            raise ValueError(f"the vector of image {rows[bad][0]} is not a unit vector")
        return np.array([i for i, _ in rows], np.int64), matrix

    @_guarded
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

    @_guarded
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

    @_guarded
    def indexed_files(self) -> list[tuple[str, int]]:
        """(path, mtime_ns) of every searchable image: what the thumbnail cache should hold."""
        with self._lock:
            rows = self.db.execute(
                "SELECT path, mtime_ns FROM images WHERE vector IS NOT NULL ORDER BY path"
            ).fetchall()
        return [(_from_db(path), int(mtime_ns)) for path, mtime_ns in rows]

    @_guarded
    def failures(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT path, error FROM images WHERE error IS NOT NULL ORDER BY path"
            ).fetchall()
        return [(_from_db(path), error) for path, error in rows]

    @_guarded
    def count(self) -> int:
        """Images that are searchable (have a vector)."""
        with self._lock:
            return int(
                self.db.execute("SELECT COUNT(*) FROM images WHERE vector IS NOT NULL").fetchone()[
                    0
                ]
            )

    @_guarded
    def ids_for_paths(self, paths: Iterable[str]) -> dict[str, int]:
        """The image id of each given path the catalog holds (indexed or failed)."""
        wanted = list(paths)
        found: dict[str, int] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for image_id, path in self.db.execute(
                    f"SELECT id, path FROM images WHERE path IN ({marks})",
                    [_to_db(path) for path in chunk],
                ):
                    found[_from_db(path)] = int(image_id)
        return found

    # What people say about a photo (schema 4) -------------------------------------------
    # These writes touch neither vectors nor the index, so they do not bump `generation`;
    # `metadata_generation` tells a reader holding metadata that it changed.
    @_guarded
    def metadata_generation(self) -> int:
        with self._lock:
            row = self.db.execute(
                "SELECT value FROM meta WHERE key='metadata_generation'"
            ).fetchone()
        return 0 if row is None else _stored_int(row[0])

    def _bump_metadata_generation(self, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('metadata_generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    @_guarded_write
    def edit_tags(
        self, image_ids: Iterable[int], add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        """Add and remove the user's tags (case-insensitive) on every given image."""
        ids, added, removed = list(image_ids), _clean_tags(add), _clean_tags(remove)
        if not ids or not (added or removed):
            return
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM tags WHERE image_id = ? AND source = 'user' AND tag = ?",
                [(image_id, tag) for image_id in ids for tag in removed],
            )
            db.executemany(
                "INSERT OR IGNORE INTO tags(image_id, source, tag) "
                "SELECT id, 'user', ? FROM images WHERE id = ?",
                [(tag, image_id) for image_id in ids for tag in added],
            )
            self._bump_metadata_generation(db)

    @_guarded_write
    def set_description(self, image_ids: Iterable[int], description: str | None) -> None:
        """Set (or, with None or blank text, clear) the user's description of each image."""
        text = (description or "").strip() or None
        ids = list(image_ids)
        if not ids:
            return
        with self._transaction() as db:
            db.executemany(
                "UPDATE images SET description = ? WHERE id = ?", [(text, i) for i in ids]
            )
            self._bump_metadata_generation(db)

    @_guarded
    def metadata(self, ids: Iterable[int] | None = None) -> dict[int, PhotoMetadata]:
        """Tags, description, title and caption of the given images (all when None); an image
        with none of them is absent from the result."""
        wanted = None if ids is None else list(ids)
        field_rows: list[Any] = []
        tag_rows: list[Any] = []
        with self._lock:
            for (clause, params), (tag_clause, _) in zip(
                _id_chunks(wanted, "id"), _id_chunks(wanted, "image_id"), strict=True
            ):
                field_rows += self.db.execute(
                    "SELECT id, description, title, caption FROM images WHERE "
                    "(description IS NOT NULL OR title IS NOT NULL OR caption IS NOT NULL)"
                    f"{clause}",
                    params,
                ).fetchall()
                tag_rows += self.db.execute(
                    f"SELECT image_id, source, tag FROM tags WHERE 1{tag_clause} ORDER BY tag",
                    params,
                ).fetchall()
        return metadata_from_rows(field_rows, tag_rows)

    @_guarded
    def tag_counts(self) -> list[tuple[str, int]]:
        """Every tag (user and file, case folded together) with how many photos carry it."""
        with self._lock:
            rows = self.db.execute(
                "SELECT tag, COUNT(DISTINCT image_id) FROM tags GROUP BY tag COLLATE NOCASE "
                "ORDER BY tag COLLATE NOCASE"
            ).fetchall()
        return [(str(tag), int(count)) for tag, count in rows]

    # Relevance marks (the feedback fit's judgements, kept per library) -------------------
    @_guarded_write
    def set_mark(self, image_id: int, query: str, relevant: bool | None) -> None:
        """Mark a photo (not) relevant to a query; None takes the mark back."""
        with self._transaction() as db:
            if relevant is None:
                db.execute("DELETE FROM marks WHERE image_id = ? AND query = ?", (image_id, query))
            else:
                db.execute(
                    "INSERT INTO marks(image_id, query, relevant, marked_at) "
                    "SELECT id, ?, ?, ? FROM images WHERE id = ? "
                    "ON CONFLICT(image_id, query) DO UPDATE SET relevant = excluded.relevant, "
                    "marked_at = excluded.marked_at",
                    (query, int(relevant), time.time(), image_id),
                )
            self._bump_metadata_generation(db)

    @_guarded
    def marks(self, query: str | None = None) -> list[Mark]:
        """The marks for one query, or all of them, oldest first."""
        sql = (
            "SELECT m.image_id, i.path, m.query, m.relevant, m.marked_at FROM marks m "
            "JOIN images i ON i.id = m.image_id"
        )
        params: tuple[str, ...] = ()
        if query is not None:
            sql, params = sql + " WHERE m.query = ?", (query,)
        with self._lock:
            rows = self.db.execute(sql + " ORDER BY m.marked_at, m.image_id", params).fetchall()
        return [
            Mark(int(i), _from_db(path), str(q), bool(_stored_int(rel)), float(at))
            for i, path, q, rel, at in rows
        ]

    @_guarded_write
    def clear_marks(self, query: str | None = None) -> int:
        """Forget the marks of one query, or all; returns how many went."""
        with self._transaction() as db:
            if query is None:
                removed = db.execute("DELETE FROM marks").rowcount
            else:
                removed = db.execute("DELETE FROM marks WHERE query = ?", (query,)).rowcount
            self._bump_metadata_generation(db)
            return int(removed)

    # Text embedding cache (per model, since the catalog is) -------------------------------
    @_guarded
    def cached_text_vectors(self, prompts: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        if not prompts:
            return {}
        marks = ",".join("?" * len(prompts))
        with self._lock:
            rows = self.db.execute(
                f"SELECT prompt, vector FROM text_cache WHERE prompt IN ({marks})", list(prompts)
            ).fetchall()
        found = {}
        for prompt, blob in rows:
            vector = np.frombuffer(blob, dtype=np.float32) if isinstance(blob, bytes) else None
            if vector is None or vector.shape != (self.dim,) or not np.isfinite(vector).all():
                log.debug("ignoring an unusable cached text vector for %r", prompt)
                continue  # a cache: it is encoded again
            found[prompt] = vector.copy()
        return found

    @_guarded_write
    def store_text_vectors(self, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
        if not vectors or self.read_only or self._damage:  # a cache: recomputed next time
            return
        try:
            with self._transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO text_cache(prompt, vector) VALUES (?, ?)",
                    [(p, np.asarray(v, np.float32).tobytes()) for p, v in vectors.items()],
                )
        except (DiskFull, LibraryInUse) as exc:  # a search must not fail for its cache
            log.info("text vectors not cached: %s", exc)

    @_guarded
    def text_cache_items(self) -> list[tuple[str, npt.NDArray[np.float32]]]:
        """Every cached (prompt, text vector), for `library copy`."""
        with self._lock:
            rows = self.db.execute("SELECT prompt FROM text_cache ORDER BY prompt").fetchall()
        prompts = [str(p) for (p,) in rows]
        found: dict[str, npt.NDArray[np.float32]] = {}
        for start in range(0, len(prompts), 500):
            found.update(self.cached_text_vectors(prompts[start : start + 500]))
        return [(p, found[p]) for p in prompts if p in found]


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
        check_regular(path)
        probe = _connect_read_only(path)
        try:
            meta = dict(probe.execute("SELECT key, value FROM meta"))
        finally:
            probe.close()
        return str(meta["model_id"]), int(meta["dim"])
    except (sqlite3.DatabaseError, *_DECODING_ERRORS) as exc:
        raise CorruptCatalog(f"The library catalog {path} cannot be read ({exc}).") from exc


def _uri(path: Path, mode: str, immutable: bool = False) -> str:
    """An SQLite URI for path. Quoted from its bytes: a folder name that is not valid UTF-8
    (surrogate-escaped in Python) still names the right file."""
    target = quote(os.fsencode(os.path.abspath(path)))
    return f"file:{target}?mode={mode}" + ("&immutable=1" if immutable else "")


def _connect_read_only(path: Path, check_same_thread: bool = True) -> sqlite3.Connection:
    """A read-only connection that also works in a read-only folder.

    A reader of a WAL database needs the -shm file, and creates it when it is missing; in a
    folder it may not write to, it cannot. With no -wal file either, the main file holds
    everything committed and nothing can be writing it, so it is read as immutable.
    """
    db = sqlite3.connect(_uri(path, "ro"), uri=True, check_same_thread=check_same_thread)
    db.isolation_level = None
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        db.close()
        code = getattr(exc, "sqlite_errorcode", 0) or 0
        wal = path.with_name(path.name + "-wal")
        if code & 0xFF != _SQLITE_CANTOPEN or wal.exists():
            raise
        db = sqlite3.connect(
            _uri(path, "ro", immutable=True), uri=True, check_same_thread=check_same_thread
        )
        db.isolation_level = None
    return db


def _companions(path: Path) -> tuple[Path, Path]:
    """The WAL and shared-memory files SQLite opens beside a database."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _clean_tags(tags: Iterable[str]) -> list[str]:
    """Tags as stored: trimmed, inner whitespace collapsed, blanks and case-duplicates dropped."""
    seen: dict[str, str] = {}
    for tag in tags:
        cleaned = " ".join(str(tag).split())
        if cleaned and cleaned.casefold() not in seen:
            seen[cleaned.casefold()] = cleaned
    return list(seen.values())


def _id_chunks(ids: list[int] | None, column: str) -> Iterator[tuple[str, list[int]]]:
    """(" AND column IN (...)", params) per chunk of at most 500 ids; one empty clause (every
    row) when ids is None."""
    if ids is None:
        yield "", []
        return
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        yield f" AND {column} IN ({','.join('?' * len(chunk))})", chunk


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _to_db(path: str) -> str | bytes:
    """Paths are TEXT; a name that is not valid UTF-8 (old archives, SMB shares) is stored as its
    raw bytes instead, since SQLite text must be UTF-8 and such a file is still a photo."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _from_db(value: str | bytes) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return os.fsdecode(value)
    raise _StoredValueError(f"a stored path is {type(value).__name__}, not text")


def _stored_int(value: object) -> int:
    """An integer stored as text (meta values); anything else is damage."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise _StoredValueError(f"{value!r} is not a number")


def signed_inode(inode: int) -> int:
    """An inode number (unsigned 64-bit on some filesystems) as SQLite's signed INTEGER."""
    return inode - (1 << 64) if inode >= 1 << 63 else inode


def is_within(path: str, folder: str) -> bool:
    """True when path is folder itself or lies under it."""
    return PurePath(path).is_relative_to(PurePath(folder))
