"""VectorStore: the catalog's vectors in memory, exact cosines, kept current by generation."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import DIM, add_vectors, synthetic_library, unit

from gallery_app.core.vectors import VectorStore, matrix_cosines, vector_store


@pytest.fixture
def library(isolated_dirs):
    lib = synthetic_library(isolated_dirs)
    yield lib
    lib.close()


def catalog_cosines(library, text):
    ids, vectors = library.catalog.vectors()
    return dict(zip(ids.tolist(), (vectors @ text.T).tolist(), strict=True))


def snapshot_cosines(snapshot, text):
    return dict(zip(snapshot.ids.tolist(), snapshot.cosines(text).tolist(), strict=True))


def test_snapshot_holds_every_catalog_vector_with_exact_cosines(library):
    rng = np.random.default_rng(0)
    ids = add_vectors(library, unit(rng.normal(size=(50, DIM))))
    text = unit(rng.normal(size=(3, DIM)))
    snapshot = VectorStore(library.catalog).snapshot()
    assert sorted(snapshot.ids.tolist()) == sorted(ids)
    exact = catalog_cosines(library, text)
    got = snapshot_cosines(snapshot, text)
    assert got.keys() == exact.keys()
    for image_id, cosines in exact.items():
        np.testing.assert_allclose(got[image_id], cosines, atol=1e-6)
    info = library.catalog.images(ids)
    assert list(snapshot.paths) == [info[int(i)].path for i in snapshot.ids]


def test_store_follows_adds_updates_and_removals(library):
    rng = np.random.default_rng(1)
    store = VectorStore(library.catalog)
    ids = add_vectors(library, unit(rng.normal(size=(20, DIM))))
    before = store.snapshot()
    assert store.snapshot() is before  # nothing changed: no work
    text = unit(rng.normal(size=(2, DIM)))
    before_cosines = snapshot_cosines(before, text)

    more = add_vectors(library, unit(rng.normal(size=(5, DIM))), start=100)
    records = library.catalog.vectors(ids=ids[:3])[0].tolist()
    library.remove_ids(ids[3:6])
    # Re-indexing a changed file rewrites its vector under the same id.
    changed = unit(rng.normal(size=(3, DIM)))
    folder_id = library.catalog.folders()[0].id
    from gallery_app.core.catalog import ImageRecord

    info = library.catalog.images(records)
    library.catalog.write_batch(
        [
            ImageRecord(info[i].path, folder_id, 2, 2, vector=vector)
            for i, vector in zip(records, changed, strict=True)
        ]
    )
    after = store.snapshot()
    assert set(after.ids.tolist()) == library.catalog.vector_ids()
    assert set(after.ids.tolist()) == (set(ids) - set(ids[3:6])) | set(more)
    got, exact = snapshot_cosines(after, text), catalog_cosines(library, text)
    for image_id in exact:
        np.testing.assert_allclose(got[image_id], exact[image_id], atol=1e-6)
    # The earlier snapshot is unchanged by all of that.
    assert snapshot_cosines(before, text) == before_cosines


def test_retired_rows_are_compacted_away(library, monkeypatch):
    import gallery_app.core.vectors as vectors

    monkeypatch.setattr(vectors, "COMPACT_MIN_ROWS", 4)
    rng = np.random.default_rng(2)
    store = VectorStore(library.catalog)
    ids = add_vectors(library, unit(rng.normal(size=(20, DIM))))
    store.snapshot()
    library.remove_ids(ids[:12])
    snapshot = store.snapshot()
    assert len(snapshot) == 8 and len(snapshot.matrix) == 8  # no retired rows scanned
    text = unit(rng.normal(size=(1, DIM)))
    exact = catalog_cosines(library, text)
    for image_id, cosine in snapshot_cosines(snapshot, text).items():
        np.testing.assert_allclose(cosine, exact[image_id], atol=1e-6)


def test_float16_storage_accumulates_in_float32(library):
    rng = np.random.default_rng(3)
    add_vectors(library, unit(rng.normal(size=(40, DIM))))
    text = unit(rng.normal(size=(4, DIM)))
    half = VectorStore(library.catalog, dtype=np.float16).snapshot()
    full = VectorStore(library.catalog).snapshot()
    assert half.matrix.dtype == np.float16
    got = half.cosines(text)
    assert got.dtype == np.float32
    # The only error is the vectors' float16 rounding (~5e-4 relative per component).
    np.testing.assert_allclose(got, full.cosines(text), atol=2e-3)
    expected = half.matrix[half.rows].astype(np.float32) @ text.T
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="float32 or float16"):
        VectorStore(library.catalog, dtype=np.int8)


def test_one_store_per_catalog(library):
    assert vector_store(library.catalog) is vector_store(library.catalog)


def test_matrix_cosines_with_rows_and_blocks(monkeypatch):
    import gallery_app.core.vectors as vectors

    monkeypatch.setattr(vectors, "SCAN_BLOCK", 7)
    rng = np.random.default_rng(4)
    matrix = unit(rng.normal(size=(30, DIM)))
    text = unit(rng.normal(size=(2, DIM)))
    rows = np.array([5, 1, 29, 1], dtype=np.intp)
    np.testing.assert_allclose(matrix_cosines(matrix, text, rows), matrix[rows] @ text.T, atol=1e-6)
    many = np.arange(29, -1, -1, dtype=np.intp)
    np.testing.assert_allclose(matrix_cosines(matrix, text, many), matrix[many] @ text.T, atol=1e-6)
    half = matrix.astype(np.float16)
    np.testing.assert_allclose(
        matrix_cosines(half, text, many), half[many].astype(np.float32) @ text.T, atol=1e-6
    )
