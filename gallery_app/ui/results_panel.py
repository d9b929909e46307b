"""The centre of the window: search box, model banner, what the results mean, and the grid.
A panel: it shows a ResultSummary and the grid model; the SearchController decides."""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gallery_app.core.filters import SORT_DATE
from gallery_app.core.search import ENSEMBLE, MAX
from gallery_app.ui import file_actions, wording
from gallery_app.ui.grid_model import GridModel
from gallery_app.ui.search_controller import ResultSummary
from gallery_app.ui.viewer import Viewer

SEARCH_DEBOUNCE_MS = 250
THUMBNAIL_PX = 160
MIN_THUMBNAIL_PX, MAX_THUMBNAIL_PX, THUMBNAIL_STEP = 64, 320, 32


class ResultsPanel(QWidget):
    search_requested = Signal(str)
    clear_requested = Signal()
    show_all_toggled = Signal(bool)
    model_chosen = Signal(str)  # a model folder the user picked
    retry_requested = Signal()
    thumbnail_size_changed = Signal(int)
    aggregate_changed = Signal(str)  # ENSEMBLE or MAX
    tags_requested = Signal(list)  # image ids of the selected photos: edit their tags
    similar_requested = Signal(int, str)  # find similar: image id, path of the photo

    def __init__(self, grid_model: GridModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search_box = QLineEdit(placeholderText="Search your photos, e.g. dog on the beach")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.setToolTip(
            "Describe what the photo shows. Results appear as you type; Enter searches at "
            "once, Esc clears (Ctrl+F comes back here)."
        )
        self._debounce = QTimer(self, singleShot=True, interval=SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.submit)
        self.search_box.textEdited.connect(lambda _text: self._debounce.start())
        self.search_box.returnPressed.connect(self.submit)
        self.search_box.installEventFilter(self)  # Esc clears
        self.expand_box = QCheckBox("Synonyms")
        self.expand_box.setToolTip(
            "Also search with other words for the same thing (dog → puppy, canine)"
        )
        self.aggregate_box = QComboBox()
        self.aggregate_box.addItem("Average", ENSEMBLE)
        self.aggregate_box.addItem("Best word (OR)", MAX)
        self.aggregate_box.setToolTip(
            "How your words and their synonyms make one score.\n"
            "Average (recommended): one search for what the words have in common; the score "
            "stays the model's probability.\n"
            "Best word (OR): each photo's best single word; scores only go up, so more "
            "photos look like matches."
        )
        self.expand_box.toggled.connect(self.aggregate_box.setEnabled)
        self.aggregate_box.currentIndexChanged.connect(
            lambda i: self.aggregate_changed.emit(self.aggregate_box.itemData(i))
        )
        self.search_row = QHBoxLayout()
        self.search_row.addWidget(self.search_box, 1)
        self.search_row.addWidget(self.expand_box)
        self.search_row.addWidget(self.aggregate_box)

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
        self.choose_model_button.clicked.connect(self.choose_model_folder)
        self.retry_button.clicked.connect(self.retry_requested)

        self.header_label = QLabel(wordWrap=True)
        self.header_label.setToolTip(wording.SCORE_MEANING)
        self.show_all_button = QPushButton()
        self.show_all_button.setCheckable(True)
        self.show_all_button.toggled.connect(self.show_all_toggled)
        header = QHBoxLayout()
        header.addWidget(self.header_label, 1)
        header.addWidget(self.show_all_button)
        self.header = QWidget()
        self.header.setLayout(header)
        header.setContentsMargins(0, 0, 0, 0)
        self.header.hide()

        self.grid = QListView()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setUniformItemSizes(True)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(500)
        self.grid.setWordWrap(True)
        self.grid.setSpacing(4)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.setModel(grid_model)
        self.grid_model = grid_model
        self.thumbnail_px = THUMBNAIL_PX
        self.grid.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.grid.setGridSize(QSize(THUMBNAIL_PX + 24, THUMBNAIL_PX + 44))

        self.empty_label = QLabel(
            "<h2>No photos yet</h2><p>Click <b>Add folder…</b> on the left to index a folder "
            "of photos. Indexing runs in the background; you can search as soon as it starts.</p>",
            alignment=Qt.AlignmentFlag.AlignCenter,
            wordWrap=True,
        )
        self.grid.doubleClicked.connect(lambda index: self.open_row(index.row()))
        self.grid.customContextMenuRequested.connect(self._grid_menu)
        self.grid.installEventFilter(self)  # Enter opens
        self.grid.viewport().installEventFilter(self)  # Ctrl+wheel sizes thumbnails
        self.viewer = Viewer()
        self.viewer.closed.connect(self.close_viewer)
        self.similar_button = QPushButton("Find similar")
        self.similar_button.setToolTip("Show the photos that look most like this one")
        self.similar_button.clicked.connect(self._find_similar_to_viewed)
        self.viewer.action_buttons.insertWidget(0, self.similar_button)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.grid)
        self.stack.addWidget(self.viewer)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.search_row)
        self.controls = QVBoxLayout()  # the window puts the calibration bar here
        layout.addLayout(self.controls)
        layout.addWidget(self.banner)
        layout.addWidget(self.header)
        self.above_grid = QVBoxLayout()  # the window puts the timeline here
        layout.addLayout(self.above_grid)
        layout.addWidget(self.stack, 1)

    def choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a SigLIP model folder")
        if folder:
            self.model_chosen.emit(folder)

    def aggregate(self) -> str:
        return str(self.aggregate_box.currentData())

    def set_aggregate(self, aggregate: str) -> None:
        index = self.aggregate_box.findData(aggregate)
        if index >= 0:
            self.aggregate_box.setCurrentIndex(index)

    # -- search box ---------------------------------------------------------------------------
    def submit(self) -> None:
        self._debounce.stop()
        text = self.search_box.text().strip()
        if text:
            self.search_requested.emit(text)
        else:
            self.clear_requested.emit()

    def clear(self) -> None:
        self._debounce.stop()
        self.search_box.clear()
        self.clear_requested.emit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            if watched is self.search_box and event.key() == Qt.Key.Key_Escape:
                self.clear()
                return True
            if watched is self.grid and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.open_row(self.grid.currentIndex().row())
                return True
        if (
            watched is self.grid.viewport()
            and isinstance(event, QWheelEvent)
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self.zoom_thumbnails(1 if event.angleDelta().y() > 0 else -1)
            return True
        return super().eventFilter(watched, event)

    # -- the viewer and the grid's actions ----------------------------------------------------
    def open_row(self, row: int) -> None:
        """The viewer over the results shown, at `row`; arrows walk through them."""
        if 0 <= row < self.grid_model.rowCount():
            self.viewer.show_items(self.grid_model.items(), row)
            self.stack.setCurrentWidget(self.viewer)
            self.viewer.setFocus()

    def close_viewer(self) -> None:
        if self.stack.currentWidget() is not self.viewer:
            return
        self.stack.setCurrentWidget(self.grid)
        current = self.viewer.current()
        row = self.grid_model.row_for_image(current.image_id) if current else None
        if row is not None:  # the grid shows where the viewer was
            index = self.grid_model.index(row)
            self.grid.setCurrentIndex(index)
            self.grid.scrollTo(index)
        self.grid.setFocus()

    def selected_paths(self) -> list[str]:
        rows = sorted(index.row() for index in self.grid.selectionModel().selectedIndexes())
        return [self.grid_model.item(row).path for row in rows]

    def selected_ids(self) -> list[int]:
        rows = sorted(index.row() for index in self.grid.selectionModel().selectedIndexes())
        return [self.grid_model.item(row).image_id for row in rows]

    def _grid_menu(self, position: QPoint) -> None:
        menu = self.grid_menu(self.grid.indexAt(position))
        if menu is not None:
            menu.exec(self.grid.viewport().mapToGlobal(position))

    def grid_menu(self, index: QModelIndex) -> QMenu | None:
        """A thumbnail's right-click menu (None off the thumbnails), built but not shown."""
        if not index.isValid():
            return None
        if not self.grid.selectionModel().isSelected(index):
            self.grid.setCurrentIndex(index)  # right-click on an unselected photo selects it
        paths = self.selected_paths()
        many = f" ({len(paths)} photos)" if len(paths) > 1 else ""
        menu = QMenu(self)
        menu.addAction("Open in viewer", lambda: self.open_row(index.row()))
        clicked = self.grid_model.item(index.row())
        menu.addAction("Find similar", lambda: self.find_similar(clicked.image_id, clicked.path))
        menu.addAction(
            f"Open with default application{many}",
            lambda: file_actions.open_with_default_app(paths),
        )
        menu.addAction(
            f"Show in file manager{many}", lambda: file_actions.show_in_file_manager(paths)
        )
        menu.addAction(
            f"Copy path{'s' if len(paths) > 1 else ''}", lambda: file_actions.copy_paths(paths)
        )
        ids = self.selected_ids()
        menu.addAction(f"Tags and description…{many}", lambda: self.tags_requested.emit(ids))
        return menu

    def find_similar(self, image_id: int, path: str) -> None:
        """Photos like this one: the box is emptied (the results are not of its words)."""
        self._debounce.stop()
        self.search_box.clear()
        self.close_viewer()
        self.similar_requested.emit(image_id, path)

    def _find_similar_to_viewed(self) -> None:
        item = self.viewer.current()
        if item is not None:
            self.find_similar(item.image_id, item.path)

    def zoom_thumbnails(self, steps: int) -> None:
        self.set_thumbnail_size(self.thumbnail_px + steps * THUMBNAIL_STEP)

    # -- what is shown ------------------------------------------------------------------------
    def show_summary(self, summary: ResultSummary, min_score: float) -> None:
        self.header.show()
        query = f"photos {summary.query}" if summary.image_query else f"“{summary.query}”"
        where = html.escape(summary.choice.photo_filter.describe())
        dated = summary.choice.sort == SORT_DATE
        if summary.total == 0 and where:
            text = f"No photo {where} for {query}: widen the filters above."
        elif summary.total == 0:
            text = (
                f"No photo scores {wording.percent(min_score)} or more for {query}: "
                "lower <i>Hide below</i> to see the closest ones."
                if min_score > 0
                else f"No photos to search for {query} yet."
            )
        elif dated and summary.shown == 0:
            text = (
                f"<b>No match</b> for {query} to sort by date (only scores of "
                f"{wording.percent(min_score or wording.POSSIBLE)} or more are kept): choose "
                "<i>Best match first</i> to see the closest photos."
            )
        elif summary.no_match and not dated:
            text = f"<b>No confident match</b> for {query} — closest photos:"
        else:
            parts = []
            if summary.matches:
                parts.append(
                    f"<b>{summary.matches} match{'es' if summary.matches != 1 else ''}</b>"
                )
            if summary.possible:
                parts.append(f"{summary.possible} possible")
            text = f"{' and '.join(parts)} for {query}"
            if dated:
                order = "newest first" if summary.choice.newest_first else "oldest first"
                gate = wording.percent(min_score or wording.POSSIBLE)
                kept = (
                    f"{summary.shown} photo(s)"
                    if summary.shown == summary.total and not min_score
                    else f"{summary.shown} photo(s) scoring {gate} or more"
                )
                text = f"{kept} for {query}, {order}" + (
                    f" ({' and '.join(parts)})" if parts else ""
                )
        if where and summary.total:
            text += f" · {where}"
        if not summary.complete:
            text += " <i>(adding synonyms…)</i>"
        if summary.image_query:
            text += " <i>· image-to-image scale (Sharpness applies to words only)</i>"
        self.header_label.setText(text)
        self.header_label.setToolTip(wording.SCORE_MEANING)
        hidden = summary.hidden
        checked = self.show_all_button.isChecked()
        self.show_all_button.setVisible(hidden > 0 or checked)
        self.show_all_button.setText(
            "Show only likely matches" if checked else f"Show {hidden} more, lower-scoring"
        )
        if self.stack.currentWidget() is not self.viewer:
            self.stack.setCurrentWidget(self.grid)

    def show_library(self, photos: int) -> None:
        self.header.hide()
        blocked = self.show_all_button.blockSignals(True)
        self.show_all_button.setChecked(False)
        self.show_all_button.blockSignals(blocked)
        if self.stack.currentWidget() is not self.viewer:
            self.stack.setCurrentWidget(self.grid if photos else self.empty_label)

    def show_model_problem(self, missing: bool, message: str, unreachable: bool = False) -> None:
        # Choosing another model folder cannot bring a server back: only Retry is offered then.
        self.choose_model_button.setVisible(not unreachable)
        if unreachable:  # a shared library's server: the model itself is fine
            self.show_banner(
                "<b>The library's server cannot be reached, so searching and indexing are "
                f"off.</b> Retry once it is back, or change it in File › Preferences.<br>{message}"
            )
            return
        what = "cannot be found" if missing else "could not be loaded"
        self.show_banner(
            f"<b>The model {what}, so searching and indexing are off.</b> "
            f"Your library can still be browsed.<br>{message}"
        )

    def show_banner(self, html: str | None) -> None:
        self.banner.setVisible(html is not None)
        if html is not None:
            self.banner_label.setText(html)

    def set_thumbnail_size(self, px: int) -> None:
        px = max(MIN_THUMBNAIL_PX, min(MAX_THUMBNAIL_PX, px))
        self.thumbnail_px = px
        self.grid.setIconSize(QSize(px, px))
        self.grid.setGridSize(QSize(px + 24, px + 44))
        self.grid_model.set_thumbnail_size(px)
        self.thumbnail_size_changed.emit(px)
