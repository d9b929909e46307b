"""Expansion without wrong senses: compounds, one sense per member, articles, doubled words,
negations, broader terms only on request, and the dictionary file's own rules."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from gallery_app.core.expansion import (
    DEFAULT_MAX_VARIANTS,
    Dictionary,
    Entry,
    Expander,
    Variant,
    builtin_dictionary,
    indefinite_article,
    load_dictionary,
    pluralize,
)

BUILTIN_FILE = Path(__file__).resolve().parents[2] / "resources" / "expansions.json"
CATEGORIES = {
    "people", "animals", "places", "scenes", "weather", "seasons", "times of day", "food",
    "vehicles", "events", "objects",
}  # fmt: skip


def texts(variants: list[Variant]) -> list[str]:
    return [v.text for v in variants]


def contains_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w'])", text) is not None


# --- the table: queries, what they must and must not expand to ---------------------------
# "must": synonym variants (default expansion) that have to be there.
# "must not": phrases that may appear in no variant at all, broader ones included.
SENSES = [
    ("hot dog", [], ["hot pooch", "hot canine", "hot pet", "hot puppy", "hot animal"]),
    ("hot dogs", [], ["hot pooches", "hot canines", "hot pets"]),
    ("a big hot dog", [], ["big hot pooch", "big hot pet"]),
    ("niagara falls", [], ["niagara autumns", "niagara fall season", "niagara autumn"]),
    ("falls", [], ["autumns", "autumn"]),
    ("coffee table", [], ["espresso table", "drink table", "coffee furniture"]),
    ("coffee cup", [], ["coffee cup cup", "drink cup", "espresso cup"]),
    ("car park", ["parking lot"], ["car parkland", "automobile park", "vehicle park"]),
    ("football coach", [], ["football bus", "football vehicle", "football coach bus"]),
    ("coach", [], ["bus", "vehicle"]),
    ("eye pupil", [], ["eye student", "eye schoolkid", "eye person"]),
    ("pupil", [], ["student", "schoolkid"]),
    ("red wine", [], ["white wine", "red drink", "red vino"]),
    ("white wine", [], ["red wine", "white drink"]),
    ("glass of red wine", [], ["glass of white wine", "glass of red drink"]),
    ("birthday cake", [], ["birthday birthday cake", "birthday dessert", "birthday bash cake"]),
    ("an airplane", ["a plane", "an aeroplane"], ["an plane", "a aeroplane", "a aircraft"]),
    ("a dog", ["a pooch", "a canine"], ["a animal", "an pooch", "an pet"]),
    ("not a dog", [], ["not a pooch", "not a canine", "not a pet", "not an animal"]),
    ("no people", [], ["no humans", "no human beings"]),
    ("without dogs", [], ["without pooches", "without pets", "without canines"]),
    ("-dog", [], ["-pooch", "-canine", "-pet"]),
    ("a cat, not a dog", ["a kitty, not a dog"], ["a cat, not a pooch"]),
    ("no people on the beach", ["no people on the seashore"], ["no humans on the beach"]),
    ("beach without people", ["seashore without people"], ["beach without humans"]),
    ("wedding dress", [], ["marriage ceremony dress", "wedding ceremony dress"]),
    ("wedding guests", [], ["marriage ceremony guests", "wedding ceremony guests"]),
    ("a wedding in the park", ["a marriage ceremony in the park"], []),
    ("father christmas", ["santa claus"], ["dad christmas", "daddy christmas", "father xmas"]),
    ("grandfather clock", [], ["grandpa clock", "grandfather timepiece", "grandparent clock"]),
    ("sea lion", [], ["ocean lion"]),
    ("sea", ["ocean"], []),
    ("guinea pig", [], ["guinea hog", "guinea farm animal"]),
    ("prairie dog", [], ["prairie pooch", "prairie pet"]),
    ("rubber duck", [], ["rubber bird"]),
    ("kitchen island", [], ["kitchen isle", "room island"]),
    ("hot spring", [], ["hot springtime", "hot spring season"]),
    ("spring flowers", ["springtime flowers", "spring blooms"], ["spring season flowers"]),
    ("theme park", [], ["theme parkland"]),
    ("mountain bike", [], ["mountain bicycle", "mountain push bike"]),
    ("dirt bike", [], ["dirt bicycle", "dirt vehicle"]),
    ("bus stop", [], ["vehicle stop"]),
    ("street food", [], ["road food"]),
    ("best man", [], ["best guy", "best person"]),
    ("baby shower", [], ["infant shower", "child shower"]),
    ("cop car", ["police car", "squad car"], ["police officer car", "person car"]),
    ("mountain lion", ["cougar"], ["peak lion"]),
    ("santa monica", [], ["santa claus monica", "saint nick monica"]),
    ("lady bug", ["ladybug"], ["woman bug", "gal bug"]),
    ("baking soda", [], ["baking soft drink", "baking drink"]),
    ("loch ness", [], ["lake ness"]),
    ("lightning bug", ["firefly"], ["thunderbolt bug", "lightning bolt bug"]),
    ("christmas tree", ["xmas tree"], ["yuletide tree", "christmas tree tree"]),
    ("couch potato", [], ["sofa potato", "settee potato"]),
    ("big cat", [], ["big kitty", "big feline", "big pet"]),
    ("plane tree", [], ["aeroplane tree", "airplane tree"]),
    ("birthday party", ["birthday celebration"], ["birthday birthday celebration"]),
    ("ice cream truck", [], ["dessert truck", "ice cream lorry"]),
    ("fall", [], ["autumn", "fall season"]),
    ("espresso", [], ["coffee"]),
    ("tea party", [], ["drink party", "cup of tea party"]),
    ("spring break", [], ["springtime break", "spring season break"]),
    (
        "dogs on the beach at sunset",
        ["pooches on the beach at sunset", "dogs on the seashore at sunset"],
        ["pooches on the seashore at sunset"],
    ),
]


def test_the_sense_table_is_long_enough():
    assert len(SENSES) >= 40
    assert len({query for query, _, _ in SENSES}) == len(SENSES)


@pytest.mark.parametrize(("query", "must", "must_not"), SENSES, ids=[q for q, _, _ in SENSES])
def test_query_expands_to_right_senses_only(expander, query, must, must_not):
    synonyms = texts(expander.expand(query, max_variants=100))
    everything = texts(expander.expand(query, broader=True, max_variants=100))
    for wanted in must:
        assert wanted in synonyms, (query, synonyms)
    for wrong in must_not:
        assert not any(contains_phrase(text, wrong) for text in everything), (wrong, everything)


def test_every_compound_is_left_as_typed_alone_plural_and_in_a_phrase(expander, builtin):
    assert len(builtin.compounds) >= 40
    for compound in builtin.compounds:
        for form in (compound, pluralize(compound)):
            assert expander.expand(form, broader=True) == [Variant(form, 1.0)], form
            in_phrase = f"photo of {form} at noon"
            for variant in expander.expand(in_phrase, broader=True, max_variants=100):
                assert f"photo of {form} at " in variant.text, variant


def test_a_longer_key_wins_even_when_a_shorter_one_starts_earlier():
    dictionary = Dictionary(
        {
            "police car": Entry("police car", ("squad car",)),
            "car boot sale": Entry("car boot sale", ()),
            "sale": Entry("sale", ("clearance",)),
        }
    )
    # Left to right would take "police car" first and swap it inside "car boot sale".
    assert texts(Expander(dictionary).expand("police car boot sale")) == ["police car boot sale"]
    assert "squad car" in texts(Expander(dictionary).expand("police car"))


def test_punctuation_splits_a_multi_word_key(expander):
    got = texts(expander.expand("hot, dog"))
    assert "hot, pooch" in got


# --- articles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "article"),
    [
        ("dog", "a"), ("animal", "an"), ("aeroplane", "an"), ("umbrella", "an"),
        ("hour", "an"), ("honest man", "an"), ("heir", "an"), ("university", "a"),
        ("unicorn", "a"), ("uniform", "a"), ("one", "a"), ("european city", "a"),
        ("euro", "a"), ("ewe", "a"), ("rv", "an"), ("suv", "an"), ("x", "an"), ("b", "a"),
        ("yacht", "a"), ("hotel", "a"), ("igloo", "an"),
    ],
)  # fmt: skip
def test_indefinite_article(phrase, article):
    assert indefinite_article(phrase) == article


@pytest.mark.parametrize(
    ("query", "wanted", "unwanted"),
    [
        ("an airplane", "a plane", "an plane"),
        ("a motorhome", "an rv", "a rv"),
        ("an suv", "a sport utility vehicle", "an sport utility vehicle"),
        ("a t-shirt", "a tee shirt", "an tee shirt"),
    ],
)
def test_article_follows_the_replacement(expander, query, wanted, unwanted):
    got = texts(expander.expand(query, max_variants=100))
    assert wanted in got
    assert unwanted not in got


def test_article_for_a_broader_replacement(expander):
    got = texts(expander.expand("a dog", broader=True))
    assert "an animal" in got and "a animal" not in got
    assert "a pet" in got


def test_article_not_next_to_the_term_is_left_alone(expander):
    got = texts(expander.expand("an old airplane"))
    assert "an old plane" in got
    got = texts(expander.expand("the airplane"))
    assert "the plane" in got


def test_every_member_after_an_article_gets_agreeing_articles(expander, builtin):
    for entry in builtin.entries.values():
        for member in entry.members:
            query = f"{indefinite_article(member)} {member} at noon"
            for variant in expander.expand(query, broader=True, max_variants=100)[1:]:
                article, rest = variant.text.split(" ", 1)
                if article in ("a", "an"):
                    assert article == indefinite_article(rest), variant
                else:  # only a mass noun (one with no plural) loses its article
                    noun = variant.text.removesuffix(" at noon").split()[-1]
                    assert pluralize(noun) == noun, variant


@pytest.mark.parametrize(
    ("query", "wanted", "unwanted"),
    [
        ("a landscape at dusk", "scenery at dusk", "a scenery at dusk"),
        ("a cat on a chair", "a cat on furniture", "a cat on a furniture"),
        ("a suitcase", "luggage", "a luggage"),
        ("a sheep", "a farm animal", "farm animal"),
    ],
)
def test_a_mass_noun_replacement_drops_the_article(expander, query, wanted, unwanted):
    got = texts(expander.expand(query, broader=True, max_variants=100))
    assert wanted in got
    assert unwanted not in got


# --- doubled words -------------------------------------------------------------------------


def test_a_replacement_that_doubles_a_word_is_dropped():
    # No compound protects "birthday cake" here: the check after substitution must.
    dictionary = Dictionary(
        {"cake": Entry("cake", ("gateau",), (("birthday cake", 0.5),)), "dog": Entry("dog", ())}
    )
    got = texts(Expander(dictionary).expand("birthday cake", broader=True, max_variants=100))
    assert "birthday gateau" in got
    assert "birthday birthday cake" not in got


def test_a_doubled_word_already_typed_does_not_block_variants(expander):
    got = texts(expander.expand("dog dog on the beach"))
    assert "dog dog on the seashore" in got


def test_no_builtin_variant_doubles_a_word(expander, builtin):
    for entry in builtin.entries.values():
        for member in entry.members:
            for query in (member, pluralize(member), f"{member} {member.split()[-1]}"):
                base = re.findall(r"[\w']+", query)
                base_doubles = sum(a == b for a, b in itertools.pairwise(base))
                for variant in expander.expand(query, broader=True, max_variants=100):
                    words = re.findall(r"[\w']+", variant.text)
                    doubles = sum(a == b for a, b in itertools.pairwise(words))
                    assert doubles <= base_doubles, variant


# --- negations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kept", "expanded"),
    [
        ("not a dog", "not a dog", None),
        ("no people", "no people", None),
        ("without dogs", "without dogs", None),
        ("-dog", "-dog", None),
        ("excluding cats", "excluding cats", None),
        ("no dogs or cats", "no dogs or cats", None),
        ("not at night", "not at night", None),
        ("dog -cat", "-cat", "pooch -cat"),
        ("cat, no dog", "no dog", "kitty, no dog"),
        ("not a dog but a cat", "not a dog", "not a dog but a kitty"),
        ("no people on the beach", "no people", "no people on the seashore"),
        ("a dog without a leash", "without a leash", "a pooch without a leash"),
    ],
)
def test_negated_part_is_left_as_typed(expander, query, kept, expanded):
    variants = expander.expand(query, broader=True, max_variants=100)
    for variant in variants:
        assert kept in variant.text, variant
    if expanded is None:
        assert variants == [Variant(query, 1.0)]
    else:
        assert expanded in texts(variants)


def test_hyphen_inside_a_word_is_not_a_negation(expander):
    assert "a tee shirt" in texts(expander.expand("a t-shirt"))


# --- broader terms: opt-in, after the synonyms, never displacing them ---------------------


@pytest.mark.parametrize(
    "query", ["dog", "dogs", "a cat on the sofa", "dog on the beach at sunset in winter", "kids"]
)
def test_broader_only_on_request_and_after_every_synonym(expander, query):
    plain = expander.expand(query)
    wider = expander.expand(query, broader=True)
    assert all(v.kind in ("query", "synonym") for v in plain)
    assert wider[: len(plain)] == plain  # asking for broader never displaces a synonym
    extra = wider[len(plain) :]
    assert extra and all(v.kind == "broader" for v in extra)
    assert len(extra) <= DEFAULT_MAX_VARIANTS
    assert all(v.weight < 1.0 for v in extra)


def test_kinds_and_weights(expander):
    variants = expander.expand("dog on the beach", broader=True)
    assert variants[0] == Variant("dog on the beach", 1.0, None, "query")
    assert Variant("x", 1.0).kind == "query" and Variant("x", 1.0).source is None
    for variant in variants[1:]:
        assert variant.kind in ("synonym", "broader")
        assert (variant.weight == 1.0) is (variant.kind == "synonym")


def test_broader_cap_is_apart_from_the_synonym_cap(expander):
    variants = expander.expand("dog on the beach", broader=True, max_variants=2)
    kinds = Counter(v.kind for v in variants)
    assert kinds == {"query": 1, "synonym": 1, "broader": 2}
    assert Expander(expander.dictionary).expand("dog", broader=True, max_variants=1) == [
        Variant("dog", 1.0),
        Variant("pet", 0.5, "dog -> pet", "broader"),
    ]


def test_broader_weight_keeps_a_broader_match_below_a_true_one(builtin):
    # Under max aggregation a broader variant's score is weight * score <= weight: at 0.5 a
    # photo that matches only "pet" cannot pass a moderate true match of "dog" (0.5 and up).
    for entry in builtin.entries.values():
        for word, weight in entry.broader:
            assert weight <= 0.5, (entry.head, word)


# --- the built-in file obeys the rules in expansion.py's docstring -------------------------


@pytest.fixture(scope="module")
def raw():
    return json.loads(BUILTIN_FILE.read_text(encoding="utf-8"))


# Members that would bring in another sense (or are a kind of the head, not another name).
WRONG_MEMBERS = {
    "dog": {"puppy", "pup", "pet", "animal"},
    "cat": {"kitten", "pet"},
    "autumn": {"fall"},
    "bus": {"coach"},
    "student": {"pupil"},
    "coffee": {"espresso", "latte", "cappuccino", "coffee cup"},
    "wine": {"red wine", "white wine"},
    "cake": {"birthday cake"},
    "park": {"car park"},
    "airplane": {"jet"},
}
AMBIGUOUS_WORDS = {
    "fall", "coach", "pupil", "jet", "seat", "present", "sub", "tube", "trolley", "cab", "buck",
    "ram", "hen", "doe", "stag", "mount", "peak", "summit", "vessel", "gig", "diner", "lounge",
    "individual", "fellow", "novel", "biscuit", "dove", "chopper", "auto", "cycle", "pint",
    "cataract", "cascade", "twilight", "flapjack", "bloom season", "pup", "espresso",
}  # fmt: skip


def test_file_shape(raw):
    assert set(raw) == {"version", "terms", "compounds"}
    assert raw["version"] == 2
    for head, body in raw["terms"].items():
        assert head == " ".join(head.lower().split()), head
        assert set(body) <= {"category", "synonyms", "broader"}, head
        assert body["category"] in CATEGORIES, head
        assert isinstance(body["synonyms"], list), head
        assert body["synonyms"] or body.get("broader"), f"{head} has nothing to swap in"


def test_no_member_equals_its_head_or_repeats(raw):
    for head, body in raw["terms"].items():
        assert head not in body["synonyms"], head
        assert len(set(body["synonyms"])) == len(body["synonyms"]), head


def test_members_belong_to_one_entry_only(raw):
    counts = Counter(m for head, body in raw["terms"].items() for m in [head, *body["synonyms"]])
    assert sorted(m for m, n in counts.items() if n > 1) == []


def test_compounds_are_multi_word_unique_and_not_members(raw):
    compounds = raw["compounds"]
    members = {m for head, body in raw["terms"].items() for m in [head, *body["synonyms"]]}
    assert len(set(compounds)) == len(compounds)
    for compound in compounds:
        assert len(compound.split()) >= 2, compound
        assert compound not in members, compound
    # The list of known compounds, each protected as a phrase.
    named = {"hot dog", "coffee table", "coffee cup", "car park", "niagara falls",
             "football coach", "eye pupil", "red wine", "white wine", "birthday cake"}  # fmt: skip
    assert named <= set(compounds) | members


def test_broader_terms_are_not_members_of_their_own_entry(raw):
    for head, body in raw["terms"].items():
        for word in body.get("broader", {}):
            assert word not in [head, *body["synonyms"]], (head, word)


def test_no_member_is_a_known_wrong_sense(builtin):
    members = {m for entry in builtin.entries.values() for m in entry.members if entry.synonyms}
    assert sorted(members & AMBIGUOUS_WORDS) == []
    for head, wrong in WRONG_MEMBERS.items():
        assert not set(builtin.entries[head].synonyms) & wrong, head


def test_no_member_or_broader_word_is_a_negation_or_function_word(builtin):
    for entry in builtin.entries.values():
        for word in [*entry.members, *(w for w, _ in entry.broader)]:
            assert word.split()[0] not in {"not", "no", "without", "a", "an", "the"}, word


def test_builtin_file_parses_as_a_user_file_would(tmp_path, raw, builtin):
    path = tmp_path / "expansions.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert load_dictionary(path).entries == builtin.entries


# --- user files: compounds and the old "related" name -------------------------------------


def test_user_compound_protects_its_words(tmp_path):
    path = tmp_path / "expansions.json"
    path.write_text(json.dumps({"compounds": ["Dog  Days"], "terms": {"hot cat": {}}}))
    dictionary = load_dictionary(path)
    assert {"dog days", "hot cat"} <= set(dictionary.compounds)
    assert Expander(dictionary).expand("dog days") == [Variant("dog days", 1.0)]
    assert Expander(dictionary).expand("hot cats") == [Variant("hot cats", 1.0)]
    assert "pooch" in texts(Expander(dictionary).expand("dog"))
    assert len(dictionary) == len(builtin_dictionary())  # compounds are not head terms
