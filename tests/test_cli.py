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
    assert set(out) == {
        "query",
        "aggregate",
        "preset",
        "temperature",
        "centre",
        "min_score",
        "top_k",
        "variants",
        "broader",
        "results",
    }
    assert out["query"] == "dogs on the beach" and out["preset"] == "model"
    assert out["aggregate"] == "ensemble" and out["broader"] == []
    assert out["variants"][0] == {
        "text": "dogs on the beach",
        "prompt": "a photo of dogs on the beach.",
        "weight": 1.0,
        "kind": "query",
    }
    assert 1 < len(out["variants"]) <= 8
    assert all(v["kind"] in ("query", "synonym") for v in out["variants"])
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


@pytest.mark.parametrize("module", ["gallery_app", "gallery_app.cli"])
def test_python_dash_m_runs_the_command(module, capsys):
    """`python -m gallery_app` and `python -m gallery_app.cli` are `gallery-app` itself."""
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    expected = capsys.readouterr().out
    ran = subprocess.run(
        [sys.executable, "-m", module, "search", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == expected


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

    from gallery_app.cli import search as cli_search

    def write_forever(args):
        while True:
            sys.stdout.write("x" * 65536)
            sys.stdout.flush()

    read_end, write_end = os.pipe()
    os.close(read_end)
    saved = os.dup(1)
    stdout = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(cli_search, "run_search", write_forever)
    try:
        assert main(["search", "dog"]) == 1
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


# --- what reaches the terminal (issue 10) -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain/photo.jpg", "plain/photo.jpg"),
        ("café ☕ 日本 👩‍👩‍👧 ñ", "café ☕ 日本 👩‍👩‍👧 ñ"),  # any script, emoji with joiners
        ("a\u00a0b\u3000c", "a\u00a0b\u3000c"),  # spaces other than ASCII are text too
        ("\x1b[31mred", "\\x1b[31mred"),
        ("new\nline\r\ttab", "new\\nline\\r\\ttab"),
        ("bell\x07 del\x7f", "bell\\x07 del\\x7f"),
        ("c1 \x9b31m", "c1 \\x9b31m"),  # CSI as one character
        ("evil\u202etxt.jpg", "evil\\u202etxt.jpg"),  # right-to-left override
        ("iso\u2066x\u2069", "iso\\u2066x\\u2069"),
        ("para\u2029graph", "para\\u2029graph"),
        ("latin1 caf\udce9", "latin1 caf\udce9"),  # an undecodable byte stays that byte
        ("c1 byte \udc9b", "c1 byte \\x9b"),  # ... unless it is a C1 control
    ],
)
def test_printable_shows_control_characters_and_keeps_text(text, shown):
    from gallery_app.cli.common import printable

    assert printable(text) == shown


def test_argv_text_replaces_only_undecodable_bytes():
    from gallery_app.cli.common import argv_text

    assert argv_text("caf\udce9 ☕") == "caf\ufffd ☕"
    assert argv_text("café ☕") == "café ☕"


HOSTILE_GOOD = "\x1b[31mred\nline.png"
HOSTILE_BROKEN = "\x1b[31mbroken\n.jpg"


def _escaped(name: str) -> bytes:
    return name.replace("\x1b", "\\x1b").replace("\n", "\\n").encode()


@pytest.fixture
def hostile_library(tiny_model_dir, make_images, tmp_path):
    """A folder holding a photo and a broken file whose names carry ESC[31m and a newline,
    and a data folder whose own name carries an escape sequence."""
    photos = make_images(3)
    folder = photos[0].parent
    photos[2].rename(folder / HOSTILE_GOOD)
    (folder / HOSTILE_BROKEN).write_bytes(b"\xff\xd8 not a jpeg")
    data = tmp_path / "data\x1b[2J"
    return folder, ["--model", str(tiny_model_dir), "--data-dir", str(data)]


def _run_bytes(capsysbinary, *args: str) -> tuple[int, bytes, bytes]:
    """main() in this process, its output as the bytes a terminal would receive."""
    capsysbinary.readouterr()
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out, err


def test_escape_sequences_in_names_are_shown_not_played(hostile_library, capsysbinary):
    folder, common = hostile_library
    code, index_out, index_err = _run_bytes(capsysbinary, *common, "index", str(folder))
    assert code == 0, index_err
    assert _escaped(HOSTILE_BROKEN) in index_out  # the failure list
    code, search_out, search_err = _run_bytes(
        capsysbinary, *common, "search", "red", "--top-k", "10"
    )
    assert code == 0, search_err
    assert _escaped(HOSTILE_GOOD) in search_out
    code, cache_out, cache_err = _run_bytes(capsysbinary, *common, "cache", "info")
    assert code == 0, cache_err
    assert b"data\\x1b[2J" in cache_out
    code, debug_out, debug_err = _run_bytes(
        capsysbinary,
        *common,
        "debug-scores",
        str(folder / HOSTILE_GOOD),
        str(folder / HOSTILE_BROKEN),
    )
    assert code == 0, debug_err
    assert _escaped(HOSTILE_GOOD) in debug_out  # best photo column and per-photo rows
    assert b"skipped " + _escaped(str(folder / HOSTILE_BROKEN)) in debug_out
    for shown in (index_out, index_err, search_out, search_err, cache_out, cache_err, debug_out):
        assert b"\x1b" not in shown
        assert not any(line.startswith((b"line.png", b".jpg")) for line in shown.splitlines())

    # --json: JSON's own escaping is the safe form, and the names come back exactly
    code, as_json, _ = _run_bytes(capsysbinary, *common, "search", "red", "--top-k", "10", "--json")
    assert code == 0 and b"\x1b" not in as_json
    paths = {r["path"] for r in json.loads(as_json)["results"]}
    assert str(folder / HOSTILE_GOOD) in paths


def test_names_that_are_not_utf8_give_valid_json(
    tiny_model_dir, make_images, tmp_path, capsysbinary
):
    photos = make_images(2)
    folder = photos[0].parent
    raw_name = os.path.join(os.fsencode(folder), b"latin1-caf\xe9.png")
    os.rename(photos[1], raw_name)
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    code, indexed, err = _run_bytes(capsysbinary, *common, "index", str(folder), "--json")
    assert code == 0, err
    json.loads(indexed.decode("utf-8"))  # strict UTF-8 text, valid JSON
    code, searched, err = _run_bytes(capsysbinary, *common, "search", "cafe", "--json")
    assert code == 0, err
    results = json.loads(searched.decode("utf-8"))["results"]
    # a JSON reader gets the name back as Python escapes it: the exact bytes on disk
    assert raw_name in {os.fsencode(r["path"]) for r in results}
    code, table, err = _run_bytes(capsysbinary, *common, "search", "cafe")
    assert code == 0, err
    assert raw_name in table  # text mode: the name as the bytes the file system gave


def test_a_query_that_is_not_utf8_is_searched_with_replacement(
    tiny_model_dir, make_images, tmp_path, capsys
):
    folder = make_images(2)[0].parent
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    assert main([*common, "index", str(folder)]) == 0
    query = b"caf\xe9 on the beach"  # Latin-1 bytes, as a terminal in another locale sends
    run = subprocess.run(
        [sys.executable, "-m", "gallery_app", *common, "search", query, "--json"],
        capture_output=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["query"] == "caf\ufffd on the beach"
    assert len(out["results"]) == 2
    # the same argument in this process: Python hands it over with a surrogate escape
    assert main([*common, "search", os.fsdecode(query)]) == 0
    assert "caf\ufffd on the beach" in capsys.readouterr().out


# --- a cache that cannot be written (issue 10) --------------------------------------------


def test_cache_clear_that_cannot_delete_reports_it_and_deletes_the_rest(
    tiny_model_dir, make_images, tmp_path, monkeypatch, capsys
):
    """Tests run as root, where chmod does not stop a delete: the refusal is what a
    read-only folder gives, raised by the delete itself."""
    folder = make_images(3)[0].parent
    data = tmp_path / "data"
    common = ["--model", str(tiny_model_dir), "--data-dir", str(data)]
    assert main([*common, "index", str(folder)]) == 0
    thumbnails = sorted((data / "thumbnails").glob("*/*.jpg"))
    assert len(thumbnails) == 3
    refused = thumbnails[1]
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self == refused:
            raise OSError(30, "Read-only file system", str(self))
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    capsys.readouterr()
    assert main([*common, "cache", "clear"]) == 1
    err = capsys.readouterr().err
    assert f"Cannot clear the thumbnail cache {data / 'thumbnails'}" in err
    assert f"read-only file system at {refused}" in err
    assert sorted((data / "thumbnails").glob("*/*.jpg")) == [refused]  # the others went

    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert main([*common, "cache", "clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == 0


def test_cache_rebuild_stops_at_a_cache_it_cannot_write(
    tiny_model_dir, make_images, tmp_path, monkeypatch, capsys
):
    from gallery_app.core import imaging

    folder = make_images(2)[0].parent
    data = tmp_path / "data"
    common = ["--model", str(tiny_model_dir), "--data-dir", str(data)]
    assert main([*common, "index", str(folder)]) == 0
    assert main([*common, "cache", "clear"]) == 0
    capsys.readouterr()

    def read_only_put(self, image_path, mtime_ns, thumbnail):
        raise OSError(30, "Read-only file system", str(self.folder / "ab"))

    monkeypatch.setattr(imaging.ThumbnailCache, "put", read_only_put)
    assert main([*common, "cache", "rebuild"]) == 1
    err = capsys.readouterr().err
    assert f"Cannot write thumbnails to {data / 'thumbnails'} (0 made so far)" in err
    assert "read-only file system" in err
    assert "could not be read" not in err  # the originals are fine: it is the cache


def test_log_lines_show_control_characters_but_keep_tracebacks():
    import logging

    from gallery_app.cli.common import PrintableFormatter

    formatter = PrintableFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "gallery_app",
            logging.WARNING,
            __file__,
            1,
            "no thumbnail for %s",
            ("a\x1b[2J\nb",),
            sys.exc_info(),
        )
    text = formatter.format(record)
    first, *rest = text.splitlines()
    assert first == "WARNING gallery_app: no thumbnail for a\\x1b[2J\\nb"
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom"
