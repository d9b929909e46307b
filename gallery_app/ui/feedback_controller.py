"""Teach it your photos: the marks of the current library, the fit from them, and applying it.

A QObject without widgets. Marks are written and read back by a MarksTask, one at a time and
in the order asked (a quick mark-then-unmark lands as unmark); the fit runs as a FitTask,
since the query text vectors it needs may need the model. The GUI thread only holds what the
last task handed back. `wire_feedback` connects the window's panels to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from gallery_app.core.calibrate import Calibration, model_preset
from gallery_app.core.feedback import (
    MIN_MARKS_EACH,
    FeedbackFit,
    fit_marks,
    mark_query,
    marks_needed,
)
from gallery_app.ui.tasks import Task, TaskRunner

if TYPE_CHECKING:
    from gallery_app.core.catalog import Mark
    from gallery_app.core.library import Library
    from gallery_app.core.search import Searcher
    from gallery_app.core.store import CatalogStore
    from gallery_app.ui.engine import Session
    from gallery_app.ui.main_window import MainWindow
    from gallery_app.ui.search_controller import SearchController
    from gallery_app.ui.settings import CalibrationState, Settings

Change = Callable[["CatalogStore"], object]


class MarksTask(Task):
    """Apply one change to the marks (None: only read them); hand back all of them."""

    title = "Saving the marks"

    def __init__(self, library: Library, change: Change | None) -> None:
        super().__init__()
        self.library = library
        self.change = change

    def work(self) -> tuple[list[Mark], object]:
        catalog = self.library.catalog
        outcome = self.change(catalog) if self.change is not None else None
        return catalog.marks(), outcome


@dataclass(frozen=True, eq=False)
class FitOutcome:
    """A fit, the calibration it is compared with, and what it could not use."""

    feedback: FeedbackFit
    current: Calibration  # the window's calibration when the fit was asked for
    left_out: tuple[Mark, ...]  # marks whose photo has no vector any more
    marks_version: int  # which marks it saw (the controller's count of changes)


class FitTask(Task):
    """The feedback fit on the marks, off the GUI thread (it may encode the queries)."""

    title = "Fitting the calibration"

    def __init__(
        self,
        searcher: Searcher,
        marks: Sequence[Mark],
        current: Calibration,
        prior: Calibration,
        expand: bool,
        aggregate: str,
        marks_version: int,
    ) -> None:
        super().__init__()
        self.searcher = searcher
        self.marks = list(marks)
        self.current = current
        self.prior = prior
        self.expand = expand
        self.aggregate = aggregate
        self.marks_version = marks_version

    def work(self) -> FitOutcome:
        fitted, left_out = fit_marks(
            self.searcher, self.marks, self.current, self.prior, self.expand, self.aggregate
        )
        return FitOutcome(fitted, self.current, tuple(left_out), self.marks_version)


class FeedbackController(QObject):
    marks_changed = Signal()  # the marks in hand changed (read back after every write)
    fit_started = Signal()
    fitted = Signal(object)  # FitOutcome
    fit_failed = Signal(str)
    applied = Signal(object)  # the Calibration saved as the custom one
    cleared = Signal(int)  # how many marks a clear removed
    problem = Signal(str)  # for the window's one error channel

    def __init__(
        self,
        runner: TaskRunner,
        search: SearchController,
        calibration: CalibrationState,
        settings: Settings,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.search = search
        self.calibration = calibration
        self.settings = settings
        self.library: Library | None = None
        self.searcher: Searcher | None = None
        self.prior: Calibration | None = None  # the model preset: what a fit is pulled to
        self.marks: list[Mark] = []
        self.marks_version = 0  # bumped whenever the marks in hand change
        self.outcome: FitOutcome | None = None  # the last fit
        self._by_query: dict[str, dict[int, bool]] = {}
        self._queue: list[Change | None] = []
        self._writing: MarksTask | None = None
        self._fitting: FitTask | None = None

    # -- inputs -----------------------------------------------------------------------------
    def set_library(self, library: Library) -> None:
        """The library whose marks are shown (the current model's): read them."""
        if library is self.library:
            return
        self.library = library
        self._queue.clear()
        self._hold([])
        self._submit(None)

    def set_session(self, session: Session) -> None:
        """The model is loaded: fits can run."""
        self.searcher = session.searcher
        self.prior = model_preset(session.info.logit_scale, session.info.logit_bias)
        self.set_library(session.library)

    def reload(self) -> None:
        """Read the marks again (the library changed: a removed photo takes its marks)."""
        if self.library is not None:
            self._submit(None)

    # -- what is marked -----------------------------------------------------------------------
    @property
    def query(self) -> str:
        """The key of the query shown ("" when none)."""
        return mark_query(self.search.query)

    def marks_for(self, query: str | None = None) -> dict[int, bool]:
        """image id -> relevant for `query` (the one shown when None)."""
        return dict(self._by_query.get(self.query if query is None else query, {}))

    def counts(self, query: str | None = None) -> tuple[int, int]:
        """(relevant, not relevant) marks of one query, or of all when query is "" ."""
        if query == "":
            values = [m.relevant for m in self.marks]
        else:
            values = list(self.marks_for(query).values())
        relevant = sum(values)
        return relevant, len(values) - relevant

    @property
    def query_count(self) -> int:
        return len(self._by_query)

    def why_not_fit(self) -> str | None:
        """Why Fit calibration cannot run now, in words; None when it can."""
        if self.searcher is None:
            return "Fitting needs the model, which is not loaded yet."
        return marks_needed(*self.counts(""), MIN_MARKS_EACH)

    # -- actions --------------------------------------------------------------------------------
    def mark(self, image_ids: Sequence[int], relevant: bool | None) -> None:
        """Mark photos (not) relevant to the query shown; None takes their marks back."""
        query, ids = self.query, [int(i) for i in image_ids]
        if not ids:
            return
        if not query:
            self.problem.emit("Search first: a mark says a photo is (not) what a query asks for.")
            return

        def change(catalog: CatalogStore) -> None:
            for image_id in ids:
                catalog.set_mark(image_id, query, relevant)

        self._submit(change)

    def clear(self, query: str | None) -> None:
        """Forget the marks of one query (a key, as `query` gives), or all with None."""

        def change(catalog: CatalogStore) -> int:
            return catalog.clear_marks(query)

        self._submit(change)

    def fit(self) -> bool:
        """Start the fit on every mark; False (and a message) when it cannot run now."""
        if self._fitting is not None:
            return False
        problem = self.why_not_fit()
        if problem:
            self.fit_failed.emit(problem)
            return False
        assert self.searcher is not None and self.prior is not None
        task = FitTask(
            self.searcher,
            self.marks,
            self.calibration.calibration(),
            self.prior,
            self.settings.expand,
            self.search.aggregate,
            self.marks_version,
        )
        task.result.connect(self._on_fitted)
        task.errored.connect(self._on_fit_failed)
        task.done.connect(self._on_fit_done)
        self._fitting = task
        self.fit_started.emit()
        self.runner.start(task)
        return True

    @property
    def fitting(self) -> bool:
        return self._fitting is not None

    @property
    def fit_is_current(self) -> bool:
        """A fit is in hand and the marks have not changed since."""
        return self.outcome is not None and self.outcome.marks_version == self.marks_version

    def apply(self) -> bool:
        """Save the last fit as the custom calibration (what `tune apply` writes) and score
        with it; False when there is no current fit."""
        if not self.fit_is_current:
            return False
        assert self.outcome is not None
        fitted = self.outcome.feedback.calibration
        problem = self.settings.save_calibration(fitted)  # preset "custom", as tune's
        self.calibration.reset()  # the session follows the saved calibration
        if problem:
            self.problem.emit(problem)
            return False
        self.applied.emit(fitted)
        return True

    def stop(self) -> None:
        self._queue.clear()
        for task in (self._writing, self._fitting):
            if task is not None:
                task.cancel()

    # -- internals ------------------------------------------------------------------------------
    def _submit(self, change: Change | None) -> None:
        self._queue.append(change)
        self._start_next()

    def _start_next(self) -> None:
        if self._writing is not None or not self._queue or self.library is None:
            return
        if self.runner.closed:
            self._queue.clear()
            return
        task = MarksTask(self.library, self._queue.pop(0))
        task.result.connect(self._on_marks)
        task.done.connect(self._on_write_done)
        self._writing = task
        self.runner.start(task)

    @Slot(object)
    def _on_marks(self, answer: tuple[list[Mark], object]) -> None:
        task = self._writing
        if task is None or task.library is not self.library:
            return  # the library changed meanwhile: its marks are not these
        marks, outcome = answer
        self._hold(marks)
        if isinstance(outcome, int) and not isinstance(outcome, bool):
            self.cleared.emit(outcome)

    @Slot()
    def _on_write_done(self) -> None:
        self._writing = None
        self._start_next()

    def _hold(self, marks: list[Mark]) -> None:
        by_query: dict[str, dict[int, bool]] = {}
        for mark in marks:
            by_query.setdefault(mark.query, {})[mark.image_id] = mark.relevant
        if marks != self.marks:
            self.marks_version += 1
        self.marks, self._by_query = marks, by_query
        self.marks_changed.emit()

    @Slot(object)
    def _on_fitted(self, outcome: FitOutcome) -> None:
        if self.sender() is not self._fitting:
            return
        self._fitting = None  # before the signal, so what it updates sees the fit finished
        self.outcome = outcome
        self.fitted.emit(outcome)

    @Slot(str)
    def _on_fit_failed(self, message: str) -> None:
        if self.sender() is not self._fitting:
            return
        self._fitting = None
        self.fit_failed.emit(message)

    @Slot()
    def _on_fit_done(self) -> None:
        if self.sender() is self._fitting:
            self._fitting = None


def wire_feedback(window: MainWindow) -> FeedbackController:
    """The window's wiring for the marks (kept here so main_window stays a page of wiring):
    the panel under the debug table, the mark bar in the viewer, and their updates."""
    from gallery_app.ui.feedback_panel import FeedbackPanel, MarkBar

    controller = FeedbackController(
        window.runner, window.search, window.calibration_state, window.settings, window
    )
    panel = FeedbackPanel()
    debug, viewer = window.debug_panel, window.results_panel.viewer
    debug.add_section(panel)
    bar = MarkBar()
    viewer.add_section(bar)

    def mark_selected(relevant: bool | None) -> None:
        controller.mark([r.image_id for r in debug.selected_results()], relevant)

    def mark_viewed(relevant: bool | None) -> None:
        item = viewer.current()
        if item is not None and item.score is not None:
            controller.mark([item.image_id], relevant)

    def toggle_viewed(relevant: bool) -> None:
        item = viewer.current()
        if item is not None and item.score is not None:
            now = controller.marks_for().get(item.image_id)
            mark_viewed(None if now is relevant else relevant)

    def refresh() -> None:
        query = controller.query
        debug.set_marks(controller.marks_for())
        panel.show_counts(
            query, controller.counts(query), controller.counts(""), controller.query_count
        )
        panel.show_fit_state(
            controller.why_not_fit(), controller.fitting, controller.fit_is_current
        )
        item = viewer.current()
        if item is None or item.score is None or not query:
            bar.show_mark("", None)  # browsing the library: nothing to mark against
        else:
            bar.show_mark(query, controller.marks_for().get(item.image_id))

    panel.mark_requested.connect(mark_selected)
    bar.mark_requested.connect(mark_viewed)
    viewer.extra_keys[MarkBar.RELEVANT_KEY] = lambda: toggle_viewed(True)
    viewer.extra_keys[MarkBar.NOT_RELEVANT_KEY] = lambda: toggle_viewed(False)
    panel.fit_requested.connect(controller.fit)
    panel.apply_requested.connect(controller.apply)
    panel.clear_requested.connect(
        lambda all_queries: controller.clear(None if all_queries else controller.query)
    )
    controller.marks_changed.connect(refresh)
    controller.fit_started.connect(refresh)
    controller.fitted.connect(panel.show_fit)
    controller.fitted.connect(lambda _outcome: refresh())
    controller.fit_failed.connect(panel.show_fit_problem)
    controller.fit_failed.connect(lambda _message: refresh())
    controller.applied.connect(panel.show_applied)
    controller.cleared.connect(panel.show_cleared)
    controller.problem.connect(window.report_error)
    window.search.ranked.connect(lambda *_: refresh())
    window.search.cleared.connect(refresh)
    viewer.current_changed.connect(lambda _row: refresh())
    window.model.library_opened.connect(controller.set_library)
    window.model.ready.connect(controller.set_session)
    window.library.changed.connect(controller.reload)
    refresh()
    return controller
