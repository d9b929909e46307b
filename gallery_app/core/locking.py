"""One writer per library: an OS file lock that dies with its process (kill -9 included)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from gallery_app.core.errors import GalleryError, LibraryInUse
from gallery_app.core.fileio import PRIVATE_FILE, make_private_dirs, open_regular


class WriterLock:
    """Exclusive, non-blocking lock on a small file next to the catalog.

    An OS lock rather than a "pid file exists" check: the kernel drops it when the holder dies,
    so a crash never leaves a stale lock that a user has to delete by hand.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            make_private_dirs(self.path.parent)
            # A regular file only (a FIFO or /dev/zero here would hang or feed the holder
            # line forever), owner-only.
            fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        except OSError as exc:
            raise GalleryError(
                f"Cannot write to the library {self.what} ({exc.strerror or exc}: "
                f"{exc.filename or self.path}). Indexing needs a data folder you may write "
                "to; searching an existing library works without."
            ) from exc
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LibraryInUse(
                f"The library {self.what} is in use by another gallery-app ({holder}). "
                "Only one program may index it at a time: close the other one or wait for "
                "it to finish, then try again."
            ) from None
        # Who holds it, for the message the next process shows; the lock is what counts (so a
        # full disk that refuses these few bytes is no reason to stop).
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        except OSError:
            pass
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _unlock(fd)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode("utf-8", "replace").strip()
        text = "".join(ch for ch in text if ch.isprintable())
    except OSError:
        text = ""
    return text or "another process"


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
