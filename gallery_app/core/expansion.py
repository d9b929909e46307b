"""Query -> weighted variants, from the built-in dictionary plus an optional user file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

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
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Variant:
    """One phrasing of the query: the text, its weight, and the dictionary term it came from."""

    text: str
    weight: float
    source: str | None = None  # "dog -> puppy"; None for the query as typed


@dataclass(frozen=True)
class Entry:
    """A synonym set (interchangeable words) plus broader/related words with lower weights."""

    head: str
    synonyms: tuple[str, ...]
    related: tuple[tuple[str, float], ...] = ()
    category: str = ""

    @property
    def members(self) -> tuple[str, ...]:
        return (self.head, *self.synonyms)


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
    """Synonym sets indexed by every member, so "puppy" finds the "dog" set too."""

    entries: dict[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_member: dict[str, Entry] = {}
        for entry in self.entries.values():
            for member in entry.members:
                self._by_member[member] = entry
        self._longest = max((len(m.split()) for m in self._by_member), default=1)

    def __len__(self) -> int:
        return len(self.entries)

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
        return Dictionary(entries)


def parse_dictionary(data: Any, origin: str) -> tuple[dict[str, Entry], list[str]]:
    """Validate the JSON structure; returns (entries, heads to remove)."""
    if not isinstance(data, dict) or not isinstance(data.get("terms", {}), dict):
        raise ConfigError(f'{origin}: expected an object with a "terms" object')
    entries: dict[str, Entry] = {}
    for raw_head, body in data.get("terms", {}).items():
        head = _clean_term(raw_head, origin)
        if not isinstance(body, dict):
            raise ConfigError(f"{origin}: term {raw_head!r} must be an object")
        synonyms = body.get("synonyms", [])
        related = body.get("related", {})
        if not isinstance(synonyms, list) or not isinstance(related, dict):
            raise ConfigError(
                f'{origin}: term {raw_head!r} needs "synonyms" as a list and '
                '"related" as an object of word -> weight'
            )
        related_pairs = []
        for word, weight in related.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigError(
                    f"{origin}: weight of {word!r} under {raw_head!r} is not a number"
                )
            if not 0 < weight <= 1:
                raise ConfigError(
                    f"{origin}: weight of {word!r} under {raw_head!r} must be in (0, 1]"
                )
            related_pairs.append((_clean_term(word, origin), float(weight)))
        entries[head] = Entry(
            head=head,
            synonyms=tuple(
                dict.fromkeys(t for t in (_clean_term(s, origin) for s in synonyms) if t != head)
            ),
            related=tuple(related_pairs),
            category=str(body.get("category", "")),
        )
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


class Expander:
    """Expands a query in-phrase: one dictionary term at a time is swapped for an alternative."""

    def __init__(
        self, dictionary: Dictionary | None = None, max_variants: int = DEFAULT_MAX_VARIANTS
    ) -> None:
        if max_variants < 1:
            raise ValueError("max_variants must be at least 1")
        self.dictionary = dictionary if dictionary is not None else builtin_dictionary()
        self.max_variants = max_variants

    def expand(self, query: str, max_variants: int | None = None) -> list[Variant]:
        cap = self.max_variants if max_variants is None else max_variants
        if cap < 1:
            raise ValueError("max_variants must be at least 1")
        text = " ".join(query.lower().split())
        variants = [Variant(text, 1.0, None)]
        if not text:
            return []
        if cap == 1:
            return variants
        per_match = [self._alternatives(text, span) for span in self._matches(text)]
        # Best weights first; equal weights alternate between the matched terms so that
        # "dog on the beach" yields both "puppy on the beach" and "dog on the seashore".
        ranked = sorted(
            (cand for cands in per_match for cand in cands),
            key=lambda cand: (-cand[0], cand[1]),
        )
        seen = {text}
        for _weight, _rank, variant in ranked:
            if len(variants) >= cap:
                break
            if variant.text not in seen:
                seen.add(variant.text)
                variants.append(variant)
        return variants

    def _matches(self, text: str) -> list[tuple[int, int, Entry, str, bool]]:
        """Non-overlapping dictionary matches (char start, end, entry, member, plural)."""
        words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        found = []
        i = 0
        while i < len(words):
            for length in range(min(self.dictionary._longest, len(words) - i), 0, -1):
                start, end = words[i][0], words[i + length - 1][1]
                phrase = " ".join(text[a:b] for a, b in words[i : i + length])
                hit = self.dictionary.lookup(phrase)
                if hit is not None:
                    found.append((start, end, *hit))
                    i += length
                    break
            else:
                i += 1
        return found

    @staticmethod
    def _alternatives(
        text: str, match: tuple[int, int, Entry, str, bool]
    ) -> list[tuple[float, int, Variant]]:
        start, end, entry, member, plural = match
        options = [(m, 1.0) for m in entry.members if m != member] + list(entry.related)
        out = []
        for rank, (word, weight) in enumerate(options):
            replacement = pluralize(word) if plural else word
            variant_text = text[:start] + replacement + text[end:]
            out.append((weight, rank, Variant(variant_text, weight, f"{member} -> {word}")))
        return out
