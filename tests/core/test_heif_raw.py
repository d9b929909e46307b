"""HEIC/HEIF (pillow-heif) and camera RAW (rawpy) as optional extras: decoded when installed,
reported per file with the pip command when not, never a crash."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from dng import tiny_dng
from photos import random_photo
from PIL import Image

from gallery_app.core import imaging
from gallery_app.core.imaging import HEIF_MISSING, RAW_MISSING, DecodeError, decode, is_image_file
from gallery_app.core.indexer import Indexer

pillow_heif = pytest.importorskip("pillow_heif")
rawpy = pytest.importorskip("rawpy")


@pytest.fixture(autouse=True)
def fresh_decoder_formats():
    """decoder_formats() looks for pillow-heif once; each test looks again."""
    imaging.decoder_formats.cache_clear()
    yield
    imaging.decoder_formats.cache_clear()


@pytest.fixture
def without(monkeypatch):
    """Hide an installed module: importing it raises ImportError, as when it is missing."""

    def hide(name: str) -> None:
        monkeypatch.setitem(sys.modules, name, None)

    return hide


def _heic_bytes(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    img = Image.fromarray(random_photo(seed, size))
    buffer = io.BytesIO()
    pillow_heif.from_pillow(img).save(buffer, quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["photo.heic", "photo.HEIF", "named-wrong.jpg"])
def test_heic_is_decoded_by_content(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(_heic_bytes(size=(80, 60)))
    decoded = decode(path, model_input=lambda rgb: np.asarray(rgb, np.float32))
    assert (decoded.width, decoded.height) == (80, 60)
    assert decoded.thumbnail.size == (80, 60) and decoded.thumbnail.mode == "RGB"
    # Real pixels, not a blank frame: close to what was encoded (lossy).
    original = random_photo(0, (80, 60)).astype(np.float32)
    assert decoded.model_input is not None
    assert np.abs(decoded.model_input - original).mean() < 12


def test_heic_without_the_extra_names_the_extra(tmp_path, without):
    without("pillow_heif")
    path = tmp_path / "photo.heic"
    path.write_bytes(_heic_bytes())
    assert "HEIF" not in imaging.decoder_formats()
    with pytest.raises(DecodeError) as caught:
        decode(path)
    assert str(caught.value) == HEIF_MISSING
    assert "pip install 'gallery-app[heif]'" in HEIF_MISSING


def test_the_indexer_reports_each_heic_when_the_extra_is_missing(
    encoder, library, tmp_path, without
):
    without("pillow_heif")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.heic").write_bytes(_heic_bytes(1))
    Image.fromarray(random_photo(2)).save(folder / "b.png")
    report = Indexer(library, encoder).index([folder])
    assert report.indexed == 1
    assert [(f.path.endswith("a.heic"), f.reason) for f in report.failed] == [(True, HEIF_MISSING)]


def test_the_scanner_lists_heif_and_raw_names():
    for ext in (".heic", ".HEIF", ".avif", ".cr2", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2"):
        assert is_image_file(f"photo{ext}"), ext


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_raw_uses_its_embedded_preview(tmp_path):
    path = tmp_path / "shot.dng"
    path.write_bytes(tiny_dng(64, 48, preview_jpeg=_jpeg((200, 30, 30), (64, 48))))
    decoded = decode(path, model_input=lambda rgb: np.asarray(rgb, np.float32))
    assert (decoded.width, decoded.height) == (64, 48)
    assert decoded.model_input is not None
    # The preview's red, not the developed mosaic's grey-green.
    red, green, blue = decoded.model_input.reshape(-1, 3).mean(axis=0)
    assert red > 180 and green < 60 and blue < 60


def test_raw_without_a_preview_is_developed_at_half_size(tmp_path):
    path = tmp_path / "shot.dng"
    path.write_bytes(tiny_dng(64, 48))
    decoded = decode(path)
    assert (decoded.width, decoded.height) == (64, 48)  # the photo's size, not the half size
    assert decoded.thumbnail.size == (32, 24)


def test_raw_without_the_extra_names_the_extra(tmp_path, without):
    without("rawpy")
    path = tmp_path / "shot.nef"
    path.write_bytes(tiny_dng(64, 48))
    with pytest.raises(DecodeError) as caught:
        decode(path)
    assert str(caught.value) == RAW_MISSING
    assert "pip install 'gallery-app[raw]'" in RAW_MISSING


def test_a_file_named_raw_that_is_not_one_is_reported(tmp_path):
    path = tmp_path / "fake.cr2"
    path.write_bytes(b"not a raw file at all" * 100)
    with pytest.raises(DecodeError) as caught:
        decode(path)
    assert "not a RAW photo rawpy can read" in str(caught.value)


def test_a_truncated_raw_is_reported(tmp_path):
    path = tmp_path / "cut.dng"
    path.write_bytes(tiny_dng(64, 48)[:300])
    with pytest.raises(DecodeError):
        decode(path)
