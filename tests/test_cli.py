"""The CLI end to end, as a user runs it: index a folder, search it, exit codes, JSON shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gallery_app.cli import main


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "gallery_app", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_index_then_search_end_to_end(tiny_model_dir: Path, make_images, tmp_path):
    photos = make_images(6)
    folder = photos[0].parent
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    data = tmp_path / "cli-data"
    common = ["--model", str(tiny_model_dir), "--data-dir", str(data)]

    indexed = run_cli(*common, "index", str(folder), "--json")
    assert indexed.returncode == 0, indexed.stderr
    report = json.loads(indexed.stdout)
    assert set(report) == {"indexed", "unchanged", "removed", "failed", "total", "seconds"}
    assert (report["indexed"], report["unchanged"], report["removed"], report["total"]) == (
        6,
        0,
        0,
        7,
    )
    assert [f["path"] for f in report["failed"]] == [str(folder / "broken.jpg")]
    assert report["failed"][0]["reason"]

    searched = run_cli(*common, "search", "dogs on the beach", "--top-k", "4", "--json")
    assert searched.returncode == 0, searched.stderr
    out = json.loads(searched.stdout)
    assert set(out) == {"query", "preset", "temperature", "centre", "variants", "results"}
    assert out["query"] == "dogs on the beach" and out["preset"] == "model"
    assert out["variants"][0] == {
        "text": "dogs on the beach",
        "prompt": "a photo of dogs on the beach.",
        "weight": 1.0,
    }
    assert 1 < len(out["variants"]) <= 8
    assert len(out["results"]) == 4
    for result in out["results"]:
        assert set(result) == {"path", "score", "raw", "variant", "prompt", "weight"}
        assert os.path.isabs(result["path"]) and Path(result["path"]).exists()
        assert 0.0 <= result["score"] <= 1.0 and -1.0 <= result["raw"] <= 1.0
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True)

    table = run_cli(
        *common,
        "search",
        "cat",
        "--no-expand",
        "--preset",
        "seed",
        "--temperature",
        "12",
        "--centre",
        "0.05",
    )
    assert table.returncode == 0, table.stderr
    assert "T=12.00" in table.stdout and "c=0.0500" in table.stdout
    assert str(photos[0].parent) in table.stdout
    assert "score" in table.stdout and "raw" in table.stdout


def test_search_flags_override_calibration(tiny_model_dir, make_images, tmp_path, capsys):
    folder = make_images(3)[0].parent
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "d")]
    assert main([*common, "index", str(folder)]) == 0
    capsys.readouterr()
    assert main([*common, "search", "snow", "--no-expand", "--json", "--preset", "seed"]) == 0
    seed = json.loads(capsys.readouterr().out)
    assert (seed["temperature"], seed["centre"], seed["preset"]) == (25.0, 0.0, "seed")
    assert [v["text"] for v in seed["variants"]] == ["snow"]
    assert main([*common, "search", "snow", "--no-expand", "--json", "--temperature", "3"]) == 0
    custom = json.loads(capsys.readouterr().out)
    assert custom["temperature"] == 3.0 and custom["preset"] == "custom"
    for a, b in zip(seed["results"], custom["results"], strict=False):
        if a["path"] == b["path"]:
            assert a["raw"] == pytest.approx(b["raw"])
    assert seed["results"][0]["score"] != custom["results"][0]["score"]


def test_threshold_is_a_deprecated_alias_of_centre(capsys):
    from gallery_app.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["search", "dog", "--threshold", "0.04"])
    assert args.centre == 0.04
    notice = capsys.readouterr().err.strip().splitlines()
    assert notice == ["note: --threshold is now called --centre; --threshold will go."]
    assert parser.parse_args(["search", "dog", "--centre", "0.03"]).centre == 0.03
    assert capsys.readouterr().err == ""
    for command in (["search", "dog"], ["debug-scores"], ["eval", "DIR"]):
        assert parser.parse_args([*command, "--threshold", "0.02"]).centre == 0.02
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "dog", "--help"])
    help_text = capsys.readouterr().out
    assert "--centre" in help_text and "--threshold" not in help_text


def test_bad_model_is_one_clear_line_and_exit_1(tmp_path):
    result = run_cli("--model", str(tmp_path / "missing-model"), "search", "dog")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing-model" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_folder_exit_1(tiny_model_dir, tmp_path, capsys):
    code = main(["--model", str(tiny_model_dir), "index", str(tmp_path / "nope")])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["search"],
        ["search", "dog", "--top-k", "0"],
        ["search", "dog", "--temperature", "-1"],
        ["search", "dog", "--preset", "warm"],
        ["frobnicate"],  # `index` alone rescans the library (tests/test_cli_library.py)
    ],
)
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "index" in out and "search" in out and "desktop app" in out


def test_no_subcommand_opens_the_desktop_app(monkeypatch, tmp_path):
    import gallery_app.ui.app as app_module

    opened = []
    monkeypatch.setattr(
        app_module,
        "run_app",
        lambda data_dir, model, fast=None: opened.append((data_dir, model, fast)) or 0,
    )
    assert main(["--data-dir", str(tmp_path), "--model", "some/model"]) == 0
    assert main(["--data-dir", str(tmp_path), "--fast"]) == 0
    assert opened[0] == (tmp_path, "some/model", None)
    assert opened[1][2] is True


def test_empty_library_says_what_to_do(tiny_model_dir, tmp_path, capsys):
    code = main(["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "e"), "search", "x"])
    assert code == 0
    assert "gallery-app index" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(monkeypatch, capfd):
    """`gallery-app search ... --json | head`: the reader leaving is not an error to report."""
    import os

    from gallery_app import cli

    def write_forever(args):
        while True:
            sys.stdout.write("x" * 65536)
            sys.stdout.flush()

    read_end, write_end = os.pipe()
    os.close(read_end)
    saved = os.dup(1)
    stdout = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(cli, "run_search", write_forever)
    try:
        assert cli.main(["search", "dog"]) == 1
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert "Broken" not in capfd.readouterr().err


def test_fast_mode_indexes_into_the_same_library(tiny_model_dir: Path, make_images, tmp_path):
    photos = make_images(3)
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "cli-data")]
    indexed = run_cli(*common, "--fast", "index", str(photos[0].parent), "--json")
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout)["indexed"] == 3
    # int8 vectors are fp32 vectors up to rounding: a full-precision search reads them.
    searched = run_cli(*common, "search", "dog", "--json", env_extra={"GALLERY_APP_INT8": "0"})
    assert searched.returncode == 0, searched.stderr
    assert len(json.loads(searched.stdout)["results"]) == 3
