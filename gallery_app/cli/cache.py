"""`gallery-app cache`: the thumbnail cache shared by every library: size, clear, rebuild."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from gallery_app.cli.common import data_dir, indexed_files_per_library, printable
from gallery_app.core.errors import StorageError, describe_os_error

log = logging.getLogger("gallery_app")


def register(commands: Any) -> None:
    cache = commands.add_parser("cache", help="thumbnail cache: size, clear, rebuild")
    cache.add_argument("action", choices=("info", "clear", "rebuild"))
    cache.add_argument("--json", action="store_true", help="print JSON")
    cache.set_defaults(handler=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    """The thumbnail cache shared by every library in the data folder: no model needed."""
    from gallery_app.core.imaging import DecodeError, ThumbnailCache

    cache = ThumbnailCache(data_dir(args) / "thumbnails")
    made = failed = 0
    if args.action == "clear":
        try:
            removed = cache.clear()
        except OSError as exc:
            raise StorageError(
                f"Cannot clear the thumbnail cache {cache.folder}: "
                f"{describe_os_error(exc, cache.folder)}"
            ) from exc
        log.info("removed %d thumbnails (%d bytes)", removed.files, removed.size_bytes)
    elif args.action == "rebuild":
        for files in indexed_files_per_library(args):
            for image_path, mtime_ns in files:
                try:
                    made += cache.ensure(image_path, mtime_ns)
                except DecodeError as exc:  # the original: reported, the others go on
                    failed += 1
                    log.warning("no thumbnail for %s: %s", image_path, exc)
                except OSError as exc:  # the cache itself cannot be written: none would be
                    raise StorageError(
                        f"Cannot write thumbnails to {cache.folder} ({made} made so far): "
                        f"{describe_os_error(exc, cache.folder)}"
                    ) from exc
    stats = cache.stats()
    if args.json:
        print(
            json.dumps(
                {
                    "folder": str(cache.folder),
                    "files": stats.files,
                    "bytes": stats.size_bytes,
                    "made": made,
                    "failed": failed,
                }
            )
        )
    else:
        if args.action == "rebuild":
            print(f"made {made} thumbnails, {failed} originals could not be read")
        print(
            printable(f"{cache.folder}: {stats.files} thumbnails, {_human_bytes(stats.size_bytes)}")
        )
    return 0


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
