"""The debug-scores report: constructed matrices at unit level, then the tiny model end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gallery_app.core.calibrate import Calibration, model_preset
from gallery_app.core.errors import GalleryError
from gallery_app.core.indexer import Indexer
from gallery_app.core.probes import (
    DEFAULT_PROBE_QUERIES,
    encode_files,
    probe_raw,
    sample_library,
)
from gallery_app.core.score_report import build_score_report, score_report

MODEL = model_preset(math.log(117.0), -12.9)
QUERIES = ("dog", "cat", "car")
PROMPTS = tuple(f"a photo of {q}." for q in QUERIES)
PATHS = ("/p/a.jpg", "/p/b.jpg", "/p/c.jpg", "/p/d.jpg")


def test_rows_summarize_each_query_and_each_photo():
    raw = np.array(
        [[0.20, 0.01, -0.02], [0.05, 0.15, 0.00], [0.02, 0.03, 0.18], [0.00, 0.02, 0.04]],
        np.float32,
    )
    calibration = Calibration("custom", 25.0, 0.1)
    report = score_report(raw, QUERIES, PROMPTS, PATHS, calibration)
    dog, cat, car = report.by_query
    assert (dog.best_path, cat.best_path, car.best_path) == ("/p/a.jpg", "/p/b.jpg", "/p/c.jpg")
    assert dog.best_raw == pytest.approx(0.20)
    assert dog.best_score == pytest.approx(float(calibration.score(0.20)))
    assert dog.raw.mean == pytest.approx(np.mean(raw[:, 0]))
    assert dog.score.max == pytest.approx(float(calibration.score(0.20)))
    assert [row.best_query for row in report.by_image] == ["dog", "cat", "car", "car"]
    assert report.by_image[3].raw.std == pytest.approx(np.std(raw[3]))
    assert report.diagnoses == ()


def test_json_shape_and_values():
    raw = np.linspace(0.0, 0.2, 12, dtype=np.float32).reshape(4, 3)
    data = score_report(raw, QUERIES, PROMPTS, PATHS, MODEL, [("/p/x.jpg", "corrupt")]).to_json()
    assert set(data) == {"preset", "temperature", "centre", "queries", "images", "diagnoses",
                         "failed"}  # fmt: skip
    assert [q["query"] for q in data["queries"]] == list(QUERIES)
    assert set(data["queries"][0]) == {"query", "prompt", "raw", "score", "best"}
    assert set(data["queries"][0]["raw"]) == {"min", "mean", "max", "std"}
    image = data["images"][2]
    assert image["path"] == "/p/c.jpg"
    assert image["raw_by_query"] == pytest.approx(raw[2].tolist())
    assert image["score_by_query"] == pytest.approx(MODEL.score(raw[2]).tolist())
    assert data["failed"] == [{"path": "/p/x.jpg", "reason": "corrupt"}]


def test_broken_pipeline_is_diagnosed_in_the_report():
    raw = -np.abs(np.random.default_rng(0).normal(0.05, 0.02, (4, 3))).astype(np.float32)
    report = score_report(raw, QUERIES, PROMPTS, PATHS, MODEL)
    assert [d.code for d in report.diagnoses] == ["all-negative"]
    assert report.to_json()["diagnoses"][0]["code"] == "all-negative"


def test_saturation_is_diagnosed_in_the_report():
    raw = np.random.default_rng(1).normal(0.1, 0.05, (4, 3)).astype(np.float32)
    report = score_report(raw, QUERIES, PROMPTS, PATHS, Calibration("custom", 50.0, 0.9))
    assert [d.code for d in report.diagnoses] == ["saturated-low"]


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError):
        score_report(np.zeros((2, 3)), QUERIES, PROMPTS, PATHS, MODEL)


# --- with the tiny model ------------------------------------------------------------------


def vectors_by_path(library) -> dict[str, np.ndarray]:
    ids, vectors = library.catalog.vectors()
    info = library.catalog.images(ids.tolist())
    return {info[int(i)].path: v for i, v in zip(ids, vectors, strict=True)}


def test_report_on_a_library_sample(library, encoder, make_images):
    paths = make_images(8)
    Indexer(library, encoder).index([paths[0].parent])
    report = build_score_report(encoder, library, DEFAULT_PROBE_QUERIES, MODEL, sample_size=5)
    assert report.raw.shape == (5, len(DEFAULT_PROBE_QUERIES))
    assert set(report.paths) <= {str(p) for p in paths}
    # The raw cosines are the real ones: recompute from the catalog's vectors.
    by_path = vectors_by_path(library)
    text = encoder.encode_texts(DEFAULT_PROBE_QUERIES)
    expected = np.stack([by_path[p] for p in report.paths]) @ text.T
    np.testing.assert_allclose(report.raw, expected, atol=1e-5)
    assert report.prompts[0] == encoder.prompt(DEFAULT_PROBE_QUERIES[0])


def test_sample_is_spread_and_repeatable(library, encoder, make_images):
    paths = make_images(10)
    Indexer(library, encoder).index([paths[0].parent])
    first = sample_library(library, 4)
    assert first.paths == sample_library(library, 4).paths
    assert len(set(first.paths)) == 4
    assert len(sample_library(library, None).paths) == 10


def test_report_on_image_files_encodes_them_as_the_indexer_does(library, encoder, make_images):
    paths = make_images(3)
    broken = paths[0].parent / "broken.jpg"
    broken.write_bytes(b"not an image")
    Indexer(library, encoder).index([paths[0].parent])
    report = build_score_report(encoder, None, ("dog",), MODEL, [*paths, broken])
    assert report.paths == tuple(str(p) for p in paths)
    assert [path for path, _ in report.failures] == [str(broken)]
    indexed = vectors_by_path(library)
    for row, path in enumerate(report.paths):
        expected = float(indexed[path] @ encoder.encode_texts(["dog"])[0])
        assert report.raw[row, 0] == pytest.approx(expected, abs=1e-5)


def test_nothing_to_score_is_a_clear_error(library, encoder, tmp_path: Path):
    with pytest.raises(GalleryError, match="gallery-app index"):
        build_score_report(encoder, library, ("dog",), MODEL)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"junk")
    with pytest.raises(GalleryError, match="could be read"):
        build_score_report(encoder, library, ("dog",), MODEL, [junk])


def test_probe_raw_shape(encoder, make_images):
    images = encode_files(encoder, make_images(2))
    assert probe_raw(encoder, ("a", "b", "c"), images).shape == (2, 3)


def test_encoding_in_batches_gives_the_same_vectors(encoder, make_images):
    paths = make_images(5)
    one_go = encode_files(encoder, paths, batch_size=8)
    in_pairs = encode_files(encoder, paths, batch_size=2)
    assert in_pairs.paths == one_go.paths == tuple(str(p) for p in paths)
    np.testing.assert_allclose(in_pairs.vectors, one_go.vectors, atol=1e-5)
