"""Render a full benchmark run as RESULTS.md: the table against the targets, machine, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (key, target as text, passes(value) or None when the figure has no target, unit)
TARGETS: list[tuple[str, str, Any, str]] = [
    ("indexing.efficiency", ">= 0.95", lambda v: v >= 0.95, ""),
    ("indexing.phone_efficiency", ">= 0.95", lambda v: v >= 0.95, ""),
    ("indexing.int8_speedup", ">= 1.5", lambda v: v >= 1.5, "x"),
    ("indexing.int8_min_cos", ">= 0.99", lambda v: v >= 0.99, ""),
    ("query.expansion_ratio", "<= 1.10", lambda v: v <= 1.10, ""),
    ("query.cold_ratio", "<= 1.2", lambda v: v <= 1.2, ""),
    ("index.query_ms_p50", "<= 2 ms", lambda v: v <= 2.0, "ms"),
    ("index.recall_at_10", ">= 0.98", lambda v: v >= 0.98, ""),
    ("index.load_s", "<= 1 s", lambda v: v <= 1.0, "s"),
    ("gui.first_paint_s", "<= 1.0 s", lambda v: v <= 1.0, "s"),
    ("gui.stall_p99_ms", "<= 50 ms", lambda v: v <= 50, "ms"),
    ("gui.recalibrate_ms", "<= 16 ms", lambda v: v <= 16, "ms"),
    # Issue 11, on the SIMULATED library: an expanded (ensemble) query on the exact path at
    # 100k photos, and recall@10 of text queries on the hnswlib path at the app's ef.
    ("quality.exact_f32_ensemble_ms_100k", "<= 40 ms", lambda v: v <= 40, "ms"),
    ("quality.hnsw_recall_at_10", ">= 0.99", lambda v: v >= 0.99, ""),
]


def _get(results: dict[str, Any], dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    return results.get(section, {}).get(key)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(results: dict[str, Any], meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/run.py` (full run). Medians; ratios are medians of",
        "per-repetition ratios of variants run back to back in the same process, so that a",
        "machine shared with other work changes both sides alike. Repetition counts are in the",
        "notes under the table.",
        "",
        f"- date: {meta['date']} ({meta['seconds']} s)",
        f"- machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, torch "
        f"{machine['torch']} with {machine['torch_threads']} threads, Python {machine['python']}",
        f"- load average before / after: {_load(meta['load_average_before'])} / "
        f"{_load(meta['load_average_after'])}; share of CPU busy in the 2 s before / after "
        f"(the run itself excluded): {_share(meta.get('cpu_busy_before'))} / "
        f"{_share(meta.get('cpu_busy_after'))}",
        "",
        "## Against the targets",
        "",
        "| metric | value | target | met |",
        "|---|---|---|---|",
    ]
    for key, target, passes, unit in TARGETS:
        value = _get(results, key)
        if value is None:
            lines.append(f"| {key} | not measured here | {target} | |")
            continue
        met = "yes" if passes(value) else "**no**"
        lines.append(f"| {key} | {_fmt(value)} {unit} | {target} | {met} |")
    limits = results.get("limits")
    if limits:
        lines += [
            "",
            "## The physical limit",
            "",
            f"A SigLIP-base image costs {limits['vision_gflop_per_img']:.1f} GFLOP (counted by "
            f"torch's FlopCounterMode), a text prompt {limits['text_gflop_per_prompt']:.1f}. "
            f"The best fp32 GEMM this CPU ran was {limits['gemm_peak_gflops']:.0f} GFLOP/s, so "
            f"fp32 cannot beat {limits['fp32_img_s_ceiling']:.2f} img/s here.",
        ]
        model_only = _get(results, "indexing.model_only_img_s")
        if model_only:
            lines.append(
                f"The model alone ran at {model_only:.2f} img/s, "
                f"{model_only / limits['fp32_img_s_ceiling']:.0%} of that wall."
            )
        threads = meta["machine"].get("torch_threads") or 1
        for kind, key in (("12 MP", "decode.decode_ms"), ("phone", "decode.phone_decode_ms")):
            decode_ms = _get(results, key)
            if model_only and decode_ms:
                # The model keeps every core busy, so decode CPU time adds to it: the ceiling
                # of pipeline / model-alone is model CPU / (model CPU + decode CPU).
                model_cpu = threads / model_only
                ceiling = model_cpu / (model_cpu + decode_ms / 1000)
                lines.append(
                    f"With the model using all {threads} cores, a {kind} file's "
                    f"{decode_ms:.0f} ms of decode CPU cannot hide: the pipeline's efficiency "
                    f"cannot exceed {ceiling:.3f} for {kind} photos."
                )
    quality = results.get("quality")
    if quality:
        lines += ["", *quality_summary(quality)]
    history = Path(__file__).with_name("before_after.md")
    if history.exists():
        lines += ["", history.read_text(encoding="utf-8").rstrip()]
    lines += ["", "## All figures", ""]
    for section, figures in results.items():
        lines += section_figures(section, figures, meta["notes"].get(section, []))
    return "\n".join(lines)


def section_figures(section: str, figures: dict[str, Any], notes: list[str]) -> list[str]:
    """One section's figures as a key/value table, its lists of rows as tables, its notes."""
    lines = [f"### {section}", "", "| key | value |", "|---|---|"]
    for key, value in figures.items():
        if isinstance(value, list):
            continue
        lines.append(f"| {section}.{key} | {_fmt(value)} |")
    for key, value in figures.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            columns = list(value[0])
            lines += ["", f"{section}.{key}:", ""]
            lines.append("| " + " | ".join(columns) + " |")
            lines.append("|" + "---|" * len(columns))
            for row in value:
                lines.append("| " + " | ".join(_fmt(row[c]) for c in columns) + " |")
    for note in notes:
        lines += ["", f"- {note}"]
    lines.append("")
    return lines


def _load(values: Any) -> str:
    return "n/a" if not values else ", ".join(f"{v:.2f}" for v in values)


def _share(value: Any) -> str:
    return "n/a" if value is None else f"{value:.0%}"


SIMULATION_CAVEAT = (
    "**This is a simulation.** No photo and no model weights are involved: "
    "`benchmarks/simulated_library.py` draws SigLIP-like vectors from a generative model "
    "(concepts in families, photos as noisy mixtures of 1-3 concepts plus clutter, a "
    "text-image modality gap, exact copies and near-duplicates, synonyms as noisy copies of a "
    "concept's text direction) tuned so that cosines of true matches fall ~0.08-0.20 and of "
    "unrelated pairs ~-0.13-0.03, scored with SigLIP-base's own T ~117 and c ~0.11. It shows "
    "the direction of effects (ensemble vs max, exact scan vs hnswlib), not SigLIP's real "
    "numbers: `gallery-app eval` on a labelled folder with real weights is the real measure."
)


def quality_summary(quality: dict[str, Any]) -> list[str]:
    """The quality section: the caveat first, then modes, both paths' recall and latency."""
    lines = [
        "## Quality and retrieval on a simulated library (issue 11)",
        "",
        SIMULATION_CAVEAT,
        "",
        f"{quality['n']} photos ({quality['distinct_vectors']} distinct vectors: "
        f"{quality['exact_copies']} exact copies, {quality['near_duplicates']} "
        f"near-duplicates), {quality['concepts']} concept queries; measured cosines of true "
        f"matches {quality['match_cos_p5']:.3f}..{quality['match_cos_p95']:.3f} and of "
        f"unrelated pairs {quality['unrelated_cos_p5']:.3f}..{quality['unrelated_cos_p95']:.3f}"
        " (5th..95th percentile).",
        "",
        *_quality_targets(quality),
        "| mode | mAP | precision at score >= 0.5 | photos >= 0.5 a query | ECE all pairs | "
        "ECE first 100 | hit@10 | recall@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in quality.get("modes", []):
        lines.append(
            f"| {row['mode']} | {row['mean_average_precision']:.4f} | "
            f"{row['precision_at_min_score']:.3f} | {row['count_at_min_score']:.1f} | "
            f"{row['expected_calibration_error']:.4f} | {row['ece_top_100']:.4f} | "
            f"{row['hit_at_10']:.3f} | {row['recall_at_10']:.4f} |"
        )
    relevant = quality.get("modes", [{}])[0].get("relevant_per_query")
    if relevant is not None:
        lines += [
            "",
            f"A query has {relevant:.0f} relevant photos on average and at most 10 fit in the "
            "first 10, so true recall@10 stays small; hit@10 is the share of queries with a "
            "relevant photo in the first 10 (`eval`'s hit@k).",
        ]
    chosen = quality.get("hnsw_ef_for_recall_0_99")
    lines += [
        "",
        "Retrieval, text-cone queries, recall@10 against an exact float32 scan: exact scan "
        f"float32 {quality['exact_f32_recall_at_10']:.4f}, float16 storage "
        f"{quality['exact_f16_recall_at_10']:.4f}; the app's VectorIndex (identical vectors one "
        f"node, {quality.get('hnsw_nodes', '?')} nodes), candidates re-ranked "
        f"exactly, at the app's ef {quality['hnsw_app_ef']}: {quality['hnsw_recall_at_10']:.4f}. "
        + (
            f"The smallest ef of the sweep reaching recall@10 >= 0.99 is **{chosen}**."
            if chosen
            else "No ef of the sweep reached recall@10 >= 0.99."
        ),
    ]
    per_photo = {k: v for k, v in quality.items() if k.startswith("hnsw_per_photo_recall")}
    if per_photo:
        lines.append(
            "Plain hnswlib with one graph node a photo (copies as separate nodes, as the "
            "index was built before issue 11): "
            + ", ".join(f"ef {k.rsplit('ef', 1)[1]}: {v:.4f}" for k, v in per_photo.items())
            + "."
        )
    lines.append("")
    for suffix, what in (("", "wall-clock p50s"), ("_cpu", "CPU-time p50s")):
        cross = quality.get(f"exact_ensemble_crossover_n{suffix}")
        cross_max = quality.get(f"exact_max_crossover_n{suffix}")
        ensemble = f"~{cross:,.0f} photos" if cross else "no size measured"
        rest = (
            f", for a max query (every variant scanned) at ~{cross_max:,.0f}" if cross_max else ""
        )
        lines.append(
            f"Crossover from the exact float32 path's {what}: a line through them reaches "
            f"40 ms for an expanded (ensemble, one vector) query at {ensemble}{rest}."
        )
    lines.append(
        "The latency table is under All figures (quality.latency); on a shared machine the "
        "wall-clock figures include waiting for a core, the CPU-time ones do not."
    )
    return lines


# Written by benchmarks/pg_scale.py --write-results; a full run.py keeps it (keep_section).
PG_SCALE_HEADING = (
    "## Shared library at scale: PostgreSQL + pgvector vs SQLite + hnswlib (issue 15)"
)
QUALITY_HEADING = "## Quality and retrieval on a simulated library (issue 11)"


def splice_quality(existing: str, quality: dict[str, Any], meta: dict[str, Any]) -> str:
    """RESULTS.md with its quality parts replaced by this run's (the rest left as it was): a
    full run takes long, and the quality section measures other things than the rest."""
    machine = meta["machine"]
    summary = quality_summary(quality)
    summary.insert(
        2,
        f"From `python benchmarks/run.py --only quality` on {meta['date']} ({meta['seconds']} "
        f"s), {machine['cpu']}, {machine['logical_cpus']} logical CPUs; load average before / "
        f"after {_load(meta['load_average_before'])} / {_load(meta['load_average_after'])}, "
        f"CPU busy before {_share(meta.get('cpu_busy_before'))}.\n",
    )
    figures = section_figures("quality", quality, meta["notes"].get("quality", []))
    text = _replace_block(existing, QUALITY_HEADING, "\n## ", "\n".join(summary) + "\n")
    before = "## Before / after" if "## Before / after" in text else "## All figures"
    if QUALITY_HEADING not in text:
        text = text.replace(before, "\n".join(summary) + "\n\n" + before, 1)
    text = _replace_block(text, "### quality", "\n### ", "\n".join(figures))
    if "### quality" not in text:
        text = text.rstrip("\n") + "\n\n" + "\n".join(figures)
    return text.rstrip("\n") + "\n"


def _replace_block(text: str, heading: str, next_heading: str, block: str) -> str:
    start = text.find(heading)
    if start < 0:
        return text
    end = text.find(next_heading, start + len(heading))
    return text[:start] + block + ("" if end < 0 else text[end:])


def _quality_targets(quality: dict[str, Any]) -> list[str]:
    """The issue-11 rows of TARGETS, for a run that does not render the whole table."""
    lines = []
    for key, target, passes, unit in TARGETS:
        section, _, name = key.partition(".")
        if section != "quality":
            continue
        value = quality.get(name)
        if value is None:
            lines.append(f"- target {key} {target}: not measured in this run")
        else:
            met = "met" if passes(value) else "**missed**"
            lines.append(f"- target {key} {target}: {_fmt(value)} {unit} ({met})")
    return [*lines, ""] if lines else []


def keep_section(old: str, new: str, heading: str) -> str:
    """`new` with the section under `heading` carried over from `old` (written by another
    script, e.g. pg_scale.py), placed before "## All figures"."""
    start = old.find(heading)
    if start < 0 or heading in new:
        return new
    end = old.find("\n## ", start + len(heading))
    block = old[start:] if end < 0 else old[start : end + 1]
    anchor = "## All figures"
    if anchor in new:
        return new.replace(anchor, block.rstrip("\n") + "\n\n" + anchor, 1)
    return new.rstrip("\n") + "\n\n" + block
