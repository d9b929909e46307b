"""Stress: index a generated messy folder while searching, kill -9 it a few times, resume, and
print what was lost (must be nothing).

    python scripts/stress.py                      # 3,000 files, 3 kills, tiny random model
    python scripts/stress.py --files 20000        # the memory check: peak RSS is printed
    python scripts/stress.py --model ~/siglip-base

Each round runs a child process that indexes (saving the index every 2 s) while a thread in it
searches non-stop; the parent searches too, read-only, from its own process, then kills the
child with SIGKILL after a random amount of progress. The last round runs to the end. Exit
status 1 if anything was lost, redone beyond the batch in flight, or any search failed.

The messy folders hold every hostile class of tests/reliability/corpus.py: an endless
PostScript program named .jpg (a fake `gs` first on the children's PATH records any attempt to
run Ghostscript), a 13000x13000 RGBA PNG of 3 MB, a named pipe, a link to /dev/zero, a file
dated in the year 36812. Each must be refused with its reason, and nothing may hang.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]

BATCH = 16
QUERIES = ["dog on the beach", "red car", "sunset", "snow on the mountain", "a cat", "birthday"]


def child(model: str, data: Path, folder: Path) -> None:
    """Index with a searching thread; one JSON line per batch on stdout."""
    from gallery_app.core.embeddings import SiglipEncoder
    from gallery_app.core.indexer import Indexer, Progress
    from gallery_app.core.library import Library
    from gallery_app.core.search import Searcher

    encoder = SiglipEncoder.load(model, device="cpu")
    library = Library(data, encoder.model_id, encoder.dim)
    searcher = Searcher(library, encoder)
    counts = {"searches": 0, "errors": 0}
    stop = threading.Event()

    def search_forever() -> None:
        n = 0
        while not stop.is_set():
            try:
                hits = searcher.search(QUERIES[n % len(QUERIES)], top_k=20)
                for path in hits.paths:
                    if not path.startswith(str(folder)):
                        raise AssertionError(f"result outside the folder: {path}")
                counts["searches"] += 1
            except Exception as exc:
                counts["errors"] += 1
                print(json.dumps({"search_error": repr(exc)}), flush=True)
            n += 1

    def report(progress: Progress) -> None:
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        line = {"done": progress.done, "jobs": progress.total, **counts, "rss_mb": rss_mb}
        print(json.dumps(line), flush=True)

    thread = threading.Thread(target=search_forever, daemon=True)
    thread.start()
    result = Indexer(library, encoder, batch_size=BATCH, save_interval_s=2.0).index(
        [folder], progress=report
    )
    stop.set()
    thread.join()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    final = {"final": result.to_json(), **counts, "rss_mb": rss_mb}
    final["final"].pop("failed")
    final["failed"] = len(result.failed)
    print(json.dumps(final), flush=True)
    library.close()


def generate(folder: Path, files: int, seed: int) -> tuple[set[str], set[str], set[str]]:
    """~90% good photos in JPEG/PNG, the rest every kind of bad file. Returns the paths that
    must be indexed, must fail, and may do either."""
    from corpus import EITHER, FAILED, INDEXED, make_messy_folder, photo

    rng = random.Random(seed)
    good: set[str] = set()
    bad: set[str] = set()
    either: set[str] = set()
    messy_folders = max(1, files // 300)
    for m in range(messy_folders):
        for path, expect in make_messy_folder(folder / f"messy_{m:02d}", seed=1000 * m).items():
            {INDEXED: good, FAILED: bad, EITHER: either}[expect].add(path)
        good.add(str(folder / f"messy_{m:02d}" / "album.jpg" / "inside.png"))
    made = len(good) + len(bad) + len(either)
    for i in range(max(0, files - made)):
        sub = folder / f"dump_{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        ext = rng.choice([".jpg", ".png", ".JPG", ".jpeg"])
        path = sub / f"IMG_{i:05d}{ext}"
        size = (rng.randint(40, 160), rng.randint(40, 160))
        image = photo(seed + i, size)
        image.save(path, format="PNG" if ext == ".png" else "JPEG", quality=80)
        good.add(str(path))
    return good, bad, either


# File name -> the start of the reason it must be refused with (see corpus.MAKERS).
HOSTILE = {
    "endless_postscript.jpg": "PostScript/EPS file named .jpg: not a photo",
    "document.png": "PDF document named .png: not a photo",
    "huge_transparent.png": "too large to decode: 13000x13000 pixels (RGBA)",
    "pipe.jpg": "not a regular file",
    "dev_zero.jpg": "not a regular file",
    "far_future.jpg": "its modification time is out of range",
}


def hostile_verdicts(bad: set[str], reasons: dict[str, str], ghostscript_ran: Path) -> list[str]:
    """One line per hostile class: how many were refused with the right reason."""
    lines = []
    for name, reason in HOSTILE.items():
        paths = [p for p in bad if os.path.basename(p) == name]
        if not paths:
            continue  # e.g. a filesystem that refuses far-future dates made an ordinary photo
        right = sum(1 for p in paths if reasons.get(p, "").startswith(reason))
        verdict = "ok" if right == len(paths) else "FAIL"
        lines.append(f"{verdict} {name}: {right} of {len(paths)} refused with {reason!r}")
    ran = ghostscript_ran.exists()
    lines.append(f"{'FAIL' if ran else 'ok'} Ghostscript {'RAN' if ran else 'never ran'}")
    return lines


def catalog_rows(path: Path) -> int:
    """Committed rows, read without disturbing the writer (a separate read-only connection)."""
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return 0  # not created yet


def run_round(args, data: Path, folder: Path, kill_after_rows: int | None, encoder, stats) -> dict:
    from gallery_app.core.errors import GalleryError
    from gallery_app.core.library import Library, library_folder
    from gallery_app.core.search import Searcher

    catalog = library_folder(data, encoder.model_id) / "catalog.sqlite"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", args.model, str(data), str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[dict] = []
    reader = threading.Thread(
        target=lambda: lines.extend(json.loads(line) for line in proc.stdout or []), daemon=True
    )
    reader.start()
    start_rows = catalog_rows(catalog)
    killed = False
    last_outside_search = 0.0
    while proc.poll() is None:
        rows = catalog_rows(catalog)
        if kill_after_rows is not None and rows - start_rows >= kill_after_rows:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        if time.monotonic() - last_outside_search > 1.0 and rows:
            # Another process searching beside the writer: shared read access.
            try:
                with Library(data, encoder.model_id, encoder.dim, read_only=True) as lib:
                    Searcher(lib, encoder).search("dog", top_k=10)
                stats["outside_searches"] += 1
            except GalleryError as exc:
                stats["outside_errors"] += 1
                print(f"  outside search failed: {exc}")
            last_outside_search = time.monotonic()
        time.sleep(0.05)
    proc.wait()
    reader.join(timeout=30)
    errors = [line["search_error"] for line in lines if "search_error" in line]
    progress = [line for line in lines if "done" in line or "final" in line]
    last = progress[-1] if progress else {}
    stats["searches"] += last.get("searches", 0)
    stats["search_errors"] += last.get("errors", 0)
    stats["peak_rss_mb"] = max(stats["peak_rss_mb"], last.get("rss_mb", 0))
    for error in errors[:3]:
        print(f"  search error: {error}")
    jobs = next((line["jobs"] for line in lines if "jobs" in line), None)
    return {
        "killed": killed,
        "returncode": proc.returncode,
        "jobs": jobs,
        "rows_after": catalog_rows(catalog),
        "final": last.get("final"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--model", help="SigLIP folder (default: a tiny random one, built here)")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return 0

    started = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gallery-stress-"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.model:
        from tiny_model import build_tiny_siglip

        args.model = str(build_tiny_siglip(work / "tiny-siglip"))
    from gallery_app.core.embeddings import SiglipEncoder
    from gallery_app.core.library import Library

    encoder = SiglipEncoder.load(args.model, device="cpu")
    folder, data = work / "photos", work / "data"
    ghostscript_ran = work / "ghostscript-ran"
    fake_bin = work / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / "gs").write_text(f"#!/bin/sh\ntouch '{ghostscript_ran}'\nexit 1\n")
    (fake_bin / "gs").chmod(0o755)
    os.environ["PATH"] = f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"  # children too
    good, bad, either = generate(folder, args.files, args.seed)
    total = len(good) + len(bad) + len(either)
    print(f"{total} files in {folder}: {len(good)} good, {len(bad)} bad, {len(either)} partial")
    print(f"generated in {time.perf_counter() - started:.0f} s; indexing with kills...")

    stats = {"searches": 0, "search_errors": 0, "outside_searches": 0, "outside_errors": 0,
             "peak_rss_mb": 0.0}  # fmt: skip
    rng = random.Random(args.seed)
    redone_beyond_in_flight = 0
    from gallery_app.core.scan import scan

    on_disk = scan(str(folder))
    refused_at_scan = {f.path: f.reason for f in on_disk.failures}  # links, pipes, dates
    searchable_before = 0
    for round_no in range(args.kills + 1):
        last = round_no == args.kills
        kill_after = None if last else rng.randint(total // (3 * args.kills), total // args.kills)
        result = run_round(args, data, folder, kill_after, encoder, stats)
        with Library(data, encoder.model_id, encoder.dim) as library:
            searchable = library.catalog.count()
            agrees = library.index.live_ids() == library.catalog.vector_ids()
            repaired = library.repair
        # A file searchable before this round must not be encoded again in it. Links and pipes
        # fail at the scan, so they are never jobs.
        expected_jobs = len(on_disk.files) - searchable_before
        redone = (result["jobs"] or 0) - expected_jobs if result["jobs"] is not None else 0
        redone_beyond_in_flight += abs(redone)
        print(
            f"round {round_no + 1}: {'killed' if result['killed'] else 'finished'} "
            f"(exit {result['returncode']}), to encode {result['jobs']}, expected "
            f"{expected_jobs}, searchable now {searchable}; reopened: index agrees={agrees}, "
            f"rebuilt={repaired.rebuilt}, repaired +{repaired.added}/-{repaired.removed}"
        )
        searchable_before = searchable
        if not agrees:
            redone_beyond_in_flight += 1

    with Library(data, encoder.model_id, encoder.dim) as library:
        found = {info.path for info in library.catalog.images(library.index.live_ids()).values()}
        failures = dict(library.catalog.failures())
        integrity = library.catalog.db.execute("PRAGMA integrity_check").fetchone()[0]
    lost = sorted(good - found)
    unreported = sorted(p for p in bad if p not in failures and p not in refused_at_scan)
    hostile = hostile_verdicts(bad, {**refused_at_scan, **failures}, ghostscript_ran)
    undecided = sorted(p for p in either if (p in found) == (p in failures))
    print(f"catalog integrity: {integrity}")
    print(
        f"searches: {stats['searches']} in the indexing process ({stats['search_errors']} "
        f"errors), {stats['outside_searches']} from another process "
        f"({stats['outside_errors']} errors)"
    )
    print(f"peak RSS of an indexing process: {stats['peak_rss_mb']:.0f} MiB")
    print(f"good files searchable: {len(good & found)} of {len(good)}")
    print(f"bad files reported: {len(bad) - len(unreported)} of {len(bad)}" if unreported else
          f"bad files: all {len(bad)} reported ({len(refused_at_scan)} refused by the scan: "
          "links, pipes, dates)")  # fmt: skip
    for line in hostile:
        print(f"hostile: {line}")
    print(
        f"LOST: {len(lost)} good files; redone beyond the batch in flight: "
        f"{redone_beyond_in_flight}; partial files neither indexed nor failed: {len(undecided)}"
    )
    for path in lost[:10]:
        print(f"  lost: {path!r}")
    print(f"total time {time.perf_counter() - started:.0f} s; files kept in {work}")
    failed = lost or undecided or redone_beyond_in_flight or integrity != "ok"
    failed = failed or stats["search_errors"] or stats["outside_errors"]
    failed = failed or unreported or any(line.startswith("FAIL") for line in hostile)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
