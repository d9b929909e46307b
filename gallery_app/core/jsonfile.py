"""Reading a file a user wrote or named (settings, expansions, feedback CSV): the safe readers.

Whatever the file holds or is, the caller gets decoded JSON or one typed error naming the file
and the fix: never a hang (a FIFO), an unbounded read (/dev/zero, a huge file), or an
"unexpected RecursionError / OverflowError" (`[[[[...` nested 100000 deep, `1e999999`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from gallery_app.core.errors import ConfigError, GalleryError, NotRegularFile, describe_os_error
from gallery_app.core.fileio import file_kind, open_regular

# Far above any settings or expansions file a person writes (the built-in dictionary is
# ~100 KiB), far below what would strain memory.
MAX_JSON_BYTES = 16 * 1024 * 1024
# Python refuses int strings over 4300 digits by default, but that limit is settable
# process-wide; a config number needs far fewer.
MAX_INT_DIGITS = 400
DEFAULT_FIX = "Fix it, or delete it to go back to the defaults."


def read_json_file(
    path: Path,
    what: str = "file",
    *,
    fix: str = DEFAULT_FIX,
    max_bytes: int = MAX_JSON_BYTES,
    error: type[GalleryError] = ConfigError,
) -> Any:
    """The decoded JSON of a regular file of at most max_bytes, as UTF-8 (a BOM is allowed).

    Raises FileNotFoundError when there is no file (the caller chooses the default), else
    `error` with "<what> <path> ...: <fix>" for anything unreadable or not plain JSON: NaN,
    Infinity and numbers out of float range are refused, as the JSON standard does.
    """
    raw = read_regular_file(path, what, fix=fix, max_bytes=max_bytes, error=error)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason}). {fix}"
        ) from exc
    try:
        return _decode(text)
    except RecursionError as exc:
        raise error(f"{what} {path} is nested too deeply to be read. {fix}") from exc
    except MemoryError as exc:
        raise error(f"{what} {path} is too large to read into memory. {fix}") from exc
    except ValueError as exc:  # JSONDecodeError, and the number checks below
        raise error(f"{what} {path} is not valid JSON ({_short(exc)}). {fix}") from exc


def read_regular_file(
    path: Path,
    what: str = "file",
    *,
    fix: str = "",
    max_bytes: int = MAX_JSON_BYTES,
    error: type[GalleryError] = ConfigError,
) -> bytes:
    """The bytes of a regular file of at most max_bytes. Raises FileNotFoundError when there is
    none, else `error` naming the file for a FIFO, device, folder, a file too large, or any
    OSError (in words: "permission denied at PATH: ..."). `fix` ends the messages about what
    the file holds or is (an OSError's words carry their own fix)."""
    tail = f" {fix}" if fix else ""
    # The kind of file is checked on the open descriptor (fileio.open_regular, the one place
    # for it): a FIFO would block the read forever, /dev/zero would never end.
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise
    except NotRegularFile as exc:
        try:
            kind = file_kind(os.stat(path).st_mode)
        except OSError:
            kind = "not a plain file"
        raise error(f"{what} {path} is not a regular file ({kind}).{tail}") from exc
    except OSError as exc:
        raise error(f"Cannot read {what}: {describe_os_error(exc, path)}.") from exc
    try:
        info = os.fstat(fd)
        if info.st_size > max_bytes:
            raise error(
                f"{what} {path} is {info.st_size} bytes, more than the {max_bytes} allowed.{tail}"
            )
        chunks = []
        left = max_bytes + 1  # the file may grow while it is read: never read past the bound
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise error(f"{what} {path} is more than the {max_bytes} bytes allowed.{tail}")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"Cannot read {what}: {describe_os_error(exc, path)}.") from exc
    finally:
        os.close(fd)


def _decode(text: str) -> Any:
    return json.loads(
        text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number has {len(text)} digits, more than {MAX_INT_DIGITS}")
    return int(text)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
