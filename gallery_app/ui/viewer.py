"""The viewer inside the window: one photo large, fit or zoomed, previous/next through the
results shown, with what is known about it (date taken, camera, size, its score and why)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QImageReader, QKeyEvent, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gallery_app.ui import file_actions
from gallery_app.ui.grid_model import GridItem

ZOOM_STEPS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
INFO_WIDTH = 230

Describe = Callable[[GridItem], str]  # the score breakdown of a result, as HTML


@dataclass(frozen=True)
class PhotoFacts:
    width: int | None
    height: int | None
    taken: str | None  # EXIF DateTimeOriginal, "2024-07-01 14:03"
    camera: str | None  # EXIF Make + Model
    bytes: int | None
    modified: str | None


def read_facts(path: str) -> PhotoFacts:
    """Header and EXIF only (Pillow opens lazily): cheap enough for every next/previous."""
    width = height = None
    taken = camera = None
    try:
        from PIL import Image

        with Image.open(path) as img:
            width, height = img.size
            exif = img.getexif()
            if exif.get(0x0112, 1) in (5, 6, 7, 8):  # shown rotated by a quarter turn
                width, height = height, width
            raw_date = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
            if isinstance(raw_date, str) and len(raw_date) >= 16:
                taken = raw_date[:10].replace(":", "-") + " " + raw_date[11:16]
            make, model = str(exif.get(0x010F, "")).strip(), str(exif.get(0x0110, "")).strip()
            if model and make and model.lower().startswith(make.lower().split()[0]):
                make = ""  # "Canon Canon EOS R6" reads as "Canon EOS R6"
            camera = " ".join(p for p in (make, model) if p).replace("\x00", "") or None
    except Exception:  # a file the viewer cannot read shows what the disk knows
        pass
    try:
        stat = os.stat(path)
        size: int | None = stat.st_size
        modified = dt.datetime.fromtimestamp(stat.st_mtime).strftime("%Y-%m-%d %H:%M")
    except OSError:
        size, modified = None, None
    return PhotoFacts(width, height, taken, camera, size, modified)


def _tool_button(text: str) -> QToolButton:
    """A text button as narrow as its text (QPushButton insists on ~80 px each)."""
    button = QToolButton()
    button.setText(text)
    return button


class Viewer(QWidget):
    closed = Signal()  # back to the grid
    current_changed = Signal(int)  # the row of the results being shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._items: list[GridItem] = []
        self._row = -1
        self._zoom: float | None = None  # None: fit the window
        self._image = QPixmap()
        self.describe: Describe | None = None
        # Keys that panels added to the viewer act on (the marks: R / N), beside its own.
        self.extra_keys: dict[Qt.Key, Callable[[], object]] = {}

        self.back_button = _tool_button("◀ Results")
        self.back_button.setToolTip("Back to the grid (Esc)")
        self.previous_button = _tool_button("‹")
        self.previous_button.setToolTip("The previous photo in the results (Left arrow)")
        self.next_button = _tool_button("›")
        self.next_button.setToolTip("The next photo in the results (Right arrow)")
        self.fit_button = _tool_button("Fit")
        self.fit_button.setToolTip("Fit the photo to the window (F)")
        self.actual_button = _tool_button("100%")
        self.actual_button.setToolTip("Show the photo's own pixels (1)")
        self.zoom_out_button = _tool_button("−")
        self.zoom_out_button.setToolTip("Zoom out (-, or Ctrl+wheel)")
        self.zoom_in_button = _tool_button("+")
        self.zoom_in_button.setToolTip("Zoom in (+, or Ctrl+wheel)")
        self.position_label = QLabel()
        self.back_button.clicked.connect(self.closed)
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        self.fit_button.clicked.connect(lambda: self.set_zoom(None))
        self.actual_button.clicked.connect(lambda: self.set_zoom(1.0))
        self.zoom_in_button.clicked.connect(lambda: self.zoom_by(1))
        self.zoom_out_button.clicked.connect(lambda: self.zoom_by(-1))
        bar = QHBoxLayout()
        for widget in (self.back_button, self.previous_button, self.next_button):
            bar.addWidget(widget)
        bar.addWidget(self.position_label, 1)
        for widget in (
            self.zoom_out_button,
            self.fit_button,
            self.actual_button,
            self.zoom_in_button,
        ):
            bar.addWidget(widget)

        self.picture = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidget(self.picture)
        self.scroll_area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.viewport().installEventFilter(self)
        self.info = QLabel(wordWrap=True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.info.setFixedWidth(INFO_WIDTH)
        self.action_buttons = QVBoxLayout()
        for text, tip, act in (
            (
                "Open with default application",
                "Open the photo in your usual viewer or editor",
                file_actions.open_with_default_app,
            ),
            (
                "Show in file manager",
                "Show the photo in its folder",
                file_actions.show_in_file_manager,
            ),
            ("Copy path", "Copy the photo's full path to the clipboard", file_actions.copy_paths),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, act=act: self._act(act))
            self.action_buttons.addWidget(button)
        side = QVBoxLayout()
        side.addWidget(self.info)
        side.addLayout(self.action_buttons)
        self.sections = QVBoxLayout()  # what panels add under the buttons (add_section)
        side.addLayout(self.sections)
        side.addStretch(1)
        body = QHBoxLayout()
        body.addWidget(self.scroll_area, 1)
        body.addLayout(side)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addLayout(body, 1)

    def add_section(self, widget: QWidget) -> None:
        """A panel's widget in the side column, under the action buttons."""
        self.sections.addWidget(widget)

    # -- what is shown ------------------------------------------------------------------------
    def show_items(self, items: list[GridItem], row: int) -> None:
        self._items = items
        self.show_row(row)

    @property
    def row(self) -> int:
        return self._row

    def current(self) -> GridItem | None:
        return self._items[self._row] if 0 <= self._row < len(self._items) else None

    def show_row(self, row: int) -> None:
        if not self._items:
            return
        self._row = max(0, min(row, len(self._items) - 1))
        item = self._items[self._row]
        self._image = self._read(item.path)
        self._render()
        self._show_info(item)
        self.position_label.setText(f"{self._row + 1} of {len(self._items)}")
        self.previous_button.setEnabled(self._row > 0)
        self.next_button.setEnabled(self._row < len(self._items) - 1)
        self.current_changed.emit(self._row)

    def step(self, delta: int) -> None:
        if self._items:
            self.show_row(self._row + delta)

    def set_zoom(self, zoom: float | None) -> None:
        self._zoom = zoom
        self._render()

    def zoom_by(self, steps: int) -> None:
        current = self._zoom if self._zoom is not None else self._fit_scale()
        if steps > 0:
            bigger = [z for z in ZOOM_STEPS if z > current + 1e-6]
            self._zoom = bigger[0] if bigger else ZOOM_STEPS[-1]
        else:
            smaller = [z for z in ZOOM_STEPS if z < current - 1e-6]
            self._zoom = smaller[-1] if smaller else ZOOM_STEPS[0]
        self._render()

    @property
    def zoom(self) -> float | None:
        return self._zoom

    def shown_size(self) -> QSize:
        """The size the photo is drawn at, in logical pixels."""
        pixmap = self.picture.pixmap()
        if pixmap.isNull():
            return QSize()
        return pixmap.size() / pixmap.devicePixelRatio()

    # -- internals ----------------------------------------------------------------------------
    def _act(self, action: Callable[[list[str]], object]) -> None:
        item = self.current()
        if item is not None:
            action([item.path])

    def _read(self, path: str) -> QPixmap:
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        image = reader.read()
        if image.isNull():
            self.picture.setText(f"Cannot show this image: {reader.errorString()}")
            return QPixmap()
        return QPixmap.fromImage(image)

    def _fit_scale(self) -> float:
        if self._image.isNull():
            return 1.0
        area = self.scroll_area.viewport().size()
        scale = min(
            area.width() / max(1, self._image.width()), area.height() / max(1, self._image.height())
        )
        return min(scale * self.devicePixelRatioF(), 1.0)  # fit shrinks; it never blows up

    def _render(self) -> None:
        if self._image.isNull():
            return  # _read has put the reason in its place
        dpr = self.devicePixelRatioF()
        scale = self._zoom if self._zoom is not None else self._fit_scale()
        target = self._image.size() * scale
        pixmap = self._image.scaled(
            target, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        pixmap.setDevicePixelRatio(dpr)
        self.picture.setPixmap(pixmap)
        self.scroll_area.setWidgetResizable(self._zoom is None)
        if self._zoom is not None:
            self.picture.resize(pixmap.size() / dpr)

    def _show_info(self, item: GridItem) -> None:
        facts = read_facts(item.path)
        lines = [f"<b>{Path(item.path).name}</b>", f"<small>{item.path}</small>"]
        if facts.taken:
            lines.append(f"Taken {facts.taken}")
        if facts.camera:
            lines.append(f"Camera: {facts.camera}")
        if facts.width and facts.height:
            size = f"{facts.width} × {facts.height} px"
            if facts.bytes is not None:
                megabytes = facts.bytes / 1e6
                size += f", {megabytes:.1f} MB" if megabytes >= 1 else f", {facts.bytes // 1000} kB"
            lines.append(size)
        if facts.modified:
            lines.append(f"Modified {facts.modified}")
        elif facts.bytes is None:
            lines.append("The file is no longer on disk.")
        if item.score is not None and self.describe is not None:
            lines.append("<br>" + self.describe(item))
        self.info.setText("<br>".join(lines))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # The photo area's size, not the viewer's, is what "fit" fits (it changes when the
        # layout settles, or the info column wraps, without the viewer being resized).
        if event.type() == QEvent.Type.Resize and self._zoom is None:
            self._render()
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        actions = {
            Qt.Key.Key_Left: lambda: self.step(-1),
            Qt.Key.Key_Right: lambda: self.step(1),
            Qt.Key.Key_Home: lambda: self.show_row(0),
            Qt.Key.Key_End: lambda: self.show_row(len(self._items) - 1),
            Qt.Key.Key_Escape: self.closed.emit,
            Qt.Key.Key_Plus: lambda: self.zoom_by(1),
            Qt.Key.Key_Equal: lambda: self.zoom_by(1),
            Qt.Key.Key_Minus: lambda: self.zoom_by(-1),
            Qt.Key.Key_F: lambda: self.set_zoom(None),
            Qt.Key.Key_1: lambda: self.set_zoom(1.0),
        }
        action = actions.get(Qt.Key(key)) or self.extra_keys.get(Qt.Key(key))
        if action is None:
            super().keyPressEvent(event)
            return
        action()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1 if event.angleDelta().y() > 0 else -1)
            event.accept()
            return
        super().wheelEvent(event)
