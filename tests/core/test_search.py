"""Search: expansion, cached text vectors, exact cosines, calibration, aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_app.core.calibrate import Calibration, model_preset, seed_preset
from gallery_app.core.expansion import Dictionary, Entry, Expander
from gallery_app.core.indexer import Indexer
from gallery_app.core.search import PromptVariant, Searcher, SearchHits


class CountingEncoder:
    """Wraps the real encoder and counts text forwards."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.prompt = inner.prompt
        self.calls: list[list[str]] = []

    def encode_prompts(self, prompts):
        self.calls.append(list(prompts))
        return self.inner.encode_prompts(prompts)


@pytest.fixture
def indexed(library, encoder, make_images):
    paths = make_images(12)
    Indexer(library, encoder).index([paths[0].parent])
    return paths


def small_expander() -> Expander:
    entries = {
        "dog": Entry("dog", ("puppy",), (("pet", 0.5),)),
        "beach": Entry("beach", ("seashore",)),
    }
    return Expander(Dictionary(entries), max_variants=8)


def test_raw_scores_are_exact_cosines(library, encoder, indexed):
    hits = Searcher(library, encoder, small_expander()).search("dog on the beach", top_k=None)
    assert len(hits.image_ids) == 12
    text = encoder.encode_prompts([v.prompt for v in hits.variants])
    images = library.catalog.vectors(ids=hits.image_ids.tolist())
    by_id = dict(zip(images[0].tolist(), images[1], strict=True))
    expected = np.stack([by_id[i] for i in hits.image_ids.tolist()]) @ text.T
    np.testing.assert_allclose(hits.raw, expected, atol=1e-5)


def test_aggregation_is_max_of_weight_times_score(library, encoder, indexed):
    hits = Searcher(library, encoder, small_expander()).search("dog on the beach", top_k=None)
    calibration = Calibration("custom", 30.0, 0.0)
    results = hits.rank(calibration, top_k=None)
    weights = np.array([v.weight for v in hits.variants])
    weighted = calibration.score(hits.raw) * weights
    for result in results:
        row = list(hits.image_ids).index(result.image_id)
        assert result.score == pytest.approx(weighted[row].max())
        winner = hits.variants[int(weighted[row].argmax())]
        assert (result.variant, result.prompt, result.weight) == (
            winner.text,
            winner.prompt,
            winner.weight,
        )
        assert result.raw == pytest.approx(hits.raw[row, int(weighted[row].argmax())])
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)


def test_rank_is_pure_and_recalibrates_without_the_model(library, encoder, indexed):
    counting = CountingEncoder(encoder)
    searcher = Searcher(library, counting, small_expander())
    hits = searcher.search("dog", top_k=None)
    assert len(counting.calls) == 1
    hot = hits.rank(Calibration("custom", 5.0, 0.0), top_k=None)
    cold = hits.rank(Calibration("custom", 80.0, 0.0), top_k=None)
    assert len(counting.calls) == 1  # re-ranking never touches the encoder
    assert {r.image_id for r in hot} == {r.image_id for r in cold}
    assert [r.score for r in hot] != [r.score for r in cold]


def test_top_k_and_min_score(library, encoder, indexed):
    hits = Searcher(library, encoder).search("cat", top_k=None)
    calibration = seed_preset()
    assert len(hits.rank(calibration, top_k=3)) == 3
    everything = hits.rank(calibration, top_k=None)
    cut = everything[len(everything) // 2].score
    kept = hits.rank(calibration, top_k=None, min_score=cut)
    assert kept and all(r.score >= cut for r in kept)
    assert len(kept) < len(everything)


def test_text_vectors_are_cached_in_memory_and_on_disk(library, encoder, indexed):
    first = CountingEncoder(encoder)
    searcher = Searcher(library, first, small_expander())
    searcher.search("dog on the beach")
    searcher.search("dog on the beach")
    assert len(first.calls) == 1  # all variants encoded in one batch, once
    assert len(first.calls[0]) == len(searcher.variants("dog on the beach"))

    second = CountingEncoder(encoder)  # a new session: memory cache empty, disk cache warm
    Searcher(library, second, small_expander()).search("dog on the beach")
    assert second.calls == []
    # a query sharing variants with a cached one only encodes the prompts not seen yet
    Searcher(library, second, small_expander()).search("dog on the seashore")
    seen = {v.prompt for v in searcher.variants("dog on the beach")}
    fresh = [v.prompt for v in searcher.variants("dog on the seashore") if v.prompt not in seen]
    assert fresh and len(fresh) < len(searcher.variants("dog on the seashore"))
    assert second.calls == [fresh]


def test_cached_vectors_equal_fresh_ones(library, encoder, indexed):
    searcher = Searcher(library, encoder)
    prompts = [encoder.prompt("red car"), encoder.prompt("snow")]
    cached = Searcher(library, encoder).text_vectors(prompts)
    again = searcher.text_vectors(prompts)
    np.testing.assert_allclose(cached, again, atol=1e-6)
    np.testing.assert_allclose(cached, encoder.encode_prompts(prompts), atol=1e-6)


def test_no_expand_uses_query_only(library, encoder, indexed):
    hits = Searcher(library, encoder, small_expander()).search("Dog  On the beach", expand=False)
    assert [v.text for v in hits.variants] == ["dog on the beach"]
    assert hits.variants[0].prompt == "a photo of dog on the beach."


def test_empty_library_returns_no_results(library, encoder):
    hits = Searcher(library, encoder).search("dog")
    assert hits.rank(model_preset(encoder.logit_scale, encoder.logit_bias)) == []


def test_removed_image_never_appears(library, encoder, indexed):
    indexed[0].unlink()
    Indexer(library, encoder).index([indexed[0].parent])
    hits = Searcher(library, encoder).search("dog", top_k=None)
    assert str(indexed[0]) not in hits.paths
    assert len(hits.paths) == 11


def test_rank_handles_empty_hits():
    hits = SearchHits(
        "q",
        (PromptVariant("q", "a photo of q.", 1.0),),
        np.zeros(0, np.int64),
        (),
        np.zeros((0, 1)),
    )
    assert hits.rank(seed_preset()) == []
