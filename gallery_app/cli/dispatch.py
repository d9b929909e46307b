"""The `gallery-app` parser and its one dispatch: each command group module registers its
subcommands, and `main` runs the handler they set, reporting any failure in one line.

Adding a command group: a module with `register(commands)` that adds its subparsers, each
with `set_defaults(handler=run_x)` (run_x takes the parsed arguments, returns the exit
status), and one entry in COMMAND_GROUPS."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gallery_app.cli import (
    cache,
    debug_scores,
    duplicates,
    evaluate,
    index,
    library,
    marks,
    models,
    search,
    tag,
    tune,
)
from gallery_app.cli.common import (
    configure_output,
    configure_streams,
    describe_failure,
    fail,
    saved_model,
)
from gallery_app.cli.gui import run_gui
from gallery_app.core.errors import GalleryError

# In the order `gallery-app --help` lists them.
COMMAND_GROUPS = (
    index,
    search,
    tag,
    duplicates,
    debug_scores,
    tune,
    marks,
    evaluate,
    cache,
    library,
    models,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gallery-app",
        description="Find photos in local folders by what they show (SigLIP).",
    )
    parser.add_argument(
        "--model",
        metavar="ID_OR_PATH",
        help="SigLIP or SigLIP 2 checkpoint: hub id or local folder (env GALLERY_APP_MODEL; "
        "default: the model chosen in the window, else google/siglip2-base-patch16-224, or "
        "google/siglip-base-patch16-224 while only that model has a library; "
        "`gallery-app models` lists known ones)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help="where libraries and thumbnails live (env GALLERY_APP_DATA_DIR)",
    )
    parser.add_argument(
        "--library",
        metavar="URL_OR_DIR",
        help="where the libraries live: a postgresql:// URL (a shared library; password from "
        "PGPASSWORD or ~/.pgpass) or a folder (env GALLERY_APP_LIBRARY; default: the data dir)",
    )
    parser.add_argument(
        "--prompt-template",
        metavar="TEMPLATE",
        default=None,
        help="text given to the model, {} is the query (default: 'a photo of {}.')",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        default=None,
        help="int8 model on the CPU: ~2x faster indexing and text encoding, embeddings within "
        "cosine 0.99 of full precision (env GALLERY_APP_INT8=1)",
    )
    parser.add_argument("--verbose", action="store_true", help="log details and tracebacks")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", description="with no command, the desktop app opens"
    )
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_output(args.verbose)
    if args.model is None:
        args.model = saved_model()
    if args.command is None:
        return run_gui(args)
    configure_streams()
    try:
        return int(args.handler(args))
    except GalleryError as exc:
        fail(str(exc), args.verbose)
        return 1
    except BrokenPipeError:
        # The reader went away (`gallery-app search ... --json | head`): nothing to report.
        # Point stdout at devnull so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: what was indexed is kept; run the same command to continue",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:  # every class a user can meet has its own words in describe_failure
        try:
            message = describe_failure(exc, args)
        except Exception:  # the description must never be what fails
            message = f"`gallery-app {args.command}` stopped on {type(exc).__name__}"
        fail(message, args.verbose)
        return 1
