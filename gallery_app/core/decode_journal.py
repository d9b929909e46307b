"""The files whose decode started and has not finished, so that no file stops two runs.

A decoder can take the whole process down (the kernel's OOM killer, a segfault in a C
library) or never return; nothing in-process can report that file. The indexer writes the
file it starts decoding into a small journal in the library folder and takes it out when the
decode returns. An entry still there when the next run starts was in flight when a run died:
that run decodes it once more, alone, in a child process (`probe_decode`) before anything
else. A file that kills or hangs the child is recorded as failed with SKIPPED_UNTIL_CHANGED
and not read again until its size or mtime changes; one that was merely in flight when the
process was killed for another reason decodes fine there and is indexed as usual.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gallery_app

log = logging.getLogger(__name__)

JOURNAL_NAME = "decoding.json"
PROBE_TIMEOUT_S = 120.0
SKIPPED_UNTIL_CHANGED = "skipped; it will be retried when the file changes"
CRASHED_REASON = (
    "the previous run stopped while reading this file (out of memory or a decoder crash); "
    + SKIPPED_UNTIL_CHANGED
)

# Run by probe_decode in a fresh interpreter: the child volunteers to be the OOM killer's first
# choice, so memory trouble takes the probe down, not the process holding the model.
_PROBE_SCRIPT = """
import sys
try:
    with open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")
except OSError:
    pass
from gallery_app.core.imaging import DecodeError, decode
try:
    decode(sys.argv[1])
except DecodeError:
    pass
"""

Probe = Callable[[str], "str | None"]


@dataclass(frozen=True)
class InFlight:
    path: str
    mtime_ns: int
    size: int


class DecodeJournal:
    """decoding.json: what is being decoded now, plus suspects not yet probed. Rewritten
    atomically (temp file + os.replace) on every change; no fsync, since what it guards
    against is the process dying, and the kernel keeps its writes then."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._in_flight: dict[int, InFlight] = {}  # by a token per decode
        self._suspects: dict[str, InFlight] = {}
        self._next = 0

    def leftovers(self) -> dict[str, InFlight]:
        """Entries a dead run left behind (read once, when a run starts); a journal that
        cannot be read is ignored with a warning: it is a safety net, not a record."""
        try:
            raw = self.path.read_text(encoding="utf-8", errors="surrogateescape")
            entries = json.loads(raw).get("decoding", [])
            found = {
                str(e["path"]): InFlight(str(e["path"]), int(e["mtime_ns"]), int(e["size"]))
                for e in entries
            }
        except FileNotFoundError:
            found = {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            log.warning("ignoring unreadable decode journal %s: %s", self.path, exc)
            found = {}
        with self._lock:
            self._suspects = dict(found)
        return found

    def settled(self, path: str) -> None:
        """A leftover whose fate is now recorded (probed, or changed since)."""
        with self._lock:
            if self._suspects.pop(path, None) is not None:
                self._write()

    def start(self, entry: InFlight) -> int:
        with self._lock:
            self._next += 1
            self._in_flight[self._next] = entry
            self._write()
            return self._next

    def finish(self, token: int) -> None:
        with self._lock:
            self._in_flight.pop(token, None)
            self._write()

    def _write(self) -> None:
        entries = [*self._suspects.values(), *self._in_flight.values()]
        try:
            if not entries:
                self.path.unlink(missing_ok=True)
                return
            body = json.dumps({"decoding": [vars(e) for e in entries]}, ensure_ascii=True).encode()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".decoding-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(body)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a full disk must not stop indexing; the net is just off
            log.warning("could not write the decode journal %s: %s", self.path, exc)


def probe_decode(
    path: str, timeout_s: float = PROBE_TIMEOUT_S, script: str = _PROBE_SCRIPT
) -> str | None:
    """Decode path in a child process: None when the decode returned (an image, or a reason
    it is not one), else the reason to record (the child died or never finished)."""
    package_root = str(Path(gallery_app.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p
    )}  # fmt: skip
    try:
        child = subprocess.run(
            [sys.executable, "-c", script, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (
            f"reading this file did not finish within {timeout_s:g} s (the decoder hangs on "
            f"it); {SKIPPED_UNTIL_CHANGED}"
        )
    except OSError as exc:  # cannot start a child (no memory, no fork): judge by the journal
        log.warning("could not probe %s in a child process: %s", path, exc)
        return CRASHED_REASON
    if child.returncode < 0:
        try:
            name = signal.Signals(-child.returncode).name
        except ValueError:
            name = f"signal {-child.returncode}"
        log.warning("decoding %s killed a child process (%s)", path, name)
        return CRASHED_REASON
    return None
