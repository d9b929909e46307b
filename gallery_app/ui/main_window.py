"""The main window: library list, search box, calibration controls, thumbnail grid, docks."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSettings, QSize, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QImageReader,
    QKeyEvent,
    QKeySequence,
    QPixmap,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gallery_app.core.calibrate import Calibration
from gallery_app.core.download import DownloadProgress
from gallery_app.core.download import describe as describe_download
from gallery_app.core.imaging import ThumbnailCache
from gallery_app.ui.debug_panel import DebugPanel
from gallery_app.ui.engine import EngineWorker, IndexWorker, ModelInfo, PrecomputeWorker
from gallery_app.ui.grid_model import GridItem, GridModel
from gallery_app.ui.settings import Settings, UiState
from gallery_app.ui.thumbnails import ThumbnailProvider

log = logging.getLogger(__name__)

SEARCH_DEBOUNCE_MS = 250
THUMBNAIL_PX = 160
TEMPERATURE_MAX = 300


class MainWindow(QMainWindow):
    request_search = Signal(int, str, bool)
    request_retry = Signal(str)
    request_refresh = Signal()
    request_remove_folder = Signal(str)
    request_shutdown = Signal()
    # GUI-side events, emitted after the window has applied them (tests and scripts wait on these)
    model_loaded = Signal(object)  # ModelInfo
    model_missing = Signal(str)
    library_shown = Signal()
    results_shown = Signal()  # after every (re)ranking: a first answer, a refinement, a slider
    search_done = Signal()  # the complete (expanded) answer of the latest search is shown
    precompute_finished = Signal(int)  # dictionary prompts encoded in the background
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
        store = store or QSettings("gallery-app", "gallery-app")
        self.settings = Settings(settings_file, self)
        self.ui_state = UiState(store)
        self.data_dir = data_dir
        self.model_info: ModelInfo | None = None
        self.hits: Any = None  # SearchHits of the current query
        self.results: list[Any] = []
        self._latest_request = 0
        self._library_items: list[GridItem] = []
        self._mtime_by_id: dict[int, int] = {}  # thumbnails are keyed by (path, mtime)
        self._index_thread: QThread | None = None
        self._index_worker: IndexWorker | None = None
        self.last_index_report: Any = None
        self._precompute = precompute_dictionary
        self._precompute_thread: QThread | None = None
        self._precompute_worker: PrecomputeWorker | None = None
        self._precompute_encoded = 0

        self.thumbnails = ThumbnailProvider(
            ThumbnailCache(data_dir / "thumbnails"), THUMBNAIL_PX, self
        )
        self.grid_model = GridModel(self.thumbnails, self)
        self._build_ui()
        self._bind_settings()

        self._engine_thread = QThread(self)
        self.engine = EngineWorker(data_dir, model, expansions_file, fast)
        self.engine.moveToThread(self._engine_thread)
        self._engine_thread.started.connect(self.engine.start)
        self._engine_thread.finished.connect(self.engine.deleteLater)
        self.engine.model_ready.connect(self._on_model_ready)
        self.engine.model_unavailable.connect(self._on_model_unavailable)
        self.engine.download_progress.connect(self._on_download_progress)
        self.engine.library_listed.connect(self._on_library_listed)
        self.engine.folders_listed.connect(self._on_folders_listed)
        self.engine.searched.connect(self._on_searched)
        self.engine.error.connect(self.report_error)
        self.request_search.connect(self.engine.search)
        self.request_retry.connect(self.engine.retry)
        self.request_refresh.connect(self.engine.refresh)
        self.request_remove_folder.connect(self.engine.remove_folder)
        self.request_shutdown.connect(self.engine.shutdown)
        if self.settings.load_error:
            self.report_error(self.settings.load_error)

    # Construction ---------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.search_box = QLineEdit(placeholderText="Search your photos, e.g. dog on the beach")
        self.search_box.setClearButtonEnabled(True)
        self._debounce = QTimer(self, singleShot=True, interval=SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_search)
        self.search_box.textEdited.connect(lambda _text: self._debounce.start())
        self.search_box.returnPressed.connect(self.run_search)
        self.search_box.installEventFilter(self)  # Esc clears

        self.preset_box = QComboBox()
        self.preset_box.addItems(["model", "seed", "custom"])
        self.temperature_slider = QSlider(Qt.Orientation.Horizontal)
        self.temperature_slider.setRange(1, TEMPERATURE_MAX)
        self.temperature_slider.setMinimumWidth(160)
        self.temperature_label = QLabel()
        self.temperature_label.setMinimumWidth(150)
        self.min_score_box = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05)
        self.min_score_box.setSpecialValueText("off")
        self.min_score_box.setToolTip("Hide results whose calibrated score is below this")
        self.reset_button = QPushButton("Reset to model")
        self.expand_box = QCheckBox("Synonyms")
        self.expand_box.setToolTip(
            "Also search with synonyms and related words (dog → puppy, canine, pet)"
        )

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Preset"))
        controls.addWidget(self.preset_box)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Temperature"))
        controls.addWidget(self.temperature_slider, 1)
        controls.addWidget(self.temperature_label)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Hide below"))
        controls.addWidget(self.min_score_box)
        controls.addWidget(self.reset_button)

        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner.setStyleSheet(
            "#banner { background: #fff4ce; border: 1px solid #e0c060; border-radius: 4px; }"
        )
        self.banner_label = QLabel(wordWrap=True)
        self.choose_model_button = QPushButton("Choose model folder…")
        self.retry_button = QPushButton("Retry")
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.addWidget(self.banner_label, 1)
        banner_layout.addWidget(self.choose_model_button)
        banner_layout.addWidget(self.retry_button)
        self.banner.hide()
        self.choose_model_button.clicked.connect(self._choose_model_folder)
        self.retry_button.clicked.connect(lambda: self.request_retry.emit(""))

        self.grid = QListView()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setUniformItemSizes(True)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(500)
        self.grid.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.grid.setGridSize(QSize(THUMBNAIL_PX + 24, THUMBNAIL_PX + 48))
        self.grid.setWordWrap(True)
        self.grid.setSpacing(4)
        self.grid.setModel(self.grid_model)
        self.grid.doubleClicked.connect(self._open_preview)

        self.empty_label = QLabel(
            "<h2>No photos yet</h2><p>Click <b>Add folder…</b> on the left to index a folder "
            "of photos. Indexing runs in the background; you can search as soon as it starts.</p>",
            alignment=Qt.AlignmentFlag.AlignCenter,
            wordWrap=True,
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.grid)

        self.folder_list = QListWidget()
        self.add_folder_button = QPushButton("Add folder…")
        self.remove_folder_button = QPushButton("Remove")
        self.add_folder_button.clicked.connect(self._choose_folder)
        self.remove_folder_button.clicked.connect(self._remove_selected_folder)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(QLabel("<b>Library</b>"))
        side_layout.addWidget(self.folder_list, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_folder_button)
        buttons.addWidget(self.remove_folder_button)
        side_layout.addLayout(buttons)

        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        search_row = QHBoxLayout()
        search_row.addWidget(self.search_box, 1)
        search_row.addWidget(self.expand_box)
        centre_layout.addLayout(search_row)
        centre_layout.addLayout(controls)
        centre_layout.addWidget(self.banner)
        centre_layout.addWidget(self.stack, 1)

        self.splitter = QSplitter()
        self.splitter.addWidget(side)
        self.splitter.addWidget(centre)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([200, 900])
        self.setCentralWidget(self.splitter)

        self.debug_panel = DebugPanel(thumbnail_for=self._thumbnail_for_path)
        self.thumbnails.ready.connect(lambda _path: self.debug_panel.refresh_thumbnails())
        self.debug_dock = QDockWidget("Debug scores", self)
        self.debug_dock.setObjectName("debug_dock")  # saveState() needs a name
        self.debug_dock.setWidget(self.debug_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.debug_dock)
        self.log_view = QPlainTextEdit(readOnly=True)
        self.log_dock = QDockWidget("Log", self)
        self.log_dock.setObjectName("log_dock")
        self.log_dock.setWidget(self.log_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.log_dock.hide()

        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.debug_dock.toggleViewAction())
        view_menu.addAction(self.log_dock.toggleViewAction())
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("Add folder…", self._choose_folder)
        file_menu.addAction("Choose model folder…", self._choose_model_folder)
        file_menu.addSeparator()
        file_menu.addAction("Quit", QKeySequence.StandardKey.Quit, self.close)

        self.precompute_label = QLabel()
        self.precompute_label.setToolTip(
            "Synonym searches get instant once the dictionary is encoded (once per model)"
        )
        self.statusBar().addPermanentWidget(self.precompute_label)
        self.precompute_label.hide()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(220)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_indexing)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            self.statusBar().addPermanentWidget(widget)
            widget.hide()
        self.statusBar().showMessage("Loading the model…")

        geometry = self.ui_state.bytes_value("geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 800)
        state = self.ui_state.bytes_value("window_state")
        if state is None or not self.restoreState(state):
            # First run: wide enough that the raw and calibrated columns are visible.
            self.resizeDocks([self.debug_dock], [560], Qt.Orientation.Horizontal)
        splitter = self.ui_state.bytes_value("splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        self._update_empty_state()

    def _bind_settings(self) -> None:
        self._sync_calibration_controls()
        self.min_score_box.setValue(self.settings.min_score)
        self.expand_box.setChecked(self.settings.expand)
        self.expand_box.toggled.connect(self.settings.set_expand)
        self.settings.expand_changed.connect(lambda _on: self._search_again())
        self.preset_box.currentTextChanged.connect(self.settings.set_preset)
        self.temperature_slider.valueChanged.connect(self._on_slider_moved)
        self.min_score_box.valueChanged.connect(self.settings.set_min_score)
        self.reset_button.clicked.connect(lambda: self.settings.set_preset("model"))
        self.settings.preset_changed.connect(lambda _name: self._recalibrate())
        self.settings.custom_changed.connect(lambda _t, _c: self._recalibrate())
        self.settings.min_score_changed.connect(lambda _s: self._recalibrate())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.search_box
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
        ):
            self.clear_search()
            return True
        return super().eventFilter(watched, event)

    def showEvent(self, event: QShowEvent) -> None:
        # Thumbnails are rendered for the screen the window is on (crisp on HiDPI).
        self.grid_model.set_device_pixel_ratio(self.devicePixelRatioF())
        super().showEvent(event)

    def start_engine(self) -> None:
        """Start loading the model; call after show() so the window appears first."""
        if not self._engine_thread.isRunning():
            self._engine_thread.start()

    # Calibration ----------------------------------------------------------------------------
    def calibration(self) -> Calibration:
        info = self.model_info
        return self.settings.calibration(
            info.logit_scale if info else None, info.logit_bias if info else None
        )

    def _on_slider_moved(self, value: int) -> None:
        current = self.calibration()
        if abs(current.temperature - value) >= 0.5:
            self.settings.set_custom(float(value), current.centre)

    def _sync_calibration_controls(self) -> None:
        calibration = self.calibration()
        for widget, update in (
            (self.preset_box, lambda: self.preset_box.setCurrentText(self.settings.preset)),
            (
                self.temperature_slider,
                lambda: self.temperature_slider.setValue(round(calibration.temperature)),
            ),
        ):
            blocked = widget.blockSignals(True)
            update()
            widget.blockSignals(blocked)
        if self.settings.preset == "model" and self.model_info is None:
            self.temperature_label.setText("T, c: from the model")
        else:
            self.temperature_label.setText(
                f"T = {calibration.temperature:.1f}, c = {calibration.centre:.3f}"
            )

    def _recalibrate(self) -> None:
        """Re-rank the raw scores in hand under the current T, c and cut-off: no model call."""
        self._sync_calibration_controls()
        if self.hits is None:
            return
        calibration = self.calibration()
        min_score = self.settings.min_score or None
        self.results = self.hits.rank(calibration, top_k=None, min_score=min_score)
        mtimes = self._mtime_by_id
        self.grid_model.set_items(
            [
                GridItem(r.image_id, r.path, mtimes.get(r.image_id, 0), r.score, r.raw, r.variant)
                for r in self.results
            ]
        )
        self.debug_panel.show_search(self.hits, self.results, calibration)
        self._update_empty_state()
        self.statusBar().showMessage(f"{len(self.results)} result(s) for “{self.hits.query}”", 5000)
        self.results_shown.emit()

    # Search -----------------------------------------------------------------------------
    @Slot()
    def run_search(self) -> None:
        self._debounce.stop()
        query = self.search_box.text().strip()
        if not query:
            self.clear_search()
            return
        if self.model_info is None:
            self.statusBar().showMessage("The model is still loading; search starts when ready.")
            return
        self._latest_request += 1
        self.engine.latest_request = self._latest_request  # lets the engine skip stale work
        self.statusBar().showMessage(f"Searching “{query}”…")
        self.request_search.emit(self._latest_request, query, self.settings.expand)

    def _search_again(self) -> None:
        if self.hits is not None:
            self.run_search()

    @Slot()
    def clear_search(self) -> None:
        self._debounce.stop()
        self._latest_request += 1  # results still on their way are now stale
        self.engine.latest_request = self._latest_request
        self.search_box.clear()
        self.hits = None
        self.results = []
        self.debug_panel.clear()
        self.grid_model.set_items(self._library_items)
        self._update_empty_state()

    @Slot(int, object, bool)
    def _on_searched(self, request_id: int, hits: Any, final: bool) -> None:
        if request_id != self._latest_request:
            return  # a newer search was started: drop the stale answer
        self.hits = hits
        self._recalibrate()
        if final:
            self.search_done.emit()
        else:
            self.statusBar().showMessage(
                f"{len(self.results)} result(s) for “{hits.query}” as typed; adding synonyms…"
            )

    # Engine events ---------------------------------------------------------------------------
    @Slot(object)
    def _on_model_ready(self, info: ModelInfo) -> None:
        self.model_info = info
        self.banner.hide()
        if not self.indexing:
            self._hide_progress()
        self._sync_calibration_controls()
        self.statusBar().showMessage(f"Model ready: {info.model_id} ({info.precision})", 5000)
        self._start_precompute()
        self.model_loaded.emit(info)
        if self.search_box.text().strip():
            self.run_search()

    def _start_precompute(self) -> None:
        """Encode the synonym dictionary once per model, so expanded searches need no model."""
        self._stop_precompute()
        if not self._precompute or self.engine.searcher is None:
            return
        worker = PrecomputeWorker(self.engine.searcher)
        worker.progress.connect(self._on_precompute_progress)
        worker.done.connect(self._on_precompute_done)
        thread = self._thread_for(worker)
        # Bound to this thread: a retry may have started another run by the time it finishes.
        thread.finished.connect(lambda: self._on_precompute_thread_finished(thread))
        self._precompute_thread, self._precompute_worker = thread, worker
        thread.start(QThread.Priority.LowPriority)

    def _thread_for(self, worker: IndexWorker | PrecomputeWorker) -> QThread:
        """superqt's wiring: started -> run, done -> quit, finished -> deleteLater on both.

        The window keeps its Python references until the thread has finished, so a worker is
        never destroyed while its thread could still touch it.
        """
        thread = QThread(self)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.failed.connect(self.report_error)
        worker.done.connect(thread.quit)
        thread.finished.connect(worker.deleteLater)
        return thread

    def _stop_precompute(self) -> None:
        thread, worker = self._precompute_thread, self._precompute_worker
        if thread is None or worker is None:
            return
        self._precompute_thread, self._precompute_worker = None, None
        worker.cancel()
        thread.quit()
        thread.wait()  # at most one small batch of prompts
        self.precompute_label.hide()

    @Slot(int, int)
    def _on_precompute_progress(self, done: int, total: int) -> None:
        if self._precompute_thread is not None:
            self.precompute_label.setVisible(done < total)
            self.precompute_label.setText(f"Preparing synonyms {done}/{total}")

    @Slot(int)
    def _on_precompute_done(self, encoded: int) -> None:
        self._precompute_encoded = encoded

    def _on_precompute_thread_finished(self, thread: QThread) -> None:
        thread.wait()
        thread.deleteLater()
        if thread is not self._precompute_thread:
            return  # stopped on purpose (close, or another model)
        self._precompute_thread, self._precompute_worker = None, None
        self.precompute_label.hide()
        self.precompute_finished.emit(self._precompute_encoded)

    @Slot(object)
    def _on_download_progress(self, progress: DownloadProgress) -> None:
        """First run with a hub id: the status bar shows the download, in MB."""
        finished = progress.done_bytes >= progress.total_bytes
        if not self.indexing:  # an indexing run owns the progress bar
            self.progress_bar.setVisible(not finished)
            self.progress_label.setVisible(not finished)
            self.progress_bar.setRange(0, max(progress.total_bytes // 1_000_000, 1))
            self.progress_bar.setValue(progress.done_bytes // 1_000_000)
            self.progress_label.setText(describe_download(progress))
        self.statusBar().showMessage(
            "Model downloaded; loading it…" if finished else describe_download(progress)
        )

    def _hide_progress(self) -> None:
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.hide()

    @Slot(str)
    def _on_model_unavailable(self, message: str) -> None:
        self.model_info = None
        if not self.indexing:
            self._hide_progress()
        self.banner_label.setText(
            f"<b>The model is not available, so searching and indexing are off.</b> "
            f"Your library can still be browsed.<br>{message}"
        )
        self.banner.show()
        self.statusBar().showMessage("Model unavailable", 5000)
        self.log_view.appendPlainText(message)
        self.model_missing.emit(message)

    @Slot(object)
    def _on_library_listed(self, images: list[Any]) -> None:
        self._library_items = [GridItem(i.id, i.path, i.mtime_ns) for i in images]
        # Built once per listing, not on every slider move over a large library.
        self._mtime_by_id = {item.image_id: item.mtime_ns for item in self._library_items}
        if self.hits is None:
            self.grid_model.set_items(self._library_items)
        self._update_empty_state()
        self.library_shown.emit()

    @Slot(object)
    def _on_folders_listed(self, folders: list[str]) -> None:
        self.folder_list.clear()
        for folder in folders:
            item = QListWidgetItem(Path(folder).name or folder)
            item.setToolTip(folder)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            self.folder_list.addItem(item)

    @Slot(str)
    def report_error(self, message: str) -> None:
        """The one place errors reach the user: status bar and the log view."""
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        self.log_view.appendPlainText(f"{stamp}  {message}")
        self.statusBar().showMessage(message, 10000)

    def _update_empty_state(self) -> None:
        empty = self.grid_model.rowCount() == 0 and self.hits is None
        self.stack.setCurrentWidget(self.empty_label if empty else self.grid)

    def _thumbnail_for_path(self, path: str) -> QPixmap | None:
        rows = self.grid_model.rows_for_path(path)
        if not rows:
            return None
        item = self.grid_model.item(rows[0])
        return self.thumbnails.pixmap(item.path, item.mtime_ns, self.devicePixelRatioF())

    # Folders and indexing ----------------------------------------------------------------------
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if folder:
            self.start_indexing([folder])

    def _remove_selected_folder(self) -> None:
        item = self.folder_list.currentItem()
        if item is None:
            return
        folder = item.data(Qt.ItemDataRole.UserRole)
        # Forgetting a folder throws away its encoding work, which can take hours to redo.
        answer = QMessageBox.question(
            self,
            "Remove folder",
            f"Remove “{folder}” from the library?\n\nIts photos stay on disk; searching them "
            "again means indexing the folder again.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.request_remove_folder.emit(folder)

    def _choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a SigLIP model folder")
        if folder:
            self.request_retry.emit(folder)

    def start_indexing(self, folders: list[str]) -> bool:
        if self.model_info is None or self.engine.library is None:
            self.report_error("The model is not loaded, so folders cannot be indexed yet.")
            return False
        if self._index_thread is not None:
            self.report_error("Already indexing; wait for it to finish or cancel it.")
            return False
        if self.engine.library.read_only:
            self.report_error(
                "Another gallery-app is writing to this library; add folders when it is done."
            )
            return False
        worker = IndexWorker(self.engine.library, self.engine.encoder, folders)
        worker.progress.connect(self._on_index_progress)
        worker.done.connect(self._on_index_report)  # before done -> quit: the report comes first
        thread = self._thread_for(worker)
        thread.finished.connect(self._on_index_thread_finished)
        self._index_thread, self._index_worker = thread, worker
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.show()
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_label.setText("Scanning…")
        self.last_index_report = None
        thread.start()
        return True

    @Slot(int, int, float)
    def _on_index_progress(self, done: int, total: int, rate: float) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        eta = ""
        if rate > 0 and total > done:
            eta = f" · ETA {dt.timedelta(seconds=round((total - done) / rate))}"
        self.progress_label.setText(f"{done}/{total} · {rate:.1f} img/s{eta}")
        self.indexing_progress.emit(done, total, rate)

    @Slot()
    def cancel_indexing(self) -> None:
        if self._index_worker is not None:
            self._index_worker.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Cancelling after this batch…")

    @Slot(object)
    def _on_index_report(self, report: Any) -> None:
        self.last_index_report = report

    @Slot()
    def _on_index_thread_finished(self) -> None:
        thread = self._index_thread
        if thread is None:  # closeEvent already stopped it
            return
        thread.wait()  # finished is emitted just before the thread really ends
        self._index_thread, self._index_worker = None, None
        thread.deleteLater()
        self._hide_progress()
        report = self.last_index_report
        if report is not None:
            verb = "Indexing cancelled" if report.cancelled else "Indexed"
            failed = (
                f"{len(report.failed)} could not be read (see View › Log)"
                if report.failed
                else "none failed"
            )
            self.statusBar().showMessage(
                f"{verb}: {report.indexed} new, {report.unchanged} unchanged, "
                f"{report.removed} removed, {failed}",
                15000,
            )
            for failure in report.failed:
                self.log_view.appendPlainText(f"skipped {failure.path}: {failure.reason}")
        self.request_refresh.emit()
        if self.hits is not None:
            self.run_search()
        self.indexing_finished.emit(report)

    @property
    def indexing(self) -> bool:
        return self._index_thread is not None

    # Preview and shutdown ----------------------------------------------------------------------
    def _open_preview(self, index: Any) -> None:
        item = self.grid_model.item(index.row())
        PreviewDialog(item, self).exec()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel indexing, stop the workers and wait: no thread outlives the window."""
        if self._index_worker is not None:
            self._index_worker.cancel()
        if self._index_thread is not None:
            # run() returns after the current batch; only then can the thread quit.
            self._index_thread.quit()
            self._index_thread.wait()
            self._index_thread, self._index_worker = None, None
        self._stop_precompute()
        if self._engine_thread.isRunning():
            self.request_shutdown.emit()
            self._engine_thread.quit()
            self._engine_thread.wait()
        self.thumbnails.shutdown()
        problem = self.settings.flush()
        if problem:
            log.warning("%s", problem)
        self.ui_state.set_value("geometry", self.saveGeometry())
        self.ui_state.set_value("window_state", self.saveState())
        self.ui_state.set_value("splitter", self.splitter.saveState())
        super().closeEvent(event)


class PreviewDialog(QDialog):
    """The full image with its path, size, date and score."""

    def __init__(self, item: GridItem, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(Path(item.path).name)
        reader = QImageReader(item.path)
        reader.setAutoTransform(True)
        size = reader.size()
        if size.isValid():
            reader.setScaledSize(size.scaled(1200, 900, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        picture = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        if image.isNull():
            picture.setText(f"Cannot show this image: {reader.errorString()}")
        else:
            picture.setPixmap(QPixmap.fromImage(image))
        details = [item.path]
        if size.isValid():
            details.append(f"{size.width()} × {size.height()} px")
        try:
            stat = Path(item.path).stat()
            modified = dt.datetime.fromtimestamp(stat.st_mtime).strftime("%Y-%m-%d %H:%M")
            details.append(f"{stat.st_size / 1e6:.1f} MB, modified {modified}")
        except OSError:
            details.append("file no longer on disk")
        if item.score is not None:
            details.append(
                f"score {item.score:.4f} (raw cosine {item.raw:.4f}, variant “{item.variant}”)"
            )
        info = QLabel("<br>".join(details), wordWrap=True)
        info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(picture, 1)
        layout.addWidget(info)
