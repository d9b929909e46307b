"""Scan folders and index what changed: decode ahead in threads, encode in batches, commit."""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gallery_app.core.catalog import FileState, ImageRecord, is_within
from gallery_app.core.errors import GalleryError
from gallery_app.core.imaging import DecodedImage, DecodeError, decode, is_image_file
from gallery_app.core.library import Library

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8
UNLISTED_FOLDER = "cannot list folder"
EMPTIED_FOLDER = "the folder is empty now"
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


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


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
    mtime_ns: int
    size: int


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
    ) -> None:
        self.library = library
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        self.decode_workers = decode_workers or min(4, os.cpu_count() or 2)
        self.save_interval_s = save_interval_s
        self.decode_niceness = decode_niceness

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
        for root in roots:
            folder = self.library.catalog.add_folder(root)
            known = {
                path: state
                for path, state in self.library.catalog.files_in_folder(folder.id).items()
                if is_within(path, root)
            }
            on_disk, unreadable = scan(root)
            report.failed += unreadable
            # A folder that could not be listed (permissions, a flaky mount) keeps what it had.
            unlisted = [f.path for f in unreadable if f.reason.startswith(UNLISTED_FOLDER)]
            known = {p: s for p, s in known.items() if not any(is_within(p, u) for u in unlisted)}
            if known and not on_disk and not unreadable:
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
            report.removed += self._remove_missing(known, on_disk)
            for path, (mtime_ns, size) in on_disk.items():
                state = known.get(path)
                if _unchanged(state, mtime_ns, size):
                    report.unchanged += 1
                else:
                    jobs.append(_Job(path, folder.id, mtime_ns, size))
        report.total = report.unchanged + len(jobs) + len(report.failed)
        try:
            self._run(jobs, report, progress, cancel, started)
        finally:
            self.library.save_index()
            report.seconds = time.perf_counter() - started
        return report

    def _remove_missing(self, known: dict[str, FileState], on_disk: Mapping[str, object]) -> int:
        gone = [state.id for path, state in known.items() if path not in on_disk]
        self.library.remove_ids(gone)
        return len(gone)

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
                    records.append(
                        ImageRecord(
                            job.path, job.folder_id, job.mtime_ns, job.size,
                            outcome.width, outcome.height, outcome.taken_at,
                        )
                    )  # fmt: skip
                else:
                    reason = outcome if isinstance(outcome, str) else "no model input"
                    records.append(
                        ImageRecord(job.path, job.folder_id, job.mtime_ns, job.size, error=reason)
                    )
                    report.failed.append(Failure(job.path, reason))
            vector_slots = [slot for slot, _ in decoded]
            vectors = np.zeros((0, self.encoder.dim), np.float32)
            if decoded:
                vectors = self.encoder.encode_pixels(np.stack([pixels for _, pixels in decoded]))
                for slot, vector in zip(vector_slots, vectors, strict=True):
                    records[slot] = replace(records[slot], vector=vector)
            # Catalog first: once committed, a crash loses nothing (the index is repaired).
            _, ids = self.library.catalog.write_batch(records)
            self.library.index.add([ids[slot] for slot in vector_slots], vectors)
            failed_ids = [i for i, rec in zip(ids, records, strict=True) if rec.vector is None]
            self.library.index.remove(failed_ids)  # a file that broke since it was indexed
            report.indexed += len(vector_slots)
            done += len(batch)
            if time.perf_counter() - last_save > self.save_interval_s:
                self.library.save_index()
                last_save = time.perf_counter()
            if progress is not None:
                elapsed = max(time.perf_counter() - encode_start, 1e-9)
                progress(Progress(done, len(jobs), done / elapsed, len(report.failed)))
        report.cancelled = bool(cancel and cancel.cancelled and done < len(jobs))

    def _decoded_batches(
        self, jobs: list[_Job], cancel: CancelToken | None
    ) -> Iterator[list[tuple[_Job, DecodedImage | str]]]:
        """Decode in a thread pool, a bounded window ahead of the model, yielding batches."""
        spec = self.encoder.image_spec
        to_input = getattr(spec, "to_model_input", None)
        model_px = max(getattr(spec, "height", 224), getattr(spec, "width", 224))
        thumbnails = self.library.thumbnails

        def work(job: _Job) -> DecodedImage | str:
            try:
                decoded = decode(job.path, to_input, model_px=model_px)
            except DecodeError as exc:
                return str(exc)
            except Exception as exc:  # a decoder bug on one file must not stop the run
                log.exception("unexpected error decoding %s", job.path)
                return f"unexpected error: {type(exc).__name__}: {exc}"
            try:
                thumbnails.put(job.path, job.mtime_ns, decoded.thumbnail)
            except OSError as exc:
                log.warning("could not cache thumbnail of %s: %s", job.path, exc)
            return decoded

        window = self.batch_size * 3
        pending: deque[tuple[_Job, Future[DecodedImage | str]]] = deque()
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
                    batch: list[tuple[_Job, DecodedImage | str]] = []
                    while pending and len(batch) < self.batch_size:
                        job, future = pending.popleft()
                        batch.append((job, future.result()))
                    yield batch
            finally:
                for _, future in pending:
                    future.cancel()


def _lower_thread_priority(niceness: int) -> None:
    """Make the calling thread nicer; a no-op where threads have no priority of their own."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError as exc:  # e.g. a sandbox that forbids it: decoding still works
        log.debug("could not lower decode thread priority: %s", exc)


def scan(root: str) -> tuple[dict[str, tuple[int, int]], list[Failure]]:
    """Image files under root (recursive, hidden entries skipped) -> (mtime_ns, size)."""
    found: dict[str, tuple[int, int]] = {}
    failures: list[Failure] = []

    def on_error(exc: OSError) -> None:
        failures.append(Failure(str(exc.filename), f"{UNLISTED_FOLDER} ({exc.strerror})"))

    for directory, subdirs, files in os.walk(root, onerror=on_error):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not is_image_file(name):
                continue
            path = os.path.join(directory, name)
            try:
                stat = os.stat(path)
            except OSError as exc:
                failures.append(Failure(path, _stat_failure(path, exc)))
                continue
            if not S_ISREG(stat.st_mode):
                # Opening a named pipe or a device named like an image would block forever.
                failures.append(Failure(path, "not a regular file (pipe, socket or device)"))
                continue
            found[path] = (stat.st_mtime_ns, stat.st_size)
    return found, failures


def _stat_failure(path: str, exc: OSError) -> str:
    if os.path.islink(path):
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"broken symbolic link (its target {os.readlink(path)!r} is missing)"
    return f"cannot read file ({exc.strerror})"


def _existing_folder(folder: str | os.PathLike[str]) -> str:
    path = Path(folder).expanduser()
    if not path.exists():
        raise GalleryError(f"{path} does not exist")
    if not path.is_dir():
        raise GalleryError(f"{path} is not a folder; pass the folder that contains your photos")
    return str(path.resolve())


def _unchanged(state: FileState | None, mtime_ns: int, size: int) -> bool:
    return state is not None and state.indexed and state.mtime_ns == mtime_ns and state.size == size
