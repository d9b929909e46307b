"""UI fixtures: thumbnail providers that are always shut down, so no pool thread outlives a test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from window_helpers import open_window, store, thread_registry  # noqa: F401 (fixtures)

from gallery_app.core.imaging import ThumbnailCache
from gallery_app.ui.thumbnails import ThumbnailProvider

MakeProvider = Callable[..., ThumbnailProvider]


@pytest.fixture
def make_provider(qapp: QApplication, tmp_path: Path) -> Iterator[MakeProvider]:
    """make_provider(size=160, max_entries=2000, cache_dir=tmp_path/"thumbs") -> provider."""
    providers: list[ThumbnailProvider] = []

    def make(
        size: int = 160, max_entries: int = 2000, cache_dir: Path | None = None
    ) -> ThumbnailProvider:
        cache = ThumbnailCache(cache_dir or tmp_path / "thumbs")
        provider = ThumbnailProvider(cache, size, max_entries=max_entries)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        assert provider.shutdown(10_000), "a thumbnail thread was still running after the test"
        assert provider.pending_count == 0
