"""The filter row: date and folder filters and date order in the window, exact and without a
model call; the timeline follows the date-sorted grid."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from photos import random_photo
from PIL import Image
from PySide6.QtCore import Qt
from window_helpers import index_folder, search, session

from gallery_app.ui import wording


@pytest.fixture
def dated_photos(tmp_path):
    """12 photos in two folders, with EXIF dates across three months; {path: date taken}."""
    truth = {}
    for seed in range(12):
        folder = tmp_path / "photos" / ("trip" if seed % 2 else "home")
        folder.mkdir(parents=True, exist_ok=True)
        taken = dt.datetime(2023, 3 + seed % 3, 1 + seed, 9, 0, seed)
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
        path = folder / f"photo_{seed:02d}.jpg"
        Image.fromarray(random_photo(seed)).save(path, "JPEG", exif=exif.tobytes())
        truth[str(path)] = taken
    return truth


def no_model_calls(window, monkeypatch) -> list:
    calls: list = []
    encoder = session(window).encoder
    monkeypatch.setattr(encoder, "encode_prompts", lambda *a: calls.append(a) or 1 / 0)
    monkeypatch.setattr(encoder, "encode_pixels", lambda *a: calls.append(a) or 1 / 0)
    return calls


def type_into(qtbot, box, text: str) -> None:
    box.clear()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)  # editingFinished


def test_date_and_folder_filters_narrow_the_results_in_hand_exactly(
    qtbot, open_window, tiny_model_dir, dated_photos, tmp_path, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, tmp_path / "photos")
    search(qtbot, window, "red car")
    window.search.set_show_all(True)
    everything = list(window.search.results)
    assert len(everything) == 12
    calls = no_model_calls(window, monkeypatch)
    row = window.filters.row

    type_into(qtbot, row.from_box, "2023-04")
    type_into(qtbot, row.to_box, "2023-04")  # "to" includes its whole month
    april = [r.path for r in everything if dated_photos[r.path].month == 4]
    assert [i.path for i in window.grid_model.items()] == april
    assert 0 < len(april) < 12

    trip = str(tmp_path / "photos" / "trip")
    row.set_folder(trip)
    both = [p for p in april if p.startswith(trip + os.sep)]
    assert [i.path for i in window.grid_model.items()] == both
    assert "in " + trip in window.results_panel.header_label.text()

    type_into(qtbot, row.from_box, "April")  # not a date: said so, nothing changes
    assert "not a date" in row.problem.text()
    assert [i.path for i in window.grid_model.items()] == both

    row.clear()
    assert [i.path for i in window.grid_model.items()] == [r.path for r in everything]
    assert calls == []
    tooltip = window.grid_model.data(window.grid_model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "(EXIF)" in tooltip and "taken 2023-0" in tooltip


def test_date_order_keeps_the_matches_newest_first_with_a_timeline(
    qtbot, open_window, tiny_model_dir, dated_photos, tmp_path, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, tmp_path / "photos")
    search(qtbot, window, "red car")
    window.calibration_state.choose_preset("seed")  # sigmoid(25 cos): scores spread out
    scores = sorted(r.score for r in window.search.results)
    gate = round(scores[len(scores) // 3], 2)  # "Hide below" is whole percents
    window.settings.set_min_score(gate)
    assert window.settings.min_score == gate
    calls = no_model_calls(window, monkeypatch)
    row = window.filters.row
    row.set_sort("date", newest_first=True)

    items = window.grid_model.items()
    everything = window.search.hits.rank(window.calibration(), top_k=None)
    kept = {r.path for r in everything if r.score >= gate}
    assert {i.path for i in items} == kept and 4 <= len(items) < 12
    taken = [dated_photos[i.path] for i in items]
    assert taken == sorted(taken, reverse=True)
    timeline = window.filters.timeline
    assert timeline.isVisibleTo(window)
    labels = [timeline.item(i).text() for i in range(timeline.count())]
    months = sorted({(t.year, t.month) for t in taken}, reverse=True)
    assert labels == [
        f"{dt.date(y, m, 1):%B %Y} ({sum((t.year, t.month) == (y, m) for t in taken)})"
        for y, m in months
    ]
    last = timeline.item(timeline.count() - 1)
    timeline.itemClicked.emit(last)
    first_of_last = next(r for r, t in enumerate(taken) if (t.year, t.month) == months[-1])
    assert window.results_panel.grid.currentIndex().row() == first_of_last
    label = window.grid_model.data(window.grid_model.index(0))
    assert f"{taken[0]:%d %b %Y}" in label

    row.set_sort("date", newest_first=False)
    assert [i.path for i in window.grid_model.items()] == [i.path for i in reversed(items)]
    row.set_sort("score")
    assert not timeline.isVisibleTo(window)
    assert calls == []


def test_date_order_with_no_match_says_so_and_shows_nothing(
    qtbot, open_window, tiny_model_dir, dated_photos, tmp_path, monkeypatch
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, tmp_path / "photos")
    search(qtbot, window, "red car")
    assert window.settings.min_score == 0  # the gate is then the "possible" band's floor
    monkeypatch.setattr(wording, "POSSIBLE", 1.0)  # a band no photo reaches
    window.filters.row.set_sort("date")
    assert window.grid_model.rowCount() == 0
    assert "No match" in window.results_panel.header_label.text()
    window.results_panel.show_all_button.setChecked(True)  # "Show N more": all, by date
    assert window.grid_model.rowCount() == 12


def test_the_library_listing_is_filtered_too(
    qtbot, open_window, tiny_model_dir, dated_photos, tmp_path
):
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, tmp_path / "photos")
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 12, timeout=60_000)
    home = str(tmp_path / "photos" / "home")
    window.filters.row.set_folder(home)
    window.filters.row.set_sort("date", newest_first=False)
    paths = [i.path for i in window.grid_model.items()]
    expected = sorted(
        (p for p in dated_photos if p.startswith(home + os.sep)), key=dated_photos.get
    )
    assert paths == expected
