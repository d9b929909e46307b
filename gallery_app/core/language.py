"""The language of a query (a small deterministic heuristic) and which checkpoints read it.

Detection, in this order, needs no dependency and always gives the same answer:

1. Letters of a non-Latin script (Cyrillic, Greek, CJK, Arabic, ...) make a query non-English.
2. Latin-script queries are scored against short lists of common words of Spanish, French,
   German, Italian, Portuguese and Dutch: each distinct "strong" word (never an English word:
   "perro", "avec", "und") counts 2, each "weak" one (also seen in English names or loanwords:
   "la", "de", "los", "mit") counts 1. A query is that language when it holds a strong word
   (or three weak ones) and its score is above the count of English function words in it
   ("a", "the", "of", ...).

Accents alone decide nothing, so "café", "naïve", "jalapeño", "déjà vu" and "São Paulo" stay
English; so do names such as "los angeles" or "cirque du soleil" (weak words only). The price
is that a foreign query made only of words missing from the lists ("hund am strand") reads as
English: it is then searched as before, with the English dictionary, which finds little to swap.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gallery_app.core.expansion import Expander, Variant

MULTILINGUAL = "multilingual"
ENGLISH = "english"
# Named in the hint shown when an English-only checkpoint gets a query in another language.
MULTILINGUAL_SUGGESTION = "google/siglip2-base-patch16-224"

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# English function words: what a query's foreign words must outweigh.
_ENGLISH = _words(
    "a an the of in on at with without by for from to into near under over and or is are "
    "my our your his her their its this that these those some two three photo photos picture "
    "pictures image images"
)

# (strong, weak) per language. Strong words are not English words; weak ones also appear in
# English text (names, loanwords), so one of them alone never decides.
_LANGUAGES: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {
    "es": (
        "Spanish",
        _words(
            "perro perros gato gatos playa playas montaña montañas nieve niños niñas boda "
            "cumpleaños atardecer noche árbol árboles coche ciudad mujer hombre una unos unas "
            "por sobre junto bajo lluvia cocina comida"
        ),
        _words("el la los las de del en y con para al un"),
    ),
    "fr": (
        "French",
        _words(
            "chien chiens plage neige montagne montagnes enfants voiture mariage anniversaire "
            "gâteau coucher nuit arbre arbres ville homme fleurs avec dans sur une aux pluie "
            "mer forêt"
        ),
        _words("le la les des du et au un en de pour sous femme chez sans soleil"),
    ),
    "de": (
        "German",
        _words(
            "hund hunde katze katzen meer schnee berge hochzeit geburtstag kuchen "
            "sonnenuntergang nacht baum bäume stadt frau blumen und auf ein eine einem einen "
            "einer vom zum zur beim ohne nicht unter bei nach regen wald strände"
        ),
        _words("der das den dem des von mit im kinder mann über berg"),
    ),
    "it": (
        "Italian",
        _words(
            "cani gatto gatti spiaggia neve montagna montagne bambini macchina compleanno "
            "tramonto notte albero alberi città uomo fiori sulla sul nella delle degli gli "
            "pioggia bosco"
        ),
        _words("il lo la di da e con una uno dei nel della matrimonio torta donna"),
    ),
    "pt": (
        "Portuguese",
        _words(
            "cão cães cachorro cachorros gato gatos praia neve montanha crianças casamento "
            "aniversário noite árvore árvores cidade mulher homem uma pelo sobre chuva floresta"
        ),
        _words("na da em com os ao sem e carro bolo flores"),
    ),
    "nl": (
        "Dutch",
        _words(
            "hond honden katten sneeuw kinderen bruiloft verjaardag taart zonsondergang "
            "nacht stad vrouw bloemen een bij aan zonder niet regen bos"
        ),
        _words("de het op van en kat"),
    ),
}

# Readable names of the scripts a query may be in (the first word of a letter's Unicode name).
_SCRIPT_NAMES = {
    "CJK": "Chinese or Japanese",
    "HIRAGANA": "Japanese",
    "KATAKANA": "Japanese",
    "HANGUL": "Korean",
    "CYRILLIC": "Cyrillic-script",
    "GREEK": "Greek",
    "ARABIC": "Arabic",
    "HEBREW": "Hebrew",
    "DEVANAGARI": "Devanagari-script",
    "THAI": "Thai",
}


@dataclass(frozen=True)
class QueryLanguage:
    """What a query looks like: a language code ("es") or a script ("cyrillic"), a name for
    messages, and the words or letters that decided it."""

    code: str
    name: str
    evidence: tuple[str, ...]


def detect_language(query: str) -> QueryLanguage | None:
    """The query's language when it does not look English; None when it does."""
    text = " ".join(query.lower().split())
    scripts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            script = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
            if script != "LATIN":
                scripts[script] += 1
    if scripts:
        script, _count = scripts.most_common(1)[0]
        letters = tuple(dict.fromkeys(c for c in text if _script_of(c) == script))[:5]
        name = _SCRIPT_NAMES.get(script, f"{script.title()}-script")
        return QueryLanguage(script.lower(), name, letters)

    words = frozenset(_WORD.findall(text))
    english = len(words & _ENGLISH)
    best: QueryLanguage | None = None
    best_score = 0
    for code, (name, strong, weak) in _LANGUAGES.items():
        strong_hits, weak_hits = words & strong, words & weak
        score = 2 * len(strong_hits) + len(weak_hits)
        if not strong_hits and len(weak_hits) < 3:
            continue  # "cirque du soleil", "rio de janeiro": names, read in English text
        if score > best_score:
            evidence = tuple(sorted(strong_hits)) + tuple(sorted(weak_hits))
            best, best_score = QueryLanguage(code, name, evidence), score
    if best is not None and best_score >= 2 and best_score > english:
        return best
    return None


def _script_of(char: str) -> str:
    return unicodedata.name(char, "UNKNOWN").split(" ", 1)[0] if char.isalpha() else ""


def catalog_languages(model_id: str) -> str | None:
    """The model catalog's word on a checkpoint: MULTILINGUAL, ENGLISH, or None when the
    catalog does not list it.

    Hook for the model catalog (issue 14, part 1): once it lands, look model_id up there and
    return its languages. Until then no checkpoint is listed and the checkpoint decides.
    """
    return None


def is_multilingual(model_id: str, gemma_tokenizer: bool) -> bool:
    """Whether a checkpoint reads queries in many languages.

    The catalog decides for the checkpoints it lists (catalog_languages); otherwise the
    checkpoint: SigLIP 2 (the Gemma tokenizer, trained on multilingual WebLI) is, and so are
    the multilingual SigLIP ones ("...-i18n", "...-multilingual"); other SigLIP ones are
    English-only.
    """
    listed = catalog_languages(model_id)
    if listed is not None:
        return listed == MULTILINGUAL
    if gemma_tokenizer:
        return True
    name = PurePosixPath(model_id.replace("\\", "/").rstrip("/")).name.lower()
    return "i18n" in name or "multilingual" in name


@dataclass(frozen=True)
class LanguageDecision:
    """How a query is searched, given its language and the checkpoint's.

    as_typed: the query alone (plus the user's own expansions), without the built-in English
    dictionary. note: what was decided, for the debug panel ("" for English). hint: one line
    for the user when an English-only checkpoint gets another language ("" otherwise).
    """

    language: QueryLanguage | None
    as_typed: bool
    note: str
    hint: str


def decide(query: str, multilingual: bool, model_id: str) -> LanguageDecision:
    language = detect_language(query)
    if language is None:
        return LanguageDecision(None, False, "", "")
    looks = f"Query looks {language.name} ({', '.join(language.evidence)})"
    if multilingual:
        note = (
            f"{looks}: searched as typed with this multilingual model; the built-in English "
            "dictionary was not applied (your expansions file still is)."
        )
        return LanguageDecision(language, True, note, "")
    model = model_id or "this model"
    note = f"{looks}; {model} was trained on English text only."
    hint = (
        f"“{' '.join(query.split())}” looks {language.name}, but {model} reads English only: "
        f"for other languages use a multilingual model, e.g. --model {MULTILINGUAL_SUGGESTION}."
    )
    return LanguageDecision(language, False, note, hint)


def variants_as_typed(query: str, expander: Expander | None, broader: bool) -> list[Variant]:
    """A non-English query for a multilingual checkpoint: the query as typed (case kept, so
    the checkpoint lower-cases it its own way), plus the variants of the user's own
    expansions file, which may be in any language; never the built-in English dictionary."""
    from gallery_app.core.expansion import Variant

    typed = " ".join(query.split())
    if not typed:
        return []
    if expander is None:
        return [Variant(typed, 1.0)]
    expanded = expander.user_only().expand(query, broader=broader)
    return [Variant(typed, 1.0), *expanded[1:]]
