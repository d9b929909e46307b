"""`gallery-app models`: the catalog of known checkpoints, which are cached, and downloads."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gallery_app.cli.common import ProgressBar, resolve_model


def register(commands: Any) -> None:
    models = commands.add_parser(
        "models",
        help="known SigLIP / SigLIP 2 checkpoints, which are downloaded; download one",
        description="Lists the known checkpoints (resources/models.json) with the ones in the "
        "Hugging Face cache marked. `models download ID` fetches one (Ctrl-C cancels; running "
        "it again continues where it stopped).",
    )
    models.add_argument("--json", action="store_true", help="machine-readable list")
    actions = models.add_subparsers(dest="models_action", metavar="{download}")
    download = actions.add_parser("download", help="download a model into the hub cache")
    download.add_argument(
        "model_id", metavar="ID", help="hub id, e.g. google/siglip2-base-patch16-224"
    )
    models.set_defaults(handler=run_models)


def run_models(args: argparse.Namespace) -> int:
    if getattr(args, "models_action", None) == "download":
        return run_download(args.model_id)
    return list_models(resolve_model(args), as_json=args.json)


def list_models(chosen: str, as_json: bool) -> int:
    from gallery_app.core.download import cache_folder
    from gallery_app.core.model_catalog import format_mb, format_speed, model_choices

    choices = model_choices()
    if as_json:
        rows = [
            {
                "id": c.entry.id,
                "family": c.entry.family,
                "size": c.entry.size,
                "resolution": c.entry.resolution,
                "patch": c.entry.patch,
                "embedding_dim": c.entry.embedding_dim,
                "download_mb": c.entry.download_mb,
                "languages": c.entry.languages,
                "relative_cpu_speed": c.entry.relative_cpu_speed,
                "choose_when": c.entry.choose_when,
                "cached": c.cached,
                "default": c.default,
                "in_use": c.entry.id == chosen,
            }
            for c in choices
        ]
        print(
            json.dumps({"cache": str(cache_folder()), "in_use": chosen, "models": rows}, indent=2)
        )
        return 0
    width = max(len(c.entry.id) for c in choices)
    print(f"  {'model':{width}}  {'download':>9}  {'languages':12}  {'CPU':>6}  choose it when")
    for c in choices:
        mark = "*" if c.entry.id == chosen else " "
        cached = "cached" if c.cached else ""
        print(
            f"{mark} {c.entry.id:{width}}  {format_mb(c.entry.download_mb):>9}  "
            f"{c.entry.languages:12}  {format_speed(c.entry.relative_cpu_speed):>6}  "
            f"{c.entry.choose_when}{'  [' + cached + ']' if cached else ''}"
        )
    print(
        f"* in use ({chosen}). Cache: {cache_folder()}. CPU: image-tower speed relative to "
        "SigLIP base-224. Download: `gallery-app models download ID`; use: --model ID."
    )
    return 0


def run_download(model_id: str) -> int:
    from gallery_app.core.download import DownloadCancelled, download_model, is_cached
    from gallery_app.core.model_catalog import find

    if is_cached(model_id):
        print(f"{model_id} is already downloaded; use it with --model {model_id}", file=sys.stderr)
        return 0
    if find(model_id) is None:
        print(
            f"note: {model_id} is not in the catalog (`gallery-app models`); downloading anyway",
            file=sys.stderr,
        )
    bar = ProgressBar()
    try:
        folder = download_model(model_id, progress=bar.update)
    except (KeyboardInterrupt, DownloadCancelled):
        bar.close()
        print(
            f"download of {model_id} cancelled: what came is kept; run the same command to "
            "continue where it stopped",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
    print(f"downloaded {model_id} to {folder}; use it with --model {model_id}", file=sys.stderr)
    return 0
