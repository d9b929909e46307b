"""Typed errors the core raises, each with a message a user can act on."""

from __future__ import annotations

import errno
import os


class GalleryError(Exception):
    """Base class: the message is shown to the user as is."""


class ModelUnavailable(GalleryError):
    """The SigLIP checkpoint could not be loaded (offline, bad folder, corrupt file)."""


class CorruptIndex(GalleryError):
    """A library file on disk cannot be read and could not be rebuilt."""


class LibraryMismatch(GalleryError):
    """A library on disk belongs to another model or a newer schema."""


class ConfigError(GalleryError):
    """A user file (expansions, settings) is not valid."""


class CalibrationError(GalleryError):
    """Scores cannot be calibrated from the data given (too little, too alike, contradictory)."""


class CorruptCatalog(CorruptIndex):
    """The catalog (the source of truth) is damaged; it is never deleted or overwritten."""


class LibraryInUse(GalleryError):
    """Another process is writing to the library (or holds a lock on its catalog)."""


class LibraryUnreachable(GalleryError):
    """The library's database server cannot be reached (refused, dropped, timed out)."""


class DiskFull(GalleryError):
    """A write failed for lack of space (ENOSPC, SQLITE_FULL); what was committed is intact."""


class NotRegularFile(GalleryError):
    """A library file is a FIFO, a device or a folder: opening it could hang or fill memory."""


class NonFiniteVectors(ModelUnavailable):
    """The model produced NaN or infinite embeddings; `bad_rows` are the inputs affected."""

    def __init__(self, message: str, bad_rows: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.bad_rows = bad_rows


class QueryImageError(GalleryError):
    """A photo given as a query (find similar, `search --image`) cannot be read or decoded."""


class StorageError(GalleryError):
    """A file or folder cannot be read or written: disk full, permission, read-only, ..."""


# errno -> what went wrong and what to do, for `describe_os_error`. One table, so the CLI, the
# GUI and core code that wraps an OSError all say the same thing about the same fault.
_OS_ERROR_TEXT: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("disk full at {path}", "free some space and run again"),
    errno.EDQUOT: ("disk quota exceeded at {path}", "free some space and run again"),
    errno.EROFS: (
        "read-only file system at {path}",
        "make that disk writable, or use a folder on a writable disk",
    ),
    errno.EACCES: (
        "permission denied at {path}",
        "check its owner and permissions, or use another folder",
    ),
    errno.EPERM: (
        "operation not permitted at {path}",
        "check its owner and permissions, or use another folder",
    ),
    errno.ENAMETOOLONG: ("name too long: {path}", "use a shorter file or folder name"),
    errno.ELOOP: (
        "too many levels of symbolic links at {path}",
        "a link points (through others) to itself: fix or remove it",
    ),
    errno.ENOENT: ("not found: {path}", "check the path"),
    errno.ENOTDIR: ("not a folder: {path}", "check the path"),
    errno.EISDIR: ("{path} is a folder, not a file", "give the path of a file"),
    errno.EIO: (
        "input/output error at {path}",
        "the disk may be failing or unplugged: check it, then run again",
    ),
    errno.ENXIO: ("{path} is not available", "reconnect its drive or share, then run again"),
    errno.ENODEV: ("{path} is not available", "reconnect its drive or share, then run again"),
    errno.ESTALE: ("{path} is not available", "reconnect its drive or share, then run again"),
    errno.ENOTCONN: ("{path} is not available", "reconnect its drive or share, then run again"),
    errno.EMFILE: ("too many open files (at {path})", "raise the limit (ulimit -n) and run again"),
    errno.ENFILE: ("too many open files (at {path})", "close other programs and run again"),
    errno.ENOMEM: ("out of memory (at {path})", "close other programs and run again"),
}


def describe_os_error(exc: OSError, path: str | os.PathLike[str] | bytes | None = None) -> str:
    """One line saying what failed, where, and what to do: "disk full at PATH: free some space
    and run again". `path` is where the work was happening, used when the error names no file."""
    named = exc.filename if exc.filename is not None else path
    where = os.fsdecode(named) if named is not None else "an unnamed file"
    problem, fix = _OS_ERROR_TEXT.get(
        exc.errno if exc.errno is not None else -1,
        ("cannot use {path} (" + (exc.strerror or type(exc).__name__) + ")", "check it"),
    )
    if exc.filename2 is not None:
        where += f" -> {os.fsdecode(exc.filename2)}"
    return f"{problem.replace('{path}', where)}: {fix}"
