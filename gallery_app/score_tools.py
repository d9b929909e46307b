"""`gallery-app debug-scores`, `tune` and `eval`: their arguments, handlers and text output."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from gallery_app.cli import (
    _open,
    _positive_float,
    _positive_int,
    add_centre_argument,
    argv_text,
    printable,
)
from gallery_app.core.calibrate import Calibration
from gallery_app.core.probes import DEFAULT_PROBE_QUERIES, DEFAULT_SAMPLE_SIZE


def add_score_tool_commands(commands: Any) -> None:
    """Register the three subcommands on the `gallery-app` subparsers."""
    debug = commands.add_parser(
        "debug-scores",
        help="raw cosines and scores of probe queries over some photos, with a diagnosis",
        description="Score probe queries against photos (the given files, else a sample of "
        "the library) and say in plain words what the numbers suggest.",
    )
    debug.add_argument("images", nargs="*", metavar="IMAGE", help="image files to score")
    debug.add_argument(
        "--query",
        action="append",
        metavar="Q",
        help=f"a probe query (repeatable; default: {', '.join(DEFAULT_PROBE_QUERIES)})",
    )
    debug.add_argument(
        "--sample",
        type=_positive_int,
        default=DEFAULT_SAMPLE_SIZE,
        metavar="N",
        help=f"library photos to score when no IMAGE is given (default {DEFAULT_SAMPLE_SIZE})",
    )
    _add_calibration_arguments(debug)
    debug.add_argument("--json", action="store_true", help="print JSON")
    debug.set_defaults(run=run_debug_scores)

    tune = commands.add_parser(
        "tune",
        help="tune the score's temperature and centre interactively (reads stdin)",
        description="Reads commands from stdin (type `help`); works when piped.",
    )
    tune.add_argument("image", nargs="?", metavar="IMAGE", help="photo that `test` scores")
    tune.set_defaults(run=run_tune)

    evaluate = commands.add_parser(
        "eval",
        help="search quality on a labelled folder DIR/<label>/*.jpg",
        description="Each label folder's name (underscores as spaces) is a query, and its "
        "photos are the relevant ones; photos directly in DIR are distractors.",
    )
    evaluate.add_argument("dir", metavar="DIR")
    _add_calibration_arguments(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=run_eval)


def _add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=("model", "seed", "custom"),
        help="calibration preset (default: the one saved in your settings, else model)",
    )
    parser.add_argument("--temperature", type=_positive_float, metavar="T", help="override T")
    add_centre_argument(parser, "override c")


def _current_calibration(args: argparse.Namespace, encoder: Any) -> Calibration:
    """The app's settings, then the command line's preset and overrides on top."""
    from dataclasses import replace

    from gallery_app.core.settings_store import load_settings

    settings = load_settings()
    if args.preset is not None:
        settings = replace(settings, preset=args.preset)
    calibration = settings.calibration(encoder.logit_scale, encoder.logit_bias)
    return calibration.with_overrides(args.temperature, args.centre)


def _describe(calibration: Calibration) -> str:
    return (
        f"preset {calibration.preset} (T={calibration.temperature:.2f}, c={calibration.centre:.4f})"
    )


# --- debug-scores -------------------------------------------------------------------------


def run_debug_scores(args: argparse.Namespace) -> int:
    from gallery_app.core.score_report import build_score_report
    from gallery_app.tune import require_regular_file

    queries = tuple(argv_text(q) for q in args.query or DEFAULT_PROBE_QUERIES)
    for image in args.images:  # before the model loads: a bad IMAGE fails fast
        require_regular_file(image)
    encoder, library = _open(args, read_only=True)
    with library:
        calibration = _current_calibration(args, encoder)
        report = build_score_report(
            encoder, library, queries, calibration, args.images, sample_size=args.sample
        )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    for line in render_score_report(report):
        print(printable(line))
    return 0


def render_score_report(report: Any) -> list[str]:
    width = max(len(q) for q in [*report.queries, "query"])
    lines = [
        f"{_describe(report.calibration)}; {len(report.queries)} probe queries x "
        f"{len(report.paths)} photos",
        "raw = cosine between a photo and the prompt; score = sigmoid(T x (raw - c)).",
        "",
        f"{'query':<{width}} {'raw min':>8} {'mean':>8} {'max':>8}  {'score min':>9} "
        f"{'mean':>7} {'max':>7}  best photo",
    ]
    for row in report.by_query:
        lines.append(
            f"{row.query:<{width}} {row.raw.min:8.4f} {row.raw.mean:8.4f} {row.raw.max:8.4f}  "
            f"{row.score.min:9.4f} {row.score.mean:7.4f} {row.score.max:7.4f}  {row.best_path}"
        )
    lines += [
        "",
        f"{'raw min':>8} {'mean':>8} {'max':>8} {'std':>8}  {'best query':<{width}} photo",
    ]
    for image in report.by_image:
        lines.append(
            f"{image.raw.min:8.4f} {image.raw.mean:8.4f} {image.raw.max:8.4f} "
            f"{image.raw.std:8.4f}  {image.best_query:<{width}} {image.path}"
        )
    for path, reason in report.failures:
        lines.append(f"skipped {path}: {reason}")
    lines.append("")
    if report.diagnoses:
        lines.append("Diagnosis:")
        lines += [f"- [{d.code}] {d.message}" for d in report.diagnoses]
    else:
        lines.append("Diagnosis: nothing unusual in these scores.")
    return lines


# --- tune ---------------------------------------------------------------------------------


def run_tune(args: argparse.Namespace) -> int:
    from gallery_app.core.expansion import Expander, load_dictionary
    from gallery_app.core.library import default_config_dir
    from gallery_app.tune import Tuner, require_regular_file

    if args.image is not None:  # before the model loads: a bad IMAGE fails fast
        require_regular_file(args.image)
    # A term typed in another encoding must not stop the session: its bytes reach `test`
    # as surrogate escapes, which it replaces.
    reconfigure = getattr(sys.stdin, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")
    encoder, library = _open(args, read_only=True)
    with library:
        tuner = Tuner(
            encoder,
            library,
            out=sys.stdout,
            err=sys.stderr,
            image=args.image,
            expander=Expander(load_dictionary(default_config_dir() / "expansions.json")),
            logit_scale=encoder.logit_scale,
            logit_bias=encoder.logit_bias,
        )
        interactive = sys.stdin.isatty()
        try:
            return tuner.run(sys.stdin, prompt="tune> " if interactive else "")
        except KeyboardInterrupt:  # Ctrl-C is how many people leave a prompt: not an error
            print()
            return 130


# --- eval ---------------------------------------------------------------------------------


def run_eval(args: argparse.Namespace) -> int:
    from gallery_app.core.embeddings import DEFAULT_PROMPT_TEMPLATE, SiglipEncoder
    from gallery_app.core.evaluate import evaluate, read_labelled_folder
    from gallery_app.core.expansion import Expander, load_dictionary
    from gallery_app.core.library import default_config_dir
    from gallery_app.core.probes import encode_files

    labelled = read_labelled_folder(args.dir)  # before the model loads: a bad DIR fails fast
    # eval encodes DIR itself, so it opens no library.
    encoder = SiglipEncoder.load(
        args.model, prompt_template=argv_text(args.prompt_template or DEFAULT_PROMPT_TEMPLATE)
    )
    calibration = _current_calibration(args, encoder)
    images = encode_files(encoder, labelled.paths)
    expander = Expander(load_dictionary(default_config_dir() / "expansions.json"))
    report = evaluate(labelled, images, encoder, expander, calibration)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    for line in render_eval_report(report):
        print(printable(line))
    return 0


def render_eval_report(report: Any) -> list[str]:
    data = report.to_json()
    modes = [data[mode.mode] for mode in report.modes]
    titles = {"query_only": "query only", "ensemble": "ensemble", "max": "max"}
    lines = [
        f"{data['dir']}: {len(data['labels'])} labels, {data['images']} photos, "
        f"distractors: {data['distractors']}; {_describe(report.calibration)}",
        "hit@k: share of queries with a relevant photo among the first k results; "
        "recall@k: share of a query's relevant photos among its first k (mean over queries).",
        "query only: the query as typed; ensemble (the default): one text vector for the query "
        "and its synonyms; max: the best weight x score over the variants (search --aggregate "
        "max).",
        "",
        f"{'':<30}" + "".join(f"{titles.get(m.mode, m.mode):>14}" for m in report.modes),
    ]

    def row(name: str, pick: Any) -> None:
        lines.append(f"{name:<30}" + "".join(f"{_cell(pick(m)):>14}" for m in modes))

    for k in (1, 5, 10):
        row(f"hit@{k}", lambda m, k=k: m[f"hit_at_{k}"])
    for k in (1, 5, 10):
        row(f"recall@{k}", lambda m, k=k: m[f"recall_at_{k}"])
    row("mean average precision", lambda m: m["mean_average_precision"])
    row("mean score, relevant pairs", lambda m: m["calibration"]["mean_score_relevant"])
    row("mean score, irrelevant pairs", lambda m: m["calibration"]["mean_score_irrelevant"])
    row("expected calibration error", lambda m: m["calibration"]["expected_calibration_error"])
    row("best-F1 min_score", lambda m: _best(m)["min_score"])
    row("  F1 there", lambda m: _best(m)["f1"])
    lines += ["", "per query: average precision (rank of the first relevant photo)"]
    for per_mode in zip(*(m["per_query"] for m in modes), strict=True):
        cells = "".join(
            f"{_cell(q['average_precision']):>8} ({q['first_relevant_rank']:>4})" for q in per_mode
        )
        lines.append(f"  {per_mode[0]['query']:<28}{cells}")
    for failure in data["failed"]:
        lines.append(f"skipped {failure['path']}: {failure['reason']}")
    return lines


def _best(mode: dict[str, Any]) -> dict[str, Any]:
    best = mode["calibration"]["best_f1"]
    return best if best is not None else {"min_score": None, "f1": None}


def _cell(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"
