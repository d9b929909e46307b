"""What only a server has: several clients, kill -9, a restart, a dropped connection, schemas.

A real PostgreSQL + pgvector (conftest's pg_server), no mock. Each client is a Library of its
own (its own connection), as two desktops on one NAS library would be.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from gallery_app.core.catalog import Catalog
from gallery_app.core.errors import GalleryError, LibraryInUse, LibraryMismatch, LibraryUnreachable
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library
from gallery_app.core.pg_catalog import (
    PG_SCHEMA_VERSION,
    PgCatalog,
    library_schema,
    redact,
    without_password,
)
from gallery_app.core.search import Searcher
from gallery_app.core.store import CandidateIndex, CatalogStore

psycopg = pytest.importorskip("psycopg", reason="PostgreSQL tests need pip install -e '.[dev]'")
CHILD = Path(__file__).with_name("pg_index_child.py")
WAIT_S = 120  # a generous deadline for a condition on this busy 2-core machine


@pytest.fixture
def url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GALLERY_APP_LIBRARY", pg_url)
    return pg_url


def client(data: Path, encoder, read_only: bool = False) -> Library:
    library = Library(data, encoder.model_id, encoder.dim, read_only=read_only)
    assert library.shared
    return library


def backend_pid(library: Library) -> int:
    catalog = library.catalog
    assert isinstance(catalog, PgCatalog)
    return int(catalog._run(lambda conn: conn.info.backend_pid))


def terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_both_backends_offer_the_same_library_interface() -> None:
    public = {name for name in dir(Catalog) if not name.startswith("_")}
    missing = public - {name for name in dir(PgCatalog) if not name.startswith("_")}
    # backup(): SQLite copies its file before a migration; a server is backed up with pg_dump.
    assert missing <= {"backup", "db", "busy_timeout_ms"}, missing


def test_two_clients_index_different_folders_at_once(url, encoder, make_images, tmp_path):
    folders = [make_images(6, folder=name)[0].parent for name in ("alice", "bob")]
    libraries = [client(tmp_path / f"data-{n}", encoder) for n in range(2)]
    midway = [threading.Event(), threading.Event()]
    reports: list[object] = [None, None]

    def run(n: int) -> None:
        def progress(p) -> None:
            if p.done > 0 and not midway[n].is_set():
                # Both runs must be mid-way (a batch committed, the folder locked) together:
                # a library-wide writer lock would leave the other waiting here for good.
                midway[n].set()
                assert midway[1 - n].wait(WAIT_S), "the other client never ran alongside"

        try:
            reports[n] = Indexer(libraries[n], encoder, batch_size=2).index([folders[n]], progress)
        except BaseException as exc:  # reported by the main thread
            reports[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 2)
    try:
        for report in reports:
            assert not isinstance(report, BaseException), report
            assert report.indexed == 6  # type: ignore[union-attr]
        for library in libraries:
            assert library.catalog.count() == 12
            assert sorted(f.path for f in library.catalog.folders()) == sorted(map(str, folders))
    finally:
        for library in libraries:
            library.close()


def test_a_second_client_on_the_same_folder_is_told_it_is_in_use(
    url, encoder, make_images, tmp_path
):
    folder = make_images(2)[0].parent
    first, second = client(tmp_path / "a", encoder), client(tmp_path / "b", encoder)
    try:
        with first.folder_lock(str(folder)):
            with pytest.raises(LibraryInUse, match="Another client is indexing"):
                Indexer(second, encoder).index([folder])
            assert second.catalog.count() == 0
        assert Indexer(second, encoder).index([folder]).indexed == 2  # free once released
    finally:
        first.close()
        second.close()


def test_one_client_searches_while_another_indexes(url, encoder, make_images, tmp_path):
    folder = make_images(16)[0].parent
    writer = client(tmp_path / "writer", encoder)
    reader = client(tmp_path / "reader", encoder, read_only=True)
    searcher = Searcher(reader, encoder)
    seen: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def search_until_done() -> None:
        try:
            while not done.is_set():
                hits = searcher.search("a photo", top_k=None)
                known = reader.catalog.vector_ids()
                assert set(hits.image_ids.tolist()) <= known  # only committed photos
                seen.append(len(hits.image_ids))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=search_until_done)
    thread.start()
    try:
        report = Indexer(writer, encoder, batch_size=2).index([folder])
    finally:
        done.set()
        thread.join(WAIT_S)
    try:
        assert errors == []
        assert report.indexed == 16 and seen
        assert seen == sorted(seen)  # a reader never sees photos disappear
        assert len(searcher.search("a photo", top_k=None).image_ids) == 16
    finally:
        writer.close()
        reader.close()


def test_a_client_killed_mid_batch_loses_only_that_batch(
    url, tiny_model_dir, encoder, make_images, tmp_path
):
    folder = make_images(14)[0].parent
    marker = tmp_path / "in-flight"
    batch, hang_at = 3, 2
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(tiny_model_dir), str(tmp_path / "child"), str(folder),
         str(batch), str(hang_at), str(marker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = threading.Event()
        for _ in range(WAIT_S * 20):
            if marker.exists() or child.poll() is not None:
                break
            deadline.wait(0.05)
        assert marker.exists(), child.stderr.read().decode() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    # The server rolled back the batch in flight and dropped its locks with its connection:
    # another client writes at once, and finds every batch before it.
    library = client(tmp_path / "after", encoder)
    try:
        assert library.catalog.count() == batch * hang_at
        report = Indexer(library, encoder, batch_size=batch).index([folder])
        assert report.unchanged == batch * hang_at
        assert report.indexed == 14 - batch * hang_at
        assert library.catalog.count() == 14
    finally:
        library.close()


def test_a_dropped_connection_is_retried_with_a_clear_message(
    url, encoder, make_images, tmp_path, caplog
):
    folder = make_images(8)[0].parent
    library = client(tmp_path / "data", encoder)
    dropped = []

    def progress(p) -> None:
        if p.done > 0 and not dropped:
            dropped.append(backend_pid(library))
            terminate(url, dropped[0])  # the server ends this client's session mid-run

    try:
        with caplog.at_level(logging.WARNING, "gallery_app.core.pg_catalog"):
            report = Indexer(library, encoder, batch_size=2).index([folder], progress)
        assert report.indexed == 8 and library.catalog.count() == 8
        assert backend_pid(library) != dropped[0]  # a new session took over
        lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
        assert lost and "trying again" in lost[0] and library_schema(encoder.model_id) in lost[0]
    finally:
        library.close()


def test_a_server_restart_mid_index_resumes(url, pg_server, encoder, make_images, tmp_path):
    folder = make_images(10)[0].parent
    library = client(tmp_path / "data", encoder)
    restarted = threading.Event()

    def progress(p) -> None:
        if p.done > 0 and not restarted.is_set():
            restarted.set()
            pg_server.stop()  # down while this run goes on encoding; back a moment later
            threading.Timer(1.0, pg_server.ensure_postgres_running).start()

    try:
        report = Indexer(library, encoder, batch_size=2).index([folder], progress)
        assert restarted.is_set()
        assert report.indexed == 10 and report.failed == []
        assert library.catalog.count() == 10
    finally:
        library.close()


def test_a_server_that_stays_down_is_one_clear_error(url, encoder, monkeypatch, tmp_path):
    library = client(tmp_path / "data", encoder)
    try:
        monkeypatch.setattr(PgCatalog, "retry_delays_s", (0.01, 0.01))
        monkeypatch.setattr(library.catalog, "url", url.replace("/gallery_tests", "/nowhere"))
        terminate(url, backend_pid(library))
        with pytest.raises(LibraryUnreachable) as info:
            library.catalog.count()
        message = str(info.value)
        assert "\n" not in message and "after 2 tries" in message and "committed is safe" in message
    finally:
        library.close()


def test_passwords_never_reach_a_message_or_a_log(url, encoder, caplog, tmp_path):
    secret = "hunter2-secret"
    # The test server trusts its socket, so a password in the address is accepted and unused.
    with_password = url.replace("postgres:@", f"postgres:{secret}@")
    assert secret in with_password
    with caplog.at_level(logging.DEBUG):
        library = Library(tmp_path / "data", encoder.model_id, encoder.dim, location=with_password)
        try:
            terminate(url, backend_pid(library))
            assert library.catalog.count() == 0  # retried, logged
            assert secret not in library.where
        finally:
            library.close()
        refused = with_password.replace("/gallery_tests", "/no_such_database")
        with pytest.raises(LibraryUnreachable) as info:
            Library(tmp_path / "data", encoder.model_id, encoder.dim, location=refused)
    assert "no_such_database" in str(info.value) and secret not in str(info.value)
    assert any("lost" in r.getMessage() for r in caplog.records)
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert secret not in without_password(with_password)
    assert redact("host=db password='a b' user=x") == "host=db password=*** user=x"


def test_a_newer_schema_is_refused_by_an_older_client_and_left_untouched(url, encoder, tmp_path):
    client(tmp_path / "data", encoder).close()
    schema = library_schema(encoder.model_id)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            f"UPDATE \"{schema}\".meta SET value = %s WHERE key = 'schema_version'",
            (str(PG_SCHEMA_VERSION + 1),),
        )
    with pytest.raises(LibraryMismatch, match="newer gallery-app"):
        client(tmp_path / "data", encoder)
    with psycopg.connect(url) as admin:
        row = admin.execute(f"SELECT value FROM \"{schema}\".meta WHERE key = 'schema_version'")
        assert row.fetchone() == (str(PG_SCHEMA_VERSION + 1),)


def test_another_model_is_never_mixed_into_a_library(url, encoder, tmp_path):
    client(tmp_path / "data", encoder).close()
    with pytest.raises(LibraryMismatch, match="never mixed"):
        PgCatalog(url, encoder.model_id, encoder.dim + 1)


def test_candidates_come_from_the_server_index_and_cover_the_exact_top(url, tmp_path):
    catalog = PgCatalog(url, "bench-model", 32)
    try:
        assert isinstance(catalog, CatalogStore)
        from gallery_app.core.catalog import ImageRecord
        from gallery_app.core.pg_catalog import PgCandidates

        folder = catalog.add_folder("/p")
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(500, 32)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        _, ids = catalog.write_batch(
            [ImageRecord(f"/p/{i}.jpg", folder.id, 1, 1, vector=v) for i, v in enumerate(vectors)]
        )
        index = PgCandidates(catalog)
        assert isinstance(index, CandidateIndex) and len(index) == 500
        queries = vectors[:5] + 0.01
        labels, _ = index.query(queries, 50)
        exact = np.argsort(-(vectors @ queries.T), axis=0)[:10].T
        for row in range(5):
            assert set(np.asarray(ids)[exact[row]]) <= set(labels[row].tolist())
    finally:
        catalog.close()


def test_an_older_schema_is_upgraded_by_a_writer_in_one_transaction(
    url, encoder, tmp_path, monkeypatch
):
    from gallery_app.core import pg_catalog

    client(tmp_path / "data", encoder).close()
    monkeypatch.setattr(pg_catalog, "PG_SCHEMA_VERSION", PG_SCHEMA_VERSION + 1)
    monkeypatch.setitem(
        pg_catalog._MIGRATIONS, PG_SCHEMA_VERSION, ("ALTER TABLE images ADD COLUMN rating int",)
    )
    with pytest.raises(LibraryInUse, match="only a writing client"):
        client(tmp_path / "data", encoder, read_only=True)  # a reader never upgrades
    broken = ("ALTER TABLE images ADD COLUMN stars int", "ALTER TABLE nowhere ADD COLUMN x int")
    monkeypatch.setitem(pg_catalog._MIGRATIONS, PG_SCHEMA_VERSION, broken)
    with pytest.raises(GalleryError):
        client(tmp_path / "data", encoder)
    schema = library_schema(encoder.model_id)
    columns = "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
    with psycopg.connect(url) as admin:  # the failed upgrade changed nothing
        assert "stars" not in {c for (c,) in admin.execute(columns, (schema,)).fetchall()}
    monkeypatch.setitem(
        pg_catalog._MIGRATIONS, PG_SCHEMA_VERSION, ("ALTER TABLE images ADD COLUMN rating int",)
    )
    library = client(tmp_path / "data", encoder)
    try:
        assert library.catalog.migrated_from == PG_SCHEMA_VERSION
        assert any("upgraded from schema" in note for note in library.warnings)
    finally:
        library.close()
    with psycopg.connect(url) as admin:
        assert "rating" in {c for (c,) in admin.execute(columns, (schema,)).fetchall()}
