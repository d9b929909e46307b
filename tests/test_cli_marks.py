"""Marks made in the window, from the command line: `marks list|clear`, `tune feedback --marks`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gallery_app.cli import main
from gallery_app.core.calibrate import model_preset
from gallery_app.core.feedback import MIN_MARKS_EACH, fit_marks
from gallery_app.core.library import Library
from gallery_app.core.search import Searcher
from gallery_app.core.settings_store import load_settings


@pytest.fixture
def marked(tiny_model_dir: Path, make_images, tmp_path: Path, capsys, encoder):
    """A library of 8 photos with 4 marks for "dog" and 2 for "snow", as the window stores
    them; returns the common arguments."""
    folder = make_images(8)[0].parent
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    assert main([*common, "index", str(folder)]) == 0
    capsys.readouterr()
    with Library(tmp_path / "data", encoder.model_id, encoder.dim) as library:
        ids = sorted(library.catalog.vector_ids())
        for n, image_id in enumerate(ids[: 2 * MIN_MARKS_EACH]):
            library.catalog.set_mark(image_id, "dog", n < MIN_MARKS_EACH)
        library.catalog.set_mark(ids[-1], "snow", True)
        library.catalog.set_mark(ids[-2], "snow", False)
    return common


def test_marks_list_shows_every_mark_and_one_query(marked, capsys):
    assert main([*marked, "marks", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 * MIN_MARKS_EACH + 2
    assert {r["query"] for r in rows} == {"dog", "snow"}
    assert all(Path(r["path"]).is_file() and isinstance(r["relevant"], bool) for r in rows)
    assert main([*marked, "marks", "list", "--query", "  Snow "]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[-1] == "2 marks (1 relevant, 1 not relevant) on 1 query"


def test_marks_clear_says_what_would_go_then_clears_with_yes(marked, capsys):
    assert main([*marked, "marks", "clear", "--query", "snow"]) == 1
    assert "would forget the 2 marks for 'snow'; add --yes" in capsys.readouterr().out
    assert main([*marked, "marks", "clear", "--query", "snow", "--yes"]) == 0
    assert "forgot 2 marks" in capsys.readouterr().out
    main([*marked, "marks", "list", "--json"])
    assert {r["query"] for r in json.loads(capsys.readouterr().out)} == {"dog"}
    assert main([*marked, "marks", "clear", "--yes"]) == 0
    assert f"forgot {2 * MIN_MARKS_EACH} marks" in capsys.readouterr().out
    main([*marked, "marks", "list", "--json"])
    assert json.loads(capsys.readouterr().out) == []


def test_marks_without_a_library_says_to_index(tiny_model_dir, tmp_path, capsys):
    code = main(
        ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "none"), "marks", "list"]
    )
    assert code == 1
    assert "gallery-app index FOLDER" in capsys.readouterr().err


def test_tune_feedback_marks_fits_the_marks_and_apply_saves_it(
    marked, encoder, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("sys.stdin", io.StringIO("feedback --marks\napply\n"))
    assert main([*marked, "tune"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    with Library(tmp_path / "data", encoder.model_id, encoder.dim, read_only=True) as library:
        prior = model_preset(encoder.logit_scale, encoder.logit_bias)
        expected, _ = fit_marks(Searcher(library, encoder), library.catalog.marks(), prior, prior)
    assert f"fitted on {2 * MIN_MARKS_EACH + 2} judgements" in out
    assert "across 2 queries" in out
    saved = load_settings()
    assert saved.preset == "custom"
    assert saved.custom_temperature == pytest.approx(expected.calibration.temperature)
    assert saved.custom_centre == pytest.approx(expected.calibration.centre)


def test_tune_feedback_marks_with_too_few_says_how_many_more(marked, monkeypatch, capsys):
    assert main([*marked, "marks", "clear", "--query", "dog", "--yes"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("feedback --marks\n"))
    assert main([*marked, "tune"]) == 1
    err = capsys.readouterr().err
    assert (
        f"mark {MIN_MARKS_EACH - 1} more relevant and {MIN_MARKS_EACH - 1} more not relevant" in err
    )
