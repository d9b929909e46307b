"""The library stays current: rescanned on open, watched while the window runs, Rescan per
folder and for all, and a folder that went offline keeps its photos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from window_helpers import WAIT_MS, index_folder


def library_paths(window) -> set[str]:
    return {item.path for item in window.search.library_items}


def save_photo(path: Path, seed: int) -> None:
    # Written beside, then moved in: what cameras' import tools and file managers do.
    temporary = path.with_name(f".{path.name}.part")
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(temporary, format="PNG")
    os.replace(temporary, path)


def test_new_changed_and_removed_photos_appear_without_any_action(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    window.library.settle_ms = 100
    photos = make_images(3)
    folder = photos[0].parent
    index_folder(qtbot, window, folder)
    assert len(library_paths(window)) == 3

    new = folder / "sub" / "new.png"
    new.parent.mkdir()  # a new subfolder is watched too
    save_photo(folder / "added.png", 100)
    qtbot.waitUntil(lambda: str(folder / "added.png") in library_paths(window), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.library.busy, timeout=WAIT_MS)
    save_photo(new, 101)
    qtbot.waitUntil(lambda: str(new) in library_paths(window), timeout=WAIT_MS)

    photos[0].unlink()
    qtbot.waitUntil(lambda: str(photos[0]) not in library_paths(window), timeout=WAIT_MS)

    before = {i.path: i.mtime_ns for i in window.search.library_items}[str(photos[1])]
    save_photo(photos[1], 102)  # replaced by another picture under the same name
    qtbot.waitUntil(
        lambda: (
            {i.path: i.mtime_ns for i in window.search.library_items}.get(str(photos[1]))
            not in (None, before)
        ),
        timeout=WAIT_MS,
    )
    assert len(library_paths(window)) == 4


def test_folders_are_rescanned_when_the_window_opens(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    folder = make_images(2)[0].parent
    index_folder(qtbot, window, folder)
    window.close()
    save_photo(folder / "while-closed.png", 7)  # nothing watched it
    again = open_window(str(tiny_model_dir))
    qtbot.waitUntil(
        lambda: str(folder / "while-closed.png") in library_paths(again), timeout=WAIT_MS
    )
    assert again.library.rows()[0].photos == 3


def test_rescan_button_rescans_the_selected_folder_or_all(
    qtbot, open_window, tiny_model_dir, make_images
):
    window = open_window(str(tiny_model_dir))
    first = make_images(2, folder="first")[0].parent
    second = make_images(2, folder="second", start=5)[0].parent
    index_folder(qtbot, window, first)
    index_folder(qtbot, window, second)
    panel = window.library_panel
    panel.folder_list.setCurrentRow(-1)
    assert panel.rescan_button.text() == "Rescan all"
    started = []
    window.library.indexing_started.connect(lambda folder, queued: started.append(folder))
    with qtbot.waitSignal(window.library.idle, timeout=WAIT_MS):
        panel.rescan_button.click()
    assert sorted(started) == [str(first), str(second)]

    started.clear()
    panel.folder_list.setCurrentRow(1)
    assert panel.rescan_button.text() == "Rescan"
    with qtbot.waitSignal(window.library.idle, timeout=WAIT_MS):
        panel.rescan_button.click()
    assert started == [panel.current()]


def test_an_offline_folder_keeps_its_photos(qtbot, open_window, tiny_model_dir, make_images):
    window = open_window(str(tiny_model_dir))
    folder = make_images(3, folder="usb-drive")[0].parent
    index_folder(qtbot, window, folder)
    states = []
    window.library.indexing_progress.connect(
        lambda *_: states.append(window.library.rows()[0].state)
    )
    with qtbot.waitSignal(window.library.idle, timeout=WAIT_MS):
        window.library.rescan()
    assert "indexing" in states
    window.close()

    shutil.move(folder, folder.with_name("unplugged"))
    again = open_window(str(tiny_model_dir))
    qtbot.waitUntil(lambda: len(library_paths(again)) == 3, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not again.library.busy, timeout=WAIT_MS)
    row = again.library.rows()[0]
    assert (row.photos, row.state) == (3, "offline")
    assert "offline, photos kept" in again.library_panel.folder_list.item(0).text()
    with qtbot.waitSignal(again.library.idle, timeout=WAIT_MS):
        again.library.rescan()  # Rescan all: still kept
    assert len(library_paths(again)) == 3
