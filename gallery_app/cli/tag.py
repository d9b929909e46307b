"""`gallery-app tag`: a photo's tags and description, shown or edited (no model is loaded)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from gallery_app.cli.common import argv_text, data_dir, printable
from gallery_app.core.errors import GalleryError


def register(commands: Any) -> None:
    tag = commands.add_parser(
        "tag",
        help="show or edit photos' tags and description",
        description="With --add, --remove or --description: change every PATH, then show "
        "them; without: show their tags and description (and the keywords, title and caption "
        "their files carry). Works while another gallery-app indexes the library.",
    )
    tag.add_argument("paths", nargs="+", metavar="PATH", help="indexed photos")
    tag.add_argument(
        "--add", action="append", default=[], metavar="TAG", help="add a tag (repeatable)"
    )
    tag.add_argument(
        "--remove", action="append", default=[], metavar="TAG", help="remove a tag (repeatable)"
    )
    tag.add_argument(
        "--description",
        metavar="TEXT",
        default=None,
        help='set the description ("" clears it)',
    )
    tag.add_argument("--json", action="store_true", help="print JSON")
    tag.set_defaults(handler=run_tag)


def run_tag(args: argparse.Namespace) -> int:
    from gallery_app.core.embeddings import resolve_model_id
    from gallery_app.core.library import library_folder
    from gallery_app.core.metadata import open_for_metadata

    model_id = resolve_model_id(args.model)
    # Opened for writing without the library's writer lock: tags touch neither the vectors
    # nor the index, so this runs beside an indexer (core.metadata.open_for_metadata).
    catalog = open_for_metadata(library_folder(data_dir(args), model_id) / "catalog.sqlite")
    try:
        ids = _image_ids(catalog, [argv_text(p) for p in args.paths])
        add = [argv_text(t) for t in args.add]
        remove = [argv_text(t) for t in args.remove]
        if add or remove:
            catalog.edit_tags(ids.values(), add=add, remove=remove)
        if args.description is not None:
            catalog.set_description(ids.values(), argv_text(args.description))
        metadata = catalog.metadata(ids.values())
    finally:
        catalog.close()
    from gallery_app.core.catalog import PhotoMetadata

    shown = [(path, metadata.get(image_id, PhotoMetadata())) for path, image_id in ids.items()]
    if args.json:
        print(json.dumps({"photos": [_json(path, meta) for path, meta in shown]}, indent=2))
        return 0
    for path, meta in shown:
        print(printable(path))
        print(printable(f"  tags: {', '.join(meta.user_tags) or '(none)'}"))
        print(printable(f"  description: {meta.description or '(none)'}"))
        if meta.file_tags:
            print(printable(f"  keywords in the file: {', '.join(meta.file_tags)}"))
        if meta.title:
            print(printable(f"  title in the file: {meta.title}"))
        if meta.caption:
            print(printable(f"  caption in the file: {meta.caption}"))
    return 0


def _image_ids(catalog: Any, paths: list[str]) -> dict[str, int]:
    """Each PATH's image id, as the catalog spells the path; nothing is written unless every
    PATH is in the library (a typo must not tag half of them)."""
    wanted = {p: os.path.abspath(os.path.expanduser(p)) for p in paths}
    found = catalog.ids_for_paths(set(wanted.values()))
    missing = [p for p, full in wanted.items() if full not in found]
    if missing:  # a folder reached through a symbolic link is stored by its real path
        real = {p: os.path.realpath(wanted[p]) for p in missing}
        found.update(catalog.ids_for_paths(set(real.values())))
        wanted.update(real)
        missing = [p for p in missing if wanted[p] not in found]
    if missing:
        listed = ", ".join(printable(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise GalleryError(
            f"Not in the library: {listed}{more}. Index its folder first "
            "(gallery-app index FOLDER); nothing was changed."
        )
    return {wanted[p]: found[wanted[p]] for p in paths}


def _json(path: str, meta: Any) -> dict[str, Any]:
    return {
        "path": path,
        "tags": list(meta.user_tags),
        "description": meta.description,
        "file_keywords": list(meta.file_tags),
        "title": meta.title,
        "caption": meta.caption,
    }
