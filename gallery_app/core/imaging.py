"""One decode per file: the model input, a thumbnail and the metadata, from any image mode."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import stat
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from gallery_app.core.fileio import not_a_photo_file

# A photo with a damaged EXIF block is still a photo: Pillow warns and reads what it can, and
# we index it without a date. The warning names no file and nobody can act on it, so it is
# silenced here once (catch_warnings is not thread-safe, and decoding runs in a pool).
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
# Pillow warns past 89 megapixels; the decode budget below is what decides (and says why).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
)
# The only Pillow decoders a file is ever handed to, whatever its name or content. Pillow
# otherwise opens by content, and some of its plugins run external programs (EPS/PS/PDF go to
# Ghostscript, which loops forever on `{ } loop`): untrusted files never reach those. JPEG
# includes MPO (multi-picture camera files), which Pillow's JPEG opener recognises itself.
DECODER_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
# The most memory decoding may hold at once in one process, over all threads (the indexer's
# pool, the grid's thumbnails): each decode reserves its estimate (`decode_cost_bytes`) before
# Pillow allocates anything and waits while others hold the rest. A file whose estimate alone
# is over it is refused with a reason. 1 GiB decodes a 100-megapixel RGB photo (~0.8 GiB with
# its working copy); JPEGs are estimated at their reduced (draft) size, so a JPEG of any size
# fits. A 13000x13000 RGBA PNG (0.7 MB on disk) would need 1.3 GiB and is refused.
DECODE_BUDGET_BYTES = 1 << 30
THUMBNAIL_PX = 256
FINGERPRINT_BLOCK = 64 * 1024  # bytes read at each end of a file for its content fingerprint
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_DATETIME = 306
_ORIENTATION = 0x0112

ModelInputFn = Callable[[Image.Image], npt.NDArray[np.float32]]


class DecodeError(Exception):
    """A file that cannot be turned into an image; the message is the reason shown to users.

    unreadable=True when the file could not be read at all (gone, permission, I/O error, no
    longer a regular file): that says nothing about its content, so what was indexed from it
    before is kept. False when its content was read and is not a photo we can decode.
    """

    def __init__(self, reason: str, unreadable: bool = False) -> None:
        super().__init__(reason)
        self.unreadable = unreadable


@dataclass
class DecodedImage:
    width: int  # of the original, after EXIF orientation
    height: int
    taken_at: str | None
    model_input: npt.NDArray[np.float32] | None
    thumbnail: Image.Image
    fingerprint: str | None = None  # content_fingerprint of the bytes decoded


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


@contextlib.contextmanager
def open_regular_file(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """A binary handle on path, only if it is a regular file, checked on the open descriptor.

    A name checked before opening can be swapped for a named pipe (opening it would block until
    something writes), a device (/dev/zero never ends) or a socket between the check and the
    open; O_NONBLOCK makes the open itself return at once for a pipe, and fstat says what was
    really opened. Raises DecodeError (unreadable=True) with the reason.
    """
    try:
        # Refuse devices before opening them at all: opening some has side effects.
        _require_regular(os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise DecodeError("file disappeared before it could be read", unreadable=True) from exc
    except PermissionError as exc:
        raise DecodeError("permission denied", unreadable=True) from exc
    except OSError as exc:
        raise DecodeError(_os_reason(exc), unreadable=True) from exc
    try:
        info = os.fstat(fd)
        _require_regular(info)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle, info


def _require_regular(info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    raise DecodeError(not_a_photo_file(info.st_mode), unreadable=True)


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENXIO:
        return "not a regular file (a socket or a device); only photo files are read"
    return f"cannot read file ({exc.strerror or _short(exc)})"


def content_fingerprint(handle: BinaryIO, size: int) -> str:
    """A cheap content check: a hash of the size and the first and last FINGERPRINT_BLOCK
    bytes. Tells a file replaced in place (same size and mtime) from the one indexed."""
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    fd = handle.fileno()
    digest.update(os.pread(fd, FINGERPRINT_BLOCK, 0))
    if size > FINGERPRINT_BLOCK:
        digest.update(
            os.pread(fd, FINGERPRINT_BLOCK, max(FINGERPRINT_BLOCK, size - FINGERPRINT_BLOCK))
        )
    return digest.hexdigest()


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """content_fingerprint of a file on disk; raises DecodeError when it cannot be read."""
    with open_regular_file(path) as (handle, info):
        try:
            return content_fingerprint(handle, info.st_size)
        except OSError as exc:
            raise DecodeError(_os_reason(exc), unreadable=True) from exc


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str]) -> Iterator[tuple[ImageFile.ImageFile, BinaryIO]]:
    """Open a regular file with the allowed decoders only (DECODER_FORMATS); pixels are not
    read yet. Raises DecodeError naming what the file is when it is not one of them."""
    with open_regular_file(path) as (handle, info):
        if info.st_size == 0:
            raise DecodeError("empty file (0 bytes): perhaps a copy that never finished")
        try:
            img = Image.open(handle, formats=DECODER_FORMATS)
        except UnidentifiedImageError as exc:
            raise DecodeError(_unrecognized_reason(path, handle)) from exc
        except Image.DecompressionBombError as exc:
            raise DecodeError(f"image too large to decode safely ({_short(exc)})") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise DecodeError(f"corrupt or unreadable image data ({_short(exc)})") from exc
        with img:
            yield img, handle


# Files people find named like photos, by their first bytes: the reason then says what it is.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"%!PS", 0, "PostScript/EPS file"),
    (b"\xc5\xd0\xd3\xc6", 0, "PostScript/EPS file"),
    (b"%PDF", 0, "PDF document"),
    (b"8BPS", 0, "Photoshop (PSD) file"),
    (b"PK\x03\x04", 0, "ZIP archive"),
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG 2000 image"),
    (b"\xffO\xffQ", 0, "JPEG 2000 image"),
    (b"ftypheic", 4, "HEIC photo"),
    (b"ftypheix", 4, "HEIC photo"),
    (b"ftypmif1", 4, "HEIF photo"),
    (b"ftypavif", 4, "AVIF image"),
    (b"ftyp", 4, "video or other media file"),
)


def _unrecognized_reason(path: str | os.PathLike[str], handle: BinaryIO) -> str:
    try:
        head = os.pread(handle.fileno(), 512, 0)
    except OSError:
        head = b""
    ext = os.path.splitext(os.fsdecode(path))[1] or "without an extension"
    kind = next((name for magic, at, name in _SIGNATURES if head[at:].startswith(magic)), None)
    text = head.lstrip().lower()
    if kind is None and (text.startswith(b"<!doctype html") or text.startswith(b"<html")):
        kind = "web page (HTML)"
    if kind is None and (
        text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)
    ):
        kind = "SVG drawing"
    if kind is None:
        return "not a recognized image format"
    if kind in ("HEIC photo", "HEIF photo", "AVIF image", "JPEG 2000 image"):
        return f"{kind} named {ext}: this format is not supported; convert it to JPEG"
    return f"{kind} named {ext}: not a photo"


def decode_cost_bytes(img: Image.Image, transposed: bool = False) -> int:
    """Memory one decode holds at its peak, from the header (after any draft reduction): the
    frame as Pillow stores it, plus the working copies that rotating and converting it to RGB
    make. A deliberate over-estimate: what must never happen is to under-estimate."""
    width, height = img.size
    mode = img.mode
    frame = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    per_pixel = frame * (2 if transposed else 1)
    if mode in ("I", "F") or mode.startswith("I;16"):
        per_pixel += 24  # scaled through numpy: a byte copy, two float32 arrays, L and RGB
    elif mode in ("LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        per_pixel += 8  # RGBA copy, then the white background it is pasted onto
    elif mode != "RGB":
        per_pixel += 4  # the RGB conversion (or, for RGBA, the white background)
    if img.format in ("WEBP", "TIFF"):
        per_pixel += 4  # libwebp and libtiff decode into a buffer of their own, then copy
    return width * height * per_pixel


class DecodeBudget:
    """Bytes of decode memory shared by every decode in the process (DECODE_BUDGET_BYTES)."""

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self._used = 0
        self.waiting = 0  # decodes waiting for memory now
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, cost: int) -> Iterator[None]:
        """Hold cost bytes while decoding, waiting until they are free (cost <= total)."""
        with self._changed:
            while self._used and self._used + cost > self.total_bytes:
                self.waiting += 1
                try:
                    self._changed.wait()
                finally:
                    self.waiting -= 1
            self._used += cost
        try:
            yield
        finally:
            with self._changed:
                self._used -= cost
                self._changed.notify_all()


DECODE_BUDGET = DecodeBudget(DECODE_BUDGET_BYTES)


def decode(
    path: str | os.PathLike[str],
    model_input: ModelInputFn | None = None,
    model_px: int = 224,
    thumbnail_px: int = THUMBNAIL_PX,
    budget: DecodeBudget | None = None,
) -> DecodedImage:
    """Decode once at reduced size (JPEG draft), orient, convert to RGB, derive both outputs.

    Only regular files, only the allowed decoders, and only within the decode memory budget
    (the process-wide DECODE_BUDGET unless another is given); anything else is a DecodeError
    saying why.
    """
    budget = budget or DECODE_BUDGET
    try:
        with open_image(path) as (img, handle):
            width, height = img.size
            # JPEG draft decodes at 1/2, 1/4 or 1/8 scale, never below the requested size.
            wanted = max(model_px, thumbnail_px)
            img.draft("RGB", (wanted, wanted))
            # Judged from the header alone (a PNG's EXIF may follow its pixels, so reading the
            # orientation first would decode it): reserve room for a rotated copy as well.
            cost = decode_cost_bytes(img)
            if cost > budget.total_bytes:
                raise DecodeError(
                    f"too large to decode: {width}x{height} pixels ({img.mode}) need about "
                    f"{_mib(cost)} of memory, over the {_mib(budget.total_bytes)} decode budget; "
                    "save a smaller copy (e.g. JPEG) to index it"
                )
            fingerprint = content_fingerprint(handle, os.fstat(handle.fileno()).st_size)
            with budget.reserve(min(decode_cost_bytes(img, transposed=True), budget.total_bytes)):
                img.load()
                taken_at = _exif_date(img)
                orientation = _orientation(img)
                if orientation in (5, 6, 7, 8):
                    width, height = height, width
                oriented = ImageOps.exif_transpose(img) if orientation in range(2, 9) else img
                rgb = to_rgb(oriented)
                del oriented
                thumbnail = rgb.resize(
                    _fit_within(rgb.size, thumbnail_px), Image.Resampling.BICUBIC
                )
                pixels = model_input(rgb) if model_input is not None else None
                del rgb
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"image too large to decode safely ({_short(exc)})") from exc
    except MemoryError as exc:
        raise DecodeError("not enough memory to decode this image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated or corrupt data as OSError/SyntaxError/ValueError.
        raise DecodeError(f"corrupt or unreadable image data ({_short(exc)})") from exc
    return DecodedImage(
        width=width,
        height=height,
        taken_at=taken_at,
        model_input=pixels,
        thumbnail=thumbnail,
        fingerprint=fingerprint,
    )


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION, 1)
    except Exception:  # malformed EXIF must not fail the image
        return 1
    return value if isinstance(value, int) else 1


def _fit_within(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """Image.thumbnail's size rule (keep the aspect, never enlarge), without its full copy."""
    width, height = size
    if max(width, height) <= longest:
        return width, height
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _mib(count: int) -> str:
    return f"{count / (1 << 30):.1f} GiB" if count >= 1 << 30 else f"{count / (1 << 20):.0f} MiB"


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: transparency over white, CMYK, 16-bit and float scaled.

    Holds at most one working copy beside the input (see decode_cost_bytes, which must be
    kept in step with this)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(img).astype(np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        values *= 255.0 / peak
        values += 0.5
        np.clip(values, 0, 255, out=values)
        gray = values.astype(np.uint8)
        del values
        return Image.fromarray(gray, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img)
        return background
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
