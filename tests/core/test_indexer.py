"""Incremental indexing: touch, delete, add; failures recorded; cancel; resume after a crash."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest

from gallery_app.core.errors import GalleryError
from gallery_app.core.indexer import CancelToken, Indexer, Progress
from gallery_app.core.library import Library


class FlakyEncoder:
    """Delegates to the real encoder but dies after a number of batches (a simulated crash)."""

    def __init__(self, inner, fail_after_batches: int) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.image_spec = inner.image_spec
        self.batches = 0
        self.fail_after = fail_after_batches

    def encode_pixels(self, pixels):
        if self.batches >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.batches += 1
        return self.inner.encode_pixels(pixels)


def searchable_paths(library) -> set[str]:
    ids = library.index.live_ids()
    return {info.path for info in library.catalog.images(ids).values()}


def test_first_run_indexes_everything(library, encoder, make_images):
    paths = make_images(10)
    (paths[0].parent / "notes.txt").write_text("not an image")
    seen: list[Progress] = []
    report = Indexer(library, encoder, batch_size=4).index([paths[0].parent], progress=seen.append)
    assert (report.indexed, report.unchanged, report.removed, report.total) == (10, 0, 0, 10)
    assert report.failed == []
    assert searchable_paths(library) == {str(p) for p in paths}
    assert [p.done for p in seen] == [0, 4, 8, 10]
    assert all(p.total == 10 for p in seen)
    assert seen[-1].rate > 0
    assert len(library.index) == library.catalog.count() == 10


def test_incremental_touch_delete_add(library, encoder, make_images):
    paths = make_images(6)
    folder = paths[0].parent
    Indexer(library, encoder).index([folder])

    stat = paths[1].stat()
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    paths[2].unlink()  # deleted
    new = make_images(2, start=100)  # added
    report = Indexer(library, encoder).index([folder])
    assert (report.indexed, report.unchanged, report.removed) == (3, 4, 1)
    assert searchable_paths(library) == {str(p) for p in paths if p != paths[2]} | {
        str(p) for p in new
    }

    again = Indexer(library, encoder).index([folder])
    assert (again.indexed, again.unchanged, again.removed) == (0, 7, 0)


def test_a_folder_that_lists_as_empty_keeps_its_photos(library, encoder, make_images):
    """An unplugged drive's mount point lists as empty: that must not wipe its photos."""
    paths = make_images(3)
    folder = paths[0].parent
    Indexer(library, encoder).index([folder])
    moved = folder.parent / "elsewhere"
    folder.rename(moved)
    folder.mkdir()  # the bare mount point

    report = Indexer(library, encoder).index([folder])
    assert report.removed == 0
    assert [f.path for f in report.failed] == [str(folder)]
    assert "empty now" in report.failed[0].reason and "3 indexed photos" in report.failed[0].reason
    assert searchable_paths(library) == {str(p) for p in paths}

    folder.rmdir()
    moved.rename(folder)  # plugged in again: nothing to redo
    back = Indexer(library, encoder).index([folder])
    assert (back.indexed, back.unchanged, back.removed, back.failed) == (0, 3, 0, [])


def test_changed_content_gets_new_vector(library, encoder, make_images):
    paths = make_images(2)
    Indexer(library, encoder).index([paths[0].parent])
    [old_id] = [
        i
        for i, info in library.catalog.images(library.index.live_ids()).items()
        if info.path == str(paths[0])
    ]
    before = library.index.get_vectors([old_id])
    shutil.copy(paths[1], paths[0])  # same name, other picture
    Indexer(library, encoder).index([paths[0].parent])
    after = library.index.get_vectors([old_id])
    assert float(before[0] @ after[0]) < 0.9999
    np.testing.assert_allclose(after, library.index.get_vectors([old_id + 1]), atol=1e-5)


def test_broken_files_are_reported_and_do_not_abort(library, encoder, make_images):
    paths = make_images(5)
    folder = paths[0].parent
    (folder / "garbage.jpg").write_bytes(os.urandom(300))
    good = paths[3].read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 3])
    report = Indexer(library, encoder, batch_size=2).index([folder])
    assert report.indexed == 5
    failed = {f.path: f.reason for f in report.failed}
    assert set(failed) == {str(folder / "garbage.jpg"), str(folder / "truncated.png")}
    assert all(reason for reason in failed.values())
    assert dict(library.catalog.failures()).keys() == failed.keys()
    # failed files are retried (and still fail) but never counted as indexed
    again = Indexer(library, encoder).index([folder])
    assert again.indexed == 0 and len(again.failed) == 2 and again.unchanged == 5


def test_file_that_breaks_leaves_the_index(library, encoder, make_images):
    paths = make_images(3)
    Indexer(library, encoder).index([paths[0].parent])
    paths[0].write_bytes(b"now broken")
    report = Indexer(library, encoder).index([paths[0].parent])
    assert [f.path for f in report.failed] == [str(paths[0])]
    assert str(paths[0]) not in searchable_paths(library)


def test_cancel_stops_between_batches(library, encoder, make_images):
    paths = make_images(12)
    token = CancelToken()

    def cancel_after_first_batch(progress: Progress) -> None:
        if progress.done >= 3:
            token.cancel()

    report = Indexer(library, encoder, batch_size=3).index(
        [paths[0].parent], progress=cancel_after_first_batch, cancel=token
    )
    assert report.cancelled
    assert report.indexed == 3
    assert len(searchable_paths(library)) == 3
    rest = Indexer(library, encoder, batch_size=3).index([paths[0].parent])
    assert (rest.indexed, rest.unchanged) == (9, 3)


def test_crash_mid_run_resumes_where_it_stopped(encoder, make_images, isolated_dirs):
    paths = make_images(10)
    library = Library(isolated_dirs, encoder.model_id, encoder.dim)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Indexer(library, FlakyEncoder(encoder, 2), batch_size=3).index([paths[0].parent])
    library.close()

    reopened = Library(isolated_dirs, encoder.model_id, encoder.dim)
    assert len(reopened.index) == reopened.catalog.count() == 6  # two committed batches
    resumed = Indexer(reopened, encoder, batch_size=3).index([paths[0].parent])
    assert (resumed.indexed, resumed.unchanged) == (4, 6)
    assert searchable_paths(reopened) == {str(p) for p in paths}
    reopened.close()


def test_nested_and_missing_folders(library, encoder, make_images, tmp_path):
    outer = make_images(2, folder="outer")
    inner = make_images(2, folder="outer/inner", start=50)
    hidden = make_images(1, folder="outer/.cache", start=90)
    report = Indexer(library, encoder).index([outer[0].parent])
    assert report.indexed == 4
    assert str(hidden[0]) not in searchable_paths(library)
    # indexing the subfolder again is covered by the outer folder: nothing new
    sub = Indexer(library, encoder).index([inner[0].parent])
    assert (sub.indexed, sub.unchanged, sub.removed) == (0, 2, 0)
    assert [f.path for f in library.catalog.folders()] == [str(outer[0].parent)]

    with pytest.raises(GalleryError, match="does not exist"):
        Indexer(library, encoder).index([tmp_path / "nope"])
    with pytest.raises(GalleryError, match="not a folder"):
        Indexer(library, encoder).index([outer[0]])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_decode_threads_run_at_a_lower_priority_than_the_model() -> None:
    import threading

    from gallery_app.core.indexer import DECODE_NICENESS, _lower_thread_priority

    seen: list[int] = []

    def worker() -> None:
        _lower_thread_priority(DECODE_NICENESS)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [min(main + DECODE_NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # only that thread
