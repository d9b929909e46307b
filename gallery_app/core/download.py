"""First-run model download from the Hugging Face hub, with byte progress and cancellation."""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gallery_app.core.errors import ModelUnavailable

# What SiglipEncoder.load reads: configs, safetensors weights, the SentencePiece vocab.
# Pickled weights (*.bin) are never fetched.
log = logging.getLogger(__name__)

MODEL_FILE_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt")
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class DownloadProgress:
    done_bytes: int
    total_bytes: int
    file: str


class DownloadCancelled(Exception):
    pass


def wanted(filename: str) -> bool:
    return "/" not in filename and any(
        fnmatch.fnmatch(filename, pattern) for pattern in MODEL_FILE_PATTERNS
    )


def is_cached(model_id: str) -> bool:
    """True when a hub model can load without the network, or model_id names a folder
    (present or not: the loader reports a missing folder better than the hub would)."""
    from gallery_app.core.embeddings import looks_like_path

    if looks_like_path(model_id):
        return True
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(model_id, local_files_only=True, allow_patterns=list(MODEL_FILE_PATTERNS))
    except Exception:  # LocalEntryNotFoundError, or an id the cache has never seen
        return False
    return True


def download_model(
    model_id: str,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Path:
    """Fetch the model's files one by one, reporting bytes as they land; returns its folder.

    huggingface_hub has no per-byte callback for single files, so a watcher thread reads the
    size of the partial blob it writes (`*.incomplete` in the cache) while each file downloads.
    Cancellation is checked between files.
    """
    from huggingface_hub import HfApi, hf_hub_download

    try:
        info = HfApi().model_info(model_id, files_metadata=True)
    except Exception as exc:
        log.warning("model_info(%s) failed: %r", model_id, exc)
        raise ModelUnavailable(
            f"Cannot download {model_id}: {_reason(exc)}. Connect to the internet and retry, "
            "or choose a folder that already holds the model."
        ) from exc
    files = [(s.rfilename, int(s.size or 0)) for s in info.siblings or [] if wanted(s.rfilename)]
    if not any(name.endswith(".safetensors") for name, _ in files):
        raise ModelUnavailable(
            f"{model_id} has no safetensors weights on the hub; only safetensors are loaded."
        )
    total = sum(size for _, size in files)
    done = 0
    folder: Path | None = None
    for name, size in files:
        if cancelled():
            raise DownloadCancelled(f"download of {model_id} cancelled")
        if progress is not None:
            progress(DownloadProgress(done, total, name))
        watcher = _PartialFileWatcher(model_id, name, done, total, progress)
        watcher.start()
        try:
            local = hf_hub_download(model_id, name)
        except Exception as exc:
            log.warning("downloading %s of %s failed: %r", name, model_id, exc)
            raise ModelUnavailable(
                f"Downloading {name} of {model_id} failed: {_reason(exc)}. Retry to continue."
            ) from exc
        finally:
            watcher.stop()
        folder = Path(local).parent
        done += size
    if progress is not None:
        progress(DownloadProgress(done, total, ""))
    assert folder is not None
    return folder


class _PartialFileWatcher:
    """Polls the cache's `*.incomplete` files of one repo and reports their growing size."""

    def __init__(
        self,
        model_id: str,
        filename: str,
        done_before: int,
        total: int,
        progress: Callable[[DownloadProgress], None] | None,
    ) -> None:
        self._blobs = _blobs_folder(model_id)
        self._filename = filename
        self._done_before = done_before
        self._total = total
        self._progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-progress", daemon=True)

    def start(self) -> None:
        if self._progress is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        assert self._progress is not None
        while not self._stop.wait(POLL_SECONDS):
            partial = sum(_size(p) for p in self._blobs.glob("*.incomplete"))
            if partial:
                self._progress(
                    DownloadProgress(
                        min(self._done_before + partial, self._total), self._total, self._filename
                    )
                )


def _reason(exc: BaseException) -> str:
    """One line a person can act on; the full exception goes to the log."""
    text = f"{type(exc).__name__}: {exc}"
    if any(
        marker in text
        for marker in (
            "NameResolution",
            "Name or service not known",
            "ConnectionError",
            "Connection refused",
            "Network is unreachable",
            "timed out",
        )
    ):
        return "no connection to the Hugging Face hub (huggingface.co)"
    first_line = text.splitlines()[0]
    return first_line if len(first_line) <= 160 else first_line[:157] + "…"


def _blobs_folder(model_id: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}" / "blobs"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # finished and renamed between glob and stat
        return 0


def describe(progress: DownloadProgress) -> str:
    """'Downloading model.safetensors: 120 of 813 MB'"""
    what = progress.file or "model"
    return (
        f"Downloading {what}: {progress.done_bytes / 1e6:.0f} of "
        f"{progress.total_bytes / 1e6:.0f} MB"
    )
