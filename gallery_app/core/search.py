"""Search: expand -> encode (cached) -> ensemble -> exact scan (or knn + exact re-rank) -> rank."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from gallery_app.core.calibrate import Calibration, image_calibration
from gallery_app.core.expansion import Dictionary, Expander, Variant, pluralize
from gallery_app.core.filters import PhotoFilter, filtered_snapshot
from gallery_app.core.indexer import CancelToken, Progress, ProgressCallback
from gallery_app.core.language import LanguageDecision, decide, variants_as_typed
from gallery_app.core.library import Library
from gallery_app.core.metadata import MetadataMatcher, PhotoBoosts, RowBoosts, hybrid_score
from gallery_app.core.query import AND, NOT, ParsedQuery, QueryPart, parse_query
from gallery_app.core.vectors import EXACT_SCAN_MAX, VectorSnapshot, matrix_cosines, vector_store

DEFAULT_TOP_K = 20
MIN_CANDIDATES = 100
# Beyond EXACT_SCAN_MAX the graph proposes MIN_CANDIDATES (or top_k) candidates for the exact
# re-rank, and a larger graph needs a wider search for the same recall. Measured
# (benchmarks/pg_scale.py, simulated 768-d vectors with duplicates, text-like queries, 100
# candidates; RESULTS.md), recall@10 after the re-rank at 100k photos: 0.9935 with pgvector's
# ef_search 200; at 1M: 0.9635 (pgvector) and 0.9725 (hnswlib) with ef 200, 0.9865 and 0.9875
# with ef 400. Asking for 400 candidates instead of widening the search gained no recall on
# pgvector and cost 4x the latency. So the search width grows with the library: ef at least
# one per PHOTOS_PER_EF photos (400 at 1M); below ~500k the backends' own minimum decides.
PHOTOS_PER_EF = 2_500
TEXT_CACHE_SIZE = 1024
# Prompts per forward while precomputing: small, because a search typed meanwhile waits for
# the batch in flight. Measured on the 2-core benchmark CPU (SigLIP-base text tower): fp32
# 93 / 69 / 66 / 68 ms a prompt at batch 1 / 4 / 8 / 16, int8 33 / 22 / 22 / 23: batch 4 is
# within 5% of the best and holds a search back at most ~280 ms (fp32), ~90 ms (int8).
PRECOMPUTE_BATCH = 4
_STORE_CHUNK = 500  # prompts per SQLite IN (...) lookup

# How the variants of a query become one score per photo.
ENSEMBLE = "ensemble"  # one text vector e = normalize(sum of weight x unit text vector)
MAX = "max"  # the best weight x score over the variants: an OR, which can only raise scores
AGGREGATES = (ENSEMBLE, MAX)
# Variant kinds: the query as typed, its synonyms (both go into the ensemble), broader terms.
QUERY, SYNONYM, BROADER = "query", "synonym", "broader"
IMAGE = "image"  # the one column of an image query (find similar): no prompt, no text scale

if TYPE_CHECKING:
    from gallery_app.core.similar import ImageQuery


class TextEncoder(Protocol):
    dim: int

    def prompt(self, text: str) -> str: ...

    def encode_prompts(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class PromptVariant:
    """A variant of the query and the exact string the tokenizer was given for it.

    kind is "query", "synonym" or "broader"; "" means unknown, read from the weight (see
    `variant_kind`). A column that scores the ensemble itself has kind "ensemble" and no
    prompt of its own.
    """

    text: str
    prompt: str | None
    weight: float
    source: str | None = None
    kind: str = ""


def variant_kind(variant: PromptVariant | Variant) -> str:
    """The kind a variant says it is; without one (a PromptVariant built by hand), the query
    as typed is the one without a source, a full-weight alternative a synonym, a lighter one
    broader."""
    kind = getattr(variant, "kind", "") or ""
    if kind:
        return str(kind)
    if variant.source is None:
        return QUERY
    return SYNONYM if variant.weight >= 1.0 else BROADER


def prompt_variants(
    encoder: TextEncoder | Any,
    query: str,
    expander: Expander | None,
    broader: bool = False,
) -> tuple[PromptVariant, ...]:
    """The query's variants with their prompts: the query alone when expander is None, broader
    terms only when asked for. The one place a query becomes variants (search, tune, eval).

    A query in another language with a multilingual checkpoint is taken as typed, with the
    user's expansions but not the built-in English dictionary (see query_language)."""
    if query_language(encoder, query).as_typed:
        expanded = variants_as_typed(query, expander, broader)
    elif expander is None:
        expanded = [Variant(" ".join(query.lower().split()), 1.0)]
    else:
        expanded = expander.expand(query, broader=broader)
    out = []
    for v in expanded:
        if not v.text:
            continue
        kind = variant_kind(v)
        if kind == BROADER and not broader:
            continue
        out.append(PromptVariant(v.text, encoder.prompt(v.text), v.weight, v.source, kind))
    return tuple(out)


def query_language(encoder: TextEncoder | Any, query: str) -> LanguageDecision:
    """What the query's language means for this encoder's checkpoint (core/language.py)."""
    multilingual = bool(getattr(encoder, "multilingual", False))
    return decide(query, multilingual, str(getattr(encoder, "model_id", "") or ""))


def ensemble_vector(
    text: npt.NDArray[np.float32], weights: Sequence[float]
) -> npt.NDArray[np.float32]:
    """e = normalize(sum_i w_i t_i) of unit text vectors t_i; one vector is itself, unchanged,
    so that a single prompt's score stays exactly the model's sigmoid(logits_per_image)."""
    if len(text) == 1:
        return np.asarray(text[0], dtype=np.float32)
    total = (np.asarray(weights, dtype=np.float64)[:, None] * text.astype(np.float64)).sum(axis=0)
    norm = float(np.linalg.norm(total))
    if not norm > 0:
        raise ValueError("the weighted variants cancel out: no ensemble direction")
    return (total / norm).astype(np.float32)


@dataclass(frozen=True)
class SearchResult:
    image_id: int
    path: str
    score: float  # weight x calibrated score of the winning column: what the ranking uses
    raw: float  # cosine of the winning column: cos(image, e) when the ensemble wins
    variant: str  # the winning column's text ("ensemble" when it is the ensemble)
    prompt: str | None  # None for the ensemble, which has no single prompt
    weight: float
    position: int = -1  # row in SearchHits (for SearchHits.variant_cosines)
    # The hybrid score (core/metadata.py): score = visual + (1 - visual) x boost, with visual
    # the calibrated visual score; None when no metadata was looked at (score is visual).
    visual: float | None = None
    boost: float = 0.0
    boost_reason: str = ""  # which tag or word matched, from which source
    parts: tuple[PartScore, ...] = ()  # a query of parts: each part's own cosine and score


@dataclass(frozen=True)
class PartScore:
    """One part of a query ("beach", "not people") for one photo: the part's raw cosine (its
    ensemble's, or its winning column's) and its calibrated score P, which `CombinedHits`
    multiplies (P, or 1 - P for a "not" part) into the photo's score."""

    text: str
    kind: str  # query.AND or query.NOT
    raw: float
    score: float  # the part's hybrid score: visual + (1 - visual) x boost (core/metadata.py)
    visual: float | None = None  # its calibrated visual score alone
    boost: float = 0.0  # the metadata boost of this part's words (0: nothing matched)
    boost_reason: str = ""


class CosineSource(Protocol):
    def __call__(self, positions: npt.NDArray[np.intp]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, eq=False)
class SearchHits:
    """What a search found, before calibration: re-ranking under a new T or c needs no model.

    `variants` are the columns of `raw`, what the ranking takes the best of (weight x score).
    With aggregate "ensemble" the first column is the ensemble vector e itself (kind
    "ensemble"; the variant itself when there is one), `members` are the variants averaged
    into it, and any further columns are broader terms asked for; with "max" each column is
    one variant. `variant_cosines` gives each listed variant's own cosine (members, then
    broader terms) for any result.
    """

    query: str
    variants: tuple[PromptVariant, ...]
    image_ids: npt.NDArray[np.int64]
    paths: tuple[str, ...]
    raw: npt.NDArray[np.float32]  # exact cosines, shape (n_images, len(variants))
    aggregate: str = MAX
    members: tuple[PromptVariant, ...] = ()
    per_variant: CosineSource | None = None  # own cosines of `listed`, by position
    complete: bool = True  # every photo of the library is here (not only top-k candidates)
    # Hits on a scale of their own (an image query: calibrate.image_calibration) carry it, and
    # rank with it whatever text calibration is given; None: the text calibration given.
    own_calibration: Calibration | None = None
    # The query's language, when not English (core/language.py): what was done about it, and
    # a one-line hint when the checkpoint reads English only.
    language_note: str = ""
    language_hint: str = ""
    boost: RowBoosts | None = None  # each row's metadata boost (Searcher._metadata_boosts)

    def calibration_for(self, text_calibration: Calibration) -> Calibration:
        """The calibration these hits are ranked with when the window's (or the command's)
        text calibration is `text_calibration`."""
        return self.own_calibration or text_calibration

    @property
    def listed(self) -> tuple[PromptVariant, ...]:
        """Every variant encoded for this search: the ensemble's members, then the rest."""
        if self.aggregate != ENSEMBLE:
            return self.variants
        return self.members + tuple(v for v in self.variants if v.kind == BROADER)

    @property
    def broader(self) -> tuple[PromptVariant, ...]:
        return tuple(v for v in self.listed if v.kind == BROADER)

    def variant_cosines(self, positions: npt.ArrayLike | None = None) -> npt.NDArray[np.float32]:
        """Each listed variant's own cosine, shape (len(positions), len(listed)); positions
        are rows of these hits (SearchResult.position), all rows when None."""
        where = (
            np.arange(len(self.image_ids), dtype=np.intp)
            if positions is None
            else np.asarray(positions, dtype=np.intp).ravel()
        )
        if self.aggregate != ENSEMBLE:
            return np.asarray(self.raw[where], dtype=np.float32)
        if self.per_variant is None:
            raise ValueError("these hits carry no per-variant cosines")
        return self.per_variant(where)

    def column_scores(
        self, calibration: Calibration
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], npt.NDArray[np.intp]]:
        """Per photo: its score (the best weight x calibrated score over the columns), the
        winning column's cosine, and which column won."""
        calibration = self.calibration_for(calibration)
        weights = np.array([v.weight for v in self.variants], dtype=np.float64)
        weighted = calibration.score(self.raw) * weights[None, :]
        # The winner is the best weight x score; among columns tied there (a saturated
        # sigmoid), the one with the highest cosine. That keeps the top k of each column a
        # superset of the top k overall (see _top_rows), ties included.
        tied = weighted == weighted.max(axis=1, keepdims=True)
        best = np.argmax(np.where(tied, self.raw, -np.inf), axis=1)
        rows = np.arange(len(self.image_ids))
        return weighted[rows, best], self.raw[rows, best], best

    def rank(
        self,
        calibration: Calibration,
        top_k: int | None = DEFAULT_TOP_K,
        min_score: float | None = None,
    ) -> list[SearchResult]:
        """Results by score (ties: higher raw, then lower image id), at most top_k, each with
        a score >= min_score; exact over the photos these hits hold."""
        if len(self.image_ids) == 0 or not self.variants:
            return []
        score, raw, best = self.column_scores(calibration)
        visual = score
        if self.boost is not None:
            score = hybrid_score(visual, self.boost.values)
        results = []
        for i in ranked_rows(score, raw, self.image_ids, top_k, min_score).tolist():
            variant = self.variants[best[i]]
            results.append(
                SearchResult(
                    image_id=int(self.image_ids[i]),
                    path=self.paths[i],
                    score=float(score[i]),
                    raw=float(raw[i]),
                    variant=variant.text,
                    prompt=variant.prompt,
                    weight=variant.weight,
                    position=i,
                    visual=None if self.boost is None else float(visual[i]),
                    boost=0.0 if self.boost is None else float(self.boost.values[i]),
                    boost_reason="" if self.boost is None else self.boost.reasons[i],
                )
            )
        return results


def graph_ef(library_size: int) -> int:
    """How wide to search the graph (hnswlib's ef, pgvector's ef_search), at least, in a
    library this big."""
    return -(-library_size // PHOTOS_PER_EF)


def ranked_rows(
    score: npt.NDArray[np.float64],
    raw: npt.NDArray[np.floating],
    image_ids: npt.NDArray[np.int64],
    top_k: int | None,
    min_score: float | None,
) -> npt.NDArray[np.intp]:
    """Rows by score, ties by higher raw then lower image id: at most top_k, each with a
    score >= min_score. The one ranking rule of every search (one query, parts, an image)."""
    candidates = np.arange(len(score))
    if min_score is not None:
        candidates = candidates[score[candidates] >= min_score]
    if top_k is not None and top_k < len(candidates):
        # Everything tied with the k-th score stays in, so the tie order below decides.
        kth = np.partition(-score[candidates], top_k - 1)[top_k - 1]
        candidates = candidates[-score[candidates] <= kth]
    order = candidates[np.lexsort((image_ids[candidates], -raw[candidates], -score[candidates]))]
    if top_k is not None:
        order = order[:top_k]
    return order.astype(np.intp)


# --- Queries of parts: "beach -people", "beach and dog" (grammar: core/query.py) ----------


@dataclass(frozen=True, eq=False)
class CombinedHits:
    """A query of several parts, each searched as one query (expansion, ensemble), over the
    same photos in the same order (one snapshot), and combined as probabilities:

        score = product over "and" parts of P(part) x product over "not" parts of (1 - P(part))

    with P a part's calibrated score (the text calibration), never by subtracting cosines.
    Every part covers every photo (an exact scan), so the combined score is exact for every
    photo and top_k / min_score apply to it. For what a panel lists (variants, per-variant
    cosines) these hits read as their first "and" part (the first part when none is).
    """

    query: str
    parts: tuple[QueryPart, ...]
    part_hits: tuple[SearchHits, ...]
    complete: bool = True
    own_calibration: Calibration | None = None  # parts are text: always the text scale

    def __post_init__(self) -> None:
        if len(self.parts) != len(self.part_hits) or not self.parts:
            raise ValueError("one SearchHits per part, at least one part")
        first = self.part_hits[0].image_ids
        if any(not np.array_equal(h.image_ids, first) for h in self.part_hits[1:]):
            raise ValueError("every part must cover the same photos in the same order")

    @property
    def language_note(self) -> str:
        """The first part's note on its language (SearchHits.language_note), if any."""
        return next((hits.language_note for hits in self.part_hits if hits.language_note), "")

    @property
    def language_hint(self) -> str:
        return next((hits.language_hint for hits in self.part_hits if hits.language_hint), "")

    @property
    def primary(self) -> SearchHits:
        for part, hits in zip(self.parts, self.part_hits, strict=True):
            if part.kind == AND:
                return hits
        return self.part_hits[0]

    @property
    def image_ids(self) -> npt.NDArray[np.int64]:
        return self.part_hits[0].image_ids

    @property
    def paths(self) -> tuple[str, ...]:
        return self.part_hits[0].paths

    @property
    def aggregate(self) -> str:
        return self.primary.aggregate

    @property
    def variants(self) -> tuple[PromptVariant, ...]:
        return self.primary.variants

    @property
    def members(self) -> tuple[PromptVariant, ...]:
        return self.primary.members

    @property
    def listed(self) -> tuple[PromptVariant, ...]:
        return self.primary.listed

    @property
    def broader(self) -> tuple[PromptVariant, ...]:
        return self.primary.broader

    def variant_cosines(self, positions: npt.ArrayLike | None = None) -> npt.NDArray[np.float32]:
        return self.primary.variant_cosines(positions)

    def calibration_for(self, text_calibration: Calibration) -> Calibration:
        return text_calibration

    def _hybrid(self, visual: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Each part's P: its visual score lifted by its own words' metadata boost, as that
        part searched alone is (so a photo tagged "people" is left out of "beach without
        people" whatever its pixels say)."""
        probability = visual.copy()
        for column, hits in enumerate(self.part_hits):
            if hits.boost is not None and len(hits.boost.values) == len(visual):
                probability[:, column] = hybrid_score(visual[:, column], hits.boost.values)
        return probability

    def _part_scores(
        self, calibration: Calibration
    ) -> tuple[
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float32],
        npt.NDArray[np.float64],
    ]:
        """(visual P, hybrid P, raw) of every part for every photo, shape (n_photos, n_parts),
        and the combined score of every photo from the parts' hybrid P, shape (n_photos,)."""
        count = len(self.image_ids)
        visual = np.empty((count, len(self.parts)), np.float64)
        raw = np.empty((count, len(self.parts)), np.float32)
        for column, hits in enumerate(self.part_hits):
            if count and hits.variants:
                visual[:, column], raw[:, column], _ = hits.column_scores(calibration)
            else:  # a part with nothing to search (no words) scores nothing
                visual[:, column], raw[:, column] = 0.0, 0.0
        probability = self._hybrid(visual)
        combined = np.ones(count, np.float64)
        for column, part in enumerate(self.parts):
            p = probability[:, column]
            combined *= (1.0 - p) if part.kind == NOT else p
        return visual, probability, raw, combined

    def rank(
        self,
        calibration: Calibration,
        top_k: int | None = DEFAULT_TOP_K,
        min_score: float | None = None,
    ) -> list[SearchResult]:
        """Results by combined score (ties: the first "and" part's higher raw, then lower
        image id), at most top_k, each with a combined score >= min_score; exact."""
        if len(self.image_ids) == 0:
            return []
        visual, probability, raw, combined = self._part_scores(calibration)
        boosts = [hits.boost for hits in self.part_hits]
        primary = self.primary
        lead = self.part_hits.index(primary)
        if primary.variants:
            _, _, best = primary.column_scores(calibration)
        else:
            best = np.zeros(len(self.image_ids), np.intp)
        results = []
        for i in ranked_rows(combined, raw[:, lead], self.image_ids, top_k, min_score).tolist():
            variant = primary.variants[best[i]] if primary.variants else ENSEMBLE_COLUMN
            results.append(
                SearchResult(
                    image_id=int(self.image_ids[i]),
                    path=self.paths[i],
                    score=float(combined[i]),
                    raw=float(raw[i, lead]),
                    variant=variant.text,
                    prompt=variant.prompt,
                    weight=variant.weight,
                    position=i,
                    parts=tuple(
                        PartScore(
                            part.text,
                            part.kind,
                            float(raw[i, j]),
                            float(probability[i, j]),
                            float(visual[i, j]),
                            0.0 if boost is None else float(boost.values[i]),
                            "" if boost is None else boost.reasons[i],
                        )
                        for j, (part, boost) in enumerate(zip(self.parts, boosts, strict=True))
                    ),
                )
            )
        return results


AnyHits = SearchHits | CombinedHits


ENSEMBLE_COLUMN = PromptVariant(ENSEMBLE, None, 1.0, None, ENSEMBLE)


def columns_of(
    variants: Sequence[PromptVariant], aggregate: str
) -> tuple[tuple[PromptVariant, ...], tuple[PromptVariant, ...]]:
    """(columns scored, ensemble members): with "ensemble", the ensemble of the query and its
    synonyms, then broader terms as columns of their own; with "max", every variant."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    if aggregate == MAX:
        return tuple(variants), ()
    members = tuple(v for v in variants if v.kind != BROADER)
    # One member is its own ensemble (e = t): the column is that variant, prompt and all.
    first = members[0] if len(members) == 1 else ENSEMBLE_COLUMN
    return (first, *(v for v in variants if v.kind == BROADER)), members


def scored_columns(
    variants: Sequence[PromptVariant], text: npt.NDArray[np.float32], aggregate: str
) -> tuple[tuple[PromptVariant, ...], tuple[PromptVariant, ...], npt.NDArray[np.float32]]:
    """columns_of, with the columns' text vectors (the first being e for "ensemble")."""
    columns, members = columns_of(variants, aggregate)
    if aggregate == MAX:
        return columns, members, np.asarray(text, dtype=np.float32)
    in_e = [i for i, v in enumerate(variants) if v.kind != BROADER]
    rest = [i for i, v in enumerate(variants) if v.kind == BROADER]
    e = ensemble_vector(text[in_e], [variants[i].weight for i in in_e])
    return columns, members, np.vstack([e[None, :], text[rest]]).astype(np.float32)


@dataclass(frozen=True, eq=False)
class _OwnCosines:
    """Each listed variant's own cosine for rows of the hits, computed when asked (one scan
    per search is the ensemble's; these are for the few results a panel shows)."""

    matrix: npt.NDArray[np.floating]  # never written again (a snapshot's, or the caller's)
    rows: npt.NDArray[np.intp]  # matrix row of each hit position
    text: npt.NDArray[np.float32]  # (len(listed), dim)

    def __call__(self, positions: npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
        return matrix_cosines(self.matrix, self.text, self.rows[positions])


def _listed_text(
    variants: Sequence[PromptVariant], text: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Text vectors in `SearchHits.listed` order: ensemble members, then broader terms."""
    order = [i for i, v in enumerate(variants) if v.kind != BROADER]
    order += [i for i, v in enumerate(variants) if v.kind == BROADER]
    return np.asarray(text[order], dtype=np.float32)


def hits_from_vectors(
    query: str,
    variants: Sequence[PromptVariant],
    text: npt.NDArray[np.float32],
    image_ids: npt.ArrayLike,
    paths: Sequence[str],
    image_vectors: npt.NDArray[np.floating],
    aggregate: str = ENSEMBLE,
) -> SearchHits:
    """Hits over every given photo (unit vectors), computed as a search computes them: for
    tools that score photos outside a library (tune against an image, eval)."""
    columns, members, column_text = scored_columns(variants, text, aggregate)
    rows = np.arange(len(image_vectors), dtype=np.intp)
    return SearchHits(
        query,
        columns,
        np.asarray(image_ids, dtype=np.int64),
        tuple(paths),
        matrix_cosines(image_vectors, column_text),
        aggregate,
        members,
        _OwnCosines(image_vectors, rows, _listed_text(variants, text))
        if aggregate == ENSEMBLE
        else None,
    )


class Searcher:
    """Runs searches against one library with one encoder; text vectors are cached."""

    def __init__(
        self,
        library: Library,
        encoder: TextEncoder,
        expander: Expander | None = None,
        cache_size: int = TEXT_CACHE_SIZE,
    ) -> None:
        self.library = library
        self.encoder = encoder
        self.expander = expander or Expander()
        self.metadata = MetadataMatcher(library.catalog)
        self._memory: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # Searches waiting for the encoder; dictionary precompute yields to them between batches.
        self._foreground = 0
        self._foreground_done = threading.Condition()
        self._phrases = _PhraseTest(self.expander.dictionary)

    def parse(self, query: str) -> ParsedQuery:
        """The query's parts ("beach -people": beach, not people); a dictionary phrase keeps
        its "and" ("salt and pepper"). See core/query.py for the grammar."""
        return parse_query(query, self._phrases, self._phrases.longest)

    def variants(
        self, query: str, expand: bool = True, broader: bool = False
    ) -> tuple[PromptVariant, ...]:
        """The query's variants: with expand, its synonyms; with broader, broader terms too."""
        return prompt_variants(self.encoder, query, self.expander if expand else None, broader)

    def search(
        self,
        query: str,
        top_k: int | None = DEFAULT_TOP_K,
        expand: bool = True,
        aggregate: str = ENSEMBLE,
        broader: bool = False,
        where: PhotoFilter | None = None,
    ) -> SearchHits:
        """Hits that hold the exact top_k for any calibration (every photo when top_k is None,
        which `rank(min_score=...)` needs to return every photo above a score); with `where`,
        over the photos that filter lets through, still exactly."""
        variants = self.variants(query, expand, broader)
        return self._search(query, variants, top_k, aggregate, self._snapshot(where))

    def search_progressive(
        self,
        query: str,
        top_k: int | None = DEFAULT_TOP_K,
        expand: bool = True,
        aggregate: str = ENSEMBLE,
        broader: bool = False,
    ) -> Iterator[SearchHits]:
        """The query as typed first, then the expanded search that refines it.

        Yields search(query, expand=False) while variant prompts still need the model (one
        forward instead of one per variant before anything shows), then search(query); when
        every prompt is cached already it yields only the expanded hits. The last hits
        yielded are the complete answer. Run it off the GUI thread: each step may encode.
        """
        for hits, _final in self.search_progressive_steps(query, top_k, expand, aggregate, broader):
            yield hits

    def search_query(
        self,
        query: str,
        top_k: int | None = DEFAULT_TOP_K,
        expand: bool = True,
        aggregate: str = ENSEMBLE,
        broader: bool = False,
        exclude: Sequence[str] = (),
        where: PhotoFilter | None = None,
    ) -> AnyHits:
        """A query as typed, parts and all: one part is `search` itself (same hits, same
        scores); several are one CombinedHits, every part over every photo (top_k is then
        irrelevant: a combined score is only exact over all of them). `exclude` adds parts
        that must not be there (the command line's --not); `where` filters as in `search`."""
        steps = self.search_steps(query, top_k, expand, aggregate, broader, exclude, where=where)
        return list(steps)[-1][0]

    def search_steps(
        self,
        query: str,
        top_k: int | None = DEFAULT_TOP_K,
        expand: bool = True,
        aggregate: str = ENSEMBLE,
        broader: bool = False,
        exclude: Sequence[str] = (),
        progressive: bool = False,
        where: PhotoFilter | None = None,
    ) -> Iterator[tuple[AnyHits, bool]]:
        """(hits, final) of `search_query`; with progressive, first the parts as typed while
        their synonyms still need the model (as `search_progressive` does for one query)."""
        parsed = self.parse(query)
        if exclude:
            extra = tuple(QueryPart(" ".join(t.split()), NOT) for t in exclude if t.strip())
            parsed = ParsedQuery(parsed.query, parsed.parts + extra)
        if not parsed.parts:
            yield self._search(query, (), top_k, aggregate, self._snapshot(where)), True
            return
        if parsed.plain:
            text = parsed.parts[0].text
            if not progressive:
                yield self.search(text, top_k, expand, aggregate, broader, where), True
                return
            yield from self.search_progressive_steps(text, top_k, expand, aggregate, broader, where)
            return
        variants = [self.variants(part.text, expand, broader) for part in parsed.parts]
        prompts = [_prompt(v) for part in variants for v in part]
        if progressive and any(len(v) > 1 for v in variants) and not self.is_cached(prompts):
            yield self._combined(parsed, [v[:1] for v in variants], aggregate, where), False
        yield self._combined(parsed, variants, aggregate, where), True

    def search_progressive_steps(
        self,
        query: str,
        top_k: int | None = DEFAULT_TOP_K,
        expand: bool = True,
        aggregate: str = ENSEMBLE,
        broader: bool = False,
        where: PhotoFilter | None = None,
    ) -> Iterator[tuple[SearchHits, bool]]:
        """search_progressive, each step saying whether it is the final one."""
        variants = self.variants(query, expand, broader)
        if len(variants) > 1 and not self.is_cached([_prompt(v) for v in variants]):
            yield self._search(query, variants[:1], top_k, aggregate, self._snapshot(where)), False
        yield self._search(query, variants, top_k, aggregate, self._snapshot(where)), True

    def _combined(
        self,
        parsed: ParsedQuery,
        variants: Sequence[tuple[PromptVariant, ...]],
        aggregate: str,
        where: PhotoFilter | None = None,
    ) -> CombinedHits:
        """Every part over one snapshot, its prompts encoded in one batch first."""
        self.text_vectors([_prompt(v) for part in variants for v in part])
        snapshot = self._snapshot(where)
        part_hits = tuple(
            self._search(part.text, part_variants, None, aggregate, snapshot)
            for part, part_variants in zip(parsed.parts, variants, strict=True)
        )
        return CombinedHits(parsed.query, parsed.parts, part_hits)

    def search_image(
        self, query: ImageQuery, top_k: int | None = None, where: PhotoFilter | None = None
    ) -> SearchHits:
        """Photos like a photo: the cosine of each photo's vector with the query's, scored on
        the image-to-image scale (calibrate.image_calibration, never the text calibration).
        The query photo itself (its library ids) is left out: it would always come first at
        cosine 1. Exact like a text search: every photo, or (top_k) the true top k."""
        snapshot = self._snapshot(where)
        column = PromptVariant(query.label, None, 1.0, None, IMAGE)
        calibration = image_calibration()
        if len(snapshot) == 0:
            nothing = np.zeros((0, 1), np.float32)
            return SearchHits(
                query.label, (column,), np.zeros(0, np.int64), (), nothing, MAX,
                own_calibration=calibration,
            )  # fmt: skip
        vector = np.asarray(query.vector, dtype=np.float32)[None, :]
        wanted = None if top_k is None else top_k + len(query.image_ids)
        positions, raw, complete = self._scan(snapshot, vector, wanted)
        keep = ~np.isin(snapshot.ids[positions], np.asarray(query.image_ids, dtype=np.int64))
        positions, raw = positions[keep], raw[keep]
        return SearchHits(
            query.label,
            (column,),
            snapshot.ids[positions],
            tuple(snapshot.paths[positions].tolist()),
            raw,
            MAX,
            complete=complete,
            own_calibration=calibration,
        )

    def is_cached(self, prompts: Sequence[str]) -> bool:
        """True when every prompt's vector is in memory or in the persistent store."""
        with self._lock:
            missing = [p for p in dict.fromkeys(prompts) if p not in self._memory]
        return len(self._stored(missing)) == len(missing)

    def dictionary_prompts(self) -> list[str]:
        """Every prompt an expanded search for one dictionary word, singular or plural, needs."""
        words: dict[str, None] = {}
        for entry in self.expander.dictionary.entries.values():
            for member in entry.members:
                words[member] = None
                words[pluralize(member)] = None
        prompts: dict[str, None] = {}
        for word in words:  # broader terms too: the broader option must not need the model
            for variant in self.variants(word, broader=True):
                prompts[_prompt(variant)] = None
        return list(prompts)

    def precompute_dictionary(
        self,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        batch_size: int = PRECOMPUTE_BATCH,
    ) -> int:
        """Encode and persist the dictionary's prompts not cached yet; returns how many.

        Meant for a background thread once the model is loaded: each batch is stored as it
        is done (cancel loses at most one batch), a search that needs the encoder goes ahead
        of the next batch, and a second run only looks up what is stored (once per model,
        since the store lives in the model's catalog).
        """
        prompts = self.dictionary_prompts()
        stored = self._stored(prompts)
        todo = [p for p in prompts if p not in stored]
        started = time.perf_counter()
        done = 0
        if progress is not None:
            progress(Progress(0, len(todo), 0.0))
        for first in range(0, len(todo), max(1, batch_size)):
            with self._foreground_done:
                self._foreground_done.wait_for(lambda: self._foreground == 0)
            if cancel is not None and cancel.cancelled:
                break
            batch = todo[first : first + max(1, batch_size)]
            vectors = self.encoder.encode_prompts(batch)
            self.library.catalog.store_text_vectors(dict(zip(batch, vectors, strict=True)))
            done += len(batch)
            if progress is not None:
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress(Progress(done, len(todo), rate))
        return done

    def _stored(self, prompts: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        found: dict[str, npt.NDArray[np.float32]] = {}
        for first in range(0, len(prompts), _STORE_CHUNK):
            found.update(
                self.library.catalog.cached_text_vectors(prompts[first : first + _STORE_CHUNK])
            )
        return found

    def _snapshot(self, where: PhotoFilter | None = None) -> VectorSnapshot:
        """The library's vectors now; with an active filter, only the photos it lets through
        (a filtered snapshot is always scanned exactly: the graph knows no filters)."""
        snapshot = vector_store(self.library.catalog).snapshot()
        if where is not None and where.active:
            snapshot = filtered_snapshot(snapshot, where, self.library.catalog)
        return snapshot

    def _search(
        self,
        query: str,
        variants: tuple[PromptVariant, ...],
        top_k: int | None,
        aggregate: str,
        snapshot: VectorSnapshot | None = None,
    ) -> SearchHits:
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        if snapshot is None:
            snapshot = self._snapshot()
        if not variants or len(snapshot) == 0:
            columns, members = columns_of(variants, aggregate) if variants else ((), ())
            nothing = np.zeros((0, len(columns)), np.float32)
            return self._with_language(
                SearchHits(query, columns, np.zeros(0, np.int64), (), nothing, aggregate, members)
            )
        text = self.text_vectors([_prompt(v) for v in variants])
        columns, members, column_text = scored_columns(variants, text, aggregate)
        boosts = self._metadata_boosts(query, variants, snapshot)
        positions, raw, complete = self._scan(snapshot, column_text, top_k)
        if not complete and len(boosts):  # every boosted photo, whatever its visual rank
            positions = _with_boosted(positions, snapshot, boosts)
            raw = snapshot.cosines(column_text, positions)
        hits = SearchHits(
            query,
            columns,
            snapshot.ids[positions],
            tuple(snapshot.paths[positions].tolist()),
            raw,
            aggregate,
            members,
            _OwnCosines(snapshot.matrix, snapshot.rows[positions], _listed_text(variants, text))
            if aggregate == ENSEMBLE
            else None,
            complete,
            boost=boosts.rows(snapshot.ids[positions]),
        )
        return self._with_language(hits)

    def _with_language(self, hits: SearchHits) -> SearchHits:
        decision = query_language(self.encoder, hits.query)
        if not (decision.note or decision.hint):
            return hits
        return replace(hits, language_note=decision.note, language_hint=decision.hint)

    def _scan(
        self, snapshot: VectorSnapshot, column_text: npt.NDArray[np.float32], top_k: int | None
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32], bool]:
        """(positions, their exact cosines, complete): every photo when top_k is None or
        covers them all; else the rows holding each column's top k, from an exact scan up
        to EXACT_SCAN_MAX photos and from the graph's candidates beyond."""
        complete = top_k is None or top_k >= len(snapshot)
        if complete:
            return np.arange(len(snapshot), dtype=np.intp), snapshot.cosines(column_text), True
        if len(snapshot) <= EXACT_SCAN_MAX or len(self.library.index) == 0 or snapshot.subset:
            scan = snapshot.cosines(column_text)
            positions = _top_rows(scan, int(top_k or 0))
            return positions, scan[positions], False
        positions = self._graph_candidates(snapshot, column_text, int(top_k or 0))
        return positions, snapshot.cosines(column_text, positions), False

    def _metadata_boosts(
        self, query: str, variants: Sequence[PromptVariant], snapshot: VectorSnapshot
    ) -> PhotoBoosts:
        """The photos whose tags, description, file keywords/title/caption or name words hold
        the query or one of its synonyms (broader terms never boost), over every photo."""
        phrases = [v.text for v in variants if v.kind != BROADER]
        return self.metadata.boosts(query, phrases, snapshot)

    def _graph_candidates(
        self, snapshot: VectorSnapshot, column_text: npt.NDArray[np.float32], top_k: int
    ) -> npt.NDArray[np.intp]:
        """Beyond EXACT_SCAN_MAX: hnswlib's nearest photos of each column (identical vectors
        are one graph node, expanded here), to be re-ranked exactly by the caller."""
        labels, _ = self.library.index.query(
            column_text, max(MIN_CANDIDATES, top_k), ef=graph_ef(len(snapshot))
        )
        candidates = np.unique(labels[labels >= 0])
        # An id the index returned but the catalog no longer has is a half-removed entry: skip.
        return snapshot.positions_of(candidates)

    def text_vectors(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Memory LRU, then the library's persistent cache, then one batch through the model."""
        found: dict[str, npt.NDArray[np.float32]] = {}
        with self._lock:
            for prompt in prompts:
                if prompt in self._memory:
                    self._memory.move_to_end(prompt)
                    found[prompt] = self._memory[prompt]
        missing = [p for p in dict.fromkeys(prompts) if p not in found]
        if missing:
            stored = self._stored(missing)
            found.update(stored)
            to_encode = [p for p in missing if p not in stored]
            if to_encode:
                fresh = dict(zip(to_encode, self._encode_foreground(to_encode), strict=True))
                self.library.catalog.store_text_vectors(fresh)
                found.update(fresh)
            with self._lock:
                for prompt in missing:
                    self._memory[prompt] = found[prompt]
                while len(self._memory) > self._cache_size:
                    self._memory.popitem(last=False)
        return np.stack([found[p] for p in prompts]).astype(np.float32)

    def _encode_foreground(self, prompts: list[str]) -> npt.NDArray[np.float32]:
        with self._foreground_done:
            self._foreground += 1
        try:
            return self.encoder.encode_prompts(prompts)
        finally:
            with self._foreground_done:
                self._foreground -= 1
                self._foreground_done.notify_all()


class _PhraseTest:
    """Is a run of words a phrase of the dictionary (a compound, a term, a synonym, or a
    plural of one)? What keeps "salt and pepper" one part."""

    def __init__(self, dictionary: Dictionary) -> None:
        self.dictionary = dictionary
        self.longest = max(
            (len(m.split()) for e in dictionary.entries.values() for m in e.members), default=1
        )

    def __call__(self, phrase: str) -> bool:
        return self.dictionary.lookup(phrase) is not None


def _prompt(variant: PromptVariant) -> str:
    if variant.prompt is None:
        raise ValueError(f"{variant.text!r} has no prompt to encode")
    return variant.prompt


def _with_boosted(
    positions: npt.NDArray[np.intp], snapshot: VectorSnapshot, boosts: PhotoBoosts
) -> npt.NDArray[np.intp]:
    """Candidates plus every boosted photo: a photo without a boost scores its visual score,
    so the visual top k still holds every unboosted photo of the hybrid top k, and the
    boosted ones are all here whatever their visual rank. That keeps the hybrid top k exact."""
    if not len(boosts):
        return positions
    return np.union1d(positions, snapshot.positions_of(boosts.image_ids)).astype(np.intp)


def _top_rows(scan: npt.NDArray[np.float32], top_k: int) -> npt.NDArray[np.intp]:
    """Rows holding each column's top_k cosines, ties at the k-th included: a superset of
    the top_k under max over columns of weight x sigmoid(T (cos - c)), for every T > 0 and c
    (a photo in that top k wins with some column, where at most k - 1 photos beat it)."""
    if top_k >= len(scan):
        return np.arange(len(scan), dtype=np.intp)
    keep = np.zeros(len(scan), dtype=bool)
    for column in scan.T:
        kth = np.partition(-column, top_k - 1)[top_k - 1]
        keep |= -column <= kth
    return np.flatnonzero(keep).astype(np.intp)
