"""The duplicates window: groups of identical and near-identical photos with what a person
needs to choose what to keep (size, resolution, date, folder). It never deletes: it shows
the files in the file manager, where the person decides."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gallery_app.core.duplicates import (
    COMPARING,
    DEFAULT_MIN_SIMILARITY,
    IDENTICAL,
    DuplicateGroup,
    DuplicatePhoto,
    DuplicateProgress,
    DuplicateReport,
)
from gallery_app.ui import file_actions
from gallery_app.ui.tasks import Task, TaskRunner

if TYPE_CHECKING:
    from gallery_app.core.library import Library
    from gallery_app.ui.main_window import MainWindow
    from gallery_app.ui.thumbnails import ThumbnailProvider

ICON_PX = 64
PathRole = Qt.ItemDataRole.UserRole + 1
COLUMNS = ("Photo", "Folder", "Size", "Resolution", "Taken", "Similarity")


class DuplicatesTask(Task):
    """find_duplicates off the GUI thread; progress as (stage, done, total)."""

    title = "Finding duplicates"
    progress = Signal(str, int, int)

    def __init__(self, library: Library, min_similarity: float) -> None:
        super().__init__()
        self.library = library
        self.min_similarity = min_similarity

    def work(self) -> DuplicateReport:
        from gallery_app.core.duplicates import find_duplicates

        def report(progress: DuplicateProgress) -> None:
            self.progress.emit(progress.stage, progress.done, progress.total)

        return find_duplicates(
            self.library.catalog, self.min_similarity, progress=report, cancel=self.token
        )


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"  # pragma: no cover - the loop always returns


def describe_photo(group: DuplicateGroup, index: int) -> str:
    """The Similarity column: how this photo relates to the group's first one."""
    photo = group.photos[index]
    notes = []
    if index == 0:
        notes.append("most pixels" if group.kind != IDENTICAL else "first copy")
    elif photo.copy_of is not None:
        notes.append(f"same bytes as #{photo.copy_of + 1}")
    else:
        notes.append(f"cosine {photo.similarity:.4f} to #1")
    if photo.same_file:
        notes.append("hard link: the same file")
    return "; ".join(notes)


class DuplicatesDialog(QDialog):
    """Find, then look: a tree of groups, each photo a row; buttons act on the selection."""

    finished_search = Signal(object)  # DuplicateReport, or None when it failed

    def __init__(
        self,
        runner: TaskRunner,
        library: Library | None,
        thumbnails: ThumbnailProvider | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("duplicates_dialog")
        self.setWindowTitle("Duplicates")
        self.runner = runner
        self.library = library
        self.thumbnails = thumbnails
        self.report: DuplicateReport | None = None
        self._task: DuplicatesTask | None = None
        self.similarity_box = QDoubleSpinBox(decimals=4, minimum=0.5, maximum=1.0)
        self.similarity_box.setSingleStep(0.005)
        self.similarity_box.setValue(DEFAULT_MIN_SIMILARITY)
        self.similarity_box.setToolTip(
            "Photos whose image embeddings have at least this cosine are grouped as "
            "near-identical (re-encoded, resized, lightly edited). Identical files (same "
            "bytes) are always found."
        )
        self.find_button = QPushButton("Find duplicates")
        self.find_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.hide()
        top = QHBoxLayout()
        top.addWidget(QLabel("Near-identical at cosine ≥"))
        top.addWidget(self.similarity_box)
        top.addWidget(self.find_button)
        top.addWidget(self.progress, 1)
        top.addWidget(self.cancel_button)
        top.addStretch()
        self.summary = QLabel(
            "Finds copies with the same bytes and photos that look the same. Nothing is "
            "deleted: choose what to keep and remove the rest in your file manager.",
            wordWrap=True,
        )
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setIconSize(QSize(ICON_PX, ICON_PX))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # folders end with their name
        for column, width in enumerate((250, 300, 80, 90, 130)):
            self.tree.setColumnWidth(column, width)
        self.tree.itemDoubleClicked.connect(lambda item, _column: self.show_selected())
        self.tree.itemSelectionChanged.connect(self._on_selection)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.show_button = buttons.addButton(
            "Show in file manager", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.open_button = buttons.addButton("Open", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button = buttons.addButton("Copy paths", QDialogButtonBox.ButtonRole.ActionRole)
        self.show_button.clicked.connect(self.show_selected)
        self.open_button.clicked.connect(
            lambda: file_actions.open_with_default_app(self.selected_paths())
        )
        self.copy_button.clicked.connect(lambda: file_actions.copy_paths(self.selected_paths()))
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)
        self._on_selection()
        if thumbnails is not None:
            thumbnails.ready.connect(self._on_thumbnail_ready)
        self._rows_by_path: dict[str, list[QTreeWidgetItem]] = {}
        self.resize(1000, 640)

    # -- running ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is not None:
            return
        if self.library is None:
            self.summary.setText("Nothing is indexed yet: add a folder first.")
            return
        task = DuplicatesTask(self.library, self.similarity_box.value())
        task.progress.connect(self._on_progress)
        task.result.connect(self._on_result)
        task.errored.connect(self._on_error)
        task.done.connect(self._on_done)
        self._task = task
        self.find_button.setEnabled(False)
        self.cancel_button.show()
        self.progress.setRange(0, 0)
        self.progress.setFormat("")
        self.progress.show()
        self.summary.setText("Looking for duplicates…")
        self.runner.start(task)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def running(self) -> bool:
        return self._task is not None

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        scale = max(1, total // 1_000_000 + 1)  # QProgressBar holds 32-bit ints
        self.progress.setRange(0, max(1, total // scale))
        self.progress.setValue(done // scale)
        what = "comparing photos" if stage == COMPARING else "reading files of equal size"
        self.progress.setFormat(f"{what}: %p%")

    def _on_result(self, report: DuplicateReport) -> None:
        self.show_report(report)
        self.finished_search.emit(report)

    def _on_error(self, message: str) -> None:
        self.summary.setText(message)
        self.finished_search.emit(None)

    def _on_done(self) -> None:
        self._task = None
        self.find_button.setEnabled(True)
        self.cancel_button.hide()
        self.progress.hide()

    # -- showing ----------------------------------------------------------------------------
    def show_report(self, report: DuplicateReport) -> None:
        self.report = report
        self.tree.clear()
        self._rows_by_path = {}
        identical = sum(1 for g in report.groups if g.kind == IDENTICAL)
        near = len(report.groups) - identical
        text = (
            f"<b>{identical} group(s) of identical files</b> and <b>{near} group(s) of "
            f"near-identical photos</b> (cosine ≥ {report.min_similarity:.4f}) among "
            f"{report.photos} photos."
        )
        if report.cancelled:
            text = "<b>Stopped:</b> only what was found before Cancel. " + text
        if report.skipped:
            text += f" {len(report.skipped)} file(s) could not be read (see the Log)."
        text += " Nothing is deleted: select a photo and <i>Show in file manager</i>."
        self.summary.setText(text)
        for number, group in enumerate(report.groups, start=1):
            self._add_group(number, group)
        self.tree.expandAll()

    def _add_group(self, number: int, group: DuplicateGroup) -> None:
        if group.kind == IDENTICAL:
            title = f"#{number} Identical files — {len(group.photos)} copies"
        else:
            title = (
                f"#{number} Near-identical — {len(group.photos)} photos, lowest cosine "
                f"{group.min_similarity:.4f}"
            )
        head = QTreeWidgetItem([title])
        head.setFirstColumnSpanned(True)
        font = head.font(0)
        font.setBold(True)
        head.setFont(0, font)
        head.setFlags(head.flags() & ~Qt.ItemFlag.ItemIsSelectable)
        self.tree.addTopLevelItem(head)
        head.setFirstColumnSpanned(True)
        for index, photo in enumerate(group.photos):
            row = QTreeWidgetItem(
                [
                    f"{index + 1}. {os.path.basename(photo.path)}",
                    photo.folder,
                    human_size(photo.size),
                    f"{photo.width} × {photo.height}" if photo.width else "?",
                    _taken(photo),
                    describe_photo(group, index),
                ]
            )
            row.setData(0, PathRole, photo.path)
            row.setToolTip(0, photo.path)
            row.setToolTip(1, photo.folder)
            head.addChild(row)
            self._rows_by_path.setdefault(photo.path, []).append(row)
            self._set_icon(row, photo)

    def _set_icon(self, row: QTreeWidgetItem, photo: DuplicatePhoto) -> None:
        if self.thumbnails is None:
            return
        dpr = self.devicePixelRatioF()
        pixmap = self.thumbnails.pixmap(photo.path, photo.mtime_ns, dpr)
        row.setIcon(0, QIcon(pixmap if pixmap is not None else self.thumbnails.placeholder(dpr)))

    def _on_thumbnail_ready(self, path: str) -> None:
        if self.report is None:
            return
        for row in self._rows_by_path.get(path, []):
            for group in self.report.groups:
                for photo in group.photos:
                    if photo.path == path:
                        self._set_icon(row, photo)
                        return

    def selected_paths(self) -> list[str]:
        paths = [item.data(0, PathRole) for item in self.tree.selectedItems()]
        return list(dict.fromkeys(str(p) for p in paths if p))

    def show_selected(self) -> None:
        paths = self.selected_paths()
        if paths:
            file_actions.show_in_file_manager(paths)

    def _on_selection(self) -> None:
        chosen = bool(self.selected_paths())
        for button in (self.show_button, self.open_button, self.copy_button):
            button.setEnabled(chosen)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel()  # closing stops the search; what it found so far is dropped
        super().closeEvent(event)


def _taken(photo: DuplicatePhoto) -> str:
    if photo.taken is None:
        return "?"
    source = "" if photo.taken_source == "exif" else " (file time)"
    return f"{photo.taken:%Y-%m-%d %H:%M}{source}"


def open_duplicates(window: MainWindow) -> DuplicatesDialog:
    """The window's one duplicates dialog (made on first use), shown and raised."""
    dialog = window.findChild(DuplicatesDialog, "duplicates_dialog")
    library = window.model.library
    if dialog is None:
        dialog = DuplicatesDialog(window.runner, library, window.thumbnails, window)

        def log_skipped(report: DuplicateReport | None) -> None:
            for path, why in report.skipped if report is not None else []:
                window.report_error(f"Duplicates: could not read {path}: {why}")

        dialog.finished_search.connect(log_skipped)
    dialog.library = library
    if dialog.isVisible():
        dialog.activateWindow()  # already open behind the window: bring it forward
    dialog.show()
    return dialog
