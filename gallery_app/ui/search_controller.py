"""The search state: query, hits, recalibration and stale answers; feeds the grid model.

A QObject without widgets. Searches run as SearchTasks, one at a time: a newer query cancels
the running one (it stops before its next step) and waits its turn, so at most one search
uses the encoder and only the latest answer is shown. A slider move re-ranks the hits in hand
(no model call) and reorders the grid in place when the same photos are shown.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from gallery_app.core.calibrate import Calibration, image_calibration
from gallery_app.core.filters import (
    EXIF,
    FILE_TIME,
    SORT_DATE,
    PhotoDates,
    filter_mask,
    sort_by_date,
)
from gallery_app.core.search import (
    AGGREGATES,
    ENSEMBLE,
    AnyHits,
    CombinedHits,
    Searcher,
    SearchResult,
)
from gallery_app.core.similar import label_for
from gallery_app.ui import wording
from gallery_app.ui.engine import ImageSearchTask, PrecomputeTask, SearchTask
from gallery_app.ui.filter_row import FilterChoice
from gallery_app.ui.grid_model import GridItem, GridModel
from gallery_app.ui.settings import CalibrationState, Settings
from gallery_app.ui.tasks import TaskRunner


@dataclass(frozen=True)
class ResultSummary:
    """What the grid shows for a query, in numbers the window puts into words."""

    query: str
    total: int  # results at or above "Hide below"
    matches: int  # score >= wording.MATCH
    possible: int  # wording.POSSIBLE <= score < MATCH
    shown: int
    complete: bool  # the expanded (final) answer, not the query-as-typed preview
    image_query: bool = False  # find similar: scored on the image-to-image scale
    choice: FilterChoice = field(default_factory=FilterChoice)  # filters and order in force
    language_hint: str = ""  # SearchHits.language_hint: the checkpoint reads English only

    def status_line(self) -> str:
        """The status bar's words for it: the count, then the language hint if there is one."""
        line = f"{self.total} result(s) for “{self.query}”"
        return f"{line} · {self.language_hint}" if self.language_hint else line

    def status_ms(self) -> int:
        return 15000 if self.language_hint else 5000  # a hint takes longer to read

    @property
    def hidden(self) -> int:
        return self.total - self.shown

    @property
    def no_match(self) -> bool:
        return self.matches == 0 and self.possible == 0


class SearchController(QObject):
    ranked = Signal(object, object, object)  # SearchHits | CombinedHits, results, Calibration
    shown = Signal(object)  # ResultSummary, after every ranking (answer, refinement, slider)
    search_done = Signal()  # the complete answer of the latest search is shown
    cleared = Signal()  # back to the library (no query)
    status = Signal(str)  # a passing message about the search
    precompute_progress = Signal(int, int)  # dictionary prompts done, total
    precompute_finished = Signal(object)  # prompts encoded (int), or None when it failed

    def __init__(
        self,
        grid_model: GridModel,
        calibration: CalibrationState,
        settings: Settings,
        runner: TaskRunner,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.grid_model = grid_model
        self.calibration = calibration
        self.settings = settings
        self.runner = runner
        self.searcher: Searcher | None = None
        self.query = ""
        self.hits: AnyHits | None = None
        self.image_id: int | None = None  # find similar: the photo the results are like
        self.similar_path = ""
        self.results: list[SearchResult] = []  # every result at or above "Hide below"
        self.show_all = False  # also the photos below the "possible" band
        self.aggregate = ENSEMBLE  # how a query's words become one score (or MAX: an OR)
        self.latest_request = 0
        self.model_state = "loading"  # loading | failed: what to say when no searcher is there
        self._task: SearchTask | ImageSearchTask | None = None
        self._complete = True  # the answer shown is the final (expanded) one
        # (request id, query, expand, aggregate) or, for find similar, (request id, image id)
        self._pending: tuple[int, str, bool, str] | tuple[int, int] | None = None
        self._library_items: list[GridItem] = []
        self._mtime_by_id: dict[int, int] = {}  # thumbnails are keyed by (path, mtime)
        self._mtime_by_path: dict[str, int] = {}
        self.choice = FilterChoice()  # date and folder filters, sort (the filter row)
        self.dates = PhotoDates([])  # date taken of every photo listed
        self._mask: tuple[object, FilterChoice, np.ndarray] | None = None
        calibration.changed.connect(self.recalibrate)
        settings.min_score_changed.connect(self._on_min_score_changed)
        settings.expand_changed.connect(self._on_expand_changed)

    # -- inputs -----------------------------------------------------------------------------
    def set_searcher(self, searcher: Searcher, precompute: bool = True) -> None:
        """The model is loaded: searches can run; the synonym dictionary is encoded in the
        background (once per model) so expanded searches need no model call."""
        self.searcher = searcher
        self.model_state = "ready"
        if precompute:
            task = PrecomputeTask(searcher)
            task.progress.connect(self.precompute_progress)
            task.result.connect(self.precompute_finished)
            task.errored.connect(self._on_precompute_failed)
            self.runner.start(task, QThread.Priority.LowPriority)
        self.search_again()

    @Slot(str)
    def _on_precompute_failed(self, _message: str) -> None:
        self.precompute_finished.emit(None)  # a cache not filled only costs speed

    def set_library_items(self, items: list[GridItem], dates: PhotoDates | None = None) -> None:
        self._library_items = items
        # Built once per listing, not on every slider move over a large library.
        self._mtime_by_id = {item.image_id: item.mtime_ns for item in items}
        self._mtime_by_path = {item.path: item.mtime_ns for item in items}
        if dates is not None:
            self.dates = dates
            self._mask = None
        if not self.query:
            self.grid_model.set_items(self._filtered_library())

    def thumbnail_for(self, path: str) -> Any:
        """A result's thumbnail for the debug table, whether or not the grid shows it."""
        return self.grid_model.thumbnail(path, self._mtime_by_path.get(path))

    def set_library_images(self, images: list[Any]) -> None:
        """A new listing (ImageInfo, newest first): the grid's rows and their dates taken."""
        self.set_library_items(grid_items(images), PhotoDates(images))

    @property
    def library_items(self) -> list[GridItem]:
        return self._library_items

    @Slot(str)
    def search(self, query: str) -> None:
        query = query.strip()
        if not query:
            self.clear()
            return
        self.query = query
        self.image_id = None
        if self.searcher is None:
            self.status.emit(
                "Searching needs the model, which failed to load (see the banner)."
                if self.model_state == "failed"
                else "The model is still loading; the search starts when it is ready."
            )
            return
        self.latest_request += 1
        self.status.emit(f"Searching “{query}”…")
        self._pending = (self.latest_request, query, self.settings.expand, self.aggregate)
        if self._task is not None:
            self._task.cancel()  # it stops before its next step; the pending one follows
        else:
            self._start_pending()

    def search_again(self) -> None:
        """The library changed (indexed, removed): the same query over what is there now."""
        if self.image_id is not None:
            self.find_similar(self.image_id, self.similar_path)
        elif self.query:
            self.search(self.query)

    @Slot(int, str)
    def find_similar(self, image_id: int, path: str) -> None:
        """Every photo by how alike it is to a library photo (its stored vector: no model
        call), on the image-to-image scale; the photo itself is left out."""
        self.query = label_for(path)
        self.image_id = image_id
        self.similar_path = path
        if self.searcher is None:
            self.status.emit("Find similar needs the library, which opens with the model.")
            return
        self.latest_request += 1
        self.status.emit(f"Finding photos {self.query}…")
        self._pending = (self.latest_request, image_id)
        if self._task is not None:
            self._task.cancel()
        else:
            self._start_pending()

    @Slot()
    def clear(self) -> None:
        self.latest_request += 1  # answers still on their way are now stale
        self._pending = None
        if self._task is not None:
            self._task.cancel()
        self.query = ""
        self.image_id = None
        self.hits = None
        self.results = []
        self.show_all = False
        self.grid_model.set_items(self._filtered_library())
        self.cleared.emit()

    def set_aggregate(self, aggregate: str) -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}")
        if aggregate != self.aggregate:
            self.aggregate = aggregate
            self.search_again()

    def set_show_all(self, on: bool) -> None:
        if on != self.show_all:
            self.show_all = on
            self.recalibrate()

    # -- answers ------------------------------------------------------------------------------
    def _start_pending(self) -> None:
        if self._pending is None or self.searcher is None or self.runner.closed:
            return
        pending, self._pending = self._pending, None
        task: SearchTask | ImageSearchTask
        if len(pending) == 2:
            task = ImageSearchTask(self.searcher, pending[0], pending[1])
        else:
            task = SearchTask(self.searcher, *pending)
        task.answered.connect(self._on_answered)
        task.done.connect(self._on_task_done)
        self._task = task
        self.runner.start(task)

    @Slot()
    def _on_task_done(self) -> None:
        self._task = None
        self._start_pending()

    @Slot(int, object, bool)
    def _on_answered(self, request_id: int, hits: AnyHits, final: bool) -> None:
        if request_id != self.latest_request or self.runner.closed:
            return  # a newer search was started: drop the stale answer
        self.hits = hits
        self._complete = final
        self._rank(reorder=False)
        if final:
            self.search_done.emit()

    @Slot()
    def recalibrate(self) -> None:
        """Re-rank the raw scores in hand under the current T, c and cut-off: no model call."""
        if self.hits is not None:
            self._rank(reorder=True)

    def current_calibration(self) -> Calibration:
        return self.calibration.calibration()

    def _rank(self, reorder: bool) -> None:
        hits = self.hits
        assert hits is not None
        # An image query has its own scale (calibrate.image_calibration): the slider's T and c
        # are the text scale and do not apply to it.
        calibration = hits.calibration_for(self.calibration.calibration())
        min_score = self.settings.min_score or None
        self.results = self._within_filter(hits, hits.rank(calibration, None, min_score))
        matches = sum(1 for r in self.results if r.score >= wording.MATCH)
        possible = sum(1 for r in self.results if wording.POSSIBLE <= r.score < wording.MATCH)
        if self.choice.sort == SORT_DATE:
            # The score gate: Hide below when set, else the "possible" band's floor.
            gate = 0.0 if self.show_all else (min_score or wording.POSSIBLE)
            shown = sort_by_date(self.results, self.dates, gate, self.choice.newest_first)
        elif self.show_all:
            shown = self.results
        elif matches + possible:
            shown = self.results[: matches + possible]  # ranked, so the bands come first
        else:
            shown = self.results[: wording.CLOSEST_WHEN_NO_MATCH]
        mtimes = self._mtime_by_id
        dated = self.choice.sort == SORT_DATE
        taken = self._taken([r.image_id for r in shown])
        items = [
            GridItem(
                r.image_id,
                r.path,
                mtimes.get(r.image_id, 0),
                r.score,
                r.raw,
                r.variant,
                *when,
                dated,
            )
            for r, when in zip(shown, taken, strict=True)
        ]
        if reorder:
            self.grid_model.reorder(items)  # same photos: moved in place, selection kept
        else:
            self.grid_model.set_items(items)
        self.ranked.emit(hits, self.results, calibration)
        self.shown.emit(
            ResultSummary(
                hits.query,
                len(self.results),
                matches,
                possible,
                len(shown),
                self._complete,
                hits.own_calibration is not None,
                self.choice,
                hits.language_hint,
            )
        )

    # -- filters and date order (the filter row) -------------------------------------------
    def set_filter(self, choice: FilterChoice) -> None:
        """Other dates, folder or order: the results in hand again, no model call."""
        if choice == self.choice:
            return
        self.choice = choice
        if self.hits is not None:
            self._rank(reorder=False)
        elif not self.query:
            self.grid_model.set_items(self._filtered_library())
            self.cleared.emit()

    def _within_filter(self, hits: AnyHits, results: list[SearchResult]) -> list[SearchResult]:
        if not self.choice.photo_filter.active:
            return results
        cached = self._mask
        if cached is None or cached[0] is not hits or cached[1] != self.choice:
            mask = filter_mask(self.choice.photo_filter, hits.image_ids, hits.paths, self.dates)
            self._mask = cached = (hits, self.choice, mask)
        keep = cached[2]
        return [r for r in results if keep[r.position]]

    def _taken(self, image_ids: list[int]) -> list[tuple[dt.datetime | None, str]]:
        """(date taken, source) of each photo, for the tiles' tooltips and date labels."""
        moments = self.dates.taken(image_ids).tolist()  # datetime, or None for NaT
        exif = self.dates.from_exif(image_ids).tolist()
        return [
            (moment, (EXIF if from_exif else FILE_TIME) if moment is not None else "")
            for moment, from_exif in zip(moments, exif, strict=True)
        ]

    def _filtered_library(self) -> list[GridItem]:
        """The library listing under the filter row: its photos, newest first by default."""
        items = self._library_items
        choice = self.choice
        if choice.photo_filter.active and items:
            keep = filter_mask(
                choice.photo_filter,
                [i.image_id for i in items],
                [i.path for i in items],
                self.dates,
            )
            items = [item for item, kept in zip(items, keep.tolist(), strict=True) if kept]
        dated = choice.sort == SORT_DATE
        taken = self._taken([i.image_id for i in items])
        items = [
            GridItem(i.image_id, i.path, i.mtime_ns, None, None, None, *when, dated)
            for i, when in zip(items, taken, strict=True)
        ]
        if dated:
            stamps = self.dates.taken([i.image_id for i in items])
            seconds = stamps.astype(np.int64).astype(np.float64)
            seconds[np.isnat(stamps)] = np.nan
            key = np.nan_to_num(-seconds if choice.newest_first else seconds, nan=np.inf)
            items = [items[i] for i in np.lexsort((np.arange(len(items)), key)).tolist()]
        return items

    # -- settings -------------------------------------------------------------------------------
    def _on_min_score_changed(self, _value: float) -> None:
        self.recalibrate()

    def _on_expand_changed(self, _on: bool) -> None:
        if self.hits is not None and self.image_id is None:  # synonyms are for words
            self.search(self.query)

    def describe(self, item: GridItem) -> str:
        """A result's score in words, then how it was computed (for the viewer), as HTML."""
        hits = self.hits
        if hits is None or item.score is None:
            return ""
        rows = np.flatnonzero(hits.image_ids == item.image_id)
        calibration = hits.calibration_for(self.calibration.calibration())
        word = wording.band(item.score)
        lines = [
            f"<b>{wording.percent(item.score)}</b>{' — ' + word if word else ''} for "
            f"“{html.escape(hits.query)}”",
            f"<small>{wording.SCORE_MEANING}</small>",
        ]
        if hits.own_calibration is not None:  # find similar
            lines[1] = f"<small>{html.escape(image_scale_meaning())}</small>"
            lines.append(
                f"<small>Cosine with the query photo: {item.raw:.3f} → "
                f"{wording.percent(item.score)}</small>"
            )
        elif isinstance(hits, CombinedHits):
            lines += describe_parts(
                next((r for r in self.results if r.image_id == item.image_id), None)
            )
        elif len(rows):
            listed = hits.listed
            cosines = hits.variant_cosines(rows[:1])[0]
            scores = calibration.score(cosines)
            if hits.aggregate == ENSEMBLE and len(listed) > 1:
                lines.append(
                    f"<small>All the words together (their average direction): cosine "
                    f"{item.raw:.3f} → {wording.percent(item.score)}</small>"
                )
            lines.append("<small>Each word on its own (cosine → score):</small>")
            for variant, cosine, score in zip(listed, cosines, scores, strict=True):
                mark = "<b>" if variant.text == item.variant else ""
                end = "</b>" if mark else ""
                lines.append(
                    f"<small>{mark}{html.escape(variant.text)}: {cosine:.3f} → "
                    f"{wording.percent(float(score))}{end}</small>"
                )
        result = next((r for r in self.results if r.image_id == item.image_id), None)
        if result is not None and result.visual is not None and result.boost > 0:
            lines.append(
                f"<small>The pixels alone: {wording.percent(result.visual)}; "
                f"{html.escape(result.boost_reason)}: boost {result.boost:.2f} → "
                f"{wording.percent(result.score)}</small>"
            )
        lines.append(
            f"<small>T = {calibration.temperature:.1f}, c = {calibration.centre:.3f}</small>"
        )
        return "<br>".join(lines)

    def stop(self) -> None:
        self._pending = None
        if self._task is not None:
            self._task.cancel()


def image_scale_meaning() -> str:
    """What an image query's score means, from calibrate.image_calibration (its one place)."""
    scale = image_calibration()
    near_duplicate = float(scale.score(0.95))
    return (
        "Image query: image-to-image scale. The score reads the cosine between the two "
        f"photos' image vectors as sigmoid({scale.temperature:g} × (cosine − "
        f"{scale.centre:.2f})): 50% at {scale.centre:.2f} (the same subject), "
        f"{wording.percent(near_duplicate)} at 0.95 (a near-duplicate). It is not the text "
        "scale: Sharpness and the presets do not change it."
    )


def describe_parts(result: SearchResult | None) -> list[str]:
    """A query of parts, for the viewer: each part's cosine and score, then how they make
    the photo's score (P for a part that must be there, 1 − P for one that must not)."""
    if result is None or not result.parts:
        return []
    lines = ["<small>Each part on its own (cosine → score):</small>"]
    factors = []
    for part in result.parts:
        name = html.escape(part.text)
        shown = f"not {name}" if part.kind == "not" else name
        lines.append(f"<small>{shown}: {part.raw:.3f} → {wording.percent(part.score)}</small>")
        if part.visual is not None and part.boost > 0:
            lines.append(
                f"<small>&nbsp;&nbsp;the pixels alone: {wording.percent(part.visual)}; "
                f"{html.escape(part.boost_reason)}: boost {part.boost:.2f}</small>"
            )
        factors.append(f"(1 − P({name}))" if part.kind == "not" else f"P({name})")
    lines.append(f"<small>Score = {' × '.join(factors)} = {wording.percent(result.score)}</small>")
    return lines


def grid_items(images: list[Any]) -> list[GridItem]:
    """Library images (ImageInfo) as grid rows, without scores."""
    return [GridItem(i.id, i.path, i.mtime_ns) for i in images]
