"""The compact filter row above the grid (taken from / to, folder, sort) and the timeline of
months shown when the results are sorted by date. Widgets only: the SearchController filters.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPoint, QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QWidget,
)

from gallery_app.core.filters import SORT_DATE, SORT_SCORE, FilterError, PhotoFilter
from gallery_app.ui.grid_model import GridItem, GridModel

if TYPE_CHECKING:
    from gallery_app.ui.main_window import MainWindow

ALL_FOLDERS = ""
_CHOOSE = "\0choose"  # the folder box's "Choose folder…" entry
_BAD_STYLE = "QLineEdit { border: 1px solid #c0392b; }"


@dataclass(frozen=True)
class FilterChoice:
    """What the row asks for: which photos, in which order."""

    photo_filter: PhotoFilter = field(default_factory=PhotoFilter)
    sort: str = SORT_SCORE
    newest_first: bool = True


class FilterRow(QWidget):
    changed = Signal(object)  # FilterChoice, after every valid edit

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        hint = "a year (2023), a month (2023-07) or a day (2023-07-14)"
        self.from_box = QLineEdit(placeholderText="from")
        self.from_box.setToolTip(f"Taken on or after: {hint}")
        self.to_box = QLineEdit(placeholderText="to")
        self.to_box.setToolTip(f"Taken up to the end of: {hint}")
        for box in (self.from_box, self.to_box):
            box.setMaximumWidth(96)
            box.setClearButtonEnabled(True)
            box.editingFinished.connect(self._emit)
            box.textChanged.connect(self._on_text_changed)
        self.folder_box = QComboBox()
        self.folder_box.setToolTip("Only photos in this folder and the folders inside it")
        self.folder_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.folder_box.addItem("All folders", ALL_FOLDERS)
        self.folder_box.addItem("Choose folder…", _CHOOSE)
        self.folder_box.activated.connect(self._on_folder_activated)
        self.sort_box = QComboBox()
        # Plain strings as item data: a tuple comes back from Qt as a list, and findData fails.
        self.sort_box.addItem("Best match first", _sort_key(SORT_SCORE, True))
        self.sort_box.addItem("Matches, newest first", _sort_key(SORT_DATE, True))
        self.sort_box.addItem("Matches, oldest first", _sort_key(SORT_DATE, False))
        self.sort_box.setToolTip(
            "By date: only the matches (scores at or above Hide below, or 20% — the "
            "'possible' band — when Hide below is 0), in the order they were taken."
        )
        self.sort_box.currentIndexChanged.connect(lambda _i: self._emit())
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.clicked.connect(self.clear)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #c0392b;")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Taken"))
        layout.addWidget(self.from_box)
        layout.addWidget(QLabel("–"))
        layout.addWidget(self.to_box)
        layout.addWidget(self.folder_box)
        layout.addWidget(self.sort_box)
        layout.addWidget(self.clear_button)
        layout.addWidget(self.problem, 1)
        self._choice = FilterChoice()
        self._folders: list[str] = []
        self._chosen_folder = ALL_FOLDERS

    # -- what the row holds ---------------------------------------------------------------
    def choice(self) -> FilterChoice:
        return self._choice

    def set_folders(self, folders: Sequence[Any]) -> None:
        """The library's folders (rows with a `path`, or paths), offered in the folder box."""
        self._folders = [str(getattr(f, "path", f)) for f in folders]
        self._fill_folders()

    def set_folder(self, folder: str) -> None:
        """Filter on a folder (a library folder or one inside it); "" for all folders."""
        self._chosen_folder = os.path.abspath(folder) if folder else ALL_FOLDERS
        self._fill_folders()
        self._emit()

    def set_dates(self, start: str, end: str) -> None:
        with QSignalBlocker(self.from_box), QSignalBlocker(self.to_box):
            self.from_box.setText(start)
            self.to_box.setText(end)
        self._emit()

    def set_sort(self, sort: str, newest_first: bool = True) -> None:
        index = self.sort_box.findData(_sort_key(sort, newest_first))
        if index >= 0:
            self.sort_box.setCurrentIndex(index)

    def clear(self) -> None:
        with QSignalBlocker(self.from_box), QSignalBlocker(self.to_box):
            self.from_box.clear()
            self.to_box.clear()
        with QSignalBlocker(self.sort_box):
            self.sort_box.setCurrentIndex(0)
        self._chosen_folder = ALL_FOLDERS
        self._fill_folders()
        self._emit()

    # -- internals ------------------------------------------------------------------------
    def _fill_folders(self) -> None:
        with QSignalBlocker(self.folder_box):
            self.folder_box.clear()
            self.folder_box.addItem("All folders", ALL_FOLDERS)
            known = list(self._folders)
            if self._chosen_folder and self._chosen_folder not in known:
                known.append(self._chosen_folder)
            for folder in known:
                self.folder_box.addItem(os.path.basename(folder) or folder, folder)
                self.folder_box.setItemData(
                    self.folder_box.count() - 1, folder, Qt.ItemDataRole.ToolTipRole
                )
            self.folder_box.addItem("Choose folder…", _CHOOSE)
            self.folder_box.setCurrentIndex(max(0, self.folder_box.findData(self._chosen_folder)))

    def _on_folder_activated(self, index: int) -> None:
        data = self.folder_box.itemData(index)
        if data == _CHOOSE:
            start = self._chosen_folder or (self._folders[0] if self._folders else "")
            folder = QFileDialog.getExistingDirectory(self, "Only photos in this folder", start)
            if folder:
                self.set_folder(folder)
            else:
                self._fill_folders()  # back to what was chosen before
            return
        self._chosen_folder = str(data or ALL_FOLDERS)
        self._emit()

    def _on_text_changed(self, _text: str) -> None:
        if not self.from_box.text().strip() and not self.to_box.text().strip():
            self._emit()  # the clear button was pressed: no date filter at once

    def _emit(self) -> None:
        start, end = self.from_box.text().strip(), self.to_box.text().strip()
        problems = []
        for box, text in ((self.from_box, start), (self.to_box, end)):
            try:
                PhotoFilter.from_text(after=text or None)
            except FilterError:
                box.setStyleSheet(_BAD_STYLE)
                problems.append(f"“{text}” is not a date: type 2023, 2023-07 or 2023-07-14")
            else:
                box.setStyleSheet("")
        self.problem.setText(problems[0] if problems else "")
        if problems:
            return  # the results stay as they were until the date reads
        sort, _, order = str(self.sort_box.currentData()).partition(" ")
        newest_first = order != "oldest"
        choice = FilterChoice(
            PhotoFilter.from_text(
                after=start or None, until=end or None, folder=self._chosen_folder or None
            ),
            str(sort),
            bool(newest_first),
        )
        self.clear_button.setEnabled(choice != FilterChoice())
        if choice != self._choice:
            self._choice = choice
            self.changed.emit(choice)


def _sort_key(sort: str, newest_first: bool) -> str:
    return sort if sort == SORT_SCORE else f"{sort} {'newest' if newest_first else 'oldest'}"


def month_label(month: dt.date) -> str:
    return month.strftime("%B %Y")


class Timeline(QListWidget):
    """The months of the results sorted by date, each with its count; a click scrolls the
    grid to the month's first photo. Shown only while the grid is sorted by date."""

    month_clicked = Signal(int)  # the grid row of the month's first photo

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(self.fontMetrics().height() * 2 + 6)
        self.setSpacing(2)
        self.setToolTip("Months of the matches, in the grid's order: click one to go there")
        self.itemClicked.connect(self._on_clicked)
        self._first_rows: list[int] = []
        self.hide()

    def show_months(self, months: Sequence[dt.date | None]) -> None:
        """One entry per run of equal months in grid order (None: no date taken)."""
        self.clear()
        self._first_rows = []
        runs: list[tuple[dt.date | None, int, int]] = []  # month, first row, count
        for row, month in enumerate(months):
            if runs and runs[-1][0] == month:
                runs[-1] = (month, runs[-1][1], runs[-1][2] + 1)
            else:
                runs.append((month, row, 1))
        for month, first, count in runs:
            label = month_label(month) if month is not None else "No date"
            item = QListWidgetItem(f"{label} ({count})")
            item.setData(Qt.ItemDataRole.UserRole, first)
            self.addItem(item)
            self._first_rows.append(first)

    def month_at_row(self, row: int) -> int:
        """The entry holding a grid row (for following the grid's scroll)."""
        entry = 0
        for index, first in enumerate(self._first_rows):
            if first <= row:
                entry = index
        return entry

    def follow(self, row: int) -> None:
        if self._first_rows:
            with QSignalBlocker(self):
                self.setCurrentRow(self.month_at_row(row))

    def _on_clicked(self, item: QListWidgetItem) -> None:
        self.month_clicked.emit(int(item.data(Qt.ItemDataRole.UserRole)))


def months_of(items: Sequence[GridItem]) -> list[dt.date | None]:
    return [i.taken.date().replace(day=1) if i.taken is not None else None for i in items]


def attach_timeline(timeline: Timeline, grid: QListView, model: GridModel) -> None:
    """Keep the timeline on the grid's rows: shown while the tiles are sorted by date, a
    click scrolls there, scrolling the grid marks the month at the top."""

    def refresh() -> None:
        items = model.items()
        dated = bool(items) and items[0].dated
        timeline.setVisible(dated)
        if dated:
            timeline.show_months(months_of(items))
            follow()

    def follow() -> None:
        if timeline.isVisible():
            index = grid.indexAt(grid.viewport().rect().topLeft() + QPoint(8, 8))
            timeline.follow(index.row() if index.isValid() else 0)

    def go_to(row: int) -> None:
        if 0 <= row < model.rowCount():
            index = model.index(row)
            grid.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtTop)
            grid.setCurrentIndex(index)

    model.modelReset.connect(refresh)
    model.layoutChanged.connect(refresh)
    model.rowsInserted.connect(refresh)
    timeline.month_clicked.connect(go_to)
    grid.verticalScrollBar().valueChanged.connect(lambda _value: follow())


@dataclass(frozen=True)
class Filters:
    row: FilterRow
    timeline: Timeline


def install_filters(window: MainWindow) -> Filters:
    """The filter row under the calibration bar, the timeline above the grid, wired to the
    search (which filters the results in hand) and to the library's folders."""
    panel = window.results_panel
    row, timeline = FilterRow(), Timeline()
    panel.controls.addWidget(row)
    panel.above_grid.addWidget(timeline)
    attach_timeline(timeline, panel.grid, window.grid_model)
    row.changed.connect(window.search.set_filter)
    window.library.folders_changed.connect(row.set_folders)
    return Filters(row, timeline)
