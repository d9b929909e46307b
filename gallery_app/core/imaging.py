"""One decode per file: the model input, a thumbnail and the metadata, from any image mode."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

# A photo with a damaged EXIF block is still a photo: Pillow warns and reads what it can, and
# we index it without a date. The warning names no file and nobody can act on it, so it is
# silenced here once (catch_warnings is not thread-safe, and decoding runs in a pool).
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
)
THUMBNAIL_PX = 256
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_DATETIME = 306

ModelInputFn = Callable[[Image.Image], npt.NDArray[np.float32]]


class DecodeError(Exception):
    """A file that cannot be turned into an image; the message is the reason shown to users."""


@dataclass
class DecodedImage:
    width: int  # of the original, after EXIF orientation
    height: int
    taken_at: str | None
    model_input: npt.NDArray[np.float32] | None
    thumbnail: Image.Image


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def decode(
    path: str | os.PathLike[str],
    model_input: ModelInputFn | None = None,
    model_px: int = 224,
    thumbnail_px: int = THUMBNAIL_PX,
) -> DecodedImage:
    """Decode once at reduced size (JPEG draft), orient, convert to RGB, derive both outputs."""
    try:
        with Image.open(path) as img:
            taken_at = _exif_date(img)
            width, height = img.size
            # JPEG draft decodes at 1/2, 1/4 or 1/8 scale, never below the requested size.
            wanted = max(model_px, thumbnail_px)
            img.draft("RGB", (wanted, wanted))
            orientation = img.getexif().get(0x0112, 1)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            rgb = to_rgb(ImageOps.exif_transpose(img))
    except FileNotFoundError as exc:
        raise DecodeError("file disappeared before it could be read") from exc
    except PermissionError as exc:
        raise DecodeError("permission denied") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        reason = (
            "not a recognized image format"
            if isinstance(exc, UnidentifiedImageError)
            else (f"image too large to decode safely ({_short(exc)})")
        )
        if isinstance(exc, UnidentifiedImageError) and _is_empty(path):
            reason = "empty file (0 bytes): perhaps a copy that never finished"
        raise DecodeError(reason) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated or corrupt data as OSError/SyntaxError/ValueError.
        raise DecodeError(f"corrupt or unreadable image data ({_short(exc)})") from exc
    thumbnail = rgb.copy()
    thumbnail.thumbnail((thumbnail_px, thumbnail_px), Image.Resampling.BICUBIC)
    return DecodedImage(
        width=width,
        height=height,
        taken_at=taken_at,
        model_input=model_input(rgb) if model_input is not None else None,
        thumbnail=thumbnail,
    )


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: transparency over white, CMYK, 16-bit and float scaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _exif_date(img: Image.Image) -> str | None:
    try:
        exif = img.getexif()
        value = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
    except Exception:  # malformed EXIF must not fail the image
        return None
    if not isinstance(value, str) or len(value) < 19:
        return None
    date, _, clock = value.strip().partition(" ")
    iso = f"{date.replace(':', '-')}T{clock[:8]}"
    return iso if iso[:4].isdigit() else None


def _is_empty(path: str | os.PathLike[str]) -> bool:
    try:
        return os.stat(path).st_size == 0
    except OSError:
        return False


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


class ThumbnailCache:
    """JPEG thumbnails on disk keyed by (path, mtime), written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, image_path: str, mtime_ns: int) -> Path:
        # fsencode, not encode: a name that is not valid UTF-8 (surrogate-escaped) is still a
        # file, and its key must be its real bytes (same key as encode() for every valid name).
        key = hashlib.sha1(os.fsencode(image_path) + f"\0{mtime_ns}".encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.jpg"

    def get(self, image_path: str, mtime_ns: int) -> Path | None:
        path = self.path_for(image_path, mtime_ns)
        return path if path.exists() else None

    def put(self, image_path: str, mtime_ns: int, thumbnail: Image.Image) -> Path:
        target = self.path_for(image_path, mtime_ns)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        thumbnail.save(buffer, format="JPEG", quality=85)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(buffer.getvalue())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def size_bytes(self) -> int:
        return self.stats().size_bytes

    def _entries(self) -> list[Path]:
        """Files this cache wrote: <2 hex>/<sha1>.jpg (and temp files a crash left behind);
        nothing else, so a cache folder pointed at by mistake loses nothing but thumbnails."""
        if not self.folder.is_dir():
            return []
        found = []
        for shard in self.folder.iterdir():
            if len(shard.name) == 2 and shard.is_dir() and not shard.is_symlink():
                found += [p for p in shard.iterdir() if p.suffix in (".jpg", ".tmp")]
        return found

    def stats(self) -> CacheStats:
        files = size = 0
        for entry in self._entries():
            try:
                size += entry.stat().st_size
            except OSError:  # removed meanwhile by a writer's os.replace or another clear
                continue
            files += 1
        return CacheStats(files, size)

    def clear(self) -> CacheStats:
        """Delete every cached thumbnail; returns what was removed. They are made again from
        the originals when next shown (or by `gallery-app cache rebuild`). Raises the first
        OSError (read-only folder, permission) after trying every file."""
        files = size = 0
        refused: OSError | None = None
        for entry in self._entries():
            try:
                entry_size = entry.stat().st_size
                entry.unlink()
            except FileNotFoundError:  # removed meanwhile by another clear
                continue
            except OSError as exc:
                refused = refused or exc
                continue
            files += 1
            size += entry_size
        for shard in self.folder.iterdir() if self.folder.is_dir() else []:
            if len(shard.name) == 2 and shard.is_dir():
                with contextlib.suppress(OSError):  # not empty: someone wrote meanwhile
                    shard.rmdir()
        if refused is not None:
            raise refused
        return CacheStats(files, size)

    def ensure(self, image_path: str, mtime_ns: int) -> bool:
        """Make the thumbnail from the original if it is not cached; True if one was made.
        Raises DecodeError when the original cannot be read."""
        if self.get(image_path, mtime_ns) is not None:
            return False
        decoded = decode(image_path)
        self.put(image_path, mtime_ns, decoded.thumbnail)
        return True


@dataclass(frozen=True)
class CacheStats:
    files: int
    size_bytes: int
