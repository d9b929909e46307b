"""Scan folders and index what changed: decode ahead in threads, encode in batches, commit."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gallery_app.core.catalog import FileState, ImageRecord, is_within
from gallery_app.core.decode_journal import (
    SKIPPED_UNTIL_CHANGED,
    DecodeJournal,
    InFlight,
    Probe,
    probe_decode,
)
from gallery_app.core.errors import GalleryError
from gallery_app.core.imaging import DecodedImage, DecodeError, decode, file_fingerprint
from gallery_app.core.library import Library, default_config_dir
from gallery_app.core.scan import (
    EMPTIED_FOLDER,
    Failure,
    FileStat,
    ScanResult,
    provably_gone,
    scan,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8
_OWN_FOLDER = (
    "this is gallery-app's own data or settings folder (thumbnails, catalog); it is never indexed"
)
INDEX_SAVE_INTERVAL_S = 30.0
# Decode threads run this much nicer than the model and the GUI (Linux: nice is per thread):
# decoding is background work that must not delay the GUI thread. It costs indexing ~1% on the
# 2-core benchmark machine (12 MP pipeline/model 0.876-0.902 niced vs 0.881-0.907 not, 5 runs
# of interleaved repetitions): the model is at the CPU's GEMM wall, so 12 MP decoding (~38 ms
# CPU an image after draft) cannot hide either way and caps the pipeline near 0.9.
# Set decode_niceness=0 for a batch job with no GUI.
DECODE_NICENESS = 10


class ImageEncoder(Protocol):
    """What the indexer needs from an encoder (SiglipEncoder, or a fake in tests)."""

    dim: int

    @property
    def image_spec(self) -> object: ...

    def encode_pixels(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    rate: float  # images per second so far
    failed: int = 0

    @property
    def eta_seconds(self) -> float | None:
        if self.rate <= 0:
            return None
        return (self.total - self.done) / self.rate


ProgressCallback = Callable[[Progress], None]


class CancelToken:
    """Set from any thread; the indexer checks it between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class IndexReport:
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[Failure] = field(default_factory=list)
    total: int = 0
    seconds: float = 0.0
    cancelled: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
            "total": self.total,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _Job:
    path: str
    folder_id: int
    stat: FileStat
    was_indexed: bool  # has a vector from before: an unreadable file keeps it


# Why a write of a batch may fail for one record's values (not for the catalog's health).
_RECORD_VALUE_ERRORS = (OverflowError, ValueError, TypeError, UnicodeError)


class Indexer:
    """Incremental indexing of folders into a library; safe to interrupt at any point."""

    def __init__(
        self,
        library: Library,
        encoder: ImageEncoder,
        batch_size: int = DEFAULT_BATCH_SIZE,
        decode_workers: int | None = None,
        save_interval_s: float = INDEX_SAVE_INTERVAL_S,
        decode_niceness: int = DECODE_NICENESS,
        crash_probe: Probe = probe_decode,
    ) -> None:
        self.library = library
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        self.decode_workers = decode_workers or min(4, os.cpu_count() or 2)
        self.save_interval_s = save_interval_s
        self.decode_niceness = decode_niceness
        self.crash_probe = crash_probe  # decodes a file a dead run left in flight, apart
        self.journal = DecodeJournal(library.folder / "decoding.json")

    def index(
        self,
        folders: Sequence[str | os.PathLike[str]],
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> IndexReport:
        started = time.perf_counter()
        roots = [_existing_folder(f) for f in folders]  # all checked before anything changes
        report = IndexReport()
        jobs: list[_Job] = []
        with ExitStack() as held:
            return self._index(roots, report, jobs, held, progress, cancel, started)

    def _index(
        self,
        roots: list[str],
        report: IndexReport,
        jobs: list[_Job],
        held: ExitStack,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
        started: float,
    ) -> IndexReport:
        leftovers = self.journal.leftovers()
        skip = self._own_folders()
        for root in roots:
            if any(is_within(root, own) for own in skip):
                report.failed.append(Failure(root, _OWN_FOLDER))
                continue
            folder = self.library.catalog.add_folder(root)
            # Held to the end of the run (a shared library: other clients index other folders).
            held.enter_context(self.library.folder_lock(folder.path))
            known = {
                path: state
                for path, state in self.library.catalog.files_in_folder(folder.id).items()
                if is_within(path, root)
            }
            found = scan(root, skip)
            report.failed += found.failures
            refused = self._remember_refusals(folder.id, found.failures, known)
            if known and not found.files and not found.failures:
                # Every photo gone at once is far more often an unplugged drive or an unmounted
                # share (its mount point lists as empty) than a real deletion: keep them, say
                # so, and leave forgetting them to "remove folder".
                report.failed.append(
                    Failure(
                        root,
                        f"{EMPTIED_FOLDER}; its {len(known)} indexed photos were kept (an "
                        "unplugged drive?). Remove the folder from the library to forget them.",
                    )
                )
                continue
            missing = [p for p in known if p not in found.files and p not in refused]
            removal = provably_gone(root, missing, found)
            report.failed += removal.notes
            gone_ids = [known[path].id for path in removal.gone]
            self.library.remove_ids(gone_ids)
            report.removed += len(gone_ids)
            jobs += self._changed(folder.id, known, found, report)
        jobs = self._probe_leftovers(jobs, leftovers, report)
        for path in leftovers:  # unchanged since, or gone: nothing left to judge
            if any(is_within(path, root) for root in roots):
                self.journal.settled(path)
        report.total = report.unchanged + len(jobs) + len(report.failed)
        try:
            self._run(jobs, report, progress, cancel, started)
        finally:
            self.library.save_index()
            report.seconds = time.perf_counter() - started
        return report

    def _remember_refusals(
        self, folder_id: int, failures: Sequence[Failure], known: dict[str, FileState]
    ) -> set[str]:
        """Store the files the scan refused (a named pipe, a date out of range, a dangling
        link) as failures, like a photo that does not decode: the library's list of unreadable
        files, which the window's badge counts, then names every file a run reported until it
        is fixed. A photo already indexed keeps its vector (it is kept, not failed); folders
        that could not be listed are the run's notes, not files. Returns the paths now held
        as failures, which the removal check must leave alone."""
        records, held = [], set()
        for failure in failures:
            state = known.get(failure.path)
            if (state is not None and state.indexed) or os.path.isdir(failure.path):
                continue
            held.add(failure.path)
            if state is None or state.error != failure.reason:
                # mtime 0: a time the file cannot have, so once it reads it is encoded.
                records.append(ImageRecord(failure.path, folder_id, 0, 0, error=failure.reason))
        if records:
            self.library.catalog.write_batch(records)
        return held

    def _own_folders(self) -> list[str]:
        """gallery-app's data and config folders: never indexed, wherever they are (a data
        folder inside a photo folder would index its own thumbnails, more every run)."""
        own = [self.library.data_dir]
        try:
            own.append(default_config_dir())
        except Exception as exc:  # platformdirs on a strange system: the data dir still counts
            log.debug("no config folder to skip: %s", exc)
        return [os.path.realpath(path) for path in own]

    def _changed(
        self, folder_id: int, known: dict[str, FileState], found: ScanResult, report: IndexReport
    ) -> list[_Job]:
        """The files to decode; counts the unchanged and records their new ctime/inode."""
        jobs: list[_Job] = []
        stamps: list[tuple[int, int, int]] = []
        for path, file_stat in found.files.items():
            state = known.get(path)
            verdict = _compare(state, file_stat, path)
            if state is not None and verdict == "skipped":
                report.failed.append(Failure(path, state.error or ""))
            elif state is not None and verdict in ("unchanged", "restamp"):
                report.unchanged += 1
                if verdict == "restamp":
                    stamps.append((state.id, file_stat.ctime_ns, file_stat.inode))
            else:
                was_indexed = state is not None and state.indexed
                jobs.append(_Job(path, folder_id, file_stat, was_indexed))
        if stamps:
            self.library.catalog.restamp(stamps)
        return jobs

    def _probe_leftovers(
        self, jobs: list[_Job], leftovers: dict[str, InFlight], report: IndexReport
    ) -> list[_Job]:
        """Decode the files a dead run left in flight in a child process first; the ones that
        kill it are recorded as failed, the rest are indexed as usual."""
        if not leftovers:
            return jobs
        kept: list[_Job] = []
        failed: list[ImageRecord] = []
        for job in jobs:
            entry = leftovers.get(job.path)
            if entry is None:
                kept.append(job)
                continue
            same = (entry.mtime_ns, entry.size) == (job.stat.mtime_ns, job.stat.size)
            reason = self.crash_probe(job.path) if same else None
            if reason is None:
                kept.append(job)
            else:
                failed.append(_failed_record(job, reason))
                report.failed.append(Failure(job.path, reason))
        if failed:
            _, ids = self.library.catalog.write_batch(failed)
            self.library.index.remove(ids)
        return kept

    def _run(
        self,
        jobs: list[_Job],
        report: IndexReport,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
        started: float,
    ) -> None:
        done = 0
        last_save = time.perf_counter()
        encode_start = time.perf_counter()
        if progress is not None:
            progress(Progress(0, len(jobs), 0.0, len(report.failed)))
        for batch in self._decoded_batches(jobs, cancel):
            records: list[ImageRecord] = []
            decoded: list[tuple[int, npt.NDArray[np.float32]]] = []  # (record slot, pixels)
            for job, outcome in batch:
                if isinstance(outcome, DecodedImage) and outcome.model_input is not None:
                    decoded.append((len(records), outcome.model_input))
                    records.append(_indexed_record(job, outcome))
                    continue
                reason = str(outcome) if isinstance(outcome, DecodeError) else "no model input"
                report.failed.append(Failure(job.path, reason))
                if isinstance(outcome, DecodeError) and outcome.unreadable and job.was_indexed:
                    continue  # could not read it now: what was indexed from it is kept
                records.append(_failed_record(job, reason))
            vector_slots = [slot for slot, _ in decoded]
            vectors = np.zeros((0, self.encoder.dim), np.float32)
            if decoded:
                vectors = self.encoder.encode_pixels(np.stack([pixels for _, pixels in decoded]))
                for slot, vector in zip(vector_slots, vectors, strict=True):
                    records[slot] = replace(records[slot], vector=vector)
            # Catalog first: once committed, a crash loses nothing (the index is repaired).
            ids = self._write(records, report)
            stored = [
                (row, image_id)
                for row, slot in enumerate(vector_slots)
                if (image_id := ids[slot]) is not None
            ]
            self.library.index.add([i for _, i in stored], vectors[[row for row, _ in stored]])
            broken = [i for i, rec in zip(ids, records, strict=True) if rec.vector is None]
            self.library.index.remove([i for i in broken if i is not None])  # broke since
            report.indexed += len(stored)
            done += len(batch)
            if time.perf_counter() - last_save > self.save_interval_s:
                self.library.save_index()
                last_save = time.perf_counter()
            if progress is not None:
                elapsed = max(time.perf_counter() - encode_start, 1e-9)
                progress(Progress(done, len(jobs), done / elapsed, len(report.failed)))
        report.cancelled = bool(cancel and cancel.cancelled and done < len(jobs))

    def _write(self, records: list[ImageRecord], report: IndexReport) -> list[int | None]:
        """Commit a batch; ids in record order. A record whose values the catalog cannot hold
        fails alone (named, with the reason), never the batch or the run."""
        try:
            return list(self.library.catalog.write_batch(records)[1])
        except _RECORD_VALUE_ERRORS:
            pass  # the transaction was rolled back: find the record(s), commit the rest
        ids: list[int | None] = []
        for record in records:
            try:
                ids += self.library.catalog.write_batch([record])[1]
            except _RECORD_VALUE_ERRORS as exc:
                log.warning("cannot store %s: %r", record.path, exc)
                report.failed.append(
                    Failure(record.path, f"cannot be stored in the catalog ({_short(exc)})")
                )
                ids.append(None)
        return ids

    def _decoded_batches(
        self, jobs: list[_Job], cancel: CancelToken | None
    ) -> Iterator[list[tuple[_Job, DecodedImage | DecodeError]]]:
        """Decode in a thread pool, a bounded window ahead of the model, yielding batches."""
        spec = self.encoder.image_spec
        to_input = getattr(spec, "to_model_input", None)
        model_px = max(getattr(spec, "height", 224), getattr(spec, "width", 224))
        thumbnails = self.library.thumbnails
        journal = self.journal

        def work(job: _Job) -> DecodedImage | DecodeError:
            token = journal.start(InFlight(job.path, job.stat.mtime_ns, job.stat.size))
            try:
                decoded = decode(job.path, to_input, model_px=model_px)
            except DecodeError as exc:
                return exc
            except Exception as exc:  # a decoder bug on one file must not stop the run
                log.exception("the decoder failed on %s", job.path)
                return DecodeError(
                    f"the image decoder failed on this file ({type(exc).__name__}: {_short(exc)});"
                    " skipped: if other programs open it, please report it with --verbose"
                )
            finally:
                journal.finish(token)
            try:
                thumbnails.put(job.path, job.stat.mtime_ns, decoded.thumbnail)
            except OSError as exc:
                log.warning("could not cache thumbnail of %s: %s", job.path, exc)
            return decoded

        window = self.batch_size * 3
        pending: deque[tuple[_Job, Future[DecodedImage | DecodeError]]] = deque()
        queue = iter(jobs)
        with ThreadPoolExecutor(
            self.decode_workers,
            thread_name_prefix="decode",
            initializer=_lower_thread_priority,
            initargs=(self.decode_niceness,),
        ) as pool:
            try:
                while True:
                    if cancel is not None and cancel.cancelled:
                        return
                    while len(pending) < window:
                        job = next(queue, None)
                        if job is None:
                            break
                        pending.append((job, pool.submit(work, job)))
                    if not pending:
                        return
                    batch: list[tuple[_Job, DecodedImage | DecodeError]] = []
                    while pending and len(batch) < self.batch_size:
                        job, future = pending.popleft()
                        batch.append((job, future.result()))
                    yield batch
            finally:
                for _, future in pending:
                    future.cancel()


def _indexed_record(job: _Job, outcome: DecodedImage) -> ImageRecord:
    return ImageRecord(
        job.path, job.folder_id, job.stat.mtime_ns, job.stat.size,
        outcome.width, outcome.height, outcome.taken_at,
        ctime_ns=job.stat.ctime_ns, inode=job.stat.inode, fingerprint=outcome.fingerprint,
    )  # fmt: skip


def _failed_record(job: _Job, reason: str) -> ImageRecord:
    return ImageRecord(
        job.path, job.folder_id, job.stat.mtime_ns, job.stat.size, error=reason,
        ctime_ns=job.stat.ctime_ns, inode=job.stat.inode,
    )  # fmt: skip


def _lower_thread_priority(niceness: int) -> None:
    """Make the calling thread nicer; a no-op where threads have no priority of their own."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError as exc:  # e.g. a sandbox that forbids it: decoding still works
        log.debug("could not lower decode thread priority: %s", exc)


def _existing_folder(folder: str | os.PathLike[str]) -> str:
    path = Path(folder).expanduser()
    if not path.exists():
        raise GalleryError(f"{path} does not exist")
    if not path.is_dir():
        raise GalleryError(f"{path} is not a folder; pass the folder that contains your photos")
    return str(path.resolve())


def _compare(state: FileState | None, now: FileStat, path: str) -> str:
    """changed | unchanged | restamp (unchanged; store its new ctime/inode) | skipped (it
    stopped a run and has not changed since)."""
    if state is None:
        return "changed"
    if (state.mtime_ns, state.size) != (now.mtime_ns, now.size):
        return "changed"
    if state.error is not None and state.error.endswith(SKIPPED_UNTIL_CHANGED):
        return "skipped"
    if not state.indexed:
        return "changed"  # failed before: tried again, it may have been fixed by an upgrade
    if state.ctime_ns is None or state.inode is None:
        return "restamp"  # indexed by an older version: (mtime, size) is all it knows
    if (state.ctime_ns, state.inode) == (now.ctime_ns, now.inode):
        return "unchanged"
    # Touched (chmod, a backup tool), moved to another disk, or a network share remounted
    # with new inode numbers; or replaced with the same size and mtime. The ends tell.
    if state.fingerprint is None:
        return "changed"
    try:
        same = file_fingerprint(path) == state.fingerprint
    except DecodeError:
        return "changed"  # decoding will say what is wrong with it
    return "restamp" if same else "changed"


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
