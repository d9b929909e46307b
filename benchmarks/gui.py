"""GUI benchmarks: first paint, event-loop stalls while indexing, re-scoring after a slider move.

    python benchmarks/gui.py --model FOLDER [--quick]

Each number is measured on the real MainWindow, offscreen. Used by benchmarks/run.py as the
`gui` section; runnable alone while working on the window.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# The child prints the wall-clock time of the window's first paint; the parent measures from
# just before it starts the process, so interpreter start-up and imports are included.
_FIRST_PAINT = textwrap.dedent(
    """
    import os, sys, time
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from pathlib import Path
    from PySide6.QtCore import QEvent, QObject, QSettings
    from PySide6.QtWidgets import QApplication
    from gallery_app.ui.main_window import MainWindow

    class FirstPaint(QObject):
        def eventFilter(self, watched, event):
            if event.type() == QEvent.Type.Paint:
                print(repr(time.time()), "torch" in sys.modules, flush=True)
                os._exit(0)
            return False

    app = QApplication([])
    work = Path(sys.argv[1])
    store = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(work / "data", "unused", store)
    spy = FirstPaint()
    window.installEventFilter(spy)
    window.show()
    app.exec()
    """
)


def first_paint_seconds(runs: int) -> tuple[float, bool]:
    """Median seconds from process start to the main window's first paint event."""
    times = []
    torch_loaded = False
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as work:
            start = time.time()
            out = subprocess.run(
                [sys.executable, "-c", _FIRST_PAINT, work],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=True,
            )
            painted, torch_flag = out.stdout.split()
            times.append(float(painted) - start)
            torch_loaded = torch_loaded or torch_flag == "True"
    return statistics.median(times), torch_loaded


def _make_photos(folder: Path, count: int, size: tuple[int, int]) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from screenshot import scene

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        scene(i, size).save(folder / f"IMG_{i:05d}.jpg", quality=88)


def _open_window(app: Any, work: Path, model: str) -> Any:
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from gallery_app.ui.main_window import MainWindow

    store = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(work / "data", model, store)
    window.resize(1400, 900)
    window.show()
    loop = QEventLoop()
    window.model_loaded.connect(loop.quit)
    window.model_missing.connect(lambda message: sys.exit(f"model did not load: {message}"))
    QTimer.singleShot(0, window.start_engine)
    loop.exec()
    return window


def stall_while_indexing(app: Any, window: Any, photos: Path) -> dict[str, float]:
    """Event-loop stalls (lateness of a 10 ms timer) over a whole indexing run."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    interval_ms = 10
    clock = QElapsedTimer()
    lateness: list[float] = []
    last = [0.0]

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        lateness.append(max(0.0, now - last[0] - interval_ms))
        last[0] = now

    timer = QTimer(interval=interval_ms)
    timer.setTimerType(timer.timerType().PreciseTimer)
    timer.timeout.connect(tick)
    loop = QEventLoop()
    window.indexing_finished.connect(loop.quit)
    started = time.perf_counter()
    clock.start()
    timer.start()
    window.start_indexing([str(photos)])
    loop.exec()
    timer.stop()
    seconds = time.perf_counter() - started
    report = window.library.last_report
    lateness.sort()
    p99 = lateness[min(len(lateness) - 1, int(0.99 * len(lateness)))]
    return {
        "stall_p99_ms": p99,
        "stall_max_ms": lateness[-1],
        "stall_samples": float(len(lateness)),
        "indexed": float(report.indexed if report else 0),
        "index_seconds": seconds,
    }


def recalibrate_ms(app: Any, window: Any, n_results: int, repeats: int) -> dict[str, float]:
    """Re-score and re-sort n results after a slider move: grid, debug table, labels."""
    import numpy as np

    from gallery_app.core.search import PromptVariant, SearchHits

    rng = np.random.default_rng(0)
    variants = tuple(
        PromptVariant(f"variant {i}", f"a photo of variant {i}.", 1.0 if i < 5 else 0.8)
        for i in range(10)
    )
    window.search.set_show_all(True)  # every result in the grid, as with a low "Hide below"
    window.search.hits = SearchHits(
        "benchmark query",
        variants,
        np.arange(n_results, dtype=np.int64),
        tuple(f"/photos/IMG_{i:06d}.jpg" for i in range(n_results)),
        rng.normal(0.05, 0.03, (n_results, len(variants))).astype(np.float32),
    )
    window.debug_dock.show()
    slider = window.calibration_bar.temperature_slider
    slider.setValue(40)
    app.processEvents()
    synchronous, painted = [], []
    for i in range(repeats):
        start = time.perf_counter()
        slider.setValue(41 + (i % 2) * 20)  # the handler re-scores here
        synchronous.append((time.perf_counter() - start) * 1e3)
        window.repaint()  # and what the user sees: the grid and table painted again
        painted.append((time.perf_counter() - start) * 1e3)
        app.processEvents()
    assert len(window.search.results) == n_results
    return {
        "recalibrate_ms": statistics.median(synchronous),
        "recalibrate_painted_ms": statistics.median(painted),
        "recalibrate_repeats": float(repeats),
    }


def grid_with_100k_items(app: Any, window: Any, repeats: int) -> dict[str, float]:
    """Show 100,000 library items, then page through the grid: each step is one repaint."""
    from gallery_app.ui.grid_model import GridItem

    items = [GridItem(i, f"/photos/IMG_{i:06d}.jpg", 0) for i in range(100_000)]
    window.clear_search()
    start = time.perf_counter()
    window.grid_model.set_items(items)
    grid = window.results_panel.grid
    grid.repaint()
    shown_ms = (time.perf_counter() - start) * 1e3
    bar = grid.verticalScrollBar()
    frames = []
    for i in range(repeats):
        start = time.perf_counter()
        bar.setValue(bar.maximum() * i // repeats)
        grid.viewport().repaint()
        frames.append((time.perf_counter() - start) * 1e3)
        app.processEvents()
    window.thumbnails.clear_pending()
    return {
        "grid_100k_show_ms": shown_ms,
        "grid_100k_scroll_frame_ms": statistics.median(frames),
    }


def bench_gui(model: str, quick: bool = False) -> dict[str, Any]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    paint_runs = 3 if quick else 7
    first_paint, torch_loaded = first_paint_seconds(paint_runs)

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["GALLERY_APP_CONFIG_DIR"] = str(work / "config")
        photos = work / "photos"
        _make_photos(photos, 16 if quick else 48, (1600, 1200))
        window = _open_window(app, work, model)
        try:
            stalls = stall_while_indexing(app, window, photos)
            recal = recalibrate_ms(app, window, 1000, 10 if quick else 30)
            grid = grid_with_100k_items(app, window, 10 if quick else 30)
        finally:
            window.close()
    return {
        "first_paint_s": first_paint,
        "first_paint_runs": paint_runs,
        "torch_imported_before_paint": torch_loaded,
        **stalls,
        **recal,
        **grid,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder (or hub id)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps({"gui": bench_gui(args.model, args.quick)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
