"""The library panel: each folder with its photo count, failures and state; add, rescan,
remove. A panel: it shows FolderRows and says what was clicked, nothing more."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gallery_app.ui.library_controller import OFFLINE, FolderRow


class LibraryPanel(QWidget):
    add_requested = Signal(str)  # a folder the user chose
    rescan_requested = Signal(str)  # a folder, or "" for every folder
    remove_requested = Signal(str)  # a folder, after the user confirmed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder_list = QListWidget()
        self.folder_list.setWordWrap(True)
        self.folder_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.folder_list.customContextMenuRequested.connect(self._context_menu)
        self.folder_list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip(
            "Index a folder of photos (and its subfolders) in the background"
        )
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setToolTip(
            "Look for new, changed and deleted photos in the selected folder "
            "(or in every folder, when none is selected)"
        )
        self.remove_folder_button = QPushButton("Remove")
        self.remove_folder_button.setToolTip(
            "Take the selected folder out of the library (the photos on disk are not touched)"
        )
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.rescan_button.clicked.connect(lambda: self.rescan_requested.emit(self.current()))
        self.remove_folder_button.clicked.connect(self._remove_current)

        title = QLabel("<b>Library</b>")
        # Each model has its own library: say whose this is (Preferences switches models).
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_label.hide()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.model_label)
        layout.addWidget(self.folder_list, 1)
        layout.addWidget(self.summary)
        layout.addWidget(self.add_folder_button)  # alone on its row: the panel stays narrow
        buttons = QHBoxLayout()
        buttons.addWidget(self.rescan_button)
        buttons.addWidget(self.remove_folder_button)
        layout.addLayout(buttons)
        self.show_folders([])

    def show_folders(self, rows: list[FolderRow]) -> None:
        selected = self.current()
        self.folder_list.clear()
        for row in rows:
            item = QListWidgetItem(f"{Path(row.path).name or row.path}\n{describe(row)}")
            item.setToolTip(row.path)
            item.setData(Qt.ItemDataRole.UserRole, row.path)
            if row.state == OFFLINE:
                item.setForeground(Qt.GlobalColor.darkGray)
            self.folder_list.addItem(item)
            if row.path == selected:
                self.folder_list.setCurrentItem(item)
        photos = sum(row.photos for row in rows)
        self.summary.setText(
            f"{photos} photo{'s' if photos != 1 else ''} in {len(rows)} folder"
            f"{'s' if len(rows) != 1 else ''}"
            if rows
            else "No folders yet."
        )
        self._update_buttons()

    def show_model(self, model_id: str) -> None:
        """'of siglip-base-patch16-224': the model whose library this is (the full id as tip)."""
        name = Path(model_id).name or model_id
        self.model_label.setText(f"of <i>{name}</i>")
        self.model_label.setToolTip(f"The library of {model_id}; every model has its own")
        self.model_label.show()

    def current(self) -> str:
        item = self.folder_list.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ""

    def _update_buttons(self) -> None:
        self.remove_folder_button.setEnabled(bool(self.current()))
        self.rescan_button.setText("Rescan" if self.current() else "Rescan all")
        self.rescan_button.setEnabled(self.folder_list.count() > 0)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if folder:
            self.add_requested.emit(folder)

    def _remove_current(self) -> None:
        if self.current():
            self.confirm_remove(self.current())

    def confirm_remove(self, folder: str) -> None:
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
            self.remove_requested.emit(folder)

    def _context_menu(self, position: QPoint) -> None:
        item = self.folder_list.itemAt(position)
        menu = QMenu(self)
        if item is not None:
            path = str(item.data(Qt.ItemDataRole.UserRole))
            menu.addAction("Rescan this folder", lambda: self.rescan_requested.emit(path))
            menu.addAction("Remove from library…", lambda: self.confirm_remove(path))
            menu.addSeparator()
        menu.addAction("Rescan all folders", lambda: self.rescan_requested.emit(""))
        menu.addAction("Add folder…", self.choose_folder)
        menu.exec(self.folder_list.viewport().mapToGlobal(position))


def describe(row: FolderRow) -> str:
    """'24 photos · up to date', '120 photos · 2 unreadable · indexing'."""
    parts = [f"{row.photos} photo{'s' if row.photos != 1 else ''}"]
    if row.failed:
        parts.append(f"{row.failed} unreadable")
    parts.append("offline, photos kept" if row.state == OFFLINE else row.state)
    return " · ".join(parts)
