"""Getting a hub model onto this machine: is it cached, can the hub be reached, and the download
itself (bytes, speed, time left; cancellable mid-file; resumable)."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gallery_app.core.errors import ModelUnavailable

log = logging.getLogger(__name__)

# What SiglipEncoder.load reads: configs, safetensors weights, the tokenizer (spiece.model or
# tokenizer.model and tokenizer.json). Pickled weights (*.bin) are never fetched.
MODEL_FILE_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt")
# The hub answers a HEAD in well under a second when it is there; DNS and TCP give up here
# instead of after huggingface_hub's retries (5 tries, 1 + 2 + 4 + 8 + 8 s).
PROBE_SECONDS = 3.0
# Progress callbacks at most this often (a chunk can be a few KB on a slow line).
REPORT_SECONDS = 0.2
PARTIAL_SUFFIX = ".gallery-partial"
OFFLINE_VALUES = ("1", "on", "yes", "true")


@dataclass(frozen=True)
class DownloadProgress:
    done_bytes: int
    total_bytes: int
    file: str
    bytes_per_second: float = 0.0  # over this session's transfer (resumed bytes excluded)
    seconds_left: float | None = None  # None until a speed is known

    @property
    def finished(self) -> bool:
        return self.done_bytes >= self.total_bytes


class DownloadCancelled(Exception):
    """The user cancelled; what was fetched stays in the cache and the next try resumes."""


def wanted(filename: str) -> bool:
    return "/" not in filename and any(
        fnmatch.fnmatch(filename, pattern) for pattern in MODEL_FILE_PATTERNS
    )


# -- the cache ---------------------------------------------------------------------------------
def cache_folder() -> Path:
    """The Hugging Face hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/...)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(model_id: str) -> Path | None:
    """The cached snapshot folder of a hub model when every file a load reads is there.

    Reads the cache only (no network): config.json, the weights (one file, or every shard of an
    index) and a processor config. A download stopped half way is not a cached model.
    """
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> Path | None:
        found = try_to_load_from_cache(model_id, filename)
        return Path(found) if isinstance(found, str) and os.path.isfile(found) else None

    config = cached("config.json")
    if config is None:
        return None
    if cached("preprocessor_config.json") is None and cached("processor_config.json") is None:
        return None
    if cached("model.safetensors") is not None:
        return config.parent
    index = cached("model.safetensors.index.json")
    if index is None:
        return None
    try:
        import json

        shards = set(json.loads(index.read_text("utf-8"))["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return config.parent if all(cached(str(shard)) for shard in shards) else None


def is_cached(model_id: str) -> bool:
    """True when a hub model can load without the network, or model_id names a folder
    (present or not: the loader reports a missing folder better than the hub would)."""
    from gallery_app.core.embeddings import looks_like_path

    return looks_like_path(model_id) or cached_snapshot(model_id) is not None


# -- reaching the hub -----------------------------------------------------------------------------
def offline_mode() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: never touch the network."""
    from huggingface_hub import constants

    if getattr(constants, "HF_HUB_OFFLINE", False):
        return True
    return any(
        os.environ.get(name, "").strip().lower() in OFFLINE_VALUES
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def probe_hub(timeout: float = PROBE_SECONDS) -> str | None:
    """None when the hub answers within `timeout` seconds, else why not (one short phrase).

    Runs in a daemon thread so a resolver that hangs (DNS has no timeout of its own) cannot
    hold the caller past `timeout`.
    """
    if offline_mode():
        return "HF_HUB_OFFLINE is set"
    endpoint = hub_endpoint()
    outcome: list[str | None] = []

    def attempt() -> None:
        from huggingface_hub.utils import get_session

        try:
            response = get_session().head(endpoint, timeout=timeout)
        except Exception as exc:  # requests / httpx errors differ across hub versions
            log.info("hub probe %s failed: %r", endpoint, exc)
            outcome.append(_reason(exc))
            return
        status = int(getattr(response, "status_code", 0))
        outcome.append(None if status < 500 else f"the hub answered HTTP {status}")

    thread = threading.Thread(target=attempt, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not outcome:
        return f"no answer from {_host(endpoint)} within {timeout:.0f} s"
    return outcome[0]


def unreachable_message(model_id: str, reason: str) -> str:
    """The one line shown when a hub model is not cached and cannot be downloaded now."""
    return (
        f"Cannot download {model_id}: {reason}, and it is not in the Hugging Face cache "
        f"({cache_folder()}). Run `gallery-app models download {model_id}` with an internet "
        "connection (the cache folder can then be copied here), or pass --model FOLDER with a "
        "checkpoint saved by save_pretrained."
    )


def load_source(model_id: str) -> str:
    """What from_pretrained should read: a folder as given; a cached hub model's snapshot
    folder (no network call at all: not the hub's "is there a newer version" check, nor
    huggingface_hub's daily registry fetch when it builds headers); else the hub id, once the
    hub has answered. Raises ModelUnavailable in one line, within PROBE_SECONDS, when the model
    is not cached and cannot be downloaded."""
    from gallery_app.core.embeddings import looks_like_path

    if looks_like_path(model_id):
        return model_id
    snapshot = cached_snapshot(model_id)
    if snapshot is not None:
        return str(snapshot)
    reason = probe_hub()
    if reason is not None:
        raise ModelUnavailable(unreachable_message(model_id, reason))
    return model_id


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """huggingface_hub's retry warnings ("Retrying in 8s [Retry 5/5]") stay out of the output:
    a failure is raised once, as one line, by the caller."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


# -- the download ---------------------------------------------------------------------------------
class _Transfer:
    """Bytes of the whole download; speed and time left over this session's bytes only."""

    def __init__(
        self,
        total: int,
        progress: Callable[[DownloadProgress], None] | None,
        cancelled: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        self.file = ""
        self._progress = progress
        self._cancelled = cancelled
        self._clock = clock
        self._started = clock()
        self._fetched = 0  # bytes that came over the network in this session
        self._last_report = -1.0

    def skip(self, size: int) -> None:
        """Bytes already on disk (a cached file, a partial one being resumed)."""
        self.done += size

    def update(self, size: int) -> None:
        """Called by huggingface_hub's http_get for every chunk, before it is written."""
        if size < 0:  # the server ignored a Range request: the partial bytes are dropped
            self.done += size
            return
        if self._cancelled():
            raise DownloadCancelled("download cancelled")
        self.done += size
        self._fetched += size
        now = self._clock()
        if now - self._last_report >= REPORT_SECONDS:
            self.report(now)

    def report(self, now: float | None = None) -> None:
        if self._progress is None:
            return
        now = self._clock() if now is None else now
        self._last_report = now
        elapsed = now - self._started
        speed = self._fetched / elapsed if elapsed > 0 and self._fetched else 0.0
        left = (self.total - self.done) / speed if speed > 0 else None
        self._progress(
            DownloadProgress(min(self.done, self.total), self.total, self.file, speed, left)
        )


def download_model(
    model_id: str,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Path:
    """Fetch the model's files into the hub cache, reporting bytes as they land; its folder.

    Each file streams over plain HTTP into `blobs/<etag>.gallery-partial`, continued with a
    Range request if a partial file is there (huggingface_hub 1.x deletes its own partial file
    on any failure, so it never resumes), then becomes `blobs/<etag>` and hf_hub_download links
    it into the snapshot as a cached blob. Cancellation is checked on every chunk, so Cancel or
    Ctrl-C stops mid-file and keeps what came.
    """
    from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url

    if cancelled():
        raise DownloadCancelled(f"download of {model_id} cancelled")
    reason = probe_hub()
    if reason is not None:
        raise ModelUnavailable(unreachable_message(model_id, reason))
    endpoint = hub_endpoint()
    with quiet_hub():
        try:
            info = HfApi(endpoint=endpoint).model_info(model_id, files_metadata=True)
        except Exception as exc:
            log.warning("model_info(%s) failed: %r", model_id, exc)
            raise ModelUnavailable(
                f"Cannot download {model_id}: {_reason(exc)}. Check the id (`gallery-app "
                "models` lists known ones), or choose a folder that already holds the model."
            ) from exc
        files = [
            (s.rfilename, int(s.size or 0)) for s in info.siblings or [] if wanted(s.rfilename)
        ]
        # Weights last: a snapshot that has them has everything else too (cached_snapshot
        # counts a model with weights as complete), and a missing small file fails early.
        files.sort(key=lambda item: (item[0].endswith(".safetensors"), item[0]))
        if not any(name.endswith(".safetensors") for name, _ in files):
            raise ModelUnavailable(
                f"{model_id} has no safetensors weights on the hub; only safetensors are loaded."
            )
        transfer = _Transfer(sum(size for _, size in files), progress, cancelled)
        storage = Path(constants.HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}"
        folder: Path | None = None
        for name, size in files:
            transfer.file = name
            if cancelled():
                raise DownloadCancelled(f"download of {model_id} cancelled")
            try:
                meta = get_hf_file_metadata(hf_hub_url(model_id, name, endpoint=endpoint))
                etag = str(meta.etag or "")
                if etag and not (storage / "blobs" / etag).exists():
                    _fetch_blob(meta, storage / "blobs" / etag, transfer)
                else:
                    transfer.skip(size)
                local = hf_hub_download(model_id, name, endpoint=endpoint)
            except DownloadCancelled:
                raise DownloadCancelled(f"download of {model_id} cancelled") from None
            except ModelUnavailable:
                raise
            except Exception as exc:
                log.warning("downloading %s of %s failed: %r", name, model_id, exc)
                raise ModelUnavailable(
                    f"Downloading {name} of {model_id} failed: {_reason(exc)}. Retry to "
                    "continue where it stopped."
                ) from exc
            folder = Path(local).parent
            transfer.report()
    transfer.file = ""
    transfer.done = transfer.total
    transfer.report()
    assert folder is not None
    return folder


def _fetch_blob(meta: Any, blob: Path, transfer: _Transfer) -> None:
    """Stream one file into `blob`, resuming its partial file; raise on a short or long one."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = blob.with_name(blob.name + PARTIAL_SUFFIX)
    expected = int(meta.size) if meta.size is not None else None
    resume = _size(partial)
    if expected is not None and resume > expected:  # not this file's bytes: start over
        partial.unlink()
        resume = 0
    transfer.skip(resume)
    transfer.report()
    with partial.open("ab") as handle:
        http_get(
            meta.location,
            handle,
            resume_size=resume,
            headers=build_hf_headers(),
            expected_size=expected,
            _tqdm_bar=transfer,
        )
    if expected is not None and _size(partial) != expected:
        got = _size(partial)
        partial.unlink(missing_ok=True)
        raise OSError(f"{blob.name}: received {got} bytes, expected {expected}")
    os.replace(partial, blob)


def _reason(exc: BaseException) -> str:
    """One line a person can act on; the full exception goes to the log."""
    text = f"{type(exc).__name__}: {exc}"
    if any(
        marker in text
        for marker in (
            "NameResolution",
            "Name or service not known",
            "Temporary failure in name resolution",
            "nodename nor servname",
            "ConnectError",
            "ConnectionError",
            "Connection refused",
            "Network is unreachable",
            "timed out",
            "Timeout",
        )
    ):
        return f"no connection to the Hugging Face hub ({_host(hub_endpoint())})"
    first_line = text.splitlines()[0]
    return first_line if len(first_line) <= 160 else first_line[:157] + "…"


def _host(endpoint: str) -> str:
    from urllib.parse import urlparse

    return urlparse(endpoint).netloc or endpoint


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def describe(progress: DownloadProgress) -> str:
    """'Downloading model.safetensors: 120 of 813 MB · 11.2 MB/s · 1:02 left'"""
    what = progress.file or "model"
    parts = [
        f"Downloading {what}: {progress.done_bytes / 1e6:.0f} of "
        f"{progress.total_bytes / 1e6:.0f} MB"
    ]
    if progress.bytes_per_second > 0:
        parts.append(f"{progress.bytes_per_second / 1e6:.1f} MB/s")
    if progress.seconds_left is not None:
        parts.append(f"{_clock_time(progress.seconds_left)} left")
    return " · ".join(parts)


def _clock_time(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
