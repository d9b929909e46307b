"""Messy folders: every bad file is indexed or reported with a reason; the run always completes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from corpus import (
    EITHER,
    ENDLESS_POSTSCRIPT,
    FAILED,
    INDEXED,
    animated,
    huge_transparent_png,
    make_messy_folder,
    photo,
)

from gallery_app.core import indexer as indexer_module
from gallery_app.core.decode_journal import CRASHED_REASON, JOURNAL_NAME, probe_decode
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library
from gallery_app.core.scan import scan

DECODE_CHILD = Path(__file__).with_name("decode_child.py")
# The corpus's 13000x13000 PNG trips Pillow's advisory warning; imaging silences it for the app
# (its own budget decides), but pytest resets warning filters for every test.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


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
    # What the GUI lists: every failed file persists in the catalog with its reason, those
    # the scan refused (links, pipes, dates) too.
    stored = dict(library.catalog.failures())
    refused_at_scan = {f.path for f in scan(str(folder)).failures}
    assert stored == failed
    assert {p for p in failed if not os.path.isfile(p)} <= refused_at_scan
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


def test_a_file_refused_at_scan_stays_listed_until_it_is_a_photo(library, encoder, tmp_path):
    folder = tmp_path / "pipes"
    folder.mkdir()
    pipe = folder / "pipe.jpg"
    os.mkfifo(pipe)
    Indexer(library, encoder).index([folder])
    assert [path for path, _ in library.catalog.failures()] == [str(pipe)]
    Indexer(library, encoder).index([folder])  # refused again: still one entry
    assert len(library.catalog.failures()) == 1

    pipe.unlink()
    photo(3).save(pipe, format="JPEG")
    report = Indexer(library, encoder).index([folder])
    assert report.indexed == 1 and library.catalog.failures() == []
    assert str(pipe) in searchable(library)


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


# A file that stops the process: reported on the next run, never a second stop ------------


def wait_for(condition, what: str, proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"child exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill_while_decoding(model: Path, data: Path, folder: Path, stuck: Path) -> None:
    """A real indexing process, SIGKILLed while its decoder is inside `stuck`."""
    marker = data.parent / "decoding-started"
    child = subprocess.Popen(
        [sys.executable, str(DECODE_CHILD), str(model), str(data), str(folder), str(stuck),
         str(marker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(marker.exists, "the decode of the chosen file", child)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL


def test_file_that_killed_the_run_is_skipped_and_reported_next_time(
    tiny_model_dir, encoder, make_images, isolated_dirs, monkeypatch
):
    paths = make_images(6)
    folder, stuck = paths[0].parent, paths[3]
    kill_while_decoding(tiny_model_dir, isolated_dirs, folder, stuck)
    probed: list[str] = []

    def probe(path: str) -> str | None:  # the child decode dies on this file, as it did
        probed.append(path)
        return CRASHED_REASON if path == str(stuck) else None

    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        journal = library.folder / JOURNAL_NAME
        assert json.loads(journal.read_text())["decoding"][0]["path"] == str(stuck)
        report = Indexer(library, encoder, crash_probe=probe).index([folder])
        assert probed == [str(stuck)]  # only what the dead run left in flight
        assert [(f.path, f.reason) for f in report.failed] == [(str(stuck), CRASHED_REASON)]
        assert "out of memory or a decoder crash" in CRASHED_REASON
        assert report.indexed + report.unchanged == 5
        assert searchable(library).keys() == {str(p) for p in paths} - {str(stuck)}
        assert dict(library.catalog.failures()) == {str(stuck): CRASHED_REASON}
        assert not journal.exists()

        # Not read again while it is unchanged: no probe, no decode, still reported.
        decoded: list[str] = []
        real_decode = indexer_module.decode
        monkeypatch.setattr(
            indexer_module,
            "decode",
            lambda p, *a, **k: decoded.append(p) or real_decode(p, *a, **k),
        )
        again = Indexer(library, encoder, crash_probe=probe).index([folder])
        assert (again.indexed, again.unchanged, len(probed), decoded) == (0, 5, 1, [])
        assert [(f.path, f.reason) for f in again.failed] == [(str(stuck), CRASHED_REASON)]

        # Changed (a fixed copy, a new export): tried again.
        stat = stuck.stat()
        os.utime(stuck, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        fixed = Indexer(library, encoder, crash_probe=probe).index([folder])
        assert (fixed.indexed, fixed.failed, decoded) == (1, [], [str(stuck)])
        assert str(stuck) in searchable(library)


def test_file_merely_in_flight_when_the_run_was_killed_is_indexed(
    tiny_model_dir, encoder, make_images, isolated_dirs
):
    """kill -9 for another reason: the real child-process probe decodes it fine."""
    paths = make_images(5)
    kill_while_decoding(tiny_model_dir, isolated_dirs, paths[0].parent, paths[2])
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as library:
        report = Indexer(library, encoder).index([paths[0].parent])
        assert report.failed == []
        assert searchable(library).keys() == {str(p) for p in paths}
        assert not (library.folder / JOURNAL_NAME).exists()


def test_probe_reports_a_decode_that_kills_or_hangs_its_process(make_images):
    [photo] = make_images(1)
    assert probe_decode(str(photo)) is None  # decoded in a child process: nothing to report
    kills = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert probe_decode(str(photo), script=kills) == CRASHED_REASON
    hangs = "import threading; threading.Event().wait()"
    reason = probe_decode(str(photo), timeout_s=1, script=hangs)
    assert reason is not None and reason.startswith("reading this file did not finish within 1 s")


@pytest.mark.parametrize(
    "content",
    [
        b"null",
        b"[]",
        b'{"decoding": 5}',
        b'{"decoding": [{"path": 1}]}',
        b"\xff\xfe{",
        b"[" * 10**5,
    ],
    ids=["null", "list", "number", "no-fields", "not-utf8", "deep"],
)
def test_unreadable_journal_is_ignored_with_a_warning(
    library, encoder, make_images, caplog, content
):
    paths = make_images(3)
    journal = library.folder / JOURNAL_NAME
    journal.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="gallery_app.core.decode_journal"):
        report = Indexer(library, encoder).index([paths[0].parent])
    assert (report.indexed, report.failed) == (3, [])
    assert "ignoring unreadable decode journal" in caplog.text or content == b'{"decoding": 5}'


# Files that change kind after the scan; real hostile content ------------------------------


def run_with_deadline(function, seconds: float = 120.0):
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(function()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the run blocked"
    return outcome[0]


@pytest.mark.parametrize("swap", ["fifo", "dev-zero"])
def test_file_replaced_by_a_pipe_or_device_after_the_scan_does_not_block(
    library, encoder, make_images, monkeypatch, swap
):
    paths = make_images(4)
    folder, victim = paths[0].parent, paths[2]
    Indexer(library, encoder).index([folder])
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # to be read again
    real_decode = indexer_module.decode

    def swapped_after_scan(path, *args, **kwargs):
        if str(path) == str(victim):
            victim.unlink()
            if swap == "fifo":
                os.mkfifo(victim)  # nothing ever writes to it
            else:
                victim.symlink_to("/dev/zero")  # never ends
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(indexer_module, "decode", swapped_after_scan)
    report = run_with_deadline(lambda: Indexer(library, encoder).index([folder]))
    kind = "a named pipe" if swap == "fifo" else "a device"
    assert [(f.path, f.reason) for f in report.failed] == [
        (str(victim), f"not a regular file ({kind}); only photo files are read")
    ]
    assert str(victim) in searchable(library)  # could not read it now: its vector is kept


def test_postscript_named_jpg_never_reaches_ghostscript(
    library, encoder, make_images, tmp_path, monkeypatch
):
    marker = tmp_path / "gs-ran"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch '{marker}'\nwhile :; do :; done\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    paths = make_images(2)
    hostile = paths[0].parent / "IMG_0042.jpg"
    hostile.write_bytes(ENDLESS_POSTSCRIPT)
    report = run_with_deadline(lambda: Indexer(library, encoder).index([paths[0].parent]))
    assert [(f.path, f.reason) for f in report.failed] == [
        (str(hostile), "PostScript/EPS file named .jpg: not a photo")
    ]
    assert report.indexed == 2
    assert not marker.exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's VmHWM")
def test_huge_png_is_refused_with_little_memory(tmp_path):
    """13000x13000 RGBA in 3 MB: refused from its header, in a process that stays small."""
    path = tmp_path / "huge.png"
    path.write_bytes(huge_transparent_png())
    code = (
        "import sys\n"
        "from gallery_app.core.imaging import DecodeError, decode\n"
        "try:\n    decode(sys.argv[1])\nexcept DecodeError as exc:\n    print(exc)\n"
        # VmHWM, not ru_maxrss: that one keeps the (large) pytest process's peak across exec.
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(int(status.split()[0]) // 1024)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    reason, peak_mib = run.stdout.strip().splitlines()
    assert reason.startswith("too large to decode: 13000x13000 pixels (RGBA) need about 1.3 GiB")
    assert int(peak_mib) < 300  # decoding it would take 676 MiB for the pixels alone


def test_leftover_of_a_file_since_deleted_is_dropped_and_others_are_kept(
    library, encoder, make_images, tmp_path
):
    paths = make_images(2)
    elsewhere = str(tmp_path / "other-folder" / "x.jpg")  # not indexed this run: still a suspect
    gone = str(paths[0].parent / "deleted.jpg")
    journal = library.folder / JOURNAL_NAME
    journal.write_text(
        json.dumps({"decoding": [{"path": p, "mtime_ns": 1, "size": 2} for p in (gone, elsewhere)]})
    )
    report = Indexer(library, encoder).index([paths[0].parent])
    assert (report.indexed, report.failed) == (2, [])
    assert [e["path"] for e in json.loads(journal.read_text())["decoding"]] == [elsewhere]
