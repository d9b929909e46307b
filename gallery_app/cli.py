"""`gallery-app` and its subcommands: index folders, search them."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gallery_app.core.errors import GalleryError

log = logging.getLogger("gallery_app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gallery-app",
        description="Find photos in local folders by what they show (SigLIP).",
    )
    parser.add_argument(
        "--model",
        metavar="ID_OR_PATH",
        help="SigLIP checkpoint: hub id or local folder "
        "(env GALLERY_APP_MODEL; default google/siglip-base-patch16-224)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help="where libraries and thumbnails live (env GALLERY_APP_DATA_DIR)",
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

    index = commands.add_parser("index", help="index (or re-index) folders of photos")
    index.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="folders to index (none: rescan every folder of the library)",
    )
    index.add_argument("--json", action="store_true", help="print a JSON report")
    index.add_argument("--batch-size", type=_positive_int, default=8, help=argparse.SUPPRESS)

    search = commands.add_parser("search", help="search the indexed photos")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--top-k", type=_positive_int, default=20, metavar="K")
    search.add_argument("--no-expand", action="store_true", help="search the query as typed")
    search.add_argument(
        "--preset",
        choices=("model", "seed", "custom"),
        default="model",
        help="custom: the T and c saved by `gallery-app tune` (apply)",
    )
    search.add_argument(
        "--temperature", type=_positive_float, metavar="T", help="override the preset's T"
    )
    add_centre_argument(search, "override the preset's c: the raw cosine that scores 0.5")
    search.add_argument("--json", action="store_true", help="print JSON")

    from gallery_app.score_tools import add_score_tool_commands

    add_score_tool_commands(commands)  # debug-scores, tune, eval

    cache = commands.add_parser("cache", help="thumbnail cache: size, clear, rebuild")
    cache.add_argument("action", choices=("info", "clear", "rebuild"))
    cache.add_argument("--json", action="store_true", help="print JSON")
    return parser


class _DeprecatedCentreAlias(argparse.Action):
    """--threshold, the old name of --centre: still accepted, with a one-line notice."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        print(f"note: {option} is now called --centre; {option} will go.", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_centre_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--centre C (the raw cosine that scores 0.5), and its hidden deprecated --threshold."""
    parser.add_argument("--centre", type=_finite_float, metavar="C", help=help_text)
    parser.add_argument(
        "--threshold",
        dest="centre",
        type=_finite_float,
        action=_DeprecatedCentreAlias,
        help=argparse.SUPPRESS,
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.model is None:
        args.model = _saved_model()
    if args.command is None:
        return run_gui(args)
    # Paths are printed as the bytes the file system gave, even when they are not valid UTF-8.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")
    try:
        handler = getattr(args, "run", None)
        if handler is not None:  # subcommands that register their own handler
            return int(handler(args))
        if args.command == "index":
            return run_index(args)
        if args.command == "cache":
            return run_cache(args)
        return run_search(args)
    except GalleryError as exc:
        _fail(str(exc), args.verbose)
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
    except Exception as exc:
        _fail(
            f"unexpected {type(exc).__name__}: {exc} (run with --verbose for details)", args.verbose
        )
        return 1


def run_gui(args: argparse.Namespace) -> int:
    """No subcommand: open the desktop window."""
    try:
        from gallery_app.ui.app import run_app
        from gallery_app.ui.platform_check import CannotStart
    except ImportError as exc:  # e.g. a Qt platform library missing
        _fail(
            f"the desktop app cannot start ({exc}); the index/search commands still work",
            args.verbose,
        )
        return 1
    try:
        return run_app(_data_dir(args), args.model, fast=args.fast)
    except CannotStart as exc:  # no display, or a library Qt needs: one line, never SIGABRT
        _fail(str(exc), verbose=False)
        return 1


def _fail(message: str, verbose: bool) -> None:
    if verbose:
        log.exception("fatal")
    print(f"gallery-app: error: {message}", file=sys.stderr)


def _open(args: argparse.Namespace, read_only: bool = False) -> tuple[Any, Any]:
    """Encoder + library. Reading commands (search, tune, debug-scores) open it read_only:
    without the writer lock, so they never keep `index` out (or each other), over what has
    been committed so far."""
    from gallery_app.core.embeddings import (
        DEFAULT_PROMPT_TEMPLATE,
        SiglipEncoder,
        resolve_precision,
    )
    from gallery_app.core.library import Library

    encoder = SiglipEncoder.load(
        args.model,
        prompt_template=args.prompt_template or DEFAULT_PROMPT_TEMPLATE,
        precision=resolve_precision(args.fast),
    )
    library = Library(_data_dir(args), encoder.model_id, encoder.dim, read_only=read_only)
    for warning in library.warnings:
        log.warning("%s", warning)
    if library.repair.changed and not library.repair.rebuilt and not read_only:
        log.warning("the vector index was out of date and has been repaired from the catalog")
    return encoder, library


def _saved_model() -> str | None:
    """The model chosen in the window (settings.json), unless $GALLERY_APP_MODEL says."""
    from gallery_app.core.embeddings import MODEL_ENV
    from gallery_app.core.settings_store import load_settings

    if os.environ.get(MODEL_ENV):
        return None
    try:
        return load_settings().model
    except GalleryError as exc:  # reported by the commands that need the file
        log.info("%s", exc)
        return None


def _data_dir(args: argparse.Namespace) -> Path:
    from gallery_app.core.library import default_data_dir

    return Path(args.data_dir.expanduser() if args.data_dir else default_data_dir())


def run_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gallery_app.core.indexer import Indexer, Progress

    encoder, library = _open(args)
    paths = args.paths
    if not paths:  # every folder of the library; an unplugged one keeps its photos
        paths = [f.path for f in library.catalog.folders()]
        for offline in [p for p in paths if not os.path.isdir(p)]:
            print(f"skipped (offline): {offline}: its photos are kept", file=sys.stderr)
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
            print(f"  failed: {failure.path}: {failure.reason}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from gallery_app.core.calibrate import preset_calibration
    from gallery_app.core.expansion import Expander, load_dictionary
    from gallery_app.core.library import default_config_dir
    from gallery_app.core.search import Searcher

    custom = None
    if args.preset == "custom":  # read before the model loads: a missing preset fails fast
        from gallery_app.core.settings_store import load_settings

        custom = load_settings().custom
        preset_calibration("custom", custom=custom)
    encoder, library = _open(args, read_only=True)
    calibration = preset_calibration(args.preset, encoder.logit_scale, encoder.logit_bias, custom)
    calibration = calibration.with_overrides(args.temperature, args.centre)
    expander = Expander(load_dictionary(default_config_dir() / "expansions.json"))
    with library:
        searcher = Searcher(library, encoder, expander)
        hits = searcher.search(args.query, top_k=args.top_k, expand=not args.no_expand)
        results = hits.rank(calibration, top_k=args.top_k)
        empty_library = library.catalog.count() == 0
    if args.json:
        print(
            json.dumps(
                {
                    "query": args.query,
                    "preset": calibration.preset,
                    "temperature": calibration.temperature,
                    "centre": calibration.centre,
                    "variants": [
                        {"text": v.text, "prompt": v.prompt, "weight": v.weight}
                        for v in hits.variants
                    ],
                    "results": [
                        {
                            "path": r.path,
                            "score": r.score,
                            "raw": r.raw,
                            "variant": r.variant,
                            "prompt": r.prompt,
                            "weight": r.weight,
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{args.query!r}: preset {calibration.preset} (T={calibration.temperature:.2f}, "
        f"c={calibration.centre:.4f}), {len(hits.variants)} variant(s): "
        + ", ".join(f"{v.text} ({v.weight:g})" for v in hits.variants)
    )
    if empty_library:
        print("The library is empty: run `gallery-app index FOLDER` first.", file=sys.stderr)
        return 0
    width = max([len(r.variant) for r in results] + [7])
    print(f"{'#':>3}  {'score':>6}  {'raw':>7}  {'variant':<{width}}  path")
    for rank, r in enumerate(results, 1):
        print(f"{rank:>3}  {r.score:6.4f}  {r.raw:7.4f}  {r.variant:<{width}}  {r.path}")
    return 0


def run_cache(args: argparse.Namespace) -> int:
    """The thumbnail cache shared by every library in the data folder: no model needed."""
    from gallery_app.core.catalog import Catalog
    from gallery_app.core.imaging import DecodeError, ThumbnailCache
    from gallery_app.core.library import known_libraries, library_folder

    data_dir = _data_dir(args)
    cache = ThumbnailCache(data_dir / "thumbnails")
    made = failed = 0
    if args.action == "clear":
        removed = cache.clear()
        log.info("removed %d thumbnails (%d bytes)", removed.files, removed.size_bytes)
    elif args.action == "rebuild":
        for model_id, dim in known_libraries(data_dir):
            path = library_folder(data_dir, model_id) / "catalog.sqlite"
            catalog = Catalog(path, model_id, dim, read_only=True)
            try:
                files = catalog.indexed_files()
            finally:
                catalog.close()
            for image_path, mtime_ns in files:
                try:
                    made += cache.ensure(image_path, mtime_ns)
                except (DecodeError, OSError) as exc:
                    failed += 1
                    log.warning("no thumbnail for %s: %s", image_path, exc)
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
        print(f"{cache.folder}: {stats.files} thumbnails, {_human_bytes(stats.size_bytes)}")
    return 0


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


if __name__ == "__main__":
    sys.exit(main())
