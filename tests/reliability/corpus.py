"""Messy folders on demand: every kind of bad file the reliability tests and stress script use.

Each maker writes one file (or link, or folder) and says what the indexer must do with it:
INDEXED (searchable), FAILED (listed in the report with a reason), EITHER (a partial image
may decode or fail, but must be one of the two) or SKIPPED (not a file: never indexed, never
reported, e.g. a folder named like an image).
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

INDEXED = "indexed"
FAILED = "failed"
EITHER = "either"
SKIPPED = "skipped"


def random_photo(seed: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """Smooth gradients plus a blob, different for every seed (a stand-in for a photo)."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    slope = rng.uniform(-3, 3, (3, 2))
    channels = [rng.uniform(0, 255) + slope[c, 0] * x + slope[c, 1] * y for c in range(3)]
    cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, 16)
    blob = ((x - cx) ** 2 + (y - cy) ** 2 < r**2)[..., None] * rng.uniform(-120, 120, 3)
    return np.clip(np.stack(channels, axis=-1) + blob, 0, 255).astype(np.uint8)


def photo(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.fromarray(random_photo(seed, size))


def encoded(img: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_with_declared_size(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG header declaring width x height pixels, followed by a few bytes of zeros
    (color_type 2 is RGB, 6 is RGBA)."""
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    data = zlib.compress(b"\0" * 4096)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


@functools.cache
def huge_transparent_png(side: int = 13_000) -> bytes:
    """A complete, valid side x side RGBA PNG (all transparent): ~3 MB on disk, 676 MB as
    pixels, more to convert. Made row by row, so making it needs no such memory."""
    compressor = zlib.compressobj(1)
    row = b"\0" * (1 + side * 4)  # filter byte + RGBA pixels
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


# An EPS whose program never ends: Ghostscript, if it ever ran, would spin on it forever.
ENDLESS_POSTSCRIPT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ } loop\n"
FAR_FUTURE_S = 2**40  # year ~36812: mtime_ns beyond SQLite's 64-bit INTEGER (year 2262)


def jpeg_with_corrupt_exif(seed: int) -> bytes:
    """A valid JPEG whose APP1 Exif segment is garbage (bad offsets, bad IFD counts)."""
    data = encoded(photo(seed), "JPEG", quality=90)
    garbage = b"Exif\0\0" + b"MM\0\x2a\0\0\0\x08" + b"\xff\xff" + os.urandom(64)
    app1 = b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage
    return data[:2] + app1 + data[2:]


def animated(fmt: str, seeds: tuple[int, int]) -> bytes:
    frames = [photo(seed) for seed in seeds]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


Maker = Callable[[Path, int], str]


def _write(name: str, content: Callable[[int], bytes], expect: str) -> Maker:
    def make(folder: Path, seed: int) -> str:
        (folder / name).write_bytes(content(seed))
        return expect

    make.__name__ = name
    return make


def _zero(_: int) -> bytes:
    return b""


def _truncated(fmt: str) -> Callable[[int], bytes]:
    def make(seed: int) -> bytes:
        data = encoded(photo(seed, (160, 120)), fmt)
        return data[: len(data) // 2]

    return make


def _cmyk_jpeg(seed: int) -> bytes:
    return encoded(photo(seed).convert("CMYK"), "JPEG")


def _png16(seed: int) -> bytes:
    gray = (random_photo(seed)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    return encoded(Image.fromarray(gray), "PNG")  # uint16 -> mode I;16


def _palette_alpha(seed: int) -> bytes:
    img = photo(seed).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encoded(img, "PNG", transparency=0)


def _exif_orientation_out_of_range(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 99
    return encoded(photo(seed), "JPEG", exif=exif.tobytes())


def _directory_named_like_an_image(folder: Path, seed: int) -> str:
    (folder / "album.jpg").mkdir()
    photo(seed).save(folder / "album.jpg" / "inside.png")
    return SKIPPED  # the folder itself; the photo inside is indexed (checked by the tests)


def _link(name: str, target: str) -> Maker:
    def make(folder: Path, seed: int) -> str:
        (folder / name).symlink_to(target)
        return FAILED

    make.__name__ = name
    return make


def _symlink_loop(folder: Path, seed: int) -> str:
    (folder / "loop_a.jpg").symlink_to("loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to("loop_a.jpg")
    (folder / "loop_dir").symlink_to(".")  # a folder loop: must not be walked forever
    return FAILED


def _far_future(folder: Path, seed: int) -> str:
    path = folder / "far_future.jpg"
    path.write_bytes(encoded(photo(seed), "JPEG"))
    try:
        os.utime(path, (FAR_FUTURE_S, FAR_FUTURE_S))
    except (OSError, OverflowError):
        return INDEXED  # the filesystem refuses such dates: then it is an ordinary photo
    # Some filesystems clamp (ext4 to 2446): still past 2262, so still out of range.
    return FAILED if os.stat(path).st_mtime_ns > 2**63 - 1 else INDEXED


def _fifo(folder: Path, seed: int) -> str:
    # Opening a named pipe for reading blocks until a writer comes: it must never be opened.
    os.mkfifo(folder / "pipe.jpg")
    return FAILED


def _name(name: str | bytes) -> Maker:
    def make(folder: Path, seed: int) -> str:
        target = (
            os.path.join(os.fsencode(folder), name) if isinstance(name, bytes) else folder / name
        )
        photo(seed).save(target, format="PNG")
        return INDEXED

    make.__name__ = repr(name)
    return make


MAKERS: list[Maker] = [
    _write("zero_bytes.jpg", _zero, FAILED),
    _write("zero_bytes.png", _zero, FAILED),
    _write("truncated.jpg", _truncated("JPEG"), EITHER),
    _write("truncated.png", _truncated("PNG"), EITHER),
    _write("random_bytes.jpg", lambda s: np.random.default_rng(s).bytes(2048), FAILED),
    _write("random_bytes.webp", lambda s: np.random.default_rng(s).bytes(777), FAILED),
    _write("html_download.jpg", lambda s: b"<!doctype html><title>404</title>" * 20, FAILED),
    _write("jpeg_header_only.jpg", lambda s: b"\xff\xd8\xff\xe0\0\x10JFIF\0", FAILED),
    _write("bomb.png", lambda s: png_with_declared_size(60_000, 60_000), FAILED),
    _write("tall_1x20000.png", lambda s: encoded(photo(s, (1, 20_000)), "PNG"), INDEXED),
    _write("wide_20000x1.png", lambda s: encoded(photo(s, (20_000, 1)), "PNG"), INDEXED),
    _write("cmyk.jpg", _cmyk_jpeg, INDEXED),
    _write("gray16.png", _png16, INDEXED),
    _write("palette_alpha.png", _palette_alpha, INDEXED),
    _write("animated.gif", lambda s: animated("GIF", (s, s + 1)), INDEXED),
    _write("animated.webp", lambda s: animated("WEBP", (s, s + 1)), INDEXED),
    _write("corrupt_exif.jpg", jpeg_with_corrupt_exif, INDEXED),
    _write("odd_orientation.jpg", _exif_orientation_out_of_range, INDEXED),
    _write("png_inside.jpg", lambda s: encoded(photo(s), "PNG"), INDEXED),
    _write("UPPER_CASE.JPG", lambda s: encoded(photo(s), "JPEG"), INDEXED),
    _write("Mixed.Png", lambda s: encoded(photo(s), "PNG"), INDEXED),
    _directory_named_like_an_image,
    _link("broken_link.jpg", "does-not-exist.jpg"),
    _symlink_loop,
    _link("dev_zero.jpg", "/dev/zero"),  # endless: must never be read
    _fifo,
    _far_future,
    _write("endless_postscript.jpg", lambda s: ENDLESS_POSTSCRIPT, FAILED),
    _write(
        "document.png", lambda s: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", FAILED
    ),
    _write("huge_transparent.png", lambda s: huge_transparent_png(), FAILED),
    _name("café ☕ 日本.png"),
    _name("with  spaces .png"),
    _name("new\nline.png"),
    _name(b"latin1-caf\xe9.png"),  # not valid UTF-8: old zip archives, Windows shares
]


def make_messy_folder(folder: Path, seed: int = 0) -> dict[str, str]:
    """Write every bad-file case into folder; returns {path: expectation} for files (not links
    to folders). Paths are str (os.fsdecode), as the indexer reports them."""
    folder.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(os.fsencode(folder)))
    expected: dict[str, str] = {}
    for offset, make in enumerate(MAKERS):
        outcome = make(folder, seed + offset)
        added = set(os.listdir(os.fsencode(folder))) - before
        before |= added
        for raw in added:
            path = os.fsdecode(os.path.join(os.fsencode(folder), raw))
            if raw == b"loop_dir" or os.path.isdir(path):
                continue  # folders are walked (or, for links, not followed), never reported
            expected[path] = outcome
    return expected
