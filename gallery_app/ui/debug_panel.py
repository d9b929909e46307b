"""The search debug panel: a query's variants, each result's raw and calibrated score, warnings."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    Slot,
)
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gallery_app.core.calibrate import Calibration
from gallery_app.core.diagnostics import diagnose, summarize
from gallery_app.core.search import (
    AnyHits,
    CombinedHits,
    PromptVariant,
    SearchResult,
)

if TYPE_CHECKING:
    import numpy.typing as npt

_ModelIndex = QModelIndex | QPersistentModelIndex
ThumbnailFor = Callable[[str], QPixmap | None]

THUMBNAIL_SIZE = 40  # logical pixels: enough to recognise a photo, small enough for a dock


class ResultsTableModel(QAbstractTableModel):
    """One row per SearchResult; sorts itself (ranking order until a header is clicked).

    Sorting lives here rather than in a QSortFilterProxyModel: the proxy calls data() twice
    per comparison, ~12,000 Python calls to re-sort 1,000 rows after every slider move, while
    sorting precomputed keys takes a fraction of a millisecond.
    """

    # The score first after the photo: what a person opens the panel for stays in view when
    # the panel is narrow (the variant's words and each variant's own column come after).
    THUMBNAIL, FILE, SCORE, MARK, RAW, VARIANT = range(6)
    # Plain values to sort by: floats for the numbers (so 0.1 < 0.05 never happens), the
    # ranking position for the thumbnail column (sorting by it restores the ranking).
    SortRole = Qt.ItemDataRole.UserRole + 1

    _HEADERS = ("Photo", "File", "Score", "Mark", "Raw cosine", "Variant")
    FIRST_VARIANT = len(_HEADERS)  # each listed variant's own column starts here
    _HEADER_TIPS = (
        "Click to restore the ranking order",
        "File name (hover for the full path)",
        "The query variant whose weighted score won for this photo",
        "Cosine between the photo and the winning variant's text",
        "weight × sigmoid(T × (raw − c)) of the winning variant: what the ranking uses",
        "✓ marked relevant to this query, ✗ marked not relevant (what Fit calibration uses)",
    )

    def __init__(
        self, thumbnail_for: ThumbnailFor | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._results: list[SearchResult] = []  # ranking order
        # Each listed variant's own cosine and score per result (rows in ranking order).
        self._variant_names: list[str] = []
        self._variant_cosines = np.zeros((0, 0))
        self._variant_scores = np.zeros((0, 0))
        self._rows: list[int] = []  # display row -> ranking position
        self._sort_column = self.THUMBNAIL
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._thumbnail_for = thumbnail_for
        # Scaled copies, so a repaint does not rescale; emptied whenever thumbnails may change.
        self._scaled: dict[str, QPixmap] = {}
        self._marks: dict[int, bool] = {}  # image id -> relevant, for the query shown

    def results(self) -> list[SearchResult]:
        """In ranking order, whatever the table is sorted by."""
        return list(self._results)

    def set_results(
        self,
        results: Sequence[SearchResult],
        variants: Sequence[str] = (),
        cosines: npt.ArrayLike | None = None,
        scores: npt.ArrayLike | None = None,
    ) -> None:
        """Replace every row: one reset (a recalibration re-ranks, so rows move anyway).

        `variants` add one column each: that word's own cosine and score for every result
        (`cosines` and `scores` of shape (len(results), len(variants)))."""
        self.beginResetModel()
        self._results = list(results)
        self._variant_names = list(variants)
        shape = (len(self._results), len(self._variant_names))
        self._variant_cosines = np.asarray(cosines if cosines is not None else np.zeros(shape))
        self._variant_scores = np.asarray(scores if scores is not None else np.zeros(shape))
        self._rows = self._sorted_rows()
        self._scaled.clear()
        self.endResetModel()

    def set_marks(self, marks: dict[int, bool]) -> None:
        """The query's marks (image id -> relevant) for the Mark column."""
        self._marks = dict(marks)
        if self._sort_column == self.MARK:
            self.sort(self.MARK, self._sort_order)
        if self._results:
            self.dataChanged.emit(
                self.index(0, self.MARK), self.index(len(self._results) - 1, self.MARK)
            )

    def result_at(self, row: int) -> SearchResult:
        """The result shown in display row `row` (whatever the table is sorted by)."""
        return self._results[self._rows[row]]

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < self.columnCount():
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        ranks = [self._rows[index.row()] for index in persistent]
        self._sort_column, self._sort_order = column, order
        self._rows = self._sorted_rows()
        row_of_rank = {rank: row for row, rank in enumerate(self._rows)}
        self.changePersistentIndexList(
            persistent,
            [
                self.index(row_of_rank[rank], index.column())
                for rank, index in zip(ranks, persistent, strict=True)
            ],
        )
        self.layoutChanged.emit()

    def _sorted_rows(self) -> list[int]:
        column = self._sort_column
        if column >= len(self._HEADERS):  # a word's own cosine
            keys: list[Any] = self._variant_cosines[:, column - len(self._HEADERS)].tolist()
        elif column == self.MARK:
            keys = [_mark_order(self._marks.get(r.image_id)) for r in self._results]
        else:
            keys = [_sort_value(rank, result, column) for rank, result in enumerate(self._results)]
        # Ties keep the ranking order in both directions, like a stable sort on the rank.
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        return sorted(
            range(len(keys)),
            key=lambda rank: (keys[rank], -rank if descending else rank),
            reverse=descending,
        )

    def refresh_thumbnails(self) -> None:
        self._scaled.clear()
        if self._results:
            self.dataChanged.emit(
                self.index(0, self.THUMBNAIL),
                self.index(len(self._results) - 1, self.THUMBNAIL),
                [Qt.ItemDataRole.DecorationRole],
            )

    # -- QAbstractTableModel ----------------------------------------------------------------

    def rowCount(self, parent: _ModelIndex | None = None) -> int:
        # A table has rows only at the root.
        return 0 if parent is not None and parent.isValid() else len(self._results)

    def columnCount(self, parent: _ModelIndex | None = None) -> int:
        if parent is not None and parent.isValid():
            return 0
        return len(self._HEADERS) + len(self._variant_names)

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._results):
            return None
        rank = self._rows[index.row()]
        result = self._results[rank]
        column = index.column()
        if column >= len(self._HEADERS):
            return self._variant_data(rank, column - len(self._HEADERS), role)
        if column == self.MARK:
            return self._mark_data(self._marks.get(result.image_id), role)
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.FILE:
                return os.path.basename(result.path)
            if column == self.VARIANT:
                return result.variant
            if column == self.RAW:
                return f"{result.raw:.4f}"
            if column == self.SCORE:
                return f"{result.score:.4f}"
            return None
        if role == self.SortRole:
            return _sort_value(rank, result, column)
        if role == Qt.ItemDataRole.DecorationRole and column == self.THUMBNAIL:
            return self._thumbnail(result.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column in (self.THUMBNAIL, self.FILE):
                return result.path
            if column == self.VARIANT:
                return f"prompt: {result.prompt}\nweight: {result.weight:g}"
            if column == self.SCORE:
                return boost_text(result)
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (self.RAW, self.SCORE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < self.columnCount():
            return super().headerData(section, orientation, role)
        if section >= len(self._HEADERS):
            name = self._variant_names[section - len(self._HEADERS)]
            if role == Qt.ItemDataRole.DisplayRole:
                return name
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"“{name}” on its own: its cosine with the photo → its score"
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._HEADER_TIPS[section]
        return None

    def _variant_data(self, rank: int, variant: int, role: int) -> Any:
        cosine = float(self._variant_cosines[rank, variant])
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{cosine:.4f} → {float(self._variant_scores[rank, variant]):.4f}"
        if role == self.SortRole:
            return cosine
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _mark_data(relevant: bool | None, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return "" if relevant is None else MARK_SYMBOLS[relevant]
        if role == ResultsTableModel.SortRole:
            return _mark_order(relevant)
        if role == Qt.ItemDataRole.ToolTipRole and relevant is not None:
            return "Marked relevant" if relevant else "Marked not relevant"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def _thumbnail(self, path: str) -> QPixmap | None:
        if self._thumbnail_for is None:
            return None
        scaled = self._scaled.get(path)
        if scaled is None:
            pixmap = self._thumbnail_for(path)
            if pixmap is None or pixmap.isNull():
                return None
            # The delegate draws a pixmap at its own size, so fit it to the cell here; keep
            # its device pixel ratio so it stays sharp on a HiDPI screen.
            ratio = pixmap.devicePixelRatio()
            side = round(THUMBNAIL_SIZE * ratio)
            scaled = pixmap.scaled(
                side,
                side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            scaled.setDevicePixelRatio(ratio)
            self._scaled[path] = scaled
        return scaled


BOOST_LINES = 3  # boosted photos listed (more squeezed the table at 800 px); tooltips have each


def _part_boost_lines(result: SearchResult) -> list[str]:
    """For a query of parts: each boosted part's visual score, boost and hybrid P, and why."""
    return [
        f"{'not ' if part.kind == 'not' else ''}“{part.text}”: visual {part.visual:.4f}, "
        f"boost {part.boost:.2f} → P {part.score:.4f} ({part.boost_reason})"
        for part in result.parts
        if part.visual is not None and part.boost > 0
    ]


def boost_text(result: SearchResult) -> str:
    """A result's hybrid score spelled out: visual, boost, score, and why."""
    if result.parts:
        lines = _part_boost_lines(result)
        if not lines:
            return "No metadata matched: each part's score is its visual score."
        return "\n".join(lines)
    if result.visual is None or result.boost <= 0:
        return "No metadata matched: the score is the visual score."
    return (
        f"visual {result.visual:.4f} + (1 − visual) × boost {result.boost:.2f} = "
        f"{result.score:.4f}\n{result.boost_reason}"
    )


def boost_section(results: Sequence[SearchResult]) -> str:
    """The metadata boosts of a search: how many photos matched, the first few and why."""
    if any(r.parts for r in results):
        return _parts_boost_section(results)
    boosted = [r for r in results if r.visual is not None and r.boost > 0]
    if not boosted:
        return ""
    lines = [
        f"Metadata boost (score = visual + (1 − visual) × boost) on {len(boosted)} of "
        f"{len(results)} results:"
    ]
    for r in boosted[:BOOST_LINES]:
        assert r.visual is not None
        lines.append(
            f"{os.path.basename(r.path)}: visual {r.visual:.4f}, boost {r.boost:.2f} → "
            f"{r.score:.4f} ({r.boost_reason})"
        )
    if len(boosted) > BOOST_LINES:
        lines.append(f"… and {len(boosted) - BOOST_LINES} more (hover a score for its own)")
    return "\n".join(lines)


def _parts_boost_section(results: Sequence[SearchResult]) -> str:
    boosted = [r for r in results if _part_boost_lines(r)]
    if not boosted:
        return ""
    lines = [
        f"Metadata boost of a part (its P = visual + (1 − visual) × boost) on {len(boosted)} of "
        f"{len(results)} results:"
    ]
    for r in boosted[:BOOST_LINES]:
        lines.append(f"{os.path.basename(r.path)}: " + "; ".join(_part_boost_lines(r)))
    if len(boosted) > BOOST_LINES:
        lines.append(f"… and {len(boosted) - BOOST_LINES} more (hover a score for its own)")
    return "\n".join(lines)


MARK_SYMBOLS = {True: "✓", False: "✗"}


def _mark_order(relevant: bool | None) -> int:
    """Sorts ✗ < no mark < ✓."""
    return 0 if relevant is None else (1 if relevant else -1)


def _sort_value(rank: int, result: SearchResult, column: int) -> Any:
    """What a column sorts by: floats for the numbers (so 0.1 < 0.05 never happens), the
    ranking position for the thumbnail column (sorting by it restores the ranking)."""
    columns = ResultsTableModel
    return {
        columns.THUMBNAIL: rank,
        columns.FILE: os.path.basename(result.path).lower(),
        columns.SCORE: result.score,
        columns.RAW: result.raw,
        columns.VARIANT: result.variant,
    }[column]


class DebugPanel(QWidget):
    """Why a search ranked as it did; meant for a QDockWidget next to the grid."""

    def __init__(
        self, thumbnail_for: ThumbnailFor | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._warnings: list[str] = []
        self._shown_variants: tuple[PromptVariant, ...] | None = None

        self._calibration_label = QLabel(self)
        self._summary_label = QLabel(self)
        self._warnings_label = QLabel(self)
        self._language_label = QLabel(self)  # the query's language, when not English
        for label in (
            self._calibration_label,
            self._summary_label,
            self._warnings_label,
            self._language_label,
        ):
            label.setTextFormat(Qt.TextFormat.PlainText)  # messages are text, never markup
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._warnings_label.setVisible(False)
        self._language_label.setVisible(False)
        self._boost_label = QLabel(self)  # the hybrid score's section: which photos, and why
        self._boost_label.setTextFormat(Qt.TextFormat.PlainText)
        self._boost_label.setWordWrap(True)
        self._boost_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self._variants = QTableWidget(0, 3, self)
        self._variants.setHorizontalHeaderLabels(["Variant", "Weight", "Source"])
        self._variants.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._variants.verticalHeader().setVisible(False)
        self._variants.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # a read-out, not an editor
        self._variants.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self._variants.horizontalHeader().setStretchLastSection(True)

        self._model = ResultsTableModel(thumbnail_for, self)
        self._view = QTableView(self)
        self._view.setModel(self._model)
        self._view.setSortingEnabled(True)
        self._view.sortByColumn(ResultsTableModel.THUMBNAIL, Qt.SortOrder.AscendingOrder)
        self._view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._view.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self._view.verticalHeader().setVisible(False)
        self._view.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIZE + 4)
        header = self._view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Size columns from the rows on screen only: measuring all of them (Qt's default is
        # 1,000) cost ~100 ms per slider move with 1,000 results.
        header.setResizeContentsPrecision(0)
        # File names are short; variants ("dog on the seashore") are what gets cut off.
        header.setSectionResizeMode(ResultsTableModel.VARIANT, QHeaderView.ResizeMode.Stretch)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self._variants)
        splitter.addWidget(self._view)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 4)
        self._splitter = splitter

        layout = QVBoxLayout(self)
        layout.addWidget(self._calibration_label)
        layout.addWidget(self._summary_label)
        layout.addWidget(self._warnings_label)
        layout.addWidget(self._language_label)
        layout.addWidget(self._boost_label)
        layout.addWidget(splitter, 1)
        self.clear()

    # -- updating ---------------------------------------------------------------------------

    def show_search(
        self, hits: AnyHits, results: Sequence[SearchResult], calibration: Calibration
    ) -> None:
        """Show one search under one calibration; call again with new results to recalibrate."""
        self._set_variants(_listed_variants(hits))
        listed = [variant.text for variant in hits.listed]
        parts = _part_columns(hits, results)
        if parts is not None:
            self._model.set_results(results, *parts)
        elif results and len(listed) > 1:
            cosines = hits.variant_cosines([result.position for result in results])
            self._model.set_results(results, listed, cosines, calibration.score(cosines))
        else:
            self._model.set_results(results)
        self._calibration_label.setText(_calibration_text(hits, calibration))
        raw = [result.raw for result in results]
        summary = summarize(raw)
        if summary.count == 0:
            self._summary_label.setText("No results.")
        else:
            self._summary_label.setText(
                f"Raw cosine over {summary.count} results: min {summary.min:.4f} · "
                f"mean {summary.mean:.4f} · max {summary.max:.4f} · std {summary.std:.4f}"
            )
        # The diagnoses read text-image cosines; an image query's are photo to photo.
        text_scale = hits.own_calibration is None
        self._set_warnings(
            [diagnosis.message for diagnosis in diagnose(raw, calibration)] if text_scale else []
        )
        self._set_language(hits.language_note, hits.language_hint)
        self._boost_label.setText(boost_section(results))

    def add_section(self, widget: QWidget) -> None:
        """A panel of its own under the results table (resizable by the splitter), in a
        scroll area: dragged small, its wrapped text scrolls instead of being cut off."""
        area = QScrollArea(self)
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setWidget(widget)
        self._splitter.addWidget(area)
        self._splitter.setStretchFactor(self._splitter.count() - 1, 1)

    def set_marks(self, marks: dict[int, bool]) -> None:
        """The shown query's marks (image id -> relevant), for the Mark column."""
        self._model.set_marks(marks)

    def selected_results(self) -> list[SearchResult]:
        """The results of the selected rows, top of the table first."""
        rows = sorted({index.row() for index in self._view.selectionModel().selectedRows()})
        return [self._model.result_at(row) for row in rows]

    def table_view(self) -> QTableView:
        return self._view

    def clear(self) -> None:
        self._boost_label.setText("")
        self._set_variants(())
        self._model.set_results([])
        self._calibration_label.setText("No search yet.")
        self._summary_label.setText("")
        self._set_warnings([])
        self._set_language("", "")

    @Slot()
    def refresh_thumbnails(self) -> None:
        """Thumbnails arrived: repaint the thumbnail column."""
        self._model.refresh_thumbnails()

    def wanted_width(self) -> int:
        """Wide enough for every column of the results table (a dock opened at this width
        shows the Score column without scrolling)."""
        view = self._view
        header = view.horizontalHeader()
        columns = sum(
            max(header.sectionSizeHint(c), view.sizeHintForColumn(c), 40)
            for c in range(self._model.columnCount())
        )
        layout = self.layout()
        margins = layout.contentsMargins().left() * 2 if layout is not None else 0
        scrollbar = view.verticalScrollBar().sizeHint().width()
        return columns + scrollbar + 2 * view.frameWidth() + margins

    # -- read back (tests, and anything that reports what the panel shows) ------------------

    def table_model(self) -> ResultsTableModel:
        return self._model

    def summary_text(self) -> str:
        return self._summary_label.text()

    def warning_texts(self) -> list[str]:
        return list(self._warnings)

    def variant_rows(self) -> list[tuple[str, float]]:
        rows = []
        for row in range(self._variants.rowCount()):
            text_item, weight_item = self._variants.item(row, 0), self._variants.item(row, 1)
            if text_item is not None and weight_item is not None:
                weight = weight_item.data(Qt.ItemDataRole.UserRole)
                rows.append((text_item.text(), float(weight)))
        return rows

    def calibration_text(self) -> str:
        return self._calibration_label.text()

    def language_text(self) -> str:
        """What the panel says about the query's language ("" for an English query)."""
        return self._language_label.text()

    def boost_text(self) -> str:
        return self._boost_label.text()

    # -- internals --------------------------------------------------------------------------

    def _set_variants(self, variants: Sequence[PromptVariant]) -> None:
        if tuple(variants) == self._shown_variants:
            return  # a recalibration: same variants, and refilling the table costs ~7 ms
        self._shown_variants = tuple(variants)
        self._variants.setRowCount(len(variants))
        for row, variant in enumerate(variants):
            text = QTableWidgetItem(variant.text)
            text.setToolTip(f"prompt: {variant.prompt}")
            weight = QTableWidgetItem(f"{variant.weight:.2f}")
            weight.setData(Qt.ItemDataRole.UserRole, variant.weight)
            weight.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self._variants.setItem(row, 0, text)
            self._variants.setItem(row, 1, weight)
            self._variants.setItem(row, 2, QTableWidgetItem(variant.source or "as typed"))

    def _set_language(self, note: str, hint: str) -> None:
        text = "\n".join(line for line in (note, hint) if line)
        self._language_label.setText(text)
        self._language_label.setVisible(bool(text))

    def _set_warnings(self, messages: list[str]) -> None:
        self._warnings = messages
        self._warnings_label.setText("\n\n".join(f"⚠ {message}" for message in messages))
        self._warnings_label.setVisible(bool(messages))


# -- queries of parts and image queries (find similar) -------------------------------------


def _calibration_text(hits: AnyHits, calibration: Calibration) -> str:
    """The line over the table: the query, and the scale its scores are on."""
    scale = f"T = {calibration.temperature:.2f} · c = {calibration.centre:.4f}"
    if hits.own_calibration is not None:
        return (
            f"Image query “{hits.query}”: image-to-image scale (not the text preset; "
            f"Sharpness does not apply) · {scale} · Raw cosine is photo to photo"
        )
    text = f"Query “{hits.query}” · preset {calibration.preset} · {scale}"
    if isinstance(hits, CombinedHits):
        factors = " × ".join(
            f"(1 − P({part.text}))" if part.kind == "not" else f"P({part.text})"
            for part in hits.parts
        )
        text += f" · Score = {factors}, each part on the text scale"
    return text


def _listed_variants(hits: AnyHits) -> tuple[PromptVariant, ...]:
    """What the variants table lists: for a query of parts, every part's variants, each
    sourced to its part."""
    if hits.own_calibration is not None:  # find similar: one column, the photo's vector
        return tuple(
            PromptVariant(v.text, None, v.weight, "the query photo's image vector", v.kind)
            for v in hits.listed
        )
    if not isinstance(hits, CombinedHits):
        return hits.listed
    out = []
    for part, part_hits in zip(hits.parts, hits.part_hits, strict=True):
        where = f"{'not' if part.kind == 'not' else 'and'} “{part.text}”"
        for variant in part_hits.listed:
            source = f"{where}: {variant.source}" if variant.source else f"{where}: as typed"
            out.append(
                PromptVariant(variant.text, variant.prompt, variant.weight, source, variant.kind)
            )
    return tuple(out)


def _part_columns(
    hits: AnyHits, results: Sequence[SearchResult]
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """For a query of parts, one column per part: its cosine → its score, beside the
    combined Score; None for any other search."""
    if not isinstance(hits, CombinedHits):
        return None
    names = [f"{p.text} (not)" if p.kind == "not" else p.text for p in hits.parts]
    shape = (len(results), len(names))
    cosines = np.array([[p.raw for p in r.parts] for r in results], np.float64).reshape(shape)
    scores = np.array([[p.score for p in r.parts] for r in results], np.float64).reshape(shape)
    return names, cosines, scores
