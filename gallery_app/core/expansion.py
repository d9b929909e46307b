"""Query -> weighted variants, from the built-in dictionary plus an optional user file.

Dictionary rules (resources/expansions.json; a user file follows the same ones, and
tests/core/test_expansion.py checks the built-in file against them):

- "synonyms" are other names for the same thing in a photo, each with one common sense: no
  kinds of it (espresso is not coffee, red wine is not wine), no parts or associations
  (beach -> sand), no word that names something else in a photo (coach, pupil, fall, jet).
  A word that is safe only inside a phrase enters as that phrase ("mountain lion").
  Synonyms weigh 1.0 and are averaged with the query as typed by the ensemble.
- "broader" holds true hypernyms only (dog -> pet, animal), at 0.5 in the built-in file. They
  are produced only with ``broader=True``, with kind "broader", never as synonyms; at 0.5 a
  photo that matches only the broader word stays below a true match under max.
  ("related" is the old name of "broader" and is still read from user files.)
- "compounds" are multi-word keys that are never swapped, so their words are not expanded on
  their own: "hot dog" keeps its dog, "niagara falls" its falls. In a user file a term with
  nothing to swap in ("hot dog": {}) is a compound too.
- A member (head or synonym) belongs to one entry only and never repeats its head.

Matching: the longest key wins wherever it starts ("christmas tree" before "tree"), each variant
swaps one term, plurals follow the matched word, "a"/"an" agree with the replacement, a variant
that doubles a word ("birthday birthday cake") is dropped, a multi-word replacement is not put
where the term modifies the next word (not "marriage ceremony dress"), and a negated part ("not
a dog", "no people", "without dogs", "-dog") is left as typed.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from gallery_app.core.errors import ConfigError

DEFAULT_MAX_VARIANTS = 8
USER_FILE_NAME = "expansions.json"

_IRREGULAR_PLURALS = {
    "person": "people",
    "child": "children",
    "man": "men",
    "woman": "women",
    "mouse": "mice",
    "goose": "geese",
    "foot": "feet",
    "tooth": "teeth",
    "leaf": "leaves",
    "knife": "knives",
    "wolf": "wolves",
    "calf": "calves",
    "loaf": "loaves",
    "shelf": "shelves",
    "ox": "oxen",
}
_IRREGULAR_SINGULARS = {plural: singular for singular, plural in _IRREGULAR_PLURALS.items()}
_NOT_COMPOUNDS = {"human", "humans", "german", "germans", "shaman", "shamans", "caiman", "caimans"}
_UNCOUNTABLE = {
    "sheep", "fish", "deer", "moose", "bison", "salmon", "series", "species", "grass", "glass",
    "rain", "snow", "fog", "mist", "hair", "food", "rice", "news", "christmas", "luggage",
    "furniture", "wildlife", "cattle", "aircraft", "equipment", "clothing", "scenery", "traffic",
    "music", "sand", "water", "seafood", "sushi", "spaghetti", "pasta", "bread", "cheese",
}  # fmt: skip
# Words, with an inner apostrophe kept ("hallowe'en", "bird's"): a leading "-" is read apart.
# Mass nouns take no "a": "a landscape" -> "scenery", "a chair" -> "furniture". (Zero plurals
# such as sheep, deer and aircraft in _UNCOUNTABLE do take one.)
_MASS_NOUNS = _UNCOUNTABLE - {"sheep", "fish", "deer", "moose", "bison", "salmon", "series",
                              "species", "aircraft"}  # fmt: skip
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# Punctuation between two words ends a phrase: a negation's reach, a compound modifier.
_PHRASE_BREAK = re.compile(r"[,;:.!?()\[\]/|]")

_NEGATIONS = {"not", "no", "without", "except", "excluding", "nor", "never"}
_ARTICLES = {"a", "an", "the", "any", "some"}
# Words after which a negated phrase is over: "no people on the beach" negates "people" only.
# "and"/"or" are not among them, so "without dogs or cats" keeps both as typed (the safe side).
_NEGATION_ENDS = {
    "but", "with", "on", "in", "at", "near", "by", "under", "over", "behind", "beside",
    "between", "next", "from", "to", "into", "onto", "during", "while", "after", "before",
    "against", "among", "around", "through", "across", "along", "inside", "outside", "above",
    "below", "beneath", "beyond", "for", "is", "are",
}  # fmt: skip
# A term followed by any other word modifies it ("wedding dress"): there only one-word
# replacements are put in, since "marriage ceremony dress" is no longer a dress.
_FUNCTION_WORDS = _ARTICLES | _NEGATIONS | _NEGATION_ENDS | {
    "and", "or", "of", "as", "was", "were", "be", "being", "been", "has", "have", "had", "this",
    "that", "these", "those", "his", "her", "their", "its", "my", "our", "your", "every", "each",
    "all", "both", "there", "here", "who", "which", "where", "when", "up", "down", "off", "out",
    "toward", "towards", "via", "past", "&",
}  # fmt: skip
# "a"/"an" follow the sound, not the letter: these start with a vowel sound after a consonant
# letter (or are read letter by letter), the next ones with a consonant sound after a vowel.
_AN_WORDS = {
    "hour", "hours", "hourly", "honest", "honour", "honor", "heir", "heiress", "rv",
    "suv", "mri", "fbi", "lcd", "led", "mp3", "x", "xray", "nfl", "nba", "hdr", "sos",
}  # fmt: skip
_A_WORDS = {
    "one", "once", "university", "unicorn", "uniform", "unit", "union", "unique", "universe",
    "unicycle", "usb", "user", "usual", "utensil", "utility", "ukulele", "uk", "urinal", "ewe",
    "european", "euro", "eucalyptus", "u",
}  # fmt: skip

VariantKind = Literal["query", "synonym", "broader"]


@dataclass(frozen=True)
class Variant:
    """One phrasing of the query: the text, its weight, the swap it came from, and its kind.

    The first variant of an expansion is always the query as typed (kind "query", weight 1.0);
    "synonym" variants name the same thing; "broader" ones a wider class, only when asked for.
    """

    text: str
    weight: float
    source: str | None = None  # "dog -> pooch"; None for the query as typed
    kind: VariantKind = "query"


@dataclass(frozen=True)
class Entry:
    """A synonym set (interchangeable words) plus broader words with lower weights.

    An entry with neither is a compound: a multi-word key that is matched so that the words
    inside it are left alone ("hot dog"), and is never swapped itself.
    """

    head: str
    synonyms: tuple[str, ...]
    broader: tuple[tuple[str, float], ...] = ()
    category: str = ""

    @property
    def members(self) -> tuple[str, ...]:
        return (self.head, *self.synonyms)

    @property
    def is_compound(self) -> bool:
        return not self.synonyms and not self.broader


def indefinite_article(phrase: str) -> str:
    """The article, "a" or "an", for the phrase after it, by the sound of its first word."""
    word = phrase.split(" ", 1)[0]
    if word in _AN_WORDS:
        return "an"
    if word in _A_WORDS or word.startswith("eu"):
        return "a"
    if len(word) == 1:  # a letter read out: "an f", "a b"
        return "an" if word in "aefhilmnorsx" else "a"
    return "an" if word[:1] in "aeiou" else "a"


def _irregular(word: str, table: dict[str, str]) -> str | None:
    """Irregular forms, also as the tail of a compound: bookshelf -> bookshelves."""
    if word in table:
        return table[word]
    for ending, replacement in table.items():
        compound_ok = len(ending) >= 4 or ending in ("man", "men")
        if compound_ok and word.endswith(ending) and word not in _NOT_COMPOUNDS:
            return word[: -len(ending)] + replacement
    return None


def pluralize(phrase: str) -> str:
    *rest, last = phrase.split(" ")
    irregular = _irregular(last, _IRREGULAR_PLURALS)
    if last in _UNCOUNTABLE:
        plural = last
    elif irregular is not None:
        plural = irregular
    elif re.search(r"[^aeiou]y$", last):
        plural = last[:-1] + "ies"
    elif re.search(r"(s|x|z|ch|sh)$", last):
        plural = last + "es"
    else:
        plural = last + "s"
    return " ".join([*rest, plural])


def singular_candidates(word: str) -> list[str]:
    """Possible singular forms of a word that may be plural (checked against the dictionary)."""
    irregular = _irregular(word, _IRREGULAR_SINGULARS)
    candidates = [irregular] if irregular is not None else []
    if word.endswith("ies") and len(word) > 4:
        candidates.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        candidates.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        candidates.append(word[:-1])
    return candidates


@dataclass
class Dictionary:
    """Synonym sets and compounds indexed by every member, so "pooch" finds the "dog" set too."""

    entries: dict[str, Entry] = field(default_factory=dict)
    user_heads: frozenset[str] = frozenset()  # the heads the user's file wrote (see merged)

    def __post_init__(self) -> None:
        self._by_member: dict[str, Entry] = {}
        for entry in self.entries.values():
            for member in entry.members:
                self._by_member[member] = entry
        self._longest = max((len(m.split()) for m in self._by_member), default=1)

    def __len__(self) -> int:
        """The head terms: entries with something to swap in (compounds are not counted)."""
        return sum(1 for entry in self.entries.values() if not entry.is_compound)

    @property
    def compounds(self) -> list[str]:
        return [head for head, entry in self.entries.items() if entry.is_compound]

    def lookup(self, phrase: str) -> tuple[Entry, str, bool] | None:
        """(entry, the member matched, was it plural) for a phrase, or None."""
        if phrase in self._by_member:
            return self._by_member[phrase], phrase, False
        *rest, last = phrase.split(" ")
        for singular in singular_candidates(last):
            member = " ".join([*rest, singular])
            # Only a real plural of the member counts: "manes" is not "men", "gales" not "gals".
            if member in self._by_member and last in (pluralize(singular), singular + "s"):
                return self._by_member[member], member, True
        return None

    def merged(self, overrides: Mapping[str, Entry], removed: Iterable[str] = ()) -> Dictionary:
        """A new dictionary where user entries replace built-in ones with the same head."""
        entries = dict(self.entries)
        for head in removed:
            entries.pop(head, None)
        entries.update(overrides)
        return Dictionary(entries, self.user_heads | frozenset(overrides))

    def user_part(self) -> Dictionary:
        """Only the entries the user's file wrote: they apply to queries in any language."""
        heads = self.user_heads & self.entries.keys()
        return Dictionary({head: self.entries[head] for head in heads}, frozenset(heads))


def parse_dictionary(data: Any, origin: str) -> tuple[dict[str, Entry], list[str]]:
    """Validate the JSON structure; returns (entries, heads to remove).

    Compounds come back among the entries, as entries with nothing to swap in.
    """
    if not isinstance(data, dict) or not isinstance(data.get("terms", {}), dict):
        raise ConfigError(f'{origin}: expected an object with a "terms" object')
    entries: dict[str, Entry] = {}
    for raw_head, body in data.get("terms", {}).items():
        head = _clean_term(raw_head, origin)
        if not isinstance(body, dict):
            raise ConfigError(f"{origin}: term {raw_head!r} must be an object")
        if "broader" in body and "related" in body:
            raise ConfigError(
                f'{origin}: term {raw_head!r} has both "broader" and "related"; keep "broader" '
                '("related" is its old name)'
            )
        synonyms = body.get("synonyms", [])
        broader = body.get("broader", body.get("related", {}))
        if not isinstance(synonyms, list) or not isinstance(broader, dict):
            raise ConfigError(
                f'{origin}: term {raw_head!r} needs "synonyms" as a list and '
                '"broader" as an object of word -> weight'
            )
        broader_pairs = []
        for word, weight in broader.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigError(
                    f"{origin}: weight of {word!r} under {raw_head!r} is not a number"
                )
            if not 0 < weight <= 1:
                raise ConfigError(
                    f"{origin}: weight of {word!r} under {raw_head!r} must be in (0, 1]"
                )
            broader_pairs.append((_clean_term(word, origin), float(weight)))
        entries[head] = Entry(
            head=head,
            synonyms=tuple(
                dict.fromkeys(t for t in (_clean_term(s, origin) for s in synonyms) if t != head)
            ),
            broader=tuple(broader_pairs),
            category=str(body.get("category", "")),
        )
    compounds = data.get("compounds", [])
    if not isinstance(compounds, list):
        raise ConfigError(f'{origin}: "compounds" must be a list of multi-word terms')
    for raw_compound in compounds:
        compound = _clean_term(raw_compound, origin)
        if " " not in compound:
            raise ConfigError(
                f"{origin}: compound {raw_compound!r} is one word; a compound keeps the words "
                "of a phrase from being swapped on their own, so it needs two or more"
            )
        entries.setdefault(compound, Entry(compound, ()))
    removed = data.get("remove", [])
    if not isinstance(removed, list):
        raise ConfigError(f'{origin}: "remove" must be a list of terms')
    return entries, [_clean_term(r, origin) for r in removed]


def _clean_term(term: Any, origin: str) -> str:
    if not isinstance(term, str) or not term.strip():
        raise ConfigError(f"{origin}: every term must be a non-empty string, got {term!r}")
    return " ".join(term.lower().split())


def _read_json(path: Path) -> Any:
    """The user's expansions file, through the one safe loader: every fault names the file."""
    from gallery_app.core.jsonfile import read_json_file

    fix = "Fix it, or delete it to use the built-in dictionary only."
    try:
        return read_json_file(path, "Expansions file", fix=fix)
    except FileNotFoundError as exc:  # removed between the caller's check and the read
        raise ConfigError(f"Expansions file {path} disappeared while being read.") from exc


def builtin_dictionary() -> Dictionary:
    source = resources.files("gallery_app.resources").joinpath("expansions.json")
    entries, _ = parse_dictionary(json.loads(source.read_text("utf-8")), "built-in expansions")
    return Dictionary(entries)


def load_dictionary(user_file: Path | None = None) -> Dictionary:
    """The built-in dictionary, extended/overridden by the user's file when it exists."""
    dictionary = builtin_dictionary()
    if user_file is not None and user_file.exists():
        entries, removed = parse_dictionary(_read_json(user_file), str(user_file))
        dictionary = dictionary.merged(entries, removed)
    return dictionary


@dataclass(frozen=True)
class _Match:
    """A dictionary key found in the query: its words [first, last], char span and entry."""

    first: int
    last: int
    start: int
    end: int
    entry: Entry
    member: str
    plural: bool


class Expander:
    """Expands a query in-phrase: one dictionary term at a time is swapped for an alternative."""

    def __init__(
        self, dictionary: Dictionary | None = None, max_variants: int = DEFAULT_MAX_VARIANTS
    ) -> None:
        if max_variants < 1:
            raise ValueError("max_variants must be at least 1")
        self.dictionary = dictionary if dictionary is not None else builtin_dictionary()
        self.max_variants = max_variants

    def user_only(self) -> Expander:
        """An expander with the user's own entries only (see Dictionary.user_part)."""
        return Expander(self.dictionary.user_part(), self.max_variants)

    def expand(
        self, query: str, broader: bool = False, max_variants: int | None = None
    ) -> list[Variant]:
        """The query as typed, then its synonym variants, then (when asked) broader ones.

        max_variants counts the query and its synonyms, which the ensemble averages; broader
        variants come after them, at most max_variants of those too, so asking for them never
        displaces a synonym.
        """
        cap = self.max_variants if max_variants is None else max_variants
        if cap < 1:
            raise ValueError("max_variants must be at least 1")
        text = " ".join(query.lower().split())
        if not text:
            return []
        variants = [Variant(text, 1.0)]
        if cap == 1 and not broader:
            return variants
        words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        negated = _negated_words(text, words)
        matches = [
            match
            for match in self._matches(text, words)
            if not match.entry.is_compound
            and not any(i in negated for i in range(match.first, match.last + 1))
        ]
        seen = {text}
        kinds: list[tuple[VariantKind, int]] = [("synonym", cap - 1)]
        if broader:
            kinds.append(("broader", cap))
        for kind, room in kinds:
            # Best weights first; equal weights alternate between the matched terms so that
            # "dog on the beach" yields both "pooch on the beach" and "dog on the seashore".
            ranked = sorted(
                (cand for match in matches for cand in _alternatives(text, words, match, kind)),
                key=lambda cand: (-cand[0], cand[1]),
            )
            added = 0
            for _weight, _rank, variant in ranked:
                if added >= room:
                    break
                if variant.text not in seen:
                    seen.add(variant.text)
                    variants.append(variant)
                    added += 1
        return variants

    def _matches(self, text: str, words: list[tuple[int, int]]) -> list[_Match]:
        """Non-overlapping dictionary matches, the longest first wherever it starts.

        Longest first, not left to right: in "big hot dog" the compound "hot dog" must win
        even though a shorter key could start earlier.
        """
        candidates: list[_Match] = []
        for first in range(len(words)):
            for length in range(1, min(self.dictionary._longest, len(words) - first) + 1):
                last = first + length - 1
                if any(
                    _PHRASE_BREAK.search(text, words[i][1], words[i + 1][0])
                    for i in range(first, last)
                ):
                    break
                phrase = " ".join(_word_at(text, words, i) for i in range(first, last + 1))
                hit = self.dictionary.lookup(phrase)
                if hit is not None:
                    candidates.append(_Match(first, last, words[first][0], words[last][1], *hit))
        candidates.sort(key=lambda m: (m.first - m.last, m.first))
        taken: set[int] = set()
        found = []
        for match in candidates:
            span = set(range(match.first, match.last + 1))
            if not span & taken:
                taken |= span
                found.append(match)
        return sorted(found, key=lambda m: m.first)


def _word_at(text: str, words: list[tuple[int, int]], index: int) -> str:
    return text[words[index][0] : words[index][1]]


def _gap(text: str, words: list[tuple[int, int]], left: int) -> str:
    """The characters between word `left` and the next one."""
    return text[words[left][1] : words[left + 1][0]]


def _negated_words(text: str, words: list[tuple[int, int]]) -> set[int]:
    """Indices of the words a negation covers: they are left as typed, never expanded.

    "-dog" covers that word; "not"/"no"/"without"/... cover what follows up to a preposition,
    "but" or punctuation, once a content word has been seen ("not at night" covers "night").
    """
    negated: set[int] = set()
    for i, (start, _end) in enumerate(words):
        if start > 0 and text[start - 1] == "-" and (start == 1 or text[start - 2] == " "):
            negated.add(i)
    i = 0
    while i < len(words):
        if _word_at(text, words, i) not in _NEGATIONS:
            i += 1
            continue
        seen_content = False
        j = i + 1
        while j < len(words) and not _PHRASE_BREAK.search(_gap(text, words, j - 1)):
            word = _word_at(text, words, j)
            if seen_content and word in _NEGATION_ENDS:
                break
            negated.add(j)
            seen_content = seen_content or word not in _FUNCTION_WORDS
            j += 1
        i = j
    return negated


def _alternatives(
    text: str, words: list[tuple[int, int]], match: _Match, kind: VariantKind
) -> list[tuple[float, int, Variant]]:
    """The variants of one kind for one match: (weight, rank within the match, variant)."""
    entry = match.entry
    if kind == "synonym":
        options = [(m, 1.0) for m in entry.members if m != match.member]
    else:
        options = list(entry.broader)
    following = match.last + 1
    modifies_next = (
        following < len(words)
        and not _PHRASE_BREAK.search(_gap(text, words, match.last))
        and _word_at(text, words, following) not in _FUNCTION_WORDS
    )
    previous = match.first - 1
    has_article = (
        previous >= 0
        and _word_at(text, words, previous) in ("a", "an")
        and _gap(text, words, previous) == " "
    )
    doubled = _doubled_words(text)
    out = []
    for rank, (word, weight) in enumerate(options):
        replacement = pluralize(word) if match.plural else word
        if modifies_next and " " in replacement:
            continue
        before = text[: match.start]
        if has_article:
            article = (
                ""
                if replacement.split(" ")[-1] in _MASS_NOUNS
                else indefinite_article(replacement) + " "
            )
            before = text[: words[previous][0]] + article
        variant_text = before + replacement + text[match.end :]
        if _doubled_words(variant_text) > doubled:
            continue
        source = f"{match.member} -> {word}"
        out.append((weight, rank, Variant(variant_text, weight, source, kind)))
    return out


def _doubled_words(text: str) -> int:
    """How many times a word directly repeats the one before it."""
    tokens = _WORD.findall(text)
    return sum(1 for left, right in itertools.pairwise(tokens) if left == right)
