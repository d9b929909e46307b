"""Judgements (a CSV's rows, or the marks kept in a library) -> the feedback fit on the ranked
statistic, with what it rests on. The one place `tune feedback`, `marks fit` and the window's
*Fit calibration* come to, so the three fit the same thing the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gallery_app.core.calibrate import (
    PRIOR_CENTRE_LOGIT_SD,
    PRIOR_TEMPERATURE_SD_RATIO,
    Calibration,
    CalibrationFit,
    fit_calibration,
)
from gallery_app.core.catalog import Mark
from gallery_app.core.errors import CalibrationError
from gallery_app.core.probes import ImageVectors
from gallery_app.core.query import AND, ParsedQuery
from gallery_app.core.search import ENSEMBLE, Searcher, SearchHits, hits_from_vectors
from gallery_app.core.store import CatalogStore

# Judgements all taken from this far up their query's ranking see only the top: the photos
# below, which a fit needs to place the centre, were never looked at. The fit is then held
# this much nearer the model prior (standard deviations times this factor).
FEEDBACK_TOP_RANKS = 50
TOP_ONLY_PRIOR_SCALE = 0.25
# Marks of each kind a fit from the window (or `marks fit`) asks for: with fewer, the prior
# decides nearly alone and a "fit" would only look like one. A CSV given to `tune feedback`
# is fitted whatever its size, as it always was (the prior keeps a small one near the model).
MIN_MARKS_EACH = 3


@dataclass(frozen=True)
class Judgement:
    """A person's word that a photo is (not) what a query asks for."""

    path: str
    query: str
    relevant: bool


class NotEnoughMarks(CalibrationError):
    """Too few judgements of one kind for a fit worth applying."""


def mark_query(query: str) -> str:
    """The key a mark is kept under: the query as the search reads it (case and runs of
    spaces make no difference to its variants, so they make none to its marks)."""
    return " ".join(query.lower().split())


def judgements_from_marks(marks: Sequence[Mark]) -> list[Judgement]:
    return [Judgement(m.path, m.query, m.relevant) for m in marks]


@dataclass(frozen=True)
class PartJudgements:
    """Judgements of queries of parts ("beach -people") as judgements of their parts."""

    judgements: tuple[Judgement, ...]
    split: int  # judgements of a query of parts, each turned into one per part
    ambiguous: int  # of those, the ones marked not relevant: left out (see part_judgements)


def part_judgements(
    parse: Callable[[str], ParsedQuery], judgements: Sequence[Judgement]
) -> PartJudgements:
    """A fit reads one cosine per photo and query, and a query of parts has several. A photo
    marked relevant to "beach -people" is relevant to "beach" and not relevant to "people"
    (its score is P(beach) x (1 - P(people)), high only when both hold), so it counts for
    each part. One marked not relevant says only that some part failed, not which: it is
    left out. A plain query (no operator) is kept as it is."""
    out: list[Judgement] = []
    split = ambiguous = 0
    for judgement in judgements:
        parsed = parse(judgement.query)
        if parsed.plain or not parsed.parts:
            out.append(judgement)
            continue
        split += 1
        if not judgement.relevant:
            ambiguous += 1
            continue
        out.extend(Judgement(judgement.path, part.text, part.kind == AND) for part in parsed.parts)
    return PartJudgements(tuple(out), split, ambiguous)


def marks_needed(relevant: int, not_relevant: int, minimum: int = MIN_MARKS_EACH) -> str | None:
    """None when there are enough of both kinds; else what is missing, in words."""
    missing = []
    if relevant < minimum:
        missing.append(f"{minimum - relevant} more relevant")
    if not_relevant < minimum:
        missing.append(f"{minimum - not_relevant} more not relevant")
    if not missing:
        return None
    return (
        f"A fit needs at least {minimum} photos marked relevant and {minimum} marked not "
        f"relevant (you have {relevant} and {not_relevant}): mark {' and '.join(missing)}."
    )


def ranked_statistic(expand: bool, aggregate: str) -> str:
    """What the search ranks by under these settings, in words: what the fit is fitted on."""
    if aggregate == ENSEMBLE and expand:
        return "cosine with the ensemble of the query and its synonyms"
    if expand:
        return "cosine of the winning variant (max)"
    return "cosine of the query as typed"


@dataclass(frozen=True, eq=False)
class _QueryHits:
    """One query's judged photos scored as its search scores them."""

    hits: SearchHits
    judgement_rows: npt.NDArray[np.intp]  # row in FeedbackFit.judgements of each hit row


@dataclass(frozen=True, eq=False)
class FeedbackFit:
    """A fit and what it rests on: the judgements used, the ranked statistic (`raw`) of each
    judged photo, and its rank among the library's photos for its query."""

    fit: CalibrationFit
    judgements: tuple[Judgement, ...]
    raw: npt.NDArray[np.float64]
    ranks: npt.NDArray[np.int64]
    library_size: int
    top_only: bool  # every judged photo ranks in the top `top_ranks`: the prior held nearer
    top_ranks: int  # FEEDBACK_TOP_RANKS when fitted
    statistic: str  # ranked_statistic(...) of the settings fitted under
    ranked_under: Calibration  # the calibration the ranks were taken under
    _scored: tuple[_QueryHits, ...] = ()
    parts: PartJudgements | None = None  # how judgements of queries of parts were read

    @property
    def calibration(self) -> Calibration:
        return self.fit.calibration

    @property
    def relevant_count(self) -> int:
        return sum(1 for j in self.judgements if j.relevant)

    @property
    def not_relevant_count(self) -> int:
        return len(self.judgements) - self.relevant_count

    @property
    def query_count(self) -> int:
        return len({j.query for j in self.judgements})

    def scores_under(self, calibration: Calibration) -> npt.NDArray[np.float64]:
        """Each judged photo's score as its search would show it under `calibration`
        (weight x calibrated score of the winning column), in `judgements` order."""
        scores = np.zeros(len(self.judgements))
        for scored in self._scored:
            for result in scored.hits.rank(calibration, top_k=None):
                scores[scored.judgement_rows[result.image_id]] = result.score
        return scores

    def log_loss_under(self, calibration: Calibration) -> float:
        """Mean negative log-likelihood of the judgements read as sigmoid(T (raw - c)):
        the quantity the fit makes small (before its prior), for comparing calibrations."""
        logits = calibration.temperature * (self.raw - calibration.centre)
        labels = np.array([j.relevant for j in self.judgements], dtype=np.float64)
        return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def fit_feedback(
    searcher: Searcher,
    judgements: Sequence[Judgement],
    images: ImageVectors,
    calibration: Calibration,
    prior: Calibration,
    expand: bool = True,
    aggregate: str = ENSEMBLE,
    minimum_each: int = 0,
) -> FeedbackFit:
    """Fit T and c to judgements on the statistic the search ranks by (`expand`, `aggregate`).

    `images` holds the judged photos' unit vectors; a judgement whose photo is not there is
    left out (the caller says why). Each judged photo's rank for its query, taken under
    `calibration` over the searcher's library, decides whether the judgements saw only the
    top of the rankings: then the fit is held TOP_ONLY_PRIOR_SCALE nearer `prior`. With
    `minimum_each`, fewer judgements of either kind raise NotEnoughMarks saying how many more.
    """
    row_of_path = {p: i for i, p in enumerate(images.paths)}
    parts = part_judgements(searcher.parse, judgements)
    usable = tuple(j for j in parts.judgements if j.path in row_of_path)
    if not usable and parts.ambiguous:
        raise CalibrationError(
            f"All {parts.ambiguous} judgement(s) are of queries with not/and and say "
            "not relevant, which does not tell which part failed: there is nothing to fit. "
            "Mark photos that are relevant to such a query, or judge plain queries."
        )
    if not usable:
        raise CalibrationError("None of the judged photos could be read, so there is no fit.")
    relevant = np.array([j.relevant for j in usable], dtype=bool)
    if minimum_each:
        problem = marks_needed(int(relevant.sum()), int((~relevant).sum()), minimum_each)
        if problem:
            raise NotEnoughMarks(problem)
    raw = np.zeros(len(usable))
    ranks = np.zeros(len(usable), dtype=np.int64)
    library_size = searcher.library.catalog.count()
    scored = []
    for query in sorted({j.query for j in usable}):
        rows = np.array([n for n, j in enumerate(usable) if j.query == query], dtype=np.intp)
        hits = _judged_hits(
            searcher, query, images, [row_of_path[usable[n].path] for n in rows], expand, aggregate
        )
        raw[rows], ranks[rows] = _ranked(
            searcher, hits, calibration, library_size, expand, aggregate
        )
        scored.append(_QueryHits(hits, rows))
    # Only from the top: every judged photo ranks within the first FEEDBACK_TOP_RANKS of its
    # query, in a library with plenty of photos below them.
    top_only = library_size > 2 * FEEDBACK_TOP_RANKS and bool(np.all(ranks <= FEEDBACK_TOP_RANKS))
    scale = TOP_ONLY_PRIOR_SCALE if top_only else 1.0
    fit = fit_calibration(
        raw,
        relevant,
        prior=prior,
        temperature_sd_ratio=PRIOR_TEMPERATURE_SD_RATIO * scale,
        centre_logit_sd=PRIOR_CENTRE_LOGIT_SD * scale,
    )
    return FeedbackFit(
        fit,
        usable,
        raw,
        ranks,
        library_size,
        top_only,
        FEEDBACK_TOP_RANKS,
        ranked_statistic(expand, aggregate),
        calibration,
        tuple(scored),
        parts,
    )


def parts_line(parts: PartJudgements | None) -> str:
    """What was done with judgements of queries of parts, in words ("" when there were none)."""
    if parts is None or not parts.split:
        return ""
    line = (
        f"{parts.split} judgement(s) of queries with not/and: each one marked relevant counts "
        "for every part (relevant to what must be there, not relevant to what must not)"
    )
    if parts.ambiguous:
        line += (
            f"; {parts.ambiguous} marked not relevant were left out, since they do not say "
            "which part failed"
        )
    return line + "."


def marked_images(catalog: CatalogStore, marks: Sequence[Mark]) -> tuple[ImageVectors, list[Mark]]:
    """The stored vectors of the marked photos (what the search scores), and the marks whose
    photo has none any more (its file failed to read when it was last indexed)."""
    ids, vectors = catalog.vectors(ids=sorted({m.image_id for m in marks}))
    paths = {m.image_id: m.path for m in marks}
    kept = {int(i) for i in ids}
    images = ImageVectors(tuple(paths[int(i)] for i in ids), vectors)
    return images, [m for m in marks if m.image_id not in kept]


def fit_marks(
    searcher: Searcher,
    marks: Sequence[Mark],
    calibration: Calibration,
    prior: Calibration,
    expand: bool = True,
    aggregate: str = ENSEMBLE,
    minimum_each: int = MIN_MARKS_EACH,
) -> tuple[FeedbackFit, list[Mark]]:
    """fit_feedback on the marks kept in the searcher's library; also the marks left out."""
    images, unusable = marked_images(searcher.library.catalog, marks)
    fitted = fit_feedback(
        searcher,
        judgements_from_marks(marks),
        images,
        calibration,
        prior,
        expand,
        aggregate,
        minimum_each,
    )
    return fitted, unusable


def _judged_hits(
    searcher: Searcher,
    query: str,
    images: ImageVectors,
    rows: list[int],
    expand: bool,
    aggregate: str,
) -> SearchHits:
    """The judged photos of one query scored as its search scores them; image ids are the
    hit rows, so results map back to judgements."""
    variants = searcher.variants(query, expand)
    if not variants:
        raise CalibrationError(f"The query {query!r} has no words to search.")
    text = searcher.text_vectors([v.prompt or "" for v in variants])
    return hits_from_vectors(
        query,
        variants,
        text,
        np.arange(len(rows), dtype=np.int64),
        [images.paths[r] for r in rows],
        images.vectors[rows],
        aggregate,
    )


def _ranked(
    searcher: Searcher,
    judged: SearchHits,
    calibration: Calibration,
    library_size: int,
    expand: bool,
    aggregate: str,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """For the judged photos of one query: the raw cosine the search ranks them by, and each
    one's rank among the library's photos for it."""
    count = len(judged.paths)
    raw, score = np.zeros(count), np.zeros(count)
    for result in judged.rank(calibration, top_k=None):
        raw[result.image_id], score[result.image_id] = result.raw, result.score
    if not library_size:
        return raw, np.ones(count, dtype=np.int64)
    everything = searcher.search(judged.query, top_k=None, expand=expand, aggregate=aggregate)
    ranked = everything.rank(calibration, top_k=None)
    descending = np.array([r.score for r in ranked])
    # A judged photo in the library has its rank there; one outside it ranks after the
    # library's photos that score higher.
    rank_of_path = {r.path: n for n, r in enumerate(ranked, 1)}
    outside = np.searchsorted(-descending, -score, side="left") + 1
    ranks = [rank_of_path.get(path, int(outside[n])) for n, path in enumerate(judged.paths)]
    return raw, np.array(ranks, dtype=np.int64)
