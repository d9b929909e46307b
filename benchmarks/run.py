"""Speed of gallery_app on this machine, as ratios measured side by side in one run.

    python benchmarks/run.py [--quick] [--json OUT] [--only SECTION ...]

Uses the real SigLIP-base architecture (random weights, a trained SentencePiece vocab) loaded
through SiglipEncoder.load, and generated photo-like JPEGs (12 MP and phone-sized), all cached
under ~/.cache/gallery_app_bench. A full run (no --quick, no --only) rewrites RESULTS.md;
`--only quality` (no --quick) rewrites only its quality parts. The quality section measures a
SIMULATED library (simulated_library.py): directions of effects, not SigLIP's numbers.
Each section is one function in SECTIONS: add a section by appending to that list.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import fixtures  # noqa: E402
import numpy as np  # noqa: E402
import timing  # noqa: E402


@dataclass
class Context:
    """What sections share: the run mode, loaded encoders, a scratch folder, notes for the log."""

    quick: bool
    scratch: Path
    notes: dict[str, list[str]] = field(default_factory=dict)
    _encoders: dict[str, Any] = field(default_factory=dict)

    def encoder(self, precision: str = "fp32") -> Any:
        if precision not in self._encoders:
            from gallery_app.core.embeddings import SiglipEncoder

            self._encoders[precision] = SiglipEncoder.load(
                str(fixtures.base_model_dir()), device="cpu", precision=precision
            )
        return self._encoders[precision]

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)
        print(f"  [{section}] {text}", flush=True)

    def reps(self, quick: int, full: int) -> int:
        return quick if self.quick else full


Section = Callable[[Context], dict[str, Any]]


# ---------------------------------------------------------------------------------------------
def decode_section(ctx: Context) -> dict[str, Any]:
    """Full JPEG decode vs draft (DCT-scaled) decode, and the whole decode() per file."""
    from PIL import Image

    from gallery_app.core.imaging import decode

    spec = ctx.encoder().image_spec
    out: dict[str, Any] = {}
    count = ctx.reps(6, 12)
    for kind in ("12mp", "phone"):
        files = sorted(fixtures.photo_folder(kind, count).glob("*.jpg"))[:count]

        def full(files: list[Path] = files) -> None:
            for path in files:
                with Image.open(path) as img:
                    img.load()

        def draft(files: list[Path] = files) -> None:
            for path in files:
                with Image.open(path) as img:
                    img.draft("RGB", (256, 256))
                    img.load()

        def whole(files: list[Path] = files) -> None:
            for path in files:
                decode(path, spec.to_model_input)

        samples = timing.interleaved(
            {"full": full, "draft": draft, "decode": whole}, ctx.reps(3, 5)
        )
        prefix = "" if kind == "12mp" else "phone_"
        out[f"{prefix}full_ms"] = 1000 * samples.median("full") / len(files)
        out[f"{prefix}draft_ms"] = 1000 * samples.median("draft") / len(files)
        out[f"{prefix}decode_ms"] = 1000 * samples.median("decode") / len(files)
        out[f"{prefix}draft_speedup"] = samples.ratio("full", "draft")
        ctx.note(
            "decode",
            f"{kind}: {fixtures.PHOTO_SIZES[kind]} px, medians of {samples.count('full')} "
            f"passes over {len(files)} files (ms per file); decode_ms = draft + orient + "
            "model input + thumbnail",
        )
    return out


# ---------------------------------------------------------------------------------------------
def _model_inputs(ctx: Context, folder: Path, count: int) -> np.ndarray:
    from gallery_app.core.imaging import decode

    spec = ctx.encoder().image_spec
    files = sorted(folder.glob("*.jpg"))[:count]
    inputs = [decode(p, spec.to_model_input).model_input for p in files]
    return np.stack([pixels for pixels in inputs if pixels is not None])


def _model_only(encoder: Any, pixels: np.ndarray, batch: int = 8) -> float:
    """Images per second of encode_pixels alone, over already-decoded inputs."""
    start = time.perf_counter()
    for first in range(0, len(pixels), batch):
        encoder.encode_pixels(pixels[first : first + batch])
    return len(pixels) / (time.perf_counter() - start)


def _pipeline(ctx: Context, encoder: Any, kind: str, count: int, **indexer_options: Any) -> float:
    """Images per second of Indexer.index on a fresh library: scan, decode, thumbnails, commit."""
    from gallery_app.core.indexer import Indexer
    from gallery_app.core.library import Library

    run = Path(tempfile.mkdtemp(dir=ctx.scratch))
    photos = fixtures.photo_subset(kind, count, run / "photos")
    with Library(run / "data", encoder.model_id, encoder.dim) as library:
        start = time.perf_counter()
        report = Indexer(library, encoder, **indexer_options).index([photos])
        seconds = time.perf_counter() - start
    assert report.indexed == count, report
    return count / seconds


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def indexing_section(ctx: Context) -> dict[str, Any]:
    """Model alone vs the whole pipeline (12 MP and phone JPEGs), fp32 vs int8, side by side."""
    fp32 = ctx.encoder("fp32")
    int8 = ctx.encoder("int8")
    # Short repetitions, many of them: A and B run seconds apart, so a neighbour's burst of
    # work on this shared machine hits both sides of most pairs alike.
    count = ctx.reps(16, 24)
    pixels = _model_inputs(ctx, fixtures.photo_folder("12mp", count), count)
    fixtures.photo_folder("phone", count)
    fp32.encode_pixels(pixels[:8])  # warm-up: first forwards allocate
    int8.encode_pixels(pixels[:8])
    samples = timing.interleaved(
        {
            "model_only": lambda: _model_only(fp32, pixels),
            "pipeline": lambda: _pipeline(ctx, fp32, "12mp", count),
            # The same pipeline with decode threads at the model's priority, for comparison.
            "pipeline_nice0": lambda: _pipeline(ctx, fp32, "12mp", count, decode_niceness=0),
            "phone_pipeline": lambda: _pipeline(ctx, fp32, "phone", count),
            "int8": lambda: _model_only(int8, pixels),
            "int8_pipeline": lambda: _pipeline(ctx, int8, "12mp", count),
        },
        ctx.reps(3, 7),
    )
    reference = fp32.encode_pixels(pixels)
    quantized = int8.encode_pixels(pixels)
    prompts = [fp32.prompt(t) for t in _dictionary_words()[:64]]
    text_cos = _min_cos(fp32.encode_prompts(prompts), int8.encode_prompts(prompts))
    ctx.note(
        "indexing",
        f"{count} images a repetition, {samples.count('model_only')} interleaved repetitions, "
        "batch 8; rates are medians, ratios are medians of per-repetition ratios; "
        "pipeline = Indexer.index on a fresh library (scan, decode, thumbnails, catalog, index)",
    )
    return {
        "model_only_img_s": samples.median("model_only"),
        "pipeline_img_s": samples.median("pipeline"),
        "efficiency": samples.ratio("pipeline", "model_only"),
        "efficiency_decode_nice0": samples.ratio("pipeline_nice0", "model_only"),
        "phone_pipeline_img_s": samples.median("phone_pipeline"),
        "phone_efficiency": samples.ratio("phone_pipeline", "model_only"),
        "int8_img_s": samples.median("int8"),
        "int8_speedup": samples.ratio("int8", "model_only"),
        "int8_pipeline_img_s": samples.median("int8_pipeline"),
        "int8_efficiency": samples.ratio("int8_pipeline", "int8"),
        "int8_min_cos": _min_cos(reference, quantized),
        "int8_text_min_cos": text_cos,
    }


def _dictionary_words() -> list[str]:
    from gallery_app.core.expansion import builtin_dictionary

    return sorted(builtin_dictionary().entries)


# ---------------------------------------------------------------------------------------------
def limits_section(ctx: Context) -> dict[str, Any]:
    """The wall: vision FLOPs per image over the best GEMM rate this CPU reaches."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    encoder = ctx.encoder()
    pixels = torch.zeros(1, 3, encoder.image_spec.height, encoder.image_spec.width)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        encoder._model.get_image_features(pixel_values=pixels)
    vision_gflop = counter.get_total_flops() / 1e9
    ids = encoder.tokenize(["a photo of a dog."])
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        encoder._model.get_text_features(input_ids=ids)
    text_gflop = counter.get_total_flops() / 1e9
    peak = timing.gemm_peak_gflops()
    ctx.note("limits", "peak = best of 7 fp32 2048x2048 GEMMs on all torch threads")
    return {
        "vision_gflop_per_img": vision_gflop,
        "text_gflop_per_prompt": text_gflop,
        "gemm_peak_gflops": peak,
        "fp32_img_s_ceiling": peak / vision_gflop,
    }


# ---------------------------------------------------------------------------------------------
QUERY_LIBRARY_SIZE = 10_000
QUERY_WORDS = (
    "dog",
    "beach",
    "car",
    "forest",
    "sofa",
    "cat",
    "sunset",
    "bicycle",
    "snow",
    "lake",
)


def _query_library(ctx: Context, encoder: Any) -> Any:
    """A library of QUERY_LIBRARY_SIZE image vectors (synthetic, SigLIP-like), index built."""
    from gallery_app.core.catalog import ImageRecord
    from gallery_app.core.library import Library

    images, _ = fixtures.embedding_like_vectors(QUERY_LIBRARY_SIZE, 1, dim=encoder.dim, seed=1)
    library = Library(ctx.scratch / "query-library", encoder.model_id, encoder.dim)
    folder = library.catalog.add_folder("/photos")
    for first in range(0, len(images), 1000):
        records = [
            ImageRecord(f"/photos/IMG_{i:06d}.jpg", folder.id, 0, 1, 4000, 3000, vector=images[i])
            for i in range(first, min(first + 1000, len(images)))
        ]
        _, ids = library.catalog.write_batch(records)
        library.index.add(ids, images[first : first + len(records)])
    return library


def query_section(ctx: Context) -> dict[str, Any]:
    """Text forward vs plain, expanded-warm and progressive-cold searches, side by side."""
    from gallery_app.core.calibrate import Calibration
    from gallery_app.core.expansion import Dictionary, Expander, builtin_dictionary
    from gallery_app.core.search import PromptVariant, Searcher, SearchHits

    encoder = ctx.encoder("fp32")
    library = _query_library(ctx, encoder)
    full = builtin_dictionary()
    # quick: precompute only the measured words' entries; full: the whole built-in dictionary
    dictionary = Dictionary({w: full.entries[w] for w in QUERY_WORDS}) if ctx.quick else full
    expander = Expander(dictionary)
    start = time.perf_counter()
    precomputed = Searcher(library, encoder, expander).precompute_dictionary()
    precompute_s = time.perf_counter() - start
    words = list(QUERY_WORDS)
    counter = iter(range(10**6))

    def fresh_prompt() -> float | None:
        encoder.encode_prompts([f"a photo of a unique query number {next(counter)}."])
        return None

    def plain(word: str) -> float:
        # A new Searcher each time: its memory cache is cold, the model's store is warm,
        # as after a restart; the expanded search below gets the same treatment.
        searcher = Searcher(library, encoder, expander)
        begin = time.perf_counter()
        searcher.search(word, expand=False)
        return time.perf_counter() - begin

    def expanded(word: str) -> float:
        searcher = Searcher(library, encoder, expander)
        begin = time.perf_counter()
        searcher.search(word)
        return time.perf_counter() - begin

    def first_results_cold() -> float:
        # A phrase never seen: its expansion has several uncached variants.
        phrase = f"{words[next(counter) % len(words)]} at dusk {next(counter)}"
        searcher = Searcher(library, encoder, expander)
        begin = time.perf_counter()
        first = next(iter(searcher.search_progressive(phrase)))
        seconds = time.perf_counter() - begin
        assert len(first.variants) == 1
        return seconds

    for word in words:  # warm-up (and a check: the store holds every variant)
        assert Searcher(library, encoder, expander).is_cached(
            [v.prompt for v in Searcher(library, encoder, expander).variants(word)]
        )
    fresh_prompt()
    first_results_cold()
    reps = ctx.reps(2, 5)
    word_turn = iter(range(10**6))

    def next_word() -> str:
        return words[next(word_turn) % len(words)]

    samples = timing.Samples()
    for _ in range(reps * len(words) // 2):
        word = next_word()
        samples.add("plain", plain(word))
        samples.add("expanded", expanded(word))

    def expanded_cold() -> float:
        # What a search did before progressive results: every variant encoded first.
        phrase = f"{words[next(counter) % len(words)]} at dawn {next(counter)}"
        searcher = Searcher(library, encoder, expander)
        begin = time.perf_counter()
        searcher.search(phrase)
        return time.perf_counter() - begin

    cold = timing.interleaved(
        {
            "text_forward": fresh_prompt,
            "first_results_cold": first_results_cold,
            "expanded_cold": expanded_cold,
        },
        ctx.reps(5, 11),
    )
    # The core of a slider move: re-score + re-sort 1,000 results of an 8-variant search.
    rng = np.random.default_rng(0)
    variants = tuple(PromptVariant(f"v{i}", f"a photo of v{i}.", 1.0 - i / 10) for i in range(8))
    hits = SearchHits(
        "q",
        variants,
        np.arange(1000, dtype=np.int64),
        tuple(f"/p/{i}.jpg" for i in range(1000)),
        rng.uniform(-0.1, 0.3, (1000, 8)).astype(np.float32),
    )
    calibrations = [Calibration("custom", 5.0 + i, 0.05) for i in range(50)]
    turn = iter(range(10**6))
    rank_ms = timing.median_ms(
        lambda: hits.rank(calibrations[next(turn) % 50], top_k=None), ctx.reps(20, 50)
    )
    # Where a warm search's candidate vectors come from: hnswlib's get_items (before) or the
    # catalog (now), for the candidates of one expanded search.
    candidate_ids = sorted(
        {
            int(i)
            for i in library.index.query(
                Searcher(library, encoder, expander).text_vectors(
                    [v.prompt for v in Searcher(library, encoder, expander).variants(words[0])]
                ),
                100,
            )[0].ravel()
        }
    )

    def from_hnswlib() -> None:
        library.index.get_vectors(candidate_ids)

    def from_catalog() -> None:
        library.catalog.vectors(ids=candidate_ids)

    fetch = timing.interleaved(
        {"hnswlib": from_hnswlib, "catalog": from_catalog},
        ctx.reps(5, 15),
    )
    library.close()
    ctx.note(
        "query",
        f"candidate vectors of one expanded search ({len(candidate_ids)} ids): "
        f"{fetch.count('hnswlib')} interleaved fetches from hnswlib vs the catalog",
    )
    ctx.note(
        "query",
        f"library of {QUERY_LIBRARY_SIZE} vectors; plain/expanded: {samples.count('plain')} "
        f"pairs over {len(words)} dictionary words, fresh Searcher each (store warm, memory "
        f"cold); cold: {cold.count('text_forward')} interleaved triples of a new prompt's "
        "forward, a new phrase's first progressive results and a new phrase's whole expanded "
        "search (expanded_cold: every variant encoded first, as before progressive search); "
        f"precompute of "
        f"{precomputed} prompts ({'measured words only' if ctx.quick else 'whole dictionary'})",
    )
    return {
        "text_forward_ms": 1000 * cold.median("text_forward"),
        "plain_ms": 1000 * samples.median("plain"),
        "expanded_warm_ms": 1000 * samples.median("expanded"),
        "expansion_ratio": samples.ratio("expanded", "plain"),
        "first_results_cold_ms": 1000 * cold.median("first_results_cold"),
        "cold_ratio": cold.ratio("first_results_cold", "text_forward"),
        "expanded_cold_ms": 1000 * cold.median("expanded_cold"),
        "precompute_prompts": precomputed,
        "precompute_s": precompute_s,
        "rank_1000_ms": rank_ms,
        "candidates": len(candidate_ids),
        "vectors_hnswlib_ms": 1000 * fetch.median("hnswlib"),
        "vectors_catalog_ms": 1000 * fetch.median("catalog"),
    }


# ---------------------------------------------------------------------------------------------
INDEX_SIZE = 100_000
QUICK_INDEX_SIZE = 20_000
INDEX_QUERIES = 200
EF_SWEEP = (100, 128, 160, 200, 256, 400)


def _index_path(count: int, m: int, ef_construction: int) -> Path:
    return fixtures.cache_dir() / "index" / f"n{count}-m{m}-efc{ef_construction}-v1.hnsw"


def _built_index(count: int, images: np.ndarray, m: int, ef_construction: int) -> Path:
    """Build (once, cached) and save an index of count vectors; returns its path."""
    from gallery_app.core.index import VectorIndex

    path = _index_path(count, m, ef_construction)
    info = path.with_suffix(".build.json")
    if not path.exists() or not info.exists():
        index = VectorIndex(images.shape[1], count, m=m, ef_construction=ef_construction)
        start = time.perf_counter()
        for first in range(0, count, 10000):
            index.add(np.arange(first, min(first + 10000, count)), images[first : first + 10000])
        build_s = time.perf_counter() - start
        index.save(path, generation=0)
        info.write_text(json.dumps({"build_s": build_s}), encoding="utf-8")
    return path


def _query_figures(index: Any, texts: np.ndarray, exact: np.ndarray, k: int) -> tuple[float, float]:
    """(p50 ms of one query at the app's candidate pool k, recall of its first 10 vs exact)."""
    times, hits = [], 0
    index.query(texts[:5], k)
    for row, query in enumerate(texts):
        start = time.perf_counter()
        labels, _ = index.query(query, k)
        times.append(time.perf_counter() - start)
        hits += len(set(labels[0, :10].tolist()) & set(exact[row].tolist()))
    return 1000 * float(np.median(times)), hits / (10 * len(texts))


def index_section(ctx: Context) -> dict[str, Any]:
    """hnswlib at 100,000 SigLIP-like vectors with text-like queries: latency, recall, load."""
    from gallery_app.core.index import (
        DEFAULT_EF_CONSTRUCTION,
        DEFAULT_EF_SEARCH,
        DEFAULT_M,
        VectorIndex,
    )
    from gallery_app.core.search import MIN_CANDIDATES

    size = INDEX_SIZE
    if ctx.quick and not _index_path(size, DEFAULT_M, DEFAULT_EF_CONSTRUCTION).exists():
        size = QUICK_INDEX_SIZE  # building 100,000 takes minutes; a full run caches it
        ctx.note("index", f"quick run without a cached {INDEX_SIZE} index: measured {size}")
    images, texts = fixtures.embedding_like_vectors(size, INDEX_QUERIES)
    exact = np.argsort(-(texts @ images.T), axis=1)[:, :10]
    path = _built_index(size, images, DEFAULT_M, DEFAULT_EF_CONSTRUCTION)
    build_s = json.loads(path.with_suffix(".build.json").read_text(encoding="utf-8"))["build_s"]
    loads = []
    for _ in range(ctx.reps(3, 5)):
        start = time.perf_counter()
        index, _ = VectorIndex.load(path, images.shape[1], ef_search=DEFAULT_EF_SEARCH)
        loads.append(time.perf_counter() - start)
    k = MIN_CANDIDATES  # a search asks for its candidate pool, not just the top 10
    out: dict[str, Any] = {
        "n": size,
        "m": DEFAULT_M,
        "ef_construction": DEFAULT_EF_CONSTRUCTION,
    }
    out["ef"] = DEFAULT_EF_SEARCH
    sweep = []
    for ef in sorted({*EF_SWEEP, DEFAULT_EF_SEARCH}):
        index.ef_search = ef
        p50, recall = _query_figures(index, texts, exact, k)
        sweep.append({"ef": ef, "query_ms_p50": round(p50, 3), "recall_at_10": recall})
        if ef == DEFAULT_EF_SEARCH:
            out["query_ms_p50"], out["recall_at_10"] = p50, recall
    out["load_s"] = float(np.median(loads))
    out["build_s"] = build_s
    out["ef_sweep"] = sweep
    ctx.note(
        "index",
        f"{size} vectors, {INDEX_QUERIES} text-like queries at k={k} (a search's pool), "
        f"recall of the first 10 vs exact; load = median of {len(loads)}; build_s from the "
        "run that built the cached index",
    )
    return out


def gui_section(ctx: Context) -> dict[str, Any]:
    """The real window, offscreen: first paint, stalls while indexing, a slider move."""
    import gui

    result = gui.bench_gui(str(fixtures.base_model_dir()), quick=ctx.quick)
    ctx.note(
        "gui",
        f"first paint: median of {result['first_paint_runs']} fresh processes (interpreter "
        f"start to the window's first paint event); stalls: lateness of a 10 ms timer over "
        f"one indexing run of {int(result['indexed'])} 1600x1200 JPEGs through the window "
        f"({int(result['stall_samples'])} ticks); recalibrate: median of "
        f"{int(result['recalibrate_repeats'])} slider moves over 1,000 results x 10 variants "
        "(the handler; recalibrate_painted_ms adds repainting the whole window)",
    )
    return result


def quality_section(ctx: Context) -> dict[str, Any]:
    """SIMULATED library (issue 11): quality of ensemble vs max, exact vs hnswlib paths."""
    import quality

    return quality.measure(ctx.quick, lambda text: ctx.note("quality", text), fixtures.cache_dir())


SECTIONS: list[tuple[str, Section]] = [
    ("limits", limits_section),
    ("decode", decode_section),
    ("indexing", indexing_section),
    ("query", query_section),
    ("index", index_section),
    ("gui", gui_section),
    ("quality", quality_section),
]


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (~5 minutes)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument("--only", nargs="+", metavar="SECTION", help=f"run some of: {_names()}")
    args = parser.parse_args(argv)
    chosen = [(n, s) for n, s in SECTIONS if not args.only or n in args.only]
    if args.only and len(chosen) != len(args.only):
        parser.error(f"unknown section in {args.only}; known: {_names()}")

    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = timing.load_average()
    busy_before = timing.cpu_busy_fraction()
    print(f"load average before: {load_before}, CPUs busy: {busy_before}", flush=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gallery-bench-") as scratch:
        ctx = Context(quick=args.quick, scratch=Path(scratch))
        for name, section in chosen:
            print(f"== {name}", flush=True)
            begin = time.perf_counter()
            results[name] = section(ctx)
            for key, value in results[name].items():
                if isinstance(value, list) and value and isinstance(value[0], dict):
                    print(f"  {name}.{key}:", flush=True)
                    for row in value:
                        print("    " + ", ".join(f"{k} {_fmt(v)}" for k, v in row.items()))
                    continue
                print(f"  {name}.{key} = {_fmt(value)}", flush=True)
            print(f"  ({time.perf_counter() - begin:.0f} s)", flush=True)
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": timing.machine(),
        "load_average_before": load_before,
        "load_average_after": timing.load_average(),
        "cpu_busy_before": busy_before,
        "cpu_busy_after": timing.cpu_busy_fraction(),
        "seconds": round((datetime.datetime.now(datetime.timezone.utc) - started).seconds),
        "notes": ctx.notes,
    }
    if args.json:
        args.json.write_text(json.dumps({**results, "meta": meta}, indent=2), encoding="utf-8")
    if not args.quick and not args.only:
        import results_md

        path = HERE / "RESULTS.md"
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        text = results_md.keep_section(
            old, results_md.render(results, meta), results_md.PG_SCALE_HEADING
        )
        path.write_text(text, encoding="utf-8")
        print(f"wrote {HERE / 'RESULTS.md'}")
    elif not args.quick and args.only == ["quality"]:
        import results_md

        path = HERE / "RESULTS.md"
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        path.write_text(results_md.splice_quality(text, results["quality"], meta), "utf-8")
        print(f"updated the quality parts of {path}")
    return 0


def _names() -> str:
    return ", ".join(name for name, _ in SECTIONS)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
