"""`gallery-app tune`: an interpreter of tuning commands over a text stream (works when piped)."""

from __future__ import annotations

import argparse
import csv
import io
import math
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from gallery_app.cli.common import (
    argv_text,
    load_expander,
    not_regular_file,
    open_encoder_and_library,
    printable,
    require_regular_file,
)
from gallery_app.core.calibrate import (
    PRESET_NAMES,
    Calibration,
    preset_calibration,
    recommend_calibration,
)
from gallery_app.core.errors import ConfigError, GalleryError
from gallery_app.core.expansion import Expander
from gallery_app.core.feedback import (
    MIN_MARKS_EACH,
    TOP_ONLY_PRIOR_SCALE,
    FeedbackFit,
    Judgement,
    fit_feedback,
    fit_marks,
    parts_line,
)
from gallery_app.core.jsonfile import read_regular_file
from gallery_app.core.library import Library
from gallery_app.core.probes import (
    DEFAULT_PROBE_QUERIES,
    ImageVectors,
    TextImageEncoder,
    encode_files,
    probe_raw,
    sample_library,
)
from gallery_app.core.search import (
    AGGREGATES,
    ENSEMBLE,
    Searcher,
    SearchHits,
    hits_from_vectors,
    prompt_variants,
)
from gallery_app.core.settings_store import (
    UserSettings,
    load_settings,
    save_settings,
    settings_path,
)

# `test` shows T at these multiples of the current one, the seed's own 10..30, and the same
# multiples of the model's T: enough to see how fast a score moves with T around each.
CURRENT_MULTIPLES = (0.5, 0.75, 1.0, 1.5, 2.0)
SEED_TEMPERATURES = (10.0, 15.0, 20.0, 25.0, 30.0)
MODEL_MULTIPLES = (0.5, 0.75, 1.0, 1.25, 1.5)
# A recommendation reads the score distribution of this many photos at most: quantiles are
# stable well before that, and it keeps `recommend` quick on a large library.
RECOMMEND_SAMPLE = 2000
TRUE_WORDS = {"1", "true", "yes", "y", "relevant"}
FALSE_WORDS = {"0", "false", "no", "n", "irrelevant"}

HELP = """\
commands:
  test TERM          raw cosine and calibrated score of TERM for a range of temperatures
                     (against IMAGE if given, else the library's best photo for TERM)
  recommend          a T and c from this library's score distribution for probe queries
  feedback FILE      fit T and c to a CSV of path,query,relevant (1/0) judgements, on the
                     raw cosine the search ranks by (ensemble or max, expand on or off)
  feedback --marks   the same fit on the marks made in the window (kept in this library)
  apply              save the last recommendation or fit (else the current T and c) as the
                     custom preset used by the app, with the current expand setting
  set T              use temperature T          centre C      use centre c (score 0.5 at c)
  preset NAME        model | seed | custom      expand on|off search query variants or not
  aggregate NAME     ensemble (one text vector for the query and its synonyms) | max
  show               the current settings       help          this text
  quit               leave (end of input does the same)"""


def register(commands: Any) -> None:
    tune = commands.add_parser(
        "tune",
        help="tune the score's temperature and centre interactively (reads stdin)",
        description="Reads commands from stdin (type `help`); works when piped.",
    )
    tune.add_argument("image", nargs="?", metavar="IMAGE", help="photo that `test` scores")
    tune.set_defaults(handler=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    if args.image is not None:  # before the model loads: a bad IMAGE fails fast
        require_regular_file(args.image)
    # A term typed in another encoding must not stop the session: its bytes reach `test`
    # as surrogate escapes, which it replaces.
    reconfigure = getattr(sys.stdin, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")
    expander = load_expander()
    encoder, library = open_encoder_and_library(args, writer=False)
    with library:
        tuner = Tuner(
            encoder,
            library,
            out=sys.stdout,
            err=sys.stderr,
            image=args.image,
            expander=expander,
            logit_scale=encoder.logit_scale,
            logit_bias=encoder.logit_bias,
        )
        interactive = sys.stdin.isatty()
        try:
            return tuner.run(sys.stdin, prompt="tune> " if interactive else "")
        except KeyboardInterrupt:  # Ctrl-C is how many people leave a prompt: not an error
            print()
            return 130


class TuneError(GalleryError):
    """A tuning command that cannot run as typed; the session goes on."""


class Tuner:
    """Holds the calibration being tuned; each command line changes or reports on it."""

    def __init__(
        self,
        encoder: TextImageEncoder,
        library: Library,
        out: TextIO,
        err: TextIO | None = None,
        image: str | Path | None = None,
        expander: Expander | None = None,
        settings_file: Path | None = None,
        logit_scale: float = 0.0,
        logit_bias: float = 0.0,
    ) -> None:
        self.encoder = encoder
        self.library = library
        self.out = out
        self.err = err or out
        self.settings_file = settings_file or settings_path()
        self.settings = load_settings(self.settings_file)
        self.logit_scale, self.logit_bias = logit_scale, logit_bias
        self.model = preset_calibration("model", logit_scale, logit_bias)
        self.calibration = self.settings.calibration(logit_scale, logit_bias)
        self.expand = self.settings.expand
        self.aggregate = ENSEMBLE
        self.expander = expander or Expander()
        self.searcher = Searcher(library, encoder, self.expander)
        self.pending: tuple[Calibration, str] | None = None  # (calibration, where it came from)
        self.image: ImageVectors | None = None
        if image is not None:
            require_regular_file(image)
            self.image = encode_files(encoder, [image])
            if not self.image.paths:
                path, reason = self.image.failures[0]
                raise ConfigError(f"Cannot read image {path}: {reason}")
        self.failed_commands = 0

    # --- the loop ---------------------------------------------------------------------
    def run(self, lines: Iterable[str], prompt: str = "") -> int:
        """Execute lines until quit or end of input; 1 if any command failed, else 0."""
        self._say(f"{self._describe()}. Type `help` for commands.")
        if prompt:
            self.out.write(prompt)
            self.out.flush()
        for line in lines:
            if not self.execute(line):
                break
            if prompt:
                self.out.write(prompt)
                self.out.flush()
        return 1 if self.failed_commands else 0

    def execute(self, line: str) -> bool:
        """Run one command line; False when it asks to quit."""
        command, _, argument = line.strip().partition(" ")
        command, argument = command.lower(), argument.strip()
        if not command or command.startswith("#"):
            return True
        if command in ("quit", "exit", "q"):
            return False
        handler = {
            "help": self._help,
            "test": self._test,
            "recommend": self._recommend,
            "feedback": self._feedback,
            "apply": self._apply,
            "set": self._set_temperature,
            "centre": self._set_centre,
            "threshold": self._set_centre,  # its old name, kept for scripts that use it
            "preset": self._preset,
            "expand": self._expand,
            "aggregate": self._aggregate,
            "show": self._show,
        }.get(command)
        try:
            if handler is None:
                raise TuneError(f"unknown command {command!r}; type `help` for the list")
            handler(argument)
        except (GalleryError, ValueError) as exc:
            self.failed_commands += 1
            self.err.write(f"error: {printable(str(exc))}\n")
            self.err.flush()
        return True

    def _say(self, text: str = "") -> None:
        """One line of output: paths and terms in it are shown through `printable`."""
        self.out.write(printable(text) + "\n")
        self.out.flush()

    def _describe(self) -> str:
        c = self.calibration
        return (
            f"preset {c.preset}: T = {c.temperature:.2f}, c = {c.centre:.4f}, "
            f"expand {'on' if self.expand else 'off'}, aggregate {self.aggregate}"
        )

    # --- commands ---------------------------------------------------------------------
    def _help(self, _argument: str) -> None:
        for line in HELP.splitlines():
            self._say(line)

    def _show(self, _argument: str) -> None:
        self._say(self._describe())
        if self.pending is not None:
            pending, origin = self.pending
            self._say(
                f"not yet applied: T = {pending.temperature:.2f}, c = {pending.centre:.4f} "
                f"from {origin}"
            )

    def _set_temperature(self, argument: str) -> None:
        temperature = _number(argument, "set T")
        if not temperature > 0:
            raise TuneError(f"T must be positive, got {argument}")
        self.calibration = self.calibration.with_overrides(temperature=temperature)
        self._say(self._describe())

    def _set_centre(self, argument: str) -> None:
        centre = _number(argument, "centre C")
        self.calibration = self.calibration.with_overrides(centre=centre)
        self._say(self._describe())

    def _preset(self, argument: str) -> None:
        name = argument.lower()
        if name not in PRESET_NAMES:
            raise TuneError(f"preset must be model, seed or custom, got {argument!r}")
        custom = load_settings(self.settings_file).custom if name == "custom" else None
        self.calibration = preset_calibration(name, self.logit_scale, self.logit_bias, custom)
        self._say(self._describe())

    def _expand(self, argument: str) -> None:
        if argument.lower() not in ("on", "off"):
            raise TuneError(f"expand takes on or off, got {argument!r}")
        self.expand = argument.lower() == "on"
        self._say(self._describe())

    def _aggregate(self, argument: str) -> None:
        if argument.lower() not in AGGREGATES:
            raise TuneError(f"aggregate takes {' or '.join(AGGREGATES)}, got {argument!r}")
        self.aggregate = argument.lower()
        self._say(self._describe())

    def _test(self, term: str) -> None:
        term = argv_text(term)
        if not term:
            raise TuneError("test needs a term, for example `test dog on the beach`")
        hits = self._hits(term)
        ranked = hits.rank(self.calibration, top_k=1)
        if not ranked:
            raise TuneError(f"nothing to score {term!r} against")
        best = ranked[0]
        where = (
            f"photo {best.path}"
            if self.image is not None
            else f"the library's best photo for it, {best.path}"
        )
        self._say(
            f"{term!r} vs {where}: variant {best.variant!r} (weight {best.weight:g}), "
            f"raw cosine {best.raw:.4f}"
        )
        self._say(f"  {'':2}{'range':<8} {'T':>8} {'c':>8} {'raw':>8} {'calibrated':>10}")
        for label, calibration in self._temperature_rows():
            score = best.weight * float(calibration.score(best.raw))
            mark = "*" if calibration is self.calibration else " "
            self._say(
                f"  {mark:<2}{label:<8} {calibration.temperature:8.2f} "
                f"{calibration.centre:8.4f} {best.raw:8.4f} {score:10.4f}"
            )
        self._say("  (* = current; calibrated = weight x sigmoid(T x (raw - c)))")

    def _hits(self, term: str) -> SearchHits:
        if self.image is None:
            if self.library.catalog.count() == 0:
                raise TuneError(
                    "the library is empty: run `gallery-app index FOLDER`, or start "
                    "`gallery-app tune IMAGE` with a photo"
                )
            return self.searcher.search(term, top_k=1, expand=self.expand, aggregate=self.aggregate)
        variants = prompt_variants(self.encoder, term, self.expander if self.expand else None)
        if not variants:
            raise TuneError(f"{term!r} has no words to search")
        text = self.searcher.text_vectors([v.prompt or "" for v in variants])
        return hits_from_vectors(
            term,
            variants,
            text,
            np.zeros(1, np.int64),
            self.image.paths,
            self.image.vectors,
            self.aggregate,
        )

    def _temperature_rows(self) -> list[tuple[str, Calibration]]:
        """Three blocks: around the current T (at the current c), the seed's, the model's."""
        current, model = self.calibration, self.model
        around = [
            current if m == 1.0 else Calibration("custom", current.temperature * m, current.centre)
            for m in CURRENT_MULTIPLES
        ]
        return (
            [("current", c) for c in around]
            + [("seed", Calibration("seed", t, 0.0)) for t in SEED_TEMPERATURES]
            + [
                ("model", Calibration("model", model.temperature * m, model.centre))
                for m in MODEL_MULTIPLES
            ]
        )

    def _recommend(self, _argument: str) -> None:
        images = sample_library(self.library, RECOMMEND_SAMPLE)
        if len(images.paths) < 2:
            raise TuneError(
                "a recommendation needs at least 2 indexed photos: run `gallery-app index FOLDER`"
            )
        raw = probe_raw(self.encoder, DEFAULT_PROBE_QUERIES, images)
        recommendation = recommend_calibration(raw)
        recommended = recommendation.calibration
        current = self.calibration
        top_now = float(current.score(recommendation.top_raw))
        median_now = float(current.score(recommendation.median_raw))
        self._say(f"recommended: T = {recommended.temperature:.2f}, c = {recommended.centre:.4f}")
        self._say(recommendation.reason)
        self._say(
            f"Under the current T = {current.temperature:.2f}, c = {current.centre:.4f} "
            f"those score {top_now:.4f} and {median_now:.4f}. Type `apply` to save the "
            "recommendation as your custom preset."
        )
        self.pending = (recommended, "recommend")

    def _feedback(self, argument: str) -> None:
        if not argument:
            raise TuneError(
                "feedback needs a CSV file of path,query,relevant (or --marks: the window's)"
            )
        words = shlex.split(argument)
        if words[0] == "--marks":
            marks = self.library.catalog.marks()
            if not marks:
                raise TuneError(
                    "this library holds no marks yet: mark results relevant or not in the "
                    "window (debug panel or viewer), or give a CSV file"
                )
            fitted, left_out = fit_marks(
                self.searcher,
                marks,
                self.calibration,
                self.model,
                self.expand,
                self.aggregate,
                MIN_MARKS_EACH,
            )
            for mark in left_out:
                self.err.write(printable(f"skipped {mark.path}: no vector (not readable)") + "\n")
            self._report_feedback(fitted, "the marks made in the window")
            return
        path = Path(words[0]).expanduser()
        judgements = read_feedback(path)
        photos = sorted({j.path for j in judgements})
        unsafe = {p: problem for p in photos if (problem := not_regular_file(p)) is not None}
        images = encode_files(self.encoder, [p for p in photos if p not in unsafe])
        for failed, reason in [*unsafe.items(), *images.failures]:
            self.err.write(printable(f"skipped {failed}: {reason}") + "\n")
        if not images.paths:
            raise TuneError(f"none of the photos named in {path} could be read")
        fitted = fit_feedback(
            self.searcher,
            judgements,
            images,
            self.calibration,
            self.model,
            self.expand,
            self.aggregate,
        )
        self._report_feedback(fitted, f"feedback {path}")

    def _report_feedback(self, feedback: FeedbackFit, origin: str) -> None:
        """What a fit rests on and what it gives; it waits for `apply`."""
        fit, fitted = feedback.fit, feedback.calibration
        self._say(
            f"fitted on {fit.sample_count} judgements ({fit.relevant_count} relevant) across "
            f"{feedback.query_count} quer{'ies' if feedback.query_count != 1 else 'y'}: "
            f"T = {fitted.temperature:.2f}, c = {fitted.centre:.4f}"
        )
        self._say(
            f"Logistic regression of relevant on the raw {feedback.statistic} (what the "
            f"search ranks by), pulled towards the model preset (T = "
            f"{self.model.temperature:.2f}, c = {self.model.centre:.4f}) as much as a few "
            f"judgements need; more judgements, less pull. Mean log loss {fit.log_loss:.4f}. "
            "Type `apply` to save it as your custom preset."
        )
        ranks, library_size = feedback.ranks, feedback.library_size
        if library_size:
            self._say(
                f"Judged photos rank {int(ranks.min())} to {int(ranks.max())} (median "
                f"{int(np.median(ranks))}) of {library_size} for their queries."
            )
        if feedback.parts is not None and feedback.parts.split:
            self._say(parts_line(feedback.parts))
        if feedback.top_only:
            self._say(
                f"All judged photos are in the top {feedback.top_ranks} of their query's "
                "ranking: judgements from the top alone bias a fit (the photos below were "
                f"never seen), so this one was held {1 / TOP_ONLY_PRIOR_SCALE:g}x nearer the "
                "model prior. Judge a few photos from lower down (say ranks "
                f"{2 * feedback.top_ranks}-{10 * feedback.top_ranks}) for a fit that can move."
            )
        self.pending = (fitted, origin)

    def _apply(self, _argument: str) -> None:
        chosen = self.pending[0] if self.pending is not None else self.calibration
        settings = UserSettings(
            preset="custom",
            custom_temperature=chosen.temperature,
            custom_centre=chosen.centre,
            min_score=self.settings.min_score,
            expand=self.expand,
        )
        saved_to = save_settings(settings, self.settings_file)
        self.settings = settings
        self.calibration = Calibration("custom", chosen.temperature, chosen.centre)
        self.pending = None
        self._say(
            f"saved custom preset T = {chosen.temperature:.2f}, c = {chosen.centre:.4f}, "
            f"expand {'on' if self.expand else 'off'} to {saved_to}; it is now the app's preset"
        )


def read_feedback(path: Path) -> list[Judgement]:
    """Rows of path,query,relevant; a first row naming the columns is skipped. Relative photo
    paths are taken from the CSV's folder."""
    try:
        text = read_regular_file(path, "feedback file").decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except FileNotFoundError as exc:
        raise ConfigError(f"Cannot read feedback file {path}: it does not exist.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Feedback file {path} is not UTF-8 text (byte {exc.start}: {exc.reason}): "
            "save it as UTF-8."
        ) from exc
    except csv.Error as exc:
        raise ConfigError(f"Cannot read feedback file {path}: {exc}") from exc
    judgements = []
    for number, row in enumerate(rows, 1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and [c.lower() for c in cells[:3]] == ["path", "query", "relevant"]:
            continue
        if len(cells) != 3:
            raise ConfigError(
                f"{path}, line {number}: expected 3 columns path,query,relevant, got {len(cells)}"
            )
        photo, query, relevant = cells
        word = relevant.lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ConfigError(
                f"{path}, line {number}: relevant must be 1 or 0 (or yes/no), got {relevant!r}"
            )
        if not photo or not query:
            raise ConfigError(f"{path}, line {number}: the path and the query must not be empty")
        resolved = (path.parent / Path(photo).expanduser()).resolve()
        judgements.append(Judgement(str(resolved), query, word in TRUE_WORDS))
    if not judgements:
        raise ConfigError(f"{path} holds no judgements (expected rows of path,query,relevant)")
    return judgements


def _number(text: str, usage: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TuneError(f"usage: {usage}, with a number (got {text!r})") from None
    if not math.isfinite(value):
        raise TuneError(f"{usage}: the number must be finite, got {text}")
    return value
