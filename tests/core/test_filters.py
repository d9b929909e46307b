"""Date taken, date and folder filters, date order: exact, checked against brute force."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest
from photos import random_photo
from PIL import Image

from gallery_app.core.calibrate import Calibration
from gallery_app.core.catalog import ImageInfo
from gallery_app.core.filters import (
    DATE_SORT_MIN_SCORE,
    EXIF,
    FILE_TIME,
    FilterError,
    PhotoDates,
    PhotoFilter,
    date_taken,
    filter_mask,
    library_dates,
    period,
    sort_by_date,
)
from gallery_app.core.indexer import Indexer
from gallery_app.core.search import Searcher

CALIBRATION = Calibration("custom", 40.0, 0.0)


def save_photo(path: Path, seed: int, exif_date: str | None, mtime: dt.datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(random_photo(seed))
    exif = Image.Exif()
    if exif_date is not None:
        exif.get_ifd(0x8769)[0x9003] = exif_date
    image.save(path, "JPEG", exif=exif.tobytes(), quality=90)
    stamp = mtime.timestamp()
    os.utime(path, (stamp, stamp))


@pytest.fixture
def dated_library(library, encoder, tmp_path):
    """18 photos in three folders; odd seeds carry an EXIF date, even ones only a file time.
    Returns {path: date taken} as the test itself defines it."""
    truth: dict[str, dt.datetime] = {}
    folders = ["photos/trip", "photos/trip2", "photos/home/deep"]
    for seed in range(18):
        folder = tmp_path / folders[seed % 3]
        exif = dt.datetime(2019 + seed % 5, 1 + seed % 12, 1 + seed, 10, 30, 5)
        mtime = dt.datetime(2024, 2, 1 + seed, 8, 0, 0)
        path = folder / f"photo_{seed:02d}.jpg"
        save_photo(path, seed, exif.strftime("%Y:%m:%d %H:%M:%S") if seed % 2 else None, mtime)
        truth[str(path)] = exif if seed % 2 else mtime
    report = Indexer(library, encoder).index([tmp_path / "photos"])
    assert report.failed == [] and report.indexed == 18
    return truth


def test_period_reads_years_months_and_days():
    assert period("2023") == (dt.datetime(2023, 1, 1), dt.datetime(2024, 1, 1))
    assert period("2023-12") == (dt.datetime(2023, 12, 1), dt.datetime(2024, 1, 1))
    assert period("2024-02-29") == (dt.datetime(2024, 2, 29), dt.datetime(2024, 3, 1))
    for bad in ("23", "2023-13", "2023-02-30", "yesterday", "2023/01", ""):
        with pytest.raises(FilterError, match="not a date"):
            period(bad)


def test_after_is_inclusive_before_is_exclusive_taken_is_the_period():
    f = PhotoFilter.from_text(after="2023-07", before="2024")
    assert f.after == dt.datetime(2023, 7, 1) and f.before == dt.datetime(2024, 1, 1)
    assert f.describe() == "taken 2023-07-01 to 2023-12-31"
    month = PhotoFilter.from_text(taken="2023-02")
    assert (month.after, month.before) == (dt.datetime(2023, 2, 1), dt.datetime(2023, 3, 1))
    narrowed = PhotoFilter.from_text(after="2023-02-10", taken="2023-02")
    assert narrowed.after == dt.datetime(2023, 2, 10) and narrowed.before == month.before
    assert not PhotoFilter().active
    window = PhotoFilter.from_text(after="2023-03", until="2023-05")  # the window's "to"
    assert (window.after, window.before) == (dt.datetime(2023, 3, 1), dt.datetime(2023, 6, 1))


def test_date_taken_is_exif_else_the_local_file_time():
    mtime = dt.datetime(2022, 3, 4, 5, 6, 7)
    ns = int(mtime.timestamp() * 1e9)
    assert date_taken(ImageInfo(1, "/a.jpg", 4, 3, "2019-01-02T03:04:05", ns, 9)) == (
        dt.datetime(2019, 1, 2, 3, 4, 5),
        EXIF,
    )
    # A camera whose clock was never set writes zeros: the file time is the date then.
    assert date_taken(ImageInfo(2, "/b.jpg", 4, 3, "0000-00-00T00:00:00", ns, 9)) == (
        mtime,
        FILE_TIME,
    )
    assert date_taken(ImageInfo(3, "/c.jpg", 4, 3, None, ns, 9)) == (mtime, FILE_TIME)


def test_boundaries_are_exact_to_the_second():
    infos = [
        ImageInfo(1, "/p/a.jpg", 1, 1, "2023-06-30T23:59:59", 0, 1),
        ImageInfo(2, "/p/b.jpg", 1, 1, "2023-07-01T00:00:00", 0, 1),
        ImageInfo(3, "/p/c.jpg", 1, 1, "2023-12-31T23:59:59", 0, 1),
        ImageInfo(4, "/p/d.jpg", 1, 1, "2024-01-01T00:00:00", 0, 1),
    ]
    dates = PhotoDates(infos)
    keep = filter_mask(
        PhotoFilter.from_text(after="2023-07", before="2024"),
        [1, 2, 3, 4, 99],  # 99 is not in the listing: no date, outside every range
        ["/p/a.jpg", "/p/b.jpg", "/p/c.jpg", "/p/d.jpg", "/p/e.jpg"],
        dates,
    )
    assert keep.tolist() == [False, True, True, False, False]


def test_folder_filter_is_recursive_and_not_a_name_prefix(tmp_path):
    paths = [f"{tmp_path}/trip/a.jpg", f"{tmp_path}/trip2/b.jpg", f"{tmp_path}/trip/x/c.jpg"]
    f = PhotoFilter.from_text(folder=str(tmp_path / "trip") + "/")
    assert filter_mask(f, [1, 2, 3], paths, None).tolist() == [True, False, True]


def test_filtered_top_k_is_the_brute_force_top_k_inside_the_filter(
    library, encoder, dated_library, tmp_path
):
    searcher = Searcher(library, encoder)
    everything = searcher.search("red car", top_k=None).rank(CALIBRATION, top_k=None)
    cases = [
        PhotoFilter.from_text(folder=tmp_path / "photos/trip"),
        PhotoFilter.from_text(folder=tmp_path / "photos/home"),
        PhotoFilter.from_text(after="2021", before="2023-06"),
        PhotoFilter.from_text(taken="2024-02"),
        PhotoFilter.from_text(after="2020", folder=tmp_path / "photos/trip2"),
    ]
    for where in cases:
        inside = [
            r
            for r in everything
            if (where.folder is None or r.path.startswith(where.folder + os.sep))
            and (where.after is None or dated_library[r.path] >= where.after)
            and (where.before is None or dated_library[r.path] < where.before)
        ]
        assert inside, where  # each case lets some photos through, and not all
        assert len(inside) < len(everything)
        found = searcher.search("red car", top_k=3, where=where).rank(CALIBRATION, top_k=3)
        assert [(r.path, r.score) for r in found] == [(r.path, r.score) for r in inside[:3]]


def test_a_filter_that_matches_nothing_returns_nothing(library, encoder, dated_library):
    where = PhotoFilter.from_text(taken="1999")
    hits = Searcher(library, encoder).search("red car", top_k=5, where=where)
    assert hits.rank(CALIBRATION, top_k=5) == []


def test_library_dates_follow_the_catalog(library, encoder, dated_library):
    dates = library_dates(library.catalog)
    by_path = {info.path: info.id for info in library.catalog.browse()}
    for path, truth in dated_library.items():
        seed = int(Path(path).stem.split("_")[1])
        assert dates.taken_one(by_path[path]) == (truth, EXIF if seed % 2 else FILE_TIME)
    assert library_dates(library.catalog) is dates  # one read per catalog generation


def test_date_order_keeps_only_the_matches_newest_first(library, encoder, dated_library):
    hits = Searcher(library, encoder).search("red car", top_k=None)
    ranked = hits.rank(CALIBRATION, top_k=None)
    scores = sorted(r.score for r in ranked)
    cut = scores[len(scores) // 2]  # half the photos pass the gate
    dates = library_dates(library.catalog)
    newest = sort_by_date(ranked, dates, min_score=cut)
    assert {r.path for r in newest} == {r.path for r in ranked if r.score >= cut}
    taken = [dated_library[r.path] for r in newest]
    assert taken == sorted(taken, reverse=True)
    oldest = sort_by_date(ranked, dates, min_score=cut, newest_first=False)
    assert [r.path for r in oldest] == [r.path for r in reversed(newest)]
    default = sort_by_date(ranked, dates)
    assert all(r.score >= DATE_SORT_MIN_SCORE for r in default)
    assert len(default) == sum(r.score >= DATE_SORT_MIN_SCORE for r in ranked)


def test_the_mask_agrees_with_per_photo_dates():
    rng = np.random.default_rng(3)
    infos = [
        ImageInfo(
            i,
            f"/p/{i}.jpg",
            1,
            1,
            f"{rng.integers(2000, 2030)}-{rng.integers(1, 13):02d}-10T12:00:00",
            0,
            1,
        )
        for i in range(200)
    ]
    dates = PhotoDates(infos)
    where = PhotoFilter.from_text(after="2010-05", before="2020")
    keep = filter_mask(where, [i.id for i in infos], [i.path for i in infos], dates)
    expected = [
        dt.datetime(2010, 5, 1) <= date_taken(i)[0] < dt.datetime(2020, 1, 1) for i in infos
    ]
    assert keep.tolist() == expected


@pytest.mark.parametrize(
    "zone", ["UTC", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe"]
)
def test_listing_dates_equal_the_per_photo_definition(zone, monkeypatch):
    """The vectorized listing dates agree with date_taken, file times across DST changes
    included (zones with half-hour offsets and half-hour DST too)."""
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        rng = np.random.default_rng(11)
        exif = ["2019-01-02T03:04:05", "0000-00-00T00:00:00", None, "2023-02-30T00:00:00", ""]
        start = int(dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc).timestamp())
        infos = [
            ImageInfo(
                int(i),
                f"/p/{i}.jpg",
                1,
                1,
                exif[i % len(exif)],
                (start + int(rng.integers(0, 3 * 365 * 86400))) * 1_000_000_000 + 987_654_321,
                1,
            )
            for i in rng.permutation(400)
        ]
        dates = PhotoDates(infos)
        for info in infos:
            assert dates.taken_one(info.id) == date_taken(info), info
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_folder_mask_equals_is_within_for_every_path(tmp_path):
    from gallery_app.core.catalog import is_within
    from gallery_app.core.filters import folder_mask

    folder = str(tmp_path / "a")
    paths = [
        str(tmp_path / "a" / "x.jpg"),
        str(tmp_path / "a" / "b" / "c" / "y.jpg"),
        str(tmp_path / "ab" / "z.jpg"),
        str(tmp_path / "a.jpg"),
        str(tmp_path / "b" / "a" / "w.jpg"),
    ]
    assert folder_mask(paths, folder).tolist() == [is_within(p, folder) for p in paths]
    assert folder_mask(paths, folder).tolist() == [True, True, False, False, False]
