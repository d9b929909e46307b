"""The CLI over the whole library: `index` with no folder rescans every folder, and the model
chosen in the window (settings.json) is the one the CLI uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gallery_app.cli import main
from gallery_app.core.settings_store import UserSettings, save_settings


def test_index_without_a_folder_rescans_every_folder(
    tiny_model_dir: Path, make_images, tmp_path, capsys, library_backend
):
    first = make_images(2, folder="a")[0].parent
    second = make_images(2, folder="b", start=10)[0].parent
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "d")]
    assert main([*common, "index", str(first), str(second), "--json"]) == 0
    capsys.readouterr()
    make_images(1, folder="a", start=20)  # a new photo
    (second / "img_0010.png").unlink()  # a deleted one
    assert main([*common, "index", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["indexed"], report["removed"], report["unchanged"]) == (1, 1, 3)

    shutil.rmtree(second)  # an unplugged drive: skipped, its photos kept
    assert main([*common, "index", "--json"]) == 0
    captured = capsys.readouterr()
    assert f"skipped (offline): {second}" in captured.err
    assert json.loads(captured.out)["unchanged"] == 3


def test_index_without_a_folder_on_an_empty_library_says_what_to_do(
    tiny_model_dir: Path, tmp_path, capsys
):
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "d")]
    assert main([*common, "index"]) == 1
    assert "gallery-app index FOLDER" in capsys.readouterr().err


def test_the_cli_uses_the_model_saved_by_the_window(
    tiny_model_dir: Path, make_images, tmp_path, capsys
):
    save_settings(UserSettings(model=str(tiny_model_dir)))
    folder = make_images(2)[0].parent
    assert main(["--data-dir", str(tmp_path / "d"), "index", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["indexed"] == 2  # no hub download attempted
