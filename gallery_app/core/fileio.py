"""Library files on disk: owner-only creation, regular-file checks, atomic writes, disk full.

The one place that creates or opens a file in a library folder (catalog, vector index, its
sidecar, the writer lock, backups), so that each of them is owner-only whatever the umask, and
none of them can be a FIFO or a device that would hang the process or fill its memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path

from gallery_app.core.errors import DiskFull, NotRegularFile

PRIVATE_FILE = 0o600  # photo paths and vectors are nobody else's business
PRIVATE_DIR = 0o700
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX; Windows has no FIFOs to guard against
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def make_private_dirs(folder: Path) -> None:
    """Create folder and its missing parents owner-only (an existing folder is left as is)."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        try:
            os.mkdir(candidate, PRIVATE_DIR)
        except FileExistsError:
            continue
        os.chmod(candidate, PRIVATE_DIR)  # mkdir's mode goes through the umask


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = PRIVATE_FILE) -> int:
    """os.open, refusing anything but a regular file, checked on the open descriptor.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; it is
    cleared again for the regular file that remains. A file this creates is owner-only.
    """
    try:
        fd = os.open(path, flags | _NONBLOCK | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # opening a FIFO for writing with nobody reading it
            raise NotRegularFile(not_regular_message(path, os.stat(path).st_mode)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(not_regular_message(path, info.st_mode))
        if flags & os.O_CREAT and info.st_size == 0:
            os.chmod(path, mode)  # created now (or empty): owner-only whatever the umask
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_regular(path: Path) -> bool:
    """False when path does not exist; NotRegularFile when it is not a regular file. For files
    that another library (SQLite) opens by name: checked on a descriptor opened here."""
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return False
    os.close(fd)
    return True


def create_private(path: Path) -> None:
    """An empty owner-only file, unless one exists (SQLite then gives its -wal and -shm files
    the same permissions as the database)."""
    try:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return
    os.close(fd)


def tighten(path: Path) -> None:
    """Make an existing file owner-only (one written by an older gallery-app)."""
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
            os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
    except OSError:
        pass  # not ours to change (another owner, read-only disk): nothing is lost


def write_atomic(path: Path, data: bytes) -> None:
    """Owner-only temp file, fsync, os.replace: the old file stays until the new one is whole."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def is_out_of_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def nearly_full(folder: Path, margin: int = 16 << 20) -> bool:
    """True when the disk holding folder has less than margin bytes free (how a silent short
    write, as hnswlib's, is told apart from a damaged one)."""
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def disk_full(folder: Path, what: str) -> DiskFull:
    return DiskFull(
        f"disk full at {folder}: {what}. Free some space on that disk and run the same "
        "command again; everything committed before is intact and the catalog was left as it "
        "was."
    )


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words ("a named pipe", "a folder"): the one
    wording used by the library files, the JSON loader, the image decoder and the CLI."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def not_a_photo_file(mode: int) -> str:
    """Why a file named like a photo is skipped when it is not a regular file: the one
    wording of the scanner and the decoder (the library lists it under that file's name)."""
    return f"not a regular file ({file_kind(mode)}); only photo files are read"


def not_regular_message(path: Path, mode: int) -> str:
    return (
        f"{path} is {file_kind(mode)}, not a regular file, so gallery-app will not open it "
        "(reading it could hang or fill memory). Move it out of the library folder and try again."
    )
