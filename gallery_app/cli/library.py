"""`gallery-app library copy SRC DST`: move libraries between SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gallery_app.cli.common import open_library_at, positive_int, printable
from gallery_app.core.errors import GalleryError


def register(commands: Any) -> None:
    library = commands.add_parser("library", help="move a library between backends")
    actions = library.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    copy = actions.add_parser(
        "copy",
        help="copy libraries SQLite <-> PostgreSQL: vectors (no re-encoding), tags, marks; "
        "resumable, verified",
    )
    copy.add_argument("source", metavar="SRC", help="a data folder or a postgresql:// URL")
    copy.add_argument("target", metavar="DST", help="a data folder or a postgresql:// URL")
    copy.add_argument(
        "--only-model",
        metavar="ID",
        help="copy only the library of this model id (default: every library in SRC)",
    )
    copy.add_argument("--batch-size", type=positive_int, default=500, help=argparse.SUPPRESS)
    copy.set_defaults(handler=run_copy)


def run_copy(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gallery_app.core.library import known_libraries
    from gallery_app.core.library_copy import copy_library
    from gallery_app.core.pg_catalog import is_postgres_url, redact

    source, target = args.source, args.target
    if not is_postgres_url(source) and not is_postgres_url(target):
        raise GalleryError("One of SRC and DST must be a postgresql:// URL (the other a folder).")
    libraries = known_libraries(source)
    if args.only_model is not None:
        libraries = [(m, d) for m, d in libraries if m == args.only_model]
    if not libraries:
        raise GalleryError(f"No library to copy in {printable(redact(source))}.")
    failed = 0
    for model_id, dim in libraries:
        print(printable(f"{model_id}: {redact(source)} -> {redact(target)}"))
        with (
            open_library_at(args, source, model_id, dim, writer=False) as src,
            open_library_at(args, target, model_id, dim, writer=True) as dst,
            tqdm(total=0, unit="img", file=sys.stderr, disable=None) as bar,
        ):

            def on_progress(done: int, total: int) -> None:
                bar.total, bar.n = total, done
                bar.refresh()

            report = copy_library(src, dst, on_progress, batch_size=args.batch_size)
        print(f"  copied {report.copied}, already there {report.skipped}")
        for side, summary in (("source", report.source), ("target", report.target)):
            for line in summary.lines():
                print(f"  {side}: {line}")
        if report.verified:
            print("  verified: the counts and the vector checksum match")
        else:
            failed += 1
            print(
                "  NOT verified: source and target differ (was either changed during the copy? "
                "run the same command again)",
                file=sys.stderr,
            )
    return 1 if failed else 0
