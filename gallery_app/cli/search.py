"""`gallery-app search`: the best photos for a query, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gallery_app.cli import search_filters, similar
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
        description="Every photo is scored exactly: --top-k K gives the K best photos, "
        "--min-score S every photo scoring at least S (with both, the K best of those). "
        "Beyond 200,000 photos --top-k alone re-scores the index's candidates (recall@10 "
        "0.98-0.99 measured); --min-score always scans every photo.",
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
    search_filters.add_filter_arguments(search)
    search.set_defaults(handler=run_search)


def run_search(args: argparse.Namespace) -> int:
    from gallery_app.core.calibrate import preset_calibration
    from gallery_app.core.filters import library_dates
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
    where = search_filters.photo_filter(args)  # a bad date fails before the model loads
    dated = args.sort == "date"
    expander = load_expander()  # before the library opens
    encoder, library = open_encoder_and_library(args, writer=False)
    calibration = preset_calibration(args.preset, encoder.logit_scale, encoder.logit_bias, custom)
    calibration = calibration.with_overrides(args.temperature, args.centre)
    with library:
        searcher = Searcher(library, encoder, expander)
        hits = searcher.search_query(  # "beach -people": parts, each scored, combined
            query,
            top_k=None if args.min_score is not None or dated else top_k,
            expand=not args.no_expand,
            aggregate=args.aggregate,
            broader=args.broader,
            exclude=similar.exclusions(args),
            where=where,
        )
        results = hits.rank(calibration, top_k=None if dated else top_k, min_score=args.min_score)
        dates = library_dates(library.catalog)
        if dated:
            results = search_filters.in_date_order(args, results, dates)
        empty_library = library.catalog.count() == 0
    in_variants = hits.members if hits.aggregate == "ensemble" else hits.listed
    if hits.language_hint:  # an English-only model got another language: one line, on stderr
        print(printable(f"hint: {hits.language_hint}"), file=sys.stderr)
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
                    "top_k": args.top_k if dated else top_k,
                    **similar.query_parts_json(hits, _variant_json),
                    "filter": search_filters.filter_json(args, where),
                    # Only for a query in another language (SearchHits.language_note).
                    **(
                        {"language_note": hits.language_note, "language_hint": hits.language_hint}
                        if hits.language_note
                        else {}
                    ),
                    "variants": [_variant_json(v) for v in in_variants],
                    "broader": [_variant_json(v) for v in hits.broader]
                    if hits.aggregate == "ensemble"
                    else [],
                    "results": [
                        {
                            "path": r.path,
                            # The hybrid score (core/metadata.py): visual + (1 - visual) x boost.
                            "score": r.score,
                            "visual": r.score if r.visual is None else r.visual,
                            "boost": r.boost,
                            "boost_reason": r.boost_reason,
                            "raw": r.raw,
                            "variant": r.variant,
                            "prompt": r.prompt,
                            "weight": r.weight,
                            **similar.result_parts_json(r),
                            **search_filters.taken_json(dates, r.image_id),
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
    taken = search_filters.taken_column(dates, results) if dated or where.active else None
    print(
        f"{'#':>3}  {'score':>6}  {'raw':>7}  {'variant':<{width}}  {taken[0] if taken else ''}path"
    )
    for rank, r in enumerate(results, 1):
        when = taken[rank] if taken else ""
        boosted = f"  (visual {r.visual:.4f}, boost {r.boost:.2f}: {r.boost_reason})"
        why = boosted if r.visual is not None and r.boost > 0 else ""
        print(
            printable(
                f"{rank:>3}  {r.score:6.4f}  {r.raw:7.4f}  {r.variant:<{width}}  {when}{r.path}"
                f"{why}"
            )
        )
    if where.active:
        print(printable(f"only photos {where.describe()}"), file=sys.stderr)
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
