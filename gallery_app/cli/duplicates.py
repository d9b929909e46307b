"""`gallery-app duplicates`: groups of identical and near-identical photos; never deletes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gallery_app.cli.common import open_library_of_model, printable


def register(commands: Any) -> None:
    duplicates = commands.add_parser(
        "duplicates",
        help="find identical and near-identical photos (nothing is deleted)",
        description="Identical: the same bytes (files of equal size are read in full and "
        "compared by SHA-256; always found). Near-identical: image embeddings with cosine at "
        "least --min-similarity, every pair compared exactly. No model is loaded.",
    )
    duplicates.add_argument(
        "--min-similarity",
        type=float,
        default=None,
        metavar="X",
        # 0.95 is core.duplicates.DEFAULT_MIN_SIMILARITY (not imported: --help stays quick)
        help="cosine for near-identical photos, in (0, 1] (default 0.95)",
    )
    duplicates.add_argument("--json", action="store_true", help="print JSON")
    duplicates.set_defaults(handler=run_duplicates)


def run_duplicates(args: argparse.Namespace) -> int:
    from gallery_app.core.duplicates import (
        DEFAULT_MIN_SIMILARITY,
        IDENTICAL,
        check_min_similarity,
        find_duplicates,
    )

    cut = check_min_similarity(
        DEFAULT_MIN_SIMILARITY if args.min_similarity is None else args.min_similarity
    )
    library = open_library_of_model(args, writer=False)  # reads; no model is loaded
    with library:
        report = find_duplicates(library.catalog, cut, progress=_progress_bar())
    for path, why in report.skipped:
        print(printable(f"skipped {path}: {why}"), file=sys.stderr)
    if args.json:
        print(json.dumps(_report_json(report), indent=2))
        return 0
    for number, group in enumerate(report.groups, 1):
        if group.kind == IDENTICAL:
            print(f"#{number} identical ({len(group.photos)} files, same bytes)")
        else:
            print(
                f"#{number} near-identical ({len(group.photos)} photos, lowest cosine "
                f"{group.min_similarity:.4f})"
            )
        for index, photo in enumerate(group.photos, 1):
            taken = f"{photo.taken:%Y-%m-%d %H:%M}" if photo.taken else "?"
            size = f"{photo.width}x{photo.height}" if photo.width else "?"
            note = (
                f"same bytes as {photo.copy_of + 1}"
                if photo.copy_of is not None
                else f"cosine {photo.similarity:.4f}"
            )
            if photo.same_file:
                note += ", hard link"
            print(
                printable(
                    f"  {index}. {photo.size:>10} B  {size:>11}  {taken}  {note:<24} {photo.path}"
                )
            )
    identical = sum(1 for g in report.groups if g.kind == IDENTICAL)
    print(
        f"{identical} group(s) of identical files, {len(report.groups) - identical} of "
        f"near-identical photos (cosine >= {cut:g}) among {report.photos} photos; nothing "
        "was deleted",
        file=sys.stderr,
    )
    return 0


def _progress_bar() -> Any:
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def show(progress: Any) -> None:
        bar = bars.get(progress.stage)
        if bar is None:
            label = "reading files" if progress.stage == "hashing" else "comparing pairs"
            bar = bars[progress.stage] = tqdm(
                total=progress.total,
                desc=label,
                file=sys.stderr,
                leave=False,
                unit_scale=True,
                disable=None,
            )
        bar.n = progress.done
        bar.refresh()
        if progress.done >= progress.total:
            bar.close()

    return show


def _report_json(report: Any) -> dict[str, Any]:
    return {
        "min_similarity": report.min_similarity,
        "photos": report.photos,
        "hashed": report.hashed,
        "cancelled": report.cancelled,
        "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
        "groups": [
            {
                "kind": group.kind,
                "min_similarity": group.min_similarity,
                "photos": [
                    {
                        "path": p.path,
                        "folder": p.folder,
                        "size": p.size,
                        "width": p.width,
                        "height": p.height,
                        "taken": p.taken.isoformat() if p.taken else None,
                        "taken_source": p.taken_source,
                        "similarity": p.similarity,
                        "copy_of": p.copy_of,
                        "same_file": p.same_file,
                    }
                    for p in group.photos
                ],
            }
            for group in report.groups
        ],
    }
