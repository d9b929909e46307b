"""Retrieval is exact: top-k and min-score over the whole library, on both paths."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import DIM, SeededEncoder, add_vectors, clustered, synthetic_library, unit

import gallery_app.core.search as search
from gallery_app.core.calibrate import Calibration
from gallery_app.core.expansion import Dictionary, Entry, Expander
from gallery_app.core.search import Searcher

CALIBRATIONS = [
    Calibration("custom", 10.0, 0.0),
    Calibration("custom", 117.0, 0.11),
    Calibration("custom", 40.0, -0.2),
]


@pytest.fixture
def library(isolated_dirs):
    lib = synthetic_library(isolated_dirs)
    yield lib
    lib.close()


def expander() -> Expander:
    entries = {
        "dog": Entry("dog", ("puppy", "hound"), (("pet", 0.6), ("animal", 0.4))),
        "beach": Entry("beach", ("seashore",)),
    }
    return Expander(Dictionary(entries), max_variants=8)


def key(results):
    return [(r.image_id, round(r.score, 12)) for r in results]


def brute_force(library, encoder, query, calibration, aggregate, broader, top_k, min_score):
    """Rank every photo from the catalog's own vectors, from the definitions."""
    searcher = Searcher(library, encoder, expander())
    variants = searcher.variants(query, broader=broader)
    text = encoder.encode_prompts([v.prompt for v in variants])
    ids, vectors = library.catalog.vectors()
    if aggregate == "ensemble":
        members = [i for i, v in enumerate(variants) if v.kind != "broader"]
        e = sum(variants[i].weight * text[i].astype(np.float64) for i in members)
        e = e / np.linalg.norm(e)
        columns = [e] + [text[i] for i, v in enumerate(variants) if v.kind == "broader"]
        weights = [1.0] + [v.weight for v in variants if v.kind == "broader"]
    else:
        columns, weights = list(text), [v.weight for v in variants]
    raw = vectors.astype(np.float64) @ np.array(columns, dtype=np.float64).T
    weighted = calibration.score(raw) * np.array(weights)
    score = weighted.max(axis=1)
    # Ties (a saturated sigmoid): the higher cosine among the best columns, then the lower id.
    raw_win = np.where(weighted == score[:, None], raw, -np.inf).max(axis=1)
    order = np.lexsort((ids, -np.round(raw_win, 6), -score))
    if min_score is not None:
        order = order[score[order] >= min_score]
    if top_k is not None:
        order = order[:top_k]
    return [(int(ids[i]), score[i]) for i in order]


def assert_same(results, expected):
    assert [r.image_id for r in results] == [i for i, _ in expected]
    np.testing.assert_allclose([r.score for r in results], [s for _, s in expected], atol=1e-6)


@pytest.mark.parametrize("aggregate", ["ensemble", "max"])
@pytest.mark.parametrize("broader", [False, True])
def test_top_k_is_the_exact_top_k_for_any_calibration(library, aggregate, broader):
    rng = np.random.default_rng(0)
    add_vectors(library, clustered(rng, 400))
    encoder = SeededEncoder()
    searcher = Searcher(library, encoder, expander())
    hits = searcher.search("dog on the beach", top_k=7, aggregate=aggregate, broader=broader)
    assert not hits.complete and len(hits.image_ids) < 400
    for calibration in CALIBRATIONS:  # the same hits, re-ranked: still the exact top 7
        expected = brute_force(
            library, encoder, "dog on the beach", calibration, aggregate, broader, 7, None
        )
        assert_same(hits.rank(calibration, top_k=7), expected)


def test_min_score_returns_every_photo_above_the_cut_uncapped(library):
    rng = np.random.default_rng(1)
    add_vectors(library, clustered(rng, 3000))
    encoder = SeededEncoder()
    hits = Searcher(library, encoder, expander()).search("dog", top_k=None)
    assert hits.complete and len(hits.image_ids) == 3000
    calibration = Calibration("custom", 30.0, 0.05)
    for cut in (0.2, 0.5, 0.9):
        expected = brute_force(library, encoder, "dog", calibration, "ensemble", False, None, cut)
        got = hits.rank(calibration, top_k=None, min_score=cut)
        assert len(got) > 20  # more than any default page
        assert_same(got, expected)
        assert_same(hits.rank(calibration, top_k=5, min_score=cut), expected[:5])


def test_graph_path_reranks_exactly_and_finds_every_copy(library, monkeypatch):
    """Beyond the exact-scan size: hnswlib candidates, re-ranked from the catalog's vectors,
    over a library grown in three runs with many identical photos."""
    monkeypatch.setattr(search, "EXACT_SCAN_MAX", 0)
    rng = np.random.default_rng(2)
    encoder = SeededEncoder()
    target = encoder.encode_prompts([encoder.prompt("cat")])[0]
    base = clustered(rng, 600)
    near = unit(target + 0.6 * unit(rng.normal(size=(5, DIM))))  # the best matches
    runs = [
        np.concatenate([base[:300], np.repeat(near[:1], 40, axis=0)]),
        np.concatenate([base[300:], np.repeat(near[1:2], 40, axis=0), near[2:]]),
        np.repeat(near[:2], 30, axis=0),
    ]
    start = 0
    for run, vectors in enumerate(runs):
        add_vectors(library, vectors, folder=f"/run{run}", start=start)
        start += len(vectors)
    assert library.index.node_count == 605  # every copy of a vector shares one node
    calibration = Calibration("custom", 50.0, 0.1)
    searcher = Searcher(library, encoder, expander())
    for top_k in (1, 10, 50, 150):
        hits = searcher.search("cat", top_k=top_k)
        expected = brute_force(library, encoder, "cat", calibration, "ensemble", False, top_k, None)
        assert_same(hits.rank(calibration, top_k=top_k), expected)


def test_an_empty_library_and_an_unknown_aggregate(library):
    searcher = Searcher(library, SeededEncoder(), expander())
    hits = searcher.search("dog on the beach")
    assert hits.rank(CALIBRATIONS[0]) == [] and [v.text for v in hits.members][:1] == [
        "dog on the beach"
    ]
    with pytest.raises(ValueError, match="aggregate"):
        searcher.search("dog", aggregate="mean")


def test_the_graph_is_searched_wider_as_the_library_grows(library, monkeypatch):
    """graph_ef: one per PHOTOS_PER_EF photos (400 at 1M); the search asks the index for
    MIN_CANDIDATES (or top_k) candidates searched at least that wide, and hnswlib's ef is the
    largest of its own, k and that."""
    assert search.graph_ef(1_000_000) == 400 and search.graph_ef(100_000) == 40
    monkeypatch.setattr(search, "EXACT_SCAN_MAX", 0)
    monkeypatch.setattr(search, "PHOTOS_PER_EF", 2)  # 600 photos: ef 300
    add_vectors(library, clustered(np.random.default_rng(4), 600))
    asked = []
    query = library.index.query

    def spy(vectors, k, ef=0):
        asked.append((k, ef))
        return query(vectors, k, ef=ef)

    monkeypatch.setattr(library.index, "query", spy)
    Searcher(library, SeededEncoder(), expander()).search("cat", top_k=10)
    assert asked == [(search.MIN_CANDIDATES, 300)]
    assert library.index._index.ef == 300  # hnswlib searched that wide
