"""The main window: builds the panels and controllers and wires them together; no logic."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QDockWidget, QMainWindow, QPlainTextEdit, QSplitter, QWidget

from gallery_app.core.calibrate import Calibration
from gallery_app.core.imaging import ThumbnailCache
from gallery_app.ui import preferences, window_state
from gallery_app.ui.calibration_bar import CalibrationBar
from gallery_app.ui.debug_panel import DebugPanel
from gallery_app.ui.engine import ModelInfo, Session
from gallery_app.ui.feedback_controller import wire_feedback
from gallery_app.ui.filter_row import install_filters
from gallery_app.ui.grid_model import GridModel
from gallery_app.ui.library_controller import LibraryController
from gallery_app.ui.library_panel import LibraryPanel
from gallery_app.ui.menus import build_menus
from gallery_app.ui.metadata_editor import wire_metadata
from gallery_app.ui.model_controller import MISSING, UNREACHABLE, ModelController
from gallery_app.ui.results_panel import THUMBNAIL_PX, ResultsPanel
from gallery_app.ui.search_controller import ResultSummary, SearchController
from gallery_app.ui.settings import CalibrationState, Settings, UiState
from gallery_app.ui.status_area import StatusArea, follow_work
from gallery_app.ui.tasks import TaskRunner
from gallery_app.ui.thumbnails import ThumbnailProvider

if TYPE_CHECKING:
    from gallery_app.core.indexer import IndexReport
    from gallery_app.ui.engine import Listing

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    # GUI-side events, emitted after the window has applied them (tests and scripts wait on these)
    model_loaded = Signal(object)  # ModelInfo
    model_missing = Signal(str)
    library_shown = Signal()
    results_shown = Signal()  # after every (re)ranking: a first answer, a refinement, a slider
    search_done = Signal()  # the complete (expanded) answer of the latest search is shown
    precompute_finished = Signal(object)  # dictionary prompts encoded in the background
    indexing_progress = Signal(int, int, float)
    indexing_finished = Signal(object)  # IndexReport or None

    def __init__(
        self,
        data_dir: Path,
        model: str | None = None,
        store: QSettings | None = None,
        expansions_file: Path | None = None,
        settings_file: Path | None = None,
        precompute_dictionary: bool = True,
        fast: bool | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Gallery")
        self.settings = Settings(settings_file, self)
        self.ui_state = UiState(store or QSettings("gallery-app", "gallery-app"))
        self.calibration_state = CalibrationState(self.settings, self)
        self.runner = TaskRunner(self)
        self.runner.errored.connect(self.report_error)
        self.thumbnails = ThumbnailProvider(
            ThumbnailCache(data_dir / "thumbnails"), THUMBNAIL_PX, self
        )
        self.grid_model = GridModel(self.thumbnails, self)
        self.search = SearchController(
            self.grid_model, self.calibration_state, self.settings, self.runner, self
        )
        self.library = LibraryController(self.runner, self)
        self.model = ModelController(
            self.runner, self.settings, data_dir, model, expansions_file, fast, self
        )
        self.model_info: ModelInfo | None = None
        self._precompute = precompute_dictionary
        self._build()
        self._wire()
        self.feedback = wire_feedback(self)  # marks, Fit calibration, Apply
        self.metadata = wire_metadata(self)  # tags and descriptions
        if self.settings.load_error:
            self.report_error(self.settings.load_error)

    def _build(self) -> None:
        self.library_panel = LibraryPanel()
        self.results_panel = ResultsPanel(self.grid_model)
        self.calibration_bar = CalibrationBar(self.calibration_state, self.settings)
        self.results_panel.controls.addWidget(self.calibration_bar)
        self.filters = install_filters(self)
        self.results_panel.expand_box.setChecked(self.settings.expand)
        self.splitter = QSplitter()
        self.splitter.addWidget(self.library_panel)
        self.splitter.addWidget(self.results_panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([220, 900])
        self.setCentralWidget(self.splitter)
        self.debug_panel = DebugPanel(thumbnail_for=self.search.thumbnail_for)
        self.debug_dock = self._dock(
            "Debug scores", self.debug_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        window_state.widen_when_opened(self, self.debug_dock, self.debug_panel.wanted_width)
        self.log_view = QPlainTextEdit(readOnly=True)
        self.log_dock = self._dock("Log", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.status_area = StatusArea(self.statusBar())
        build_menus(self)
        self.statusBar().showMessage("Loading the model…")
        window_state.restore(self, self.splitter, self.ui_state, [self.debug_dock, self.log_dock])

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower().replace(" ", "_"))  # saveState() needs a name
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _wire(self) -> None:
        panel, search, library, model = (self.results_panel, self.search, self.library, self.model)
        status = self.status_area
        panel.search_requested.connect(search.search)
        panel.similar_requested.connect(search.find_similar)
        panel.clear_requested.connect(search.clear)
        panel.show_all_toggled.connect(search.set_show_all)
        panel.expand_box.toggled.connect(self.settings.set_expand)
        panel.set_aggregate(str(self.ui_state.value("aggregate", search.aggregate)))
        search.aggregate = panel.aggregate()
        panel.aggregate_changed.connect(search.set_aggregate)
        panel.retry_requested.connect(lambda: self.model.start())
        panel.viewer.describe = search.describe
        self.calibration_bar.problem.connect(self.report_error)
        search.ranked.connect(self.debug_panel.show_search)
        search.cleared.connect(self.debug_panel.clear)
        search.cleared.connect(lambda: panel.show_library(self.grid_model.rowCount()))
        search.shown.connect(self._on_results_shown)
        search.search_done.connect(self.search_done)
        search.status.connect(lambda text: self.statusBar().showMessage(text, 5000))
        search.precompute_progress.connect(status.precompute_progress)
        search.precompute_finished.connect(status.precompute_stopped)
        search.precompute_finished.connect(self.precompute_finished)
        self.thumbnails.ready.connect(lambda _path: self.debug_panel.refresh_thumbnails())
        self.library_panel.add_requested.connect(lambda folder: self.start_indexing([folder]))
        self.library_panel.rescan_requested.connect(library.rescan)
        library.refused.connect(self.report_error)
        self.library_panel.remove_requested.connect(library.remove)
        library.folders_changed.connect(self.library_panel.show_folders)
        library.listed.connect(self._on_listed)
        library.changed.connect(search.search_again)
        library.message.connect(lambda text: self.statusBar().showMessage(text, 10000))
        library.indexing_progress.connect(self.indexing_progress)
        follow_work(status, library, model)  # indexing and download progress, Cancel
        library.indexing_finished.connect(self._on_indexing_finished)
        status.failures_clicked.connect(self.log_dock.show)
        model.library_opened.connect(library.set_library)
        model.ready.connect(self._on_model_ready)
        model.unavailable.connect(self._on_model_unavailable)
        model.note.connect(self.report_error)
        model.unavailable.connect(lambda *_: status.download_stopped("Model unavailable"))
        preferences.wire_model_choice(self)  # Preferences, the banner's folder, Cancel

    # -- the public surface (app.py, tests, scripts) ---------------------------------------
    def start_engine(self) -> None:
        """Start loading the model; call after show() so the window appears first."""
        if self.model_info is None:
            self.model.start()

    def start_indexing(self, folders: list[str]) -> bool:
        return self.library.add_folders(folders)

    def run_search(self) -> None:
        self.results_panel.submit()

    def clear_search(self) -> None:
        self.results_panel.clear()

    def calibration(self) -> Calibration:
        return self.calibration_state.calibration()

    @Slot(str)
    def report_error(self, message: str) -> None:
        """The one place errors reach the user: the status bar and the log view."""
        self.log_view.appendPlainText(f"{dt.datetime.now():%H:%M:%S}  {message}")
        self.statusBar().showMessage(message, 10000)

    # -- events -----------------------------------------------------------------------------
    def _on_model_ready(self, session: Session) -> None:
        self.model_info = session.info
        self.status_area.model_ready(session.info.device, session.info.image_fp16)
        self.results_panel.show_banner(None)
        self.calibration_state.set_model_parameters(
            session.info.logit_scale, session.info.logit_bias
        )
        self.statusBar().showMessage(f"Model ready: {Path(session.info.model_id).name}", 5000)
        self.library.set_encoder(session.library, session.encoder)
        self.search.set_searcher(session.searcher, precompute=self._precompute)
        self.model_loaded.emit(session.info)

    def _on_model_unavailable(self, state: str, message: str) -> None:
        self.model_info = None
        self.search.model_state = "failed"
        self.results_panel.show_model_problem(state == MISSING, message, state == UNREACHABLE)
        self.log_view.appendPlainText(message)
        self.model_missing.emit(message)

    def _on_listed(self, listing: Listing) -> None:
        self.search.set_library_images(listing.images)
        self.status_area.set_failures(len(listing.failures))
        if not self.search.query:
            self.results_panel.show_library(self.grid_model.rowCount())
        self.library_shown.emit()

    def _on_results_shown(self, summary: ResultSummary) -> None:
        self.results_panel.show_summary(summary, self.settings.min_score)
        self.statusBar().showMessage(summary.status_line(), summary.status_ms())
        self.results_shown.emit()

    def _on_indexing_finished(self, report: IndexReport | None) -> None:
        self.status_area.indexing_stopped(report)
        for failure in report.failed if report is not None else ():
            self.log_view.appendPlainText(f"skipped {failure.path}: {failure.reason}")
        self.indexing_finished.emit(report)

    # -- window -------------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        # Thumbnails are rendered for the screen the window is on (crisp on HiDPI), and again
        # when it moves to a screen of another pixel ratio.
        self.grid_model.set_device_pixel_ratio(self.devicePixelRatioF())
        window_state.follow_screen(self, self.grid_model.set_device_pixel_ratio)
        super().showEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel every task and wait: no thread outlives the window; then save the state."""
        self.library.stop()
        self.search.stop()
        self.runner.stop_all()
        self.model.close()
        self.thumbnails.shutdown()
        problem = self.settings.flush()
        if problem:
            log.warning("%s", problem)
        window_state.save(self, self.splitter, self.ui_state)
        self.ui_state.set_value("aggregate", self.search.aggregate)
        super().closeEvent(event)
