"""What every `gallery-app` command shares: opening the encoder and the library, argument
types, terminal-safe text, and the one place a failure becomes the line a user reads."""

from __future__ import annotations

import argparse
import codecs
import logging
import os
import stat
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gallery_app.core.errors import ConfigError, GalleryError, describe_os_error

if TYPE_CHECKING:
    from gallery_app.core.calibrate import Calibration

log = logging.getLogger("gallery_app")


# --- argument types -----------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def unit_score(text: str) -> float:
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a score lies in 0..1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


class _DeprecatedCentreAlias(argparse.Action):
    """--threshold, the old name of --centre: still accepted, with a one-line notice."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        print(f"note: {option} is now called --centre; {option} will go.", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_centre_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--centre C (the raw cosine that scores 0.5), and its hidden deprecated --threshold."""
    parser.add_argument("--centre", type=finite_float, metavar="C", help=help_text)
    parser.add_argument(
        "--threshold",
        dest="centre",
        type=finite_float,
        action=_DeprecatedCentreAlias,
        help=argparse.SUPPRESS,
    )


def add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset, --temperature, --centre of the commands that start from the saved settings."""
    parser.add_argument(
        "--preset",
        choices=("model", "seed", "custom"),
        help="calibration preset (default: the one saved in your settings, else model)",
    )
    parser.add_argument("--temperature", type=positive_float, metavar="T", help="override T")
    add_centre_argument(parser, "override c")


def current_calibration(args: argparse.Namespace, encoder: Any) -> Calibration:
    """The app's settings, then the command line's preset and overrides on top (arguments of
    add_calibration_arguments)."""
    from dataclasses import replace

    from gallery_app.core.settings_store import load_settings

    settings = load_settings()
    if args.preset is not None:
        settings = replace(settings, preset=args.preset)
    calibration = settings.calibration(encoder.logit_scale, encoder.logit_bias)
    return calibration.with_overrides(args.temperature, args.centre)


def describe_calibration(calibration: Calibration) -> str:
    return (
        f"preset {calibration.preset} (T={calibration.temperature:.2f}, c={calibration.centre:.4f})"
    )


# --- opening the encoder and the library --------------------------------------------------


def data_dir(args: argparse.Namespace) -> Path:
    from gallery_app.core.library import default_data_dir

    return Path(args.data_dir.expanduser() if args.data_dir else default_data_dir())


def saved_model() -> str | None:
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


def resolve_model(args: argparse.Namespace) -> str:
    """The model a command uses: --model, else $GALLERY_APP_MODEL, the window's choice, the
    default (the previous default while only it has a library in the data folder)."""
    from gallery_app.core.embeddings import resolve_model_id

    return resolve_model_id(args.model, data_dir(args))


def open_encoder(args: argparse.Namespace) -> Any:
    """The SigLIP encoder of --model, --prompt-template and --fast (int8), for every command
    that encodes: one place, so each option means the same everywhere."""
    from gallery_app.core.embeddings import (
        DEFAULT_PROMPT_TEMPLATE,
        SiglipEncoder,
        resolve_precision,
    )

    model_id = resolve_model(args)
    # A hub model not cached yet is fetched with a progress bar, not silently by transformers.
    download_with_progress(model_id)
    return SiglipEncoder.load(
        model_id,
        prompt_template=argv_text(args.prompt_template or DEFAULT_PROMPT_TEMPLATE),
        precision=resolve_precision(args.fast),
    )


def open_encoder_and_library(args: argparse.Namespace, *, writer: bool) -> tuple[Any, Any]:
    """Encoder + its library. Writers (index) take the writer lock; readers (search, tune,
    debug-scores) open read_only: without the lock, so they never keep `index` out (or each
    other), over what has been committed so far."""
    from gallery_app.core.library import Library

    encoder = open_encoder(args)
    library = Library(
        data_dir(args),
        encoder.model_id,
        encoder.dim,
        read_only=not writer,
        location=getattr(args, "library", None),
    )
    for warning in library.warnings:
        log.warning("%s", warning)
    if library.repair.changed and not library.repair.rebuilt and writer:
        log.warning("the vector index was out of date and has been repaired from the catalog")
    return encoder, library


def open_library_at(
    args: argparse.Namespace, location: str, model_id: str, dim: int, *, writer: bool
) -> Any:
    """The library of `model_id` at `location` (a postgresql:// URL or a folder), with no
    encoder: `library copy` moves vectors, it never encodes."""
    from gallery_app.core.library import Library

    library = Library(data_dir(args), model_id, dim, read_only=not writer, location=location)
    for warning in library.warnings:
        log.warning("%s", warning)
    return library


def open_library_of_model(args: argparse.Namespace, *, writer: bool) -> Any:
    """The library of --model without loading the model (its catalog knows the vector size),
    for commands that only read or edit what the catalog holds (`marks`)."""
    from gallery_app.core.embeddings import resolve_model_id
    from gallery_app.core.library import Library, library_dim

    model_id, folder = resolve_model_id(args.model), data_dir(args)
    location = getattr(args, "library", None)  # --library, else $GALLERY_APP_LIBRARY
    dim = library_dim(folder, model_id, location)
    if dim is None:
        raise ConfigError(
            f"There is no library for the model {model_id} in {folder} yet: index a folder "
            "first (`gallery-app index FOLDER`)."
        )
    return Library(folder, model_id, dim, read_only=not writer, location=location)


def indexed_files_per_library(args: argparse.Namespace) -> Iterator[list[tuple[str, int]]]:
    """(path, mtime_ns) of the photos of each library in the data folder, read-only and with
    no model: each catalog is closed before its files are handed on."""
    from gallery_app.core.catalog import Catalog
    from gallery_app.core.library import known_libraries, library_folder

    folder = data_dir(args)
    for model_id, dim in known_libraries(folder):
        catalog = Catalog(
            library_folder(folder, model_id) / "catalog.sqlite", model_id, dim, read_only=True
        )
        try:
            files = catalog.indexed_files()
        finally:
            catalog.close()
        yield files


def load_expander() -> Any:
    """The query expander: built-in dictionary plus the user's expansions.json. Load it before
    the library opens: a bad file fails fast, and holds nothing open."""
    from gallery_app.core.expansion import Expander, load_dictionary
    from gallery_app.core.library import default_config_dir

    return Expander(load_dictionary(default_config_dir() / "expansions.json"))


def not_regular_file(path: str | Path) -> str | None:
    """Why `path` cannot be opened as a photo without risk, or None. A named pipe blocks the
    open until something writes to it (forever), a device never ends: neither is a photo.

    Checked on the name before the model loads, so a wrong argument fails at once;
    `imaging.decode` checks the open descriptor again when the photo is read. A missing or
    unreadable file passes here; decode names it."""
    from gallery_app.core.fileio import file_kind

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else f"not a regular file ({file_kind(mode)})"


def require_regular_file(path: str | Path) -> None:
    """ConfigError naming `path` when it is not a regular file (see not_regular_file)."""
    problem = not_regular_file(path)
    if problem is not None:
        raise ConfigError(f"Cannot read image {path}: {problem}. Give the path of a photo file.")


# --- failures: the one line a user reads ---------------------------------------------------


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
        return str(data_dir(args))
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


class PrintableFormatter(logging.Formatter):
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


def configure_output(verbose: bool) -> None:
    """Log lines to stderr through `printable`; INFO and tracebacks with --verbose."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


def configure_streams() -> None:
    """Paths are printed as the bytes the file system gave, even when they are not valid UTF-8;
    a character the terminal's encoding lacks is shown as an escape instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors=_OUTPUT_ERRORS)


def fail(message: str, verbose: bool) -> None:
    """`gallery-app: error: MESSAGE` on stderr (with the traceback under --verbose)."""
    if verbose:
        log.exception("fatal")
    print(f"gallery-app: error: {printable(message)}", file=sys.stderr)


def download_with_progress(model_id: str) -> None:
    """Before a command loads a hub model that is not cached yet: fetch it here, with the
    progress bar, instead of inside transformers (silent for as long as it takes). Ctrl-C
    becomes one ModelUnavailable line; the next run continues the download."""
    from gallery_app.core.download import DownloadCancelled, download_model, is_cached
    from gallery_app.core.errors import ModelUnavailable

    if is_cached(model_id):
        return
    bar = ProgressBar()
    try:
        download_model(model_id, progress=bar.update)
    except (KeyboardInterrupt, DownloadCancelled):
        raise ModelUnavailable(
            f"download of {model_id} cancelled: what came is kept; run the same command to "
            "continue where it stopped"
        ) from None
    finally:
        bar.close()


class ProgressBar:
    """tqdm on stderr showing the core's own numbers (bytes, speed over this session's bytes,
    time left): tqdm's own rate would count resumed bytes as if they had just arrived."""

    def __init__(self) -> None:
        self._bar: Any = None

    def update(self, progress: Any) -> None:
        from tqdm import tqdm

        from gallery_app.core.download import describe

        if self._bar is None:
            self._bar = tqdm(
                total=max(progress.total_bytes, 1),
                file=sys.stderr,
                bar_format="{percentage:3.0f}%|{bar:20}| {postfix}",
                dynamic_ncols=True,
            )
        self._bar.n = progress.done_bytes
        self._bar.set_postfix_str(describe(progress), refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
