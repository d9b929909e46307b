"""Every fault a user can meet ends a command with one designed line: what, where, what to do.

Each class of error is raised at the layer where it happens in real life (a disk that fills
while the indexer writes, a read-only cache, a name that is not UTF-8, ...) and the command's
last line is checked: exit 1, `gallery-app: error: ...` naming the place, no traceback, never
"unexpected".
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gallery_app.cli import main

PLACE = "/media/photos/holiday"  # the file an injected OSError names


def os_error(code: int, filename: str | None = PLACE) -> OSError:
    return OSError(code, os.strerror(code), filename)


def sqlite_error(code: int, text: str) -> sqlite3.Error:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]  # what SQLite's C code sets
    return exc


@dataclass(frozen=True)
class Fault:
    name: str
    command: str  # index | search | cache-clear | cache-rebuild | cache-info | debug | tune | eval
    target: str  # "module:attribute" raising the error
    error: Callable[[], BaseException]
    says: tuple[str, ...]  # fragments of the one line printed

    def __str__(self) -> str:
        return self.name


FAULTS = [
    # OSError by errno, at the indexer (writes to catalog, index and thumbnails)
    Fault(
        "index-disk-full",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: os_error(errno.ENOSPC),
        (f"disk full at {PLACE}", "free some space and run again"),
    ),
    Fault(
        "index-disk-full-unnamed",  # a write on an open file names no file: the data folder
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: os_error(errno.ENOSPC, None),
        ("disk full at {data}", "free some space"),
    ),
    Fault(
        "index-quota",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: os_error(errno.EDQUOT),
        (f"disk quota exceeded at {PLACE}", "free some space"),
    ),
    Fault(
        "index-permission",
        "index",
        "gallery_app.core.library:Library.__init__",
        lambda: PermissionError(errno.EACCES, "Permission denied", PLACE),
        (f"permission denied at {PLACE}", "permissions"),
    ),
    Fault(
        "index-not-permitted",
        "index",
        "gallery_app.core.library:Library.__init__",
        lambda: os_error(errno.EPERM),
        (f"not permitted at {PLACE}", "permissions"),
    ),
    Fault(
        "index-read-only",
        "index",
        "gallery_app.core.library:Library.__init__",
        lambda: os_error(errno.EROFS),
        (f"read-only file system at {PLACE}", "writable"),
    ),
    Fault(
        "index-name-too-long",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: os_error(errno.ENAMETOOLONG),
        (f"name too long: {PLACE}", "shorter"),
    ),
    Fault(
        "index-link-loop",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: os_error(errno.ELOOP),
        (f"symbolic links at {PLACE}", "fix or remove"),
    ),
    Fault(
        "index-io-error",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: os_error(errno.EIO),
        (f"input/output error at {PLACE}", "unplugged"),
    ),
    Fault(
        "index-unknown-errno",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: os_error(errno.EXDEV),
        (PLACE, os.strerror(errno.EXDEV)),
    ),
    Fault(
        "index-memory",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        MemoryError,
        ("out of memory during `gallery-app index`", "close other programs"),
    ),
    # names and text that are not UTF-8
    Fault(
        "search-name-not-utf8",
        "search",
        "gallery_app.core.library:Library.__init__",
        lambda: UnicodeEncodeError("utf-8", "/data/caf\udce9", 9, 10, "surrogates not allowed"),
        ("/data/caf", "not valid UTF-8", "rename it"),
    ),
    Fault(
        "search-text-not-utf8",
        "search",
        "gallery_app.core.search:Searcher.search",
        lambda: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        ("not valid UTF-8", "save that file as UTF-8"),
    ),
    Fault(
        "search-disk-full",
        "search",
        "gallery_app.core.search:Searcher.search",
        lambda: os_error(errno.ENOSPC),
        (f"disk full at {PLACE}",),
    ),
    Fault(
        "search-memory",
        "search",
        "gallery_app.core.search:Searcher.search",
        MemoryError,
        ("out of memory during `gallery-app search`",),
    ),
    # SQLite errors no layer turned into a typed one, by SQLite's code
    Fault(
        "search-sqlite-full",
        "search",
        "gallery_app.core.search:Searcher.search",
        lambda: sqlite_error(13, "database or disk is full"),
        ("disk full at {data}",),
    ),
    Fault(
        "index-sqlite-read-only",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: sqlite_error(8, "attempt to write a readonly database"),
        ("{data}", "read-only"),
    ),
    Fault(
        "index-sqlite-io",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: sqlite_error(10 | (3 << 8), "disk I/O error"),  # SQLITE_IOERR_WRITE
        ("input/output error in {data}",),
    ),
    Fault(
        "search-sqlite-cant-open",
        "search",
        "gallery_app.core.library:Library.__init__",
        lambda: sqlite_error(14, "unable to open database file"),
        ("{data}", "cannot be opened"),
    ),
    Fault(
        "search-sqlite-damaged",
        "search",
        "gallery_app.core.search:Searcher.search",
        lambda: sqlite_error(11, "database disk image is malformed"),
        ("catalog in {data} is damaged", "rebuild"),
    ),
    # the thumbnail cache, which needs no model
    Fault(
        "cache-clear-permission",
        "cache-clear",
        "pathlib:Path.unlink",
        lambda: PermissionError(errno.EACCES, "Permission denied", PLACE),
        ("Cannot clear the thumbnail cache {data}/thumbnails", "permission denied"),
    ),
    Fault(
        "cache-clear-read-only",
        "cache-clear",
        "pathlib:Path.unlink",
        lambda: os_error(errno.EROFS),
        ("Cannot clear the thumbnail cache {data}/thumbnails", "read-only file system"),
    ),
    Fault(
        "cache-rebuild-read-only",
        "cache-rebuild",
        "gallery_app.core.imaging:ThumbnailCache.put",
        lambda: os_error(errno.EROFS),
        ("Cannot write thumbnails to {data}/thumbnails", "read-only file system"),
    ),
    Fault(
        "cache-rebuild-disk-full",
        "cache-rebuild",
        "gallery_app.core.imaging:ThumbnailCache.put",
        lambda: os_error(errno.ENOSPC),
        ("Cannot write thumbnails to {data}/thumbnails", "disk full"),
    ),
    Fault(
        "cache-info-permission",
        "cache-info",
        "gallery_app.core.imaging:ThumbnailCache.stats",
        lambda: PermissionError(errno.EACCES, "Permission denied", PLACE),
        (f"permission denied at {PLACE}",),
    ),
    # the score tools
    Fault(
        "debug-scores-io",
        "debug",
        "gallery_app.core.score_report:build_score_report",
        lambda: os_error(errno.EIO),
        (f"input/output error at {PLACE}",),
    ),
    Fault(
        "debug-scores-memory",
        "debug",
        "gallery_app.core.score_report:build_score_report",
        MemoryError,
        ("out of memory during `gallery-app debug-scores`",),
    ),
    Fault(
        "tune-read-only",
        "tune",
        "gallery_app.cli.tune:Tuner.run",
        lambda: os_error(errno.EROFS),
        (f"read-only file system at {PLACE}",),
    ),
    Fault(
        "eval-link-loop",
        "eval",
        "gallery_app.core.evaluate:read_labelled_folder",
        lambda: os_error(errno.ELOOP),
        (f"symbolic links at {PLACE}",),
    ),
    Fault(
        "eval-permission",
        "eval",
        "gallery_app.core.evaluate:read_labelled_folder",
        lambda: PermissionError(errno.EACCES, "Permission denied", PLACE),
        (f"permission denied at {PLACE}",),
    ),
    # not a fault of the machine: the last resort says it is a bug, and how to report it
    Fault(
        "index-bug",
        "index",
        "gallery_app.core.indexer:Indexer.index",
        lambda: KeyError("vector_id"),
        ("`gallery-app index`", "KeyError", "bug", "--verbose"),
    ),
    Fault(
        "search-bug-recursion",
        "search",
        "gallery_app.core.search:Searcher.search",
        lambda: RecursionError("maximum recursion depth exceeded"),
        ("`gallery-app search`", "RecursionError", "bug", "--verbose"),
    ),
    Fault(
        "cache-bug-overflow",
        "cache-info",
        "gallery_app.core.imaging:ThumbnailCache.stats",
        lambda: OverflowError("int too large"),
        ("`gallery-app cache`", "OverflowError", "bug", "--verbose"),
    ),
]


def argv(command: str, common: list[str], tmp_path: Path, photo: str) -> list[str]:
    return {
        "index": [*common, "index", str(Path(photo).parent)],
        "search": [*common, "search", "dog"],
        "cache-clear": [*common, "cache", "clear"],
        "cache-rebuild": [*common, "cache", "rebuild"],
        "cache-info": [*common, "cache", "info"],
        "debug": [*common, "debug-scores", photo],
        "tune": [*common, "tune"],
        "eval": [*common, "eval", str(tmp_path)],
    }[command]


@pytest.fixture(scope="module")
def prepared(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A data folder with one indexed photo and its thumbnail, shared by every fault."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("faults")
    photos = root / "photos"
    photos.mkdir()
    photo = photos / "a.png"
    pixels = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    common = ["--model", str(tiny_model_dir), "--data-dir", str(root / "data")]
    assert main([*common, "index", str(photos)]) == 0
    return {"common": common, "photo": str(photo), "data": str(root / "data")}


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_each_fault_is_one_designed_line(
    fault: Fault, prepared, tmp_path, monkeypatch, capsysbinary
) -> None:
    import importlib
    import shutil

    if fault.command == "cache-rebuild":  # thumbnails to make, so that one is written
        shutil.rmtree(Path(prepared["data"]) / "thumbnails", ignore_errors=True)

    module_name, _, attribute = fault.target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = attribute.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    assert hasattr(owner, name), fault.target  # the layer still exists under this name

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise fault.error()

    capsysbinary.readouterr()
    monkeypatch.setattr(owner, name, fail)
    code = main(argv(fault.command, prepared["common"], tmp_path, prepared["photo"]))
    # bytes: a name that is not UTF-8 is printed as the bytes the file system gave
    err = capsysbinary.readouterr().err.decode("utf-8", "surrogateescape")
    lines = [line for line in err.splitlines() if line.startswith("gallery-app: error:")]
    assert code == 1, err
    assert len(lines) == 1, err
    for fragment in fault.says:
        assert fragment.replace("{data}", prepared["data"]) in lines[0], lines[0]
    assert "Traceback" not in err
    assert "unexpected" not in err.lower()


def test_the_table_covers_every_command():
    assert {f.command for f in FAULTS} == {
        "index",
        "search",
        "cache-clear",
        "cache-rebuild",
        "cache-info",
        "debug",
        "tune",
        "eval",
    }


def test_verbose_shows_the_traceback_of_a_bug(prepared, monkeypatch, capsys, caplog):
    from gallery_app.core import search

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("vector_id")

    monkeypatch.setattr(search.Searcher, "search", broken)
    assert main(["--verbose", *prepared["common"], "search", "dog"]) == 1
    assert "bug" in capsys.readouterr().err
    assert "Traceback" in caplog.text and "KeyError: 'vector_id'" in caplog.text


@pytest.mark.parametrize(
    ("file_name", "content"),
    [
        ("settings.json", "[" * 100_000 + "]" * 100_000),
        ("settings.json", '{"min_score": 1e999999}'),
        ("settings.json", '{"custom_temperature": ' + "9" * 5000 + "}"),
        ("expansions.json", '{"terms": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("expansions.json", '{"terms": {"dog": {"related": {"pup": 1e999999}}}}'),
        ("expansions.json", '{"terms": {"dog": {"category": ' + "7" * 10_000 + "}}}"),
    ],
    ids=[
        "settings-nested",
        "settings-huge-float",
        "settings-huge-int",
        "expansions-nested",
        "expansions-huge-float",
        "expansions-huge-int",
    ],
)
def test_hostile_config_files_name_themselves(
    prepared, tmp_path, monkeypatch, capsys, file_name, content
):
    """A real file, as a user would leave it: nothing is monkeypatched but the config folder."""
    config = tmp_path / "config"
    config.mkdir()
    (config / file_name).write_text(content)
    monkeypatch.setenv("GALLERY_APP_CONFIG_DIR", str(config))
    preset = ["--preset", "custom"] if file_name == "settings.json" else []
    capsys.readouterr()
    assert main([*prepared["common"], "search", "dog", *preset]) == 1
    err = capsys.readouterr().err
    assert str(config / file_name) in err
    assert "delete it" in err
    assert "Traceback" not in err and "unexpected" not in err.lower()
    assert len(err.strip().splitlines()) == 1, err
