"""`--library postgresql://...` and `gallery-app library copy` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from gallery_app.cli import main


def test_index_and_search_on_a_server_then_copy_it_to_sqlite_and_back(
    tiny_model_dir: Path, pg_url: str, make_images, tmp_path, capsys
):
    folder = make_images(5)[0].parent
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "d")]
    shared = [*common, "--library", pg_url]
    assert main([*shared, "index", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["indexed"] == 5
    assert main([*shared, "search", "a photo", "--json", "--top-k", "5"]) == 0
    on_server = json.loads(capsys.readouterr().out)

    backup = tmp_path / "backup"
    assert main([*common, "library", "copy", pg_url, str(backup)]) == 0
    out = capsys.readouterr().out
    assert "copied 5, already there 0" in out and "verified" in out and "NOT" not in out
    assert main([*common, "library", "copy", pg_url, str(backup)]) == 0  # resumable: no-op
    assert "copied 0, already there 5" in capsys.readouterr().out

    # The copy searches the same: same photos, same scores, no re-encoding.
    assert (
        main([*common, "--library", str(backup), "search", "a photo", "--json", "--top-k", "5"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == on_server


def test_copy_between_two_folders_is_refused_with_the_fix(tiny_model_dir, tmp_path, capsys):
    assert main(["library", "copy", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "must be a postgresql:// URL" in capsys.readouterr().err


def test_an_unreachable_server_is_one_line_without_the_password(
    tiny_model_dir: Path, tmp_path, capsys
):
    url = f"postgresql://me:s3cret@/gallery?host={tmp_path}/nowhere"
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "d")]
    assert main([*common, "--library", url, "search", "a dog"]) == 1
    err = capsys.readouterr().err
    assert "Cannot reach the library database" in err and "s3cret" not in err
    assert len(err.strip().splitlines()) == 1
