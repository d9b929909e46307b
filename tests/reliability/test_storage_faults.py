"""Library files under real-world faults: full disks, hostile sidecars and index files, FIFOs,
umask 000, read-only and non-UTF-8 data folders, fuzzed catalog pages."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import stat
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_crash import assert_agrees, filled_library, integrity

from gallery_app.core import fileio
from gallery_app.core.errors import (
    CorruptCatalog,
    CorruptIndex,
    DiskFull,
    GalleryError,
    LibraryMismatch,
    NotRegularFile,
)
from gallery_app.core.index import VectorIndex, inspect_hnsw, sidecar_path
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library
from gallery_app.core.search import Searcher


def saved_library(encoder, data: Path, count: int = 40) -> tuple[Path, list[int]]:
    """A closed library with count vectors, its index and sidecar saved; (folder, ids)."""
    with Library(data, encoder.model_id, encoder.dim) as library:
        ids = filled_library(library, count=count)
    return library.folder, ids


# Disk full while saving the vector index ------------------------------------------------------


def test_index_save_hitting_enospc_is_disk_full_and_keeps_the_old_index(
    library, monkeypatch
) -> None:
    ids = filled_library(library)
    before = library.index_path.read_bytes(), sidecar_path(library.index_path).read_bytes()
    library.index.remove(ids[:5])

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DiskFull, match=f"disk full at {library.folder}") as error:
        library.save_index()
    assert "previous one was kept" in str(error.value)
    monkeypatch.undo()
    after = library.index_path.read_bytes(), sidecar_path(library.index_path).read_bytes()
    assert after == before
    assert not list(library.folder.glob("*.tmp"))
    library.close()
    with Library(library.data_dir, library.model_id, library.dim) as again:
        assert not again.repair.rebuilt  # the old index, intact, repaired from the catalog
        assert_agrees(again)


class ShortWriter:
    """An hnswlib index whose save_index writes a short file and reports nothing, as
    hnswlib does when the disk fills mid-write."""

    def __init__(self, real) -> None:
        self.real = real

    def save_index(self, path: bytes) -> None:
        self.real.save_index(path)
        data = Path(os.fsdecode(path)).read_bytes()
        Path(os.fsdecode(path)).write_bytes(data[: len(data) * 2 // 3])

    def __getattr__(self, name: str):
        return getattr(self.real, name)


@pytest.mark.parametrize("disk_nearly_full", [True, False], ids=["full-disk", "bad-write"])
def test_a_short_index_write_is_caught_before_it_replaces_the_old_one(
    library, monkeypatch, disk_nearly_full
) -> None:
    filled_library(library)
    before = library.index_path.read_bytes()
    monkeypatch.setattr(library.index, "_index", ShortWriter(library.index._index))
    monkeypatch.setattr(
        "gallery_app.core.index.nearly_full", lambda folder, margin=0: disk_nearly_full
    )
    expected = DiskFull if disk_nearly_full else CorruptIndex
    with pytest.raises(expected, match="previous one was kept"):
        library.save_index()
    assert library.index_path.read_bytes() == before
    assert not list(library.folder.glob("*.tmp"))
    monkeypatch.undo()
    library.close()
    with Library(library.data_dir, library.model_id, library.dim) as again:
        assert not again.repair.rebuilt and again.warnings == []
        assert_agrees(again)


def test_a_full_disk_when_saving_the_repaired_index_on_open_is_a_warning(
    encoder, isolated_dirs, monkeypatch
) -> None:
    folder, ids = saved_library(encoder, isolated_dirs)
    (folder / "vectors.hnsw").unlink()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        assert library.index.live_ids() == set(ids)  # searchable from memory
        assert any(w.startswith(f"disk full at {folder}") for w in library.warnings)


# Hostile sidecars and index files -------------------------------------------------------------

SIDECAR_SHAPES = {
    "null": "null",
    "list": "[]",
    "number": "3",
    "string": '"vectors"',
    "empty-object": "{}",
    "no-generation": '{"format": 2, "dim": DIM, "deleted": [], "size": 1, "crc32": 1}',
    "generation-text": '{"format": 2, "dim": DIM, "generation": "1", "deleted": []}',
    "generation-negative": '{"format": 1, "dim": DIM, "generation": -1, "deleted": []}',
    "deleted-not-a-list": '{"format": 1, "dim": DIM, "generation": 1, "deleted": 7}',
    "deleted-bools": '{"format": 1, "dim": DIM, "generation": 1, "deleted": [true]}',
    "crc-text": '{"format": 2, "dim": DIM, "generation": 1, "deleted": [], "size": 9, '
    '"crc32": "x"}',
    "size-float": '{"format": 2, "dim": DIM, "generation": 1, "deleted": [], "size": 1.5, '
    '"crc32": 1}',
    "previous-a-list": '{"format": 2, "dim": DIM, "generation": 1, "deleted": [], "size": 1, '
    '"crc32": 1, "previous": [1]}',
    "deep": "[" * 100_000 + "]" * 100_000,
    "not-utf8": b"\xff\xfe{}".decode("latin-1"),
}


@pytest.mark.parametrize("shape", list(SIDECAR_SHAPES))
def test_any_sidecar_shape_rebuilds_the_index_from_the_catalog(
    encoder, isolated_dirs, shape
) -> None:
    folder, ids = saved_library(encoder, isolated_dirs)
    text = SIDECAR_SHAPES[shape].replace("DIM", str(encoder.dim))
    sidecar_path(folder / "vectors.hnsw").write_bytes(text.encode("latin-1"))

    for _ in range(2):  # and not "forever": the rebuilt index and sidecar are good again
        with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
            assert library.index.live_ids() == set(ids)
            assert_agrees(library)
    assert not library.repair.changed


def header_field(path: Path, offset: int, fmt: str, value) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


# Offsets in hnswlib's header: offsetLevel0 0, max_elements 8, cur_element_count 16,
# size_data_per_element 24, label_offset 32, offsetData 40, maxlevel 48, enterpoint 52, maxM 56.
INDEX_DAMAGE = {
    "offset-level0": lambda p: header_field(p, 0, "<Q", 1 << 40),
    "huge-count": lambda p: header_field(p, 16, "<Q", 1 << 60),
    "huge-record": lambda p: header_field(p, 24, "<Q", 1 << 50),
    "entry-point": lambda p: header_field(p, 52, "<I", 10**9),
    "max-level": lambda p: header_field(p, 48, "<i", 200),
    "neighbour-id": lambda p: header_field(p, 96 + 4, "<I", 10**8),
    "neighbour-count": lambda p: header_field(p, 96, "<H", 65535),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-7]),
    "appended": lambda p: p.write_bytes(p.read_bytes() + b"\0" * 8),
    "garbage": lambda p: p.write_bytes(np.random.default_rng(3).bytes(p.stat().st_size)),
}


@pytest.mark.parametrize("damage", list(INDEX_DAMAGE))
def test_format_1_sidecar_beside_a_damaged_index_is_rebuilt_not_loaded(
    encoder, isolated_dirs, damage
) -> None:
    """Format 1 has no checksum: this was a segfault on every command."""
    folder, ids = saved_library(encoder, isolated_dirs, count=300)
    index_path = folder / "vectors.hnsw"
    old = {"format": 1, "dim": encoder.dim, "generation": 1, "deleted": []}
    sidecar_path(index_path).write_text(json.dumps(old), encoding="utf-8")
    INDEX_DAMAGE[damage](index_path)
    with pytest.raises(ValueError):
        VectorIndex.load(index_path, encoder.dim)

    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        assert library.repair.rebuilt and str(index_path) in library.warnings[0]
        assert_agrees(library)
        labels, _ = library.index.query(library.catalog.vectors()[1][:5], k=1)
        assert labels[:, 0].tolist() == ids[:5]


def test_an_intact_format_1_index_still_loads_with_its_own_deleted_marks(
    encoder, isolated_dirs
) -> None:
    folder, ids = saved_library(encoder, isolated_dirs)
    index_path = folder / "vectors.hnsw"
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        library.remove_ids(ids[:3])
        library.save_index()
    old = {"format": 1, "dim": encoder.dim, "generation": 1, "deleted": []}
    sidecar_path(index_path).write_text(json.dumps(old), encoding="utf-8")
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        assert not library.repair.rebuilt
        assert library.index.live_ids() == set(ids[3:])
        assert_agrees(library)


def test_fuzzed_index_files_load_checked_or_are_refused_never_crash(tmp_path: Path) -> None:
    """Format 1 (no checksum): the structure check alone stands between hnswlib and a damaged
    file. Whatever loads must answer queries and take updates without crashing."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    index = VectorIndex(16, capacity=256, m=8)
    index.add(np.arange(400), vectors)
    index.remove(range(0, 400, 9))
    pristine = tmp_path / "pristine.hnsw"
    index.save(pristine, generation=1)
    original = pristine.read_bytes()
    loaded = refused = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        data = bytearray(original)
        # Half the seeds aim at the header and the graph's bookkeeping, half anywhere.
        span = 96 + 400 * 4 if seed % 2 else len(data)
        for offset in rng.integers(0, span, int(rng.integers(1, 5))):
            data[int(offset)] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"fuzz-{seed}.hnsw"
        path.write_bytes(bytes(data))
        sidecar = {"format": 1, "dim": 16, "generation": 1, "deleted": []}
        sidecar_path(path).write_text(json.dumps(sidecar), encoding="utf-8")
        try:
            candidate, _ = VectorIndex.load(path, 16)
        except (ValueError, RuntimeError, OSError):
            refused += 1
            continue
        loaded += 1
        candidate.query(vectors[:20], k=15)
        candidate.remove([1, 2, 3])
        candidate.add([1, 500], vectors[:2])
        candidate.query(vectors[20:40], k=50)
    assert loaded + refused == 60 and refused > 0


def test_a_huge_capacity_in_the_header_is_not_allocated(tmp_path: Path) -> None:
    index = VectorIndex(16, capacity=64)
    index.add(np.arange(10), np.random.default_rng(0).normal(size=(10, 16)))
    path = tmp_path / "vectors.hnsw"
    index.save(path, generation=1)
    header_field(path, 8, "<Q", 1 << 60)  # max_elements: hnswlib would malloc that much
    sidecar = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    sidecar.update(format=1, crc32=None, size=None)
    sidecar_path(path).write_text(json.dumps(sidecar), encoding="utf-8")

    loaded, _ = VectorIndex.load(path, 16)
    assert len(loaded) == 10 and loaded.capacity < 2048


def test_inspect_hnsw_reads_what_hnswlib_wrote(tmp_path: Path) -> None:
    index = VectorIndex(16, capacity=32)
    index.add(np.arange(500, 800), np.random.default_rng(1).normal(size=(300, 16)))
    index.remove([500, 501])
    path = tmp_path / "vectors.hnsw"
    index.save(path, generation=1)
    layout = inspect_hnsw(path.read_bytes(), 16)
    assert layout.count == 300 and sorted(layout.labels.tolist()) == list(range(500, 800))
    assert layout.deleted_labels == {500, 501}
    with pytest.raises(ValueError, match="dim"):
        inspect_hnsw(path.read_bytes(), 17)


# FIFOs and devices where library files belong ---------------------------------------------------


def make_fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def link_to_dev_zero(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


HOSTILE = {"fifo": make_fifo, "dev-zero": link_to_dev_zero}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("name", ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"])
def test_a_catalog_file_that_is_not_regular_is_refused_naming_it(
    encoder, isolated_dirs, name, kind
) -> None:
    folder, _ = saved_library(encoder, isolated_dirs)
    HOSTILE[kind](folder / name)
    for read_only in (False, True):
        with pytest.raises(NotRegularFile, match=str(folder / name)) as error:
            Library(isolated_dirs, encoder.model_id, encoder.dim, read_only=read_only)
        assert "Move it out of the library folder" in str(error.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("name", ["vectors.hnsw", "vectors.hnsw.json"])
def test_an_index_file_that_is_not_regular_is_rebuilt(encoder, isolated_dirs, name, kind) -> None:
    folder, ids = saved_library(encoder, isolated_dirs)
    HOSTILE[kind](folder / name)
    with Library(isolated_dirs, encoder.model_id, encoder.dim, read_only=True) as reader:
        assert reader.index.live_ids() == set(ids)  # rebuilt in memory
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        assert library.repair.rebuilt and library.index.live_ids() == set(ids)
    for path in (folder / "vectors.hnsw", sidecar_path(folder / "vectors.hnsw")):
        assert stat.S_ISREG(os.lstat(path).st_mode)  # the writer put good files back


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_lock_file_that_is_not_regular_is_refused_naming_it(encoder, isolated_dirs, kind) -> None:
    folder, ids = saved_library(encoder, isolated_dirs)
    HOSTILE[kind](folder / "library.lock")
    with pytest.raises(NotRegularFile, match=str(folder / "library.lock")):
        Library(isolated_dirs, encoder.model_id, encoder.dim)
    with Library(isolated_dirs, encoder.model_id, encoder.dim, read_only=True) as reader:
        assert reader.catalog.count() == len(ids)  # readers take no lock


# Permissions ------------------------------------------------------------------------------------


def test_under_umask_000_every_library_file_is_owner_only(
    encoder, isolated_dirs, make_images
) -> None:
    previous = os.umask(0)
    try:
        paths = make_images(6)
        library = Library(isolated_dirs, encoder.model_id, encoder.dim)
        try:
            Indexer(library, encoder, batch_size=2).index([paths[0].parent])
            backup = library.catalog.backup("test")
            files = {p.name: p for p in library.folder.iterdir()}
            assert {"catalog.sqlite-wal", "catalog.sqlite-shm"} <= set(files)  # open: checked
            assert backup.name in files
            owner_only = {name: stat.S_IMODE(p.stat().st_mode) for name, p in files.items()}
            assert all(mode & 0o077 == 0 for mode in owner_only.values()), owner_only
        finally:
            library.close()
        for folder in (isolated_dirs, isolated_dirs / "libraries", library.folder):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        os.umask(previous)


def test_an_older_world_readable_catalog_is_made_owner_only(encoder, isolated_dirs) -> None:
    folder, _ = saved_library(encoder, isolated_dirs)
    os.chmod(folder / "catalog.sqlite", 0o644)
    Library(isolated_dirs, encoder.model_id, encoder.dim).close()
    assert stat.S_IMODE((folder / "catalog.sqlite").stat().st_mode) == 0o600


# Read-only and non-UTF-8 data folders -----------------------------------------------------------


@pytest.fixture
def read_only_view(tmp_path: Path):
    """read_only_view(folder) -> the same folder, but not writable: a read-only bind mount
    when running as root (root writes through permissions), else chmod."""
    undo = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            for path in [folder, *folder.rglob("*")]:
                if path.is_dir():
                    path.chmod(0o555)
                    undo.append(lambda p=path: p.chmod(0o755))
            return folder
        view = tmp_path / "read-only-view"
        view.mkdir()
        steps = [["mount", "--bind", str(folder), str(view)],
                 ["mount", "-o", "remount,ro,bind", str(view)]]  # fmt: skip
        for step in steps:
            if subprocess.run(step, capture_output=True).returncode != 0:
                subprocess.run(["umount", str(view)], capture_output=True)
                pytest.skip("cannot make a read-only folder here (root without mount)")
        undo.append(lambda: subprocess.run(["umount", str(view)], check=True))
        return view

    yield make
    for step in reversed(undo):
        step()


def test_search_works_in_a_read_only_data_folder(
    encoder, isolated_dirs, make_images, read_only_view
) -> None:
    paths = make_images(8)
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        Indexer(library, encoder).index([paths[0].parent])
    view = read_only_view(isolated_dirs)
    with pytest.raises(OSError):
        (view / "probe").write_bytes(b"")

    with Library(view, encoder.model_id, encoder.dim, read_only=True) as reader:
        assert not reader.repair.rebuilt and reader.warnings == []
        hits = Searcher(reader, encoder).search("dog", top_k=3)  # text cache: skipped quietly
        assert len(hits.paths) > 0 and set(hits.paths) <= {str(p) for p in paths}
    with pytest.raises(GalleryError, match="Indexing needs a data folder you may write to"):
        Library(view, encoder.model_id, encoder.dim)


def test_a_data_folder_whose_name_is_not_utf8_indexes_and_searches(
    encoder, tmp_path, make_images
) -> None:
    data = tmp_path / os.fsdecode(b"caf\xe9-\xff")  # Latin-1 bytes: not valid UTF-8
    paths = make_images(6)
    with Library(data, encoder.model_id, encoder.dim) as library:
        report = Indexer(library, encoder).index([paths[0].parent])
        assert report.indexed == 6 and not report.failed
    with Library(data, encoder.model_id, encoder.dim) as again:
        assert not again.repair.changed  # the saved index was found and loaded
    with Library(data, encoder.model_id, encoder.dim, read_only=True) as reader:
        hits = Searcher(reader, encoder).search("dog", top_k=None)  # every photo
        assert set(hits.paths) == {str(p) for p in paths}


def test_a_reader_with_nothing_indexed_yet_sees_an_empty_library_and_creates_nothing(
    encoder, isolated_dirs
) -> None:
    with Library(isolated_dirs, encoder.model_id, encoder.dim, read_only=True) as reader:
        assert reader.catalog.count() == 0
        assert Searcher(reader, encoder).search("dog").paths == ()
    assert not isolated_dirs.exists()


# Damage SQLite cannot see -----------------------------------------------------------------------


def test_a_vector_of_the_wrong_length_is_damage_naming_the_file(encoder, isolated_dirs) -> None:
    folder, ids = saved_library(encoder, isolated_dirs)
    path = folder / "catalog.sqlite"
    db = sqlite3.connect(path)
    db.execute("UPDATE images SET vector = x'00112233' WHERE id = ?", (ids[4],))
    db.commit()
    db.close()
    (folder / "vectors.hnsw").unlink()  # so that opening reads every vector
    before = path.read_bytes()
    for read_only in (True, False):
        with pytest.raises(CorruptCatalog, match="damaged") as error:
            Library(isolated_dirs, encoder.model_id, encoder.dim, read_only=read_only)
        assert str(path) in str(error.value) and "rebuild" in str(error.value)
    assert path.read_bytes() == before


def test_once_damage_is_seen_nothing_more_is_written(library) -> None:
    ids = filled_library(library)
    library.catalog.db.execute("UPDATE images SET vector = x'00' WHERE id = ?", (ids[0],))
    with pytest.raises(CorruptCatalog):
        library.catalog.vectors()
    with pytest.raises(CorruptCatalog):
        library.catalog.add_folder("/more")
    assert [f.path for f in library.catalog.folders()] == ["/photos"]


def fuzz_page(path: Path, seed: int) -> None:
    """Overwrite a stretch of one page (SQLite has no checksums to notice)."""
    rng = np.random.default_rng(seed)
    data = bytearray(path.read_bytes())
    page_size = struct.unpack(">H", data[16:18])[0] or 65536
    page = int(rng.integers(1, len(data) // page_size))  # page 0 is the header: tested above
    length = int(rng.integers(1, 64))
    start = page * page_size + int(rng.integers(0, page_size - length))
    if seed % 2:
        data[start : start + length] = rng.bytes(length)
    else:  # flip single bits, the way a bad sector or a cosmic ray does
        for offset in rng.integers(0, page_size, 8):
            data[page * page_size + int(offset)] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(data))


FUZZ_SEEDS = range(30)


def test_fuzzed_catalog_pages_give_right_answers_or_the_damaged_error(
    encoder, tmp_path, make_images
) -> None:
    paths = make_images(30)
    pristine = tmp_path / "pristine"
    with Library(pristine, encoder.model_id, encoder.dim) as library:
        Indexer(library, encoder, batch_size=4).index([paths[0].parent])
        (paths[0].parent / "broken.jpg").write_bytes(b"not a photo")
        Indexer(library, encoder, batch_size=4).index([paths[0].parent])
        Searcher(library, encoder).search("a dog on the beach")  # fills the text cache
        folder = library.folder.relative_to(pristine)
    known = {str(p) for p in paths}
    outcomes = {"results": 0, "damaged": 0, "mismatch": 0}
    altered = 0
    for seed in FUZZ_SEEDS:
        data = tmp_path / f"fuzz-{seed}"
        shutil.copytree(pristine, data)
        catalog = data / folder / "catalog.sqlite"
        fuzz_page(catalog, seed)
        try:
            for read_only in (True, False):
                with Library(data, encoder.model_id, encoder.dim, read_only=read_only) as lib:
                    hits = Searcher(lib, encoder).search("dog", top_k=10)
                    # Well-formed; a flipped bit inside a path or a float is a value SQLite
                    # cannot tell from a real one (it has no checksums), so no exact check.
                    assert all(isinstance(p, str) for p in hits.paths)
                    assert np.isfinite(hits.raw).all() and (np.abs(hits.raw) <= 1.001).all()
                    altered += not set(hits.paths) <= known
                    assert all(isinstance(i.path, str) for i in lib.catalog.browse())
                    lib.catalog.failures()
                    lib.catalog.folders()
                    if not read_only:
                        Indexer(lib, encoder, batch_size=4).index([paths[0].parent])
                        assert integrity(catalog)  # whatever it says, it still reads
            outcomes["results"] += 1
        except CorruptCatalog as exc:
            assert str(catalog) in str(exc) and "damaged" in str(exc), exc
            outcomes["damaged"] += 1
        except LibraryMismatch as exc:  # the model id or dim itself was hit
            assert str(data) in str(exc)
            outcomes["mismatch"] += 1
    assert sum(outcomes.values()) == len(FUZZ_SEEDS)
    assert outcomes["damaged"] > 0  # the fuzzing did reach data that matters
    print(f"fuzzed catalogs: {outcomes}, searches with an altered path: {altered}")


def test_disk_helpers_tell_full_from_other_errors(tmp_path: Path) -> None:
    assert fileio.is_out_of_space(OSError(errno.ENOSPC, "full"))
    assert not fileio.is_out_of_space(OSError(errno.EIO, "I/O"))
    message = str(fileio.disk_full(tmp_path, "the catalog could not grow"))
    assert message.startswith(f"disk full at {tmp_path}") and "Free some space" in message
