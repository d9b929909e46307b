"""The viewer shows photos Qt cannot read itself (HEIC, RAW) through the app's decoder."""

from __future__ import annotations

import io
import sys

import pytest
from photos import random_photo
from PIL import Image

from gallery_app.core import imaging
from gallery_app.ui.grid_model import GridItem
from gallery_app.ui.viewer import Viewer

pillow_heif = pytest.importorskip("pillow_heif")


@pytest.fixture(autouse=True)
def fresh_decoder_formats():
    imaging.decoder_formats.cache_clear()
    yield
    imaging.decoder_formats.cache_clear()


def _heic(path, size=(80, 60)):
    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(random_photo(5, size))).save(buffer, quality=90)
    path.write_bytes(buffer.getvalue())
    return path


def test_the_viewer_shows_a_heic(qtbot, tmp_path):
    viewer = Viewer()
    qtbot.addWidget(viewer)
    viewer.resize(800, 600)
    viewer.show_items([GridItem(1, str(_heic(tmp_path / "a.heic")), 0)], 0)
    viewer.set_zoom(1.0)
    assert (viewer.shown_size().width(), viewer.shown_size().height()) == (80, 60)


def test_without_the_extra_the_viewer_says_which_to_install(qtbot, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    path = _heic(tmp_path / "a.heic")
    viewer = Viewer()
    qtbot.addWidget(viewer)
    viewer.show_items([GridItem(1, str(path), 0)], 0)
    assert viewer.picture.text() == f"Cannot show this image: {imaging.HEIF_MISSING}"
