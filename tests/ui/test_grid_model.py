"""GridModel: a correct Qt model through every kind of change, at 100,000 rows, with thumbnails."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtTest import QAbstractItemModelTester

from gallery_app.ui.grid_model import GridItem, GridModel

# The model tester reports problems as Qt warnings: make every warning a failure.
pytestmark = pytest.mark.qt_log_level_fail("WARNING")

Display = Qt.ItemDataRole.DisplayRole
Decoration = Qt.ItemDataRole.DecorationRole
ToolTip = Qt.ItemDataRole.ToolTipRole
TIMEOUT_MS = 10_000


def items(n: int, start: int = 0, folder: str = "/photos") -> list[GridItem]:
    return [
        GridItem(
            image_id=i,
            path=f"{folder}/img_{i:06d}.jpg",
            mtime_ns=1_700_000_000_000_000_000 + i,
            score=1.0 - i / 200_000,
            raw=0.3 - i / 1_000_000,
            variant="red car" if i % 2 else "red automobile",
        )
        for i in range(start, start + n)
    ]


@pytest.fixture
def model(qapp):
    model = GridModel()
    tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Warning)
    yield model
    del tester


def test_model_tester_through_every_change(model, qtbot):
    assert model.rowCount() == 0
    model.set_items(items(10))
    model.append_items(items(5, start=10))
    model.append_items([])
    assert model.update_scores({3: (0.5, 0.1, "car"), 12: (0.4, 0.05, "auto")}) == 2
    model.reorder(list(reversed(model.items())))
    model.reorder(items(3))  # not a permutation: falls back to a reset
    model.set_device_pixel_ratio(2.0)
    model.set_items([])
    model.update_scores({1: (0.1, 0.1, "x")})
    model.reorder([])
    assert model.rowCount() == 0


def test_model_tester_with_thumbnails(qtbot, make_provider, make_images):
    paths = make_images(3)
    provider = make_provider()
    model = GridModel(provider)
    tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Warning)
    # The tester itself reads DecorationRole, which schedules loads; wait for all of them.
    remaining = {str(p) for p in paths}

    def all_seen(path: str) -> bool:
        remaining.discard(path)
        return not remaining

    with qtbot.waitSignal(provider.ready, timeout=TIMEOUT_MS, check_params_cb=all_seen):
        model.set_items([GridItem(i, str(p), p.stat().st_mtime_ns) for i, p in enumerate(paths)])
        for row in range(3):
            model.data(model.index(row), Decoration)
    for row in range(3):
        assert model.data(model.index(row), Decoration) is not provider.placeholder()
    del tester


def test_hundred_thousand_items(qapp):
    # No model tester here: it walks every row after a reset, which only measures the tester.
    model = GridModel()
    many = items(100_000)
    model.set_items(many)
    assert model.rowCount() == 100_000
    last = model.index(99_999)
    assert model.data(last, Display) == "img_099999.jpg\n50% match"
    assert model.data(last, GridModel.ImageIdRole) == 99_999
    assert model.item(99_999) is many[99_999]
    assert model.update_scores({99_999: (0.25, 0.2, "car")}) == 1
    assert model.data(last, GridModel.ScoreRole) == 0.25


def test_roles(model):
    model.set_items(
        [
            GridItem(7, "/p/a.jpg", 1, score=0.8734, raw=0.2412, variant="red car"),
            GridItem(8, "/p/b.jpg", 2),
        ]
    )
    scored, plain = model.index(0), model.index(1)
    assert model.data(scored, Display) == "a.jpg\n87% match"
    assert model.data(plain, Display) == "b.jpg"
    assert model.data(scored, ToolTip) == (
        "/p/a.jpg\n87%: the model's estimated probability that the photo shows your words\n"
        "best matching words: red car"
    )
    assert model.data(plain, ToolTip) == "/p/b.jpg"
    assert model.data(scored, GridModel.PathRole) == "/p/a.jpg"
    assert model.data(scored, GridModel.ScoreRole) == 0.8734
    assert model.data(scored, GridModel.RawRole) == 0.2412
    assert model.data(scored, GridModel.VariantRole) == "red car"
    assert model.data(scored, GridModel.ImageIdRole) == 7
    assert model.data(plain, GridModel.ScoreRole) is None
    assert model.data(scored, Decoration) is None  # no provider, no picture
    assert model.data(QModelIndex(), Display) is None
    names = model.roleNames()
    assert bytes(names[GridModel.PathRole].data()) == b"path"
    assert bytes(names[Display].data()) == b"display"


def test_update_scores_is_a_data_change_not_a_reset(model, qtbot):
    model.set_items(items(10))
    persistent = QPersistentModelIndex(model.index(4))
    with (
        qtbot.assertNotEmitted(model.modelReset),
        qtbot.assertNotEmitted(model.layoutChanged),
        qtbot.waitSignal(model.dataChanged, timeout=TIMEOUT_MS) as changed,
    ):
        count = model.update_scores(
            {2: (0.873, 0.21, "car"), 6: (0.5, 0.1, "auto"), 99: (1, 1, "")}
        )
    assert count == 2
    top_left, bottom_right, roles = changed.args
    assert (top_left.row(), bottom_right.row()) == (2, 6)
    assert Display in roles and GridModel.ScoreRole in roles
    assert model.data(model.index(2), Display) == "img_000002.jpg\n87% match"
    assert model.item(2).variant == "car"
    assert model.item(3) == items(10)[3]  # untouched rows keep their values
    assert persistent.row() == 4


def test_update_scores_with_nothing_new_emits_nothing(model, qtbot):
    model.set_items(items(3))
    same = {item.image_id: (item.score, item.raw, item.variant) for item in model.items()}
    with qtbot.assertNotEmitted(model.dataChanged):
        assert model.update_scores(same) == 0


def test_reorder_moves_persistent_indexes(model, qtbot):
    model.set_items(items(5))
    selected = QPersistentModelIndex(model.index(1))  # image 1
    new_order = [model.item(row) for row in (4, 3, 2, 1, 0)]
    with (
        qtbot.assertNotEmitted(model.modelReset),
        qtbot.waitSignal(model.layoutAboutToBeChanged, timeout=TIMEOUT_MS),
        qtbot.waitSignal(model.layoutChanged, timeout=TIMEOUT_MS),
        qtbot.assertNotEmitted(model.dataChanged),
    ):
        model.reorder(new_order)
    assert [item.image_id for item in model.items()] == [4, 3, 2, 1, 0]
    assert selected.row() == 3
    assert model.data(selected, GridModel.ImageIdRole) == 1
    assert model.row_for_image(1) == 3
    assert model.rows_for_path("/photos/img_000001.jpg") == [3]


def test_reorder_with_new_scores_also_reports_the_changed_data(model, qtbot):
    model.set_items(items(4))
    rescored = [
        GridItem(3, "/photos/img_000003.jpg", 1_700_000_000_000_000_003, 0.99, 0.4, "car"),
        *model.items()[:3],
    ]
    with qtbot.waitSignal(model.dataChanged, timeout=TIMEOUT_MS) as changed:
        model.reorder(rescored)
    top_left, bottom_right, _ = changed.args
    assert (top_left.row(), bottom_right.row()) == (0, 0)
    assert model.data(model.index(0), Display) == "img_000003.jpg\n99% match"


def test_reorder_of_other_items_resets(model, qtbot):
    model.set_items(items(3))
    with qtbot.waitSignal(model.modelReset, timeout=TIMEOUT_MS):
        model.reorder(items(3, start=10))
    assert model.item(0).image_id == 10


def test_append_items_inserts_rows_and_keeps_lookups(model, qtbot):
    model.set_items(items(2))
    assert model.row_for_image(1) == 1  # builds the lookups
    with qtbot.waitSignal(model.rowsInserted, timeout=TIMEOUT_MS) as inserted:
        model.append_items(items(3, start=2))
    _, first, last = inserted.args
    assert (first, last) == (2, 4)
    assert model.rowCount() == 5
    assert model.row_for_image(4) == 4
    assert model.rows_for_path("/photos/img_000003.jpg") == [3]


def test_the_same_path_twice_is_tracked_on_every_row(model):
    model.set_items([GridItem(1, "/a.jpg", 1), GridItem(2, "/b.jpg", 1), GridItem(3, "/a.jpg", 1)])
    assert model.rows_for_path("/a.jpg") == [0, 2]
    model.append_items([GridItem(4, "/a.jpg", 1), GridItem(5, "/c.jpg", 1)])
    assert model.rows_for_path("/a.jpg") == [0, 2, 3]
    assert model.rows_for_path("/c.jpg") == [4]
    assert model.rows_for_path("/missing.jpg") == []


def test_thumbnail_ready_updates_the_decoration(qtbot, make_provider, tmp_path, make_images):
    paths = make_images(3)
    provider = make_provider(size=64)
    model = GridModel(provider)
    model.set_items([GridItem(i, str(p), p.stat().st_mtime_ns) for i, p in enumerate(paths)])
    row = model.index(1)

    with qtbot.waitSignal(
        model.dataChanged,
        timeout=TIMEOUT_MS,
        check_params_cb=lambda top, bottom, roles: top.row() == 1 and roles == [Decoration],
    ):
        loading = model.data(row, Decoration)
        assert isinstance(loading, QPixmap)
        assert loading is provider.placeholder()
    loaded = model.data(row, Decoration)
    assert isinstance(loaded, QPixmap)
    assert loaded is not provider.placeholder()
    assert (loaded.width(), loaded.height()) == (64, 48)


def test_broken_file_shows_broken_placeholder(qtbot, make_provider, tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    provider = make_provider()
    model = GridModel(provider)
    model.set_items([GridItem(1, str(broken), broken.stat().st_mtime_ns)])
    with qtbot.waitSignal(model.dataChanged, timeout=TIMEOUT_MS):
        model.data(model.index(0), Decoration)
    assert model.data(model.index(0), Decoration) is provider.broken_placeholder()
