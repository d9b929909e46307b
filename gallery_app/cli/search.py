"""`gallery-app search`: the best photos for a query, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gallery_app.cli import similar
from gallery_app.cli.common import (
    add_centre_argument,
    argv_text,
    load_expander,
    open_encoder_and_library,
    positive_float,
    positive_int,
    printable,
    unit_score,
)


def register(commands: Any) -> None:
    search = commands.add_parser(
        "search",
        help="search the indexed photos",
        description="Exact over the whole library: --top-k K gives the K best photos, "
        "--min-score S every photo scoring at least S (with both, the K best of those).",
    )
    search.add_argument("query", metavar="QUERY", nargs="?")
    search.add_argument(
        "--top-k",
        type=positive_int,
        default=None,
        metavar="K",
        # 20 is search.DEFAULT_TOP_K (not imported here: --help stays quick; a test checks)
        help="the K best photos (default 20; no limit with --min-score)",
    )
    search.add_argument(
        "--min-score",
        type=unit_score,
        default=None,
        metavar="S",
        help="every photo whose score is at least S (0..1), however many",
    )
    search.add_argument("--no-expand", action="store_true", help="search the query as typed")
    search.add_argument(
        "--aggregate",
        choices=("ensemble", "max"),
        default="ensemble",
        help="ensemble (default): the query and its synonyms become one text vector, and the "
        "score is the model's own sigmoid for it; max: the best weight x score over the "
        "variants, an OR that can only raise scores (more photos above any cut)",
    )
    search.add_argument(
        "--broader",
        action="store_true",
        help="also match broader terms (pet for dog), each with its weight: a photo scores "
        "the best of the query's score and weight x a broader term's score. Never part of "
        "the ensemble vector",
    )
    search.add_argument(
        "--preset",
        choices=("model", "seed", "custom"),
        default="model",
        help="custom: the T and c saved by `gallery-app tune` (apply)",
    )
    search.add_argument(
        "--temperature", type=positive_float, metavar="T", help="override the preset's T"
    )
    add_centre_argument(search, "override the preset's c: the raw cosine that scores 0.5")
    search.add_argument("--json", action="store_true", help="print JSON")
    similar.add_arguments(search)  # --image, --not

    search.set_defaults(handler=run_search)


def run_search(args: argparse.Namespace) -> int:
    from gallery_app.core.calibrate import preset_calibration
    from gallery_app.core.search import DEFAULT_TOP_K, Searcher

    # --min-score alone is uncapped: every photo at or above it. Neither: the default top-k.
    top_k = args.top_k if args.top_k is not None or args.min_score is not None else DEFAULT_TOP_K
    similar.check_usage(args)
    if args.image is not None:
        return similar.run_image_search(args, top_k)
    custom = None
    if args.preset == "custom":  # read before the model loads: a missing preset fails fast
        from gallery_app.core.settings_store import load_settings

        custom = load_settings().custom
        preset_calibration("custom", custom=custom)
    query = argv_text(args.query)
    expander = load_expander()  # before the library opens
    encoder, library = open_encoder_and_library(args, writer=False)
    calibration = preset_calibration(args.preset, encoder.logit_scale, encoder.logit_bias, custom)
    calibration = calibration.with_overrides(args.temperature, args.centre)
    with library:
        searcher = Searcher(library, encoder, expander)
        hits = searcher.search_query(  # "beach -people": parts, each scored, combined
            query,
            top_k=None if args.min_score is not None else top_k,
            expand=not args.no_expand,
            aggregate=args.aggregate,
            broader=args.broader,
            exclude=similar.exclusions(args),
        )
        results = hits.rank(calibration, top_k=top_k, min_score=args.min_score)
        empty_library = library.catalog.count() == 0
    in_variants = hits.members if hits.aggregate == "ensemble" else hits.listed
    if args.json:
        print(
            json.dumps(
                {
                    "query": query,
                    "aggregate": hits.aggregate,
                    "preset": calibration.preset,
                    "temperature": calibration.temperature,
                    "centre": calibration.centre,
                    "min_score": args.min_score,
                    "top_k": top_k,
                    **similar.query_parts_json(hits, _variant_json),
                    "variants": [_variant_json(v) for v in in_variants],
                    "broader": [_variant_json(v) for v in hits.broader]
                    if hits.aggregate == "ensemble"
                    else [],
                    "results": [
                        {
                            "path": r.path,
                            "score": r.score,
                            "raw": r.raw,
                            "variant": r.variant,
                            "prompt": r.prompt,
                            "weight": r.weight,
                            **similar.result_parts_json(r),
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
        return 0
    how = "ensemble of" if hits.aggregate == "ensemble" else "max over"
    listed = ", ".join(f"{v.text} ({v.weight:g})" for v in in_variants)
    extra = (
        "; broader: " + ", ".join(f"{v.text} ({v.weight:g})" for v in hits.broader)
        if hits.aggregate == "ensemble" and hits.broader
        else ""
    )
    print(
        printable(
            f"{query!r}: preset {calibration.preset} (T={calibration.temperature:.2f}, "
            f"c={calibration.centre:.4f}), {how} {len(in_variants)} variant(s): {listed}{extra}"
        )
    )
    combined = similar.parts_line(hits)
    if combined is not None:
        print(printable(combined))
    if empty_library:
        print("The library is empty: run `gallery-app index FOLDER` first.", file=sys.stderr)
        return 0
    width = max([len(r.variant) for r in results] + [7])
    print(f"{'#':>3}  {'score':>6}  {'raw':>7}  {'variant':<{width}}  path")
    for rank, r in enumerate(results, 1):
        print(printable(f"{rank:>3}  {r.score:6.4f}  {r.raw:7.4f}  {r.variant:<{width}}  {r.path}"))
    if args.min_score is not None:
        print(f"{len(results)} photo(s) score at least {args.min_score:g}", file=sys.stderr)
    return 0


def _variant_json(variant: Any) -> dict[str, Any]:
    return {
        "text": variant.text,
        "prompt": variant.prompt,
        "weight": variant.weight,
        "kind": variant.kind,
    }
