"""Schema 4: tags, descriptions, the file's own keywords/title/caption, and relevance marks."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gallery_app.core.catalog import Catalog, ImageRecord
from gallery_app.core.errors import GalleryError

DIM = 8


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def record(path: str, folder_id: int, seed: int, **extra: object) -> ImageRecord:
    return ImageRecord(path, folder_id, 1, 1, vector=unit(seed), **extra)  # type: ignore[arg-type]


def open_catalog(tmp_path: Path, backend: str, read_only: bool = False):
    """The catalog of model "tiny" on the backend under test (see conftest's library_backend)."""
    if backend == "postgresql":
        from gallery_app.core.pg_catalog import PgCatalog

        return PgCatalog(os.environ["GALLERY_APP_LIBRARY"], "tiny", DIM, read_only)
    return Catalog(tmp_path / "catalog.sqlite", "tiny", DIM, read_only)


@pytest.fixture
def catalog(tmp_path: Path, library_backend: str):
    opened = open_catalog(tmp_path, library_backend)
    folder = opened.add_folder("/photos")
    opened.write_batch([record(f"/photos/{n}.jpg", folder.id, n) for n in range(3)])
    yield opened
    opened.close()


def ids(catalog: Catalog) -> list[int]:
    found = catalog.ids_for_paths([f"/photos/{n}.jpg" for n in range(3)])
    return [found[f"/photos/{n}.jpg"] for n in range(3)]


def test_user_tags_are_added_and_removed_case_insensitively(catalog):
    first, second, third = ids(catalog)
    catalog.edit_tags([first, second], add=["Beach", "  sunset  glow ", "beach", ""])
    catalog.edit_tags([second], add=["BEACH"], remove=["SUNSET GLOW"])
    meta = catalog.metadata()
    assert meta[first].user_tags == ("Beach", "sunset glow")
    assert meta[second].user_tags == ("Beach",)
    assert third not in meta
    assert catalog.tag_counts() == [("Beach", 2), ("sunset glow", 1)]


def test_file_keywords_are_replaced_on_reencode_and_user_tags_kept(catalog):
    first = ids(catalog)[0]
    catalog.edit_tags([first], add=["mine"])
    folder = catalog.folders()[0].id
    catalog.write_batch(
        [record("/photos/0.jpg", folder, 0, file_keywords=("Paris", "trip"), title="Eiffel")]
    )
    assert catalog.metadata([first])[first].file_tags == ("Paris", "trip")
    catalog.write_batch(
        [record("/photos/0.jpg", folder, 0, file_keywords=("Lyon",), caption="A square")]
    )
    meta = catalog.metadata([first])[first]
    assert (meta.user_tags, meta.file_tags, meta.title, meta.caption) == (
        ("mine",),
        ("Lyon",),
        None,
        "A square",
    )
    # A record that did not read the file's metadata (None) leaves it as it was.
    catalog.write_batch([record("/photos/0.jpg", folder, 0)])
    assert catalog.metadata([first])[first].file_tags == ("Lyon",)


def test_description_is_set_and_cleared(catalog):
    first, second, _ = ids(catalog)
    catalog.set_description([first, second], "  Grandma's garden ")
    assert catalog.metadata([first])[first].description == "Grandma's garden"
    catalog.set_description([first], "   ")
    meta = catalog.metadata()
    assert first not in meta and meta[second].description == "Grandma's garden"


def test_marks_are_set_changed_taken_back_and_cleared(catalog):
    first, second, third = ids(catalog)
    catalog.set_mark(first, "dog", True)
    catalog.set_mark(second, "dog", False)
    catalog.set_mark(third, "cat", True)
    catalog.set_mark(first, "dog", False)  # changed mind: one mark, the latest
    marks = catalog.marks("dog")
    assert [(m.image_id, m.path, m.relevant) for m in marks] == [
        (second, "/photos/1.jpg", False),
        (first, "/photos/0.jpg", False),
    ]
    catalog.set_mark(second, "dog", None)
    assert [m.image_id for m in catalog.marks("dog")] == [first]
    assert catalog.clear_marks("dog") == 1
    assert [m.query for m in catalog.marks()] == ["cat"]
    assert catalog.clear_marks() == 1


def test_a_mark_or_tag_for_an_unknown_image_is_not_stored(catalog):
    catalog.set_mark(9999, "dog", True)
    catalog.edit_tags([9999], add=["ghost"])
    assert catalog.marks() == [] and catalog.tag_counts() == []


def test_metadata_and_marks_go_with_their_folder(catalog):
    first = ids(catalog)[0]
    catalog.edit_tags([first], add=["x"])
    catalog.set_mark(first, "dog", True)
    catalog.remove_folder("/photos")
    assert catalog.metadata() == {} and catalog.marks() == []


def test_metadata_writes_bump_their_own_generation_not_the_vectors(catalog):
    first = ids(catalog)[0]
    vectors_before, meta_before = catalog.generation, catalog.metadata_generation()
    catalog.edit_tags([first], add=["x"])
    catalog.set_mark(first, "q", True)
    assert catalog.generation == vectors_before
    assert catalog.metadata_generation() == meta_before + 2


def test_reencoding_a_file_whose_metadata_is_unchanged_leaves_the_generation(catalog):
    folder = catalog.folders()[0].id
    catalog.write_batch([record("/photos/0.jpg", folder, 0, file_keywords=("Paris",))])
    settled = catalog.metadata_generation()
    catalog.write_batch(
        [
            record("/photos/0.jpg", folder, 0, file_keywords=("Paris",)),  # the same again
            record("/photos/1.jpg", folder, 1, file_keywords=()),  # nothing said, as before
        ]
    )
    assert catalog.metadata_generation() == settled
    catalog.write_batch([record("/photos/1.jpg", folder, 1, file_keywords=(), title="New")])
    assert catalog.metadata_generation() == settled + 1


def test_a_read_only_catalog_refuses_metadata_writes(catalog, tmp_path, library_backend):
    reader = open_catalog(tmp_path, library_backend, read_only=True)
    try:
        with pytest.raises(GalleryError):
            reader.edit_tags(ids(reader), add=["x"])
    finally:
        reader.close()
    assert catalog.tag_counts() == []


def test_schema_3_catalog_gains_the_metadata_tables_after_a_backup(tmp_path):
    path = tmp_path / "catalog.sqlite"
    old = Catalog(path, "tiny", DIM)
    folder = old.add_folder("/photos")
    old.write_batch([record("/photos/0.jpg", folder.id, 0)])
    old.close()
    # Take the file back to schema 3 as that version wrote it.
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TABLE tags; DROP TABLE marks; ALTER TABLE images DROP COLUMN description; "
        "ALTER TABLE images DROP COLUMN title; ALTER TABLE images DROP COLUMN caption; "
        "DELETE FROM meta WHERE key = 'metadata_generation'; "
        "UPDATE meta SET value = '3' WHERE key = 'schema_version';"
    )
    db.close()

    upgraded = Catalog(path, "tiny", DIM)
    try:
        assert upgraded.migrated_from == 3 and upgraded.backup_path is not None
        image = upgraded.ids_for_paths(["/photos/0.jpg"])["/photos/0.jpg"]
        upgraded.edit_tags([image], add=["kept"])
        upgraded.set_mark(image, "q", True)
        assert upgraded.metadata()[image].user_tags == ("kept",)
        assert upgraded.metadata_generation() == 2
        assert upgraded.count() == 1
    finally:
        upgraded.close()
    backup = sqlite3.connect(upgraded.backup_path)
    assert backup.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("3",)
    backup.close()
