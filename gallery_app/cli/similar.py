"""`gallery-app search --image PATH` (find similar) and `--not TEXT` (parts that must not be
there): the search command's options for image queries and queries of parts."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gallery_app.cli import search_filters
from gallery_app.cli.common import (
    argv_text,
    open_encoder_and_library,
    printable,
)


def add_arguments(search: argparse.ArgumentParser) -> None:
    search.add_argument(
        "--image",
        metavar="PATH",
        help="photos like this image file (in the library or not; instead of QUERY), scored "
        "on the image-to-image scale sigmoid(15 x (cos - 0.70)), not the text presets; a "
        "library photo given here is left out of its own results",
    )
    search.add_argument(
        "--not",
        dest="exclude",
        action="append",
        default=[],
        metavar="TEXT",
        help="a part the photos must not show, repeatable: each photo's score is multiplied "
        'by 1 - P(TEXT) (the same as "-TEXT" or "without TEXT" in QUERY)',
    )
    search.set_defaults(usage=search.error)


def check_usage(args: argparse.Namespace) -> None:
    """QUERY or --image, not both; --not goes with words (exits 2 through argparse)."""
    if args.image is None and args.query is None:
        args.usage("give a QUERY, or --image PATH to find photos like an image")
    if args.image is not None and args.query is not None:
        args.usage("give a QUERY or --image PATH, not both")
    if args.image is not None and args.exclude:
        args.usage("--not goes with a QUERY: an image query has no text parts")


def exclusions(args: argparse.Namespace) -> list[str]:
    return [argv_text(text) for text in args.exclude]


def query_parts_json(hits: Any, variant_json: Any) -> dict[str, Any]:
    """For a query of parts, `"parts"`: each part's text, kind ("and" / "not") and the
    variants its own search averaged; nothing for one query (its JSON is as it was)."""
    if not getattr(hits, "parts", None):
        return {}
    return {
        "parts": [
            {
                "text": part.text,
                "kind": part.kind,
                "variants": [variant_json(v) for v in part_hits.listed],
            }
            for part, part_hits in zip(hits.parts, hits.part_hits, strict=True)
        ]
    }


def result_parts_json(result: Any) -> dict[str, Any]:
    """A result of a query of parts: `"parts"`, each part's text, kind, raw cosine and score
    P, whose product (P, or 1 - P for "not") is the result's score."""
    if not result.parts:
        return {}
    return {
        "parts": [
            {
                "text": part.text,
                "kind": part.kind,
                "raw": part.raw,
                # The part's hybrid score (core/metadata.py): visual + (1 - visual) x boost.
                "score": part.score,
                "visual": part.score if part.visual is None else part.visual,
                "boost": part.boost,
                "boost_reason": part.boost_reason,
            }
            for part in result.parts
        ]
    }


def run_image_search(args: argparse.Namespace, top_k: int) -> int:
    """`search --image PATH`: every photo by its cosine with the file's image vector."""
    from gallery_app.core.calibrate import image_calibration
    from gallery_app.core.filters import library_dates
    from gallery_app.core.search import Searcher
    from gallery_app.core.similar import file_query

    path = argv_text(args.image)
    where = search_filters.photo_filter(args)  # a bad date fails before the model loads
    dated = args.sort == "date"
    encoder, library = open_encoder_and_library(args, writer=False)
    with library:
        query = file_query(encoder, library, path)
        hits = Searcher(library, encoder).search_image(
            query, top_k=None if args.min_score is not None or dated else top_k, where=where
        )
        calibration = image_calibration()  # what rank uses for an image query, whatever given
        results = hits.rank(calibration, top_k=None if dated else top_k, min_score=args.min_score)
        if dated:
            results = search_filters.in_date_order(args, results, library_dates(library.catalog))
        empty_library = library.catalog.count() == 0
    if args.json:
        print(
            json.dumps(
                {
                    "image": query.path,
                    "in_library": bool(query.image_ids),  # then left out of the results
                    "scale": "image",
                    "preset": calibration.preset,
                    "temperature": calibration.temperature,
                    "centre": calibration.centre,
                    "min_score": args.min_score,
                    "top_k": top_k,
                    "results": [{"path": r.path, "score": r.score, "raw": r.raw} for r in results],
                },
                indent=2,
            )
        )
        return 0
    note = " (in the library: left out)" if query.image_ids else ""
    print(
        printable(
            f"photos {query.label}{note}: image-to-image scale "
            f"sigmoid({calibration.temperature:g} x (cos - {calibration.centre:g})), "
            "not the text preset"
        )
    )
    if empty_library:
        print("The library is empty: run `gallery-app index FOLDER` first.", file=sys.stderr)
        return 0
    print(f"{'#':>3}  {'score':>6}  {'cosine':>7}  path")
    for rank, r in enumerate(results, 1):
        print(printable(f"{rank:>3}  {r.score:6.4f}  {r.raw:7.4f}  {r.path}"))
    if args.min_score is not None:
        print(f"{len(results)} photo(s) score at least {args.min_score:g}", file=sys.stderr)
    return 0


def parts_line(hits: Any) -> str | None:
    """For the table: how a query of parts combines, or None for one query."""
    parts = getattr(hits, "parts", None)
    if not parts:
        return None
    factors = " x ".join(
        f"(1 - P({part.text}))" if part.kind == "not" else f"P({part.text})" for part in parts
    )
    return f"score = {factors}"
