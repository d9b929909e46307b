"""A typed query -> its parts: what must be in the photo ("and") and what must not ("not").

The grammar, read left to right (operators in any case; quotes group):

- ``and`` starts another part that must be there: ``beach and dog``.
- ``not``, ``without``, ``but not``, ``and not`` start a part that must not be there; it runs
  to the next comma, semicolon or operator: ``beach without people``, ``beach, not people``.
- ``-word`` or ``-"a phrase"`` (a dash at the start of a word) excludes that word or phrase
  only; the words after it go on with the part before it: ``beach -people at sunset`` is
  ``beach at sunset`` without ``people``. A dash inside a word (t-shirt) or alone is text.
- After a ``not`` part, a comma returns to parts that must be there: ``beach without
  people, dog``. Inside a part that must be there a comma is text (``a dog, a cat``).
- ``"..."`` is one piece of text, operators inside it included (``"black and white"
  photo``); the quote marks themselves are not searched. An unclosed quote runs to the end.
- An operator word inside a phrase of the expansion dictionary stays a word: ``salt and
  pepper``, ``rock and roll`` (resources/expansions.json ``compounds``, or any term).
- ``no``, ``or`` and ``except`` are not operators: ``no parking sign`` and ``dog or cat`` are
  searched as typed, as before.

A query with no operator and no quote is one part holding the query exactly as typed, so it
is searched exactly as before this grammar existed. How the parts' scores are combined
(P(a) x P(b), P(a) x (1 - P(b))) is `search.CombinedHits`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

PartKind = Literal["and", "not"]
AND: PartKind = "and"
NOT: PartKind = "not"

# A quoted piece (straight or curly quotes; unclosed runs to the end), a separator, a dash
# that negates the quoted piece after it, or a run of anything else.
_TOKEN = re.compile(
    r'(?P<quoted>["\u201c\u201d][^"\u201c\u201d]*["\u201c\u201d]?)'
    r"|(?P<sep>[,;])"
    r'|(?P<dash>-)(?=["\u201c\u201d])'
    r'|(?P<word>[^\s,;"\u201c\u201d]+)'
)
_QUOTES = '"\u201c\u201d'
_NEGATORS = {"not", "without"}
# Around a word, the characters that do not make it another word: "people." is "people".
_EDGE = ".!?:()[]'"


@dataclass(frozen=True)
class QueryPart:
    """One part of a query: its text (searched with expansion and ensemble as one query) and
    whether the photo must show it ("and") or must not ("not")."""

    text: str
    kind: PartKind = AND


@dataclass(frozen=True)
class ParsedQuery:
    query: str  # as typed
    parts: tuple[QueryPart, ...]

    @property
    def plain(self) -> bool:
        """One part that must be there: searched as one query, exactly as before."""
        return len(self.parts) == 1 and self.parts[0].kind == AND

    @property
    def positive(self) -> tuple[QueryPart, ...]:
        return tuple(p for p in self.parts if p.kind == AND)

    @property
    def negative(self) -> tuple[QueryPart, ...]:
        return tuple(p for p in self.parts if p.kind == NOT)


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "quoted", "sep", "dash"
    text: str  # a word as typed; a quoted piece without its quotes


# Is this span of words (lower case) a phrase of the dictionary? Then its operators are words.
IsPhrase = Callable[[str], bool]


def parse_query(query: str, is_phrase: IsPhrase | None = None, longest: int = 4) -> ParsedQuery:
    """The parts of a query (see the module docstring); `is_phrase` says whether a run of up
    to `longest` words is a dictionary phrase, whose "and"/"not" are then left alone."""
    tokens = [_token(m) for m in _TOKEN.finditer(query)]
    words = [t.text.lower().strip(_EDGE) if t.kind == "word" else None for t in tokens]
    operator = [
        w is not None
        and w in (_NEGATORS | {"and"})
        and not _in_phrase(words, i, is_phrase, longest)
        for i, w in enumerate(words)
    ]
    if not any(operator) and not any(t.kind in ("quoted", "dash") or _excludes(t) for t in tokens):
        text = query.strip()
        return ParsedQuery(query, (QueryPart(text),) if text else ())

    parts: list[tuple[PartKind, list[_Token]]] = []
    current: tuple[PartKind, list[_Token]] = (AND, [])
    positive = current  # the part that words after a "-word" go on with
    parts.append(current)
    negate_next = False
    for i, token in enumerate(tokens):
        if token.kind == "dash":
            negate_next = True
            continue
        if negate_next or _excludes(token):
            text = token.text if negate_next else token.text[1:]
            negate_next = False
            parts.append((NOT, [_Token("quoted" if token.kind == "quoted" else "word", text)]))
            if current[0] == NOT:  # "-x" ends a "without ..." clause
                current = positive
            continue
        if token.kind == "sep":
            if current[0] == NOT:
                current = (AND, [])
                positive = current
                parts.append(current)
            else:
                current[1].append(token)
            continue
        if operator[i]:
            word = words[i]
            if word == "and":
                kind: PartKind = AND
                if i + 1 < len(tokens) and operator[i + 1] and words[i + 1] in _NEGATORS:
                    continue  # "and not": the "not" starts the part
            else:
                kind = NOT
                # "but not": "but" belongs to the operator, not to the part before it.
                if current[1] and current[1][-1].text.lower() == "but":
                    current[1].pop()
            current = (kind, [])
            if kind == AND:
                positive = current
            parts.append(current)
            continue
        current[1].append(token)
    out = []
    for kind, part_tokens in parts:
        text = _join(part_tokens)
        if text:
            out.append(QueryPart(text, kind))
    return ParsedQuery(query, tuple(out))


def _excludes(token: _Token) -> bool:
    """A "-word": a dash, then a word (not a dash alone, not "t-shirt")."""
    return token.kind == "word" and len(token.text) > 1 and token.text[0] == "-"


def _token(match: re.Match[str]) -> _Token:
    kind = match.lastgroup or "word"
    text = match.group()
    if kind == "quoted":
        text = text.strip(_QUOTES)
    return _Token(kind, text)


def _in_phrase(
    words: list[str | None], index: int, is_phrase: IsPhrase | None, longest: int
) -> bool:
    """Whether word `index` is inside a dictionary phrase of consecutive words around it."""
    if is_phrase is None:
        return False
    for first in range(max(0, index - longest + 1), index + 1):
        for last in range(max(first + 1, index), min(len(words), first + longest)):
            span = words[first : last + 1]
            if any(w is None for w in span):
                break
            if is_phrase(" ".join(w for w in span if w is not None)):
                return True
    return False


def _join(tokens: list[_Token]) -> str:
    """The part's text: its pieces with single spaces, a separator against the word before,
    and no separator at either end."""
    while tokens and tokens[-1].kind == "sep":
        tokens = tokens[:-1]
    while tokens and tokens[0].kind == "sep":
        tokens = tokens[1:]
    out = ""
    for token in tokens:
        piece = token.text.strip() if token.kind == "quoted" else token.text
        if not piece:
            continue
        if token.kind == "sep" or not out:
            out += piece
        else:
            out += " " + piece
    return out.strip()
