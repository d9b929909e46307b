"""kill -9 mid-run, damaged files on disk, schema versions: nothing committed is ever lost."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gallery_app.core.catalog import SCHEMA_VERSION, Catalog, ImageRecord
from gallery_app.core.errors import CorruptCatalog, DiskFull, LibraryInUse, LibraryMismatch
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library, library_folder
from gallery_app.core.search import Searcher

CHILD = Path(__file__).with_name("index_child.py")


def wait_for(condition, what: str, proc: subprocess.Popen | None = None, limit: float = 120):
    """Poll a real condition with a deadline (the child needs a few seconds to import torch)."""
    deadline = time.monotonic() + limit
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"child exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def assert_agrees(library: Library) -> None:
    ids, vectors = library.catalog.vectors()
    assert library.index.live_ids() == set(ids.tolist())
    if len(ids):
        np.testing.assert_allclose(library.index.get_vectors(ids), vectors, atol=1e-5)


def kill_mid_batch(model: Path, data: Path, folder: Path, batch: int, hang_at: int, save_s: float):
    marker = data.parent / f"in-flight-{hang_at}-{save_s}"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(model), str(data), str(folder), str(batch),
         str(hang_at), str(marker), str(save_s)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(marker.exists, "the batch in flight", child)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("save_interval_s", [0.0, 3600.0], ids=["index-saved", "index-unsaved"])
def test_sigkill_mid_batch_then_resume_redoes_only_the_batch_in_flight(
    tiny_model_dir, encoder, make_images, tmp_path, save_interval_s
):
    paths = make_images(30, ext=".jpg")
    (paths[0].parent / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    data = tmp_path / "data"
    batch, hang_at = 4, 3
    kill_mid_batch(tiny_model_dir, data, paths[0].parent, batch, hang_at, save_interval_s)

    # The kernel dropped the dead writer's lock: a new writer opens the library.
    library = Library(data, encoder.model_id, encoder.dim)
    try:
        committed = library.catalog.vector_ids()
        rows = library.catalog.files_in_folder(library.catalog.folders()[0].id)
        assert len(rows) == batch * hang_at  # every batch before the one in flight
        assert len(committed) == len(rows) - sum(1 for s in rows.values() if s.error)
        assert_agrees(library)  # repaired (or rebuilt) from the catalog on open
        if save_interval_s == 0:
            assert not library.repair.rebuilt  # the saved index was reused, not rebuilt

        report = Indexer(library, encoder, batch_size=batch).index([paths[0].parent])
        assert report.unchanged == len(committed)
        assert report.indexed + report.unchanged == len(paths)
        assert report.indexed == len(paths) - len(committed)  # nothing committed is redone
        assert [f.path for f in report.failed] == [str(paths[0].parent / "broken.png")]
        assert_agrees(library)
        assert library.catalog.count() == len(paths)
    finally:
        library.close()
    check = sqlite3.connect(library.catalog.path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        check.close()


# Damaged vector index -------------------------------------------------------------------------


def filled_library(library: Library, count: int = 40, seed: int = 0) -> list[int]:
    folder = library.catalog.add_folder("/photos")
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, library.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [
        ImageRecord(f"/photos/{i:03d}.jpg", folder.id, i, 100 + i, vector=vector)
        for i, vector in enumerate(vectors)
    ]
    _, ids = library.catalog.write_batch(records)
    library.index.add(ids, vectors)
    library.save_index()
    return ids


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_header_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # hnswlib loads this happily, then crashes the process on a query
    path.write_bytes(bytes(data))


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).bytes(path.stat().st_size))


@pytest.mark.parametrize("damage", [truncate_half, flip_header_byte, garbage])
def test_damaged_index_is_rebuilt_from_the_catalog_with_a_warning(
    encoder, isolated_dirs, damage, caplog
):
    library = Library(isolated_dirs, encoder.model_id, encoder.dim)
    ids = filled_library(library)
    library.close()
    damage(library.index_path)

    with caplog.at_level("WARNING"), Library(isolated_dirs, encoder.model_id, encoder.dim) as again:
        assert again.repair.rebuilt
        assert len(again.warnings) == 1 and str(again.index_path) in again.warnings[0]
        assert again.warnings[0] in caplog.text
        assert again.index.live_ids() == set(ids)
        assert_agrees(again)
        labels, _ = again.index.query(again.catalog.vectors()[1][:3], k=1)
        assert labels[:, 0].tolist() == ids[:3]
    assert library.index_path.with_name("vectors.hnsw.unusable").exists()  # kept for a report
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as third:
        assert not third.repair.changed and third.warnings == []  # the rebuilt one was saved


# Damaged, locked or foreign catalog -------------------------------------------------------------


def make_catalog(encoder, data: Path) -> Path:
    library = Library(data, encoder.model_id, encoder.dim)
    filled_library(library, count=300)
    library.close()
    return library.catalog.path


def flip_middle_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle : middle + 200] = b"\xa5" * 200
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [truncate_half, flip_middle_page, lambda p: p.write_bytes(b"SQLite format 3\0" + b"x" * 5000)],
    ids=["truncated", "damaged-page", "garbage-header"],
)
def test_damaged_catalog_is_a_clear_error_and_never_touched(encoder, isolated_dirs, damage):
    path = make_catalog(encoder, isolated_dirs)
    for extra in path.parent.glob("catalog.sqlite-*"):
        extra.unlink()  # closed cleanly: WAL checkpointed; keep only the main file
    damage(path)
    before = path.read_bytes()

    with pytest.raises(CorruptCatalog) as error:
        Library(isolated_dirs, encoder.model_id, encoder.dim)
    message = str(error.value)
    assert str(path) in message and "untouched" in message
    assert path.read_bytes() == before
    wal = path.with_name("catalog.sqlite-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # nothing was written, even to the WAL
    # The writer lock was released with the failure: after a fix, the library opens.
    path.unlink()
    Library(isolated_dirs, encoder.model_id, encoder.dim).close()


def test_sqlite_file_that_is_not_a_catalog_is_refused(encoder, isolated_dirs):
    folder = library_folder(isolated_dirs, encoder.model_id)
    folder.mkdir(parents=True)
    foreign = sqlite3.connect(folder / "catalog.sqlite")
    foreign.execute("CREATE TABLE recipes (name TEXT)")
    foreign.commit()
    foreign.close()
    with pytest.raises(CorruptCatalog, match="not a gallery-app catalog"):
        Library(isolated_dirs, encoder.model_id, encoder.dim)


def test_catalog_locked_by_another_program_is_library_in_use(encoder, isolated_dirs, monkeypatch):
    path = make_catalog(encoder, isolated_dirs)
    monkeypatch.setattr(Catalog, "busy_timeout_ms", 50)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=DELETE")  # a tool that takes the whole file
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(LibraryInUse, match="locked by another program"):
            Library(isolated_dirs, encoder.model_id, encoder.dim)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        assert library.catalog.count() == 300


# Schema versions --------------------------------------------------------------------------------

SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE folders (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, added_at REAL NOT NULL);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path TEXT NOT NULL UNIQUE, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    width INTEGER, height INTEGER, taken_at TEXT, error TEXT, vector BLOB,
    generation INTEGER NOT NULL, indexed_at REAL NOT NULL
);
CREATE INDEX images_folder ON images(folder_id);
CREATE INDEX images_generation ON images(generation);
CREATE TABLE text_cache (prompt TEXT PRIMARY KEY, vector BLOB NOT NULL);
"""


def write_schema_1_catalog(path: Path, model_id: str, dim: int, count: int) -> np.ndarray:
    """A catalog exactly as gallery-app with schema 1 wrote it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("schema_version", "1"), ("model_id", model_id), ("dim", str(dim)), ("generation", "1")],
    )
    db.execute("INSERT INTO folders VALUES (1, '/old', 0)")
    vectors = np.random.default_rng(5).normal(size=(count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    db.executemany(
        "INSERT INTO images(folder_id, path, mtime_ns, size, error, vector, generation, "
        "indexed_at) VALUES (1, ?, 1, 1, ?, ?, 1, 0)",
        [(f"/old/{i}.jpg", None, v.tobytes()) for i, v in enumerate(vectors)]
        + [("/old/broken.jpg", "corrupt", None)],
    )
    db.commit()
    db.close()
    return vectors


def test_older_schema_is_upgraded_after_a_backup(encoder, isolated_dirs):
    path = library_folder(isolated_dirs, encoder.model_id) / "catalog.sqlite"
    vectors = write_schema_1_catalog(path, encoder.model_id, encoder.dim, 12)
    original = path.read_bytes()

    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        assert library.catalog.migrated_from == 1
        backup = library.catalog.backup_path
        assert backup is not None and backup.parent == path.parent
        assert any("upgraded from schema 1" in w for w in library.warnings)
        assert library.catalog.count() == 12
        assert library.catalog.failures() == [("/old/broken.jpg", "corrupt")]
        assert_agrees(library)
        np.testing.assert_allclose(library.catalog.vectors()[1], vectors)
        names = {row[0] for row in library.catalog.db.execute("SELECT name FROM sqlite_master")}
        assert "images_failed" in names
    # The backup is a complete schema-1 catalog, byte-identical in content to the original.
    copy = sqlite3.connect(backup)
    assert copy.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    assert copy.execute("SELECT COUNT(*) FROM images").fetchone() == (13,)
    copy.close()
    assert len(original) > 0
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as again:
        assert again.catalog.migrated_from is None  # upgraded once
    assert (
        str(SCHEMA_VERSION)
        == sqlite3.connect(path)
        .execute("SELECT value FROM meta WHERE key='schema_version'")
        .fetchone()[0]
    )


def test_newer_schema_is_refused_and_left_untouched(encoder, isolated_dirs):
    path = make_catalog(encoder, isolated_dirs)
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(LibraryMismatch, match="newer gallery-app") as error:
        Library(isolated_dirs, encoder.model_id, encoder.dim)
    assert "Upgrade gallery-app" in str(error.value)
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.bak"))


def integrity(path: Path) -> list[tuple[str]]:
    check = sqlite3.connect(path)
    try:
        return check.execute("PRAGMA integrity_check").fetchall()
    finally:
        check.close()


def test_disk_full_during_a_batch_names_the_folder_keeps_the_catalog_and_search_reads(
    library, encoder, make_images
):
    paths = make_images(9)
    first = Indexer(library, encoder, batch_size=3).index([paths[0].parent])
    assert first.indexed == 9
    more = make_images(30, start=100)
    # A disk that is full from here on: SQLite refuses to grow the file with SQLITE_FULL,
    # exactly as on a real full disk (deterministic, and nothing else on the machine fills).
    db = library.catalog.db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")

    with pytest.raises(DiskFull) as error:
        Indexer(library, encoder, batch_size=3).index([more[0].parent])
    message = str(error.value)
    assert message.startswith(f"disk full at {library.folder}") and "Free some space" in message
    assert "damaged" not in message and "rollback" not in message
    committed = library.catalog.count()  # the free pages left took a few more batches
    assert 9 <= committed < 39 and (committed - 9) % 3 == 0  # whole batches, every earlier one
    assert integrity(library.catalog.path) == [("ok",)]
    # Search still reads: in this process and in a reader beside it.
    hits = Searcher(library, encoder).search("dog", top_k=5)
    assert len(hits.paths) > 0 and set(hits.paths) <= {str(p) for p in paths + more}
    with Library(library.data_dir, library.model_id, library.dim, read_only=True) as reader:
        assert reader.catalog.count() == committed
        assert len(Searcher(reader, encoder).search("dog", top_k=5).paths) > 0
    # Space freed: the same command indexes the rest.
    db.execute("PRAGMA max_page_count = 1073741823")
    again = Indexer(library, encoder, batch_size=3).index([more[0].parent])
    assert again.indexed == 39 - committed and library.catalog.count() == 39
    assert_agrees(library)


class CommitFailsFull:
    """A connection whose COMMIT hits a full disk the way SQLite does it: the transaction is
    rolled back automatically, then SQLITE_FULL is raised."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real

    def execute(self, sql: str, *args):
        if sql == "COMMIT":
            self.real.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        return self.real.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


def test_a_commit_that_fails_full_is_disk_full_not_cannot_rollback(library, monkeypatch):
    real = library.catalog.db
    monkeypatch.setattr(library.catalog, "_db", CommitFailsFull(real))
    with pytest.raises(DiskFull, match=f"disk full at {library.folder}"):
        library.catalog.add_folder("/photos")
    monkeypatch.setattr(library.catalog, "_db", real)
    assert library.catalog.folders() == []  # nothing half-written
    assert not real.in_transaction
    library.catalog.add_folder("/photos")  # the connection is usable again
    assert [f.path for f in library.catalog.folders()] == ["/photos"]


def test_catalog_commits_with_synchronous_full(library):
    # NORMAL in WAL mode syncs only at checkpoints: a power cut could roll back committed
    # batches, which the README does not allow.
    assert library.catalog.db.execute("PRAGMA synchronous").fetchone() == (2,)
    assert library.catalog.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
