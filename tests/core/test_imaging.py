"""decode: one pass from any file to RGB model input + thumbnail + metadata; the thumbnail cache."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from photos import random_photo
from PIL import Image, ImageFile
from PIL.JpegImagePlugin import JpegImageFile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from corpus import ENDLESS_POSTSCRIPT, png_with_declared_size

from gallery_app.core import imaging
from gallery_app.core.imaging import (
    DECODE_BUDGET_BYTES,
    THUMBNAIL_PX,
    DecodeBudget,
    DecodeError,
    ThumbnailCache,
    content_fingerprint,
    decode,
    decode_cost_bytes,
    file_fingerprint,
    is_image_file,
    to_rgb,
)

WHITE = (255, 255, 255)


def pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def jpeg_bytes(size: tuple[int, int], seed: int = 0, **save_options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(random_photo(seed, size)).save(buffer, format="JPEG", **save_options)
    return buffer.getvalue()


# Image modes -------------------------------------------------------------------------------


def test_rgba_transparent_region_becomes_white(tmp_path: Path) -> None:
    rgba = np.zeros((20, 40, 4), np.uint8)
    rgba[:, :20] = (200, 10, 30, 255)  # opaque red-ish left half
    rgba[:, 20:] = (0, 0, 0, 0)  # fully transparent (black) right half
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)

    result = decode(path)

    assert result.thumbnail.mode == "RGB"
    assert pixel(result.thumbnail, (5, 10)) == (200, 10, 30)
    assert pixel(result.thumbnail, (35, 10)) == WHITE
    # to_rgb on its own does the same.
    direct = to_rgb(Image.fromarray(rgba, "RGBA"))
    assert direct.mode == "RGB"
    assert pixel(direct, (35, 10)) == WHITE


def test_palette_with_transparency_is_composited_over_white(tmp_path: Path) -> None:
    img = Image.new("P", (20, 10), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    img.paste(1, (10, 0, 20, 10))  # right half uses the transparent (blue) entry
    img.info["transparency"] = 1
    path = tmp_path / "palette.png"
    img.save(path)
    assert Image.open(path).mode == "P"

    result = decode(path)

    assert result.thumbnail.mode == "RGB"
    assert pixel(result.thumbnail, (2, 5)) == (255, 0, 0)
    assert pixel(result.thumbnail, (15, 5)) == WHITE  # not the palette's blue


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(path)
    assert Image.open(path).mode == "CMYK"

    seen: list[str] = []
    result = decode(path, model_input=lambda im: seen.append(im.mode) or np.zeros(1, np.float32))

    assert result.thumbnail.mode == "RGB"
    assert seen == ["RGB"]
    assert (result.width, result.height) == (30, 20)


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.zeros((10, 40), np.uint16)
    values[:, 0:10] = 65535
    values[:, 10:20] = 32768
    values[:, 20:30] = 0
    values[:, 30:40] = 256  # just above 8-bit range: must stay dark, not wrap or saturate
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")

    got: list[Image.Image] = []
    decode(path, model_input=lambda im: got.append(im) or np.zeros(1, np.float32))

    rgb = got[0]
    assert rgb.mode == "RGB"
    assert pixel(rgb, (5, 5)) == WHITE
    assert all(abs(c - 128) <= 1 for c in pixel(rgb, (15, 5)))
    assert pixel(rgb, (25, 5)) == (0, 0, 0)
    assert all(c <= 2 for c in pixel(rgb, (35, 5)))


# EXIF --------------------------------------------------------------------------------------


def test_exif_orientation_swaps_size_and_rotates_thumbnail(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (40, 20), (10, 200, 30)).save(path, exif=exif)

    result = decode(path)

    assert (result.width, result.height) == (20, 40)
    thumb_w, thumb_h = result.thumbnail.size
    assert thumb_h > thumb_w  # portrait, as displayed
    assert result.thumbnail.size == (20, 40)


def test_exif_date_taken_is_iso(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2021:07:04 13:45:09"
    dated = tmp_path / "dated.jpg"
    Image.new("RGB", (16, 16)).save(dated, exif=exif)
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (16, 16)).save(plain)

    assert decode(dated).taken_at == "2021-07-04T13:45:09"
    assert decode(plain).taken_at is None


def test_exif_datetime_fallback_when_no_date_original(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[306] = "2019:01:02 03:04:05"
    path = tmp_path / "datetime.jpg"
    Image.new("RGB", (16, 16)).save(path, exif=exif)

    assert decode(path).taken_at == "2019-01-02T03:04:05"


# Reduced-size decode -------------------------------------------------------------------------


def test_large_jpeg_uses_draft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.jpg"
    gradient = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    gradient.save(path, quality=80)

    draft_calls: list[tuple[object, object]] = []
    real_draft = JpegImageFile.draft

    def spy(self, mode, size):  # type: ignore[no-untyped-def]
        draft_calls.append((mode, size))
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    model_sizes: list[tuple[int, int]] = []

    def model_input(im: Image.Image) -> np.ndarray:
        model_sizes.append(im.size)
        return np.zeros(3, np.float32)

    result = decode(path, model_input=model_input)

    assert (result.width, result.height) == (4000, 3000)
    assert max(result.thumbnail.size) <= THUMBNAIL_PX
    assert max(result.thumbnail.size) == THUMBNAIL_PX  # a downscale, not a tiny image
    assert len(draft_calls) == 1
    _, requested = draft_calls[0]
    assert isinstance(requested, tuple)
    assert min(requested) >= 224
    # Draft decoded at a fraction of full size, but never below what the outputs need.
    (width, height) = model_sizes[0]
    assert min(width, height) >= 256
    assert width <= 1000  # 4000 / 8 = 500: the 1/8 draft scale
    assert width / height == pytest.approx(4 / 3, rel=0.02)


def test_model_input_receives_rgb_and_its_result_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(random_photo(3, (64, 48))).save(path)
    marker = np.arange(5, dtype=np.float32)
    received: list[Image.Image] = []

    def model_input(im: Image.Image) -> np.ndarray:
        received.append(im)
        return marker

    result = decode(path, model_input=model_input)

    assert len(received) == 1
    assert received[0].mode == "RGB"
    assert received[0].size == (64, 48)
    assert result.model_input is marker
    assert decode(path).model_input is None


# Broken files ------------------------------------------------------------------------------


def test_random_bytes_are_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())

    with pytest.raises(DecodeError, match="not a recognized image format"):
        decode(path)


def test_truncated_jpeg_is_a_decode_error(tmp_path: Path) -> None:
    data = jpeg_bytes((400, 300), seed=1)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(DecodeError) as info:
        decode(path, model_input=lambda im: np.zeros(1, np.float32))
    message = str(info.value)
    assert "corrupt" in message or "truncated" in message
    assert len(message) > len("corrupt")


def test_truncated_png_is_a_decode_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(random_photo(2, (200, 150))).save(buffer, format="PNG")
    path = tmp_path / "truncated.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])

    with pytest.raises(DecodeError, match=r"\S"):
        decode(path)


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="disappeared"):
        decode(tmp_path / "gone.jpg")


def test_empty_file_and_directory_are_decode_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()

    with pytest.raises(DecodeError, match=r"empty file \(0 bytes\)"):
        decode(empty)
    with pytest.raises(DecodeError, match=r"\S"):
        decode(folder)


# Thumbnail cache ---------------------------------------------------------------------------


def test_thumbnail_cache_round_trip(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    assert cache.size_bytes() == 0
    thumb = Image.fromarray(random_photo(4, (64, 48)))

    assert cache.get("/photos/a.jpg", 111) is None
    written = cache.put("/photos/a.jpg", 111, thumb)

    found = cache.get("/photos/a.jpg", 111)
    assert found == written
    with Image.open(found) as img:
        assert img.format == "JPEG"
        assert img.size == (64, 48)
        img.load()
    assert cache.size_bytes() > 0
    assert cache.size_bytes() == found.stat().st_size


def test_thumbnail_cache_is_keyed_by_mtime_and_path(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    thumb = Image.fromarray(random_photo(5, (32, 32)))
    cache.put("/photos/a.jpg", 1, thumb)

    assert cache.get("/photos/a.jpg", 2) is None
    assert cache.get("/photos/b.jpg", 1) is None
    assert cache.path_for("/photos/a.jpg", 1) != cache.path_for("/photos/a.jpg", 2)

    before = cache.size_bytes()
    cache.put("/photos/a.jpg", 2, thumb)
    assert cache.get("/photos/a.jpg", 2) is not None
    assert cache.get("/photos/a.jpg", 1) is not None
    assert cache.size_bytes() > before


def test_thumbnail_cache_leaves_no_temp_files(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    for i in range(5):
        cache.put(f"/photos/{i}.jpg", i, Image.fromarray(random_photo(i, (16, 16))))
    cache.put("/photos/0.jpg", 0, Image.new("RGB", (8, 8)))  # overwrite an existing entry

    files = [p for p in (tmp_path / "thumbs").rglob("*") if p.is_file()]
    assert len(files) == 5
    assert not list((tmp_path / "thumbs").rglob("*.tmp"))
    assert all(p.suffix == ".jpg" for p in files)


# File types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_0001.JPG", True),
        ("holiday.png", True),
        ("scan.TIFF", True),
        ("notes.txt", False),
        ("archive.jpg.zip", False),
        ("no_extension", False),
    ],
)
def test_is_image_file(name: str, expected: bool) -> None:
    assert is_image_file(name) is expected
    assert is_image_file(Path("/some/folder") / name) is expected


def test_draft_decoded_model_input_has_the_model_size_and_matches_a_full_decode(
    tmp_path: Path,
) -> None:
    from gallery_app.core.embeddings import ImageSpec

    spec = ImageSpec(224, 224, 3, 1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    path = tmp_path / "camera.jpg"
    Image.fromarray(random_photo(7, (4000, 3000))).save(path, quality=90)

    result = decode(path, model_input=spec.to_model_input)

    assert result.model_input is not None
    assert result.model_input.shape == (3, 224, 224)
    assert result.model_input.dtype == np.float32
    with Image.open(path) as full:
        reference = spec.to_model_input(full.convert("RGB"))
    # The 1/8 DCT-scaled decode is a downscale too: the model sees nearly the same pixels.
    assert float(np.abs(result.model_input - reference).mean()) < 0.02


# Hostile files: only photo decoders, only regular files, only within the memory budget -----


def test_postscript_named_jpg_is_refused_and_ghostscript_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake `gs` first on PATH leaves a marker if anything ever runs Ghostscript.
    bin_dir, marker = tmp_path / "bin", tmp_path / "gs-ran"
    bin_dir.mkdir()
    fake_gs = bin_dir / "gs"
    fake_gs.write_text(f"#!/bin/sh\necho \"$@\" >> '{marker}'\necho 10.0\n")
    fake_gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # found afresh on PATH
    path = tmp_path / "holiday.jpg"
    path.write_bytes(ENDLESS_POSTSCRIPT)

    with pytest.raises(DecodeError, match=r"^PostScript/EPS file named \.jpg: not a photo$"):
        decode(path)
    assert not marker.exists()

    # The marker works: Pillow left to itself hands this very file to the fake Ghostscript.
    with contextlib.suppress(Exception), Image.open(path) as img:
        img.load()
    assert marker.exists()


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("EPS", "a.jpg"), ("DDS", "b.png"), ("PCX", "c.png"), ("PPM", "d.jpg"), ("TGA", "e.bmp"),
     ("ICO", "f.png"), ("SGI", "g.tif")],
)  # fmt: skip
def test_formats_pillow_reads_but_photos_are_not_are_refused(
    tmp_path: Path, fmt: str, name: str
) -> None:
    path = tmp_path / name
    Image.fromarray(random_photo(1, (32, 24))).save(path, format=fmt)
    with Image.open(path) as img:  # Pillow itself would open it
        assert img.format == fmt
    with pytest.raises(DecodeError) as info:
        decode(path)
    reason = str(info.value)
    assert reason in (
        "not a recognized image format",
        f"PostScript/EPS file named {path.suffix}: not a photo",
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"%PDF-1.7\n...", "PDF document named .jpg: not a photo"),
        (b"<!DOCTYPE html><title>404</title>", "web page (HTML) named .jpg: not a photo"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "HEIC photo named .jpg: this format is not "
         "supported; convert it to JPEG"),
        (b"PK\x03\x04" + bytes(40), "ZIP archive named .jpg: not a photo"),
    ],
)  # fmt: skip
def test_refused_file_is_named_by_what_it_is(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(DecodeError) as info:
        decode(path)
    assert str(info.value) == reason


def test_every_allowed_format_still_decodes(tmp_path: Path) -> None:
    photo = Image.fromarray(random_photo(2, (40, 30)))
    for fmt in imaging.DECODER_FORMATS:
        path = tmp_path / f"photo.{fmt.lower()}"
        photo.save(path, format=fmt)
        assert decode(path).thumbnail.size == (40, 30), fmt


def run_with_deadline(function, seconds: float = 30.0):
    """Run function in a thread; fail (instead of hanging the suite) if it does not return."""
    outcome: list[BaseException | object] = []

    def target() -> None:
        try:
            outcome.append(function())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function} blocked"
    return outcome[0]


def test_named_pipe_and_device_are_refused_without_reading(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.jpg"
    os.mkfifo(pipe)
    endless = tmp_path / "zero.jpg"
    endless.symlink_to("/dev/zero")

    for path, kind in ((pipe, "a named pipe"), (endless, "a device")):
        outcome = run_with_deadline(lambda path=path: decode(path))
        assert isinstance(outcome, DecodeError)
        assert str(outcome) == f"not a regular file ({kind}); only photo files are read"
        assert outcome.unreadable


def test_regular_file_check_is_made_on_the_open_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photo swapped for a pipe between the check by name and the open must not block."""
    photo = tmp_path / "photo.png"
    Image.fromarray(random_photo(3)).save(photo)
    pipe = tmp_path / "swapped.png"
    os.mkfifo(pipe)
    real_stat = os.stat
    monkeypatch.setattr(
        imaging.os, "stat", lambda p, *a, **k: real_stat(photo if p == pipe else p, *a, **k)
    )
    outcome = run_with_deadline(lambda: decode(pipe))
    assert isinstance(outcome, DecodeError)
    assert "a named pipe" in str(outcome)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # as imaging does
def test_huge_png_is_refused_from_its_header_before_any_pixel_is_allocated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_with_declared_size(13_000, 13_000, color_type=6))  # RGBA, 1 KB
    assert Image.MAX_IMAGE_PIXELS * 2 > 13_000 * 13_000  # Pillow's own limit lets it through
    loads: list[object] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: loads.append(self) or real_load(self)
    )

    with pytest.raises(DecodeError) as info:
        decode(path)

    assert loads == []  # refused from the header: no pixel buffer was ever made
    reason = str(info.value)
    assert reason.startswith("too large to decode: 13000x13000 pixels (RGBA) need about 1.3 GiB")
    assert f"over the {DECODE_BUDGET_BYTES >> 30}.0 GiB decode budget" in reason
    assert "save a smaller copy" in reason


def test_budget_counts_the_jpeg_draft_size_not_the_full_size(tmp_path: Path) -> None:
    photo = Image.fromarray(random_photo(5, (4000, 3000)))
    jpeg, png = tmp_path / "big.jpg", tmp_path / "big.png"
    photo.save(jpeg, quality=80)
    photo.save(png)
    budget = DecodeBudget(8 << 20)  # 8 MiB: 12 MP at 4 bytes a pixel is 46 MiB

    assert decode(jpeg, budget=budget).width == 4000  # draft decodes it at 1/8: 0.7 MiB
    with pytest.raises(DecodeError, match=r"4000x3000 pixels \(RGB\) need about 46 MiB"):
        decode(png, budget=budget)


@pytest.mark.parametrize(
    ("mode", "per_pixel"),
    [("RGB", 4), ("L", 5), ("P", 5), ("RGBA", 8), ("LA", 12), ("CMYK", 8), ("I;16", 26)],
)
def test_decode_cost_counts_the_frame_and_the_conversion_to_rgb(mode: str, per_pixel: int) -> None:
    assert decode_cost_bytes(Image.new(mode, (100, 50))) == 100 * 50 * per_pixel
    rotated = decode_cost_bytes(Image.new(mode, (100, 50)), transposed=True)
    frame = {"L": 1, "P": 1, "I;16": 2}.get(mode, 4)
    assert rotated == 100 * 50 * (per_pixel + frame)  # the rotated copy


def test_decode_budget_is_shared_and_waits_for_memory_to_be_released() -> None:
    budget = DecodeBudget(1000)
    acquired = threading.Event()

    def second() -> None:
        with budget.reserve(600):
            acquired.set()

    with budget.reserve(600):
        thread = threading.Thread(target=second)
        thread.start()
        deadline = threading.Event()
        while budget.waiting == 0 and thread.is_alive():
            deadline.wait(0.01)  # until the second decode is waiting on the condition
        assert budget.waiting == 1
        assert not acquired.is_set()
    thread.join(10)
    assert acquired.is_set() and budget.waiting == 0
    with budget.reserve(400), budget.reserve(600):  # both fit: no wait
        pass


def test_fingerprint_tells_a_same_size_replacement_apart(tmp_path: Path) -> None:
    first, second = tmp_path / "a.bmp", tmp_path / "b.bmp"
    Image.fromarray(random_photo(1, (300, 300))).save(first)
    Image.fromarray(random_photo(2, (300, 300))).save(second)
    assert first.stat().st_size == second.stat().st_size > 2 * imaging.FINGERPRINT_BLOCK
    assert file_fingerprint(first) != file_fingerprint(second)
    assert file_fingerprint(first) == decode(first).fingerprint
    with open(first, "rb") as handle:
        assert content_fingerprint(handle, first.stat().st_size) == file_fingerprint(first)
