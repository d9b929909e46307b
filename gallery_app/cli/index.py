"""`gallery-app index`: add folders to the library, or rescan every folder it holds."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from gallery_app.cli.common import open_encoder_and_library, positive_int, printable
from gallery_app.core.errors import GalleryError


def register(commands: Any) -> None:
    index = commands.add_parser("index", help="index (or re-index) folders of photos")
    index.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="folders to index (none: rescan every folder of the library)",
    )
    index.add_argument("--json", action="store_true", help="print a JSON report")
    index.add_argument("--batch-size", type=positive_int, default=8, help=argparse.SUPPRESS)
    index.set_defaults(handler=run_index)


def run_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gallery_app.core.indexer import Indexer, Progress

    encoder, library = open_encoder_and_library(args, writer=True)
    paths = args.paths
    if not paths:  # every folder of the library; an unplugged one keeps its photos
        paths = [f.path for f in library.catalog.folders()]
        for offline in [p for p in paths if not os.path.isdir(p)]:
            print(f"skipped (offline): {printable(offline)}: its photos are kept", file=sys.stderr)
        paths = [p for p in paths if os.path.isdir(p)]
        if not paths:
            library.close()
            raise GalleryError(
                "No folder of the library can be rescanned (none added yet, or all offline). "
                "Add one with: gallery-app index FOLDER"
            )
    with library, tqdm(total=0, unit="img", file=sys.stderr, disable=None) as bar:

        def on_progress(progress: Progress) -> None:
            bar.total = progress.total
            bar.n = progress.done
            bar.set_postfix(failed=progress.failed, refresh=False)
            bar.refresh()

        report = Indexer(library, encoder, batch_size=args.batch_size).index(
            paths, progress=on_progress
        )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(
            f"indexed {report.indexed}, unchanged {report.unchanged}, removed {report.removed}, "
            f"failed {len(report.failed)} of {report.total} images in {report.seconds:.1f} s"
        )
        for failure in report.failed:
            print(printable(f"  failed: {failure.path}: {failure.reason}"))
    return 0
