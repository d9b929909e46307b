"""debug-scores, tune and eval as a user runs them, on the tiny model and generated photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gallery_app.cli import main
from gallery_app.core.probes import DEFAULT_PROBE_QUERIES


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gallery_app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


@pytest.fixture
def indexed(tiny_model_dir: Path, make_images, tmp_path: Path, capsys) -> list[str]:
    """Common arguments of a library holding 8 generated photos."""
    folder = make_images(8)[0].parent
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    assert main([*common, "index", str(folder)]) == 0
    capsys.readouterr()
    return common


# --- debug-scores -------------------------------------------------------------------------


def test_debug_scores_json_on_a_library_sample(indexed, capsys):
    assert main([*indexed, "debug-scores", "--sample", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {
        "preset",
        "temperature",
        "centre",
        "queries",
        "images",
        "diagnoses",
        "failed",
    }
    assert [q["query"] for q in data["queries"]] == list(DEFAULT_PROBE_QUERIES)
    assert len(data["images"]) == 5
    for image in data["images"]:
        assert len(image["raw_by_query"]) == len(DEFAULT_PROBE_QUERIES)
        assert image["raw"]["min"] <= image["raw"]["mean"] <= image["raw"]["max"]
        assert all(0.0 <= s <= 1.0 for s in image["score_by_query"])
    assert data["preset"] == "model"
    for diagnosis in data["diagnoses"]:
        assert set(diagnosis) == {
            "code",
            "message",
            "suggested_temperature",
            "suggested_centre",
        }


def test_debug_scores_table_for_named_images_and_queries(indexed, make_images, capsys):
    photos = make_images(2, folder="extra", start=50)
    code = main(
        [*indexed, "debug-scores", *map(str, photos), "--query", "red car", "--query", "cat"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "2 probe queries x 2 photos" in out
    assert "raw min" in out and "score min" in out and "best photo" in out
    lines = out.splitlines()
    assert any(line.startswith("red car ") for line in lines)
    assert sum(str(p) in out for p in photos) == 2
    assert "Diagnosis" in out


def test_debug_scores_honours_preset_and_overrides(indexed, capsys):
    args = [*indexed, "debug-scores", "--json", "--preset", "seed", "--centre", "0.05"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["preset"], data["temperature"], data["centre"]) == ("custom", 25.0, 0.05)


def test_debug_scores_on_an_empty_library_is_one_clear_line(tiny_model_dir, tmp_path):
    result = run_cli(
        "--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "e"), "debug-scores"
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gallery-app index" in lines[0]


# --- tune, piped --------------------------------------------------------------------------


def test_tune_piped_recommend_apply_then_search_with_the_custom_preset(indexed, tmp_path):
    script = "help\ntest dog\nrecommend\napply\nquit\n"
    result = run_cli(*indexed, "tune", stdin=script)
    assert result.returncode == 0, result.stderr
    assert "commands:" in result.stdout
    assert "calibrated" in result.stdout and "seed" in result.stdout
    assert "recommended: T = " in result.stdout
    assert "tune>" not in result.stdout  # no prompt when stdin is not a terminal
    saved = json.loads((tmp_path / "config" / "settings.json").read_text())
    assert saved["preset"] == "custom"

    searched = run_cli(*indexed, "search", "dog", "--preset", "custom", "--json")
    assert searched.returncode == 0, searched.stderr
    out = json.loads(searched.stdout)
    assert out["preset"] == "custom"
    assert out["temperature"] == pytest.approx(saved["custom_temperature"])
    assert out["centre"] == pytest.approx(saved["custom_centre"])


def test_tune_exit_status_reports_a_failed_command(indexed):
    result = run_cli(*indexed, "tune", stdin="set nope\n")
    assert result.returncode == 1
    assert "error: usage: set T" in result.stderr


def test_search_with_no_saved_custom_preset_is_one_clear_line(tiny_model_dir, tmp_path):
    result = run_cli("--model", str(tiny_model_dir), "search", "dog", "--preset", "custom")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gallery-app tune" in lines[0]


def test_a_corrupt_settings_file_is_one_clear_line(indexed, tmp_path):
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "settings.json").write_text("{broken")
    result = run_cli(*indexed, "debug-scores")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "settings.json" in lines[0]


# --- eval ---------------------------------------------------------------------------------


@pytest.fixture
def labelled(make_images, tmp_path: Path) -> Path:
    root = tmp_path / "labelled"
    for n, label in enumerate(("red_car", "dog", "snow")):
        make_images(3, folder=f"labelled/{label}", start=10 * n, ext=".jpg")
    make_images(2, folder="labelled", start=90)  # distractors
    return root


def test_eval_json_shape(tiny_model_dir, labelled, capsys):
    assert main(["--model", str(tiny_model_dir), "eval", str(labelled), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [label["query"] for label in data["labels"]] == ["dog", "red car", "snow"]
    assert data["images"] == 11 and data["distractors"] == 2
    for mode, expand in (("query_only", False), ("ensemble", True), ("max", True)):
        quality = data[mode]
        assert quality["expand"] is expand and quality["mode"] == mode
        for key in ("hit_at_1", "recall_at_1", "recall_at_10", "mean_average_precision"):
            assert 0.0 <= quality[key] <= 1.0
        assert quality["hit_at_1"] <= quality["hit_at_5"] <= quality["hit_at_10"]
        assert quality["recall_at_1"] <= quality["recall_at_5"] <= quality["recall_at_10"]
        # three relevant photos per query: the first one is at most a third of them
        assert quality["recall_at_1"] <= 1 / 3 + 1e-9
        calibration = quality["calibration"]
        assert set(calibration) == {
            "mean_score_relevant",
            "mean_score_irrelevant",
            "expected_calibration_error",
            "best_f1",
        }
        assert set(calibration["best_f1"]) == {"min_score", "f1", "precision", "recall"}
        assert [q["relevant"] for q in quality["per_query"]] == [3, 3, 3]
        for q in quality["per_query"]:
            assert 1 <= q["first_relevant_rank"] <= 11 - 2


def test_eval_table(tiny_model_dir, labelled, capsys):
    assert main(["--model", str(tiny_model_dir), "eval", str(labelled)]) == 0
    out = capsys.readouterr().out
    for label in (
        "hit@1",
        "recall@1",
        "recall@10",
        "mean average precision",
        "expected calibration",
    ):
        assert label in out
    assert "query only" in out and "ensemble" in out and "max" in out
    assert "red car" in out


def test_eval_honours_fast(tiny_model_dir, labelled, capsys, monkeypatch):
    """--fast reaches eval's encoder: its numbers are the int8 model's ($GALLERY_APP_INT8=1
    gives the same), not full precision's."""

    def evaluate(*options: str) -> dict:
        argv = ["--model", str(tiny_model_dir), *options, "eval", str(labelled), "--json"]
        assert main(argv) == 0
        return json.loads(capsys.readouterr().out)

    monkeypatch.setenv("GALLERY_APP_INT8", "0")
    full, fast = evaluate(), evaluate("--fast")
    monkeypatch.setenv("GALLERY_APP_INT8", "1")
    assert fast == evaluate()
    assert fast != full
    # int8 moves the cosines a little, not the photos: the same labels and photos were read
    assert (fast["labels"], fast["images"]) == (full["labels"], full["images"])


def test_eval_of_a_folder_without_labels_is_one_clear_line(tiny_model_dir, tmp_path):
    (tmp_path / "flat").mkdir()
    result = run_cli("--model", str(tiny_model_dir), "eval", str(tmp_path / "flat"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DIR/<label>" in lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["eval"],
        ["debug-scores", "--sample", "0"],
        ["debug-scores", "--preset", "warm"],
        ["tune", "a.jpg", "b.jpg"],
    ],
)
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage" in capsys.readouterr().err


# --- hostile arguments (issue 10) ---------------------------------------------------------


def test_debug_scores_of_a_fifo_fails_naming_it(tiny_model_dir, tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    # A real process: were the FIFO opened, the timeout would end the test, not the suite.
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "d")]
    result = subprocess.run(
        [sys.executable, "-m", "gallery_app", *common, "debug-scores", str(fifo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(fifo) in lines[0] and "named pipe" in lines[0]


def test_tune_of_a_folder_image_fails_naming_it(indexed, tmp_path, capsys):
    assert main([*indexed, "tune", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"Cannot read image {tmp_path}: not a regular file (a folder)" in err


def test_tune_reads_a_piped_term_that_is_not_utf8(indexed):
    result = subprocess.run(
        [sys.executable, "-m", "gallery_app", *indexed, "tune"],
        input=b"test caf\xe9\nset 20\n",
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},  # strict decoding, as in a UTF-8 locale
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")
    assert "'caf\ufffd' vs" in out and "T = 20.00" in out
