"""Find similar: image queries on their own image-to-image scale, the query photo left out."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gallery_app.core.calibrate import (
    IMAGE_CENTRE,
    IMAGE_TEMPERATURE,
    Calibration,
    calibrated_score,
    image_calibration,
)
from gallery_app.core.errors import GalleryError, QueryImageError
from gallery_app.core.indexer import Indexer
from gallery_app.core.search import Searcher
from gallery_app.core.similar import file_query, photo_query

TEXT = Calibration("custom", 30.0, 0.0)


@pytest.fixture
def indexed(library, encoder, make_images):
    paths = make_images(10)
    Indexer(library, encoder).index([paths[0].parent])
    return paths


def catalog_vectors(library):
    ids, vectors = library.catalog.vectors()
    return dict(zip(ids.tolist(), vectors, strict=True))


def test_image_scale_reads_the_bands_it_documents():
    calibration = image_calibration()
    assert (calibration.temperature, calibration.centre) == (IMAGE_TEMPERATURE, IMAGE_CENTRE)
    near_duplicate, same_subject_high, centre, same_subject_low, unrelated = calibration.score(
        [0.95, 0.8, 0.7, 0.6, 0.4]
    )
    assert near_duplicate > 0.97 and unrelated < 0.02
    assert centre == 0.5 and 0.8 < same_subject_high < 0.85 and 0.15 < same_subject_low < 0.2


def test_a_library_photo_finds_the_others_by_image_cosine(library, encoder, indexed):
    image_id = library.catalog.browse()[0].id
    vectors = catalog_vectors(library)
    query = photo_query(library, image_id)
    np.testing.assert_array_equal(query.vector, vectors[image_id])
    hits = Searcher(library, encoder).search_image(query)
    results = hits.rank(TEXT, top_k=None)  # the text calibration given is not used
    assert image_id not in {r.image_id for r in results}  # the query photo is left out
    assert len(results) == len(vectors) - 1
    for result in results:
        cosine = float(vectors[result.image_id] @ vectors[image_id])
        assert result.raw == pytest.approx(cosine, abs=1e-6)
        assert result.score == pytest.approx(
            float(calibrated_score(result.raw, IMAGE_TEMPERATURE, IMAGE_CENTRE)), rel=1e-9
        )
    assert hits.calibration_for(TEXT) == image_calibration()
    assert [v.kind for v in hits.variants] == ["image"]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    # top_k is the true top k of the others, the query photo not counted.
    top = Searcher(library, encoder).search_image(query, top_k=3).rank(TEXT, top_k=3)
    assert [r.image_id for r in top] == [r.image_id for r in results[:3]]


def test_a_file_outside_the_library_is_encoded_as_indexing_does(
    library, encoder, indexed, tmp_path
):
    outside = tmp_path / "elsewhere" / "copy.png"
    outside.parent.mkdir()
    shutil.copy(indexed[3], outside)
    query = file_query(encoder, library, outside)
    assert query.image_ids == ()  # not a library photo: nothing left out
    assert query.label == "like copy.png"
    results = Searcher(library, encoder).search_image(query).rank(TEXT, top_k=None)
    assert len(results) == 10
    # Its copy in the library comes first at cosine ~1: the same pixels, the same pipeline.
    assert results[0].path == str(indexed[3].resolve())
    assert results[0].raw == pytest.approx(1.0, abs=1e-4)


def test_a_library_file_given_by_path_is_left_out(library, encoder, indexed):
    query = file_query(encoder, library, indexed[2])
    (image_id,) = query.image_ids
    results = Searcher(library, encoder).search_image(query).rank(TEXT, top_k=None)
    assert str(indexed[2].resolve()) not in {r.path for r in results}
    assert image_id not in {r.image_id for r in results} and len(results) == 9


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"%!PS-Adobe-3.0\n{ } loop\n", "PostScript"),
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a recognized image format"),
    ],
)
def test_a_bad_query_file_is_one_clear_error(library, encoder, tmp_path, content, reason):
    bad = tmp_path / "query.jpg"
    bad.write_bytes(content)
    with pytest.raises(QueryImageError) as caught:
        file_query(encoder, library, bad)
    assert str(bad) in str(caught.value) and reason in str(caught.value)
    assert isinstance(caught.value, GalleryError)  # the CLI's one-line error channel


def test_a_missing_query_file_says_so(library, encoder, tmp_path):
    with pytest.raises(QueryImageError, match="not found"):
        file_query(encoder, library, tmp_path / "nope.jpg")


def test_a_photo_removed_meanwhile_is_a_clear_error(library, encoder, indexed):
    with pytest.raises(QueryImageError, match="no longer in the library"):
        photo_query(library, 987654)


def test_an_empty_library_finds_nothing(library, encoder, make_images):
    (path,) = make_images(1, folder="outside")
    query = file_query(encoder, library, path)
    assert Searcher(library, encoder).search_image(query).rank(TEXT) == []
