"""Search: expand -> encode (cached) -> knn -> exact cosines -> calibrate -> aggregate -> rank."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gallery_app.core.calibrate import Calibration
from gallery_app.core.expansion import Expander, Variant, pluralize
from gallery_app.core.indexer import CancelToken, Progress, ProgressCallback
from gallery_app.core.library import Library

DEFAULT_TOP_K = 20
MIN_CANDIDATES = 100
TEXT_CACHE_SIZE = 1024
# Prompts per forward while precomputing: small, because a search typed meanwhile waits for
# the batch in flight. Measured on the 2-core benchmark CPU (SigLIP-base text tower): fp32
# 93 / 69 / 66 / 68 ms a prompt at batch 1 / 4 / 8 / 16, int8 33 / 22 / 22 / 23: batch 4 is
# within 5% of the best and holds a search back at most ~280 ms (fp32), ~90 ms (int8).
PRECOMPUTE_BATCH = 4
_STORE_CHUNK = 500  # prompts per SQLite IN (...) lookup


class TextEncoder(Protocol):
    dim: int

    def prompt(self, text: str) -> str: ...

    def encode_prompts(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class PromptVariant:
    """A variant of the query and the exact string the tokenizer was given for it."""

    text: str
    prompt: str
    weight: float
    source: str | None = None


@dataclass(frozen=True)
class SearchResult:
    image_id: int
    path: str
    score: float  # weight x calibrated score of the winning variant: what the ranking uses
    raw: float  # cosine of the winning variant
    variant: str
    prompt: str
    weight: float


@dataclass(frozen=True)
class SearchHits:
    """What a search found, before calibration: re-ranking under a new T or c needs no model."""

    query: str
    variants: tuple[PromptVariant, ...]
    image_ids: npt.NDArray[np.int64]
    paths: tuple[str, ...]
    raw: npt.NDArray[np.float32]  # exact cosines, shape (n_images, n_variants)

    def rank(
        self,
        calibration: Calibration,
        top_k: int | None = DEFAULT_TOP_K,
        min_score: float | None = None,
    ) -> list[SearchResult]:
        if len(self.image_ids) == 0 or not self.variants:
            return []
        weights = np.array([v.weight for v in self.variants], dtype=np.float64)
        weighted = calibration.score(self.raw) * weights[None, :]
        best = np.argmax(weighted, axis=1)
        rows = np.arange(len(self.image_ids))
        score = weighted[rows, best]
        raw = self.raw[rows, best]
        order = np.lexsort((-raw, -score))  # by score, then by raw cosine
        if min_score is not None:
            order = order[score[order] >= min_score]
        if top_k is not None:
            order = order[:top_k]
        results = []
        for i in order:
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
                )
            )
        return results


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
        self._memory: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # Searches waiting for the encoder; dictionary precompute yields to them between batches.
        self._foreground = 0
        self._foreground_done = threading.Condition()

    def variants(self, query: str, expand: bool = True) -> tuple[PromptVariant, ...]:
        expanded = (
            self.expander.expand(query)
            if expand
            else [Variant(" ".join(query.lower().split()), 1.0)]
        )
        return tuple(
            PromptVariant(v.text, self.encoder.prompt(v.text), v.weight, v.source)
            for v in expanded
            if v.text
        )

    def search(
        self, query: str, top_k: int | None = DEFAULT_TOP_K, expand: bool = True
    ) -> SearchHits:
        return self._search(query, self.variants(query, expand), top_k)

    def search_progressive(
        self, query: str, top_k: int | None = DEFAULT_TOP_K, expand: bool = True
    ) -> Iterator[SearchHits]:
        """The query as typed first, then the expanded search that refines it.

        Yields search(query, expand=False) while variant prompts still need the model (one
        forward instead of one per variant before anything shows), then search(query); when
        every prompt is cached already it yields only the expanded hits. The last hits
        yielded are the complete answer. Run it off the GUI thread: each step may encode.
        """
        variants = self.variants(query, expand)
        if len(variants) > 1 and not self.is_cached([v.prompt for v in variants]):
            yield self._search(query, variants[:1], top_k)
        yield self._search(query, variants, top_k)

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
            for variant in self.expander.expand(word, broader=True):
                prompts[self.encoder.prompt(variant.text)] = None
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

    def _search(
        self, query: str, variants: tuple[PromptVariant, ...], top_k: int | None
    ) -> SearchHits:
        empty = SearchHits(query, variants, np.zeros(0, np.int64), (), np.zeros((0, 0), np.float32))
        index = self.library.index
        if not variants or len(index) == 0:
            return empty
        text = self.text_vectors([v.prompt for v in variants])
        pool = max(MIN_CANDIDATES, 2 * (top_k or len(index)))
        labels, _ = index.query(text, pool)
        candidates = np.unique(labels[labels >= 0]).tolist()
        info = self.library.catalog.images(candidates)
        # Vectors come from the catalog: ~12x faster than hnswlib's get_items (~40 us a label,
        # most of a warm search's time) and the catalog is the source of truth anyway.
        vector_ids, vectors = self.library.catalog.vectors(ids=candidates)
        row_of = {int(i): row for row, i in enumerate(vector_ids.tolist())}
        # An id the index returned but the catalog no longer has is a half-removed entry: skip.
        kept = np.array([i for i in candidates if i in info and i in row_of], dtype=np.int64)
        if len(kept) == 0:
            return empty
        image_vectors = vectors[[row_of[int(i)] for i in kept]]
        raw = (image_vectors @ text.T).astype(np.float32)  # exact cosines for every variant
        return SearchHits(query, variants, kept, tuple(info[int(i)].path for i in kept), raw)

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
