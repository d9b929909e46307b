"""The feedback fit from marks kept in a library: the same fit as a CSV through `tune`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from gallery_app.core.calibrate import model_preset
from gallery_app.core.feedback import (
    MIN_MARKS_EACH,
    NotEnoughMarks,
    fit_marks,
    mark_query,
    marks_needed,
)
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library
from gallery_app.core.search import MAX, Searcher

QUERIES = ("dog", "snow on the hills")


@pytest.fixture
def photos(library, encoder, make_images):
    paths = make_images(10)
    Indexer(library, encoder).index([paths[0].parent])
    return paths


def mark_some(library, photos, seed: int = 0) -> list[tuple[Path, str, bool]]:
    """Marks on every photo for both queries, half relevant at random (both kinds present)."""
    rng = np.random.default_rng(seed)
    ids = library.catalog.ids_for_paths([str(p) for p in photos])
    judged = []
    for n, path in enumerate(photos):
        for query in QUERIES:
            relevant = bool(rng.random() < 0.5) if n > 1 else n == 0  # both kinds for sure
            library.catalog.set_mark(ids[str(path)], query, relevant)
            judged.append((path, query, relevant))
    return judged


def prior(encoder):
    return model_preset(encoder.logit_scale, encoder.logit_bias)


def test_the_fit_from_marks_equals_the_fit_from_the_same_judgements_as_a_csv(
    encoder, library, photos, tmp_path: Path
):
    from gallery_app.cli.tune import Tuner

    judged = mark_some(library, photos)
    csv_path = tmp_path / "judged.csv"
    csv_path.write_text(
        "path,query,relevant\n" + "".join(f"{p},{q},{int(r)}\n" for p, q, r in judged)
    )
    out, err = io.StringIO(), io.StringIO()
    tuner = Tuner(
        encoder,
        library,
        out=out,
        err=err,
        logit_scale=encoder.logit_scale,
        logit_bias=encoder.logit_bias,
    )
    assert tuner.run(io.StringIO(f"feedback {csv_path}\n")) == 0, err.getvalue()
    assert tuner.pending is not None
    from_csv = tuner.pending[0]

    searcher = Searcher(library, encoder, tuner.expander)
    fitted, unusable = fit_marks(
        searcher, library.catalog.marks(), tuner.calibration, prior(encoder)
    )
    assert unusable == []
    # The CSV path encodes the files again; the marks use the vectors the index holds: the
    # same pixels through the same model, equal to float32 rounding.
    assert fitted.calibration.temperature == pytest.approx(from_csv.temperature, rel=1e-4)
    assert fitted.calibration.centre == pytest.approx(from_csv.centre, abs=1e-5)
    assert f"fitted on {len(judged)} judgements" in out.getvalue()
    assert fitted.fit.sample_count == len(judged)
    assert (fitted.relevant_count, fitted.not_relevant_count) == (
        sum(r for _, _, r in judged),
        sum(not r for _, _, r in judged),
    )
    assert fitted.query_count == len(QUERIES)
    assert "ensemble" in fitted.statistic


def test_scores_before_and_after_are_the_scores_the_search_shows(encoder, library, photos):
    mark_some(library, photos, seed=3)
    searcher = Searcher(library, encoder)
    current = prior(encoder)
    fitted, _ = fit_marks(searcher, library.catalog.marks(), current, current, aggregate=MAX)
    assert fitted.statistic == "cosine of the winning variant (max)"
    for calibration in (current, fitted.calibration):
        shown = {}
        for query in QUERIES:
            hits = searcher.search(query, top_k=None, aggregate=MAX)
            shown[query] = {r.path: r.score for r in hits.rank(calibration, top_k=None)}
        expected = [shown[j.query][j.path] for j in fitted.judgements]
        np.testing.assert_allclose(fitted.scores_under(calibration), expected, rtol=1e-5)
    # The fit lowers the mean log loss of the marks it was fitted to (what a fit is for).
    assert fitted.log_loss_under(fitted.calibration) < fitted.log_loss_under(current)
    # Every judged photo is in the library: its rank is its place in the search.
    ranked = searcher.search(QUERIES[0], top_k=None, aggregate=MAX).rank(current, top_k=None)
    place = {r.path: n for n, r in enumerate(ranked, 1)}
    for judgement, rank in zip(fitted.judgements, fitted.ranks, strict=True):
        if judgement.query == QUERIES[0]:
            assert rank == place[judgement.path]


def test_marks_survive_reopening_the_library_and_fit_the_same(
    encoder, library, photos, isolated_dirs
):
    mark_some(library, photos, seed=5)
    before = library.catalog.marks()
    first, _ = fit_marks(Searcher(library, encoder), before, prior(encoder), prior(encoder))
    library.close()
    with Library(isolated_dirs, encoder.model_id, encoder.dim) as reopened:
        after = reopened.catalog.marks()
        assert [(m.path, m.query, m.relevant) for m in after] == [
            (m.path, m.query, m.relevant) for m in before
        ]
        again, _ = fit_marks(Searcher(reopened, encoder), after, prior(encoder), prior(encoder))
    assert again.calibration == first.calibration


def test_too_few_marks_says_how_many_more_of_which_kind(encoder, library, photos):
    ids = library.catalog.ids_for_paths([str(p) for p in photos])
    for path in photos[:MIN_MARKS_EACH]:
        library.catalog.set_mark(ids[str(path)], "dog", True)
    library.catalog.set_mark(ids[str(photos[-1])], "dog", False)
    with pytest.raises(NotEnoughMarks) as raised:
        fit_marks(
            Searcher(library, encoder), library.catalog.marks(), prior(encoder), prior(encoder)
        )
    message = str(raised.value)
    assert f"you have {MIN_MARKS_EACH} and 1" in message
    assert f"mark {MIN_MARKS_EACH - 1} more not relevant." in message
    assert marks_needed(MIN_MARKS_EACH, MIN_MARKS_EACH) is None
    assert "1 more relevant and 2 more not relevant" in marks_needed(
        MIN_MARKS_EACH - 1, MIN_MARKS_EACH - 2
    )


def test_a_marked_photo_without_a_vector_is_left_out_and_named(encoder, library, photos):
    mark_some(library, photos, seed=1)
    gone = library.catalog.marks()[0]
    # The file was replaced by one that cannot be read: indexing again clears its vector.
    Path(gone.path).write_bytes(b"not a photo any more")
    Indexer(library, encoder).index([str(Path(gone.path).parent)])
    marks = library.catalog.marks()
    assert gone.image_id in {m.image_id for m in marks}  # the mark stays with its photo
    fitted, unusable = fit_marks(Searcher(library, encoder), marks, prior(encoder), prior(encoder))
    assert {m.image_id for m in unusable} == {gone.image_id}
    assert gone.path not in {j.path for j in fitted.judgements}
    assert fitted.fit.sample_count == len(marks) - len(unusable)


def test_the_mark_key_ignores_case_and_spacing():
    assert mark_query("  Dog   on the BEACH ") == "dog on the beach"


def test_a_relevant_mark_on_a_query_of_parts_counts_for_each_part(encoder, library, photos):
    """ "beach -people" marked relevant: relevant to beach, not relevant to people. Marked not
    relevant it says only that some part failed, so it is left out and counted."""
    from gallery_app.core.feedback import Judgement, fit_feedback, marked_images, parts_line

    ids = library.catalog.ids_for_paths([str(p) for p in photos])
    rng = np.random.default_rng(7)
    plain = []
    for n, path in enumerate(photos):
        relevant = n < 5
        library.catalog.set_mark(ids[str(path)], "dog -snow", relevant)
        if relevant:
            plain += [Judgement(str(path), "dog", True), Judgement(str(path), "snow", False)]
        extra = bool(rng.random() < 0.5) if n > 1 else n == 0
        library.catalog.set_mark(ids[str(path)], "dog", extra)
        plain.append(Judgement(str(path), "dog", extra))
    searcher = Searcher(library, encoder)
    marks = library.catalog.marks()
    fitted, _ = fit_marks(searcher, marks, prior(encoder), prior(encoder))
    assert fitted.parts is not None
    assert (fitted.parts.split, fitted.parts.ambiguous) == (len(photos), len(photos) - 5)
    assert len(fitted.judgements) == len(plain)  # 10 plain + 5 x 2 parts
    images, _ = marked_images(library.catalog, marks)
    direct = fit_feedback(searcher, plain, images, prior(encoder), prior(encoder))
    assert fitted.calibration == pytest.approx(direct.calibration)
    assert sorted((j.path, j.query, j.relevant) for j in fitted.judgements) == sorted(
        (j.path, j.query, j.relevant) for j in plain
    )
    line = parts_line(fitted.parts)
    assert f"{len(photos)} judgement(s) of queries with not/and" in line
    assert f"{len(photos) - 5} marked not relevant were left out" in line


def test_only_not_relevant_marks_on_queries_of_parts_say_there_is_nothing_to_fit(
    encoder, library, photos
):
    from gallery_app.core.errors import CalibrationError

    ids = library.catalog.ids_for_paths([str(p) for p in photos])
    for path in photos[:4]:
        library.catalog.set_mark(ids[str(path)], "dog and snow", False)
    with pytest.raises(CalibrationError, match="which part failed"):
        fit_marks(Searcher(library, encoder), library.catalog.marks(), prior(encoder),
                  prior(encoder))  # fmt: skip
