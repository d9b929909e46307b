"""Tags and descriptions are written while another process indexes the library and holds
its writer lock: SQLite's locking orders them, no writer lock is needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from test_concurrency import start_writer
from test_crash import wait_for

from gallery_app.core.errors import LibraryInUse
from gallery_app.core.library import Library, library_folder
from gallery_app.core.metadata import open_for_metadata


@pytest.fixture
def writer(tiny_model_dir, make_images, tmp_path):
    """A child `index` run holding the writer lock, with its first batch (4) committed."""
    paths = make_images(12)
    data = tmp_path / "data"
    marker = tmp_path / "in-flight"
    child = start_writer(tiny_model_dir, data, paths[0].parent, marker)
    try:
        wait_for(marker.exists, "the child to start indexing", child)
        yield data, child
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


def test_tags_are_written_beside_a_writer_in_another_process(writer, encoder):
    data, child = writer
    with pytest.raises(LibraryInUse, match=f"pid {child.pid}"):
        Library(data, encoder.model_id, encoder.dim)  # the lock is held
    path = library_folder(data, encoder.model_id) / "catalog.sqlite"
    catalog = open_for_metadata(path)
    try:
        ids = [image.id for image in catalog.browse()]
        assert len(ids) == 4  # the committed batch
        catalog.edit_tags(ids[:2], add=["harbour", "Sylt"])
        catalog.set_description([ids[0]], "Boats at dusk")
        catalog.edit_tags([ids[1]], remove=["sylt"])
    finally:
        catalog.close()
    with Library(data, encoder.model_id, encoder.dim, read_only=True) as reader:
        meta = reader.catalog.metadata(ids)
    assert meta[ids[0]].user_tags == ("harbour", "Sylt")
    assert meta[ids[0]].description == "Boats at dusk"
    assert meta[ids[1]].user_tags == ("harbour",)
    assert child.poll() is None  # the writer was never disturbed


def test_the_tag_command_runs_beside_a_writer_in_another_process(writer, encoder, tiny_model_dir):
    data, child = writer
    with Library(data, encoder.model_id, encoder.dim, read_only=True) as reader:
        paths = [image.path for image in reader.catalog.browse()]
    common = ["--model", str(tiny_model_dir), "--data-dir", str(data)]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [sys.executable, "-m", "gallery_app", *common, "tag", *paths[:2], "--add", "harbour",
         "--description", "Boats", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["photos"]
    assert [(p["tags"], p["description"]) for p in shown] == [(["harbour"], "Boats")] * 2
    with Library(data, encoder.model_id, encoder.dim, read_only=True) as reader:
        ids = reader.catalog.ids_for_paths(paths[:2]).values()
        assert all(m.user_tags == ("harbour",) for m in reader.catalog.metadata(ids).values())
    assert child.poll() is None  # still indexing, lock held


def test_no_library_yet_is_a_clear_error(tmp_path):
    from gallery_app.core.errors import GalleryError

    with pytest.raises(GalleryError, match="index a folder first"):
        open_for_metadata(tmp_path / "nothing" / "catalog.sqlite")
