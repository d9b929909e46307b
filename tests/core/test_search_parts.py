"""Queries of parts: each part its own ensemble search, combined exactly as probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_app.core.calibrate import Calibration, calibrated_score
from gallery_app.core.expansion import Dictionary, Entry, Expander
from gallery_app.core.indexer import Indexer
from gallery_app.core.search import CombinedHits, Searcher, SearchHits, prompt_variants

CALIBRATION = Calibration("custom", 30.0, 0.0)


@pytest.fixture
def indexed(library, encoder, make_images):
    paths = make_images(16)
    Indexer(library, encoder).index([paths[0].parent])
    return paths


def small_expander() -> Expander:
    entries = {
        "dog": Entry("dog", ("puppy",), (("pet", 0.5),)),
        "beach": Entry("beach", ("seashore",)),
        "salt and pepper": Entry("salt and pepper", ()),
    }
    return Expander(Dictionary(entries), max_variants=8)


def brute_force(library, encoder, expander, parts, calibration):
    """Every photo's combined score computed from scratch: catalog vectors, each part's
    variants encoded, its ensemble e = normalize(sum w t), P = sigmoid(T (cos - c))."""
    ids, vectors = library.catalog.vectors()
    combined = np.ones(len(ids))
    per_part = []
    for text, kind in parts:
        variants = prompt_variants(encoder, text, expander)
        unit = encoder.encode_prompts([v.prompt for v in variants]).astype(np.float64)
        e = (np.array([v.weight for v in variants])[:, None] * unit).sum(axis=0)
        e /= np.linalg.norm(e)
        p = calibrated_score(vectors @ e, calibration.temperature, calibration.centre)
        per_part.append(p)
        combined *= (1 - p) if kind == "not" else p
    return ids, combined, np.stack(per_part, axis=1)


@pytest.mark.parametrize(
    ("query", "parts"),
    [
        ("dog on the beach -people", [("dog on the beach", "and"), ("people", "not")]),
        ("beach and dog", [("beach", "and"), ("dog", "and")]),
        ("beach and dog, not cat", [("beach", "and"), ("dog", "and"), ("cat", "not")]),
    ],
)
def test_combined_score_is_exact_for_every_photo(library, encoder, indexed, query, parts):
    expander = small_expander()
    hits = Searcher(library, encoder, expander).search_query(query, top_k=3)
    assert isinstance(hits, CombinedHits)
    assert [(p.text, p.kind) for p in hits.parts] == parts
    ids, combined, per_part = brute_force(library, encoder, expander, parts, CALIBRATION)
    expected = dict(zip(ids.tolist(), combined.tolist(), strict=True))
    results = hits.rank(CALIBRATION, top_k=None)
    assert len(results) == len(ids) == 16  # every photo, whatever top_k the search was given
    for result in results:
        assert result.score == pytest.approx(expected[result.image_id], rel=1e-5, abs=1e-9)
        row = ids.tolist().index(result.image_id)
        assert [(p.text, p.kind) for p in result.parts] == parts
        assert [p.score for p in result.parts] == pytest.approx(per_part[row], rel=1e-5)
        # The product of the parts as listed is the score shown.
        product = np.prod([1 - p.score if p.kind == "not" else p.score for p in result.parts])
        assert result.score == pytest.approx(product, rel=1e-12)
    # Ranked by the combined score: the top 3 are the brute force's top 3.
    top = [r.image_id for r in hits.rank(CALIBRATION, top_k=3)]
    assert top == [int(ids[i]) for i in np.argsort(-combined, kind="stable")[:3]]
    # --min-score cuts on the combined score, and loses no photo above it.
    cut = float(np.median(combined))
    kept = {r.image_id for r in hits.rank(CALIBRATION, top_k=None, min_score=cut)}
    assert kept == {int(i) for i, s in zip(ids, combined, strict=True) if s >= cut}


def test_not_is_one_minus_p_not_a_cosine_difference(library, encoder, indexed):
    searcher = Searcher(library, encoder, small_expander())
    beach = searcher.search("beach", top_k=None).rank(CALIBRATION, top_k=None)
    people = searcher.search("people", top_k=None).rank(CALIBRATION, top_k=None)
    p_beach = {r.image_id: r.score for r in beach}
    p_people = {r.image_id: r.score for r in people}
    raw_people = {r.image_id: r.raw for r in people}
    for result in searcher.search_query("beach -people").rank(CALIBRATION, top_k=None):
        expected = p_beach[result.image_id] * (1 - p_people[result.image_id])
        assert result.score == pytest.approx(expected, rel=1e-6)
        assert result.parts[1].raw == pytest.approx(raw_people[result.image_id], abs=1e-6)


def test_a_plain_query_is_exactly_the_search_of_today(library, encoder, indexed):
    searcher = Searcher(library, encoder, small_expander())
    for query in ("dog on the beach", "salt and pepper", "a dog, a cat"):
        plain = searcher.search(query, top_k=5)
        parsed = searcher.search_query(query, top_k=5)
        assert isinstance(parsed, SearchHits)
        assert parsed.variants == plain.variants and parsed.members == plain.members
        np.testing.assert_array_equal(parsed.raw, plain.raw)
        assert parsed.rank(CALIBRATION) == plain.rank(CALIBRATION)


def test_the_cli_style_exclude_adds_not_parts(library, encoder, indexed):
    searcher = Searcher(library, encoder, small_expander())
    inline = searcher.search_query("beach -people -cars")
    listed = searcher.search_query("beach", exclude=["people", " cars "])
    assert [(p.text, p.kind) for p in listed.parts] == [(p.text, p.kind) for p in inline.parts]
    assert listed.rank(CALIBRATION, top_k=None) == inline.rank(CALIBRATION, top_k=None)


def test_each_part_is_its_own_expanded_ensemble(library, encoder, indexed):
    hits = Searcher(library, encoder, small_expander()).search_query("dog and beach")
    assert isinstance(hits, CombinedHits)
    dog, beach = hits.part_hits
    assert [v.text for v in dog.members] == ["dog", "puppy"]
    assert [v.text for v in beach.members] == ["beach", "seashore"]
    # What a panel lists is the first part's variants.
    assert hits.listed == dog.listed


def test_progressive_parts_show_the_words_as_typed_first(library, encoder, indexed):
    searcher = Searcher(library, encoder, small_expander())
    steps = list(searcher.search_steps("dog -beach", progressive=True))
    assert [final for _, final in steps] == [False, True]
    first, last = steps[0][0], steps[1][0]
    assert [len(h.listed) for h in first.part_hits] == [1, 1]
    assert [len(h.listed) for h in last.part_hits] == [2, 2]
    # Cached now: one step, final.
    again = list(searcher.search_steps("dog -beach", progressive=True))
    assert [final for _, final in again] == [True]


def test_an_empty_library_has_no_results(library, encoder):
    hits = Searcher(library, encoder, small_expander()).search_query("beach -people")
    assert hits.rank(CALIBRATION, top_k=None) == []


def test_a_tag_counts_in_its_own_part_as_in_a_search_of_that_part_alone(library, encoder, indexed):
    """A part's P is its hybrid score: a photo tagged "people" is pushed out of "beach
    -people", one tagged "dog" up in "beach and dog", by exactly the one-part boost."""
    expander = small_expander()
    ids, _ = library.catalog.vectors()
    tagged_people, tagged_dog = int(ids[3]), int(ids[7])
    library.catalog.edit_tags([tagged_people], add=["people"])
    library.catalog.edit_tags([tagged_dog], add=["dog"])
    searcher = Searcher(library, encoder, expander)

    _, _, visual = brute_force(library, encoder, expander, [("beach", "and"), ("people", "not")],
                               CALIBRATION)  # fmt: skip
    row = ids.tolist().index(tagged_people)
    results = {
        r.image_id: r for r in searcher.search_query("beach -people").rank(CALIBRATION, None)
    }
    people = results[tagged_people].parts[1]
    assert people.visual == pytest.approx(visual[row, 1], rel=1e-5)
    assert people.boost == pytest.approx(0.9) and "people" in people.boost_reason
    assert people.score == pytest.approx(visual[row, 1] + (1 - visual[row, 1]) * 0.9, rel=1e-6)
    assert results[tagged_people].score == pytest.approx(visual[row, 0] * (1 - people.score))
    assert results[tagged_people].score <= 0.1 * visual[row, 0] + 1e-12
    # The same P as the part searched alone (which has applied tags since issue 13).
    alone = {
        r.image_id: r.score for r in searcher.search("people", top_k=None).rank(CALIBRATION, None)
    }
    assert people.score == pytest.approx(alone[tagged_people], rel=1e-9)
    for image_id, result in results.items():  # an untagged photo's P is its visual score
        if image_id != tagged_people:
            assert result.parts[1].boost == 0 and result.parts[1].score == result.parts[1].visual

    hits = searcher.search_query("beach and dog", top_k=3)
    dog = {r.image_id: r for r in hits.rank(CALIBRATION, None)}[tagged_dog].parts[1]
    assert dog.boost == pytest.approx(0.9) and dog.score >= 0.9
