"""The search state: query, hits, recalibration and stale answers; feeds the grid model.

A QObject without widgets. Searches run as SearchTasks, one at a time: a newer query cancels
the running one (it stops before its next step) and waits its turn, so at most one search
uses the encoder and only the latest answer is shown. A slider move re-ranks the hits in hand
(no model call) and reorders the grid in place when the same photos are shown.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from gallery_app.core.calibrate import Calibration
from gallery_app.core.search import (
    AGGREGATES,
    ENSEMBLE,
    Searcher,
    SearchHits,
    SearchResult,
)
from gallery_app.ui import wording
from gallery_app.ui.engine import PrecomputeTask, SearchTask
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
    language_hint: str = ""  # SearchHits.language_hint: the checkpoint reads English only

    @property
    def hidden(self) -> int:
        return self.total - self.shown

    @property
    def no_match(self) -> bool:
        return self.matches == 0 and self.possible == 0


class SearchController(QObject):
    ranked = Signal(object, object, object)  # SearchHits, list[SearchResult], Calibration
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
        self.hits: SearchHits | None = None
        self.results: list[SearchResult] = []  # every result at or above "Hide below"
        self.show_all = False  # also the photos below the "possible" band
        self.aggregate = ENSEMBLE  # how a query's words become one score (or MAX: an OR)
        self.latest_request = 0
        self.model_state = "loading"  # loading | failed: what to say when no searcher is there
        self._task: SearchTask | None = None
        self._complete = True  # the answer shown is the final (expanded) one
        self._pending: tuple[int, str, bool, str] | None = None
        self._library_items: list[GridItem] = []
        self._mtime_by_id: dict[int, int] = {}  # thumbnails are keyed by (path, mtime)
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
        if self.query:
            self.search(self.query)

    @Slot(str)
    def _on_precompute_failed(self, _message: str) -> None:
        self.precompute_finished.emit(None)  # a cache not filled only costs speed

    def set_library_items(self, items: list[GridItem]) -> None:
        self._library_items = items
        # Built once per listing, not on every slider move over a large library.
        self._mtime_by_id = {item.image_id: item.mtime_ns for item in items}
        if not self.query:
            self.grid_model.set_items(items)

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
        if self.query:
            self.search(self.query)

    @Slot()
    def clear(self) -> None:
        self.latest_request += 1  # answers still on their way are now stale
        self._pending = None
        if self._task is not None:
            self._task.cancel()
        self.query = ""
        self.hits = None
        self.results = []
        self.show_all = False
        self.grid_model.set_items(self._library_items)
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
        request_id, query, expand, aggregate = self._pending
        self._pending = None
        task = SearchTask(self.searcher, request_id, query, expand, aggregate)
        task.answered.connect(self._on_answered)
        task.done.connect(self._on_task_done)
        self._task = task
        self.runner.start(task)

    @Slot()
    def _on_task_done(self) -> None:
        self._task = None
        self._start_pending()

    @Slot(int, object, bool)
    def _on_answered(self, request_id: int, hits: SearchHits, final: bool) -> None:
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
        calibration = self.calibration.calibration()
        min_score = self.settings.min_score or None
        self.results = hits.rank(calibration, top_k=None, min_score=min_score)
        matches = sum(1 for r in self.results if r.score >= wording.MATCH)
        possible = sum(1 for r in self.results if wording.POSSIBLE <= r.score < wording.MATCH)
        if self.show_all:
            shown = self.results
        elif matches + possible:
            shown = self.results[: matches + possible]  # ranked, so the bands come first
        else:
            shown = self.results[: wording.CLOSEST_WHEN_NO_MATCH]
        mtimes = self._mtime_by_id
        items = [
            GridItem(r.image_id, r.path, mtimes.get(r.image_id, 0), r.score, r.raw, r.variant)
            for r in shown
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
                hits.language_hint,
            )
        )

    # -- settings -------------------------------------------------------------------------------
    def _on_min_score_changed(self, _value: float) -> None:
        self.recalibrate()

    def _on_expand_changed(self, _on: bool) -> None:
        if self.hits is not None:
            self.search(self.query)

    def describe(self, item: GridItem) -> str:
        """A result's score in words, then how it was computed (for the viewer), as HTML."""
        hits = self.hits
        if hits is None or item.score is None:
            return ""
        rows = np.flatnonzero(hits.image_ids == item.image_id)
        calibration = self.calibration.calibration()
        word = wording.band(item.score)
        lines = [
            f"<b>{wording.percent(item.score)}</b>{' — ' + word if word else ''} for "
            f"“{html.escape(hits.query)}”",
            f"<small>{wording.SCORE_MEANING}</small>",
        ]
        if len(rows):
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
        lines.append(
            f"<small>T = {calibration.temperature:.1f}, c = {calibration.centre:.3f}</small>"
        )
        return "<br>".join(lines)

    def stop(self) -> None:
        self._pending = None
        if self._task is not None:
            self._task.cancel()


def grid_items(images: list[Any]) -> list[GridItem]:
    """Library images (ImageInfo) as grid rows, without scores."""
    return [GridItem(i.id, i.path, i.mtime_ns) for i in images]
