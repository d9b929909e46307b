"""`gallery-app search --after/--before/--taken/--folder/--sort` and `gallery-app duplicates`:
exact filters (the top k inside them, by brute force), date order, duplicates as JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

import pytest
from photos import random_photo
from PIL import Image

from gallery_app.cli import main


@pytest.fixture
def dated(tiny_model_dir, tmp_path):
    """14 photos with EXIF dates in two folders, a byte copy and a hard link; indexed."""
    truth = {}
    for seed in range(14):
        folder = tmp_path / "photos" / ("trip" if seed % 2 else "home")
        folder.mkdir(parents=True, exist_ok=True)
        taken = dt.datetime(2021 + seed % 3, 1 + seed % 12, 10, 12, 0, seed)
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
        path = folder / f"p{seed:02d}.jpg"
        Image.fromarray(random_photo(seed, (96, 72))).save(path, "JPEG", exif=exif.tobytes())
        truth[str(path)] = taken
    copy = tmp_path / "photos" / "backup" / "copy.jpg"
    copy.parent.mkdir()
    shutil.copyfile(tmp_path / "photos" / "home" / "p00.jpg", copy)
    os.link(tmp_path / "photos" / "home" / "p00.jpg", copy.parent / "link.jpg")
    truth[str(copy)] = truth[str(copy.parent / "link.jpg")] = truth[
        str(tmp_path / "photos" / "home" / "p00.jpg")
    ]
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    assert main([*common, "index", str(tmp_path / "photos")]) == 0
    return common, truth


def run_json(capsys, *argv):
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_filtered_top_k_is_the_top_k_inside_the_filter(capsys, dated, tmp_path):
    common, truth = dated
    everything = run_json(capsys, *common, "search", "red car", "--min-score", "0", "--json")
    ranked = [r["path"] for r in everything["results"]]
    assert len(ranked) == len(truth)
    trip = str(tmp_path / "photos" / "trip")
    cases = {
        ("--folder", trip): lambda p: p.startswith(trip + os.sep),
        ("--taken", "2022"): lambda p: truth[p].year == 2022,
        ("--after", "2021-06", "--before", "2023"): lambda p: (
            dt.datetime(2021, 6, 1) <= truth[p] < dt.datetime(2023, 1, 1)
        ),
        ("--after", "2022", "--folder", trip): lambda p: (
            p.startswith(trip + os.sep) and truth[p] >= dt.datetime(2022, 1, 1)
        ),
    }
    for options, inside in cases.items():
        expected = [p for p in ranked if inside(p)][:3]
        assert len(expected) > 0
        got = run_json(capsys, *common, "search", "red car", "--top-k", "3", *options, "--json")
        assert [r["path"] for r in got["results"]] == expected, options
        assert all(r["taken"] == truth[r["path"]].isoformat() for r in got["results"])


def test_sort_by_date_keeps_the_matches_newest_first(capsys, dated):
    common, truth = dated
    everything = run_json(capsys, *common, "search", "red car", "--min-score", "0", "--json")
    scores = sorted(r["score"] for r in everything["results"])
    cut = scores[len(scores) // 2]
    got = run_json(
        capsys, *common, "search", "red car", "--sort", "date", "--min-score", str(cut), "--json"
    )
    paths = [r["path"] for r in got["results"]]
    assert set(paths) == {r["path"] for r in everything["results"] if r["score"] >= cut}
    assert [truth[p] for p in paths] == sorted((truth[p] for p in paths), reverse=True)
    oldest = run_json(
        capsys,
        *common,
        *("search", "red car", "--sort", "date", "--min-score", str(cut), "--oldest-first"),
        "--json",
    )
    assert [truth[r["path"]] for r in oldest["results"]] == sorted(truth[p] for p in paths)
    assert got["filter"]["sort"] == "date" and oldest["filter"]["newest_first"] is False


def test_a_bad_date_fails_in_one_line_naming_the_fix(capsys, dated):
    common, _ = dated
    capsys.readouterr()
    assert main([*common, "search", "dog", "--after", "last week"]) == 1
    err = capsys.readouterr().err
    assert "not a date" in err and "2023-07" in err and "Traceback" not in err


def test_duplicates_json_groups_the_copies(capsys, dated, tmp_path):
    common, _ = dated
    report = run_json(capsys, *common, "duplicates", "--min-similarity", "1", "--json")
    identical = [g for g in report["groups"] if g["kind"] == "identical"]
    assert len(identical) == 1
    names = sorted(os.path.basename(p["path"]) for p in identical[0]["photos"])
    assert names == ["copy.jpg", "link.jpg", "p00.jpg"]
    photo = identical[0]["photos"][0]
    assert photo["width"] == 96 and photo["height"] == 72 and photo["taken"]
    assert sum(p["same_file"] for p in identical[0]["photos"]) == 2
    assert report["photos"] == 16
    capsys.readouterr()
    # The tiny random model puts unrelated photos within 0.95: cut near 1 for the table.
    assert main([*common, "duplicates", "--min-similarity", "0.9999"]) == 0
    out = capsys.readouterr()
    assert "#1 identical (3 files, same bytes)" in out.out and "nothing was deleted" in out.err


def test_duplicates_refuses_a_cut_outside_zero_to_one(capsys, dated):
    common, _ = dated
    capsys.readouterr()
    assert main([*common, "duplicates", "--min-similarity", "1.5"]) == 1
    assert "--min-similarity" in capsys.readouterr().err
