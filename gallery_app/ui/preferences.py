"""Preferences: the model picker (the catalog, cached ones marked, or a folder of your own).

A dialog: it shows the choices and says which one was picked; the window switches models.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gallery_app.core.model_catalog import ModelChoice, format_mb, format_speed

if TYPE_CHECKING:
    from gallery_app.ui.main_window import MainWindow

COLUMNS = ("Model", "Cached", "Download", "Languages", "CPU speed", "Choose it when")
ID_ROLE = Qt.ItemDataRole.UserRole


class PreferencesDialog(QDialog):
    model_chosen = Signal(str)  # a hub id from the list, or a folder
    library_chosen = Signal(str)  # a postgresql:// address or a folder; "" for the data folder

    def __init__(
        self,
        choices: list[ModelChoice],
        current: str,
        parent: QWidget | None = None,
        library: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("preferences_dialog")
        self.setWindowTitle("Preferences")
        self.current = current
        intro = QLabel(
            "<b>Model</b> — bigger models find better matches and index more slowly; "
            "multilingual ones understand queries in many languages. Each model keeps its "
            "own library: switching back finds your folders as you left them. The choice is "
            "remembered and used by the command line too (unless --model or "
            "GALLERY_APP_MODEL says otherwise)."
        )
        intro.setWordWrap(True)
        self.model_list = QTreeWidget()
        self.model_list.setHeaderLabels(list(COLUMNS))
        self.model_list.setRootIsDecorated(False)
        self.model_list.setAlternatingRowColors(True)
        self.model_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.model_list.itemDoubleClicked.connect(lambda *_: self._use_selected())
        for choice in choices:
            self.model_list.addTopLevelItem(self._row(choice))
        header = self.model_list.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        speed_note = QLabel(
            "CPU speed: images per second of the image tower relative to SigLIP base-224, "
            "measured with random weights on the machine the catalog was made on; a GPU "
            "changes the picture. A model not cached is downloaded when you choose it."
        )
        speed_note.setWordWrap(True)
        self.use_button = QPushButton("Use this model")
        self.use_button.setDefault(True)
        self.use_button.clicked.connect(self._use_selected)
        self.folder_button = QPushButton("Use a folder…")
        self.folder_button.setToolTip(
            "A checkpoint saved with save_pretrained (config.json, model.safetensors, "
            "the tokenizer and preprocessor files)"
        )
        self.folder_button.clicked.connect(self.choose_folder)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.use_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.folder_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.model_list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.select(current)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.model_list, 1)
        layout.addWidget(speed_note)
        layout.addLayout(self._library_row(library))
        layout.addWidget(buttons)
        self.resize(1100, 560)
        self._update_buttons()

    def _library_row(self, library: str | None) -> QHBoxLayout:
        """Where the libraries live: this computer's data folder, or a shared server."""
        label = QLabel("<b>Library</b>")
        self.library_edit = QLineEdit(library or "")
        self.library_edit.setPlaceholderText(
            "this computer (empty), a folder, or postgresql://user@host/db for a shared one"
        )
        self.library_edit.setToolTip(
            "Saved without a password: libpq reads it from ~/.pgpass or PGPASSWORD. Used by "
            "the window from its next start and by the command line (unless --library or "
            "GALLERY_APP_LIBRARY says otherwise)."
        )
        save = QPushButton("Save library")
        save.clicked.connect(lambda: self.library_chosen.emit(self.library_edit.text().strip()))
        self.library_note = QLabel("")
        row = QHBoxLayout()
        row.addWidget(label)
        row.addWidget(self.library_edit, 1)
        row.addWidget(save)
        row.addWidget(self.library_note)
        return row

    def _row(self, choice: ModelChoice) -> QTreeWidgetItem:
        entry = choice.entry
        name = entry.id + (" (default)" if choice.default else "")
        if entry.id == self.current:
            name += " — in use"
        item = QTreeWidgetItem(
            [
                name,
                "✓ cached" if choice.cached else "",
                format_mb(entry.download_mb),
                entry.languages,
                format_speed(entry.relative_cpu_speed),
                entry.choose_when,
            ]
        )
        item.setData(0, ID_ROLE, entry.id)
        item.setToolTip(
            0,
            f"{entry.id}: {entry.family} {entry.size}, {entry.resolution} px, patch "
            f"{entry.patch}, {entry.embedding_dim}-d vectors",
        )
        if entry.id == self.current:
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
        return item

    def selected(self) -> str:
        item = self.model_list.currentItem()
        return str(item.data(0, ID_ROLE)) if item is not None else ""

    def select(self, model_id: str) -> bool:
        for index in range(self.model_list.topLevelItemCount()):
            item = self.model_list.topLevelItem(index)
            if item is not None and item.data(0, ID_ROLE) == model_id:
                self.model_list.setCurrentItem(item)
                return True
        return False

    def _update_buttons(self) -> None:
        chosen = self.selected()
        self.use_button.setEnabled(bool(chosen) and chosen != self.current)

    def _use_selected(self) -> None:
        chosen = self.selected()
        if chosen and chosen != self.current:
            self.model_chosen.emit(chosen)
            self.accept()

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder")
        if folder:
            self.model_chosen.emit(folder)
            self.accept()


def wire_model_choice(window: MainWindow) -> None:
    """The ways to change the model (a folder from the banner, Preferences), Cancel of a
    first-run download, and the library panel naming the model whose library it shows."""
    window.results_panel.model_chosen.connect(lambda model_id: switch_model(window, model_id))
    window.status_area.download_cancel_requested.connect(window.model.cancel_download)
    window.model.library_opened.connect(
        lambda library: window.library_panel.show_model(library.model_id)
    )


def open_preferences(window: MainWindow) -> PreferencesDialog:
    """File › Preferences…: the catalog with the cached ones marked, or a folder."""
    from gallery_app.core.model_catalog import model_choices

    dialog = PreferencesDialog(
        model_choices(), window.model.current, window, window.settings.library
    )
    dialog.model_chosen.connect(lambda model_id: switch_model(window, model_id))
    dialog.library_chosen.connect(lambda location: save_library(window, dialog, location))
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


def switch_model(window: MainWindow, model: str) -> None:
    """Load another model (or a folder); its own library replaces this one in the window, both
    stay on disk. Refused while indexing: the run belongs to the model that is loaded."""
    if window.library.busy:
        window.report_error("Indexing is running: cancel it or let it finish, then switch models.")
        return
    problem = window.model.switch(model)
    if problem:
        window.report_error(problem)
        return
    window.model_info = None
    window.search.searcher = None
    window.search.model_state = "loading"
    window.status_area.set_device(None)
    window.statusBar().showMessage(f"Loading {Path(model).name}…")


def save_library(window: MainWindow, dialog: PreferencesDialog, location: str) -> None:
    """Remember where the libraries live; the window opens it from its next start (a library
    switch under a running window would have to stop indexing and searches first)."""
    from gallery_app.core.pg_catalog import is_postgres_url, redact

    if location and not is_postgres_url(location) and not Path(location).expanduser().is_dir():
        dialog.library_note.setText("not a folder or a postgresql:// address")
        return
    window.settings.set_library(location)
    dialog.library_edit.setText(window.settings.library or "")  # as stored: no password
    where = redact(location) if location else "this computer's data folder"
    dialog.library_note.setText("saved: used from the next start")
    window.statusBar().showMessage(
        f"Library saved: {where}; the window uses it from its next start.", 10000
    )
