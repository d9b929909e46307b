"""Render the real main window with search results and save it as a PNG.

    python scripts/screenshot.py [--model FOLDER_OR_HUB_ID] [--size 1280x800] [--debug-panel]
                                 [--query TEXT | --similar N] [--out docs/screenshot.png]

Offscreen by default; under an X server (`QT_QPA_PLATFORM=xcb DISPLAY=:99`, e.g. Xvfb) it is
the window a person sees. Without --model it builds the tests' tiny random SigLIP, so the
window, the grid and the debug panel are real but the scores are meaningless; with real
weights the same script shows real ones.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parent.parent
QUERY = "dog on the beach"


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A photo-like picture: sky and ground gradients, a sun or moon, hills, a few objects."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.45, 0.7))
    sky_top = [rng.randint(40, 140), rng.randint(90, 180), rng.randint(160, 255)]
    sky_low = [min(255, c + rng.randint(40, 100)) for c in sky_top]
    ground = [rng.randint(60, 220), rng.randint(80, 200), rng.randint(30, 150)]
    for y in range(height):
        if y < horizon:
            t = y / horizon
            colour = tuple(int(a + (b - a) * t) for a, b in zip(sky_top, sky_low, strict=True))
        else:
            t = (y - horizon) / (height - horizon)
            colour = tuple(int(c * (1 - 0.4 * t)) for c in ground)
        draw.line([(0, y), (width, y)], fill=colour)
    sun_x, sun_y, radius = rng.randint(60, width - 60), rng.randint(30, horizon - 30), 30
    draw.ellipse(
        [sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius], fill=(255, 236, 170)
    )
    for _ in range(rng.randint(1, 3)):  # hills
        base = rng.randint(0, width)
        span = rng.randint(150, 400)
        peak = horizon - rng.randint(20, 90)
        shade = tuple(max(0, c - rng.randint(20, 60)) for c in ground)
        points = [(base - span, horizon), (base, peak), (base + span, horizon)]
        draw.polygon(points, fill=shade)
    for _ in range(rng.randint(2, 6)):  # objects on the ground
        x = rng.randint(0, width - 60)
        y = rng.randint(horizon, height - 40)
        w, h = rng.randint(20, 90), rng.randint(20, 70)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse([x, y, x + w, y + h], fill=colour)
        else:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
    angle = rng.uniform(0, 2 * math.pi)
    for i in range(6):  # a few clouds
        cx = int(width / 2 + math.cos(angle + i) * rng.randint(50, width // 2))
        cy = rng.randint(10, max(11, horizon // 2))
        draw.ellipse([cx - 40, cy - 12, cx + 40, cy + 12], fill=(245, 245, 250))
    return image.filter(ImageFilter.GaussianBlur(1.2))


def wait_for(signal: object, what: str, timeout_ms: int = 300_000) -> None:
    """Run the event loop until `signal` fires; exit the script if it takes too long."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    signal.connect(loop.quit)  # type: ignore[attr-defined]
    timer = QTimer(singleShot=True, interval=timeout_ms)
    timer.timeout.connect(lambda: sys.exit(f"timed out waiting for {what}"))
    timer.start()
    loop.exec()
    timer.stop()


def settle(app, window) -> None:
    """Let the thumbnail threads deliver (up to 15 s) before grabbing."""
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = QTimer(singleShot=True, interval=15_000)
    deadline.start()
    while window.thumbnails.pending_count and deadline.isActive():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    for _ in range(20):
        app.processEvents()


def save(pixmap, out: Path, work: Path) -> None:
    """Write a grabbed pixmap to `out` (exit if it cannot be written) and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(out)):
        sys.exit(f"could not write {out}")
    print(f"wrote {out} ({pixmap.width()}×{pixmap.height()}), work folder {work}")


def open_indexed_window(work: Path, model: str, photos: Path, width: int, height: int):
    """(app, window): the window at this size, its model loaded and `photos` indexed."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gallery_app.ui.main_window import MainWindow

    app = QApplication([])
    store = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(work / "data", model, store)
    window.resize(width, height)
    window.show()
    window.start_engine()
    wait_for(window.model_loaded, "the model")
    window.start_indexing([str(photos)])
    wait_for(window.library.idle, "indexing")
    return app, window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: tiny random SigLIP)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--debug-panel", action="store_true", help="open View › Debug scores")
    parser.add_argument("--query", default=QUERY, help=f"what to search (default {QUERY!r})")
    parser.add_argument(
        "--similar", type=int, metavar="N", help="Find similar on the N-th photo instead"
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(tempfile.mkdtemp(prefix="gallery-screenshot-"))
    os.environ["GALLERY_APP_CONFIG_DIR"] = str(work / "config")
    model = args.model
    if model is None:
        sys.path.insert(0, str(REPO))
        from tests.tiny_model import build_tiny_siglip

        model = str(build_tiny_siglip(work / "tiny-siglip"))
    photos = work / "Holiday 2026"
    photos.mkdir()
    for i in range(args.photos):
        scene(i).save(photos / f"IMG_{2000 + i}.jpg", quality=90)

    app, window = open_indexed_window(work, model, photos, width, height)
    if args.similar is not None:
        item = window.grid_model.item(args.similar)
        window.results_panel.find_similar(item.image_id, item.path)
    else:
        window.results_panel.search_box.setText(args.query)
        window.run_search()
    wait_for(window.search_done, "results")
    if args.debug_panel:
        window.debug_dock.show()
    settle(app, window)
    save(window.grab(), args.out, work)
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
