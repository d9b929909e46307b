"""Searches during indexing, and two processes on one library: never an error, never two writers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_crash import CHILD, wait_for

from gallery_app.core.errors import GalleryError, LibraryInUse
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library
from gallery_app.core.search import Searcher

SEARCHES = 1000


class PacedEncoder:
    """Lets each batch through only after its share of the searches ran: they interleave."""

    def __init__(self, inner, searches_done, per_batch: int) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.image_spec = inner.image_spec
        self.searches_done = searches_done
        self.per_batch = per_batch
        self.batches = 0

    def encode_pixels(self, pixels):
        self.batches += 1
        self.searches_done(self.batches * self.per_batch)
        return self.inner.encode_pixels(pixels)


def test_1000_searches_interleaved_with_an_index_run(
    library, encoder, make_images, library_backend
):
    old = make_images(40)
    folder = old[0].parent
    Indexer(library, encoder).index([folder])
    # The run below adds, rewrites, breaks and removes entries while searches go on.
    for path in old[:6]:
        path.write_bytes(b"now broken")
    for path in old[6:12]:
        shutil.copy(old[20], path)
    for path in old[12:18]:
        path.unlink()
    new = make_images(60, start=100)
    ever_good = {str(p) for p in old + new}

    done = 0
    progress = threading.Condition()
    errors: list[BaseException] = []

    def wait_for_searches(target: int) -> None:
        with progress:
            if not progress.wait_for(lambda: done >= min(target, SEARCHES) or errors, 60):
                raise AssertionError("searches stalled")

    searcher = Searcher(library, encoder)
    queries = ["dog", "a red car", "sunset over the sea", "snow", "cat on a sofa"]
    seen_ids: dict[int, str] = {}

    def search_loop() -> None:
        nonlocal done
        try:
            for n in range(SEARCHES):
                hits = searcher.search(queries[n % len(queries)], top_k=10, expand=n % 2 == 0)
                for image_id, path in zip(hits.image_ids.tolist(), hits.paths, strict=True):
                    assert path in ever_good, path  # never a half-written or foreign entry
                    assert seen_ids.setdefault(image_id, path) == path  # id -> one file
                assert ((hits.raw >= -1.0001) & (hits.raw <= 1.0001)).all()
                with progress:
                    done += 1
                    progress.notify_all()
        except BaseException as exc:  # reported below, with its traceback
            errors.append(exc)
            with progress:
                progress.notify_all()

    thread = threading.Thread(target=search_loop)
    thread.start()
    paced = PacedEncoder(encoder, wait_for_searches, per_batch=SEARCHES // 20)
    report = Indexer(library, paced, batch_size=4).index([folder])
    thread.join(timeout=120)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    assert done == SEARCHES
    assert paced.batches >= 15  # the searches really were spread over the run
    assert report.indexed == 66 and len(report.failed) == 6 and report.removed == 6
    assert len(library.index) == library.catalog.count() == 40 - 12 + 60


def start_writer(model_dir, data, folder, marker) -> subprocess.Popen:
    """An `index` child (batches of 4) that writes `marker` and hangs inside its first batch,
    holding the writer lock mid-run."""
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(model_dir), str(data), str(folder),
         "4", "1", str(marker), "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_second_writer_in_another_process_gets_library_in_use(
    tiny_model_dir, encoder, make_images, tmp_path
):
    paths = make_images(12)
    data = tmp_path / "data"
    marker = tmp_path / "in-flight"
    child = start_writer(tiny_model_dir, data, paths[0].parent, marker)
    try:
        wait_for(marker.exists, "the child to start indexing", child)
        with pytest.raises(LibraryInUse, match=f"pid {child.pid}"):
            Library(data, encoder.model_id, encoder.dim)

        common = ["--model", str(tiny_model_dir), "--data-dir", str(data)]
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        second = subprocess.run(
            [sys.executable, "-m", "gallery_app", *common, "index", str(paths[0].parent)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert second.returncode == 1
        [line] = second.stderr.strip().splitlines()
        assert "in use by another gallery-app" in line and f"pid {child.pid}" in line

        # Searching beside the writer works, read-only, over what it has committed.
        search = subprocess.run(
            [sys.executable, "-m", "gallery_app", *common, "search", "dog", "--json"],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert search.returncode == 0, search.stderr
        results = json.loads(search.stdout)["results"]
        assert 0 < len(results) <= 4  # the one committed batch
        with Library(data, encoder.model_id, encoder.dim, read_only=True) as reader:
            assert reader.catalog.count() == 4
            with pytest.raises(GalleryError, match="read-only"):
                reader.catalog.add_folder("/elsewhere")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    # The dead writer's lock went with it.
    Library(data, encoder.model_id, encoder.dim).close()


def test_second_writer_in_the_same_process_is_refused_until_the_first_closes(library, encoder):
    with pytest.raises(LibraryInUse, match=str(library.folder)):
        Library(library.data_dir, library.model_id, library.dim)
    library.close()
    Library(library.data_dir, library.model_id, library.dim).close()


def contents(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, except SQLite's shared-memory file and an empty WAL, which any
    reader of a WAL database creates (neither holds data)."""
    found = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith("-shm")}
    return {name: data for name, data in found.items() if data or not name.endswith("-wal")}


def test_read_only_library_never_writes(library, encoder, make_images, tmp_path):
    paths = make_images(5)
    Indexer(library, encoder).index([paths[0].parent])
    library.close()
    folder = library.folder
    index_file = folder / "vectors.hnsw"
    index_file.write_bytes(b"damaged")  # the reader rebuilds in memory, leaves the file be

    before = contents(folder)
    with Library(library.data_dir, library.model_id, library.dim, read_only=True) as reader:
        assert reader.repair.rebuilt and "in memory" in reader.warnings[0]
        hits = Searcher(reader, encoder).search("dog", top_k=3)
        assert set(hits.paths) <= {str(p) for p in paths}
        reader.save_index()
    after = contents(folder)
    assert after == before
    assert Path(index_file).read_bytes() == b"damaged"


def cli(common: list[str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "gallery_app", *common, *args],
        capture_output=True, text=True, env=env, timeout=300, input=stdin,
    )  # fmt: skip


def test_search_tune_and_debug_scores_run_while_an_index_is_running(
    tiny_model_dir, encoder, make_images, tmp_path
):
    paths = make_images(12)
    data = tmp_path / "data"
    marker = tmp_path / "in-flight"
    writer = start_writer(tiny_model_dir, data, paths[0].parent, marker)
    try:
        wait_for(marker.exists, "the writer to be mid-run", writer)
        common = ["--model", str(tiny_model_dir), "--data-dir", str(data)]
        search = cli(common, "search", "dog", "--json")
        assert search.returncode == 0, search.stderr
        assert 0 < len(json.loads(search.stdout)["results"]) <= 4  # the committed batch
        scores = cli(common, "debug-scores", "--json", "--query", "dog")
        assert scores.returncode == 0, scores.stderr
        assert len(json.loads(scores.stdout)["images"]) == 4
        tune = cli(common, "tune", stdin="test dog\nquit\n")
        assert tune.returncode == 0, tune.stderr
        assert "dog" in tune.stdout
        assert writer.poll() is None  # the writer was never disturbed
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)


def test_index_starts_while_readers_are_open(tiny_model_dir, encoder, make_images, tmp_path):
    paths = make_images(10)
    data = tmp_path / "data"
    common = ["--model", str(tiny_model_dir), "--data-dir", str(data)]
    first = cli(common, "index", str(paths[0].parent))
    assert first.returncode == 0, first.stderr
    more = make_images(6, start=50)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    tune = subprocess.Popen(  # an open `tune` session, waiting for its next command
        [sys.executable, "-m", "gallery_app", *common, "tune"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    try:
        assert tune.stdin is not None and tune.stdout is not None
        tune.stdin.write("show\n")
        tune.stdin.flush()
        assert tune.stdout.readline()  # it has the library open and answered
        with Library(data, encoder.model_id, encoder.dim, read_only=True) as reader:
            second = cli(common, "index", str(more[0].parent), "--json")
            assert second.returncode == 0, second.stderr
            assert json.loads(second.stdout)["indexed"] == 6
            # The reader sees what the writer committed, without reopening.
            assert reader.catalog.count() == 16
        _, err = tune.communicate("quit\n", timeout=120)
        assert tune.returncode == 0, err
    finally:
        if tune.poll() is None:
            tune.kill()
            tune.wait(timeout=30)
