"""Tags and descriptions in the window: the viewer's editor box, the dialog for a selection,
and the controller that stores them (catalog transactions on a worker, beside any indexing).

The controller writes through the library's own catalog when the window holds the library,
and through a catalog opened for the write without the writer lock when another gallery-app
holds it (`core.metadata.open_for_metadata`): metadata writes touch neither the vectors nor
the index, so SQLite's locking is all they need.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gallery_app.core.catalog import PhotoMetadata
from gallery_app.ui.tasks import Task, TaskRunner

if TYPE_CHECKING:
    from gallery_app.core.library import Library
    from gallery_app.core.store import CatalogStore
    from gallery_app.ui.main_window import MainWindow

log = logging.getLogger(__name__)

KEEP = object()  # "leave the description as it is"


def split_tags(text: str) -> list[str]:
    """Tags as typed: comma-separated (a tag may hold spaces: "golden retriever")."""
    return [tag.strip() for tag in text.split(",") if tag.strip()]


@dataclass(frozen=True)
class MetadataEdit:
    """What a person changed: tags to add and remove on every photo, and the description
    (None clears it; `KEEP` leaves each photo's as it is)."""

    image_ids: tuple[int, ...]
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    description: object = KEEP


class EditMetadataTask(Task):
    title = "Saving tags"

    def __init__(self, library: Library, edit: MetadataEdit) -> None:
        super().__init__()
        self.library = library
        self.edit = edit

    def work(self) -> MetadataEdit:
        if not self.library.read_only:
            self._store(self.library.catalog)
            return self.edit
        from gallery_app.core.metadata import open_for_metadata

        catalog = open_for_metadata(Path(self.library.catalog.path))  # beside the other writer
        try:
            self._store(catalog)
        finally:
            catalog.close()
        return self.edit

    def _store(self, catalog: CatalogStore) -> None:
        edit = self.edit
        catalog.edit_tags(edit.image_ids, add=edit.add, remove=edit.remove)
        if edit.description is not KEEP:
            description = edit.description
            catalog.set_description(
                edit.image_ids, description if isinstance(description, str) else None
            )


class MetadataController(QObject):
    """Reads a photo's metadata for the viewer and stores edits, one task at a time."""

    saved = Signal(object)  # MetadataEdit, once it is in the catalog
    changed = Signal()  # results that rank by metadata may be stale
    refused = Signal(str)

    def __init__(self, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.library: Library | None = None

    @Slot(object)
    def set_library(self, library: Library | None) -> None:
        self.library = library

    def metadata(self, image_id: int) -> PhotoMetadata:
        """One photo's tags, description, file keywords, title, caption (a quick read)."""
        if self.library is None:
            return PhotoMetadata()
        try:
            return self.library.catalog.metadata([image_id]).get(image_id, PhotoMetadata())
        except Exception as exc:  # a read the viewer cannot do shows no metadata, never fails
            log.warning("cannot read the metadata of photo %s: %s", image_id, exc)
            return PhotoMetadata()

    def save(self, edit: MetadataEdit) -> bool:
        if self.library is None:
            self.refused.emit("No library yet: add a folder first.")
            return False
        if not edit.image_ids:
            return False
        task = EditMetadataTask(self.library, edit)
        task.result.connect(self._on_saved)
        self.runner.start(task)
        return True

    @Slot(object)
    def _on_saved(self, edit: MetadataEdit) -> None:
        self.saved.emit(edit)
        self.changed.emit()


class MetadataBox(QWidget):
    """The viewer's editor: your tags and description, and what the file itself says."""

    edited = Signal(object)  # MetadataEdit for the photo shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image_id: int | None = None
        self._tags: tuple[str, ...] = ()
        self._description = ""
        self.tags_edit = QLineEdit(placeholderText="tags, comma-separated")
        self.tags_edit.setToolTip(
            "Your tags for this photo, separated by commas. A search for a tag finds the "
            "photo even when its pixels do not show it."
        )
        self.description_edit = QPlainTextEdit(placeholderText="a description")
        self.description_edit.setFixedHeight(60)
        self.save_button = QPushButton("Save tags")
        self.save_button.setToolTip("Store the tags and description in the library")
        self.save_button.clicked.connect(self._save)
        self.tags_edit.returnPressed.connect(self._save)
        self.file_label = QLabel(wordWrap=True)
        self.file_label.setTextFormat(Qt.TextFormat.PlainText)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Tags"))
        layout.addWidget(self.tags_edit)
        layout.addWidget(QLabel("Description"))
        layout.addWidget(self.description_edit)
        layout.addWidget(self.save_button)
        layout.addWidget(self.file_label)

    def show_metadata(self, image_id: int, metadata: PhotoMetadata) -> None:
        self._image_id = image_id
        self._tags = metadata.user_tags
        self._description = metadata.description or ""
        self.tags_edit.setText(", ".join(metadata.user_tags))
        self.description_edit.setPlainText(self._description)
        said = []
        if metadata.file_tags:
            said.append("Keywords in the file: " + ", ".join(metadata.file_tags))
        if metadata.title:
            said.append(f"Title: {metadata.title}")
        if metadata.caption:
            said.append(f"Caption: {metadata.caption}")
        self.file_label.setText("\n".join(said))
        self.file_label.setVisible(bool(said))

    def _save(self) -> None:
        if self._image_id is None:
            return
        typed = split_tags(self.tags_edit.text())
        kept = {t.casefold() for t in typed}
        had = {t.casefold() for t in self._tags}
        add = tuple(t for t in typed if t.casefold() not in had)
        remove = tuple(t for t in self._tags if t.casefold() not in kept)
        text = self.description_edit.toPlainText().strip()
        description: object = KEEP if text == self._description.strip() else (text or None)
        if not add and not remove and description is KEEP:
            return
        self._tags = tuple(typed)
        self._description = text
        self.edited.emit(MetadataEdit((self._image_id,), add, remove, description))


class TagsDialog(QDialog):
    """Tags (and optionally one description) for every selected photo at once."""

    def __init__(
        self,
        image_ids: Sequence[int],
        metadata: dict[int, PhotoMetadata],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("tags_dialog")
        self.image_ids = tuple(image_ids)
        self.setWindowTitle(f"Tags for {len(self.image_ids)} photos")
        present: dict[str, str] = {}
        for meta in metadata.values():
            for tag in meta.user_tags:
                present.setdefault(tag.casefold(), tag)
        self.add_edit = QLineEdit(placeholderText="beach, Lena, summer 2019")
        self.remove_edit = QLineEdit(placeholderText="tags to take off")
        self.remove_edit.setToolTip("Tags on the selected photos: " + ", ".join(present.values()))
        self.description_box = QCheckBox("Set the description of every selected photo:")
        self.description_edit = QLineEdit()
        self.description_edit.setEnabled(False)
        self.description_box.toggled.connect(self.description_edit.setEnabled)
        form = QFormLayout()
        form.addRow("Add tags", self.add_edit)
        form.addRow("Remove tags", self.remove_edit)
        if present:
            form.addRow("", QLabel("Now on them: " + ", ".join(present.values()), wordWrap=True))
        form.addRow(self.description_box)
        form.addRow(self.description_edit)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def edit(self) -> MetadataEdit:
        description: object = KEEP
        if self.description_box.isChecked():
            description = self.description_edit.text().strip() or None
        return MetadataEdit(
            self.image_ids,
            tuple(split_tags(self.add_edit.text())),
            tuple(split_tags(self.remove_edit.text())),
            description,
        )


def edit_tags_of(parent: QWidget, controller: MetadataController, image_ids: list[int]) -> None:
    """The Tags dialog for a selection (the grid's right-click menu); saved on Save."""
    if not image_ids or controller.library is None:
        return
    try:
        current = controller.library.catalog.metadata(image_ids)
    except Exception as exc:
        controller.refused.emit(f"Cannot read the tags of the selected photos: {exc}")
        return
    dialog = TagsDialog(image_ids, current, parent)
    dialog.accepted.connect(lambda: controller.save(dialog.edit()))
    dialog.finished.connect(dialog.deleteLater)
    dialog.open()


def wire_metadata(window: MainWindow) -> MetadataController:
    """The window's wiring for tags (kept here so main_window stays a page of wiring): the
    viewer's editor, the grid's Tags dialog, and a new search once an edit is stored."""
    controller = MetadataController(window.runner, window)
    panel, viewer = window.results_panel, window.results_panel.viewer
    viewer.metadata_for = controller.metadata
    viewer.metadata_edited.connect(controller.save)
    panel.tags_requested.connect(lambda ids: edit_tags_of(window, controller, ids))
    controller.changed.connect(window.search.search_again)
    controller.refused.connect(window.report_error)
    window.model.library_opened.connect(controller.set_library)
    return controller
