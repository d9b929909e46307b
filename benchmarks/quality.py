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

Scores, ensembles, scans, the graph and the ranking are gallery_app.core's own
(hits_from_vectors, ensemble_vector, matrix_cosines, VectorIndex, SearchHits.rank), so the
figures are the app's; only the whole-library metrics vectorise rank's arithmetic, and they
are checked against rank() on every query.
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
from gallery_app.core.index import DEFAULT_EF_SEARCH, VectorIndex
from gallery_app.core.search import (
    BROADER,
    ENSEMBLE,
    MAX,
    MIN_CANDIDATES,
    QUERY,
    SYNONYM,
    PromptVariant,
    SearchHits,
    _top_rows,  # the exact scan's candidate rule, as Searcher uses it
    ensemble_vector,
    graph_ef,
    hits_from_vectors,
    scored_columns,
)
from gallery_app.core.vectors import matrix_cosines

MIN_SCORE = 0.5
TOP = 10
SYNONYM_WEIGHT = 1.0  # the built-in dictionary's weight for a synonym
BROADER_WEIGHT = 0.8  # and for a broader term (pet, vehicle), in the seed's max
ECE_TOP = 100  # also the calibration error of each query's first 100 photos
PAGE = 100  # results a search returns in the latency runs (a page of the grid)
EF_SWEEP = (50, 75, 100, 150, 200, 300, 400, 600, 800)
TARGET_RECALL = 0.99
EXACT_BUDGET_MS = 40.0  # issue 11: an expanded query at 100k photos on this CPU
INDEX_VERSION = 2  # 2: gallery_app.core's VectorIndex, identical vectors one node
CHECKED_TOP = 100  # each query's first results compared with SearchHits.rank's

Note = Callable[[str], None]


def siglip_base_calibration() -> Calibration:
    return model_preset(sim.SIGLIP_BASE_LOGIT_SCALE, sim.SIGLIP_BASE_LOGIT_BIAS)


# --- Aggregation: gallery_app.core's own functions --------------------------------------


def column_scores(
    hits: SearchHits, calibration: Calibration
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
    """(score, raw of the winning column) of every photo: SearchHits.rank's arithmetic (best
    weight x sigmoid(T (cos - c)) over its columns), vectorised for whole-library metrics.
    aggregation_quality checks it against rank() itself for every query."""
    weights = np.array([v.weight for v in hits.variants], dtype=np.float64)
    weighted = calibration.score(hits.raw) * weights[None, :]
    best = np.argmax(weighted, axis=1)
    rows = np.arange(len(hits.raw))
    return weighted[rows, best], hits.raw[rows, best]


def ranking(score: npt.NDArray[np.float64], raw: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    """Photos by score, then raw cosine, then id, as SearchHits.rank orders them."""
    return np.lexsort((np.arange(len(score)), -raw, -score))


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


def concept_variants(
    library: sim.SimulatedLibrary, concept: int, mode: str
) -> tuple[tuple[PromptVariant, ...], npt.NDArray[np.float32], str]:
    """(variants, their text vectors, aggregate) of one concept's query under one mode."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    name = f"concept {concept}"
    variants = [PromptVariant(name, name, 1.0, None, QUERY)]
    text = [library.query_text[concept]]
    if mode != "query":
        for j, vector in enumerate(library.synonym_text[concept]):
            variants.append(
                PromptVariant(f"{name} s{j}", f"{name} s{j}", SYNONYM_WEIGHT, name, SYNONYM)
            )
            text.append(vector)
    if mode == "max_broader":
        family = int(library.family_of[concept])
        variants.append(
            PromptVariant(f"family {family}", f"family {family}", BROADER_WEIGHT, name, BROADER)
        )
        text.append(library.broader_text[family])
    aggregate = MAX if mode.startswith("max") else ENSEMBLE
    return tuple(variants), np.stack(text).astype(np.float32), aggregate


def mode_hits(
    library: sim.SimulatedLibrary, concept: int, mode: str, paths: tuple[str, ...]
) -> SearchHits:
    """Every photo's hits for one concept's query, computed as the app computes them."""
    variants, text, aggregate = concept_variants(library, concept, mode)
    ids = np.arange(len(library.images), dtype=np.int64)
    return hits_from_vectors(
        variants[0].text, variants, text, ids, paths, library.images, aggregate
    )


def aggregation_quality(
    library: sim.SimulatedLibrary, calibration: Calibration, modes: Sequence[str] = MODES
) -> list[ModeQuality]:
    concepts = [c for c in range(library.spec.concepts) if library.labels[c].any()]
    n = library.images.shape[0]
    paths = tuple(f"/photos/{i}.jpg" for i in range(n))
    out = []
    for mode in modes:
        pair_scores = np.empty((len(concepts), n), np.float32)
        aps, hit_rates, recalls, precisions_10, counts = [], [], [], [], []
        top_scores, top_relevant = [], []
        above = relevant_above = 0
        for row, concept in enumerate(concepts):
            hits = mode_hits(library, concept, mode, paths)
            score, raw = column_scores(hits, calibration)
            relevant = library.labels[concept]
            pair_scores[row] = score
            ranked_by_app = [r.image_id for r in hits.rank(calibration, top_k=CHECKED_TOP)]
            if ranked_by_app != ranking(score, raw)[:CHECKED_TOP].tolist():
                raise RuntimeError(
                    f"{mode}, concept {concept}: the whole-library scores disagree with "
                    "SearchHits.rank; column_scores no longer matches the app"
                )
            # As `eval` ranks: by score, then raw; true ties (copies) against the relevant.
            order = worst_case_order(relevant, score, raw)
            ranked = relevant[order]
            top_scores.append(score[order[:ECE_TOP]])
            top_relevant.append(ranked[:ECE_TOP])
            aps.append(average_precision(ranked))
            hit_rates.append(hit_at_k(ranked, TOP))
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
                hit_at_10=float(np.mean(hit_rates)),
                recall_at_10=float(np.mean(recalls)),
                precision_at_10=float(np.mean(precisions_10)),
            )
        )
        del pair_scores
    return out


# --- The two retrieval paths -----------------------------------------------------------------


def distinct_count(images: npt.NDArray[np.float32]) -> int:
    """How many distinct vectors (bit for bit) the photos have."""
    keys = np.ascontiguousarray(images).view(np.dtype((np.void, images.shape[1] * 4)))
    return len(np.unique(keys.ravel()))


def graph_top(
    index: Any, images: npt.NDArray[np.float32], text: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.float32]:
    """The graph path for one text vector: hnswlib's k nearest nodes (every copy of a node
    comes with it), their photos' cosines exact; the k best cosines."""
    labels, _ = index.query(text, k)
    rows = np.unique(labels[labels >= 0])
    raw = matrix_cosines(images, text, rows.astype(np.intp))[:, 0]
    return -np.sort(-raw)[:k]


def recall(
    found_raw: npt.NDArray[np.float32], kth_exact: float, k: int = TOP, tolerance: float = 1e-6
) -> float:
    """Share of the k returned that belong in the exact top k (ties count: copies tie)."""
    return float(np.sum(found_raw[:k] >= kth_exact - tolerance)) / k


def text_queries(library: sim.SimulatedLibrary, count: int) -> npt.NDArray[np.float32]:
    """Queries from the text cone: concept queries as typed, their ensembles, and phrases."""
    third = max(1, count // 3)
    concepts = np.arange(library.spec.concepts)[:third]
    ensembles = []
    for concept in concepts:
        variants, text, _ = concept_variants(library, int(concept), "ensemble")
        ensembles.append(ensemble_vector(text, [v.weight for v in variants]))
    return np.vstack(
        [library.query_text[concepts], np.stack(ensembles), library.phrase_text(count - 2 * third)]
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


def graph_index(images: npt.NDArray[np.float32], key: str, cache: Path) -> VectorIndex:
    """The app's VectorIndex (its M, ef_construction; identical vectors one node) over every
    photo, labels = rows; built once and cached."""
    path = cache / f"{key}-core-v{INDEX_VERSION}.hnsw"
    if path.exists():
        try:
            index, _ = VectorIndex.load(path, images.shape[1])
        except (OSError, RuntimeError, ValueError):
            pass
        else:
            if len(index) == len(images):
                return index
    index = VectorIndex(images.shape[1], len(images))
    start = time.perf_counter()
    for first in range(0, len(images), 10_000):
        index.add(
            np.arange(first, min(first + 10_000, len(images))), images[first : first + 10_000]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
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
        self, vectors: npt.NDArray[np.float32], k: int, ef: int = 0
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        self._index.set_ef(max(self.ef_search, k, ef))
        labels, distances = self._index.knn_query(np.atleast_2d(vectors), k=k)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)


def spec_key(spec: sim.SimulationSpec, extra: str = "") -> str:
    digest = hashlib.sha256(
        (json.dumps(asdict(spec), sort_keys=True) + extra + sim.SIMULATION_VERSION).encode()
    ).hexdigest()
    return f"sim-n{spec.images}-{digest[:12]}"


def ef_sweep(
    index: Any,
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
                raw = graph_top(index, images, query, TOP)
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

KINDS = ("plain", "ensemble", "max")


@dataclass(frozen=True)
class LatencyLibrary:
    """What a search reads: the vectors (float32 or float16 storage), ids, paths, a graph."""

    matrix: npt.NDArray[np.floating]
    ids: npt.NDArray[np.int64]
    paths: npt.NDArray[np.object_]
    index: Any = None  # VectorIndex for the graph path


def search_once(
    path: str,
    kind: str,
    variants: tuple[PromptVariant, ...],
    text: npt.NDArray[np.float32],
    library: LatencyLibrary,
    calibration: Calibration,
) -> list[Any]:
    """One search from cached text vectors to a page of ranked results, by one path, with
    the app's functions in Searcher._search's order (snapshot bookkeeping and the text cache
    left out). kind: plain (the query as typed), ensemble (the default expanded query: one
    vector), max (every variant scanned, the best weight x score per photo)."""
    if kind == "plain":
        variants, text = variants[:1], text[:1]
    aggregate = MAX if kind == "max" else ENSEMBLE
    columns, members, column_text = scored_columns(variants, text, aggregate)
    if path == "exact":
        scan = matrix_cosines(library.matrix, column_text)
        positions = _top_rows(scan, PAGE)
        raw = scan[positions]
    else:
        labels, _ = library.index.query(
            column_text, max(MIN_CANDIDATES, PAGE), ef=graph_ef(len(library.matrix))
        )
        positions = np.unique(labels[labels >= 0]).astype(np.intp)
        raw = matrix_cosines(library.matrix, column_text, positions)
    hits = SearchHits(
        variants[0].text,
        columns,
        library.ids[positions],
        tuple(library.paths[positions].tolist()),
        raw,
        aggregate,
        members,
    )
    return hits.rank(calibration, top_k=PAGE)


def latency(
    paths: dict[str, tuple[str, LatencyLibrary]],
    queries: list[tuple[tuple[PromptVariant, ...], npt.NDArray[np.float32]]],
    calibration: Calibration,
    repetitions: int,
) -> list[dict[str, Any]]:
    """p50/p99 wall ms per (path, kind), and the p50 of CPU ms (all threads of the process:
    the work, which waiting for a core on a shared machine does not inflate); every path and
    kind runs on each query in turn."""
    times: dict[tuple[str, str], list[float]] = {(p, k): [] for p in paths for k in KINDS}
    cpu: dict[tuple[str, str], list[float]] = {(p, k): [] for p in paths for k in KINDS}
    for repetition in range(repetitions + 1):
        for variants, text in queries if repetition else queries[:2]:  # first: warm-up
            for name, (path, library) in paths.items():
                for kind in KINDS:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    search_once(path, kind, variants, text, library, calibration)
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


def _query_set(
    library: sim.SimulatedLibrary, count: int
) -> list[tuple[tuple[PromptVariant, ...], npt.NDArray[np.float32]]]:
    """(variants, text vectors) of count concept queries with their synonyms."""
    out = []
    for concept in range(min(count, library.spec.concepts)):
        variants, text, _ = concept_variants(library, concept, "ensemble")
        out.append((variants, text))
    return out


def measure(quick: bool, note: Note, cache: Path) -> dict[str, Any]:
    """Every figure of the quality section; `note` receives the lines for the log."""
    calibration = siglip_base_calibration()
    size = QUICK_SIZE if quick else FULL_SIZE
    spec = sim.SimulationSpec(images=size)
    library = sim.simulate(spec)
    images = library.images
    ranges = sim.cosine_ranges(library)
    out: dict[str, Any] = {
        "simulation": "SIMULATED vectors, not SigLIP: directions of effects only",
        "n": size,
        "concepts": spec.concepts,
        "exact_copies": int((library.copy_of >= 0).sum()),
        "near_duplicates": int((library.near_duplicate_of >= 0).sum()),
        "distinct_vectors": distinct_count(images),
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
    graph = graph_index(images, spec_key(spec), cache / "quality")
    out["hnsw_nodes"] = graph.node_count
    sweep = ef_sweep(graph, images, queries, bars)
    chosen = smallest_ef(sweep)
    out["ef_sweep"] = [{k: _round(v) for k, v in row.items()} for row in sweep]
    out["hnsw_ef_for_recall_0_99"] = chosen
    app_ef = DEFAULT_EF_SEARCH
    out["hnsw_app_ef"] = app_ef
    app_row = ef_sweep(graph, images, queries, bars, [app_ef])[0]
    out["hnsw_recall_at_10"] = app_row["recall_at_10"]
    # The index as it was built before issue 11: one node a photo, copies included.
    per_photo = PerPhotoIndex.build(
        images, cache / "quality" / f"{spec_key(spec, 'per-photo')}-v{INDEX_VERSION}.hnsw"
    )
    compare = [app_ef] + ([chosen] if chosen and chosen != app_ef else [])
    for row in ef_sweep(per_photo, images, queries, bars, compare):
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
        "counts); hnswlib = gallery_app.core's VectorIndex (its M, ef_construction, identical "
        "vectors one node) over every photo, 10 nodes a query at beam ef, their photos' "
        "cosines exact; per_photo = plain hnswlib with one node a photo, as the index was "
        f"built before issue 11 ({time.perf_counter() - begin:.0f} s)"
    )

    begin = time.perf_counter()
    rows: list[dict[str, Any]] = []
    sizes = QUICK_LATENCY_SIZES if quick else LATENCY_SIZES
    for n in sizes:
        lib = library if n == size else sim.simulate(sim.SimulationSpec(images=n))
        ids = np.arange(n, dtype=np.int64)
        names = np.array([f"/photos/{i}.jpg" for i in range(n)], dtype=object)
        paths: dict[str, tuple[str, LatencyLibrary]] = {
            "exact_f32": ("exact", LatencyLibrary(lib.images, ids, names))
        }
        if n <= GRAPH_MAX_SIZE:
            lib_graph = (
                graph
                if n == size
                else graph_index(lib.images, spec_key(lib.spec), cache / "quality")
            )
            lib_graph.ef_search = app_ef
            paths["hnsw"] = ("graph", LatencyLibrary(lib.images, ids, names, lib_graph))
        reps = 1 if n > FULL_SIZE else 2 if quick else 3
        for row in latency(paths, _query_set(lib, 30), calibration, reps):
            rows.append({"n": n, **{k: _round(v) for k, v in row.items()}})
        if n <= GRAPH_MAX_SIZE:
            # float16 storage widened block by block: several times the float32 scan with
            # numpy's conversion, so fewer samples.
            half = LatencyLibrary(lib.images.astype(np.float16), ids, names)
            for row in latency({"exact_f16": ("exact", half)}, _query_set(lib, 10), calibration, 1):
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
        f"latency: {PAGE} results a search from cached text vectors through the app's own "
        "functions in Searcher._search's order (scored_columns, then matrix_cosines + "
        "_top_rows or VectorIndex.query + matrix_cosines, then SearchHits.rank; no snapshot "
        "bookkeeping, no text cache); 30 concept queries x "
        "repetitions, every path and kind in turn per query; plain = the query as typed, "
        "ensemble = the default expanded query (one vector), max = every variant scanned; "
        "exact_f16 = float16 storage widened to float32 a block at a time (10 queries, once); "
        f"hnsw at the app's ef {app_ef}, not "
        f"built beyond {GRAPH_MAX_SIZE}; crossover = the size where a line through the exact "
        f"float32 p50s reaches {EXACT_BUDGET_MS:.0f} ms ({time.perf_counter() - begin:.0f} s)"
    )
    return out


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
