"""Incremental indexing: touch, delete, add; failures recorded; cancel; resume after a crash."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
from photos import random_photo
from PIL import Image

from gallery_app.core.errors import GalleryError
from gallery_app.core.indexer import CancelToken, Indexer, Progress
from gallery_app.core.library import Library

pytestmark = pytest.mark.usefixtures("library_backend")


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


# Hostile stat values, removal only when provably gone, own folders, replaced files --------


def test_far_future_mtime_fails_that_file_alone_naming_it(library, encoder, make_images):
    paths = make_images(4)
    Indexer(library, encoder).index([paths[0].parent])
    future = make_images(1, start=50)[0]
    try:
        os.utime(future, (2**40, 2**40))  # year ~36812; ext4 clamps to 2446
        os.utime(paths[1], (2**40, 2**40))  # an indexed photo whose date breaks
    except (OSError, OverflowError):
        pytest.skip("this filesystem refuses such dates")
    if os.stat(future).st_mtime_ns <= 2**63 - 1:
        pytest.skip("this filesystem clamps dates before 2262")

    report = Indexer(library, encoder).index([paths[0].parent])

    failed = {f.path: f.reason for f in report.failed}
    assert set(failed) == {str(future), str(paths[1])}
    assert all("modification time is out of range (year" in r for r in failed.values())
    assert "`touch` it" in failed[str(future)]
    assert (report.indexed, report.unchanged, report.removed) == (0, 3, 0)
    assert searchable_paths(library) == {str(p) for p in paths}  # the broken one is kept


def test_a_value_the_catalog_cannot_store_fails_that_file_alone(
    library, encoder, make_images, monkeypatch
):
    from gallery_app.core import indexer as indexer_module

    paths = make_images(5)
    real_decode = indexer_module.decode

    def absurd_width(path, *args, **kwargs):
        decoded = real_decode(path, *args, **kwargs)
        if str(path) == str(paths[2]):
            decoded.width = 2**70  # no SQLite INTEGER holds it
        return decoded

    monkeypatch.setattr(indexer_module, "decode", absurd_width)
    report = Indexer(library, encoder, batch_size=4).index([paths[0].parent])
    assert [(f.path, f.reason.split(" (")[0]) for f in report.failed] == [
        (str(paths[2]), "cannot be stored in the catalog")
    ]
    assert report.indexed == 4
    assert searchable_paths(library) == {str(p) for i, p in enumerate(paths) if i != 2}


def test_an_emptied_subfolder_keeps_its_photos_until_it_is_deleted(library, encoder, make_images):
    kept = make_images(2, folder="root/home")
    drive = make_images(3, folder="root/usb", start=10)
    root = kept[0].parent.parent
    Indexer(library, encoder).index([root])
    mount_point = drive[0].parent
    unplugged = root.parent / "unplugged"
    mount_point.rename(unplugged)
    mount_point.mkdir()  # the bare mount point of an unplugged drive lists as empty

    report = Indexer(library, encoder).index([root])
    assert report.removed == 0
    assert [f.path for f in report.failed] == [str(mount_point)]
    assert "empty now" in report.failed[0].reason
    assert "3 indexed photos were kept" in report.failed[0].reason
    assert "Delete the empty folder" in report.failed[0].reason
    assert searchable_paths(library) == {str(p) for p in kept + drive}

    mount_point.rmdir()  # deleted for real: its photos are provably gone
    gone = Indexer(library, encoder).index([root])
    assert (gone.removed, gone.failed) == (3, [])
    assert searchable_paths(library) == {str(p) for p in kept}


def test_photos_behind_a_link_to_an_unplugged_drive_are_kept(library, encoder, make_images):
    home = make_images(1, folder="root")
    trip = make_images(2, folder="root/trip", start=10)
    root = home[0].parent
    Indexer(library, encoder).index([root])
    # Moved to an external drive and linked back; then the drive is unplugged.
    drive = root.parent / "drive"
    drive.mkdir()
    trip[0].parent.rename(drive / "trip")
    trip[0].parent.symlink_to(drive / "trip")
    linked_file = root / "linked.png"
    make_images(1, folder="drive", start=20)[0].rename(drive / "linked.png")
    linked_file.symlink_to(drive / "linked.png")
    first = Indexer(library, encoder).index([root])
    assert (first.indexed, first.removed, first.failed) == (1, 0, [])  # link alive: quiet
    shutil.rmtree(drive)

    report = Indexer(library, encoder).index([root])
    failed = {f.path: f.reason for f in report.failed}
    assert report.removed == 0
    assert set(failed) == {str(trip[0].parent), str(linked_file)}
    assert "broken symbolic link" in failed[str(trip[0].parent)]
    assert "2 indexed photos were kept" in failed[str(trip[0].parent)]
    assert "broken symbolic link" in failed[str(linked_file)]
    assert searchable_paths(library) == {str(p) for p in home + trip} | {str(linked_file)}


@pytest.mark.parametrize("error", [13, 5], ids=["EACCES", "EIO"])
def test_photos_that_list_but_cannot_be_stated_are_kept(
    library, encoder, make_images, monkeypatch, error
):
    from gallery_app.core import scan as scan_module

    paths = make_images(4, folder="root/sub")
    make_images(1, folder="root", start=90)
    root = paths[0].parent.parent
    Indexer(library, encoder).index([root])
    real_stat, real_lstat = os.stat, os.lstat
    troubled = {str(paths[1]), str(paths[0].parent)}

    def failing(real):
        def stat(path, *args, **kwargs):
            if os.fspath(path) in troubled:
                raise OSError(error, os.strerror(error), os.fspath(path))
            return real(path, *args, **kwargs)

        return stat

    monkeypatch.setattr(scan_module.os, "stat", failing(real_stat))
    report = Indexer(library, encoder).index([root])
    assert [f.path for f in report.failed] == [str(paths[1])]
    assert os.strerror(error) in report.failed[0].reason
    assert (report.removed, report.unchanged) == (0, 4)

    # A folder that cannot be listed, or whose entry cannot be looked at: kept too.
    shutil.rmtree(paths[0].parent)
    monkeypatch.setattr(scan_module.os, "lstat", failing(real_lstat))
    report = Indexer(library, encoder).index([root])
    assert report.removed == 0
    assert [f.path for f in report.failed] == [str(paths[0].parent)]
    assert "4 indexed photos were kept" in report.failed[0].reason
    assert len(searchable_paths(library)) == 5
    monkeypatch.setattr(scan_module.os, "lstat", real_lstat)
    assert Indexer(library, encoder).index([root]).removed == 4  # really gone


def test_the_data_and_config_folders_are_never_indexed(encoder, make_images, tmp_path, monkeypatch):
    photos = make_images(3, folder="photos")
    root = photos[0].parent
    data, config = root / "gallery-data", root / "settings"
    monkeypatch.setenv("GALLERY_APP_CONFIG_DIR", str(config))
    config.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(config / "icon.png")
    with Library(data, encoder.model_id, encoder.dim) as library:
        first = Indexer(library, encoder).index([root])
        assert list(data.glob("thumbnails/*/*.jpg"))  # thumbnails now lie inside the folder
        again = Indexer(library, encoder).index([root])
        assert (first.indexed, again.indexed, again.unchanged) == (3, 0, 3)
        assert searchable_paths(library) == {str(p) for p in photos}
        own = Indexer(library, encoder).index([data / "thumbnails"])
        assert [f.path for f in own.failed] == [str((data / "thumbnails").resolve())]
        assert "own data or settings folder" in own.failed[0].reason


def same_size_bmps(tmp_path, seeds=(1, 2)):
    images = []
    for seed in seeds:
        path = tmp_path / f"source_{seed}.bmp"
        Image.fromarray(random_photo(seed, (64, 48))).save(path)
        images.append(path)
    assert len({p.stat().st_size for p in images}) == 1
    return images


@pytest.mark.parametrize("how", ["in-place", "renamed-over"])
def test_a_file_replaced_with_the_same_size_and_mtime_is_encoded_again(
    library, encoder, tmp_path, how
):
    a, b = same_size_bmps(tmp_path)
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = folder / "photo.bmp"
    shutil.copy(a, photo)
    Indexer(library, encoder).index([folder])
    before = photo.stat()
    if how == "in-place":
        photo.write_bytes(b.read_bytes())
    else:
        shutil.copy(b, folder / "incoming.tmp")
        os.replace(folder / "incoming.tmp", photo)
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (photo.stat().st_size, photo.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    report = Indexer(library, encoder).index([folder])
    assert (report.indexed, report.unchanged) == (1, 0)
    [vector] = library.index.get_vectors(library.index.live_ids())
    with Image.open(b) as img:
        [expected] = encoder.encode_images([img.convert("RGB")])
    assert float(vector @ expected) > 0.999


def test_a_touched_but_identical_file_is_not_encoded_again(
    library, encoder, make_images, monkeypatch
):
    from gallery_app.core import indexer as indexer_module

    paths = make_images(3)
    folder = paths[0].parent
    Indexer(library, encoder).index([folder])
    paths[0].chmod(0o600)  # ctime moves, content and mtime do not
    copy = folder / "copy.tmp"
    shutil.copy2(paths[1], copy)  # a backup tool restoring the same bytes: a new inode
    os.replace(copy, paths[1])
    reads = []
    real = indexer_module.file_fingerprint
    monkeypatch.setattr(indexer_module, "file_fingerprint", lambda p: reads.append(p) or real(p))

    report = Indexer(library, encoder).index([folder])
    assert (report.indexed, report.unchanged) == (0, 3)
    assert sorted(reads) == sorted([str(paths[0]), str(paths[1])])  # the ends were compared
    again = Indexer(library, encoder).index([folder])
    assert (again.indexed, again.unchanged) == (0, 3)
    assert len(reads) == 2  # restamped: no second look


@pytest.mark.sqlite_only
def test_rows_from_before_schema_3_are_trusted_and_stamped(library, encoder, make_images):
    paths = make_images(3)
    folder = paths[0].parent
    Indexer(library, encoder).index([folder])
    library.catalog.db.execute("UPDATE images SET ctime_ns = NULL, inode = NULL")
    report = Indexer(library, encoder).index([folder])
    assert (report.indexed, report.unchanged) == (0, 3)  # no re-encoding after an upgrade
    stamped = library.catalog.db.execute(
        "SELECT COUNT(*) FROM images WHERE ctime_ns IS NOT NULL AND inode IS NOT NULL"
    ).fetchone()
    assert stamped == (3,)
