"""Query language: detection precision, and what a search does with another language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_model import build_tiny_siglip2

from gallery_app.core.embeddings import SiglipEncoder
from gallery_app.core.expansion import Expander, load_dictionary
from gallery_app.core.indexer import Indexer
from gallery_app.core.language import (
    MULTILINGUAL_SUGGESTION,
    decide,
    detect_language,
    is_multilingual,
)
from gallery_app.core.library import Library
from gallery_app.core.search import Searcher

ENGLISH_QUERIES = [
    "café",
    "naïve",
    "jalapeño",
    "déjà vu",
    "a dog on the beach",
    "children playing in the park",
    "red car in the street at night",
    "birthday cake with candles",
    "sunset over the sea",
    "snow on the mountain",
    "people at a wedding",
    "jalapeño poppers on a plate",
    "a naïve painting",
    "latte art in a café",
    "crème brûlée",
    "piñata at a party",
    "the façade of a church",
    "los angeles at night",
    "las vegas strip",
    "la la land",
    "el paso",
    "rio de janeiro",
    "san francisco bridge",
    "são paulo skyline",
    "mit campus",
    "das boot poster",
    "die hard",
    "van gogh painting",
    "tour de france",
    "a la carte menu",
    "en route to the airport",
    "kinder surprise egg",
    "cirque du soleil",
    "sans serif sign",
    "coup de grâce",
    "pasta al dente",
    "über cool car",
    "bolo tie",
    "chez panisse",
    "dog",
    "DOG ON THE BEACH",
    "",
    "2024 holidays",
]

OTHER_QUERIES = [
    ("perro en la playa", "es"),
    ("un perro", "es"),
    ("perros en el parque", "es"),
    ("una foto de un gato", "es"),
    ("chien sur la plage", "fr"),
    ("un enfant avec un chien", "fr"),
    ("der hund am strand", "de"),
    ("ein Hund im Schnee", "de"),
    ("gatto sulla spiaggia", "it"),
    ("bambini nella neve", "it"),
    ("cachorro na praia", "pt"),
    ("uma foto de um cão", "pt"),
    ("hond op het strand", "nl"),
    ("kinderen in de sneeuw", "nl"),
    ("собака на пляже", "cyrillic"),
    ("σκύλος στην παραλία", "greek"),
    ("海边的狗", "cjk"),
    ("ビーチの犬", "katakana"),
    ("해변의 개", "hangul"),
    ("كلب على الشاطئ", "arabic"),
]


@pytest.mark.parametrize("query", ENGLISH_QUERIES)
def test_english_queries_stay_english(query: str) -> None:
    assert detect_language(query) is None


@pytest.mark.parametrize(("query", "code"), OTHER_QUERIES)
def test_other_languages_are_recognised(query: str, code: str) -> None:
    language = detect_language(query)
    assert language is not None and language.code == code
    assert language.evidence  # the words or letters that decided it


def test_detection_precision_over_the_lists() -> None:
    """Measured, not assumed: no English query of the list is taken for another language."""
    false_alarms = [q for q in ENGLISH_QUERIES if detect_language(q) is not None]
    found = sum(detect_language(q) is not None for q, _ in OTHER_QUERIES)
    assert false_alarms == []
    assert found == len(OTHER_QUERIES)


def test_which_checkpoints_are_multilingual() -> None:
    assert is_multilingual("google/siglip2-base-patch16-224", gemma_tokenizer=True)
    assert is_multilingual("/models/anything", gemma_tokenizer=True)
    assert is_multilingual("google/siglip-base-patch16-256-multilingual", gemma_tokenizer=False)
    assert is_multilingual("google/siglip-so400m-patch16-256-i18n", gemma_tokenizer=False)
    assert not is_multilingual("google/siglip-base-patch16-224", gemma_tokenizer=False)
    assert not is_multilingual("/models/siglip2-lookalike", gemma_tokenizer=False)


def test_decisions_and_their_wording() -> None:
    english = decide("dog on the beach", multilingual=False, model_id="m")
    assert (english.as_typed, english.note, english.hint) == (False, "", "")
    multilingual = decide("perro en la playa", multilingual=True, model_id="m")
    assert multilingual.as_typed and multilingual.hint == ""
    assert "Spanish" in multilingual.note and "not applied" in multilingual.note
    english_only = decide("perro en la playa", multilingual=False, model_id="google/x")
    assert not english_only.as_typed
    assert "google/x" in english_only.hint and MULTILINGUAL_SUGGESTION in english_only.hint
    assert "\n" not in english_only.hint


# Searches -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multilingual_encoder(tmp_path_factory: pytest.TempPathFactory) -> SiglipEncoder:
    folder = build_tiny_siglip2(tmp_path_factory.mktemp("models") / "tiny-siglip2")
    return SiglipEncoder.load(str(folder), device="cpu", precision="fp32")


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "expansions.json"
    path.write_text(json.dumps({"terms": {"perro": {"synonyms": ["dog"]}}}), "utf-8")
    return path


def _searcher(encoder, library_dir: Path, images: list[Path], user_file: Path | None = None):
    library = Library(library_dir, encoder.model_id, encoder.dim)
    Indexer(library, encoder).index([images[0].parent])
    return library, Searcher(library, encoder, Expander(load_dictionary(user_file)))


def test_multilingual_model_searches_another_language_as_typed(
    multilingual_encoder, make_images, isolated_dirs: Path
) -> None:
    # "dog" is in the built-in dictionary: an English query would get its synonyms.
    query = "Una foto de un dog en la playa"
    library, searcher = _searcher(multilingual_encoder, isolated_dirs, make_images(2))
    try:
        english = searcher.search("a dog on the beach")
        hits = searcher.search(query)
    finally:
        library.close()
    assert len(english.listed) > 1 and english.language_note == ""
    assert [v.text for v in hits.listed] == [query]  # the query alone, case kept
    assert hits.listed[0].prompt == "a photo of una foto de un dog en la playa."
    assert "Spanish" in hits.language_note and "dictionary was not applied" in hits.language_note
    assert hits.language_hint == ""


def test_user_expansions_apply_in_any_language(
    multilingual_encoder, make_images, isolated_dirs: Path, user_file: Path
) -> None:
    library, searcher = _searcher(multilingual_encoder, isolated_dirs, make_images(2), user_file)
    try:
        hits = searcher.search("perro en la playa")
    finally:
        library.close()
    texts = [v.text for v in hits.listed]
    assert texts == ["perro en la playa", "dog en la playa"]
    assert hits.listed[1].source == "perro -> dog"
    assert "Spanish" in hits.language_note


def test_english_only_model_gets_a_hint(encoder, library, make_images) -> None:
    Indexer(library, encoder).index([make_images(2)[0].parent])
    searcher = Searcher(library, encoder)
    hits = searcher.search("perro en la playa")
    assert MULTILINGUAL_SUGGESTION in hits.language_hint
    assert encoder.model_id in hits.language_hint
    assert "Spanish" in hits.language_note
    progressive = list(searcher.search_progressive("chien sur la plage"))
    assert all("French" in step.language_hint for step in progressive)
    assert searcher.search("a dog on the beach").language_hint == ""
