"""`gallery-app tag`: tags and descriptions from the command line, and `search --json` giving
each result's visual score, boost and why."""

from __future__ import annotations

import json

import pytest

from gallery_app.cli import main
from gallery_app.core.library import Library


@pytest.fixture
def indexed(tiny_model_dir, make_images, tmp_path):
    photos = make_images(6)
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    assert main([*common, "index", str(photos[0].parent)]) == 0
    return common, photos


def _metadata(encoder, tmp_path, path):
    with Library(tmp_path / "data", encoder.model_id, encoder.dim, read_only=True) as library:
        (image_id,) = library.catalog.ids_for_paths([str(path)]).values()
        return library.catalog.metadata([image_id]).get(image_id)


def test_tag_adds_removes_and_describes(indexed, encoder, tmp_path, capsys):
    common, photos = indexed
    target = str(photos[2])
    assert main([*common, "tag", target, "--add", "Lena", "--add", "Sylt 2019"]) == 0
    assert main([*common, "tag", target, "--remove", "sylt 2019", "--description", "Kite"]) == 0
    meta = _metadata(encoder, tmp_path, target)
    assert meta.user_tags == ("Lena",) and meta.description == "Kite"
    capsys.readouterr()
    assert main([*common, "tag", target]) == 0  # no options: show
    out = capsys.readouterr().out
    assert f"{target}\n  tags: Lena\n  description: Kite\n" == out
    assert main([*common, "tag", target, "--description", ""]) == 0  # "" clears it
    assert _metadata(encoder, tmp_path, target).description is None


def test_tag_json_and_several_photos(indexed, capsys):
    common, photos = indexed
    paths = [str(p) for p in photos[:3]]
    capsys.readouterr()
    assert main([*common, "tag", *paths, "--add", "beach", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["photos"]
    assert [p["path"] for p in shown] == paths
    assert all(p["tags"] == ["beach"] and p["description"] is None for p in shown)


def test_a_path_not_in_the_library_changes_nothing(indexed, encoder, tmp_path, capsys):
    common, photos = indexed
    capsys.readouterr()
    stray = tmp_path / "elsewhere.jpg"
    assert main([*common, "tag", str(photos[0]), str(stray), "--add", "x"]) == 1
    err = capsys.readouterr().err
    assert "Not in the library" in err and "elsewhere.jpg" in err and "nothing was changed" in err
    assert _metadata(encoder, tmp_path, photos[0]) is None


def test_tag_with_no_library_says_what_to_do(tiny_model_dir, tmp_path, capsys):
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "empty")]
    assert main([*common, "tag", str(tmp_path / "a.jpg"), "--add", "x"]) == 1
    assert "index a folder first" in capsys.readouterr().err


def test_search_json_gives_visual_boost_and_why(indexed, capsys):
    common, _ = indexed
    capsys.readouterr()
    assert main([*common, "search", "zebra", "--top-k", "6", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)["results"]
    last = before[-1]["path"]  # the photo the pixels alone rank last
    assert all(r["boost"] == 0 and r["visual"] == r["score"] for r in before)
    assert main([*common, "tag", last, "--add", "zebra"]) == 0
    capsys.readouterr()
    assert main([*common, "search", "zebra", "--top-k", "1", "--json"]) == 0
    (first,) = json.loads(capsys.readouterr().out)["results"]
    assert first["path"] == last
    assert first["boost"] == 0.9 and first["boost_reason"] == "your tag “zebra”"
    assert first["score"] == pytest.approx(first["visual"] + (1 - first["visual"]) * 0.9)
