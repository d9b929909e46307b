"""`gallery-app marks`: the relevance marks kept in a library (made in the window): list, clear.

No model is loaded: the library of --model is found by its name. Fitting the calibration to
the marks is `tune`'s `feedback --marks` (then `apply`), the window's Fit calibration."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gallery_app.cli.common import open_library_of_model, printable


def register(commands: Any) -> None:
    marks = commands.add_parser(
        "marks",
        help="the relevance marks made in the window: list or clear them",
        description="A mark says a photo is (not) what a query asks for; the window's debug "
        "panel and viewer make them, kept per library. To fit the calibration to them: "
        "printf 'feedback --marks\\napply\\n' | gallery-app tune",
    )
    marks.add_argument("action", choices=("list", "clear"))
    marks.add_argument("--query", metavar="TEXT", help="only this query's marks")
    marks.add_argument(
        "--yes", action="store_true", help="clear: do it (without: say what would go)"
    )
    marks.add_argument("--json", action="store_true", help="list: print JSON")
    marks.set_defaults(handler=run_marks)


def run_marks(args: argparse.Namespace) -> int:
    from gallery_app.core.feedback import mark_query

    query = mark_query(args.query) if args.query is not None else None
    writing = args.action == "clear" and args.yes
    library = open_library_of_model(args, writer=writing)
    with library:
        marks = library.catalog.marks(query)
        if args.action == "list":
            if args.json:
                print(
                    json.dumps(
                        [
                            {
                                "path": m.path,
                                "query": m.query,
                                "relevant": m.relevant,
                                "marked_at": m.marked_at,
                            }
                            for m in marks
                        ],
                        indent=2,
                    )
                )
                return 0
            for m in marks:
                print(
                    printable(
                        f"{'relevant' if m.relevant else 'not relevant':<13} {m.query}\t{m.path}"
                    )
                )
            relevant = sum(m.relevant for m in marks)
            queries = len({m.query for m in marks})
            print(
                f"{len(marks)} marks ({relevant} relevant, {len(marks) - relevant} not relevant) "
                f"on {queries} quer{'ies' if queries != 1 else 'y'}"
            )
            return 0
        what = f"the {len(marks)} marks for {query!r}" if query else f"all {len(marks)} marks"
        if not args.yes:
            print(printable(f"would forget {what}; add --yes to do it"))
            return 1 if marks else 0
        removed = library.catalog.clear_marks(query)
        print(f"forgot {removed} marks")
        return 0
