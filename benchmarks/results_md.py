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
    history = Path(__file__).with_name("before_after.md")
    if history.exists():
        lines += ["", history.read_text(encoding="utf-8").rstrip()]
    lines += ["", "## All figures", ""]
    for section, figures in results.items():
        lines += [f"### {section}", "", "| key | value |", "|---|---|"]
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
        for note in meta["notes"].get(section, []):
            lines += ["", f"- {note}"]
        lines.append("")
    return "\n".join(lines)


def _load(values: Any) -> str:
    return "n/a" if not values else ", ".join(f"{v:.2f}" for v in values)


def _share(value: Any) -> str:
    return "n/a" if value is None else f"{value:.0%}"
