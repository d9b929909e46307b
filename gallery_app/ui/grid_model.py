"""The thumbnail grid's list model: a thin adapter over a list of GridItems (search results)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Slot,
)

from gallery_app.ui import wording
from gallery_app.ui.thumbnails import ThumbnailProvider

_ModelIndex = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class GridItem:
    image_id: int
    path: str
    mtime_ns: int
    score: float | None = None  # calibrated score; None when the grid just lists a folder
    raw: float | None = None  # raw cosine of the winning variant
    variant: str | None = None  # the query variant that won
    taken: dt.datetime | None = None  # date taken (EXIF, else file time: core.filters)
    taken_source: str = ""  # "exif" or "file"
    dated: bool = False  # sorted by date: the tile says its date


class GridModel(QAbstractListModel):
    """One row per GridItem; thumbnails come from an optional ThumbnailProvider.

    Sized for 100,000 rows: data() is O(1), set_items only stores the list, update_scores is
    O(len(scores)), and the path/id -> row lookups are built once, when first needed.
    """

    PathRole = Qt.ItemDataRole.UserRole + 1
    ScoreRole = Qt.ItemDataRole.UserRole + 2
    RawRole = Qt.ItemDataRole.UserRole + 3
    VariantRole = Qt.ItemDataRole.UserRole + 4
    ImageIdRole = Qt.ItemDataRole.UserRole + 5

    _SCORE_ROLES = (
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.ToolTipRole,
        ScoreRole,
        RawRole,
        VariantRole,
    )

    def __init__(
        self, provider: ThumbnailProvider | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._items: list[GridItem] = []
        # Paths are unique in a catalog, so one row per path is the fast common case; a path
        # shown twice keeps its earlier rows aside rather than slowing every lookup down.
        self._row_by_path: dict[str, int] | None = None  # the last row showing a path
        self._earlier_rows_by_path: dict[str, list[int]] = {}
        self._rows_by_id: dict[int, int] | None = None
        self._dpr = 1.0
        self._provider = provider
        if provider is not None:
            provider.ready.connect(self._on_thumbnail_ready)

    @property
    def provider(self) -> ThumbnailProvider | None:
        return self._provider

    # -- contents -------------------------------------------------------------------------

    def items(self) -> list[GridItem]:
        """A copy of the rows, in order."""
        return list(self._items)

    def item(self, row: int) -> GridItem:
        return self._items[row]

    def set_items(self, items: Iterable[GridItem]) -> None:
        """Replace every row (a new search, a new folder): one model reset."""
        self.beginResetModel()
        self._items = list(items)
        self._forget_lookups()
        self.endResetModel()

    def append_items(self, items: Iterable[GridItem]) -> None:
        """Add rows at the end (more results, a folder still being listed)."""
        new = list(items)
        if not new:
            return
        first = len(self._items)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        self._items.extend(new)
        if self._row_by_path is not None:
            for row, item in enumerate(new, start=first):
                previous = self._row_by_path.get(item.path)
                if previous is not None:
                    self._earlier_rows_by_path.setdefault(item.path, []).append(previous)
                self._row_by_path[item.path] = row
        if self._rows_by_id is not None:
            for row, item in enumerate(new, start=first):
                self._rows_by_id[item.image_id] = row
        self.endInsertRows()

    def update_scores(self, scores: dict[int, tuple[float, float, str]]) -> int:
        """Recalibrated results already shown: image_id -> (score, raw, variant), order kept.

        Rows not in `scores` keep their values; ids not shown are ignored. Emits one
        dataChanged spanning the changed rows (never a reset, so selection and scroll stay).
        Returns how many rows changed.
        """
        rows_by_id = self._id_lookup()
        changed: list[int] = []
        for image_id, (score, raw, variant) in scores.items():
            row = rows_by_id.get(image_id)
            if row is None:
                continue
            old = self._items[row]
            new = replace(old, score=score, raw=raw, variant=variant)
            if new != old:
                self._items[row] = new
                changed.append(row)
        if changed:
            self.dataChanged.emit(
                self.index(min(changed)), self.index(max(changed)), list(self._SCORE_ROLES)
            )
        return len(changed)

    def reorder(self, items: Iterable[GridItem]) -> None:
        """The same images in a new ranking (and maybe new scores): a layout change, no reset.

        Persistent indexes (selection, current item) follow their image. When `items` is not a
        permutation of the rows shown, this falls back to set_items.
        """
        new_items = list(items)
        new_rows = {item.image_id: row for row, item in enumerate(new_items)}
        old_rows = self._id_lookup()
        if (
            len(new_items) != len(self._items)
            or len(new_rows) != len(new_items)
            or len(old_rows) != len(self._items)
            or new_rows.keys() != old_rows.keys()
        ):
            self.set_items(new_items)
            return
        old_items = self._items
        moved = any(a.image_id != b.image_id for a, b in zip(old_items, new_items, strict=True))
        if moved:
            # No VerticalSortHint: PySide's stubs cannot type the overload that carries it, and
            # the hint is only an optimisation for proxies.
            self.layoutAboutToBeChanged.emit()
            before = self.persistentIndexList()
            after = [
                self.index(new_rows[old_items[index.row()].image_id], index.column())
                for index in before
            ]
            self._items = new_items
            self._forget_lookups()
            self.changePersistentIndexList(before, after)
            self.layoutChanged.emit()
        else:
            self._items = new_items
            self._forget_lookups()
        changed = [
            row for row, item in enumerate(new_items) if item != old_items[old_rows[item.image_id]]
        ]
        if changed:
            self.dataChanged.emit(
                self.index(min(changed)), self.index(max(changed)), list(self._SCORE_ROLES)
            )

    def rows_for_path(self, path: str) -> list[int]:
        last = self._path_lookup().get(path)
        if last is None:
            return []
        return [*self._earlier_rows_by_path.get(path, ()), last]

    def thumbnail(self, path: str, mtime_ns: int | None) -> Any:
        """The thumbnail of any photo, shown in the grid or not, at the grid's size (None
        while it loads: the provider's `ready` says when to ask again)."""
        if self._provider is None or mtime_ns is None:
            return None
        return self._provider.pixmap(path, mtime_ns, self._dpr)

    def row_for_image(self, image_id: int) -> int | None:
        return self._id_lookup().get(image_id)

    def set_thumbnail_size(self, px: int) -> None:
        """Thumbnails of another logical size (Ctrl+±): made anew, a tile at a time."""
        if self._provider is None or px == self._provider.size:
            return
        self._provider.set_size(px)
        if self._items:
            self.dataChanged.emit(
                self.index(0), self.index(len(self._items) - 1), [Qt.ItemDataRole.DecorationRole]
            )

    def set_device_pixel_ratio(self, dpr: float) -> None:
        """The view's screen scale, so thumbnails are made with enough pixels for it."""
        if dpr == self._dpr:
            return
        self._dpr = dpr
        if self._items:
            self.dataChanged.emit(
                self.index(0), self.index(len(self._items) - 1), [Qt.ItemDataRole.DecorationRole]
            )

    # -- QAbstractListModel -----------------------------------------------------------------

    def rowCount(self, parent: _ModelIndex | None = None) -> int:
        # A list has rows only at the root; children of an item would make it a tree.
        return 0 if parent is not None and parent.isValid() else len(self._items)

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = index.row()
        if not 0 <= row < len(self._items) or index.column() != 0:
            return None
        item = self._items[row]
        if role == Qt.ItemDataRole.DisplayRole:
            name = os.path.basename(item.path)
            line = wording.score_label(item.score) if item.score is not None else ""
            if item.dated and item.taken is not None:
                line = " · ".join(p for p in (f"{item.taken:%d %b %Y}", line) if p)
            return f"{name}\n{line}" if line else name
        if role == Qt.ItemDataRole.DecorationRole:
            if self._provider is None:
                return None
            pixmap = self._provider.pixmap(item.path, item.mtime_ns, self._dpr)
            return pixmap if pixmap is not None else self._provider.placeholder(self._dpr)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [item.path]
            if item.score is not None:
                lines.append(
                    f"{wording.percent(item.score)}: the model's estimated probability that "
                    "the photo shows your words"
                )
            if item.variant:
                lines.append(f"best matching words: {item.variant}")
            if item.taken is not None:
                source = "EXIF" if item.taken_source == "exif" else "file time"
                lines.append(f"taken {item.taken:%Y-%m-%d %H:%M} ({source})")
            return "\n".join(lines)
        if role == self.PathRole:
            return item.path
        if role == self.ScoreRole:
            return item.score
        if role == self.RawRole:
            return item.raw
        if role == self.VariantRole:
            return item.variant
        if role == self.ImageIdRole:
            return item.image_id
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        names.update(
            {
                self.PathRole: QByteArray(b"path"),
                self.ScoreRole: QByteArray(b"score"),
                self.RawRole: QByteArray(b"raw"),
                self.VariantRole: QByteArray(b"variant"),
                self.ImageIdRole: QByteArray(b"imageId"),
            }
        )
        return names

    # -- internals --------------------------------------------------------------------------

    @Slot(str)
    def _on_thumbnail_ready(self, path: str) -> None:
        for row in self.rows_for_path(path):
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _forget_lookups(self) -> None:
        self._row_by_path = None
        self._earlier_rows_by_path = {}
        self._rows_by_id = None

    def _path_lookup(self) -> dict[str, int]:
        if self._row_by_path is None:
            lookup = {item.path: row for row, item in enumerate(self._items)}
            if len(lookup) < len(self._items):
                for row, item in enumerate(self._items):
                    if lookup[item.path] != row:
                        self._earlier_rows_by_path.setdefault(item.path, []).append(row)
            self._row_by_path = lookup
        return self._row_by_path

    def _id_lookup(self) -> dict[int, int]:
        if self._rows_by_id is None:
            self._rows_by_id = {item.image_id: row for row, item in enumerate(self._items)}
        return self._rows_by_id
