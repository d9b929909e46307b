"""Search quality and retrieval on the simulated library: aggregation modes, exact vs graph paths.

A SIMULATION (see simulated_library.py): the figures show which way an effect goes (ensemble vs
max, exact scan vs hnswlib), not SigLIP's real numbers; `gallery-app eval` on a labelled folder
with real weights is the real measure.

Three things are measured:

- quality of the aggregation modes over every concept query: the query as typed alone, the
  ensemble (one text vector e = normalize(sum w_i t_i) over the query and its synonyms, scored
  sigmoid(T (cos(image, e) - c))), max (the best w_i sigmoid(T (cos_i - c)) over the same
  variants) and max with the broader term at 0.8 (what the seed's expansion did);
- recall@10 of the two retrieval paths on text-like queries: the exact scan (float32 and
  float16 storage) and hnswlib candidates re-ranked exactly, over a sweep of ef;
- latency of both paths for a plain and an expanded query at several library sizes, and the
  size where the exact scan leaves its budget (the crossover).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import simulated_library as sim

from gallery_app.core.calibrate import Calibration, model_preset
from gallery_app.core.evaluate import (
    average_precision,
    expected_calibration_error,
    hit_at_k,
    recall_at_k,
    worst_case_order,
)

MIN_SCORE = 0.5
TOP = 10
SYNONYM_WEIGHT = 1.0  # the built-in dictionary's weight for a synonym
BROADER_WEIGHT = 0.8  # and for a broader term (pet, vehicle), in the seed's max
ECE_TOP = 100  # also the calibration error of each query's first 100 photos
PAGE = 100  # results a search returns in the latency runs (a page of the grid)
EF_SWEEP = (50, 75, 100, 150, 200, 300, 400, 600, 800)
TARGET_RECALL = 0.99
EXACT_BUDGET_MS = 40.0  # issue 11: an expanded query at 100k photos on this CPU
INDEX_VERSION = 1
F16_CHUNK = 16_384  # rows converted to float32 at a time in the float16 scan

Note = Callable[[str], None]


def siglip_base_calibration() -> Calibration:
    return model_preset(sim.SIGLIP_BASE_LOGIT_SCALE, sim.SIGLIP_BASE_LOGIT_BIAS)


# --- Aggregation (TODO(i11-retrieval): call gallery_app.core's own functions once merged) ----


def ensemble_vector(
    texts: npt.NDArray[np.float32], weights: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """e = normalize(sum_i w_i t_i) over unit text vectors t_i (rows of texts).

    TODO(i11-retrieval): replace with the core function in gallery_app/core/search.py so that
    the benchmark measures the app's own code.
    """
    combined = (np.asarray(weights, np.float64)[:, None] * texts).sum(axis=0)
    return (combined / np.linalg.norm(combined)).astype(np.float32)


def max_aggregate(
    raw: npt.NDArray[np.float32], weights: npt.NDArray[np.float64], calibration: Calibration
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
    """(score, raw of the winning variant): max over variants of w_i sigmoid(T (cos_i - c)).

    TODO(i11-retrieval): replace with the core `max` aggregation.
    """
    weighted = calibration.score(raw) * weights[None, :]
    best = np.argmax(weighted, axis=1)
    rows = np.arange(len(raw))
    return weighted[rows, best], raw[rows, best]


# --- Quality of the aggregation modes -------------------------------------------------------


@dataclass(frozen=True)
class ModeQuality:
    mode: str
    mean_average_precision: float
    precision_at_min_score: float  # pooled over queries: relevant share of pairs >= MIN_SCORE
    count_at_min_score: float  # photos >= MIN_SCORE per query, mean
    relevant_per_query: float
    expected_calibration_error: float  # every (query, photo) pair: mostly scores near 0
    ece_top_100: float  # each query's first 100: the scores a user reads
    hit_at_10: float  # share of queries with a relevant photo in the first 10
    recall_at_10: float  # relevant photos in the first 10 / relevant photos, mean over queries
    precision_at_10: float


MODES = ("query", "ensemble", "max", "max_broader")
QUALITY_BATCH = 25  # concepts scored by one matrix product


def mode_columns(
    library: sim.SimulatedLibrary, concept: int, mode: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """(text vectors scanned, their weights) for one concept's query under one mode: one
    vector for the query alone and for the ensemble, every variant for the max modes."""
    query = library.query_text[concept]
    if mode == "query":
        return query[None, :], np.ones(1)
    variants = np.vstack([query[None, :], library.synonym_text[concept]])
    weights = np.array([1.0] + [SYNONYM_WEIGHT] * (len(variants) - 1))
    if mode == "ensemble":
        return ensemble_vector(variants, weights)[None, :], np.ones(1)
    if mode == "max_broader":
        variants = np.vstack([variants, library.broader_text[library.family_of[concept]][None]])
        weights = np.append(weights, BROADER_WEIGHT)
    elif mode != "max":
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    return variants, weights


def mode_scores(
    library: sim.SimulatedLibrary,
    concepts: Sequence[int],
    mode: str,
    calibration: Calibration,
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]]:
    """(score, raw) of every photo for each concept's query under one mode: one product for
    all the concepts' columns (a matrix product runs far faster than one scan a query)."""
    columns = [mode_columns(library, c, mode) for c in concepts]
    raw = library.images @ np.vstack([text for text, _ in columns]).T
    out = []
    first = 0
    for text, weights in columns:
        block = raw[:, first : first + len(text)]
        first += len(text)
        out.append(max_aggregate(block, weights, calibration))
    return out


def aggregation_quality(
    library: sim.SimulatedLibrary, calibration: Calibration, modes: Sequence[str] = MODES
) -> list[ModeQuality]:
    concepts = [c for c in range(library.spec.concepts) if library.labels[c].any()]
    n = library.images.shape[0]
    out = []
    for mode in modes:
        pair_scores = np.empty((len(concepts), n), np.float32)
        aps, hits, recalls, precisions_10, counts = [], [], [], [], []
        top_scores, top_relevant = [], []
        above = relevant_above = 0
        scored: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]] = []
        for row, concept in enumerate(concepts):
            if row % QUALITY_BATCH == 0:
                scored = mode_scores(
                    library, concepts[row : row + QUALITY_BATCH], mode, calibration
                )
            score, raw = scored[row % QUALITY_BATCH]
            relevant = library.labels[concept]
            pair_scores[row] = score
            # As `eval` ranks: by score, then raw; true ties (copies) against the relevant.
            order = worst_case_order(relevant, score, raw)
            ranked = relevant[order]
            top_scores.append(score[order[:ECE_TOP]])
            top_relevant.append(ranked[:ECE_TOP])
            aps.append(average_precision(ranked))
            hits.append(hit_at_k(ranked, TOP))
            recalls.append(recall_at_k(ranked, TOP))
            precisions_10.append(ranked[:TOP].mean())
            is_above = score >= MIN_SCORE
            counts.append(int(is_above.sum()))
            above += int(is_above.sum())
            relevant_above += int((is_above & relevant).sum())
        out.append(
            ModeQuality(
                mode=mode,
                mean_average_precision=float(np.mean(aps)),
                precision_at_min_score=relevant_above / above if above else float("nan"),
                count_at_min_score=float(np.mean(counts)),
                relevant_per_query=float(library.labels[concepts].sum(axis=1).mean()),
                expected_calibration_error=expected_calibration_error(
                    pair_scores.ravel(), library.labels[concepts].ravel()
                ),
                ece_top_100=expected_calibration_error(
                    np.concatenate(top_scores), np.concatenate(top_relevant)
                ),
                hit_at_10=float(np.mean(hits)),
                recall_at_10=float(np.mean(recalls)),
                precision_at_10=float(np.mean(precisions_10)),
            )
        )
        del pair_scores
    return out


# --- The two retrieval paths -----------------------------------------------------------------


@dataclass(frozen=True)
class Nodes:
    """Identical vectors as one graph node: node -> the photos (rows) that share its vector.

    TODO(i11-retrieval): use the core's de-duplication in gallery_app/core/vectors.py.
    """

    first_row: npt.NDArray[np.int64]  # (nodes,): a representative row
    starts: npt.NDArray[np.int64]  # (nodes + 1,): CSR offsets into rows
    rows: npt.NDArray[np.int64]  # photos grouped by node

    @classmethod
    def of(cls, images: npt.NDArray[np.float32]) -> Nodes:
        keys = np.ascontiguousarray(images).view(np.dtype((np.void, images.shape[1] * 4)))
        _, first, inverse = np.unique(keys.ravel(), return_index=True, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse, minlength=len(first))
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(first.astype(np.int64), starts, order.astype(np.int64))

    def expand(self, nodes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        nodes = nodes[nodes >= 0]
        if len(nodes) == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([self.rows[self.starts[i] : self.starts[i + 1]] for i in nodes])


def exact_top(
    images: npt.NDArray[np.floating], text: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Exact scan: (rows, cosines) of the k best photos, by cosine then row.

    float16 storage is read in chunks converted to float32, so sums accumulate in float32.
    TODO(i11-retrieval): call the core's exact scan (gallery_app/core/vectors.py).
    """
    if images.dtype == np.float32:
        raw = images @ text
    else:
        raw = np.empty(len(images), np.float32)
        for first in range(0, len(images), F16_CHUNK):
            raw[first : first + F16_CHUNK] = (
                images[first : first + F16_CHUNK].astype(np.float32) @ text
            )
    return _best(np.arange(len(raw), dtype=np.int64), raw, k)


def _best(
    rows: npt.NDArray[np.int64], raw: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    if len(raw) > k:
        keep = np.argpartition(-raw, k - 1)[:k]
        rows, raw = rows[keep], raw[keep]
    order = np.lexsort((rows, -raw))
    return rows[order], raw[order]


def graph_top(
    index: Any,
    nodes: Nodes | None,
    images: npt.NDArray[np.float32],
    text: npt.NDArray[np.float32],
    k: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """hnswlib candidates (k nodes, beam ef), their photos' cosines exact, the k best.

    nodes None: the index holds one node a photo (labels are rows), as the app does today.
    TODO(i11-retrieval): call the core's graph path.
    """
    labels, _ = index.query(text, k)
    found = labels[0]
    rows = nodes.expand(found) if nodes is not None else found[found >= 0]
    return _best(rows, images[rows] @ text, k)


def recall(
    found_raw: npt.NDArray[np.float32], kth_exact: float, k: int = TOP, tolerance: float = 1e-6
) -> float:
    """Share of the k returned that belong in the exact top k (ties count: copies tie)."""
    return float(np.sum(found_raw[:k] >= kth_exact - tolerance)) / k


def text_queries(library: sim.SimulatedLibrary, count: int) -> npt.NDArray[np.float32]:
    """Queries from the text cone: concept queries as typed, their ensembles, and phrases."""
    third = max(1, count // 3)
    concepts = np.arange(library.spec.concepts)[:third]
    weights = np.ones(1 + library.spec.synonyms)
    ensembles = np.stack(
        [
            ensemble_vector(
                np.vstack([library.query_text[c][None], library.synonym_text[c]]), weights
            )
            for c in concepts
        ]
    )
    return np.vstack(
        [library.query_text[concepts], ensembles, library.phrase_text(count - 2 * third)]
    ).astype(np.float32)


def kth_exact(
    images: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int = TOP
) -> npt.NDArray[np.float32]:
    """The k-th best exact cosine of each query (the bar a returned photo must clear)."""
    out = np.empty(len(queries), np.float32)
    for first in range(0, len(queries), 64):
        raw = queries[first : first + 64] @ images.T
        out[first : first + 64] = -np.partition(-raw, k - 1, axis=1)[:, k - 1]
    return out


def graph_index(images: npt.NDArray[np.float32], nodes: Nodes | None, key: str, cache: Path) -> Any:
    """The app's VectorIndex (its M, ef_construction) over the nodes, built once and cached."""
    from gallery_app.core.index import DEFAULT_EF_CONSTRUCTION, DEFAULT_M, VectorIndex

    path = cache / f"{key}-m{DEFAULT_M}-efc{DEFAULT_EF_CONSTRUCTION}-v{INDEX_VERSION}.hnsw"
    vectors = images[nodes.first_row] if nodes is not None else images
    if path.exists():
        index, _ = VectorIndex.load(path, images.shape[1])
        if len(index) == len(vectors):
            return index
    index = VectorIndex(images.shape[1], len(vectors))
    start = time.perf_counter()
    for first in range(0, len(vectors), 10_000):
        index.add(
            np.arange(first, min(first + 10_000, len(vectors))), vectors[first : first + 10_000]
        )
    path.with_suffix(".build.json").parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".build.json").write_text(
        json.dumps({"build_s": time.perf_counter() - start}), encoding="utf-8"
    )
    index.save(path, generation=0)
    return index


class PerPhotoIndex:
    """hnswlib straight, one node a photo (copies are separate nodes): the index as it was
    built before issue 11, kept apart from gallery_app.core so the comparison stays one."""

    def __init__(self, index: Any) -> None:
        self._index = index
        self.ef_search = 100

    @classmethod
    def build(cls, images: npt.NDArray[np.float32], path: Path) -> PerPhotoIndex:
        import hnswlib

        from gallery_app.core.index import DEFAULT_EF_CONSTRUCTION, DEFAULT_M

        index = hnswlib.Index(space="cosine", dim=images.shape[1])
        if path.exists():
            index.load_index(str(path))
            if index.get_current_count() == len(images):
                return cls(index)
        index = hnswlib.Index(space="cosine", dim=images.shape[1])
        index.init_index(len(images), ef_construction=DEFAULT_EF_CONSTRUCTION, M=DEFAULT_M)
        index.add_items(images, np.arange(len(images)))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        index.save_index(str(tmp))
        tmp.replace(path)
        return cls(index)

    def query(
        self, vectors: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        self._index.set_ef(max(self.ef_search, k))
        labels, distances = self._index.knn_query(np.atleast_2d(vectors), k=k)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)


def spec_key(spec: sim.SimulationSpec, extra: str = "") -> str:
    digest = hashlib.sha256(
        (json.dumps(asdict(spec), sort_keys=True) + extra + sim.SIMULATION_VERSION).encode()
    ).hexdigest()
    return f"sim-n{spec.images}-{digest[:12]}"


def ef_sweep(
    index: Any,
    nodes: Nodes | None,
    images: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    bars: npt.NDArray[np.float32],
    ef_values: Sequence[int] = EF_SWEEP,
) -> list[dict[str, float]]:
    rows = []
    saved = index.ef_search
    try:
        for ef in ef_values:
            index.ef_search = ef
            recalls, times = [], []
            for query, bar in zip(queries, bars, strict=True):
                start = time.perf_counter()
                _, raw = graph_top(index, nodes, images, query, TOP)
                times.append(time.perf_counter() - start)
                recalls.append(recall(raw, float(bar)))
            rows.append(
                {
                    "ef": ef,
                    "recall_at_10": float(np.mean(recalls)),
                    "worst_query_recall": float(np.min(recalls)),
                    "ms_p50": 1000 * float(np.median(times)),
                }
            )
    finally:
        index.ef_search = saved
    return rows


def smallest_ef(sweep: list[dict[str, float]], target: float = TARGET_RECALL) -> int | None:
    for row in sweep:
        if row["recall_at_10"] >= target:
            return int(row["ef"])
    return None


# --- Latency ---------------------------------------------------------------------------------


def _query_set(
    library: sim.SimulatedLibrary, count: int
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]]:
    """(variant vectors, weights) of count concept queries, the query as typed first."""
    out = []
    for concept in range(min(count, library.spec.concepts)):
        variants = np.vstack([library.query_text[concept][None], library.synonym_text[concept]])
        out.append((variants, np.ones(len(variants))))
    return out


def search_once(
    path: str,
    kind: str,
    variants: npt.NDArray[np.float32],
    weights: npt.NDArray[np.float64],
    images: npt.NDArray[np.floating],
    calibration: Calibration,
    index: Any = None,
    nodes: Nodes | None = None,
    exact_images: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float64]:
    """One search from cached text vectors to a page of calibrated scores, by one path.

    kind: plain (the query as typed), ensemble (the default expanded query: one vector),
    max (every variant scanned, aggregated per photo).
    """
    if kind == "plain":
        text = variants[0]
    elif kind == "ensemble":
        text = ensemble_vector(variants, weights)
    elif kind == "max":
        return _search_max(path, variants, weights, images, calibration, index, nodes, exact_images)
    else:
        raise ValueError(kind)
    if path == "exact":
        _, raw = exact_top(images, text, PAGE)
    else:
        assert exact_images is not None
        _, raw = graph_top(index, nodes, exact_images, text, PAGE)
    return calibration.score(raw)


def _search_max(
    path: str,
    variants: npt.NDArray[np.float32],
    weights: npt.NDArray[np.float64],
    images: npt.NDArray[np.floating],
    calibration: Calibration,
    index: Any,
    nodes: Nodes | None,
    exact_images: npt.NDArray[np.float32] | None,
) -> npt.NDArray[np.float64]:
    if path == "exact":
        if images.dtype == np.float32:
            raw = images @ variants.T
        else:
            raw = np.empty((len(images), len(variants)), np.float32)
            for first in range(0, len(images), F16_CHUNK):
                raw[first : first + F16_CHUNK] = (
                    images[first : first + F16_CHUNK].astype(np.float32) @ variants.T
                )
        rows = np.arange(len(images), dtype=np.int64)
    else:
        assert exact_images is not None
        labels, _ = index.query(variants, PAGE)
        found = np.unique(labels[labels >= 0])
        rows = nodes.expand(found) if nodes is not None else found
        raw = exact_images[rows] @ variants.T
    score, best_raw = max_aggregate(raw, weights, calibration)
    if len(score) > PAGE:
        keep = np.argpartition(-score, PAGE - 1)[:PAGE]
        rows, score, best_raw = rows[keep], score[keep], best_raw[keep]
    order = np.lexsort((rows, -best_raw, -score))
    return score[order]


def latency(
    paths: dict[str, dict[str, Any]],
    queries: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]],
    calibration: Calibration,
    repetitions: int,
) -> list[dict[str, Any]]:
    """p50/p99 wall ms per (path, kind), and the p50 of CPU ms (all threads of the process:
    the work, which waiting for a core on a shared machine does not inflate); every path and
    kind runs on each query in turn."""
    kinds = ("plain", "ensemble", "max")
    times: dict[tuple[str, str], list[float]] = {(p, k): [] for p in paths for k in kinds}
    cpu: dict[tuple[str, str], list[float]] = {(p, k): [] for p in paths for k in kinds}
    for repetition in range(repetitions + 1):
        for variants, weights in queries if repetition else queries[:2]:  # first: warm-up
            for name, args in paths.items():
                for kind in kinds:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    search_once(
                        args["path"],
                        kind,
                        variants,
                        weights,
                        calibration=calibration,
                        **_rest(args),
                    )
                    if repetition:
                        times[(name, kind)].append(time.perf_counter() - start)
                        cpu[(name, kind)].append(time.process_time() - start_cpu)
    return [
        {
            "path": name,
            "kind": kind,
            "ms_p50": 1000 * float(np.percentile(values, 50)),
            "ms_p99": 1000 * float(np.percentile(values, 99)),
            "cpu_ms_p50": 1000 * float(np.percentile(cpu[(name, kind)], 50)),
            "samples": len(values),
        }
        for (name, kind), values in times.items()
    ]


def _rest(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k != "path"}


def crossover(sizes: Sequence[int], ms: Sequence[float], budget_ms: float) -> float | None:
    """Library size where a least-squares line through (size, ms) reaches budget_ms."""
    if len(sizes) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(sizes, float), np.asarray(ms, float), 1)
    if slope <= 0:
        return None
    return float((budget_ms - intercept) / slope)


# --- The whole section -----------------------------------------------------------------------

FULL_SIZE = 100_000
QUICK_SIZE = 20_000
LATENCY_SIZES = (10_000, 100_000, 300_000)
QUICK_LATENCY_SIZES = (10_000, 20_000)
GRAPH_MAX_SIZE = 100_000  # building hnswlib beyond this takes too long for a benchmark run


def measure(quick: bool, note: Note, cache: Path) -> dict[str, Any]:
    """Every figure of the quality section; `note` receives the lines for the log."""
    from gallery_app.core.index import DEFAULT_EF_SEARCH

    calibration = siglip_base_calibration()
    size = QUICK_SIZE if quick else FULL_SIZE
    spec = sim.SimulationSpec(images=size)
    library = sim.simulate(spec)
    images = library.images
    ranges = sim.cosine_ranges(library)
    nodes = Nodes.of(images)
    out: dict[str, Any] = {
        "simulation": "SIMULATED vectors, not SigLIP: directions of effects only",
        "n": size,
        "concepts": spec.concepts,
        "exact_copies": int((library.copy_of >= 0).sum()),
        "near_duplicates": int((library.near_duplicate_of >= 0).sum()),
        "distinct_vectors": len(nodes.first_row),
        "temperature": calibration.temperature,
        "centre": calibration.centre,
        "match_cos_p5": ranges.match[0],
        "match_cos_p95": ranges.match[2],
        "sibling_cos_p50": ranges.same_family[1],
        "unrelated_cos_p5": ranges.unrelated[0],
        "unrelated_cos_p95": ranges.unrelated[2],
    }
    note(
        f"SIMULATION: {size} generated vectors ({spec.concepts} concepts in {spec.families} "
        f"families, {spec.synonyms} synonyms each, modality gap, {out['exact_copies']} exact "
        f"copies, {out['near_duplicates']} near-duplicates); cosines of true matches "
        f"{ranges.match[0]:.3f}..{ranges.match[2]:.3f}, unrelated {ranges.unrelated[0]:.3f}.."
        f"{ranges.unrelated[2]:.3f} (5th..95th percentile), T {calibration.temperature:.1f}, "
        f"c {calibration.centre:.3f}. Directions of effects, not SigLIP's numbers: "
        "`gallery-app eval` on a labelled folder with real weights is the real measure"
    )

    begin = time.perf_counter()
    modes = aggregation_quality(library, calibration)
    for mode in modes:
        out[f"{mode.mode}_map"] = mode.mean_average_precision
        out[f"{mode.mode}_precision_at_0_5"] = mode.precision_at_min_score
        out[f"{mode.mode}_count_at_0_5"] = mode.count_at_min_score
        out[f"{mode.mode}_ece"] = mode.expected_calibration_error
        out[f"{mode.mode}_ece_top_100"] = mode.ece_top_100
    out["modes"] = [{k: _round(v) for k, v in asdict(m).items()} for m in modes]
    note(
        f"modes: every one of {spec.concepts} concept queries ranks all {size} photos "
        "(ties by raw cosine, true ties such as copies against the relevant, as eval "
        "ranks); precision/count at score >= 0.5 pooled / per query; "
        "ECE (10 bins) over every (query, photo) pair and over each query's first 100; "
        "hit@10 = share of queries with a relevant photo in the first 10, "
        "recall@10 = relevant in the first 10 / relevant; "
        f"query = as typed, ensemble = normalize(sum w t) over it and its synonyms (w "
        f"{SYNONYM_WEIGHT}), max = best w x score over the same, max_broader = max with the "
        f"broader term at {BROADER_WEIGHT} (the seed) ({time.perf_counter() - begin:.0f} s)"
    )

    begin = time.perf_counter()
    queries = text_queries(library, 300 if quick else 600)
    bars = kth_exact(images, queries)
    graph = graph_index(images, nodes, spec_key(spec, "distinct"), cache / "quality")
    sweep = ef_sweep(graph, nodes, images, queries, bars)
    chosen = smallest_ef(sweep)
    out["ef_sweep"] = [{k: _round(v) for k, v in row.items()} for row in sweep]
    out["hnsw_ef_for_recall_0_99"] = chosen
    app_ef = DEFAULT_EF_SEARCH  # TODO(i11-retrieval): the graph path's own ef constant
    out["hnsw_app_ef"] = app_ef
    app_row = ef_sweep(graph, nodes, images, queries, bars, [app_ef])[0]
    out["hnsw_recall_at_10"] = app_row["recall_at_10"]
    # The index as the app builds it today: one node a photo, copies included.
    per_photo = PerPhotoIndex.build(
        images, cache / "quality" / f"{spec_key(spec, 'per-photo')}-v{INDEX_VERSION}.hnsw"
    )
    compare = [app_ef] + ([chosen] if chosen and chosen != app_ef else [])
    for row in ef_sweep(per_photo, None, images, queries, bars, compare):
        out[f"hnsw_per_photo_recall_at_10_ef{row['ef']}"] = row["recall_at_10"]
    # The exact scan's own recall: float32 storage, and float16 storage read in float32
    # (widened at once here; the same values as a block-by-block scan, much faster).
    widened = images.astype(np.float16).astype(np.float32)
    for name, stored in (("f32", images), ("f16", widened)):
        values = []
        for first in range(0, len(queries), 64):
            batch = queries[first : first + 64]
            top = np.argpartition(-(batch @ stored.T), TOP - 1, axis=1)[:, :TOP]
            for query, rows, bar in zip(batch, top, bars[first : first + 64], strict=True):
                values.append(recall(images[rows] @ query, float(bar)))
        out[f"exact_{name}_recall_at_10"] = float(np.mean(values))
    del widened
    note(
        f"recall: {len(queries)} text-cone queries (concept queries, their ensembles, two-"
        "concept phrases), recall@10 vs an exact float32 scan (a photo tied with the 10th "
        "counts); hnswlib = the app's VectorIndex (its M, ef_construction) over distinct "
        "vectors, 10 nodes a query at beam ef, each node's photos re-ranked exactly; per_photo "
        f"= one node a photo as the app builds it today ({time.perf_counter() - begin:.0f} s)"
    )

    begin = time.perf_counter()
    rows: list[dict[str, Any]] = []
    sizes = QUICK_LATENCY_SIZES if quick else LATENCY_SIZES
    for n in sizes:
        lib = library if n == size else sim.simulate(sim.SimulationSpec(images=n))
        paths: dict[str, dict[str, Any]] = {"exact_f32": {"path": "exact", "images": lib.images}}
        if n <= GRAPH_MAX_SIZE:
            lib_nodes = nodes if n == size else Nodes.of(lib.images)
            lib_graph = (
                graph
                if n == size
                else graph_index(
                    lib.images,
                    lib_nodes,
                    spec_key(lib.spec, "distinct"),
                    cache / "quality",
                )
            )
            lib_graph.ef_search = chosen or max(EF_SWEEP)
            paths["hnsw"] = {
                "path": "graph",
                "images": lib.images,
                "index": lib_graph,
                "nodes": lib_nodes,
                "exact_images": lib.images,
            }
        reps = 1 if n > FULL_SIZE else 2 if quick else 3
        for row in latency(paths, _query_set(lib, 30), calibration, reps):
            rows.append({"n": n, **{k: _round(v) for k, v in row.items()}})
        if n <= GRAPH_MAX_SIZE:
            # float16 storage widened block by block: several times the float32 scan with
            # numpy's conversion, so fewer samples.
            half = {"exact_f16": {"path": "exact", "images": lib.images.astype(np.float16)}}
            for row in latency(half, _query_set(lib, 10), calibration, 1):
                rows.append({"n": n, **{k: _round(v) for k, v in row.items()}})
        del lib, paths
    out["latency"] = rows

    def p50(n: int, path: str, kind: str, key: str = "ms_p50") -> float | None:
        for row in rows:
            if row["n"] == n and row["path"] == path and row["kind"] == kind:
                return float(row[key])
        return None

    for n in sizes:
        tag = f"{n // 1000}k"
        for path in ("exact_f32", "exact_f16", "hnsw"):
            for kind in ("plain", "ensemble", "max"):
                value = p50(n, path, kind)
                if value is not None:
                    out[f"{path}_{kind}_ms_{tag}"] = value
        out[f"exact_f32_ensemble_cpu_ms_{tag}"] = p50(n, "exact_f32", "ensemble", "cpu_ms_p50")
    measured = [n for n in sizes if p50(n, "exact_f32", "ensemble") is not None]
    for kind in ("ensemble", "max"):
        out[f"exact_{kind}_crossover_n"] = crossover(
            measured, [p50(n, "exact_f32", kind) or 0.0 for n in measured], EXACT_BUDGET_MS
        )
        # The same from CPU time: what a machine with a core free for the search would see
        # (an upper bound there: the CPU time of all BLAS threads added up).
        out[f"exact_{kind}_crossover_n_cpu"] = crossover(
            measured,
            [p50(n, "exact_f32", kind, "cpu_ms_p50") or 0.0 for n in measured],
            EXACT_BUDGET_MS,
        )
    note(
        f"latency: {PAGE} results a search from cached text vectors, 30 concept queries x "
        "repetitions, every path and kind in turn per query; plain = the query as typed, "
        "ensemble = the default expanded query (one vector), max = every variant scanned; "
        "exact_f16 = float16 storage widened to float32 a block at a time (10 queries, once); "
        f"hnsw at ef {chosen or max(EF_SWEEP)} (the smallest reaching recall 0.99), not "
        f"built beyond {GRAPH_MAX_SIZE}; crossover = the size where a line through the exact "
        f"float32 p50s reaches {EXACT_BUDGET_MS:.0f} ms ({time.perf_counter() - begin:.0f} s)"
    )
    return out


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
