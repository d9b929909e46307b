"""Search: expansion, cached text vectors, exact cosines, calibration, aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_app.core.calibrate import Calibration, model_preset, seed_preset
from gallery_app.core.expansion import Dictionary, Entry, Expander
from gallery_app.core.indexer import Indexer
from gallery_app.core.search import PromptVariant, Searcher, SearchHits

pytestmark = pytest.mark.usefixtures("library_backend")


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
    hits = Searcher(library, encoder, small_expander()).search(
        "dog on the beach", top_k=None, aggregate="max"
    )
    assert len(hits.image_ids) == 12
    text = encoder.encode_prompts([v.prompt for v in hits.variants])
    images = library.catalog.vectors(ids=hits.image_ids.tolist())
    by_id = dict(zip(images[0].tolist(), images[1], strict=True))
    expected = np.stack([by_id[i] for i in hits.image_ids.tolist()]) @ text.T
    np.testing.assert_allclose(hits.raw, expected, atol=1e-5)


def test_aggregation_is_max_of_weight_times_score(library, encoder, indexed):
    hits = Searcher(library, encoder, small_expander()).search(
        "dog on the beach", top_k=None, aggregate="max", broader=True
    )
    assert any(v.kind == "broader" for v in hits.variants)  # "pet" at weight 0.5
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


def by_id(library, ids):
    found, vectors = library.catalog.vectors(ids=list(ids))
    rows = dict(zip(found.tolist(), vectors, strict=True))
    return np.stack([rows[i] for i in ids])


def test_ensemble_raw_is_the_cosine_with_the_normalized_weighted_sum(library, encoder, indexed):
    hits = Searcher(library, encoder, small_expander()).search("dog on the beach", top_k=None)
    assert hits.aggregate == "ensemble" and len(hits.image_ids) == 12
    assert [v.kind for v in hits.variants] == ["ensemble"]
    assert [v.text for v in hits.members] == [
        "dog on the beach",
        "puppy on the beach",
        "dog on the seashore",
    ]
    assert all(v.kind != "broader" for v in hits.members)  # "pet" is not a synonym
    text = encoder.encode_prompts([v.prompt for v in hits.members])
    weights = np.array([v.weight for v in hits.members])[:, None]
    e = (weights * text).sum(axis=0)
    e /= np.linalg.norm(e)
    images = by_id(library, hits.image_ids.tolist())
    np.testing.assert_allclose(hits.raw[:, 0], images @ e, atol=1e-5)
    calibration = Calibration("custom", 30.0, 0.02)
    for result in hits.rank(calibration, top_k=None):
        row = hits.image_ids.tolist().index(result.image_id)
        assert result.raw == pytest.approx(float(images[row] @ e), abs=1e-5)
        assert result.score == float(calibration.score(np.float32(result.raw)))
        assert (result.variant, result.prompt, result.weight) == ("ensemble", None, 1.0)


def test_variant_cosines_are_each_variants_own(library, encoder, indexed):
    hits = Searcher(library, encoder, small_expander()).search(
        "dog on the beach", top_k=5, broader=True
    )
    assert [v.text for v in hits.listed][-1] == "pet on the beach"
    results = hits.rank(Calibration("custom", 30.0, 0.0), top_k=5)
    own = hits.variant_cosines([r.position for r in results])
    assert own.shape == (5, len(hits.listed))
    text = encoder.encode_prompts([v.prompt for v in hits.listed])
    np.testing.assert_allclose(
        own, by_id(library, [r.image_id for r in results]) @ text.T, atol=1e-5
    )


def test_broader_terms_are_their_own_columns_never_part_of_e(library, encoder, indexed):
    searcher = Searcher(library, encoder, small_expander())
    plain = searcher.search("dog", top_k=None)
    wider = searcher.search("dog", top_k=None, broader=True)
    assert [v.text for v in plain.listed] == ["dog", "puppy"]
    assert [v.text for v in wider.members] == ["dog", "puppy"]
    assert [(v.text, v.weight, v.kind) for v in wider.variants[1:]] == [("pet", 0.5, "broader")]
    np.testing.assert_allclose(wider.raw[:, 0], plain.raw[:, 0], atol=1e-7)  # same e
    calibration = Calibration("custom", 30.0, 0.0)
    base = {r.image_id: r.score for r in plain.rank(calibration, top_k=None)}
    for result in wider.rank(calibration, top_k=None):
        # An OR: only ever higher (up to float32 noise between a 1- and a 2-column product).
        assert result.score >= base[result.image_id] - 1e-6
    assert searcher.variants("dog") == plain.members


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


# Progressive search and the dictionary precompute ---------------------------------------------


def same_hits(a: SearchHits, b: SearchHits) -> bool:
    return (
        a.variants == b.variants
        and a.paths == b.paths
        and np.array_equal(a.image_ids, b.image_ids)
        and np.allclose(a.raw, b.raw, atol=1e-6)
    )


def test_progressive_shows_the_query_first_then_the_expansion(library, encoder, indexed):
    counting = CountingEncoder(encoder)
    searcher = Searcher(library, counting, small_expander())
    stages = list(searcher.search_progressive("dog on the beach", top_k=None))
    assert len(stages) == 2
    assert [len(call) for call in counting.calls] == [1, len(stages[1].listed) - 1]
    reference = Searcher(library, encoder, small_expander())
    assert same_hits(stages[0], reference.search("dog on the beach", top_k=None, expand=False))
    assert same_hits(stages[1], reference.search("dog on the beach", top_k=None))


def test_progressive_with_everything_cached_gives_one_final_answer(library, encoder, indexed):
    searcher = Searcher(library, encoder, small_expander())
    expanded = searcher.search("dog on the beach")
    stages = list(
        Searcher(library, encoder, small_expander()).search_progressive("dog on the beach")
    )
    assert len(stages) == 1
    assert same_hits(stages[0], expanded)


def test_progressive_without_expansion_is_one_plain_search(library, encoder, indexed):
    searcher = Searcher(library, encoder, small_expander())
    stages = list(searcher.search_progressive("dog", expand=False))
    assert len(stages) == 1 and [v.text for v in stages[0].variants] == ["dog"]


def test_dictionary_prompts_cover_every_member_singular_and_plural(library, encoder):
    searcher = Searcher(library, encoder, small_expander())
    prompts = set(searcher.dictionary_prompts())
    for word in ("dog", "puppy", "pet", "dogs", "puppies", "pets", "beach", "seashores"):
        assert encoder.prompt(word) in prompts
    for query in ("dog", "puppies", "seashore"):
        assert {v.prompt for v in searcher.variants(query)} <= prompts


def test_precompute_fills_the_store_so_dictionary_queries_need_no_model(library, encoder, indexed):
    counting = CountingEncoder(encoder)
    seen: list = []
    searcher = Searcher(library, counting, small_expander())
    encoded = searcher.precompute_dictionary(progress=seen.append, batch_size=3)
    total = len(searcher.dictionary_prompts())
    assert encoded == total
    assert all(len(call) <= 3 for call in counting.calls)
    assert sum(len(call) for call in counting.calls) == total
    assert seen[0].done == 0 and seen[-1].done == seen[-1].total == total

    fresh = CountingEncoder(encoder)  # a new session: only the persistent store is warm
    later = Searcher(library, fresh, small_expander())
    later.search("puppies")
    later.search("beach")
    assert fresh.calls == []
    assert later.precompute_dictionary() == 0 and fresh.calls == []  # once per model
    # A phrase is not in the dictionary: only its prompts not stored yet reach the model.
    later.search("dog on the beach")
    uncached = [v.prompt for v in later.variants("dog on the beach") if " on the " in v.prompt]
    assert fresh.calls == [uncached]
    np.testing.assert_allclose(
        later.text_vectors([encoder.prompt("puppy")]),
        encoder.encode_prompts([encoder.prompt("puppy")]),
        atol=1e-6,
    )


def test_precompute_stops_when_cancelled_and_resumes(library, encoder):
    from gallery_app.core.indexer import CancelToken

    counting = CountingEncoder(encoder)
    searcher = Searcher(library, counting, small_expander())
    cancel = CancelToken()

    def stop_after_first_batch(progress) -> None:
        if progress.done > 0:
            cancel.cancel()

    first = searcher.precompute_dictionary(stop_after_first_batch, cancel, batch_size=2)
    assert first == 2 and len(counting.calls) == 1
    rest = searcher.precompute_dictionary(batch_size=2)
    assert first + rest == len(searcher.dictionary_prompts())


def test_precompute_lets_a_waiting_search_go_first(library, encoder, indexed):
    import threading

    class GatedEncoder(CountingEncoder):
        """The first call (the search) blocks until released; no lock, unlike the real one."""

        def __init__(self, inner) -> None:
            super().__init__(inner)
            self.entered = threading.Event()
            self.release = threading.Event()

        def encode_prompts(self, prompts):
            if not self.calls:
                self.calls.append(list(prompts))
                self.entered.set()
                assert self.release.wait(10)
                return self.inner.encode_prompts(prompts)
            return super().encode_prompts(prompts)

    gated = GatedEncoder(encoder)
    searcher = Searcher(library, gated, small_expander())
    search = threading.Thread(target=searcher.search, args=("kitchen table",))
    search.start()
    assert gated.entered.wait(10)
    precompute = threading.Thread(target=searcher.precompute_dictionary)
    precompute.start()
    precompute.join(0.3)
    assert len(gated.calls) == 1  # the precompute waits while the search encodes
    gated.release.set()
    search.join(10)
    precompute.join(10)
    assert not precompute.is_alive() and len(gated.calls) > 1
