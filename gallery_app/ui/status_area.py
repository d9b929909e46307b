"""The status area: progress (indexing, download) with Cancel, synonyms preparation, and a
failures badge that stays until the files are fixed. A panel: it shows, it does not decide."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar, QWidget

from gallery_app.core.accelerator import describe_device
from gallery_app.core.download import DownloadProgress
from gallery_app.core.download import describe as describe_download

if TYPE_CHECKING:
    from gallery_app.core.indexer import IndexReport
    from gallery_app.ui.library_controller import LibraryController
    from gallery_app.ui.model_controller import ModelController


class StatusArea(QWidget):
    cancel_requested = Signal()  # indexing
    download_cancel_requested = Signal()
    failures_clicked = Signal()

    def __init__(self, bar: QStatusBar) -> None:
        super().__init__(bar)
        self.bar = bar
        self.failures_button = QPushButton()
        self.failures_button.setFlat(True)
        self.failures_button.setToolTip("Files that could not be read: click for the list")
        self.failures_button.clicked.connect(self.failures_clicked)
        self.precompute_label = QLabel()
        self.precompute_label.setToolTip(
            "Synonym searches get instant once the dictionary is encoded (once per model)"
        )
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(160)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current batch; what was indexed is kept")
        self.cancel_button.clicked.connect(self._on_cancel)
        self.device_label = QLabel()
        self.device_label.setToolTip(
            "Where the model runs (GALLERY_APP_DEVICE=cpu to force the CPU)"
        )
        self._downloading = False
        for widget in (
            self.failures_button,
            self.precompute_label,
            self.progress_label,
            self.progress_bar,
            self.cancel_button,
        ):
            bar.addPermanentWidget(widget)
            widget.hide()
        bar.addPermanentWidget(self.device_label)
        self.device_label.hide()

    # -- indexing ----------------------------------------------------------------------------
    def indexing_started(self, folder_name: str, queued: int) -> None:
        self._folder = folder_name + (f" (+{queued} more)" if queued else "")
        self._show_progress(True)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_label.setText(f"Scanning {self._folder}…")

    def indexing_progress(self, done: int, total: int, rate: float) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        eta = ""
        if rate > 0 and total > done:
            eta = f" · {dt.timedelta(seconds=round((total - done) / rate))} left"
        self.progress_label.setText(
            f"Indexing {getattr(self, '_folder', '')}: {done}/{total} · {rate:.1f} photos/s{eta}"
        )

    def indexing_stopped(self, report: IndexReport | None) -> None:
        self._show_progress(False)
        if report is not None:
            verb = "Indexing cancelled" if report.cancelled else "Indexed"
            self.bar.showMessage(
                f"{verb}: {report.indexed} new, {report.unchanged} unchanged, "
                f"{report.removed} removed, {len(report.failed)} could not be read",
                15000,
            )

    def _on_cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        if self._downloading:
            self.progress_label.setText("Cancelling the download…")
            self.download_cancel_requested.emit()
            return
        self.progress_label.setText("Cancelling after this batch…")
        self.cancel_requested.emit()

    # -- download ---------------------------------------------------------------------------
    def download_progress(self, progress: DownloadProgress, indexing: bool) -> None:
        """First run with a hub id: the download, in MB (an indexing run keeps the bar)."""
        finished = progress.done_bytes >= progress.total_bytes
        if not indexing:
            if not self._downloading and not finished:
                self.cancel_button.setEnabled(True)
            self._downloading = not finished
            self.cancel_button.setToolTip(
                "Stop the download; what came is kept and Retry continues it"
                if self._downloading
                else "Stop after the current batch; what was indexed is kept"
            )
            self.progress_bar.setVisible(not finished)
            self.progress_label.setVisible(not finished)
            self.cancel_button.setVisible(not finished)
            self.progress_bar.setRange(0, max(progress.total_bytes // 1_000_000, 1))
            self.progress_bar.setValue(progress.done_bytes // 1_000_000)
            self.progress_label.setText(describe_download(progress))
        self.bar.showMessage(
            "Model downloaded; loading it…" if finished else describe_download(progress)
        )

    def download_stopped(self, message: str = "") -> None:
        """The load ended (ready, failed or cancelled): no download bar any more."""
        if self._downloading:
            self._downloading = False
            self._show_progress(False)
        if message:
            self.bar.showMessage(message, 5000)

    def model_ready(self, device: str, image_fp16: bool) -> None:
        self.download_stopped()
        self.set_device(describe_device(device, image_fp16))

    def set_device(self, text: str | None) -> None:
        """Where the model runs ('CPU', 'CUDA (…)'); None while no model is loaded."""
        self.device_label.setVisible(bool(text))
        self.device_label.setText(f"Model on {text}" if text else "")

    # -- the rest -----------------------------------------------------------------------------
    def precompute_progress(self, done: int, total: int) -> None:
        self.precompute_label.setVisible(done < total)
        self.precompute_label.setText(f"Preparing synonyms {done}/{total}")

    def precompute_stopped(self, *_: object) -> None:
        self.precompute_label.hide()

    def set_failures(self, count: int) -> None:
        """Persistent: shown as long as the library has files it could not read."""
        self.failures_button.setVisible(count > 0)
        self.failures_button.setText(f"⚠ {count} file{'s' if count != 1 else ''} could not be read")

    def _show_progress(self, on: bool) -> None:
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.setVisible(on)


def follow_work(status: StatusArea, library: LibraryController, model: ModelController) -> None:
    """Wire the status area to the long tasks it reports: indexing (with Cancel) and the
    model's first download."""
    library.indexing_started.connect(
        lambda folder, queued: status.indexing_started(Path(folder).name, queued)
    )
    library.indexing_progress.connect(status.indexing_progress)
    status.cancel_requested.connect(library.cancel)
    model.download_progress.connect(lambda p: status.download_progress(p, library.indexing))
