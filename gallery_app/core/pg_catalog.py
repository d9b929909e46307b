"""PostgreSQL + pgvector catalog: a library shared by several clients, the same rows as SQLite.

The tables mirror core/catalog.py (folders, images, tags, marks, text_cache, meta) inside one
PostgreSQL schema per model (as SQLite keeps one file per model). Vectors are stored exactly
(`vector(dim)`, float32) so an exact scan gives the same cosines as the SQLite backend; the
HNSW index is built on their `halfvec` (float16) cast, half the size, and only ever proposes
candidates that the search re-ranks exactly.

Writers: several clients may index *different* folders at once. Each batch is one
transaction; the `generation` counter in `meta` is bumped first in it, so its row lock orders
the writers' batches and a reader that saw generation g has seen every batch up to g. A
client indexing a folder holds a session advisory lock keyed on (schema, folder): a second
client indexing the same folder is told it is in use (the WriterLock file of the SQLite
backend only works on one machine). A client that dies (kill -9, a cut cable) loses the
transaction in flight and its locks with its connection, nothing else.

A dropped connection is retried a bounded number of times with a clear log line; each
operation is one transaction, so running it again is safe. Passwords never reach a message:
every address shown goes through `redact`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from gallery_app.core.catalog import (
    FileState,
    Folder,
    ImageInfo,
    ImageRecord,
    Mark,
    PhotoMetadata,
    _clean_tags,
    checked_schema_version,
    image_upsert,
    image_values,
    is_within,
    metadata_from_rows,
    new_library_meta,
)
from gallery_app.core.errors import (
    CorruptCatalog,
    DiskFull,
    GalleryError,
    LibraryInUse,
    LibraryUnreachable,
)

log = logging.getLogger(__name__)

# The PostgreSQL schema's own version (it began with everything SQLite's schema 4 holds). It
# moves on its own: a step of the SQLite schema that the PostgreSQL tables need too gets a
# migration here (tests/reliability/test_postgres.py checks both offer the same methods).
PG_SCHEMA_VERSION = 1

URL_SCHEMES = ("postgresql://", "postgres://")
LIBRARY_ENV = "GALLERY_APP_LIBRARY"

# HNSW parameters (pgvector's defaults are m=16, ef_construction=64; more construction effort
# for a better graph, built once). Measured with them (benchmarks/pg_scale.py, 100k simulated
# 768-d vectors with duplicates): recall@10 after the exact re-rank 0.994 at ef_search 200.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
# hnsw.ef_search for a query of k candidates: at least this (100 gave recall@10 0.984 in the
# same run, 400 gave 0.9965 at twice the latency), at least the searcher's width for the
# library's size (search.graph_ef: at 1M, 200 gave 0.9635 and 400 gave 0.9865), at most
# pgvector's 1000.
EF_SEARCH_MIN = 200
EF_SEARCH_MAX = 1000

# A dropped connection is tried again after each of these pauses (about 16 s in all: long
# enough for a server restart, short enough that a dead server is reported promptly).
RETRY_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
CONNECT_TIMEOUT_S = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS folders (
    id bigserial PRIMARY KEY,
    path bytea NOT NULL UNIQUE,
    added_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id bigserial PRIMARY KEY,
    folder_id bigint NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path bytea NOT NULL UNIQUE,
    mtime_ns bigint NOT NULL,
    size bigint NOT NULL,
    width integer,
    height integer,
    taken_at text,
    error text,
    vector vector({dim}),
    generation bigint NOT NULL,
    indexed_at double precision NOT NULL,
    ctime_ns bigint,
    inode bigint,
    fingerprint text,
    description text,
    title text,
    caption text
);
CREATE INDEX IF NOT EXISTS images_folder ON images(folder_id);
CREATE INDEX IF NOT EXISTS images_generation ON images(generation);
CREATE INDEX IF NOT EXISTS images_failed ON images(path) WHERE error IS NOT NULL;
CREATE INDEX IF NOT EXISTS images_vector_hnsw ON images
    USING hnsw ((vector::halfvec({dim})) halfvec_ip_ops)
    WITH (m = {m}, ef_construction = {ef_construction});
CREATE TABLE IF NOT EXISTS text_cache (prompt text PRIMARY KEY, vector vector({dim}) NOT NULL);
CREATE TABLE IF NOT EXISTS tags (
    image_id bigint NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    source text NOT NULL CHECK (source IN ('user', 'file')),
    tag text NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tags_key ON tags(image_id, source, lower(tag));
CREATE INDEX IF NOT EXISTS tags_tag ON tags(lower(tag));
CREATE TABLE IF NOT EXISTS marks (
    image_id bigint NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    query text NOT NULL,
    relevant boolean NOT NULL,
    marked_at double precision NOT NULL,
    PRIMARY KEY (image_id, query)
)
"""

# Upgrades from PostgreSQL schema version N to N + 1, in one transaction (PostgreSQL's DDL is
# transactional: a failed upgrade leaves the schema as it was). Take a pg_dump first.
_MIGRATIONS: dict[int, tuple[str, ...]] = {}

_UNIT_TOLERANCE = 1e-3

_T = TypeVar("_T")


class UnstorableValue(ValueError):
    """A value of a record that the database cannot hold (out of range, NUL in text)."""


def is_postgres_url(location: str | os.PathLike[str] | None) -> bool:
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def redact(text: str) -> str:
    """The text with the password of every connection address in it replaced by ***: URLs
    (postgresql://user:secret@host) and key=value strings (password=secret)."""
    text = re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text, flags=re.I)
    return text


def without_password(url: str) -> str:
    """The address as it may be stored (settings.json): user, host and database, no password;
    libpq then finds the password in PGPASSWORD or ~/.pgpass."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{user}@{host}" if user else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def library_schema(model_id: str) -> str:
    """One PostgreSQL schema per model id, readable and collision-free (as library_folder)."""
    tail = re.sub(r"[^a-z0-9]+", "_", model_id.rstrip("/\\").split("/")[-1].lower())[-36:]
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:10]
    return f"gallery_{tail.strip('_')}_{digest}"


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for these names."""
    digest = hashlib.sha1("\0".join(parts).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _to_db(path: str) -> bytes:
    return os.fsencode(path)


def _from_db(value: bytes | memoryview) -> str:
    return os.fsdecode(bytes(value))


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; an error message or caption read from a hostile file
    might."""
    return None if value is None else value.replace("\x00", "")


def _vector_bytes(vector: npt.ArrayLike) -> bytes:
    """pgvector's binary form: dim and an unused field (uint16 each), then big-endian float32."""
    data = np.ascontiguousarray(vector, dtype=">f4").ravel()
    return struct.pack(">HH", data.size, 0) + data.tobytes()


def _vector_from_bytes(data: bytes | memoryview) -> npt.NDArray[np.float32]:
    buffer = bytes(data)
    (dim,) = struct.unpack_from(">H", buffer)
    return np.frombuffer(buffer, dtype=">f4", count=dim, offset=4).astype(np.float32)


def _register_vector(conn: Any) -> None:
    """Teach this connection numpy arrays <-> pgvector `vector`, in binary (no text parsing
    of 768 floats per row)."""
    from psycopg.adapt import Dumper, Loader
    from psycopg.pq import Format
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise GalleryError("pgvector is not installed in this database")

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj: Any) -> bytes:
            return _vector_bytes(obj)

    class VectorBinaryLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> npt.NDArray[np.float32]:
            return _vector_from_bytes(data)

    class VectorTextLoader(Loader):
        def load(self, data: Any) -> npt.NDArray[np.float32]:
            return np.array(bytes(data).decode().strip("[]").split(","), dtype=np.float32)

    conn.adapters.register_dumper(np.ndarray, VectorDumper)
    conn.adapters.register_loader(info.oid, VectorBinaryLoader)
    conn.adapters.register_loader(info.oid, VectorTextLoader)


class PgCatalog:
    """The catalog of one model in a PostgreSQL database; the same methods as `Catalog`.

    Thread-safe like the SQLite catalog: one connection behind one lock (a search and an
    indexing run in one window take turns; separate clients do not wait for each other).
    """

    retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S

    def __init__(self, url: str, model_id: str, dim: int, read_only: bool = False) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise GalleryError(
                "A PostgreSQL library needs psycopg: pip install 'gallery-app[postgres]'."
            ) from exc
        self.url = url
        self.model_id = model_id
        self.dim = dim
        self.read_only = read_only
        self.schema = library_schema(model_id)
        self.path = f"{redact(url)} (schema {self.schema})"  # shown in messages, never secret
        self.migrated_from: int | None = None
        self.backup_path = None  # PostgreSQL libraries are backed up with pg_dump (README)
        self._lock = threading.RLock()
        self._conn: Any = None
        self._held: dict[int, str] = {}  # advisory locks this client holds: key -> folder
        self._closed = False
        self._was_connected = False
        self._run(self._open_schema)

    # Connection, retries and errors ---------------------------------------------------
    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="gallery-app",
            )
        except psycopg.Error as exc:
            raise LibraryUnreachable(
                f"Cannot reach the library database {redact(self.url)} "
                f"({_first_line(exc)}). Check that the server runs and the address, user and "
                "password (PGPASSWORD or ~/.pgpass) are right."
            ) from exc
        try:
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
                pass
            elif self.read_only:
                raise _missing_extension(self.url)
            else:
                try:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except psycopg.Error as exc:
                    raise _missing_extension(self.url, exc) from exc
            _register_vector(conn)
            from psycopg import sql

            conn.execute(
                sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema))
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, operation: Callable[[Any], _T]) -> _T:
        """operation(connection), reconnecting and running it again when the connection
        drops (each operation is one transaction, so running it twice is safe)."""
        import psycopg

        with self._lock:
            if self._closed:
                raise GalleryError(f"The library {self.path} is closed.")
            attempt = 0
            while True:
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = self._connect()
                        self._was_connected = True
                        self._retake_locks()
                    return operation(self._conn)
                except (psycopg.OperationalError, LibraryUnreachable) as exc:
                    if not self._dropped(exc) or not self._was_connected:
                        # The first connection failing (a wrong address, user or password)
                        # is said at once; only a connection that worked is waited for.
                        raise self._translate(exc) from exc
                    if attempt >= len(self.retry_delays_s):
                        raise LibraryUnreachable(
                            f"Lost the connection to the library database {self.path} "
                            f"({_first_line(exc)}) and could not get it back after "
                            f"{attempt} tries. What was committed is safe; run the same "
                            "command again when the server is back."
                        ) from exc
                    delay = self.retry_delays_s[attempt]
                    attempt += 1
                    log.warning(
                        "connection to %s lost (%s); trying again in %.2g s (%d of %d)",
                        self.path,
                        redact(_first_line(exc)),
                        delay,
                        attempt,
                        len(self.retry_delays_s),
                    )
                    self._drop_connection()
                    time.sleep(delay)
                except psycopg.DataError as exc:
                    # A value handed in that the column cannot hold (a far-future mtime): the
                    # caller's record, not the library (the indexer fails that file alone).
                    raise UnstorableValue(_first_line(exc)) from exc
                except psycopg.Error as exc:
                    raise self._translate(exc) from exc

    def _dropped(self, exc: BaseException) -> bool:
        """True when the connection itself is gone (server down, terminated, network)."""
        if isinstance(exc, LibraryUnreachable):
            return True
        return self._conn is None or bool(self._conn.closed) or bool(self._conn.broken)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # closing a dead connection: nothing to save
                log.debug("closing a dropped connection: %s", exc)
            self._conn = None

    def _retake_locks(self) -> None:
        """Session advisory locks go with a dropped connection; take them back, or say that
        another client took the folder meanwhile."""
        for key, folder in list(self._held.items()):
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not row[0]:
                del self._held[key]
                raise LibraryInUse(
                    f"While the connection to {self.path} was down, another client started "
                    f"indexing {folder}; this run stopped. What it committed is kept."
                )

    def _translate(self, exc: BaseException) -> GalleryError:
        import psycopg
        from psycopg import errors

        if isinstance(exc, GalleryError):
            return exc
        text = redact(_first_line(exc))
        if isinstance(exc, errors.DiskFull):
            return DiskFull(
                f"The database server holding {self.path} is out of disk space ({text}); "
                "what was committed is intact. Free space on the server and run again."
            )
        if isinstance(exc, (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)):
            return GalleryError(
                f"The database user may not change the library {self.path} ({text}). Grant "
                "it the rights (README: Shared library on PostgreSQL) or use a reading command."
            )
        if isinstance(exc, errors.LockNotAvailable):
            return LibraryInUse(f"The library {self.path} is busy ({text}); try again.")
        if isinstance(exc, (errors.DataCorrupted, errors.IndexCorrupted)):
            return CorruptCatalog(
                f"The database reports damage in the library {self.path} ({text}). Restore it "
                "from a backup (pg_dump), or index your folders again."
            )
        if isinstance(exc, psycopg.OperationalError):
            return LibraryUnreachable(f"The library database {self.path} failed: {text}.")
        return GalleryError(f"The library database {self.path} refused a request ({text}).")

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[Any]:
        if self.read_only:
            raise GalleryError(
                f"The library {self.path} is open read-only, for reading (searching, tuning); "
                "changes are made by `gallery-app index` or the window."
            )
        with conn.transaction():
            yield conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._held.clear()
            self._drop_connection()

    # Schema and version -----------------------------------------------------------------
    def _open_schema(self, conn: Any) -> None:
        from psycopg import sql

        schema = sql.Identifier(self.schema)
        # Creating and upgrading are serialized across clients by an advisory lock.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.schema, "schema"),))
            exists = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                "AND table_name = 'meta'",
                (self.schema,),
            ).fetchone()
            if not exists:
                # Created by a reader too: an empty library to show, as SQLite's in memory.
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                for statement in _schema_statements(self.dim):
                    conn.execute(statement)
                conn.cursor().executemany(
                    "INSERT INTO meta(key, value) VALUES (%s, %s)",
                    new_library_meta(PG_SCHEMA_VERSION, self.model_id, self.dim),
                )
                return
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            version = checked_schema_version(
                meta,
                self.path,
                self.model_id,
                self.dim,
                PG_SCHEMA_VERSION,
                lambda: (
                    f"The library {self.path} has an unreadable schema version "
                    f"{meta.get('schema_version')!r}; it was left untouched."
                ),
            )
            if version < PG_SCHEMA_VERSION:
                self._migrate(conn, version)

    def _migrate(self, conn: Any, version: int) -> None:
        if any(step not in _MIGRATIONS for step in range(version, PG_SCHEMA_VERSION)):
            raise CorruptCatalog(f"The library {self.path} has unknown schema {version}.")
        if self.read_only:
            raise LibraryInUse(
                f"The library {self.path} needs an upgrade (schema {version} to "
                f"{PG_SCHEMA_VERSION}) that only a writing client can do: run `gallery-app "
                "index` once (after a pg_dump)."
            )
        for step in range(version, PG_SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute(
            "UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(PG_SCHEMA_VERSION),)
        )
        self.migrated_from = version
        log.info("library %s upgraded from schema %d", self.path, version)

    def _bump(self, conn: Any, key: str) -> int:
        row = conn.execute(
            "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = %s RETURNING value",
            (key,),
        ).fetchone()
        return int(row[0])

    def _meta_int(self, conn: Any, key: str) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    @property
    def generation(self) -> int:
        """Bumped by every change to the vectors (see the module docstring for its order)."""
        return self._run(lambda conn: self._meta_int(conn, "generation"))

    # Writer locks (per folder, across machines) -----------------------------------------
    @contextmanager
    def folder_lock(self, folder: str) -> Iterator[None]:
        """Hold the right to index `folder` (a session advisory lock) for the block; a second
        client asking for the same folder gets LibraryInUse at once."""
        key = _lock_key(self.schema, folder)

        def take(conn: Any) -> bool:
            return bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])

        if key in self._held:
            yield
            return
        if not self._run(take):
            raise LibraryInUse(
                f"Another client is indexing {folder} in the library {self.path}; try again "
                "when it has finished (other folders can be indexed meanwhile)."
            )
        self._held[key] = folder
        try:
            yield
        finally:
            self._held.pop(key, None)
            with self._lock:
                if self._conn is not None and not self._conn.closed:
                    try:
                        self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    except Exception as exc:  # the lock goes with the connection anyway
                        log.debug("advisory unlock failed: %s", exc)

    def _check_free(self, conn: Any, folder: str) -> None:
        """Inside a transaction: refuse when another client holds `folder`'s lock."""
        key = _lock_key(self.schema, folder)
        if key in self._held:
            return
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()[0]:
            raise LibraryInUse(
                f"Another client is indexing {folder} in the library {self.path}; try again "
                "when it has finished."
            )

    # Folders ----------------------------------------------------------------------------
    def add_folder(self, path: str) -> Folder:
        """Register a folder; one inside a known folder is already covered by it."""

        def run(conn: Any) -> Folder:
            with self._transaction(conn):
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.schema, "folders"),)
                )
                known = [
                    (int(i), _from_db(p)) for i, p in conn.execute("SELECT id, path FROM folders")
                ]
                for folder_id, stored in known:
                    if is_within(path, stored):
                        return Folder(folder_id, stored)
                row = conn.execute(
                    "INSERT INTO folders(path, added_at) VALUES (%s, %s) RETURNING id",
                    (_to_db(path), time.time()),
                ).fetchone()
                folder = Folder(int(row[0]), path)
                for child_id, child in known:
                    if is_within(child, path):
                        self._check_free(conn, child)
                        conn.execute(
                            "UPDATE images SET folder_id = %s WHERE folder_id = %s",
                            (folder.id, child_id),
                        )
                        conn.execute("DELETE FROM folders WHERE id = %s", (child_id,))
                return folder

        return self._run(run)

    def folders(self) -> list[Folder]:
        rows = self._run(
            lambda c: c.execute("SELECT id, path FROM folders ORDER BY path").fetchall()
        )
        return [Folder(int(i), _from_db(p)) for i, p in rows]

    def remove_folder(self, path: str) -> tuple[int, list[int]]:
        """Forget a folder and its images; returns (generation, ids of removed vectors)."""

        def run(conn: Any) -> tuple[int, list[int]]:
            with self._transaction(conn):
                row = conn.execute(
                    "SELECT id FROM folders WHERE path = %s", (_to_db(path),)
                ).fetchone()
                if row is None:
                    return self._meta_int(conn, "generation"), []
                self._check_free(conn, path)
                generation = self._bump(conn, "generation")
                ids = [
                    int(i)
                    for i, had_vector in conn.execute(
                        "DELETE FROM images WHERE folder_id = %s RETURNING id, vector IS NOT NULL",
                        (row[0],),
                    ).fetchall()
                    if had_vector
                ]
                conn.execute("DELETE FROM folders WHERE id = %s", (row[0],))
                return generation, ids

        return self._run(run)

    # Images -----------------------------------------------------------------------------
    def files_in_folder(self, folder_id: int) -> dict[str, FileState]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT id, path, mtime_ns, size, vector IS NOT NULL, error, ctime_ns, inode, "
                "fingerprint FROM images WHERE folder_id = %s",
                (folder_id,),
            ).fetchall()
        )
        return {
            _from_db(path): FileState(int(i), int(m), int(s), bool(ok), err, ctime, ino, digest)
            for i, path, m, s, ok, err, ctime, ino, digest in rows
        }

    def write_batch(self, records: Sequence[ImageRecord]) -> tuple[int, list[int]]:
        """Upsert one batch in one transaction; returns (generation, ids in record order)."""
        if not records:
            return self.generation, []
        rows = []
        for rec in records:
            vector = None
            if rec.vector is not None:
                vector = np.ascontiguousarray(rec.vector, dtype=np.float32).ravel()
                if vector.shape != (self.dim,):
                    raise ValueError(f"a vector of {vector.size} values, not {self.dim}")
            rows.append((rec, vector))

        def run(conn: Any) -> tuple[int, list[int]]:
            now = time.time()
            with self._transaction(conn):
                generation = self._bump(conn, "generation")
                ids: list[int] = []
                with conn.cursor() as cur:
                    cur.executemany(
                        image_upsert("%s"),
                        [
                            image_values(rec, _to_db(rec.path), vector, generation, now, _text)
                            for rec, vector in rows
                        ],
                        returning=True,
                    )
                    while True:
                        ids.append(int(cur.fetchone()[0]))
                        if not cur.nextset():
                            break
                with_metadata = [
                    (image_id, rec)
                    for image_id, (rec, _) in zip(ids, rows, strict=True)
                    if rec.file_keywords is not None
                ]
                if with_metadata:
                    self._store_file_metadata(conn, with_metadata)
                return generation, ids

        return self._run(run)

    def _store_file_metadata(self, conn: Any, items: list[tuple[int, ImageRecord]]) -> None:
        """Replace what the files said (title, caption, 'file' tags); the metadata generation
        moves only when something changed, so indexing does not make every reader re-read."""
        ids = [image_id for image_id, _ in items]
        with conn.cursor() as cur:
            cur.execute("SELECT id, title, caption FROM images WHERE id = ANY(%s)", (ids,))
            before: dict[int, tuple[Any, ...]] = {int(row[0]): tuple(row[1:]) for row in cur}
            cur.execute(
                "SELECT image_id, tag FROM tags WHERE source = 'file' AND image_id = ANY(%s)",
                (ids,),
            )
            stored: dict[int, list[str]] = {}
            for image_id, tag in cur:
                stored.setdefault(int(image_id), []).append(str(tag))
        if all(
            before.get(image_id) == (_text(rec.title), _text(rec.caption))
            and sorted(stored.get(image_id, []))
            == sorted(str(_text(tag)) for tag in _clean_tags(rec.file_keywords or ()))
            for image_id, rec in items
        ):
            return
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE images SET title = %s, caption = %s WHERE id = %s",
                [(_text(rec.title), _text(rec.caption), image_id) for image_id, rec in items],
            )
            cur.execute(
                "DELETE FROM tags WHERE source = 'file' AND image_id = ANY(%s)",
                ([image_id for image_id, _ in items],),
            )
            tags = [
                (image_id, _text(tag))
                for image_id, rec in items
                for tag in _clean_tags(rec.file_keywords or ())
            ]
            if tags:
                cur.executemany(
                    "INSERT INTO tags(image_id, source, tag) VALUES (%s, 'file', %s) "
                    "ON CONFLICT DO NOTHING",
                    tags,
                )
        self._bump(conn, "metadata_generation")

    def restamp(self, stamps: Sequence[tuple[int, int, int]]) -> None:
        if not stamps:
            return

        def run(conn: Any) -> None:
            with self._transaction(conn), conn.cursor() as cur:
                cur.executemany(
                    "UPDATE images SET ctime_ns = %s, inode = %s WHERE id = %s",
                    [(ctime, inode, image_id) for image_id, ctime, inode in stamps],
                )

        self._run(run)

    def remove_images(self, ids: Iterable[int]) -> int:
        """Delete image rows; returns the new generation."""
        wanted = [int(i) for i in ids]

        def run(conn: Any) -> int:
            with self._transaction(conn):
                generation = self._bump(conn, "generation")
                conn.execute("DELETE FROM images WHERE id = ANY(%s)", (wanted,))
                return generation

        return self._run(run)

    def vector_ids(self) -> set[int]:
        rows = self._run(
            lambda c: c.execute("SELECT id FROM images WHERE vector IS NOT NULL").fetchall()
        )
        return {int(i) for (i,) in rows}

    def vectors(
        self, ids: Iterable[int] | None = None, since_generation: int | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(ids, matrix) of stored vectors: all, the given ids, or those newer than a generation."""
        query = "SELECT id, vector FROM images WHERE vector IS NOT NULL"
        params: list[Any] = []
        if since_generation is not None:
            query += " AND generation > %s"
            params.append(since_generation)
        if ids is not None:
            query += " AND id = ANY(%s)"
            params.append([int(i) for i in ids])

        def run(conn: Any) -> list[tuple[int, npt.NDArray[np.float32]]]:
            with conn.cursor(binary=True) as cur:
                return list(cur.execute(query, params).fetchall())

        rows = self._run(run)
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        matrix = np.empty((len(rows), self.dim), np.float32)
        for row, (image_id, vector) in enumerate(rows):
            if vector.shape != (self.dim,):
                raise CorruptCatalog(
                    f"The vector of image {image_id} in {self.path} is not {self.dim}-d."
                )
            matrix[row] = vector
        norms = np.linalg.norm(matrix, axis=1)
        if not (np.abs(norms - 1.0) <= _UNIT_TOLERANCE).all():
            bad = int(np.argmax(~(np.abs(norms - 1.0) <= _UNIT_TOLERANCE)))
            raise CorruptCatalog(
                f"The vector of image {rows[bad][0]} in {self.path} is not a unit vector."
            )
        return np.array([int(i) for i, _ in rows], np.int64), matrix

    def nearest(
        self, queries: npt.NDArray[np.float32], k: int, ef: int = 0
    ) -> npt.NDArray[np.int64]:
        """The HNSW index's k nearest image ids of each query row (-1 where fewer), by inner
        product on the float16 copies: candidates for an exact re-rank, not results. The
        graph is searched with hnsw.ef_search = the largest of EF_SEARCH_MIN, k and `ef`."""
        ef_search = min(EF_SEARCH_MAX, max(EF_SEARCH_MIN, k, ef))
        sql = (
            f"SELECT id FROM images ORDER BY vector::halfvec({self.dim}) <#> "
            f"(%s::vector)::halfvec({self.dim}) LIMIT %s"
        )

        def run(conn: Any) -> npt.NDArray[np.int64]:
            labels = np.full((len(queries), k), -1, np.int64)
            with conn.transaction():
                conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
                # k above ef_search: 0.8's iterative scan keeps walking the graph instead of
                # stopping at ef_search rows (candidates are re-ranked, so order is relaxed).
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                for row, query in enumerate(queries):
                    found = conn.execute(sql, (np.asarray(query, np.float32), k)).fetchall()
                    labels[row, : len(found)] = [int(i) for (i,) in found]
            return labels

        return self._run(run)

    def images(self, ids: Iterable[int]) -> dict[int, ImageInfo]:
        wanted = [int(i) for i in ids]
        rows = self._run(
            lambda c: c.execute(
                "SELECT id, path, width, height, taken_at, mtime_ns, size FROM images "
                "WHERE id = ANY(%s)",
                (wanted,),
            ).fetchall()
        )
        return {int(r[0]): ImageInfo(int(r[0]), _from_db(r[1]), *r[2:]) for r in rows}

    def browse(self) -> list[ImageInfo]:
        """Every searchable image, newest first (EXIF date when known, else file time)."""
        rows = self._run(
            lambda c: c.execute(
                "SELECT id, path, width, height, taken_at, mtime_ns, size FROM images "
                "WHERE vector IS NOT NULL ORDER BY COALESCE(taken_at, to_char(to_timestamp("
                "mtime_ns / 1e9) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')) DESC, path"
            ).fetchall()
        )
        return [ImageInfo(int(r[0]), _from_db(r[1]), *r[2:]) for r in rows]

    def indexed_files(self) -> list[tuple[str, int]]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT path, mtime_ns FROM images WHERE vector IS NOT NULL ORDER BY path"
            ).fetchall()
        )
        return [(_from_db(path), int(mtime_ns)) for path, mtime_ns in rows]

    def failures(self) -> list[tuple[str, str]]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT path, error FROM images WHERE error IS NOT NULL ORDER BY path"
            ).fetchall()
        )
        return [(_from_db(path), str(error)) for path, error in rows]

    def count(self) -> int:
        """Images that are searchable (have a vector)."""
        return int(
            self._run(
                lambda c: c.execute(
                    "SELECT COUNT(*) FROM images WHERE vector IS NOT NULL"
                ).fetchone()[0]
            )
        )

    def ids_for_paths(self, paths: Iterable[str]) -> dict[str, int]:
        wanted = [_to_db(p) for p in paths]
        rows = self._run(
            lambda c: c.execute(
                "SELECT id, path FROM images WHERE path = ANY(%s)", (wanted,)
            ).fetchall()
        )
        return {_from_db(path): int(image_id) for image_id, path in rows}

    # What people say about a photo -----------------------------------------------------
    def metadata_generation(self) -> int:
        return self._run(lambda conn: self._meta_int(conn, "metadata_generation"))

    def edit_tags(
        self, image_ids: Iterable[int], add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        """Add and remove the user's tags (case-insensitive) on every given image."""
        ids, added, removed = [int(i) for i in image_ids], _clean_tags(add), _clean_tags(remove)
        if not ids or not (added or removed):
            return

        def run(conn: Any) -> None:
            with self._transaction(conn), conn.cursor() as cur:
                if removed:
                    cur.execute(
                        "DELETE FROM tags WHERE image_id = ANY(%s) AND source = 'user' "
                        "AND lower(tag) = ANY(%s)",
                        (ids, [t.lower() for t in removed]),
                    )
                if added:
                    cur.executemany(
                        "INSERT INTO tags(image_id, source, tag) SELECT id, 'user', %s "
                        "FROM images WHERE id = ANY(%s) ON CONFLICT DO NOTHING",
                        [(_text(tag), ids) for tag in added],
                    )
                self._bump(conn, "metadata_generation")

        self._run(run)

    def set_description(self, image_ids: Iterable[int], description: str | None) -> None:
        text = _text((description or "").strip() or None)
        ids = [int(i) for i in image_ids]
        if not ids:
            return

        def run(conn: Any) -> None:
            with self._transaction(conn):
                conn.execute("UPDATE images SET description = %s WHERE id = ANY(%s)", (text, ids))
                self._bump(conn, "metadata_generation")

        self._run(run)

    def metadata(self, ids: Iterable[int] | None = None) -> dict[int, PhotoMetadata]:
        """Tags, description, title and caption of the given images (all when None); an image
        with none of them is absent from the result."""
        wanted = None if ids is None else [int(i) for i in ids]
        clause = "" if wanted is None else " AND id = ANY(%(ids)s)"
        tag_clause = "" if wanted is None else " WHERE image_id = ANY(%(ids)s)"

        def run(conn: Any) -> tuple[list[Any], list[Any]]:
            params = {"ids": wanted}
            fields = conn.execute(
                "SELECT id, description, title, caption FROM images WHERE (description IS NOT "
                f"NULL OR title IS NOT NULL OR caption IS NOT NULL){clause}",
                params,
            ).fetchall()
            tags = conn.execute(
                f"SELECT image_id, source, tag FROM tags{tag_clause} ORDER BY tag", params
            ).fetchall()
            return fields, tags

        field_rows, tag_rows = self._run(run)
        return metadata_from_rows(field_rows, tag_rows)

    def tag_counts(self) -> list[tuple[str, int]]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT min(tag), COUNT(DISTINCT image_id) FROM tags GROUP BY lower(tag) "
                "ORDER BY lower(tag)"
            ).fetchall()
        )
        return [(str(tag), int(count)) for tag, count in rows]

    def set_mark(self, image_id: int, query: str, relevant: bool | None) -> None:
        def run(conn: Any) -> None:
            with self._transaction(conn):
                if relevant is None:
                    conn.execute(
                        "DELETE FROM marks WHERE image_id = %s AND query = %s", (image_id, query)
                    )
                else:
                    conn.execute(
                        "INSERT INTO marks(image_id, query, relevant, marked_at) "
                        "SELECT id, %s, %s, %s FROM images WHERE id = %s "
                        "ON CONFLICT (image_id, query) DO UPDATE SET "
                        "relevant = excluded.relevant, marked_at = excluded.marked_at",
                        (_text(query), bool(relevant), time.time(), image_id),
                    )
                self._bump(conn, "metadata_generation")

        self._run(run)

    def marks(self, query: str | None = None) -> list[Mark]:
        sql = (
            "SELECT m.image_id, i.path, m.query, m.relevant, m.marked_at FROM marks m "
            "JOIN images i ON i.id = m.image_id"
        )
        params: tuple[str, ...] = ()
        if query is not None:
            sql, params = sql + " WHERE m.query = %s", (query,)
        rows = self._run(
            lambda c: c.execute(sql + " ORDER BY m.marked_at, m.image_id", params).fetchall()
        )
        return [
            Mark(int(i), _from_db(path), str(q), bool(rel), float(at))
            for i, path, q, rel, at in rows
        ]

    def clear_marks(self, query: str | None = None) -> int:
        def run(conn: Any) -> int:
            with self._transaction(conn):
                if query is None:
                    removed = conn.execute("DELETE FROM marks").rowcount
                else:
                    removed = conn.execute("DELETE FROM marks WHERE query = %s", (query,)).rowcount
                self._bump(conn, "metadata_generation")
                return int(removed)

        return self._run(run)

    # Text embedding cache ---------------------------------------------------------------
    def cached_text_vectors(self, prompts: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        if not prompts:
            return {}

        def run(conn: Any) -> list[Any]:
            with conn.cursor(binary=True) as cur:
                return list(
                    cur.execute(
                        "SELECT prompt, vector FROM text_cache WHERE prompt = ANY(%s)",
                        ([_text(p) for p in prompts],),
                    ).fetchall()
                )

        found = {}
        for prompt, vector in self._run(run):
            if vector.shape != (self.dim,) or not np.isfinite(vector).all():
                continue  # a cache: it is encoded again
            found[str(prompt)] = vector
        return found

    def store_text_vectors(self, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
        if not vectors or self.read_only:  # a cache: recomputed next time
            return

        def run(conn: Any) -> None:
            with self._transaction(conn), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO text_cache(prompt, vector) VALUES (%s, %s) "
                    "ON CONFLICT (prompt) DO UPDATE SET vector = excluded.vector",
                    [(_text(p), np.asarray(v, np.float32).ravel()) for p, v in vectors.items()],
                )

        try:
            self._run(run)
        except (DiskFull, LibraryInUse, LibraryUnreachable) as exc:  # a search must not fail
            log.info("text vectors not cached: %s", exc)

    # For `library copy` -----------------------------------------------------------------
    def text_cache_items(self) -> list[tuple[str, npt.NDArray[np.float32]]]:
        def run(conn: Any) -> list[Any]:
            with conn.cursor(binary=True) as cur:
                return list(cur.execute("SELECT prompt, vector FROM text_cache").fetchall())

        return [(str(p), v) for p, v in self._run(run)]


def read_pg_identity(url: str, model_id: str) -> tuple[str, int] | None:
    """(model id, dim) of this model's library in the database, None when there is none."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            schema = library_schema(model_id)
            exists = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                "AND table_name = 'meta'",
                (schema,),
            ).fetchone()
            if not exists:
                return None
            from psycopg import sql

            meta: dict[str, str] = dict(
                conn.execute(
                    sql.SQL("SELECT key, value FROM {}.meta").format(sql.Identifier(schema))
                ).fetchall()
            )
    except psycopg.Error as exc:
        raise LibraryUnreachable(
            f"Cannot reach the library database {redact(url)} ({_first_line(exc)})."
        ) from exc
    return str(meta["model_id"]), int(meta["dim"])


def pg_known_libraries(url: str) -> list[tuple[str, int]]:
    """(model id, dim) of every library in the database (each schema with a meta table)."""
    import psycopg
    from psycopg import sql

    found = []
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            schemas = conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'meta' "
                "AND table_schema LIKE 'gallery%' ORDER BY table_schema"
            ).fetchall()
            for (schema,) in schemas:
                meta: dict[str, str] = dict(
                    conn.execute(
                        sql.SQL("SELECT key, value FROM {}.meta").format(sql.Identifier(schema))
                    ).fetchall()
                )
                if "model_id" in meta and "dim" in meta:
                    found.append((str(meta["model_id"]), int(meta["dim"])))
    except psycopg.Error as exc:
        raise LibraryUnreachable(
            f"Cannot reach the library database {redact(url)} ({_first_line(exc)})."
        ) from exc
    return found


def _schema_statements(dim: int) -> list[str]:
    text = _SCHEMA.format(dim=int(dim), m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
    return [part.strip() for part in text.split(";") if part.strip()]


def _missing_extension(url: str, exc: BaseException | None = None) -> GalleryError:
    why = f" ({redact(_first_line(exc))})" if exc is not None else ""
    return GalleryError(
        f"The database {redact(url)} has no pgvector extension{why}. Install pgvector on the "
        "server and run `CREATE EXTENSION vector;` in that database as its owner (README: "
        "Shared library on PostgreSQL)."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0].strip() if text else type(exc).__name__)


class PgCandidates:
    """The library's `index` on PostgreSQL: pgvector's HNSW index, kept by the server in the
    same transaction as each batch, so adding and removing here are nothing to do."""

    def __init__(self, catalog: PgCatalog) -> None:
        self.catalog = catalog

    def __len__(self) -> int:
        return self.catalog.count()

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Nothing: write_batch stored the vectors and the server indexed them."""

    def remove(self, ids: Iterable[int]) -> None:
        """Nothing: deleting the rows took them out of the server's index."""

    def live_ids(self) -> set[int]:
        return self.catalog.vector_ids()

    def query(
        self, vectors: npt.ArrayLike, k: int = 10, ef: int = 0
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(labels, distances) like VectorIndex.query: candidates, -1 where fewer; the
        distances are not used (the caller re-ranks exactly) and are returned as NaN."""
        queries = np.atleast_2d(np.asarray(vectors, np.float32))
        labels = self.catalog.nearest(queries, int(k), int(ef))
        return labels, np.full(labels.shape, np.nan, np.float32)

    def get_vectors(self, ids: Iterable[int]) -> npt.NDArray[np.float32]:
        wanted = [int(i) for i in ids]
        found_ids, matrix = self.catalog.vectors(ids=wanted)
        row_of = {int(i): row for row, i in enumerate(found_ids.tolist())}
        return matrix[[row_of[i] for i in wanted]]
