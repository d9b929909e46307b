"""Query expansion: the built-in dictionary, in-phrase swaps, plurals, the cap, user files.

Wrong senses, articles, doubled words, negations and the broader option: test_expansion_senses.py.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gallery_app.core.errors import ConfigError
from gallery_app.core.expansion import (
    DEFAULT_MAX_VARIANTS,
    Expander,
    Variant,
    builtin_dictionary,
    load_dictionary,
    pluralize,
)

CATEGORIES = {
    "people",
    "animals",
    "places",
    "scenes",
    "weather",
    "seasons",
    "times of day",
    "food",
    "vehicles",
    "events",
    "objects",
}
RICH_QUERY = "dog on the beach at sunset in winter"


def texts(variants: list[Variant]) -> list[str]:
    return [v.text for v in variants]


def by_text(variants: list[Variant]) -> dict[str, Variant]:
    return {v.text: v for v in variants}


def write_user_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "expansions.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- the built-in dictionary -------------------------------------------------------------


def test_builtin_has_at_least_100_head_terms(builtin):
    assert len(builtin) >= 100
    assert len(builtin.entries) == len(builtin) + len(builtin.compounds)
    assert all(
        not builtin.entries[c].synonyms and not builtin.entries[c].broader
        for c in builtin.compounds
    )


def test_builtin_covers_every_category(builtin):
    categories = {entry.category for entry in builtin.entries.values()}
    assert categories >= CATEGORIES
    counts = Counter(entry.category for entry in builtin.entries.values())
    for category in CATEGORIES:
        assert counts[category] >= 1, category


def test_builtin_synonym_sets_are_disjoint(builtin):
    counts = Counter(member for entry in builtin.entries.values() for member in entry.members)
    shared = sorted(word for word, n in counts.items() if n > 1)
    assert shared == []


def test_builtin_lookup_finds_each_member_in_its_own_entry(builtin):
    for entry in builtin.entries.values():
        for member in entry.members:
            hit = builtin.lookup(member)
            assert hit is not None, member
            assert hit[0] is entry
            assert hit[1] == member
            assert hit[2] is False


def test_builtin_broader_weights_are_in_unit_interval(builtin):
    for entry in builtin.entries.values():
        for word, weight in entry.broader:
            assert word
            assert 0 < weight <= 1


# --- a single word -----------------------------------------------------------------------


def test_single_word_original_comes_first(expander):
    variants = expander.expand("dog")
    assert variants[0] == Variant("dog", 1.0, None, "query")
    assert variants[0].source is None


def test_single_word_synonyms_weight_one_and_kind_synonym(expander, builtin):
    entry = builtin.entries["dog"]
    variants = by_text(expander.expand("dog", max_variants=50))
    assert {text for text in variants} == {"dog", *entry.synonyms}
    for synonym in entry.synonyms:
        assert variants[synonym] == Variant(synonym, 1.0, f"dog -> {synonym}", "synonym")


def test_dog_expands_to_pooch_and_only_with_broader_to_pet(expander, builtin):
    entry = builtin.entries["dog"]
    assert "pooch" in entry.synonyms
    assert dict(entry.broader)["pet"] == pytest.approx(0.5)
    plain = by_text(expander.expand("dog"))
    assert plain["pooch"] == Variant("pooch", 1.0, "dog -> pooch", "synonym")
    assert "pet" not in plain and "animal" not in plain
    wider = by_text(expander.expand("dog", broader=True))
    assert wider["pet"] == Variant("pet", pytest.approx(0.5), "dog -> pet", "broader")
    assert wider["animal"].kind == "broader"


def test_reverse_lookup_from_a_synonym(expander):
    variants = by_text(expander.expand("pooch"))
    assert "dog" in variants
    assert variants["dog"].weight == 1.0
    assert variants["dog"].source == "pooch -> dog"
    assert "pooch" not in texts(expander.expand("pooch"))[1:]


# --- plurals -----------------------------------------------------------------------------


def test_plural_query_yields_plural_variants(expander):
    variants = by_text(expander.expand("dogs", broader=True))
    assert variants["pooches"].weight == 1.0
    assert variants["pooches"].source == "dog -> pooch"
    assert variants["pets"].weight == pytest.approx(0.5)
    assert "pooch" not in variants
    assert "pet" not in variants


def test_irregular_plural_people_matches_person(expander, builtin):
    assert "person" in builtin.entries
    got = texts(expander.expand("people", max_variants=50))
    assert got[0] == "people"
    assert "humans" in got
    assert "human" not in got


def test_regular_plural_persons_matches_person(expander):
    variants = by_text(expander.expand("persons", max_variants=50))
    assert variants["humans"].source == "person -> human"


def test_irregular_plural_children_and_kids(expander):
    assert "kids" in texts(expander.expand("children"))
    assert "children" in texts(expander.expand("kids"))


def test_irregular_plural_men(expander, builtin):
    synonyms = builtin.entries["man"].synonyms
    got = texts(expander.expand("men", max_variants=50))
    for synonym in synonyms:
        assert pluralize(synonym) in got
    assert "man" not in got


def test_plural_broader_word_uses_irregular_plural(expander, builtin):
    # child -> person (broader) becomes "people" when the query says "children".
    assert "person" in dict(builtin.entries["child"].broader)
    assert "people" in texts(expander.expand("children", broader=True, max_variants=50))


@pytest.mark.parametrize(
    ("singular", "plural"),
    [
        ("dog", "dogs"),
        ("puppy", "puppies"),
        ("bus", "buses"),
        ("beach", "beaches"),
        ("toy", "toys"),
        ("person", "people"),
        ("child", "children"),
        ("man", "men"),
        ("woman", "women"),
        ("gentleman", "gentlemen"),
        ("bookshelf", "bookshelves"),
        ("human", "humans"),
        ("german", "germans"),
        ("birthday party", "birthday parties"),
        ("elderly man", "elderly men"),
        ("luggage", "luggage"),
        ("sheep", "sheep"),
    ],
)
def test_pluralize(singular, plural):
    assert pluralize(singular) == plural


def test_every_builtin_member_plural_finds_its_entry(builtin):
    for entry in builtin.entries.values():
        for member in entry.members:
            plural = pluralize(member)
            if plural == member:
                continue
            hit = builtin.lookup(plural)
            assert hit is not None, plural
            assert (hit[0], hit[1], hit[2]) == (entry, member, True)


# --- multi-word queries ------------------------------------------------------------------


def test_in_phrase_swaps_each_term(expander):
    variants = expander.expand("dog on the beach")
    got = texts(variants)
    assert got[0] == "dog on the beach"
    assert "pooch on the beach" in got
    assert "dog on the seashore" in got
    assert "pooch on the seashore" not in got
    for variant in variants:
        assert " on the " in variant.text


def test_in_phrase_swaps_one_term_at_a_time(expander, builtin):
    dog = set(builtin.entries["dog"].members) | {w for w, _ in builtin.entries["dog"].broader}
    beach = set(builtin.entries["beach"].members) | {w for w, _ in builtin.entries["beach"].broader}
    for variant in expander.expand("dog on the beach", broader=True, max_variants=100)[1:]:
        first, rest = variant.text.split(" on the ")
        assert first in dog and rest in beach
        # exactly one of the two terms changed
        assert (first == "dog") != (rest == "beach"), variant.text


def test_multi_word_head_matches_inside_longer_query(expander, builtin):
    entry = builtin.entries["christmas tree"]
    variants = by_text(expander.expand("a christmas tree in the living room", max_variants=50))
    for synonym in entry.synonyms:
        swapped = f"a {synonym} in the living room"
        assert swapped in variants
        assert variants[swapped].source == f"christmas tree -> {synonym}"
    # the phrase wins over its single words: nothing swaps "tree" alone
    assert not any(v.source and v.source.startswith("tree ->") for v in variants.values())


def test_multi_word_head_plural_inside_query(expander, builtin):
    synonym = builtin.entries["birthday party"].synonyms[0]
    got = texts(expander.expand("kids at birthday parties", max_variants=50))
    assert f"kids at {pluralize(synonym)}" in got


# --- normalisation -----------------------------------------------------------------------


def test_case_and_whitespace_are_normalised(expander):
    messy = expander.expand("  Dog   ON the Beach ")
    clean = expander.expand("dog on the beach")
    assert messy == clean
    assert messy[0].text == "dog on the beach"


# --- the cap -----------------------------------------------------------------------------


def test_default_cap_is_eight(expander):
    assert DEFAULT_MAX_VARIANTS == 8
    assert Expander().max_variants == DEFAULT_MAX_VARIANTS
    variants = expander.expand(RICH_QUERY)
    assert len(variants) == DEFAULT_MAX_VARIANTS
    assert len(expander.expand(RICH_QUERY, max_variants=100)) > DEFAULT_MAX_VARIANTS


def test_constructor_cap(builtin):
    variants = Expander(builtin, max_variants=3).expand(RICH_QUERY)
    assert len(variants) == 3
    assert variants[0].text == RICH_QUERY


def test_call_cap_of_one_gives_only_the_original(expander):
    assert expander.expand(RICH_QUERY, max_variants=1) == [Variant(RICH_QUERY, 1.0, None)]


def test_call_cap_overrides_constructor_cap(builtin):
    assert len(Expander(builtin, max_variants=2).expand(RICH_QUERY, max_variants=5)) == 5


@pytest.mark.parametrize("query", ["dog", "dogs", "dog on the beach", RICH_QUERY, "children"])
@pytest.mark.parametrize("cap", [8, 100])
@pytest.mark.parametrize("broader", [False, True])
def test_variants_unique_and_sorted_by_weight(expander, query, cap, broader):
    variants = expander.expand(query, broader=broader, max_variants=cap)
    assert variants[0] == Variant(" ".join(query.split()), 1.0, None, "query")
    got = texts(variants)
    assert len(got) == len(set(got))
    weights = [v.weight for v in variants[1:]]
    assert weights == sorted(weights, reverse=True)
    assert all(0 < w <= 1 for w in weights)
    assert all(v.source for v in variants[1:])
    kinds = [v.kind for v in variants[1:]]
    assert kinds == sorted(kinds, key=["synonym", "broader"].index)  # synonyms, then broader
    assert ("broader" in kinds) is broader


def test_cap_keeps_the_best_weights(expander):
    full = expander.expand("dog", max_variants=100)
    capped = expander.expand("dog", max_variants=3)
    assert capped == full[:3]


def test_zero_max_variants_rejected(builtin):
    with pytest.raises(ValueError):
        Expander(builtin, max_variants=0)
    with pytest.raises(ValueError):
        Expander(builtin, max_variants=-1)
    with pytest.raises(ValueError):
        Expander(builtin).expand("dog", max_variants=0)


# --- nothing to expand -------------------------------------------------------------------


def test_unknown_word_gives_only_the_original(expander):
    assert expander.expand("zxqv") == [Variant("zxqv", 1.0, None)]


@pytest.mark.parametrize("query", ["", "   ", "\t\n "])
def test_empty_query_gives_nothing(expander, query):
    assert expander.expand(query) == []


# --- the user file -----------------------------------------------------------------------


def test_user_entry_overrides_builtin(tmp_path):
    path = write_user_file(tmp_path, {"terms": {"dog": {"synonyms": ["doggo"], "broader": {}}}})
    got = texts(Expander(load_dictionary(path)).expand("dog", broader=True))
    assert got == ["dog", "doggo"]
    assert "pooch" not in got
    assert "pet" not in got


def test_user_override_drops_old_members_from_reverse_lookup(tmp_path):
    path = write_user_file(tmp_path, {"terms": {"dog": {"synonyms": ["doggo"], "broader": {}}}})
    dictionary = load_dictionary(path)
    assert dictionary.lookup("pooch") is None
    assert Expander(dictionary).expand("pooch") == [Variant("pooch", 1.0, None)]
    assert "dog" in texts(Expander(dictionary).expand("doggo"))


def test_user_entry_extends_builtin(tmp_path):
    path = write_user_file(
        tmp_path,
        {
            "terms": {
                "axolotl": {
                    "synonyms": ["mexican walking fish"],
                    "related": {"salamander": 0.7},
                }
            }
        },
    )
    dictionary = load_dictionary(path)
    assert len(dictionary) == len(builtin_dictionary()) + 1
    variants = by_text(Expander(dictionary).expand("an axolotl in a tank", broader=True))
    assert variants["a mexican walking fish in a tank"].weight == 1.0
    # "related" is the old name of "broader": a user file that says it still works
    assert variants["a salamander in a tank"] == Variant(
        "a salamander in a tank", pytest.approx(0.7), "axolotl -> salamander", "broader"
    )
    # built-in entries still work
    assert "pooch" in texts(Expander(dictionary).expand("dog"))


def test_user_terms_are_normalised(tmp_path):
    path = write_user_file(tmp_path, {"terms": {"  Axolotl ": {"synonyms": ["Water  DRAGON"]}}})
    dictionary = load_dictionary(path)
    assert "axolotl" in dictionary.entries
    assert "water dragon" in texts(Expander(dictionary).expand("AXOLOTL"))


def test_user_remove_drops_builtin_head(tmp_path):
    assert "cat" in builtin_dictionary().entries
    path = write_user_file(tmp_path, {"remove": ["cat"]})
    dictionary = load_dictionary(path)
    assert "cat" not in dictionary.entries
    assert len(dictionary) == len(builtin_dictionary()) - 1
    assert Expander(dictionary).expand("cat") == [Variant("cat", 1.0, None)]


def test_missing_user_file_gives_builtin(tmp_path):
    dictionary = load_dictionary(tmp_path / "does-not-exist.json")
    builtin = builtin_dictionary()
    assert dictionary.entries == builtin.entries
    assert load_dictionary(None).entries == builtin.entries


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "expansions.json"
    path.write_text('{\n  "terms": {\n    "dog": oops\n  }\n}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_dictionary(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"terms": ["dog"]}, id="terms-not-object"),
        pytest.param(["dog"], id="top-level-not-object"),
        pytest.param({"terms": {"dog": ["puppy"]}}, id="term-body-not-object"),
        pytest.param({"terms": {"dog": {"related": {"pet": 1.5}}}}, id="weight-above-one"),
        pytest.param({"terms": {"dog": {"related": {"pet": 0}}}}, id="weight-zero"),
        pytest.param({"terms": {"dog": {"related": {"pet": -0.2}}}}, id="weight-negative"),
        pytest.param({"terms": {"dog": {"related": {"pet": "0.8"}}}}, id="weight-string"),
        pytest.param({"terms": {"dog": {"related": {"pet": True}}}}, id="weight-bool"),
        pytest.param({"terms": {"dog": {"related": ["pet"]}}}, id="related-not-object"),
        pytest.param({"terms": {"dog": {"synonyms": "puppy"}}}, id="synonyms-not-list"),
        pytest.param({"terms": {"": {"synonyms": ["x"]}}}, id="empty-term"),
        pytest.param({"terms": {"   ": {"synonyms": ["x"]}}}, id="blank-term"),
        pytest.param({"terms": {"dog": {"synonyms": [""]}}}, id="empty-synonym"),
        pytest.param({"terms": {"dog": {"synonyms": [3]}}}, id="synonym-not-string"),
        pytest.param({"terms": {"dog": {"related": {"": 0.5}}}}, id="empty-related-word"),
        pytest.param({"remove": "cat"}, id="remove-not-list"),
        pytest.param({"remove": [""]}, id="remove-empty-term"),
        pytest.param({"terms": {"dog": {"broader": ["pet"]}}}, id="broader-not-object"),
        pytest.param({"terms": {"dog": {"broader": {"pet": 2}}}}, id="broader-weight-above-one"),
        pytest.param(
            {"terms": {"dog": {"broader": {"pet": 0.5}, "related": {"pet": 0.5}}}},
            id="broader-and-related",
        ),
        pytest.param({"compounds": "hot dog"}, id="compounds-not-list"),
        pytest.param({"compounds": ["hotdog"]}, id="compound-one-word"),
        pytest.param({"compounds": [""]}, id="compound-empty"),
        pytest.param({"compounds": [7]}, id="compound-not-string"),
    ],
)
def test_bad_user_file_raises_config_error_with_path(tmp_path, data):
    path = write_user_file(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_dictionary(path)
    assert str(path) in str(info.value)


def test_user_file_that_is_a_directory_raises_config_error(tmp_path):
    path = tmp_path / "expansions.json"
    path.mkdir()
    with pytest.raises(ConfigError) as info:
        load_dictionary(path)
    assert str(path) in str(info.value)


# --- words that only look plural ------------------------------------------------------


def test_word_that_is_not_a_plural_of_a_member_is_not_swapped(expander):
    sources = [v.source for v in expander.expand("horse manes", max_variants=50)[1:]]
    assert not any(s.startswith("man ->") for s in sources)


def test_gales_is_not_read_as_gals(expander, builtin):
    assert pluralize("gal") == "gals"
    assert "gal" in builtin.entries["woman"].members
    got = texts(expander.expand("boats in gales", max_variants=50))
    assert "boats in women" not in got
