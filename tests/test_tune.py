"""The tune interpreter driven through io.StringIO: tables, recommend, feedback, apply."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from gallery_app.cli.tune import RECOMMEND_SAMPLE, Tuner, read_feedback
from gallery_app.core.calibrate import (
    calibrated_score,
    fit_calibration,
    model_preset,
    recommend_calibration,
)
from gallery_app.core.errors import ConfigError
from gallery_app.core.indexer import Indexer
from gallery_app.core.probes import DEFAULT_PROBE_QUERIES, encode_files, probe_raw, sample_library
from gallery_app.core.search import Searcher
from gallery_app.core.settings_store import UserSettings, load_settings, save_settings


@pytest.fixture
def photos(library, encoder, make_images):
    paths = make_images(10)
    Indexer(library, encoder).index([paths[0].parent])
    return paths


def make_tuner(encoder, library, image=None):
    out, err = io.StringIO(), io.StringIO()
    tuner = Tuner(
        encoder,
        library,
        out=out,
        err=err,
        image=image,
        logit_scale=encoder.logit_scale,
        logit_bias=encoder.logit_bias,
    )
    return tuner, out, err


def drive(tuner, script: str) -> int:
    return tuner.run(io.StringIO(script))


def table_rows(text: str) -> list[list[str]]:
    """The rows of the last `test` table: [mark, range, T, c, raw, calibrated]."""
    rows = []
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] == "*":
            rows.append(cells)
        elif len(cells) == 5 and cells[0] in ("current", "seed", "model"):
            rows.append(["", *cells])
    return rows


def test_test_prints_a_temperature_table_whose_scores_follow_the_formula(encoder, library, photos):
    tuner, out, err = make_tuner(encoder, library)
    assert drive(tuner, "test dog\n") == 0, err.getvalue()
    rows = table_rows(out.getvalue())
    assert [r[1] for r in rows].count("seed") == 5
    assert [float(r[2]) for r in rows if r[1] == "seed"] == [10.0, 15.0, 20.0, 25.0, 30.0]
    model = model_preset(encoder.logit_scale, encoder.logit_bias)
    assert model.temperature == pytest.approx(float(rows[-3][2]), abs=0.01)  # model x 1.0
    marked = [r for r in rows if r[0] == "*"]
    assert len(marked) == 1 and float(marked[0][2]) == pytest.approx(model.temperature, abs=0.01)
    best = Searcher(library, encoder).search("dog", top_k=1).rank(model, top_k=1)[0]
    assert f"the library's best photo for it, {best.path}:" in out.getvalue()
    weight = float(re.search(r"\(weight ([0-9.]+)\)", out.getvalue()).group(1))
    for _, _, temperature, centre, raw, calibrated in rows:
        expected = weight * calibrated_score(float(raw), float(temperature), float(centre))
        assert float(calibrated) == pytest.approx(float(expected), abs=2e-3)


def test_test_against_an_image_uses_that_photo(encoder, library, photos):
    tuner, out, err = make_tuner(encoder, library, image=photos[3])
    assert drive(tuner, "expand off\ntest snow\n") == 0, err.getvalue()
    text = out.getvalue()
    assert f"vs photo {photos[3]}" in text
    expected = float(
        encode_files(encoder, [photos[3]]).vectors[0] @ encoder.encode_texts(["snow"])[0]
    )
    raw = float(table_rows(text)[0][4])
    assert raw == pytest.approx(expected, abs=1e-4)


def test_set_centre_preset_and_expand_change_the_state(encoder, library, photos):
    tuner, out, _ = make_tuner(encoder, library)
    assert drive(tuner, "set 42\ncentre 0.05\nexpand off\nshow\n") == 0
    assert (tuner.calibration.temperature, tuner.calibration.centre) == (42.0, 0.05)
    assert tuner.calibration.preset == "custom" and tuner.expand is False
    assert "T = 42.00, c = 0.0500, expand off" in out.getvalue()
    drive(tuner, "preset seed\n")
    assert (tuner.calibration.temperature, tuner.calibration.centre) == (25.0, 0.0)
    drive(tuner, "preset model\n")
    assert tuner.calibration.preset == "model"


def test_threshold_is_still_accepted_as_the_old_name_of_centre(encoder, library):
    tuner, _, err = make_tuner(encoder, library)
    assert drive(tuner, "threshold 0.07\n") == 0, err.getvalue()
    assert tuner.calibration.centre == 0.07


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("frobnicate", "unknown command"),
        ("set hot", "usage: set T"),
        ("set -3", "positive"),
        ("centre nan", "finite"),
        ("preset warm", "model, seed or custom"),
        ("preset custom", "No custom calibration"),
        ("expand maybe", "on or off"),
        ("test", "needs a term"),
        ("feedback", "CSV"),
    ],
)
def test_a_bad_command_says_why_and_the_session_goes_on(encoder, library, photos, line, fragment):
    tuner, _, err = make_tuner(encoder, library)
    assert drive(tuner, f"{line}\nset 12\n") == 1
    assert fragment in err.getvalue()
    assert err.getvalue().count("error:") == 1
    assert tuner.calibration.temperature == 12.0  # the next command still ran


def test_quit_stops_reading(encoder, library, photos):
    tuner, _, _ = make_tuner(encoder, library)
    drive(tuner, "set 12\nquit\nset 99\n")
    assert tuner.calibration.temperature == 12.0


def test_empty_library_test_says_to_index(encoder, library):
    tuner, _, err = make_tuner(encoder, library)
    assert drive(tuner, "test dog\nrecommend\n") == 1
    assert "gallery-app index" in err.getvalue()
    assert "at least 2 indexed photos" in err.getvalue()


def test_recommend_then_apply_saves_the_recommended_custom_preset(encoder, library, photos):
    tuner, out, err = make_tuner(encoder, library)
    assert drive(tuner, "recommend\napply\n") == 0, err.getvalue()
    images = sample_library(library, RECOMMEND_SAMPLE)
    expected = recommend_calibration(probe_raw(encoder, DEFAULT_PROBE_QUERIES, images))
    saved = load_settings()
    assert saved.preset == "custom"
    assert saved.custom_temperature == pytest.approx(expected.calibration.temperature)
    assert saved.custom_centre == pytest.approx(expected.calibration.centre)
    assert f"T = {expected.calibration.temperature:.2f}" in out.getvalue()
    assert expected.reason in out.getvalue()
    assert tuner.calibration.preset == "custom"


def test_apply_without_a_recommendation_saves_the_current_values(encoder, library, photos):
    save_settings(UserSettings(min_score=0.25))
    tuner, _, _ = make_tuner(encoder, library)
    assert drive(tuner, "set 33\nthreshold 0.02\nexpand off\napply\n") == 0
    assert load_settings() == UserSettings("custom", 33.0, 0.02, 0.25, False)
    # A new session starts from what was applied.
    again, _, _ = make_tuner(encoder, library)
    assert again.calibration.temperature == 33.0 and again.expand is False
    assert drive(again, "preset model\npreset custom\n") == 0
    assert again.calibration.centre == 0.02


def test_feedback_fits_and_apply_saves_the_fit(encoder, library, photos, tmp_path: Path):
    rng = np.random.default_rng(0)
    rows, judged = ["path,query,relevant"], []
    for path in photos:
        for query in ("dog", "snow"):
            relevant = bool(rng.random() < 0.5)
            judged.append((path, query, relevant))
            # Relative paths are taken from the CSV's folder.
            rows.append(f"{path.relative_to(tmp_path)},{query},{'yes' if relevant else '0'}")
    csv_path = tmp_path / "feedback.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    tuner, out, err = make_tuner(encoder, library)
    assert drive(tuner, f"feedback {csv_path}\napply\n") == 0, err.getvalue()

    vectors = encode_files(encoder, photos).vectors
    # The statistic the search ranks by: the cosine with e, the ensemble of the query and
    # its synonyms (expand is on by default).
    assert tuner.expand and tuner.aggregate == "ensemble"
    text = {}
    for query in ("dog", "snow"):
        variants = Searcher(library, encoder, tuner.expander).variants(query)
        assert all(v.kind != "broader" for v in variants)
        vectors_of = encoder.encode_prompts([v.prompt for v in variants])
        e = sum(v.weight * t for v, t in zip(variants, vectors_of, strict=True))
        text[query] = e / np.linalg.norm(e)
    raw = [float(vectors[photos.index(p)] @ text[q]) for p, q, _ in judged]
    expected = fit_calibration(
        raw,
        [r for _, _, r in judged],
        prior=model_preset(encoder.logit_scale, encoder.logit_bias),
    ).calibration
    saved = load_settings()
    assert saved.custom_temperature == pytest.approx(expected.temperature, rel=1e-6)
    assert saved.custom_centre == pytest.approx(expected.centre, abs=1e-6)
    assert f"fitted on {len(judged)} judgements" in out.getvalue()
    assert "ensemble" in out.getvalue() and "top 50" not in out.getvalue()


def test_feedback_only_from_the_top_is_held_near_the_prior(
    encoder, library, photos, tmp_path: Path, monkeypatch
):
    import gallery_app.core.feedback as feedback

    monkeypatch.setattr(feedback, "FEEDBACK_TOP_RANKS", 3)  # 10 photos: ranks 1-3 are "the top"
    searcher = Searcher(library, encoder)
    rows = ["path,query,relevant"]
    for query in ("dog", "snow"):
        best = searcher.search(query, top_k=3).rank(model_preset(0, 0), top_k=3)
        rows += [f"{r.path},{query},{1 if n < 2 else 0}" for n, r in enumerate(best)]
    top = tmp_path / "top.csv"
    top.write_text("\n".join(rows) + "\n")
    tuner, out, err = make_tuner(encoder, library)
    assert drive(tuner, f"feedback {top}\n") == 0, err.getvalue()
    assert "All judged photos are in the top 3" in out.getvalue()
    assert "lower down" in out.getvalue()
    held = tuner.pending[0]

    # The same judgements plus one photo from the bottom: no longer only the top.
    worst = searcher.search("dog", top_k=None).rank(model_preset(0, 0), top_k=None)[-1]
    spread = tmp_path / "spread.csv"
    spread.write_text(top.read_text() + f"{worst.path},dog,0\n")
    free, out2, _ = make_tuner(encoder, library)
    assert drive(free, f"feedback {spread}\n") == 0
    assert "All judged photos" not in out2.getvalue()
    assert "rank 1 to 10" in out2.getvalue()

    # Held: T and c stay closer to the model prior than an unheld fit of the same pairs.
    prior = model_preset(encoder.logit_scale, encoder.logit_bias)
    loose = fit_calibration(*_pairs(tuner, top), prior=prior).calibration

    def distance(fit):  # from the prior, in the prior's own units (log T, logit at c)
        return np.hypot(
            np.log(fit.temperature / prior.temperature),
            prior.temperature * (fit.centre - prior.centre),
        )

    assert distance(held) < 0.9 * distance(loose)


def _pairs(tuner, csv_path):
    """(raw, relevant) as the tuner computes them, for a fit without the stronger prior."""
    from gallery_app.core.feedback import fit_feedback

    judgements = read_feedback(csv_path)
    images = encode_files(tuner.encoder, sorted({j.path for j in judgements}))
    fitted = fit_feedback(tuner.searcher, judgements, images, tuner.calibration, tuner.model)
    return fitted.raw, np.array([j.relevant for j in fitted.judgements])


def test_feedback_skips_unreadable_photos(encoder, library, photos, tmp_path: Path):
    csv_path = tmp_path / "f.csv"
    csv_path.write_text(f"{photos[0]},dog,1\n{tmp_path / 'gone.jpg'},dog,0\n")
    tuner, out, err = make_tuner(encoder, library)
    assert drive(tuner, f"feedback {csv_path}\n") == 0
    assert "skipped" in err.getvalue() and "gone.jpg" in err.getvalue()
    assert "fitted on 1 judgements" in out.getvalue()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("a.jpg,dog\n", "expected 3 columns"),
        ("a.jpg,dog,maybe\n", "must be 1 or 0"),
        (",dog,1\n", "must not be empty"),
        ("path,query,relevant\n", "no judgements"),
    ],
)
def test_bad_feedback_files_are_config_errors_with_the_line(tmp_path: Path, content, fragment):
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        read_feedback(path)


def test_feedback_file_parsing(tmp_path: Path):
    path = tmp_path / "sub" / "f.csv"
    path.parent.mkdir()
    path.write_text("path,query,relevant\n# a comment\nx.jpg, red car ,Yes\n/abs/y.png,dog,0\n\n")
    first, second = read_feedback(path)
    assert (first.path, first.query, first.relevant) == (
        str(path.parent / "x.jpg"),
        "red car",
        True,
    )
    assert (second.path, second.relevant) == ("/abs/y.png", False)
    with pytest.raises(ConfigError, match="Cannot read"):
        read_feedback(tmp_path / "missing.csv")


def test_an_unreadable_image_is_refused_at_start(encoder, library, tmp_path: Path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"junk")
    with pytest.raises(ConfigError, match="Cannot read image"):
        make_tuner(encoder, library, image=junk)


# --- hostile input (issue 10) -------------------------------------------------------------


def call_guarding_fifo(fifo: Path, call):
    """call() in a thread; if it is still blocked on the FIFO after a generous wait, a writer
    is opened to release it and the test fails (instead of hanging the suite)."""
    import os
    import threading

    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(writer)
        worker.join()
        pytest.fail(f"blocked opening the FIFO {fifo}")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


def test_a_fifo_image_is_refused_naming_it(encoder, library, tmp_path: Path):
    import os

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as raised:
        call_guarding_fifo(fifo, lambda: make_tuner(encoder, library, image=fifo))
    assert str(fifo) in str(raised.value) and "named pipe" in str(raised.value)


def test_feedback_skips_a_fifo_photo_and_refuses_a_fifo_csv(
    encoder, library, photos, tmp_path: Path
):
    import os

    fifo_photo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo_photo)
    csv_path = tmp_path / "f.csv"
    csv_path.write_text(f"{photos[0]},dog,1\n{fifo_photo},dog,0\n")
    tuner, out, err = make_tuner(encoder, library)
    assert call_guarding_fifo(fifo_photo, lambda: drive(tuner, f"feedback {csv_path}\n")) == 0
    assert f"skipped {fifo_photo}: not a regular file (a named pipe)" in err.getvalue()
    assert "fitted on 1 judgements" in out.getvalue()

    fifo_csv = tmp_path / "pipe.csv"
    os.mkfifo(fifo_csv)
    with pytest.raises(ConfigError, match="named pipe"):
        call_guarding_fifo(fifo_csv, lambda: read_feedback(fifo_csv))


def test_a_term_that_is_not_utf8_is_tested_with_replacement(encoder, library, photos):
    tuner, out, err = make_tuner(encoder, library)
    assert drive(tuner, "test caf\udce9\n") == 0, err.getvalue()
    assert "'caf\ufffd' vs" in out.getvalue()


def test_tune_output_shows_control_characters_in_names(encoder, library, make_images):
    photo = make_images(1)[0]
    hostile = photo.parent / "\x1b[31mred\nline.png"
    photo.rename(hostile)
    tuner, out, err = make_tuner(encoder, library, image=hostile)
    assert drive(tuner, "test dog\nfeedback /nowhere/\x1b[2J.csv\n") == 1
    assert "\\x1b[31mred\\nline.png" in out.getvalue()
    assert "\\x1b[2J.csv" in err.getvalue()
    assert "\x1b" not in out.getvalue() + err.getvalue()


def test_feedback_file_that_is_not_utf8_names_itself(tmp_path: Path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a.jpg,caf\xe9,1\n")
    with pytest.raises(ConfigError, match="not UTF-8") as raised:
        read_feedback(path)
    assert str(path) in str(raised.value)
