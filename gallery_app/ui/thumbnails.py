"""Grid thumbnails: decoded in a thread pool as QImage, made QPixmap on the GUI thread, LRU-kept."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image
from PySide6.QtCore import QObject, QPointF, QRectF, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap

from gallery_app.core.imaging import (
    THUMBNAIL_PX,
    DecodeError,
    ThumbnailCache,
    decode,
    open_image,
    to_rgb,
)

log = logging.getLogger(__name__)

DEFAULT_SIZE = 160
DEFAULT_MAX_ENTRIES = 2000
MAX_THREADS = 2

# (path, mtime_ns, device pixel ratio, logical size): one pending job per key.
_JobKey = tuple[str, int, float, int]
# (path, size, device pixel ratio): the in-memory LRU key.
_PixmapKey = tuple[str, int, float]


@dataclass(frozen=True)
class _Entry:
    mtime_ns: int  # a pixmap of an older version of the file is a miss, not a hit
    pixmap: QPixmap


def render_thumbnail(cache: ThumbnailCache, path: str, mtime_ns: int, target_px: int) -> QImage:
    """The thumbnail of one file fitted into target_px, as a QImage (safe off the GUI thread).

    Reads the on-disk cache when it holds this (path, mtime); otherwise decodes the file and
    writes the cache. Raises DecodeError when the file cannot be shown.
    """
    thumbnail = _read_cached(cache, path, mtime_ns)
    if thumbnail is None:
        # Decode at least as large as the on-disk cache's usual size so the indexer and the
        # grid share one file; larger when a HiDPI grid cell asks for more pixels.
        thumbnail = decode(path, thumbnail_px=max(THUMBNAIL_PX, target_px)).thumbnail
        try:
            cache.put(path, mtime_ns, thumbnail)
        except OSError as exc:  # a read-only cache must not hide the picture
            log.warning("could not cache thumbnail of %s: %s", path, exc)
    return to_qimage(_fit(thumbnail, target_px))


def _read_cached(cache: ThumbnailCache, path: str, mtime_ns: int) -> Image.Image | None:
    cached = cache.get(path, mtime_ns)
    if cached is None:
        return None
    try:  # checked like any file: a cache entry swapped for a pipe or a foreign file
        with open_image(cached) as (img, _):
            return to_rgb(img.copy())
    except (DecodeError, OSError, SyntaxError, ValueError) as exc:
        # A truncated or foreign cache file is rebuilt from the original, not shown as broken.
        log.warning("ignoring unreadable cached thumbnail %s: %s", cached, exc)
        return None


def _fit(thumbnail: Image.Image, target_px: int) -> Image.Image:
    width, height = thumbnail.size
    longest = max(width, height)
    # Shrink anything larger. Enlarge only a thumbnail the cache capped at THUMBNAIL_PX (its
    # original was bigger), so a HiDPI cell is filled; a genuinely tiny image stays tiny.
    if longest == target_px or (longest < target_px and longest < THUMBNAIL_PX):
        return thumbnail
    scale = target_px / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return thumbnail.resize(size, Image.Resampling.LANCZOS)


def to_qimage(rgb: Image.Image) -> QImage:
    width, height = rgb.size
    data = rgb.tobytes("raw", "RGB")
    # PIL rows are tightly packed; say so, then copy so the QImage owns its pixels.
    return QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class _JobSignals(QObject):
    """Lives on the GUI thread, so a worker's emit is delivered there as a queued call."""

    loaded = Signal(object, QImage)  # job key, image
    failed = Signal(object, str)  # job key, reason


class _ThumbnailJob(QRunnable):
    def __init__(
        self,
        key: _JobKey,
        cache: ThumbnailCache,
        target_px: int,
        signals: _JobSignals,
        closed: threading.Event,
    ) -> None:
        super().__init__()
        self._key = key
        self._cache = cache
        self._target_px = target_px
        self._signals = signals
        self._closed = closed

    def run(self) -> None:
        if self._closed.is_set():
            return
        path, mtime_ns, _, _ = self._key
        try:
            image = render_thumbnail(self._cache, path, mtime_ns, self._target_px)
        except DecodeError as exc:
            self._emit_failed(str(exc))
        except Exception as exc:  # anything else still ends as a broken tile, not a dead worker
            log.exception("thumbnail of %s failed", path)
            self._emit_failed(f"{type(exc).__name__}: {exc}")
        else:
            # RuntimeError: the provider (and its signals object) was destroyed while we decoded.
            with contextlib.suppress(RuntimeError):
                self._signals.loaded.emit(self._key, image)

    def _emit_failed(self, reason: str) -> None:
        with contextlib.suppress(RuntimeError):
            self._signals.failed.emit(self._key, reason)


class ThumbnailProvider(QObject):
    """Thumbnails of a fixed logical size for views; never blocks the GUI thread.

    `pixmap()` answers from memory or schedules a load and returns None. When the load ends,
    `ready(path)` is emitted on the GUI thread, for a thumbnail and for a file that cannot be
    decoded alike: either way `pixmap()` now has its final answer (the thumbnail or the
    broken-image placeholder). A failure additionally emits `failed(path, reason)` first.
    """

    ready = Signal(str)
    failed = Signal(str, str)

    def __init__(
        self,
        cache: ThumbnailCache,
        size: int = DEFAULT_SIZE,
        parent: QObject | None = None,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_threads: int = MAX_THREADS,
    ) -> None:
        super().__init__(parent)
        self.cache = cache
        self.size = size
        self.max_entries = max_entries
        # Created before the signals object: children die in creation order, and the pool's
        # destructor waits for running jobs, which still emit through the signals object.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._signals = _JobSignals(self)
        self._signals.loaded.connect(self._on_loaded)
        self._signals.failed.connect(self._on_failed)
        self._pixmaps: OrderedDict[_PixmapKey, _Entry] = OrderedDict()
        self._broken: OrderedDict[str, tuple[int, str]] = OrderedDict()  # path -> (mtime, why)
        self._pending: set[_JobKey] = set()
        self._placeholders: dict[tuple[str, float, int], QPixmap] = {}
        self._closed = threading.Event()
        self._sequence = 0

    def pixmap(self, path: str, mtime_ns: int, dpr: float = 1.0) -> QPixmap | None:
        """The thumbnail if in memory (or the broken placeholder); else schedule it, None."""
        key = (path, self.size, dpr)
        entry = self._pixmaps.get(key)
        if entry is not None and entry.mtime_ns == mtime_ns:
            self._pixmaps.move_to_end(key)
            return entry.pixmap
        broken = self._broken.get(path)
        if broken is not None and broken[0] == mtime_ns:
            return self.broken_placeholder(dpr)
        self._request((path, mtime_ns, dpr, self.size))
        return None

    def broken_reason(self, path: str) -> str | None:
        """Why the file's thumbnail could not be made, if it could not."""
        broken = self._broken.get(path)
        return broken[1] if broken is not None else None

    @property
    def cached_count(self) -> int:
        """Pixmaps held in memory (at most max_entries)."""
        return len(self._pixmaps)

    @property
    def pending_count(self) -> int:
        """Loads scheduled or running."""
        return len(self._pending)

    def set_size(self, size: int) -> None:
        """A new logical thumbnail size (Ctrl+±): later pixmap() calls answer at this size."""
        if size != self.size:
            self.size = size
            self.clear_pending()  # loads for the old size would be made for nobody

    def placeholder(self, dpr: float = 1.0) -> QPixmap:
        """A neutral tile shown while a thumbnail loads."""
        return self._placeholder("loading", dpr)

    def broken_placeholder(self, dpr: float = 1.0) -> QPixmap:
        """A tile with a crossed-out picture frame, for files that cannot be decoded."""
        return self._placeholder("broken", dpr)

    def clear_pending(self) -> None:
        """Drop loads not yet started (say, for results just replaced); running ones finish."""
        self._pool.clear()
        self._pending.clear()

    def shutdown(self, timeout_ms: int = -1) -> bool:
        """Cancel queued loads and wait for running ones; True when no thread is left."""
        self._closed.set()
        self._pool.clear()
        done = self._pool.waitForDone(timeout_ms)
        self._pending.clear()
        return done

    def _request(self, key: _JobKey) -> None:
        if key in self._pending or self._closed.is_set():
            return
        self._pending.add(key)
        target_px = max(1, round(key[3] * key[2]))
        job = _ThumbnailJob(key, self.cache, target_px, self._signals, self._closed)
        # Newest first: the cells on screen now were asked for last, so a fast scroll through
        # thousands of rows shows where it stopped before the rows it passed.
        self._sequence += 1
        self._pool.start(job, self._sequence)

    @Slot(object, QImage)
    def _on_loaded(self, key: _JobKey, image: QImage) -> None:
        self._pending.discard(key)
        if self._closed.is_set():
            return
        path, mtime_ns, dpr, size = key
        pixmap = QPixmap.fromImage(image)  # on the GUI thread, where pixmaps may be made
        pixmap.setDevicePixelRatio(dpr)
        pixmap_key = (path, size, dpr)
        self._pixmaps[pixmap_key] = _Entry(mtime_ns, pixmap)
        self._pixmaps.move_to_end(pixmap_key)
        while len(self._pixmaps) > self.max_entries:
            self._pixmaps.popitem(last=False)
        self._broken.pop(path, None)
        self.ready.emit(path)

    @Slot(object, str)
    def _on_failed(self, key: _JobKey, reason: str) -> None:
        self._pending.discard(key)
        if self._closed.is_set():
            return
        path, mtime_ns, _, _ = key
        self._broken[path] = (mtime_ns, reason)
        self._broken.move_to_end(path)
        while len(self._broken) > self.max_entries:
            self._broken.popitem(last=False)
        self.failed.emit(path, reason)
        self.ready.emit(path)

    def _placeholder(self, kind: str, dpr: float) -> QPixmap:
        cached = self._placeholders.get((kind, dpr, self.size))
        if cached is not None:
            return cached
        side = max(1, round(self.size * dpr))
        pixmap = QPixmap(side, side)
        pixmap.setDevicePixelRatio(dpr)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            _draw_placeholder(painter, float(self.size), broken=kind == "broken")
        finally:
            painter.end()
        self._placeholders[(kind, dpr, self.size)] = pixmap
        return pixmap


def _draw_placeholder(painter: QPainter, side: float, broken: bool) -> None:
    tile = QRectF(1.0, 1.0, side - 2.0, side - 2.0)
    radius = side * 0.06
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(236, 226, 226) if broken else QColor(224, 224, 224))
    painter.drawRoundedRect(tile, radius, radius)
    if not broken:
        return
    # A picture frame with a mountain, crossed out: reads as "image, but unusable".
    frame = QRectF(side * 0.28, side * 0.32, side * 0.44, side * 0.36)
    pen = QPen(QColor(150, 110, 110), max(1.0, side * 0.02))
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawRect(frame)
    painter.drawPolyline(
        [
            QPointF(frame.left(), frame.bottom()),
            QPointF(frame.left() + frame.width() * 0.4, frame.top() + frame.height() * 0.45),
            QPointF(frame.left() + frame.width() * 0.6, frame.top() + frame.height() * 0.7),
            QPointF(frame.right(), frame.top() + frame.height() * 0.3),
        ]
    )
    cross = QPen(QColor(190, 60, 60), max(1.5, side * 0.03))
    painter.setPen(cross)
    painter.drawLine(frame.topLeft(), frame.bottomRight())
    painter.drawLine(frame.topRight(), frame.bottomLeft())
