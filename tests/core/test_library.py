"""Library: the catalog is the truth, the index is repaired to agree with it on open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gallery_app.core.catalog import Catalog, Folder, ImageRecord
from gallery_app.core.errors import CorruptIndex, LibraryMismatch
from gallery_app.core.index import read_sidecar, sidecar_path
from gallery_app.core.library import Library, library_folder


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def write_images(
    library: Library,
    names: list[str],
    seed: int,
    folder: str = "/photos",
    to_index: bool = True,
) -> tuple[list[int], np.ndarray]:
    """Catalog rows with vectors (and, if asked, the same vectors in the index)."""
    known = library.catalog.add_folder(folder)
    vectors = unit(np.random.default_rng(seed), len(names), library.dim)
    records = [
        ImageRecord(f"{known.path}/{name}", known.id, 1_000 + i, 10 + i, vector=vector)
        for i, (name, vector) in enumerate(zip(names, vectors, strict=True))
    ]
    _, ids = library.catalog.write_batch(records)
    if to_index:
        library.index.add(ids, vectors)
    return ids, vectors


def names(start: int, stop: int) -> list[str]:
    return [f"img_{i:04d}.jpg" for i in range(start, stop)]


def reopen(library: Library) -> Library:
    library.close()
    return Library(library.data_dir, library.model_id, library.dim)


def assert_agrees_with_catalog(library: Library) -> None:
    """Every catalog vector is in the index, nothing else is, and each finds itself."""
    ids, vectors = library.catalog.vectors()
    assert library.index.live_ids() == set(ids.tolist())
    assert len(library.index) == len(ids)
    if len(ids):
        np.testing.assert_allclose(library.index.get_vectors(ids), vectors, atol=1e-5)
        labels, sims = library.index.query(vectors, k=1)
        assert labels[:, 0].tolist() == ids.tolist()
        np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)


def test_reopen_finds_the_saved_index_unchanged(library: Library) -> None:
    ids, _ = write_images(library, names(0, 20), seed=0)
    library.save_index()
    assert library.repair.rebuilt  # a fresh library starts from an empty rebuild

    with reopen(library) as again:
        assert again.repair.changed is False
        assert again.repair.rebuilt is False
        assert again.index.live_ids() == set(ids)
        assert_agrees_with_catalog(again)


def test_deleted_index_is_rebuilt_from_the_catalog(library: Library) -> None:
    ids, _ = write_images(library, names(0, 15), seed=1)
    library.save_index()
    library.index_path.unlink()

    with reopen(library) as again:
        assert again.repair.rebuilt is True
        assert again.repair.added == 15
        assert again.index.live_ids() == set(ids)
        assert_agrees_with_catalog(again)
        assert again.index_path.exists()  # the rebuilt index is saved for next time
        assert read_sidecar(sidecar_path(again.index_path), again.dim).generation == (
            again.catalog.generation
        )


@pytest.mark.parametrize("garbage", [b"not an index at all " * 100, b""])
def test_garbage_index_is_rebuilt(library: Library, garbage: bytes) -> None:
    ids, _ = write_images(library, names(0, 12), seed=2)
    library.save_index()
    library.index_path.write_bytes(garbage)

    with reopen(library) as again:
        assert again.repair.rebuilt is True
        assert again.index.live_ids() == set(ids)
        assert_agrees_with_catalog(again)


def test_garbage_sidecar_is_rebuilt(library: Library) -> None:
    ids, _ = write_images(library, names(0, 8), seed=3)
    library.save_index()
    sidecar_path(library.index_path).write_text("{not json", encoding="utf-8")

    with reopen(library) as again:
        assert again.repair.rebuilt is True
        assert again.index.live_ids() == set(ids)


def test_stale_index_is_repaired_from_the_catalog(library: Library) -> None:
    old_ids, _ = write_images(library, names(0, 10), seed=4)
    library.save_index()
    # Written to the catalog (the truth) but the index is never saved again.
    new_ids, _ = write_images(library, names(10, 16), seed=5)
    library.catalog.remove_images([old_ids[0]])

    with reopen(library) as again:
        assert again.repair.rebuilt is False
        assert again.repair.added == 6
        assert again.repair.removed == 1
        expected = (set(old_ids) - {old_ids[0]}) | set(new_ids)
        assert again.index.live_ids() == expected
        assert_agrees_with_catalog(again)

    # The repair was saved: the next open has nothing left to do.
    with Library(library.data_dir, library.model_id, library.dim) as third:
        assert third.repair.changed is False
        assert_agrees_with_catalog(third)


def test_catalog_rows_never_indexed_are_added_on_open(library: Library) -> None:
    ids, _ = write_images(library, names(0, 5), seed=6, to_index=False)

    with reopen(library) as again:
        # No index file was ever saved for these rows, so this is a rebuild from the catalog.
        assert again.index.live_ids() == set(ids)
        assert_agrees_with_catalog(again)


def test_vector_changed_in_place_is_updated_on_open(library: Library) -> None:
    ids, vectors = write_images(library, names(0, 10), seed=7)
    library.save_index()
    target = ids[4]
    info = library.catalog.images([target])[target]
    folder = library.catalog.folders()[0]
    new_vector = unit(np.random.default_rng(8), 1, library.dim)[0]
    _, rewritten = library.catalog.write_batch(
        [ImageRecord(info.path, folder.id, info.mtime_ns + 1, info.size, vector=new_vector)]
    )
    assert rewritten == [target]  # same path, same id: only the vector changed

    with reopen(library) as again:
        assert again.repair.rebuilt is False
        assert again.repair.changed is True
        np.testing.assert_allclose(again.index.get_vectors([target])[0], new_vector, atol=1e-5)
        labels, sims = again.index.query(new_vector[None, :], k=1)
        assert labels[0, 0] == target
        assert sims[0, 0] == pytest.approx(1.0, abs=1e-5)
        assert_agrees_with_catalog(again)
        # The stale vector no longer finds the image at similarity 1.
        labels, sims = again.index.query(vectors[4:5], k=len(ids))
        assert sims[0, labels[0].tolist().index(target)] < 0.999


def test_vector_changed_in_place_after_a_removal_leaves_no_stale_copy(library: Library) -> None:
    ids, vectors = write_images(library, names(0, 10), seed=9)
    library.remove_ids([ids[0]])  # a deleted slot in the index
    library.save_index()
    target = ids[5]
    info = library.catalog.images([target])[target]
    folder = library.catalog.folders()[0]
    new_vector = unit(np.random.default_rng(10), 1, library.dim)[0]
    library.catalog.write_batch(
        [ImageRecord(info.path, folder.id, info.mtime_ns + 1, info.size, vector=new_vector)]
    )

    with reopen(library) as again:
        assert len(again.index) == again.catalog.count() == 9
        labels, sims = again.index.query(vectors[5:6], k=100)
        found = labels[0].tolist()
        assert len(found) == len(set(found))
        assert sims[0, found.index(target)] < 0.999


def test_crash_between_index_and_sidecar_replace_is_repaired(library: Library) -> None:
    ids, _ = write_images(library, names(0, 10), seed=13)
    library.save_index()
    sidecar = sidecar_path(library.index_path)
    old_sidecar = sidecar.read_bytes()
    library.remove_ids([ids[3]])
    library.save_index()
    sidecar.write_bytes(old_sidecar)  # as if the process died between the two os.replace

    with reopen(library) as again:
        assert again.index.live_ids() == set(ids) - {ids[3]}
        assert_agrees_with_catalog(again)


def test_other_model_gets_its_own_library(library: Library, tmp_path: Path) -> None:
    write_images(library, names(0, 6), seed=11)
    library.save_index()
    other_model = "someone/another-siglip"

    with Library(library.data_dir, other_model, library.dim) as other:
        assert other.folder != library.folder
        assert other.folder == library_folder(library.data_dir, other_model)
        assert other.catalog.count() == 0
        assert len(other.index) == 0
        assert other.catalog.folders() == []

    assert library.catalog.count() == 6  # untouched by the other library
    with pytest.raises(LibraryMismatch, match="another-siglip"):
        Catalog(library.catalog.path, other_model, library.dim)
    with pytest.raises(LibraryMismatch):
        Catalog(library.catalog.path, library.model_id, library.dim + 1)


def test_garbage_catalog_is_corrupt_index_naming_the_file(encoder, isolated_dirs: Path) -> None:
    folder = library_folder(isolated_dirs, encoder.model_id)
    folder.mkdir(parents=True)
    catalog_path = folder / "catalog.sqlite"
    catalog_path.write_bytes(b"definitely not a sqlite database " * 64)

    with pytest.raises(CorruptIndex) as info:
        Library(isolated_dirs, encoder.model_id, encoder.dim)
    assert str(catalog_path) in str(info.value)


# Catalog folders -----------------------------------------------------------------------------


def test_subfolder_of_a_known_folder_is_the_known_folder(
    library: Library, library_backend: str
) -> None:
    photos = library.catalog.add_folder("/home/me/photos")

    inner = library.catalog.add_folder("/home/me/photos/2020/summer")
    again = library.catalog.add_folder("/home/me/photos")
    sibling = library.catalog.add_folder("/home/me/photos2")

    assert inner == photos
    assert again == photos
    assert sibling != photos  # a shared name prefix is not containment
    assert library.catalog.folders() == [photos, sibling]


def test_adding_a_parent_absorbs_known_children(library: Library, library_backend: str) -> None:
    child_ids, _ = write_images(library, names(0, 3), seed=12, folder="/home/me/photos/2020")
    library.catalog.add_folder("/home/me/photos/2021")
    library.catalog.add_folder("/home/me/music")

    parent = library.catalog.add_folder("/home/me/photos")

    paths = [f.path for f in library.catalog.folders()]
    assert paths == ["/home/me/music", "/home/me/photos"]
    assert Folder(parent.id, "/home/me/photos") in library.catalog.folders()
    owned = library.catalog.files_in_folder(parent.id)
    assert sorted(state.id for state in owned.values()) == sorted(child_ids)
