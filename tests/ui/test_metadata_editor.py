"""Tags and descriptions in the window: the viewer's box, the dialog for a selection, the
store beside indexing, the hybrid score in the debug panel."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication
from window_helpers import WAIT_MS, index_folder, search, session

from gallery_app.core.catalog import PhotoMetadata
from gallery_app.core.library import Library
from gallery_app.ui.metadata_editor import KEEP, MetadataBox, MetadataEdit, TagsDialog, split_tags


def test_split_tags_keeps_phrases():
    assert split_tags(" beach, golden retriever ,, Lena ") == ["beach", "golden retriever", "Lena"]


def test_the_box_emits_what_changed(qtbot):
    box = MetadataBox()
    qtbot.addWidget(box)
    box.show_metadata(7, PhotoMetadata(("beach", "Lena"), ("Strand",), "old", "Title", None))
    assert box.tags_edit.text() == "beach, Lena"
    assert "Keywords in the file: Strand" in box.file_label.text()
    edits = []
    box.edited.connect(edits.append)
    box.save_button.click()  # nothing changed: nothing to store
    assert edits == []
    box.tags_edit.setText("LENA, sunset")
    box.save_button.click()
    assert edits == [MetadataEdit((7,), ("sunset",), ("beach",), KEEP)]
    box.description_edit.setPlainText("")
    box.save_button.click()
    assert edits[-1] == MetadataEdit((7,), (), (), None)  # a cleared description


def test_the_dialog_edits_a_selection(qtbot):
    dialog = TagsDialog([1, 2], {1: PhotoMetadata(("beach",))})
    qtbot.addWidget(dialog)
    dialog.add_edit.setText("Sylt, summer 2019")
    dialog.remove_edit.setText("beach")
    assert dialog.edit() == MetadataEdit((1, 2), ("Sylt", "summer 2019"), ("beach",), KEEP)
    dialog.description_box.setChecked(True)
    dialog.description_edit.setText("Holidays")
    assert dialog.edit().description == "Holidays"


def _wait_saved(qtbot, window, action):
    with (
        qtbot.waitSignal(window.search_done, timeout=WAIT_MS),  # it searches again
        qtbot.waitSignal(window.metadata.saved, timeout=WAIT_MS),
    ):
        action()


def test_tagging_in_the_viewer_stores_it_and_ranks_the_photo_first(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(9)[0].parent)
    search(qtbot, window, "zebra")
    items = window.grid_model.items()
    target = items[-1]  # the photo the pixels alone rank last
    panel = window.results_panel
    panel.open_row(len(items) - 1)
    viewer = panel.viewer
    assert viewer.metadata_box.isVisible()
    viewer.metadata_box.tags_edit.setText("zebra")
    _wait_saved(qtbot, window, viewer.metadata_box.save_button.click)
    catalog = session(window).library.catalog
    assert catalog.metadata([target.image_id])[target.image_id].user_tags == ("zebra",)
    assert window.grid_model.items()[0].image_id == target.image_id
    first = window.search.results[0]
    assert first.boost > 0 and first.boost_reason == "your tag “zebra”"
    # The debug panel shows visual, boost, score and why.
    section = window.debug_panel.boost_text()
    assert "your tag “zebra”" in section and f"boost {first.boost:.2f}" in section
    table = window.debug_panel.table_model()
    tip = table.index(0, table.SCORE).data(3)  # ToolTipRole
    assert f"visual {first.visual:.4f}" in tip and f"= {first.score:.4f}" in tip


def test_a_tag_leaves_a_photo_out_of_a_query_that_excludes_it(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(6)[0].parent)
    search(qtbot, window, "sea")
    top = window.grid_model.items()[0]
    session(window).library.catalog.edit_tags([top.image_id], add=["people"])
    search(qtbot, window, "sea -people")
    result = next(r for r in window.search.results if r.image_id == top.image_id)
    people = result.parts[1]
    assert people.kind == "not" and people.boost > 0 and "your tag “people”" in people.boost_reason
    assert result.score <= (1 - people.score) + 1e-12 and people.score >= 0.9
    section = window.debug_panel.boost_text()
    assert "Metadata boost of a part" in section and "your tag “people”" in section
    table = window.debug_panel.table_model()
    row = next(i for i in range(table.rowCount()) if table.result_at(i).image_id == top.image_id)
    tip = table.index(row, table.SCORE).data(3)  # ToolTipRole
    assert f"visual {people.visual:.4f}" in tip and f"P {people.score:.4f}" in tip


def test_tags_for_a_selection_from_the_grid(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(5)[0].parent)
    search(qtbot, window, "sea")
    ids = [item.image_id for item in window.grid_model.items()[:3]]
    from gallery_app.ui.metadata_editor import edit_tags_of

    edit_tags_of(window, window.metadata, ids)
    dialog = window.findChild(TagsDialog, "tags_dialog")
    assert dialog is not None and dialog.image_ids == tuple(ids)
    dialog.add_edit.setText("Sylt")
    _wait_saved(qtbot, window, dialog.accept)
    meta = session(window).library.catalog.metadata(ids)
    assert all(meta[i].user_tags == ("Sylt",) for i in ids)


def test_tagging_while_the_window_indexes(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(4)[0].parent)
    first_ids = [item.image_id for item in window.search.library_items]
    more = make_images(40, folder="more")
    saved = []
    window.metadata.saved.connect(saved.append)
    tagged = []

    def tag_during_indexing(*_):
        if len(tagged) < 3:
            tagged.append(first_ids[len(tagged)])
            window.metadata.save(MetadataEdit((tagged[-1],), ("busy",)))

    window.indexing_progress.connect(tag_during_indexing)
    with qtbot.waitSignal(window.library.idle, timeout=WAIT_MS):
        assert window.start_indexing([str(more[0].parent)])
    qtbot.waitUntil(lambda: len(saved) == len(tagged), timeout=WAIT_MS)
    assert tagged, "indexing reported no progress to tag during"
    meta = session(window).library.catalog.metadata(tagged)
    assert all(meta[i].user_tags == ("busy",) for i in tagged)
    assert session(window).library.catalog.count() == 44


def test_a_read_only_window_still_saves_tags(qtbot, open_window, tiny_model_dir, make_images):
    """Another gallery-app holds the library: the window opens it read-only and writes tags
    through a catalog of its own, beside the other writer."""
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(3)[0].parent)
    lib = session(window).library
    ids = [item.image_id for item in window.search.library_items]
    reader = Library(lib.data_dir, lib.model_id, lib.dim, read_only=True)
    try:
        window.metadata.set_library(reader)
        with qtbot.waitSignal(window.metadata.saved, timeout=WAIT_MS):
            assert window.metadata.save(MetadataEdit((ids[0],), ("harbour",)))
        assert lib.catalog.metadata([ids[0]])[ids[0]].user_tags == ("harbour",)
    finally:
        window.metadata.set_library(lib)
        reader.close()
    QApplication.processEvents()


def test_the_debug_table_shows_thumbnails_of_results_the_grid_does_not(
    qtbot, open_window, tiny_model_dir, make_images
):
    from PySide6.QtCore import Qt

    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(20)[0].parent)
    search(qtbot, window, "zebra")
    in_grid = {item.image_id for item in window.grid_model.items()}
    table = window.debug_panel.table_model()
    hidden = [i for i in range(table.rowCount()) if table.result_at(i).image_id not in in_grid]
    assert hidden, "the search should leave some results out of the grid (no confident match)"
    cell = table.index(hidden[-1], table.THUMBNAIL)

    def shown() -> bool:
        pixmap = table.data(cell, Qt.ItemDataRole.DecorationRole)
        return pixmap is not None and not pixmap.isNull()

    qtbot.waitUntil(shown, timeout=WAIT_MS)  # loaded for the table, then refreshed
