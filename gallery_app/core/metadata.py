"""What a photo says beyond its pixels: the file's own IPTC/XMP keywords, title and caption,
the words of its file and folder names, and the hybrid boost they add to a search's score.

The hybrid score is defined here and only here (`SOURCE_BOOST`, `BOOST_CAP`, `hybrid_score`):

    score = visual + (1 - visual) * boost,   boost = min(BOOST_CAP, 1 - prod_s (1 - b_s))

with `visual` the calibrated visual score and b_s the boost of each kind of metadata that
matches the query or one of its synonyms (user tags and description 0.9, the file's keywords,
title and caption 0.7, file and folder name words 0.4). It is a noisy-OR: the photo matches
if the pixels say so or the words do, as independent evidence, so the score stays in [0, 1],
never goes down, and keeps the visual order among photos with the same boost.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import numpy as np
import numpy.typing as npt

from gallery_app.core.catalog import is_within
from gallery_app.core.errors import GalleryError
from gallery_app.core.expansion import singular_candidates

if TYPE_CHECKING:
    from PIL import Image

    from gallery_app.core.catalog import Catalog
    from gallery_app.core.store import CatalogStore
    from gallery_app.core.vectors import VectorSnapshot

# --- Reading what the file carries (never written) -----------------------------------------

# XMP packets are a few kB; a bigger one is not worth parsing (and a hostile one is refused).
XMP_MAX_BYTES = 1 << 20
MAX_KEYWORDS = 200
MAX_TEXT_CHARS = 2000  # a title or caption longer than this is cut

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
}
_RDF_LI = f"{{{_NS['rdf']}}}li"
# IPTC IIM datasets (record 2): keywords, object name (the title), caption/abstract.
_IPTC_KEYWORDS, _IPTC_TITLE, _IPTC_CAPTION = (2, 25), (2, 5), (2, 120)


@dataclass(frozen=True)
class EmbeddedMetadata:
    """What a photo file says about itself: IPTC/XMP keywords, title and caption."""

    keywords: tuple[str, ...] = ()
    title: str | None = None
    caption: str | None = None

    def merged(self, other: EmbeddedMetadata) -> EmbeddedMetadata:
        """This, completed by other (keywords of both, title and caption of this first)."""
        return EmbeddedMetadata(
            _unique(self.keywords + other.keywords)[:MAX_KEYWORDS],
            self.title or other.title,
            self.caption or other.caption,
        )


def read_embedded(img: Image.Image) -> EmbeddedMetadata:
    """The XMP and IPTC metadata of an opened image. Never raises: metadata that cannot be
    read (malformed, hostile, oversized) is metadata the photo does not have."""
    xmp = EmbeddedMetadata()
    with contextlib.suppress(Exception):
        packet = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
        if packet:
            xmp = parse_xmp(packet)
    iptc = EmbeddedMetadata()
    with contextlib.suppress(Exception):
        from PIL import IptcImagePlugin

        info = IptcImagePlugin.getiptcinfo(img)  # type: ignore[arg-type]
        if info:
            iptc = parse_iptc(info)
    return xmp.merged(iptc)


def parse_xmp(packet: bytes | str) -> EmbeddedMetadata:
    """Keywords (dc:subject, else Lightroom's hierarchical subject leaves), title (dc:title)
    and caption (dc:description, else photoshop:Headline) of an XMP packet.

    Refused (empty metadata) when over XMP_MAX_BYTES or when it declares a DTD: XMP never
    needs one, and without one no entity can be declared, so none can be expanded (the
    "billion laughs") or fetched; expat never fetches external entities. Malformed XML raises
    ElementTree.ParseError (read_embedded turns that into no metadata)."""
    data = packet.encode("utf-8", "replace") if isinstance(packet, str) else bytes(packet)
    if len(data) > XMP_MAX_BYTES or b"<!doctype" in data.lower() or b"<!entity" in data.lower():
        return EmbeddedMetadata()
    root = ElementTree.fromstring(data.strip(b"\x00 \t\r\n"))
    keywords = [_text(li) for li in root.iterfind(".//dc:subject//rdf:li", _NS)]
    if not any(keywords):
        # "Places|Germany|Berlin": the leaf is the keyword.
        keywords = [
            _text(li).split("|")[-1]
            for li in root.iterfind(".//lr:hierarchicalSubject//rdf:li", _NS)
        ]
    return EmbeddedMetadata(
        tuple(_unique(keywords))[:MAX_KEYWORDS],
        _xmp_alt(root, "dc:title"),
        _xmp_alt(root, "dc:description") or _xmp_simple(root, "photoshop:Headline"),
    )


def _xmp_alt(root: ElementTree.Element, name: str) -> str | None:
    """An XMP language alternative: the x-default entry, else the first."""
    items = list(root.iterfind(f".//{name}//rdf:li", _NS))
    default = next(
        (li for li in items if li.get("{http://www.w3.org/XML/1998/namespace}lang") == "x-default"),
        items[0] if items else None,
    )
    if default is not None:
        return _clip(_text(default))
    return _xmp_simple(root, name)


def _xmp_simple(root: ElementTree.Element, name: str) -> str | None:
    """A property written as an element with text, or as an attribute of rdf:Description."""
    prefix, local = name.split(":")
    found = root.find(f".//{name}", _NS)
    if found is not None and (found.text or "").strip():
        return _clip(_text(found))
    for description in root.iterfind(".//rdf:Description", _NS):
        value = description.get(f"{{{_NS[prefix]}}}{local}")
        if value and value.strip():
            return _clip(value)
    return None


def parse_iptc(info: dict[tuple[int, int], Any]) -> EmbeddedMetadata:
    """Keywords, object name (title) and caption of an IPTC IIM block (getiptcinfo's dict).
    Text is UTF-8 when it decodes as such, else Latin-1 (what older cameras and tools wrote)."""
    raw_keywords = info.get(_IPTC_KEYWORDS) or []
    if isinstance(raw_keywords, bytes):
        raw_keywords = [raw_keywords]
    return EmbeddedMetadata(
        tuple(_unique(_iptc_text(k) for k in raw_keywords[: MAX_KEYWORDS * 2]))[:MAX_KEYWORDS],
        _clip(_iptc_text(info.get(_IPTC_TITLE))),
        _clip(_iptc_text(info.get(_IPTC_CAPTION))),
    )


def _iptc_text(value: object) -> str:
    if isinstance(value, list):
        value = value[0] if value else b""
    if not isinstance(value, bytes):
        return ""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _text(element: ElementTree.Element) -> str:
    return " ".join("".join(element.itertext()).split())


def _clip(text: str | None) -> str | None:
    cleaned = " ".join((text or "").replace("\x00", " ").split())
    return cleaned[:MAX_TEXT_CHARS] or None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    """Trimmed, blanks and case-duplicates dropped, first spelling kept."""
    seen: dict[str, str] = {}
    for item in items:
        cleaned = " ".join(str(item).replace("\x00", " ").split())[:MAX_TEXT_CHARS]
        if cleaned and cleaned.casefold() not in seen:
            seen[cleaned.casefold()] = cleaned
    return tuple(seen.values())


# --- Words, as matched: case, accents and plurals folded ------------------------------------

_WORD = re.compile(r"[^\W_]+")
_ARTICLES = frozenset({"a", "an", "the"})
# Tokens of camera and phone file names, and words every photo's name could hold.
CAMERA_TOKENS = frozenset(
    {
        "img", "image", "images", "imag", "dsc", "dscn", "dscf", "dcim", "pxl", "mvimg", "vid",
        "mov", "pano", "burst", "dji", "gopr", "gh", "gx", "mg", "sam", "wp", "photo", "photos",
        "picture", "pictures", "pic", "pics", "jpg", "jpeg", "heic", "heif", "png", "raw", "dng",
        "copy", "edit", "edited", "export", "exported", "final", "thumb", "thumbnail",
    }
)  # fmt: skip


def fold(text: str) -> str:
    """Lower case without accents: "Ærø Straße" -> "ærø strasse", "Café" -> "cafe"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> tuple[str, ...]:
    """The words of a text as matched: folded (see fold), articles dropped."""
    return tuple(w for w in _WORD.findall(fold(text)) if w not in _ARTICLES)


def name_words(part: str) -> tuple[str, ...]:
    """The words of one file or folder name: split on separators, camelCase and digits;
    numbers, single letters and camera tokens (IMG, DSC, PXL...) dropped."""
    out = []
    for chunk in _WORD.findall(unicodedata.normalize("NFC", part)):
        for piece in _name_pieces(chunk):
            word = fold(piece)
            if len(word) > 1 and not word.isdigit() and word not in CAMERA_TOKENS:
                out.append(word)
    return tuple(w for w in out if w not in _ARTICLES)


def _name_pieces(chunk: str) -> list[str]:
    """Split inside a name: "beachDay" -> beach Day, "HTMLFile" -> HTML File, "trip2019" ->
    trip 2019 (any script's upper and lower case)."""
    pieces: list[str] = []
    start = 0
    for i in range(1, len(chunk)):
        before, here = chunk[i - 1], chunk[i]
        after = chunk[i + 1] if i + 1 < len(chunk) else ""
        if (
            before.isdigit() != here.isdigit()
            or (before.islower() and here.isupper())
            or (before.isupper() and here.isupper() and after.islower())
        ):
            pieces.append(chunk[start:i])
            start = i
    pieces.append(chunk[start:])
    return [p for p in pieces if p]


def path_words(path: str, root: str | None) -> tuple[tuple[str, ...], ...]:
    """Words of each folder below root and of the file's name (without its extension):
    /photos/Germany 2019/IMG_1.jpg under /photos -> (("germany",),). Folders above the
    library folder say nothing about one photo (every photo has them)."""
    pure = PurePath(path)
    parts: list[str] = []
    if root is not None:
        with contextlib.suppress(ValueError):
            parts = list(pure.parent.relative_to(root).parts)
    parts.append(pure.stem)
    found = (name_words(part) for part in parts)
    return tuple(w for w in found if w)


@functools.lru_cache(maxsize=65536)
def _keys(word: str) -> frozenset[str]:
    """The forms a word may match: itself and its possible singulars (dogs -> dog)."""
    return frozenset((word, *singular_candidates(word)))


def _contains(field: Sequence[str], phrase: Sequence[frozenset[str]]) -> bool:
    """The phrase occurs in the field as whole consecutive words (any matching form)."""
    n = len(phrase)
    for start in range(len(field) - n + 1):
        if all(_keys(field[start + i]) & phrase[i] for i in range(n)):
            return True
    return False


# --- The hybrid boost ----------------------------------------------------------------------

USER, FILE, NAME = "user", "file", "name"  # who said it: the person, the file, its name
SOURCE_BOOST = {USER: 0.9, FILE: 0.7, NAME: 0.4}
BOOST_CAP = 0.95
_FIELD_LABELS = {
    "tag": "your tag",
    "description": "your description",
    "keyword": "the file's keyword",
    "title": "the file's title",
    "caption": "the file's caption",
    "folder": "folder name",
    "file name": "file name",
}


def combined_boost(sources: Iterable[str]) -> float:
    """The boost of a photo whose metadata matched from these sources (each counted once)."""
    miss = 1.0
    for source in sorted(set(sources)):  # one order: the same float every time
        miss *= 1.0 - SOURCE_BOOST[source]
    return min(BOOST_CAP, 1.0 - miss)


def hybrid_score(visual: Any, boost: Any) -> Any:
    """visual + (1 - visual) * boost: floats or numpy arrays alike."""
    return visual + (1.0 - visual) * boost


@dataclass(frozen=True)
class BoostMatch:
    """One piece of metadata that matched: from which source, in which field, what it says,
    and which variant of the query (the query itself or a synonym) it matched."""

    source: str
    field: str
    text: str
    variant: str

    def describe(self, query: str) -> str:
        label = _FIELD_LABELS.get(self.field, self.field)
        said = f"{label} “{self.text}”" if self.field not in ("description", "caption") else label
        if " ".join(query.lower().split()) != self.variant:
            said += f" (synonym “{self.variant}”)"
        return said


@dataclass(frozen=True, eq=False)
class RowBoosts:
    """The boost of each row of a search's hits, and why ("" where nothing matched)."""

    values: npt.NDArray[np.float64]
    reasons: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class PhotoBoosts:
    """The photos whose metadata matched a query: ids (sorted), boosts and reasons."""

    image_ids: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    reasons: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.image_ids)

    def rows(self, image_ids: npt.NDArray[np.int64]) -> RowBoosts:
        """These boosts laid out over hits' image ids (0 for a photo nothing matched)."""
        values = np.zeros(len(image_ids), np.float64)
        reasons = [""] * len(image_ids)
        if len(self.image_ids) and len(image_ids):
            slot = np.minimum(np.searchsorted(self.image_ids, image_ids), len(self.image_ids) - 1)
            found = np.flatnonzero(self.image_ids[slot] == image_ids)
            values[found] = self.values[slot[found]]
            for row in found.tolist():
                reasons[row] = self.reasons[int(slot[row])]
        return RowBoosts(values, tuple(reasons))


@dataclass
class _Fields:
    """Each photo's matchable fields of one source: (field, original text, words)."""

    by_id: dict[int, list[tuple[str, str, tuple[str, ...]]]]
    postings: dict[str, set[int]]  # word form -> photos with a field holding it

    @staticmethod
    def build(items: Iterable[tuple[int, str, str, tuple[str, ...]]]) -> _Fields:
        fields = _Fields({}, {})
        fields.add(items)
        return fields

    def add(self, items: Iterable[tuple[int, str, str, tuple[str, ...]]]) -> None:
        for image_id, field, text, field_words in items:
            if not field_words:
                continue
            self.by_id.setdefault(image_id, []).append((field, text, field_words))
            for word in field_words:
                for key in _keys(word):
                    self.postings.setdefault(key, set()).add(image_id)

    def remove(self, image_id: int) -> None:
        for _, _, field_words in self.by_id.pop(image_id, []):
            for word in field_words:
                for key in _keys(word):
                    holders = self.postings.get(key)
                    if holders is not None:
                        holders.discard(image_id)

    def matches(self, phrase: tuple[str, ...]) -> dict[int, tuple[str, str]]:
        """Photos with a field holding the phrase: id -> (field, text) of the first such."""
        wanted = [_keys(word) for word in phrase]
        candidates: set[int] | None = None
        for forms in wanted:
            holders: set[int] = set()
            for form in forms:
                holders |= self.postings.get(form, set())
            candidates = holders if candidates is None else candidates & holders
            if not candidates:
                return {}
        found = {}
        for image_id in candidates or ():
            for field, text, field_words in self.by_id[image_id]:
                if _contains(field_words, wanted):
                    found[image_id] = (field, text)
                    break
        return found


class MetadataMatcher:
    """Finds the photos of one library whose metadata matches a query, exactly over every
    photo (so a tagged photo far down the visual ranking is still found); what it reads from
    the catalog is kept until the catalog's metadata or vectors change. Thread-safe."""

    def __init__(self, catalog: CatalogStore) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._said_at: int | None = None  # metadata_generation of _said
        self._said: dict[str, _Fields] = {USER: _Fields({}, {}), FILE: _Fields({}, {})}
        self._names_at: int | None = None  # snapshot generation of _names
        self._names = _Fields({}, {})
        self._named: dict[int, str] = {}  # the path each id in _names had
        self._roots: list[str] = []

    def boosts(self, query: str, phrases: Sequence[str], snapshot: VectorSnapshot) -> PhotoBoosts:
        """Each photo of the snapshot matched by any phrase (the query and its synonyms)."""
        matched: dict[int, dict[str, BoostMatch]] = {}
        # One search at a time: the name index is brought up to date in place.
        with self._lock:
            sources = self._sources()
            for phrase in dict.fromkeys(" ".join(p.lower().split()) for p in phrases):
                phrase_words = words(phrase)
                if not phrase_words:
                    continue
                for source, fields in sources.items():
                    for image_id, (field, text) in fields.matches(phrase_words).items():
                        matched.setdefault(image_id, {}).setdefault(
                            source, BoostMatch(source, field, text, phrase)
                        )
        live = set(snapshot.ids.tolist()) if len(matched) else set()
        ids = sorted(i for i in matched if i in live)
        order = (USER, FILE, NAME)
        return PhotoBoosts(
            np.asarray(ids, dtype=np.int64),
            np.asarray([combined_boost(matched[i]) for i in ids], dtype=np.float64),
            tuple(
                "; ".join(matched[i][s].describe(query) for s in order if s in matched[i])
                for i in ids
            ),
        )

    def _sources(self) -> dict[str, _Fields]:
        said_at = self.catalog.metadata_generation()
        if said_at != self._said_at:
            self._said = self._read_said()
            self._said_at = said_at
        # Names of every photo with a vector, whatever the snapshot searched (a filtered one
        # holds fewer): the caller keeps only the photos its snapshot holds.
        from gallery_app.core.vectors import vector_store

        everything = vector_store(self.catalog).snapshot()
        if everything.generation != self._names_at:
            self._names = self._read_names(everything)
            self._names_at = everything.generation
        return {USER: self._said[USER], FILE: self._said[FILE], NAME: self._names}

    def _read_said(self) -> dict[str, _Fields]:
        user: list[tuple[int, str, str, tuple[str, ...]]] = []
        file: list[tuple[int, str, str, tuple[str, ...]]] = []
        for image_id, meta in self.catalog.metadata().items():
            user += [(image_id, "tag", tag, words(tag)) for tag in meta.user_tags]
            file += [(image_id, "keyword", tag, words(tag)) for tag in meta.file_tags]
            for target, field, text in (
                (user, "description", meta.description),
                (file, "title", meta.title),
                (file, "caption", meta.caption),
            ):
                if text:
                    target.append((image_id, field, text, words(text)))
        return {USER: _Fields.build(user), FILE: _Fields.build(file)}

    def _read_names(self, snapshot: VectorSnapshot) -> _Fields:
        """Brought up to date with the snapshot: only photos added, moved or gone are looked
        at (indexing moves the generation every batch)."""
        roots = sorted((f.path for f in self.catalog.folders()), key=len, reverse=True)
        if roots != self._roots:
            self._names, self._named, self._roots = _Fields({}, {}), {}, roots
        current = dict(zip(snapshot.ids.tolist(), snapshot.paths.tolist(), strict=True))
        names = self._names
        for image_id in [i for i, p in self._named.items() if current.get(i) != p]:
            names.remove(image_id)
            del self._named[image_id]
        added = []
        for image_id, path in current.items():
            if image_id in self._named:
                continue
            self._named[image_id] = path
            root = next((r for r in roots if is_within(path, r)), None)
            parts = path_words(path, root)
            stem_words = name_words(PurePath(path).stem)
            for index, part in enumerate(parts):
                if index == len(parts) - 1 and stem_words:
                    added.append((image_id, "file name", PurePath(path).name, part))
                else:
                    added.append((image_id, "folder", _folder_text(path, root, part), part))
        names.add(added)
        return names


def _folder_text(path: str, root: str | None, part: tuple[str, ...]) -> str:
    """The folder (below root) whose name gave these words, as it is spelled on disk."""
    parent = PurePath(path).parent
    with contextlib.suppress(ValueError):
        for name in parent.relative_to(root or "/").parts:
            if name_words(name) == part:
                return name
    return parent.name


# --- Writing what people say (tags, descriptions) -------------------------------------------


def open_for_metadata(catalog_path: Path) -> Catalog:
    """A library's catalog opened to write tags and descriptions, without the library's
    writer lock: those writes touch neither the vectors nor the index, so they may run while
    another gallery-app indexes the library; SQLite's own locking (WAL, a busy timeout)
    orders them with its batches. The model is read from the catalog: none needs loading."""
    from gallery_app.core.catalog import Catalog, read_identity

    if not catalog_path.is_file():
        raise GalleryError(
            f"There is no library at {catalog_path.parent} yet: index a folder first "
            "(gallery-app index FOLDER), then tag its photos."
        )
    model_id, dim = read_identity(catalog_path)
    return Catalog(catalog_path, model_id, dim)
