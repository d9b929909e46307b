"""`gallery-app eval`: search quality on a labelled folder DIR/<label>/*.jpg."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from gallery_app.cli.common import (
    add_calibration_arguments,
    current_calibration,
    describe_calibration,
    load_expander,
    open_encoder,
    printable,
)


def register(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="search quality on a labelled folder DIR/<label>/*.jpg",
        description="Each label folder's name (underscores as spaces) is a query, and its "
        "photos are the relevant ones; photos directly in DIR are distractors.",
    )
    evaluate.add_argument("dir", metavar="DIR")
    add_calibration_arguments(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from gallery_app.core.evaluate import evaluate, read_labelled_folder
    from gallery_app.core.probes import encode_files

    labelled = read_labelled_folder(args.dir)  # before the model loads: a bad DIR fails fast
    expander = load_expander()
    # eval encodes DIR itself, so it opens no library.
    encoder = open_encoder(args)
    calibration = current_calibration(args, encoder)
    images = encode_files(encoder, labelled.paths)
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
        f"distractors: {data['distractors']}; {describe_calibration(report.calibration)}",
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
