"""Messy folders: every bad file is indexed or reported with a reason; the run always completes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus import EITHER, FAILED, INDEXED, animated, make_messy_folder

from gallery_app.core import indexer as indexer_module
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library


def searchable(library: Library) -> dict[str, int]:
    infos = library.catalog.images(library.index.live_ids())
    return {info.path: image_id for image_id, info in infos.items()}


def test_every_bad_file_is_indexed_or_reported_and_good_files_are_unaffected(
    library, encoder, make_images, tmp_path
):
    folder = tmp_path / "messy"
    expected = make_messy_folder(folder)
    good = make_images(6, folder="messy/good")
    inside = str(folder / "album.jpg" / "inside.png")

    report = Indexer(library, encoder, batch_size=4).index([folder])

    found = searchable(library)
    failed = {f.path: f.reason for f in report.failed}
    for path, expectation in expected.items():
        name = repr(os.path.basename(path))
        assert (path in found) != (path in failed), f"{name}: must be indexed xor failed"
        if expectation == INDEXED:
            assert path in found, f"{name}: {failed.get(path)}"
        elif expectation == FAILED:
            assert failed.get(path, "").strip(), f"{name} must be reported with a reason"
        else:
            assert expectation == EITHER
    assert set(found) == {str(p) for p in good} | {inside} | {
        p for p, e in expected.items() if p in found
    }
    assert report.total == len(expected) + len(good) + 1
    assert report.indexed + len(report.failed) == report.total
    # What the GUI lists: failures persist in the catalog with their reasons.
    stored = dict(library.catalog.failures())
    assert set(stored) == {p for p in failed if os.path.isfile(p)}  # links, pipes: scan only
    # Good files got the same vector they get alone: no cross-talk inside a batch.
    alone = encoder.encode_images([photo_of(good[0])])
    np.testing.assert_allclose(library.index.get_vectors([found[str(good[0])]]), alone, atol=1e-5)


def photo_of(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def test_rerun_over_a_messy_folder_changes_nothing(library, encoder, tmp_path):
    folder = tmp_path / "messy"
    make_messy_folder(folder)
    first = Indexer(library, encoder).index([folder])
    before = searchable(library)
    again = Indexer(library, encoder).index([folder])
    assert again.indexed == 0
    assert again.unchanged == first.indexed
    assert sorted(f.path for f in again.failed) == sorted(f.path for f in first.failed)
    assert searchable(library) == before


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_are_indexed_by_their_first_frame(library, encoder, tmp_path, fmt):
    folder = tmp_path / "anim"
    folder.mkdir()
    path = folder / f"anim.{fmt.lower()}"
    path.write_bytes(animated(fmt, (1, 2)))
    Indexer(library, encoder).index([folder])
    [vector] = library.index.get_vectors(searchable(library).values())

    from PIL import Image

    frames = []
    with Image.open(path) as img:
        assert getattr(img, "n_frames", 1) == 2
        for index in range(2):
            img.seek(index)
            frames.append(img.convert("RGB"))
    first, second = encoder.encode_images(frames)
    assert float(vector @ first) > 0.999
    assert float(vector @ first) > float(vector @ second)


def test_file_that_vanishes_or_changes_while_indexing(library, encoder, make_images):
    paths = make_images(8)
    vanishing, changing = str(paths[2]), str(paths[5])
    real_decode = indexer_module.decode

    def decode_with_trouble(path, *args, **kwargs):
        if str(path) == vanishing:
            os.remove(path)
        if str(path) == changing:
            shutil.copy(paths[0], path)  # a new picture lands while the old one is queued
            stat = os.stat(path)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        return real_decode(path, *args, **kwargs)

    indexer_module.decode = decode_with_trouble
    try:
        report = Indexer(library, encoder, batch_size=3).index([paths[0].parent])
    finally:
        indexer_module.decode = real_decode
    failed = {f.path: f.reason for f in report.failed}
    assert list(failed) == [vanishing]
    assert "disappeared" in failed[vanishing]
    assert report.indexed == 7

    # The next run forgets the vanished file and re-reads the changed one (its mtime moved).
    again = Indexer(library, encoder).index([paths[0].parent])
    assert (again.indexed, again.removed, again.failed) == (1, 1, [])
    found = searchable(library)
    assert vanishing not in found
    np.testing.assert_allclose(
        library.index.get_vectors([found[changing]]),
        library.index.get_vectors([found[str(paths[0])]]),
        atol=1e-5,
    )


def test_folder_that_vanishes_mid_run_and_unlistable_folder_lose_nothing(
    library, encoder, make_images, monkeypatch
):
    kept = make_images(3, folder="root/kept")
    doomed = make_images(3, folder="root/doomed", start=10)
    root = kept[0].parent.parent
    Indexer(library, encoder).index([root])
    assert len(searchable(library)) == 6

    # A subfolder that cannot be listed (permissions, a flaky network share) keeps its images.
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(doomed[0].parent):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = Indexer(library, encoder).index([root])
    monkeypatch.setattr(os, "scandir", real_scandir)
    assert [f.path for f in report.failed] == [str(doomed[0].parent)]
    assert "cannot list folder" in report.failed[0].reason
    assert report.removed == 0
    assert len(searchable(library)) == 6

    # A folder that really is gone is forgotten on the next run.
    shutil.rmtree(doomed[0].parent)
    new = make_images(2, folder="root/kept", start=20)
    real_decode = indexer_module.decode
    gone = kept[0].parent

    def decode_after_folder_vanished(path, *args, **kwargs):
        if gone.exists():
            shutil.rmtree(gone)  # the whole folder disappears while its files are queued
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(indexer_module, "decode", decode_after_folder_vanished)
    # One decode thread: with two, the other file may be opened before the folder is gone.
    report = Indexer(library, encoder, decode_workers=1).index([root])
    assert report.removed == 3
    assert sorted(f.path for f in report.failed) == sorted(str(p) for p in new)
    assert all("disappeared" in f.reason for f in report.failed)
    assert set(searchable(library)) == {str(p) for p in kept}


def test_unreadable_file_is_reported(library, encoder, make_images, monkeypatch):
    paths = make_images(3)
    locked = paths[1]
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads everything: make the open itself fail as it does for other users
        real_open = os.open

        def open_denied(file, *args, **kwargs):
            if os.fspath(file) == str(locked):
                raise PermissionError(13, "Permission denied", str(locked))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_denied)
    try:
        report = Indexer(library, encoder).index([paths[0].parent])
    finally:
        locked.chmod(0o644)
    assert [(f.path, f.reason) for f in report.failed] == [(str(locked), "permission denied")]
    assert report.indexed == 2


def test_cli_index_of_a_messy_folder_exits_0_and_lists_failures(tiny_model_dir, tmp_path):
    folder = tmp_path / "messy"
    expected = make_messy_folder(folder)
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    run = subprocess.run(
        [sys.executable, "-m", "gallery_app", *common, "index", str(folder)],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    out = run.stdout
    must_fail = [p for p, e in expected.items() if e == FAILED]
    for path in must_fail:
        assert os.fsencode(path) in out  # listed with its real bytes, whatever the name
    listed = [line for line in out.splitlines() if line.startswith(b"  failed: ")]
    assert len(listed) >= len(must_fail)
    as_json = subprocess.run(
        [sys.executable, "-m", "gallery_app", *common, "index", str(folder), "--json"],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert as_json.returncode == 0
    report = json.loads(as_json.stdout)
    assert report["indexed"] == 0 and report["unchanged"] > 0
    assert {f["path"] for f in report["failed"]} >= set(must_fail)
