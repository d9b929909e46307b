"""`gallery-app` and its subcommands: index folders, search them."""

from __future__ import annotations

import argparse
import codecs
import json
import logging
import os
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gallery_app.core.errors import GalleryError, StorageError, describe_os_error

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

    search = commands.add_parser(
        "search",
        help="search the indexed photos",
        description="Exact over the whole library: --top-k K gives the K best photos, "
        "--min-score S every photo scoring at least S (with both, the K best of those).",
    )
    search.add_argument("query", metavar="QUERY")
    search.add_argument(
        "--top-k",
        type=_positive_int,
        default=None,
        metavar="K",
        # 20 is search.DEFAULT_TOP_K (not imported here: --help stays quick; a test checks)
        help="the K best photos (default 20; no limit with --min-score)",
    )
    search.add_argument(
        "--min-score",
        type=_score,
        default=None,
        metavar="S",
        help="every photo whose score is at least S (0..1), however many",
    )
    search.add_argument("--no-expand", action="store_true", help="search the query as typed")
    search.add_argument(
        "--aggregate",
        choices=("ensemble", "max"),
        default="ensemble",
        help="ensemble (default): the query and its synonyms become one text vector, and the "
        "score is the model's own sigmoid for it; max: the best weight x score over the "
        "variants, an OR that can only raise scores (more photos above any cut)",
    )
    search.add_argument(
        "--broader",
        action="store_true",
        help="also match broader terms (pet for dog), each with its weight: a photo scores "
        "the best of the query's score and weight x a broader term's score. Never part of "
        "the ensemble vector",
    )
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


def _score(text: str) -> float:
    value = _finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a score lies in 0..1, got {value}")
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    if args.model is None:
        args.model = _saved_model()
    if args.command is None:
        return run_gui(args)
    # Paths are printed as the bytes the file system gave, even when they are not valid UTF-8;
    # a character the terminal's encoding lacks is shown as an escape instead of failing.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors=_OUTPUT_ERRORS)
    try:
        run = getattr(args, "run", None)
        if run is not None:  # subcommands that register their own handler
            return int(run(args))
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
    except Exception as exc:  # every class a user can meet has its own words in describe_failure
        try:
            message = describe_failure(exc, args)
        except Exception:  # the description must never be what fails
            message = f"`gallery-app {args.command}` stopped on {type(exc).__name__}"
        _fail(message, args.verbose)
        return 1


def describe_failure(exc: Exception, args: argparse.Namespace) -> str:
    """The one line a user reads when `exc` stopped a command: what failed, where, and what to
    do. Faults of the machine (disk, permissions, memory, names) are described; anything else
    reaching here is a bug in gallery-app, and the message says so."""
    command = f"gallery-app {args.command}"
    if isinstance(exc, OSError):
        return describe_os_error(exc, _work_folder(args))
    if isinstance(exc, UnicodeEncodeError):
        name = exc.object if len(exc.object) <= 300 else exc.object[:300] + "..."
        return (
            f"the name {name} is not valid UTF-8 ({exc.reason}) and `{command}` cannot use it "
            "there: rename it (or the folder holding it) with a UTF-8 name"
        )
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"`{command}` read text that is not valid UTF-8 ({exc.reason} at byte {exc.start}):"
            " save that file as UTF-8 (run with --verbose to see which file was being read)"
        )
    if isinstance(exc, MemoryError):
        return f"out of memory during `{command}`: close other programs and run it again"
    sqlite_error = _describe_sqlite_error(exc, args)
    if sqlite_error is not None:
        return sqlite_error
    detail = " ".join(str(exc).split())[:200]
    return (
        f"`{command}` stopped on an internal error ({type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + "). This is a bug in gallery-app: please report it with what the same command "
        "prints when run with --verbose (it shows where it happened)"
    )


def _describe_sqlite_error(exc: Exception, args: argparse.Namespace) -> str | None:
    """A catalog error that no layer below turned into a typed one, by SQLite's error code."""
    import sqlite3

    if not isinstance(exc, sqlite3.Error):
        return None
    folder = _work_folder(args)
    code = getattr(exc, "sqlite_errorcode", None)
    code = code & 0xFF if isinstance(code, int) else -1  # the primary code, no extension
    damaged = (
        f"a library catalog in {folder} is damaged: restore it from a backup, or move it aside "
        "and run `gallery-app index` on your folders again to rebuild it"
    )
    words = {
        11: damaged,  # SQLITE_CORRUPT
        26: damaged,  # SQLITE_NOTADB
        13: f"disk full at {folder}: free some space and run again",  # SQLITE_FULL
        8: f"the library in {folder} cannot be written (read-only): make it writable, or use "
        "another data folder with --data-dir",  # SQLITE_READONLY
        14: f"the library catalog in {folder} cannot be opened: check that the folder exists "
        "and that you may write to it",  # SQLITE_CANTOPEN
        10: f"input/output error in {folder}: the disk may be failing or unplugged: check it, "
        "then run again",  # SQLITE_IOERR
        5: f"the library in {folder} is busy (another gallery-app is writing): wait for it to "
        "finish, then run again",  # SQLITE_BUSY
        6: f"the library in {folder} is busy (another gallery-app is writing): wait for it to "
        "finish, then run again",  # SQLITE_LOCKED
    }
    return words.get(code)


def _work_folder(args: argparse.Namespace) -> str:
    """Where a command's writes go, for errors that name no file."""
    try:
        return str(_data_dir(args))
    except Exception:  # the data folder itself cannot be worked out
        return "the data folder"


# --- what reaches the terminal ------------------------------------------------------------

# Bidirectional overrides reorder what follows them on screen: a name could show as another.
_BIDI_CONTROLS = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """Text as it is safe to show in a terminal: control characters (ESC, newline, C1, bidi
    overrides) become visible escapes (`\\x1b`, `\\n`, `\\u202e`); every other character, any
    script or emoji, is kept. Every path or name the CLI prints in text mode goes through this;
    --json needs no such step (JSON escapes control characters itself).

    A byte that is not valid UTF-8 (a surrogate escape, from os.fsdecode) stays a raw byte, as
    the file system gave it, unless it is one of the C1 control bytes 0x80-0x9f."""
    if text.isprintable():
        return text
    return "".join(_visible(char) for char in text)


def _visible(char: str) -> str:
    code = ord(char)
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if 0xDC80 <= code <= 0xDC9F:  # surrogate-escaped C1 byte
        return f"\\x{code - 0xDC00:02x}"
    category = unicodedata.category(char)
    if category == "Cc" or category in ("Zl", "Zp") or code in _BIDI_CONTROLS:
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def argv_text(text: str) -> str:
    """A query as typed, as valid Unicode: bytes that were not valid UTF-8 (kept by Python as
    surrogate escapes, which no model or codec takes) become U+FFFD, as a browser shows them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


class _PrintableFormatter(logging.Formatter):
    """Log lines name files too: their message goes through `printable` (tracebacks do not)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def _surrogate_or_backslash(error: UnicodeError) -> tuple[str | bytes, int]:
    """stdout's error handler: surrogate escapes are written as the bytes they stand for,
    any other character the output encoding lacks as a backslash escape."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    chunk = error.object[error.start : error.end]
    if all(0xDC80 <= ord(char) <= 0xDCFF for char in chunk):
        return bytes(ord(char) - 0xDC00 for char in chunk), error.end
    return codecs.backslashreplace_errors(error)


_OUTPUT_ERRORS = "gallery_app.surrogate_or_backslash"
codecs.register_error(_OUTPUT_ERRORS, _surrogate_or_backslash)


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
    print(f"gallery-app: error: {printable(message)}", file=sys.stderr)


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
        prompt_template=argv_text(args.prompt_template or DEFAULT_PROMPT_TEMPLATE),
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


def run_search(args: argparse.Namespace) -> int:
    from gallery_app.core.calibrate import preset_calibration
    from gallery_app.core.expansion import Expander, load_dictionary
    from gallery_app.core.library import default_config_dir
    from gallery_app.core.search import DEFAULT_TOP_K, Searcher

    custom = None
    if args.preset == "custom":  # read before the model loads: a missing preset fails fast
        from gallery_app.core.settings_store import load_settings

        custom = load_settings().custom
        preset_calibration("custom", custom=custom)
    query = argv_text(args.query)
    # Before the library opens: a bad expansions file fails fast, and holds nothing open.
    expander = Expander(load_dictionary(default_config_dir() / "expansions.json"))
    encoder, library = _open(args, read_only=True)
    calibration = preset_calibration(args.preset, encoder.logit_scale, encoder.logit_bias, custom)
    calibration = calibration.with_overrides(args.temperature, args.centre)
    # --min-score alone is uncapped: every photo at or above it. Neither: the default top-k.
    top_k = args.top_k if args.top_k is not None or args.min_score is not None else DEFAULT_TOP_K
    with library:
        searcher = Searcher(library, encoder, expander)
        hits = searcher.search(
            query,
            top_k=None if args.min_score is not None else top_k,
            expand=not args.no_expand,
            aggregate=args.aggregate,
            broader=args.broader,
        )
        results = hits.rank(calibration, top_k=top_k, min_score=args.min_score)
        empty_library = library.catalog.count() == 0
    in_variants = hits.members if hits.aggregate == "ensemble" else hits.listed
    if args.json:
        print(
            json.dumps(
                {
                    "query": query,
                    "aggregate": hits.aggregate,
                    "preset": calibration.preset,
                    "temperature": calibration.temperature,
                    "centre": calibration.centre,
                    "min_score": args.min_score,
                    "top_k": top_k,
                    "variants": [_variant_json(v) for v in in_variants],
                    "broader": [_variant_json(v) for v in hits.broader]
                    if hits.aggregate == "ensemble"
                    else [],
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
    how = "ensemble of" if hits.aggregate == "ensemble" else "max over"
    listed = ", ".join(f"{v.text} ({v.weight:g})" for v in in_variants)
    extra = (
        "; broader: " + ", ".join(f"{v.text} ({v.weight:g})" for v in hits.broader)
        if hits.aggregate == "ensemble" and hits.broader
        else ""
    )
    print(
        printable(
            f"{query!r}: preset {calibration.preset} (T={calibration.temperature:.2f}, "
            f"c={calibration.centre:.4f}), {how} {len(in_variants)} variant(s): {listed}{extra}"
        )
    )
    if empty_library:
        print("The library is empty: run `gallery-app index FOLDER` first.", file=sys.stderr)
        return 0
    width = max([len(r.variant) for r in results] + [7])
    print(f"{'#':>3}  {'score':>6}  {'raw':>7}  {'variant':<{width}}  path")
    for rank, r in enumerate(results, 1):
        print(printable(f"{rank:>3}  {r.score:6.4f}  {r.raw:7.4f}  {r.variant:<{width}}  {r.path}"))
    if args.min_score is not None:
        print(f"{len(results)} photo(s) score at least {args.min_score:g}", file=sys.stderr)
    return 0


def _variant_json(variant: Any) -> dict[str, Any]:
    return {
        "text": variant.text,
        "prompt": variant.prompt,
        "weight": variant.weight,
        "kind": variant.kind,
    }


def run_cache(args: argparse.Namespace) -> int:
    """The thumbnail cache shared by every library in the data folder: no model needed."""
    from gallery_app.core.catalog import Catalog
    from gallery_app.core.imaging import DecodeError, ThumbnailCache
    from gallery_app.core.library import known_libraries, library_folder

    data_dir = _data_dir(args)
    cache = ThumbnailCache(data_dir / "thumbnails")
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


if __name__ == "__main__":
    sys.exit(main())
