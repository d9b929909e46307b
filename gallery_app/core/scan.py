"""What is on disk under an indexed folder, and which indexed photos are provably gone from it.

The scan never follows a link to a folder (no loops, no second copy of a tree) and never
opens a file; it lists folders and stats image files. A photo is forgotten only when the
folder that held it listed fine and is not an empty mount point, and the file itself (or the
folder it was in) is reported missing by the filesystem; anything that merely could not be
read (permissions, I/O errors, an unplugged drive behind a link) keeps what was indexed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from gallery_app.core.catalog import is_within, signed_inode
from gallery_app.core.fileio import not_a_photo_file
from gallery_app.core.imaging import is_image_file

UNLISTED_FOLDER = "cannot list folder"
EMPTIED_FOLDER = "the folder is empty now"
_INT64 = (-(1 << 63), (1 << 63) - 1)  # what SQLite's INTEGER holds


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


@dataclass(frozen=True)
class FileStat:
    """The stat values the incremental check compares, all within SQLite's INTEGER."""

    mtime_ns: int
    size: int
    ctime_ns: int
    inode: int  # signed_inode of st_ino


@dataclass
class ScanResult:
    files: dict[str, FileStat] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    listed: dict[str, int] = field(default_factory=dict)  # folder -> entries it listed
    unreadable: set[str] = field(default_factory=set)  # exist, could not be read: keep below
    skipped: set[str] = field(default_factory=set)  # folders left out on purpose


def scan(root: str, skip: Iterable[str] = ()) -> ScanResult:
    """Image files under root (recursive; hidden entries and the `skip` folders left out)."""
    result = ScanResult()
    skip_real = {os.path.realpath(folder) for folder in skip}
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            # A folder that could not be listed (permissions, a flaky mount) keeps what it had.
            result.failures.append(Failure(directory, f"{UNLISTED_FOLDER} ({exc.strerror})"))
            result.unreadable.add(directory)
            continue
        result.listed[directory] = len(entries)
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = entry.path
            if _is_real_folder(entry):
                if path in skip_real:
                    result.skipped.add(path)
                else:
                    subfolders.append(path)
            elif is_image_file(entry.name):
                _add_file(result, path)
        pending.extend(reversed(subfolders))  # depth first, in name order
    return result


def _is_real_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _add_file(result: ScanResult, path: str) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        result.failures.append(Failure(path, _stat_failure(path, exc)))
        result.unreadable.add(path)
        return
    if stat.S_ISDIR(info.st_mode):
        return  # a link to a folder, named like an image: links to folders are not followed
    if not stat.S_ISREG(info.st_mode):
        # Opening a named pipe or a device named like an image would block forever.
        result.failures.append(Failure(path, not_a_photo_file(info.st_mode)))
        return
    problem = _out_of_range(info)
    if problem:
        result.failures.append(Failure(path, problem))
        result.unreadable.add(path)
        return
    result.files[path] = FileStat(
        info.st_mtime_ns, info.st_size, info.st_ctime_ns, signed_inode(info.st_ino)
    )


def _out_of_range(info: os.stat_result) -> str | None:
    """Why a file's stat values cannot be stored (a date after 2262 does not fit SQLite's
    64-bit nanoseconds), or None."""
    low, high = _INT64
    for value, what in ((info.st_mtime_ns, "modification"), (info.st_ctime_ns, "status change")):
        if not low <= value <= high:
            return (
                f"its {what} time is out of range (year {_year(value)}), perhaps set by a "
                "broken camera clock or archive tool; give it a real date (e.g. `touch` it) "
                "and index again"
            )
    if not 0 <= info.st_size <= high:
        return f"its size is out of range ({info.st_size} bytes); the filesystem may be damaged"
    return None


def _year(time_ns: int) -> str:
    try:
        return str(datetime.fromtimestamp(time_ns / 1e9, tz=timezone.utc).year)
    except (OverflowError, OSError, ValueError):
        return f"about {1970 + round(time_ns / 1e9 / 31_556_952)}"


def _stat_failure(path: str, exc: OSError) -> str:
    if os.path.islink(path):
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"broken symbolic link (its target {_link_target(path)!r} is missing)"
    return f"cannot read file ({exc.strerror})"


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


@dataclass
class Removal:
    """What a scan says about the photos indexed under a folder before it."""

    gone: list[str] = field(default_factory=list)  # provably missing: forget them
    notes: list[Failure] = field(default_factory=list)  # kept, and why (one per folder)


def provably_gone(root: str, known: Iterable[str], result: ScanResult) -> Removal:
    """Sort the indexed paths the scan did not find into gone and kept (see module doc)."""
    removal = Removal()
    kept_by_folder: dict[str, tuple[str, int]] = {}  # folder -> (reason, photos kept)
    for path in known:
        if path in result.files or any(is_within(path, u) for u in result.unreadable):
            continue
        verdict = _verdict(root, path, result)
        if verdict is None:
            removal.gone.append(path)
        elif verdict[1]:
            folder, reason = verdict
            _, count = kept_by_folder.get(folder, (reason, 0))
            kept_by_folder[folder] = (reason, count + 1)
    for folder, (reason, count) in kept_by_folder.items():
        photos = "photo was" if count == 1 else "photos were"
        removal.notes.append(Failure(folder, reason.format(count=count, photos=photos)))
    return removal


def _verdict(root: str, path: str, result: ScanResult) -> tuple[str, str] | None:
    """None when path is provably gone; else (folder to report, reason template or "")."""
    listed = _deepest_listed(root, path, result.listed)
    if listed is None:
        return root, ""  # not under a folder this scan listed: not ours to judge
    if result.listed[listed] == 0 and listed != root:
        return listed, (
            f"{EMPTIED_FOLDER}; its {{count}} indexed {{photos}} kept (an unplugged drive?). "
            "Delete the empty folder to forget them."
        )
    below = os.path.relpath(path, listed).split(os.sep)[0]
    step = os.path.join(listed, below)
    if step in result.skipped:
        return None  # gallery-app's own folders are never part of a library
    try:
        info = os.lstat(step)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return step, f"cannot read it ({exc.strerror}); its {{count}} indexed {{photos}} kept."
    if stat.S_ISLNK(info.st_mode) and step != path:
        if os.path.exists(step):
            return step, ""  # a link to a folder, not followed: what it had stays, quietly
        return step, (
            f"the folder is a broken symbolic link (its target {_link_target(step)!r} is "
            "missing: an unplugged drive?); its {count} indexed {photos} kept. Delete the "
            "link to forget them."
        )
    return None  # there, but no longer a photo file or folder the scan reads (hidden, ...)


def _deepest_listed(root: str, path: str, listed: Mapping[str, int]) -> str | None:
    folder = os.path.dirname(path)
    while is_within(folder, root):
        if folder in listed:
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return None
