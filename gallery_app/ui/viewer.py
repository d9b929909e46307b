"""The photo viewer: the full image with its path, size, date and score."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImageReader, QPixmap
from PySide6.QtWidgets import QDialog, QLabel, QVBoxLayout, QWidget

from gallery_app.ui.grid_model import GridItem


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
