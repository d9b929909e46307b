"""`library copy`: SQLite <-> PostgreSQL with vectors, metadata and marks, resumable, verified."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library
from gallery_app.core.library_copy import copy_library, summarize
from gallery_app.core.search import Searcher


@pytest.fixture
def filled(encoder, make_images, tmp_path):
    """A SQLite library: 7 photos, a broken file, tags, a description, marks, cached texts."""
    folder = make_images(7)[0].parent
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    library = Library(tmp_path / "sqlite-data", encoder.model_id, encoder.dim)
    Indexer(library, encoder, batch_size=3).index([folder])
    ids = sorted(library.catalog.vector_ids())
    library.catalog.edit_tags(ids[:2], add=["Holiday", "dog"])
    library.catalog.set_description([ids[3]], "grandma's garden")
    library.catalog.set_mark(ids[0], "dog", True)
    library.catalog.set_mark(ids[1], "dog", False)
    Searcher(library, encoder).search("a dog")  # fills the text cache
    yield library
    library.close()


def test_sqlite_to_postgresql_and_back_keeps_everything(filled, pg_url, encoder, tmp_path):
    shared = Library(tmp_path / "client", encoder.model_id, encoder.dim, location=pg_url)
    try:
        report = copy_library(filled, shared)
        assert report.verified and report.copied == 8 and report.skipped == 0
        assert report.source.photos == 7 and report.source.failures == 1
        assert report.source.marks == 2 and report.source.tagged == 3
        assert report.source.cached_texts > 0
        # The same search finds the same photos with the same exact cosines, no re-encoding.
        here, there = Searcher(filled, encoder), Searcher(shared, encoder)
        a, b = here.search("a dog", top_k=None), there.search("a dog", top_k=None)
        order_a, order_b = np.argsort(a.paths), np.argsort(b.paths)
        assert [a.paths[i] for i in order_a] == [b.paths[i] for i in order_b]
        # Equal vectors (the checksum); a product over rows in another order may differ by 1 ulp.
        np.testing.assert_allclose(a.raw[order_a], b.raw[order_b], rtol=0, atol=1e-6)
        assert {m.path: m.relevant for m in shared.catalog.marks()} == {
            m.path: m.relevant for m in filled.catalog.marks()
        }
        back = Library(tmp_path / "back", encoder.model_id, encoder.dim)
        try:
            again = copy_library(shared, back)
            assert again.verified and again.target == report.source
            assert back.index.live_ids() == back.catalog.vector_ids()  # hnswlib filled too
        finally:
            back.close()
    finally:
        shared.close()


def test_an_interrupted_copy_continues_where_it_stopped(filled, pg_url, encoder, tmp_path):
    shared = Library(tmp_path / "client", encoder.model_id, encoder.dim, location=pg_url)

    def stop_after_first_batch(done: int, total: int) -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            copy_library(filled, shared, progress=stop_after_first_batch, batch_size=3)
        rows = [shared.catalog.files_in_folder(f.id) for f in shared.catalog.folders()]
        assert sum(map(len, rows)) == 3  # the first batch committed, nothing else
        report = copy_library(filled, shared, batch_size=3)
        assert report.skipped == 3 and report.copied == 5 and report.verified
        assert copy_library(filled, shared).copied == 0  # a third run has nothing to do
    finally:
        shared.close()


def test_the_checksum_sees_a_changed_vector(filled, encoder, tmp_path):
    before = summarize(filled.catalog)
    image_id = min(filled.catalog.vector_ids())
    vector = filled.catalog.vectors(ids=[image_id])[1][0]
    flipped = vector.copy()
    flipped[[0, 1]] = flipped[[1, 0]]  # still a unit vector
    folder = filled.catalog.folders()[0]
    state = next(s for s in filled.catalog.files_in_folder(folder.id).values() if s.id == image_id)
    path = filled.catalog.images([image_id])[image_id].path
    from gallery_app.core.catalog import ImageRecord

    filled.catalog.write_batch(
        [ImageRecord(path, folder.id, state.mtime_ns, state.size, vector=flipped)]
    )
    after = summarize(filled.catalog)
    assert after.photos == before.photos and after.vector_checksum != before.vector_checksum
