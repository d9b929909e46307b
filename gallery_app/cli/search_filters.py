"""`gallery-app search` filters and order: --after, --before, --taken, --folder, --sort.

Options of the search command (cli/search.py registers them); core.filters says what
they mean."""

from __future__ import annotations

import argparse
from typing import Any

DATE_HELP = "a year (2023), a month (2023-07) or a day (2023-07-14)"


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The date, folder and order options of a search (core.filters says what they mean)."""
    group = parser.add_argument_group(
        "dates, folders, order",
        "Date taken is the EXIF DateTimeOriginal, else the file's modification time (local "
        "time). Filters are exact: --top-k K gives the K best photos inside them.",
    )
    group.add_argument(
        "--after", metavar="DATE", help=f"taken on or after the start of DATE: {DATE_HELP}"
    )
    group.add_argument(
        "--before",
        metavar="DATE",
        help="taken before the start of DATE (DATE itself excluded: --before 2024 ends on "
        "2023-12-31)",
    )
    group.add_argument(
        "--taken", metavar="DATE", help="taken within DATE: a whole year, month or day"
    )
    group.add_argument(
        "--folder", metavar="PATH", help="only photos under PATH (and the folders inside it)"
    )
    group.add_argument(
        "--sort",
        choices=("score", "date"),
        default="score",
        help="score (default), or date: only the matches (score at least --min-score, else "
        "0.2, the 'possible' band) newest first, every one unless --top-k",
    )
    group.add_argument(
        "--oldest-first", action="store_true", help="with --sort date: the oldest first"
    )


def photo_filter(args: argparse.Namespace) -> Any:
    """The PhotoFilter the options ask for (a bad date fails before the model loads)."""
    from gallery_app.core.filters import PhotoFilter

    return PhotoFilter.from_text(
        after=args.after, before=args.before, taken=args.taken, folder=args.folder
    )


def filter_json(args: argparse.Namespace, where: Any) -> dict[str, Any]:
    return {
        "after": where.after.isoformat() if where.after else None,
        "before": where.before.isoformat() if where.before else None,
        "folder": where.folder,
        "sort": args.sort,
        "newest_first": not args.oldest_first,
    }


def in_date_order(args: argparse.Namespace, results: list[Any], dates: Any) -> list[Any]:
    """--sort date: the matches (score >= --min-score, else the 'possible' band), by date;
    every one unless --top-k."""
    from gallery_app.core.filters import sort_by_date

    ordered = sort_by_date(results, dates, args.min_score, newest_first=not args.oldest_first)
    return ordered[: args.top_k] if args.top_k is not None else ordered


def taken_json(dates: Any, image_id: int) -> dict[str, Any]:
    moment, source = dates.taken_one(image_id)
    return {"taken": moment.isoformat() if moment else None, "taken_source": source or None}


def taken_column(dates: Any, results: list[Any]) -> list[str]:
    """The table's date column: its heading, then one cell per result (date and source)."""
    cells = ["taken".ljust(25)]
    for result in results:
        moment, source = dates.taken_one(result.image_id)
        text = f"{moment:%Y-%m-%d %H:%M} ({source})" if moment else "?"
        cells.append(text.ljust(25))
    return cells
