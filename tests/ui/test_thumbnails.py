"""ThumbnailProvider: pool decoding, disk cache reuse, broken files, the bounded LRU."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QCoreApplication
from pytestqt.qtbot import QtBot

from gallery_app.core.imaging import DecodeError, ThumbnailCache
from gallery_app.ui import thumbnails
from gallery_app.ui.thumbnails import ThumbnailProvider

pytestmark = pytest.mark.qt_log_level_fail("WARNING")

TIMEOUT_MS = 10_000


def photo(path: Path, size: tuple[int, int]) -> Path:
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


def load_all(qtbot: QtBot, provider: ThumbnailProvider, paths: Iterable[Path]) -> None:
    """Ask for every path and wait until `ready` has fired for each of them."""
    remaining = {str(p) for p in paths}

    def all_seen(path: str) -> bool:
        remaining.discard(path)
        return not remaining

    with qtbot.waitSignal(provider.ready, timeout=TIMEOUT_MS, check_params_cb=all_seen):
        for path in list(remaining):
            assert provider.pixmap(path, mtime(Path(path))) is None


def test_pixmap_loads_in_background_then_fits_size(qtbot, make_provider, tmp_path):
    path = photo(tmp_path / "wide.png", (400, 300))
    provider = make_provider(size=160)

    with qtbot.waitSignal(provider.ready, timeout=TIMEOUT_MS) as blocker:
        assert provider.pixmap(str(path), mtime(path)) is None
        # Asking again while it loads schedules nothing new.
        assert provider.pixmap(str(path), mtime(path)) is None
        assert provider.pending_count == 1
    assert blocker.args == [str(path)]

    pixmap = provider.pixmap(str(path), mtime(path))
    assert pixmap is not None
    assert (pixmap.width(), pixmap.height()) == (160, 120)
    assert provider.pending_count == 0
    assert provider.cache.get(str(path), mtime(path)) is not None


def test_tall_image_and_device_pixel_ratio(qtbot, make_provider, tmp_path):
    path = photo(tmp_path / "tall.png", (300, 600))
    provider = make_provider(size=100)

    with qtbot.waitSignal(provider.ready, timeout=TIMEOUT_MS):
        assert provider.pixmap(str(path), mtime(path), dpr=2.0) is None
    pixmap = provider.pixmap(str(path), mtime(path), dpr=2.0)
    assert pixmap is not None
    assert (pixmap.width(), pixmap.height()) == (100, 200)  # device pixels
    assert pixmap.devicePixelRatio() == 2.0
    # Another ratio is another entry, loaded separately.
    with qtbot.waitSignal(provider.ready, timeout=TIMEOUT_MS):
        assert provider.pixmap(str(path), mtime(path), dpr=1.0) is None
    one_x = provider.pixmap(str(path), mtime(path), dpr=1.0)
    assert one_x is not None
    assert (one_x.width(), one_x.height()) == (50, 100)


def test_small_image_is_not_enlarged(qtbot, make_provider, make_images):
    (path,) = make_images(1)  # 64 x 48
    provider = make_provider(size=160)
    load_all(qtbot, provider, [path])
    pixmap = provider.pixmap(str(path), mtime(path))
    assert pixmap is not None
    assert (pixmap.width(), pixmap.height()) == (64, 48)


def test_second_provider_reads_the_disk_cache(qtbot, make_provider, tmp_path, monkeypatch):
    path = photo(tmp_path / "cached.png", (400, 300))
    first = make_provider(size=160)
    load_all(qtbot, first, [path])

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the disk cache holds this thumbnail")

    monkeypatch.setattr(thumbnails, "decode", no_decoding)
    second = make_provider(size=160, cache_dir=first.cache.folder)
    with qtbot.assertNotEmitted(second.failed):
        load_all(qtbot, second, [path])
    pixmap = second.pixmap(str(path), mtime(path))
    assert pixmap is not None
    assert max(pixmap.width(), pixmap.height()) == 160


def test_changed_file_is_a_miss(qtbot, make_provider, tmp_path):
    path = photo(tmp_path / "edited.png", (400, 300))
    provider = make_provider()
    load_all(qtbot, provider, [path])
    assert provider.pixmap(str(path), mtime(path)) is not None
    with qtbot.waitSignal(provider.ready, timeout=TIMEOUT_MS):
        assert provider.pixmap(str(path), mtime(path) + 1) is None  # a newer version: reload
    assert provider.pixmap(str(path), mtime(path) + 1) is not None


def test_broken_file_gives_broken_placeholder_once(qtbot, make_provider, tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"this is not a jpeg")
    provider = make_provider(size=96)

    with (
        qtbot.waitSignal(provider.failed, timeout=TIMEOUT_MS) as failed,
        qtbot.waitSignal(provider.ready, timeout=TIMEOUT_MS) as ready,
    ):
        assert provider.pixmap(str(path), mtime(path)) is None
    assert failed.args[0] == str(path)
    assert "not a recognized image format" in failed.args[1]
    assert ready.args == [str(path)]
    assert provider.broken_reason(str(path)) == failed.args[1]

    pixmap = provider.pixmap(str(path), mtime(path))
    assert pixmap is not None
    assert (pixmap.width(), pixmap.height()) == (96, 96)
    assert pixmap.toImage() == provider.broken_placeholder().toImage()
    assert pixmap.toImage() != provider.placeholder().toImage()
    # Marked broken: asking again schedules nothing.
    assert provider.pending_count == 0
    assert provider.cache.get(str(path), mtime(path)) is None


def test_unexpected_error_is_a_failure_not_a_dead_worker(
    qtbot, make_provider, tmp_path, monkeypatch
):
    path = photo(tmp_path / "fine.png", (50, 50))

    def explode(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(thumbnails, "decode", explode)
    monkeypatch.setattr(thumbnails.log, "exception", lambda *args, **kwargs: None)
    provider = make_provider()
    with qtbot.waitSignal(provider.failed, timeout=TIMEOUT_MS) as failed:
        provider.pixmap(str(path), mtime(path))
    assert failed.args == [str(path), "MemoryError: simulated"]


def test_decode_error_message_reaches_failed(qtbot, make_provider, tmp_path, monkeypatch):
    path = photo(tmp_path / "gone.png", (50, 50))

    def gone(*args, **kwargs):
        raise DecodeError("file disappeared before it could be read")

    monkeypatch.setattr(thumbnails, "decode", gone)
    provider = make_provider()
    with qtbot.waitSignal(provider.failed, timeout=TIMEOUT_MS) as failed:
        provider.pixmap(str(path), mtime(path))
    assert failed.args == [str(path), "file disappeared before it could be read"]


def test_lru_is_bounded(qtbot, make_provider, make_images):
    paths = make_images(5)
    provider = make_provider(max_entries=3)
    for path in paths:  # one at a time, so the least recently loaded are the first two
        load_all(qtbot, provider, [path])
    assert provider.cached_count == 3
    for path in paths[2:]:
        assert provider.pixmap(str(path), mtime(path)) is not None
    assert provider.cached_count == 3
    # The evicted ones load again (from the disk cache) when asked.
    assert provider.pixmap(str(paths[0]), mtime(paths[0])) is None


def test_placeholders(qapp):
    provider = ThumbnailProvider(ThumbnailCache(Path("unused")), size=120)
    try:
        plain = provider.placeholder()
        broken = provider.broken_placeholder()
        assert (plain.width(), plain.height()) == (120, 120)
        assert (broken.width(), broken.height()) == (120, 120)
        assert plain.toImage() != broken.toImage()
        hidpi = provider.placeholder(2.0)
        assert (hidpi.width(), hidpi.height()) == (240, 240)
        assert hidpi.devicePixelRatio() == 2.0
        assert provider.placeholder() is plain  # drawn once
    finally:
        assert provider.shutdown()


def test_shutdown_cancels_queued_work(qtbot, make_provider, make_images):
    paths = make_images(20)
    provider = make_provider()
    for path in paths:
        provider.pixmap(str(path), mtime(path))
    assert provider.shutdown(TIMEOUT_MS)
    assert provider.pending_count == 0
    # Results still in the event queue are dropped, and nothing new is scheduled.
    with qtbot.assertNotEmitted(provider.ready):
        assert provider.pixmap(str(paths[0]), mtime(paths[0])) is None
        QCoreApplication.processEvents()
    assert provider.pending_count == 0
