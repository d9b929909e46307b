"""The hybrid score: metadata that matches the query lifts a photo, exactly and boundedly."""

from __future__ import annotations

import numpy as np
import pytest
from photos import random_photo
from PIL import Image
from synthetic import SeededEncoder, add_vectors, clustered, synthetic_library

from gallery_app.core.calibrate import Calibration, model_preset
from gallery_app.core.catalog import ImageRecord
from gallery_app.core.expansion import Dictionary, Entry, Expander
from gallery_app.core.indexer import Indexer
from gallery_app.core.metadata import FILE, NAME, SOURCE_BOOST, USER, combined_boost
from gallery_app.core.search import Searcher

CALIBRATIONS = [Calibration("custom", 10.0, 0.0), Calibration("custom", 117.0, 0.11)]
GENTLE = Calibration("custom", 3.0, 0.2)  # visual scores between 0.2 and 0.65: none saturates


@pytest.fixture
def synthetic(isolated_dirs):
    lib = synthetic_library(isolated_dirs)
    yield lib
    lib.close()


def expander() -> Expander:
    return Expander(Dictionary({"beach": Entry("beach", ("seashore",))}), max_variants=8)


class CountingEncoder(SeededEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def encode_prompts(self, prompts):
        self.calls += 1
        return super().encode_prompts(prompts)


def _visual_ranks(library, encoder, query, calibration):
    """Every photo's visual (ensemble) score from the catalog's vectors, from the definition."""
    searcher = Searcher(library, encoder, expander())
    variants = searcher.variants(query)
    text = encoder.encode_prompts([v.prompt for v in variants]).astype(np.float64)
    e = text.sum(axis=0)
    e /= np.linalg.norm(e)
    ids, vectors = library.catalog.vectors()
    raw = vectors.astype(np.float64) @ e
    return ids, raw, calibration.score(raw)


def _tag_fixture(library):
    """400 photos; a few carry "beach" (or its synonym) in different fields."""
    rng = np.random.default_rng(3)
    ids = add_vectors(library, clustered(rng, 400))
    catalog = library.catalog
    expected: dict[int, float] = {}
    user_tag, described, both = ids[10], ids[20], ids[30]
    catalog.edit_tags([user_tag], add=["Beach"])
    catalog.set_description([described], "Anna on the seashore at dawn")  # the synonym
    catalog.edit_tags([both], add=["beaches"])  # plural
    # A photo whose file says "beach" (keywords, re-written as the indexer writes them), and
    # one in a folder named for it.
    folder_id = catalog.add_folder("/photos").id
    _, (keyword_id,) = catalog.write_batch(
        [
            ImageRecord(
                "/photos/img_00040.jpg", folder_id, 1, 1,
                vector=catalog.vectors([ids[40]])[1][0], file_keywords=("Strand", "BEACH"),
            )
        ]
    )  # fmt: skip
    _, name_ids = catalog.write_batch(
        [
            ImageRecord("/photos/Beach Trip/IMG_0001.jpg", folder_id, 1, 1, vector=vec)
            for vec in catalog.vectors([ids[50]])[1]
        ]
    )
    library.index.add(name_ids, catalog.vectors(name_ids)[1])
    expected[user_tag] = combined_boost([USER])
    expected[described] = combined_boost([USER])
    expected[both] = combined_boost([USER])
    expected[keyword_id] = combined_boost([FILE])
    expected[name_ids[0]] = combined_boost([NAME])
    return expected


@pytest.mark.parametrize("calibration", CALIBRATIONS)
def test_hybrid_ranking_is_exact_against_brute_force(synthetic, calibration):
    expected_boost = _tag_fixture(synthetic)
    encoder = SeededEncoder()
    ids, raw, visual = _visual_ranks(synthetic, encoder, "beach", calibration)
    boost = np.array([expected_boost.get(int(i), 0.0) for i in ids])
    score = visual + (1 - visual) * boost
    searcher = Searcher(synthetic, encoder, expander())
    for top_k in (1, 3, 7):
        hits = searcher.search("beach", top_k=top_k)
        assert not hits.complete
        results = hits.rank(calibration, top_k=top_k)
        # Ties (a saturated sigmoid): the higher cosine, then the lower id, as rank does.
        order = np.lexsort((ids, -np.round(raw, 6), -score))[:top_k]
        assert [r.image_id for r in results] == [int(ids[i]) for i in order]
        for r in results:
            assert r.score == pytest.approx(r.visual + (1 - r.visual) * r.boost, abs=1e-12)
            assert r.boost == pytest.approx(expected_boost.get(r.image_id, 0.0))
    # min_score: every photo above the cut, boosted or not.
    cut = float(np.sort(score)[-12])
    results = searcher.search("beach", top_k=None).rank(calibration, top_k=None, min_score=cut)
    assert sorted(r.image_id for r in results) == sorted(int(i) for i in ids[score >= cut])


def test_boosted_photos_far_down_the_visual_ranking_surface(synthetic):
    expected_boost = _tag_fixture(synthetic)
    encoder = SeededEncoder()
    calibration = GENTLE
    ids, _, visual = _visual_ranks(synthetic, encoder, "beach", calibration)
    by_visual = [int(i) for i in ids[np.argsort(-visual)]]
    worst = by_visual[-1]
    synthetic.catalog.edit_tags([worst], add=["beach"])
    user_tagged = {i for i, b in expected_boost.items() if b == SOURCE_BOOST[USER]} | {worst}
    assert min(by_visual.index(i) for i in user_tagged) > 5  # none is visually near the top
    results = (
        Searcher(synthetic, encoder, expander()).search("beach", top_k=4).rank(calibration, top_k=4)
    )
    assert {r.image_id for r in results} == user_tagged
    assert results[-1].image_id == worst
    reasons = {r.boost_reason for r in results}
    assert "your tag “Beach”" in reasons
    assert "your description (synonym “seashore”)" in reasons


def test_names_and_keywords_match_with_their_sources(synthetic):
    _tag_fixture(synthetic)
    hits = Searcher(synthetic, SeededEncoder(), expander()).search("beach", top_k=None)
    results = hits.rank(CALIBRATIONS[0], top_k=None)
    reasons = [r.boost_reason for r in results if r.boost > 0]
    assert "the file's keyword “BEACH”" in reasons
    assert "folder name “Beach Trip”" in reasons
    unboosted = [r for r in results if r.boost == 0]
    assert all(r.score == r.visual and r.boost_reason == "" for r in unboosted)


def test_broader_terms_never_boost(synthetic):
    rng = np.random.default_rng(1)
    ids = add_vectors(synthetic, clustered(rng, 30))
    synthetic.catalog.edit_tags([ids[0]], add=["pet"])
    dictionary = Dictionary({"dog": Entry("dog", ("puppy",), (("pet", 0.5),))})
    searcher = Searcher(synthetic, SeededEncoder(), Expander(dictionary))
    results = searcher.search("dog", top_k=None, broader=True).rank(CALIBRATIONS[0], top_k=None)
    assert all(r.boost == 0 for r in results)


def test_recalibrating_never_calls_the_encoder_and_keeps_the_boost(synthetic):
    _tag_fixture(synthetic)
    encoder = CountingEncoder()
    hits = Searcher(synthetic, encoder, expander()).search("beach", top_k=10)
    calls = encoder.calls
    for temperature in (5.0, 30.0, 200.0):
        results = hits.rank(Calibration("custom", temperature, 0.05), top_k=10)
        for r in results:
            assert r.score == pytest.approx(r.visual + (1 - r.visual) * r.boost, abs=1e-12)
    assert encoder.calls == calls


def test_a_tag_edit_is_seen_by_the_next_search(synthetic):
    rng = np.random.default_rng(2)
    ids = add_vectors(synthetic, clustered(rng, 50))
    searcher = Searcher(synthetic, SeededEncoder(), expander())
    before = searcher.search("zebra", top_k=None).rank(CALIBRATIONS[0], top_k=None)
    assert all(r.boost == 0 for r in before)
    synthetic.catalog.edit_tags([ids[7]], add=["Zebra"])
    after = searcher.search("zebra", top_k=1).rank(GENTLE, top_k=1)
    assert after[0].image_id == ids[7] and after[0].boost == SOURCE_BOOST[USER]
    synthetic.catalog.edit_tags([ids[7]], remove=["zebra"])
    again = searcher.search("zebra", top_k=None).rank(CALIBRATIONS[0], top_k=None)
    assert all(r.boost == 0 for r in again)


def test_whole_words_only_and_accents_folded(synthetic):
    rng = np.random.default_rng(4)
    ids = add_vectors(synthetic, clustered(rng, 20))
    synthetic.catalog.edit_tags([ids[0]], add=["Café de Flore"])
    synthetic.catalog.edit_tags([ids[1]], add=["cafeteria"])
    results = Searcher(synthetic, SeededEncoder(), None).search("cafe", top_k=None)
    boosted = {r.image_id for r in results.rank(CALIBRATIONS[0], top_k=None) if r.boost}
    assert boosted == {ids[0]}


# --- On the tiny SigLIP, through the real indexer -------------------------------------------


def test_a_tagged_photo_ranks_first_for_a_word_its_pixels_do_not_show(encoder, library, tmp_path):
    folder = tmp_path / "photos"
    (folder / "Zanzibar 2019").mkdir(parents=True)
    for n in range(12):
        Image.fromarray(random_photo(n)).save(folder / f"img_{n:04d}.png")
    Image.fromarray(random_photo(99)).save(folder / "Zanzibar 2019" / "IMG_0001.png")
    Indexer(library, encoder).index([folder])
    searcher = Searcher(library, encoder)
    calibration = model_preset(encoder.logit_scale, encoder.logit_bias)  # the default
    plain = searcher.search("zebra", top_k=None).rank(calibration, top_k=None)
    target = next(r for r in plain if r.path.endswith("img_0007.png"))
    assert plain[0].image_id != target.image_id  # the pixels alone do not put it first
    # ...and no photo's pixels show a zebra with the confidence a tag of yours carries.
    assert max(r.score for r in plain) < SOURCE_BOOST[USER]
    library.catalog.edit_tags([target.image_id], add=["zebra"])
    first = searcher.search("zebra", top_k=3).rank(calibration, top_k=3)[0]
    assert first.image_id == target.image_id
    assert first.boost_reason == "your tag “zebra”"
    # The folder's words lift the photo in that folder, by the weakest boost.
    ranked = searcher.search("zanzibar", top_k=None).rank(calibration, top_k=None)
    boosted = [r for r in ranked if r.boost > 0]
    assert [r.path.endswith("IMG_0001.png") for r in boosted] == [True]
    assert boosted[0].boost == SOURCE_BOOST[NAME]
    assert boosted[0].boost_reason == "folder name “Zanzibar 2019”"


def test_indexed_file_keywords_boost(encoder, library, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
        b"<rdf:li>Lighthouse</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF>"
        b"</x:xmpmeta>"
    )
    for n in range(8):
        Image.fromarray(random_photo(n)).save(folder / f"p{n}.jpg", xmp=xmp if n == 5 else b"")
    Indexer(library, encoder).index([folder])
    (image_id,) = library.catalog.ids_for_paths([str(folder / "p5.jpg")]).values()
    assert library.catalog.metadata([image_id])[image_id].file_tags == ("Lighthouse",)
    first = (
        Searcher(library, encoder)
        .search("lighthouses", top_k=1)
        .rank(model_preset(encoder.logit_scale, encoder.logit_bias), top_k=1)[0]
    )
    assert first.image_id == image_id and first.boost == SOURCE_BOOST[FILE]
