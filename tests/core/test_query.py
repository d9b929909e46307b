"""The query grammar: "and", "not", "without", "-word", quotes, and dictionary phrases."""

from __future__ import annotations

import pytest

from gallery_app.core.expansion import builtin_dictionary
from gallery_app.core.query import AND, NOT, QueryPart, parse_query


@pytest.fixture(scope="module")
def is_phrase():
    dictionary = builtin_dictionary()
    return lambda phrase: dictionary.lookup(phrase) is not None


def parts(query: str, is_phrase=None) -> list[tuple[str, str]]:
    return [(p.text, p.kind) for p in parse_query(query, is_phrase).parts]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("beach -people", [("beach", AND), ("people", NOT)]),
        ("beach without people", [("beach", AND), ("people", NOT)]),
        ("beach and dog", [("beach", AND), ("dog", AND)]),
        ("beach, not people", [("beach", AND), ("people", NOT)]),
        ("beach but not people", [("beach", AND), ("people", NOT)]),
        ("beach and not people", [("beach", AND), ("people", NOT)]),
        ("Beach AND Dog NOT people", [("Beach", AND), ("Dog", AND), ("people", NOT)]),
        ("dog on the beach -people -cars", [("dog on the beach", AND), ("people", NOT),
                                            ("cars", NOT)]),
        # A dash takes one word (or a quoted phrase); the words after it go on with the part.
        ("beach -people at sunset", [("beach at sunset", AND), ("people", NOT)]),
        ('beach -"red car" sunset', [("beach sunset", AND), ("red car", NOT)]),
        # A negation runs to a comma; after it, a comma returns to what must be there.
        ("beach without people, dog", [("beach", AND), ("people", NOT), ("dog", AND)]),
        ("sunset without people on the beach", [("sunset", AND), ("people on the beach", NOT)]),
        ("not a dog", [("a dog", NOT)]),
    ],
)  # fmt: skip
def test_operators_split_the_query_into_parts(query, expected, is_phrase):
    assert parts(query, is_phrase) == expected


@pytest.mark.parametrize(
    "query",
    ["dog on the beach", "a dog, a cat", "t-shirt", "beach - people", "no parking sign",
     "dog or cat", "black-and-white photo", "  two   spaces  "],
)  # fmt: skip
def test_a_query_without_operators_is_one_part_exactly_as_typed(query, is_phrase):
    parsed = parse_query(query, is_phrase)
    assert parsed.plain
    assert parsed.parts == (QueryPart(query.strip(), AND),)


@pytest.mark.parametrize(
    "query",
    ["salt and pepper", "rock and roll", "bride and groom", "forget me not",
     "peanut butter and jelly"],
)  # fmt: skip
def test_an_operator_inside_a_dictionary_phrase_is_a_word(query, is_phrase):
    assert parts(query, is_phrase) == [(query, AND)]
    # Without the dictionary the same words are split: the phrase is what protects them.
    assert parts(query) != [(query, AND)]


def test_a_phrase_keeps_its_and_while_another_and_splits(is_phrase):
    assert parts("salt and pepper shaker and a dog", is_phrase) == [
        ("salt and pepper shaker", AND),
        ("a dog", AND),
    ]
    assert parts("salt and pepper shakers -dog", is_phrase) == [
        ("salt and pepper shakers", AND),
        ("dog", NOT),
    ]


def test_quotes_make_one_part_and_are_not_searched(is_phrase):
    assert parts('"black and white" photo', is_phrase) == [("black and white photo", AND)]
    assert parts('"dog and cat on a sofa" without people', is_phrase) == [
        ("dog and cat on a sofa", AND),
        ("people", NOT),
    ]
    assert parts("“not a drill” sign", is_phrase) == [("not a drill sign", AND)]  # curly quotes
    assert parts('beach "without people', is_phrase) == [("beach without people", AND)]


def test_empty_parts_are_dropped(is_phrase):
    assert parts("beach and", is_phrase) == [("beach", AND)]
    assert parts("and beach", is_phrase) == [("beach", AND)]
    assert parts("beach without", is_phrase) == [("beach", AND)]
    assert parts('""', is_phrase) == []
    assert parts("", is_phrase) == []
