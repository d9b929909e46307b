"""`gallery-app debug-scores`: raw cosines and scores of probe queries, with a diagnosis."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gallery_app.cli.common import (
    add_calibration_arguments,
    argv_text,
    current_calibration,
    describe_calibration,
    open_encoder_and_library,
    positive_int,
    printable,
    require_regular_file,
)
from gallery_app.core.probes import DEFAULT_PROBE_QUERIES, DEFAULT_SAMPLE_SIZE


def register(commands: Any) -> None:
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
        type=positive_int,
        default=DEFAULT_SAMPLE_SIZE,
        metavar="N",
        help=f"library photos to score when no IMAGE is given (default {DEFAULT_SAMPLE_SIZE})",
    )
    add_calibration_arguments(debug)
    debug.add_argument("--json", action="store_true", help="print JSON")
    debug.set_defaults(handler=run_debug_scores)


def run_debug_scores(args: argparse.Namespace) -> int:
    from gallery_app.core.score_report import build_score_report

    queries = tuple(argv_text(q) for q in args.query or DEFAULT_PROBE_QUERIES)
    for image in args.images:  # before the model loads: a bad IMAGE fails fast
        require_regular_file(image)
    encoder, library = open_encoder_and_library(args, writer=False)
    with library:
        calibration = current_calibration(args, encoder)
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
        f"{describe_calibration(report.calibration)}; {len(report.queries)} probe queries x "
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
