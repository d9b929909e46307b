"""Date taken, date and folder filters, and date order: applied to the photos a search scans.

"Date taken" is the EXIF DateTimeOriginal the indexer stored (`taken_at`, the camera's own
wall-clock time: EXIF before 2.31 carries no time zone, so none is assumed), else the file's
modification time in this computer's local time. Both are naive local wall-clock times, so a
photo taken at 23:30 on 31 December is in that year whichever zone it is read in.

Ranges are half-open: `after` is the first moment included, `before` the first moment
excluded, and a date given as YYYY, YYYY-MM or YYYY-MM-DD stands for its whole period:
`--after 2023` includes all of 2023, `--before 2024-03` ends with the last second of
February 2024, and `--taken 2023-07` is July 2023 (after its start, before the next month's).

Date order keeps only the matches (the score gate: scores at or above a cut, by default
`DATE_SORT_MIN_SCORE`, the bottom of the "possible" band), then sorts them by date.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from gallery_app.core.catalog import ImageInfo, is_within
from gallery_app.core.errors import GalleryError
from gallery_app.core.store import CatalogStore
from gallery_app.core.vectors import VectorSnapshot

if TYPE_CHECKING:
    from gallery_app.core.search import SearchResult

# The score gate of date order when no cut is given: the "possible" band's floor (a 20%
# probability that the photo shows the words; the window's wording.POSSIBLE).
DATE_SORT_MIN_SCORE = 0.2
SORT_SCORE, SORT_DATE = "score", "date"
SORTS = (SORT_SCORE, SORT_DATE)
EXIF, FILE_TIME = "exif", "file"  # where a photo's date taken comes from

_NO_DATE = np.datetime64("NaT", "s")


class FilterError(GalleryError):
    """A date or folder filter that cannot be understood."""


def period(text: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a year (YYYY), a month (YYYY-MM) or a day (YYYY-MM-DD)."""
    value = text.strip()
    parts = value.split("-")
    try:
        if len(parts) == 1 and len(parts[0]) == 4:
            year = int(parts[0])
            return dt.datetime(year, 1, 1), dt.datetime(year + 1, 1, 1)
        if len(parts) == 2 and len(parts[0]) == 4 and len(parts[1]) in (1, 2):
            year, month = int(parts[0]), int(parts[1])
            start = dt.datetime(year, month, 1)
            end = dt.datetime(year + month // 12, month % 12 + 1, 1)
            return start, end
        if len(parts) == 3 and len(parts[0]) == 4:
            day = dt.datetime(int(parts[0]), int(parts[1]), int(parts[2]))
            return day, day + dt.timedelta(days=1)
    except (ValueError, OverflowError):
        pass
    raise FilterError(
        f"{text!r} is not a date: give a year (2023), a month (2023-07) or a day (2023-07-14)."
    )


@dataclass(frozen=True)
class PhotoFilter:
    """Which photos a search may return: taken in [after, before), under folder. None: any."""

    after: dt.datetime | None = None  # first moment included
    before: dt.datetime | None = None  # first moment excluded
    folder: str | None = None  # absolute; the folder itself and everything below it

    @classmethod
    def from_text(
        cls,
        after: str | None = None,
        before: str | None = None,
        taken: str | None = None,
        folder: str | os.PathLike[str] | None = None,
        until: str | None = None,
    ) -> PhotoFilter:
        """From what a person types: `after` from the start of its period, `before` up to the
        start of its period (excluded), `until` to the end of its period (included: the
        window's "to"), `taken` within its period; every bound given applies."""
        start = period(after)[0] if after else None
        end = period(before)[0] if before else None
        if until:
            last = period(until)[1]
            end = last if end is None else min(end, last)
        if taken:
            first, last = period(taken)
            start = first if start is None else max(start, first)
            end = last if end is None else min(end, last)
        place = os.path.abspath(os.path.expanduser(os.fspath(folder))) if folder else None
        return cls(start, end, place)

    @property
    def active(self) -> bool:
        return self.after is not None or self.before is not None or self.folder is not None

    @property
    def dated(self) -> bool:
        return self.after is not None or self.before is not None

    def describe(self) -> str:
        """The filter in words: 'taken 2023-01-01 to 2023-12-31, in /photos/trip'."""
        parts = []
        if self.after is not None and self.before is not None:
            parts.append(f"taken {_day(self.after)} to {_last_day(self.before)}")
        elif self.after is not None:
            parts.append(f"taken from {_day(self.after)}")
        elif self.before is not None:
            parts.append(f"taken before {_day(self.before)}")
        if self.folder is not None:
            parts.append(f"in {self.folder}")
        return ", ".join(parts)


def _day(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d") if moment.time() == dt.time() else moment.isoformat()


def _last_day(before: dt.datetime) -> str:
    """The last day included by an exclusive end (its own day when it is not a midnight)."""
    if before.time() == dt.time():
        return _day(before - dt.timedelta(days=1))
    return f"{before.isoformat()} (excluded)"


def date_taken(info: ImageInfo) -> tuple[dt.datetime | None, str]:
    """(date taken, EXIF or FILE_TIME) of a catalog image; (None, "") when neither is usable."""
    exif = _parse_exif(info.taken_at)
    if exif is not None:
        return exif, EXIF
    try:
        # Whole seconds, as EXIF has them.
        return dt.datetime.fromtimestamp(info.mtime_ns // 1_000_000_000), FILE_TIME
    except (OverflowError, OSError, ValueError):  # a file time far outside the calendar
        return None, ""


def _parse_exif(value: str | None) -> dt.datetime | None:
    # The indexer keeps whatever the camera wrote, reshaped to ISO: a camera whose clock was
    # never set writes 0000:00:00, which is no date (the file time is used instead).
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=None) if moment.year > 1800 else None


def _exif_stamps(values: Sequence[str | None]) -> npt.NDArray[np.datetime64]:
    """EXIF dates as datetime64[s], NaT where there is none or it is no date (_parse_exif)."""
    text = np.array([v if v else "NaT" for v in values], dtype=object)
    try:
        stamps = text.astype("M8[s]")
    except ValueError:  # a camera wrote something that is no date: one at a time, then
        parsed = [_parse_exif(v) for v in values]
        return np.array([_NO_DATE if p is None else np.datetime64(p, "s") for p in parsed])
    stamps[stamps < np.datetime64("1801-01-01", "s")] = _NO_DATE
    return stamps


def _file_stamp(mtime_ns: int) -> np.datetime64:
    """A file time as local wall-clock datetime64[s] (date_taken's fallback)."""
    seconds = mtime_ns // 1_000_000_000
    try:
        offset = time.localtime(seconds).tm_gmtoff
    except (OverflowError, OSError, ValueError):
        return _NO_DATE
    return np.datetime64(seconds + offset, "s")


class PhotoDates:
    """The date taken of every photo of a listing, as arrays for filters and date order."""

    def __init__(self, images: Iterable[ImageInfo]) -> None:
        # Sized for 100k photos on the GUI thread: numpy parses the EXIF strings at once,
        # and the file times need only each one's local UTC offset. date_taken is the
        # per-photo definition; a test holds the two equal.
        infos = list(images)
        ids = np.fromiter((int(i.id) for i in infos), dtype=np.int64, count=len(infos))
        exif = _exif_stamps([i.taken_at for i in infos])
        has_exif = ~np.isnat(exif)
        taken = exif.copy()
        for row in np.flatnonzero(~has_exif).tolist():
            taken[row] = _file_stamp(infos[row].mtime_ns)
        order = np.argsort(ids, kind="stable")
        self._ids = ids[order]
        self._taken = taken[order]
        self._exif = has_exif[order]

    def __len__(self) -> int:
        return len(self._ids)

    def _slots(
        self, image_ids: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        wanted = np.asarray(image_ids, dtype=np.int64).ravel()
        if len(self._ids) == 0:
            return np.zeros(len(wanted), np.intp), np.zeros(len(wanted), bool)
        slot = np.minimum(np.searchsorted(self._ids, wanted), len(self._ids) - 1)
        return slot.astype(np.intp), self._ids[slot] == wanted

    def taken(self, image_ids: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
        """datetime64[s] of each id; NaT for an id not in the listing or with no date."""
        slot, found = self._slots(image_ids)
        out = np.full(len(slot), _NO_DATE, dtype="M8[s]")
        out[found] = self._taken[slot[found]]
        return out

    def from_exif(self, image_ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        slot, found = self._slots(image_ids)
        return found & self._exif[slot] if len(self._ids) else found

    def taken_one(self, image_id: int) -> tuple[dt.datetime | None, str]:
        """(date taken, EXIF or FILE_TIME) of one photo, for tooltips and the viewer."""
        stamp = self.taken([image_id])[0]
        if np.isnat(stamp):
            return None, ""
        source = EXIF if self.from_exif([image_id])[0] else FILE_TIME
        return stamp.astype(dt.datetime), source


def filter_mask(
    photo_filter: PhotoFilter,
    image_ids: npt.ArrayLike,
    paths: Sequence[str] | npt.NDArray[np.object_],
    dates: PhotoDates | None,
) -> npt.NDArray[np.bool_]:
    """True for each photo the filter lets through (exact: every photo is tested). A photo
    with no date taken is outside every date range."""
    ids = np.asarray(image_ids, dtype=np.int64).ravel()
    keep = np.ones(len(ids), dtype=bool)
    if photo_filter.dated:
        if dates is None:
            raise ValueError("a date filter needs the photos' dates")
        taken = dates.taken(ids)
        known = ~np.isnat(taken)
        keep &= known
        if photo_filter.after is not None:
            keep &= known & (taken >= np.datetime64(photo_filter.after, "s"))
        if photo_filter.before is not None:
            keep &= known & (taken < np.datetime64(photo_filter.before, "s"))
    if photo_filter.folder is not None:
        keep &= folder_mask(paths, photo_filter.folder)
    return keep


def folder_mask(
    paths: Sequence[str] | npt.NDArray[np.object_], folder: str
) -> npt.NDArray[np.bool_]:
    """is_within(path, folder) for every path: a photo is inside exactly when its directory
    is, so is_within is asked once per directory."""
    within: dict[str, bool] = {}  # is_within(directory, folder), once per directory
    out = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        text = str(path)
        directory = os.path.dirname(text)
        inside = within.get(directory)
        if inside is None:
            inside = within[directory] = is_within(directory, folder)
        out[i] = inside or text == folder
    return out


def filtered_snapshot(
    snapshot: VectorSnapshot, photo_filter: PhotoFilter, catalog: CatalogStore
) -> VectorSnapshot:
    """The photos of a snapshot that pass the filter: a search over it is exact within them."""
    dates = library_dates(catalog) if photo_filter.dated else None
    keep = filter_mask(photo_filter, snapshot.ids, snapshot.paths, dates)
    return VectorSnapshot(
        snapshot.generation,
        snapshot.ids[keep],
        snapshot.rows[keep],
        snapshot.matrix,
        snapshot.paths[keep],
        subset=True,
    )


def sort_by_date(
    results: Sequence[SearchResult],
    dates: PhotoDates,
    min_score: float | None = None,
    newest_first: bool = True,
) -> list[SearchResult]:
    """The results at or above the gate (min_score, else DATE_SORT_MIN_SCORE), newest first
    (or oldest); photos without a date last; ties by score, then image id."""
    gate = DATE_SORT_MIN_SCORE if min_score is None else min_score
    kept = [r for r in results if r.score >= gate]
    if not kept:
        return []
    taken = dates.taken([r.image_id for r in kept])
    seconds = taken.astype(np.int64).astype(np.float64)
    seconds[np.isnat(taken)] = np.nan
    key = -seconds if newest_first else seconds
    key = np.where(np.isnan(key), np.inf, key)  # no date: last either way
    scores = np.array([r.score for r in kept])
    ids = np.array([r.image_id for r in kept], dtype=np.int64)
    order = np.lexsort((ids, -scores, key))
    return [kept[i] for i in order.tolist()]


# One PhotoDates per catalog generation, shared by every search of that library.
_dates: weakref.WeakKeyDictionary[CatalogStore, tuple[int, PhotoDates]] = (
    weakref.WeakKeyDictionary()
)
_dates_lock = threading.Lock()


def library_dates(catalog: CatalogStore) -> PhotoDates:
    """The dates of every searchable photo, read once per catalog generation."""
    with _dates_lock:
        generation = catalog.generation
        cached = _dates.get(catalog)
        if cached is not None and cached[0] == generation:
            return cached[1]
    dates = PhotoDates(catalog.browse())
    with _dates_lock:
        _dates[catalog] = (generation, dates)
    return dates
