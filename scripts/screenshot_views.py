"""Render the real main window sorted by date, or its duplicates window, and save a PNG.

    python scripts/screenshot_views.py --view dates [--model FOLDER_OR_HUB_ID] [--out PNG]
    python scripts/screenshot_views.py --view duplicates [--model ...] [--out PNG]

The photos are scripts/screenshot.py's generated scenes with EXIF dates across six months,
plus copies (renamed, in another folder, a hard link) and re-encoded, smaller versions of a
few. Without --model it builds the tests' tiny random SigLIP: the window is real, the scores
and cosines are meaningless. With the tiny model, "Hide below" is set to 1% for the date view
(its own calibration scores few photos 20% or more) and near-identical means cosine
>= 0.9995 (random weights put unrelated pictures close together); with --model, the
defaults (the "possible" band, 0.95) are used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from screenshot import (  # noqa: E402  (the same generated photos as the main screenshot)
    open_indexed_window,
    save,
    scene,
    settle,
    wait_for,
)

QUERY = "dog on the beach"


def make_photos(root: Path, count: int) -> None:
    trips = [root / "Holiday 2026", root / "Spring walks"]
    for folder in trips:
        folder.mkdir(parents=True)
    first = dt.datetime(2026, 1, 4, 10, 0)
    for i in range(count):
        taken = first + dt.timedelta(days=9 * i, hours=i % 7)
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
        path = trips[i % 2] / f"IMG_{2000 + i}.jpg"
        scene(i).save(path, quality=90, exif=exif.tobytes())
    backup = root / "Phone backup"
    backup.mkdir()
    shutil.copyfile(trips[0] / "IMG_2000.jpg", backup / "holiday-first-day.jpg")
    os.link(trips[0] / "IMG_2000.jpg", backup / "IMG_2000.jpg")
    for i in (3, 6):
        small = Image.open(trips[i % 2] / f"IMG_{2000 + i}.jpg")
        exif_bytes = small.info.get("exif", b"")
        small.resize((320, 240)).save(
            backup / f"IMG_{2000 + i}-small.jpg", quality=70, exif=exif_bytes
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--view", choices=("dates", "duplicates"), required=True)
    parser.add_argument("--model", help="model folder or hub id (default: tiny random SigLIP)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = args.out or REPO / "docs" / f"screenshot-{args.view}.png"

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(tempfile.mkdtemp(prefix="gallery-screenshot-"))
    os.environ["GALLERY_APP_CONFIG_DIR"] = str(work / "config")
    model = args.model
    tiny = model is None
    if tiny:
        from tests.tiny_model import build_tiny_siglip

        model = str(build_tiny_siglip(work / "tiny-siglip"))
    photos = work / "Pictures"
    make_photos(photos, args.photos)

    from gallery_app.ui.duplicates_view import open_duplicates

    app, window = open_indexed_window(work, model, photos, width, height)
    if args.view == "dates":
        if tiny:
            window.calibration_bar.min_score_box.setValue(1)  # "Hide below" 1%
        window.results_panel.search_box.setText(QUERY)
        window.run_search()
        wait_for(window.search_done, "results")
        window.filters.row.set_sort("date", newest_first=True)
        settle(app, window)
        target = window.grab()
    else:
        dialog = open_duplicates(window)
        dialog.resize(min(width, 1180), min(height, 640))
        if tiny:
            dialog.similarity_box.setValue(0.9995)
        dialog.start()
        wait_for(dialog.finished_search, "the duplicates")
        settle(app, window)
        target = dialog.grab()
    save(target, out, work)
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
