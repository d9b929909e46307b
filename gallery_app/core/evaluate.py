"""Search quality on a labelled folder: hit@k, recall@k, mean average precision, calibration."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gallery_app.core.calibrate import Calibration
from gallery_app.core.errors import ConfigError
from gallery_app.core.expansion import Expander
from gallery_app.core.imaging import is_image_file
from gallery_app.core.probes import ImageVectors, PromptEncoder
from gallery_app.core.search import ENSEMBLE, MAX, hits_from_vectors, prompt_variants

RANK_KS = (1, 5, 10)
CALIBRATION_BINS = 10


# --- Metrics on plain values --------------------------------------------------------------


def worst_case_order(relevant: npt.ArrayLike, *keys: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Indices in rank order: descending by keys[0], then by keys[1], ...; among photos equal
    on every key (a true tie, such as two copies of one photo) the irrelevant come first.

    A ranking cannot tell tied photos apart, so a metric must not credit the order they
    happened to arrive in: breaking ties against the relevant ones makes average precision,
    hit@k and recall@k deterministic and never raised by luck (a lower bound over the orders
    of the ties).
    """
    labels = np.asarray(relevant, dtype=bool).ravel()
    columns = [np.asarray(key, dtype=np.float64).ravel() for key in keys]
    if any(column.shape != labels.shape for column in columns):
        raise ValueError("relevant and every key must have the same length")
    # lexsort sorts by its last key first: the first key is the primary one, relevant last.
    return np.lexsort((labels, *(-column for column in reversed(columns))))


def hit_at_k(relevant_in_rank_order: npt.ArrayLike, k: int) -> float:
    """1.0 when a relevant photo is among the first k, else 0.0: averaged over queries, the
    hit rate the CLIP and SigLIP papers call text-to-image "R@k". NaN when nothing is relevant.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevant = np.asarray(relevant_in_rank_order, dtype=bool)
    if not relevant.any():
        return math.nan
    return float(relevant[:k].any())


def recall_at_k(relevant_in_rank_order: npt.ArrayLike, k: int) -> float:
    """The share of the query's relevant photos that are among the first k (true recall: a
    query with 20 relevant photos reaches 1.0 only at k >= 20). NaN when nothing is relevant.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevant = np.asarray(relevant_in_rank_order, dtype=bool)
    total = int(relevant.sum())
    if total == 0:
        return math.nan
    return float(relevant[:k].sum()) / total


def average_precision(relevant_in_rank_order: npt.ArrayLike) -> float:
    """Mean of precision@i over the ranks i that hold a relevant photo; NaN when none does.

    The ranking must cover every photo, so that every relevant one has a rank; put it in
    worst_case_order first so that tied photos cannot change the result.
    """
    relevant = np.asarray(relevant_in_rank_order, dtype=bool)
    hits = np.flatnonzero(relevant)
    if len(hits) == 0:
        return math.nan
    precision_at_hits = np.arange(1, len(hits) + 1) / (hits + 1)
    return float(precision_at_hits.mean())


def expected_calibration_error(
    scores: npt.ArrayLike, relevant: npt.ArrayLike, bins: int = CALIBRATION_BINS
) -> float:
    """Sum over equal-width score bins of (share of pairs) x |mean score - share relevant|.

    0 means a score of 0.7 is right 70% of the time; NaN for no pairs.
    """
    score_values = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(relevant, dtype=np.float64).ravel()
    if score_values.shape != labels.shape:
        raise ValueError("scores and relevant must have the same length")
    if score_values.size == 0:
        return math.nan
    if np.any((score_values < 0) | (score_values > 1)):
        raise ValueError("scores must lie in [0, 1]")
    # Bin i holds [i/bins, (i+1)/bins); a score of exactly 1 goes in the last bin.
    which = np.minimum((score_values * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(score_values[members].mean() - labels[members].mean())
            error += members.mean() * gap
    return float(error)


@dataclass(frozen=True)
class ScoreCut:
    """Call a pair relevant when its score >= min_score; the F1 that gives on the data."""

    min_score: float
    f1: float
    precision: float
    recall: float


def best_f1_min_score(scores: npt.ArrayLike, relevant: npt.ArrayLike) -> ScoreCut | None:
    """The min_score that maximizes F1 over the pairs; None when no pair is relevant.

    Only cuts at an observed score are tried (any other gives the same split as one of
    them); tied scores fall on the same side. On equal F1 the higher min_score wins.
    """
    score_values = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(relevant, dtype=bool).ravel()
    if score_values.shape != labels.shape:
        raise ValueError("scores and relevant must have the same length")
    total_relevant = int(labels.sum())
    if total_relevant == 0:
        return None
    order = np.argsort(-score_values, kind="stable")
    sorted_scores, sorted_labels = score_values[order], labels[order]
    true_positives = np.cumsum(sorted_labels)
    predicted = np.arange(1, len(sorted_scores) + 1)
    # A cut is only real after the last of a run of equal scores.
    last_of_tie = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    precision = true_positives / predicted
    recall = true_positives / total_relevant
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(true_positives > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(last_of_tie, f1, -1.0)
    best = int(np.argmax(f1))  # argmax takes the first, i.e. the highest min_score on ties
    return ScoreCut(
        float(sorted_scores[best]), float(f1[best]), float(precision[best]), float(recall[best])
    )


# --- The labelled folder ------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledSet:
    """DIR/<label>/...: photos under a label folder are the relevant ones for its query;
    photos directly in DIR are distractors, relevant to no query."""

    root: str
    labels: tuple[str, ...]  # folder names
    queries: tuple[str, ...]  # folder names with underscores as spaces
    paths: tuple[str, ...]
    label_index: tuple[int, ...]  # per photo: index into labels, -1 for a distractor


def read_labelled_folder(root: str | os.PathLike[str]) -> LabelledSet:
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; eval wants DIR/<label>/<photos>.")
    labels: list[str] = []
    paths: list[str] = []
    label_index: list[int] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and is_image_file(entry):
            paths.append(str(entry))
            label_index.append(-1)
        elif entry.is_dir():
            photos = sorted(str(p) for p in entry.rglob("*") if p.is_file() and is_image_file(p))
            if photos:
                paths.extend(photos)
                label_index.extend([len(labels)] * len(photos))
                labels.append(entry.name)
    if not labels:
        raise ConfigError(
            f"{folder} has no label folders with photos; eval wants DIR/<label>/<photos>, "
            "for example DIR/red_car/1.jpg (the query is the folder name, _ read as space)."
        )
    queries = tuple(" ".join(label.replace("_", " ").split()) for label in labels)
    return LabelledSet(str(folder), tuple(labels), queries, tuple(paths), tuple(label_index))


# --- The harness --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryQuality:
    query: str
    relevant_count: int
    average_precision: float
    first_relevant_rank: int  # 1-based


# The ways of searching eval compares: the query as typed, the ensemble of it and its
# synonyms (the default), and the max over the variants (search --aggregate max).
QUERY_ONLY = "query_only"
EVAL_MODES = (QUERY_ONLY, ENSEMBLE, MAX)


@dataclass(frozen=True)
class ModeQuality:
    """Quality of one way of searching (see EVAL_MODES) over all labels."""

    mode: str
    hit: dict[int, float]  # k -> share of queries with a relevant photo in their top k
    recall: dict[int, float]  # k -> mean over queries of the share of relevant in the top k
    mean_average_precision: float
    per_query: tuple[QueryQuality, ...]
    mean_score_relevant: float
    mean_score_irrelevant: float
    expected_calibration_error: float
    best_f1: ScoreCut | None

    @property
    def expand(self) -> bool:
        return self.mode != QUERY_ONLY

    def to_json(self) -> dict[str, Any]:
        best = self.best_f1
        return {
            "mode": self.mode,
            "expand": self.expand,
            **{f"hit_at_{k}": _finite_or_none(v) for k, v in self.hit.items()},
            **{f"recall_at_{k}": _finite_or_none(v) for k, v in self.recall.items()},
            "mean_average_precision": _finite_or_none(self.mean_average_precision),
            "calibration": {
                "mean_score_relevant": _finite_or_none(self.mean_score_relevant),
                "mean_score_irrelevant": _finite_or_none(self.mean_score_irrelevant),
                "expected_calibration_error": _finite_or_none(self.expected_calibration_error),
                "best_f1": None
                if best is None
                else {
                    "min_score": best.min_score,
                    "f1": best.f1,
                    "precision": best.precision,
                    "recall": best.recall,
                },
            },
            "per_query": [
                {
                    "query": q.query,
                    "relevant": q.relevant_count,
                    "average_precision": _finite_or_none(q.average_precision),
                    "first_relevant_rank": q.first_relevant_rank,
                }
                for q in self.per_query
            ],
        }


@dataclass(frozen=True)
class EvalReport:
    labelled: LabelledSet
    calibration: Calibration
    modes: tuple[ModeQuality, ...]  # in EVAL_MODES order: query only, ensemble, max
    failures: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        counts = np.bincount(
            [i for i in self.labelled.label_index if i >= 0], minlength=len(self.labelled.labels)
        )
        return {
            "dir": self.labelled.root,
            "images": len(self.labelled.paths) - len(self.failures),
            "labels": [
                {"label": label, "query": query, "images": int(count)}
                for label, query, count in zip(
                    self.labelled.labels, self.labelled.queries, counts, strict=True
                )
            ],
            "distractors": sum(1 for i in self.labelled.label_index if i < 0),
            "preset": self.calibration.preset,
            "temperature": self.calibration.temperature,
            "centre": self.calibration.centre,
            **{mode.mode: mode.to_json() for mode in self.modes},
            "failed": [{"path": path, "reason": reason} for path, reason in self.failures],
        }


def evaluate(
    labelled: LabelledSet,
    images: ImageVectors,
    encoder: PromptEncoder,
    expander: Expander,
    calibration: Calibration,
    ks: Sequence[int] = RANK_KS,
) -> EvalReport:
    """Rank every photo for every label's query as search does, three ways (EVAL_MODES): the
    query as typed, the ensemble (default) and the max over variants; photos that failed to
    encode are left out."""
    if len(images.paths) == 0:
        raise ConfigError(f"None of the photos in {labelled.root} could be read.")
    label_of_path = dict(zip(labelled.paths, labelled.label_index, strict=True))
    label_of = np.array([label_of_path[p] for p in images.paths])
    image_ids = np.arange(len(images.paths), dtype=np.int64)
    modes = []
    for mode in EVAL_MODES:
        per_query = []
        hits_at: dict[int, list[float]] = {k: [] for k in ks}
        recalls: dict[int, list[float]] = {k: [] for k in ks}
        pair_scores: list[npt.NDArray[np.float64]] = []
        pair_relevant: list[npt.NDArray[np.bool_]] = []
        for label, query in enumerate(labelled.queries):
            relevant = label_of == label
            if not relevant.any():  # every photo of this label failed to decode
                continue
            variants = prompt_variants(encoder, query, None if mode == QUERY_ONLY else expander)
            text = encoder.encode_prompts([v.prompt or "" for v in variants])
            hits = hits_from_vectors(
                query,
                variants,
                text,
                image_ids,
                images.paths,
                images.vectors,
                MAX if mode == MAX else ENSEMBLE,
            )
            ranked = hits.rank(calibration, top_k=None)
            order = np.array([r.image_id for r in ranked])
            ranked_scores = np.array([r.score for r in ranked])
            # search ranks by score, then raw cosine: photos equal on both are true ties.
            ties = worst_case_order(relevant[order], ranked_scores, [r.raw for r in ranked])
            relevant_ranked = relevant[order][ties]
            for k in ks:
                hits_at[k].append(hit_at_k(relevant_ranked, k))
                recalls[k].append(recall_at_k(relevant_ranked, k))
            per_query.append(
                QueryQuality(
                    query,
                    int(relevant.sum()),
                    average_precision(relevant_ranked),
                    int(np.flatnonzero(relevant_ranked)[0]) + 1,
                )
            )
            pair_scores.append(ranked_scores[ties])
            pair_relevant.append(relevant_ranked)
        if not per_query:
            raise ConfigError(f"None of the labelled photos in {labelled.root} could be read.")
        scores = np.concatenate(pair_scores)
        relevant_pairs = np.concatenate(pair_relevant)
        modes.append(
            ModeQuality(
                mode=mode,
                hit={k: float(np.mean(v)) for k, v in hits_at.items()},
                recall={k: float(np.mean(v)) for k, v in recalls.items()},
                mean_average_precision=float(np.mean([q.average_precision for q in per_query])),
                per_query=tuple(per_query),
                mean_score_relevant=_mean(scores[relevant_pairs]),
                mean_score_irrelevant=_mean(scores[~relevant_pairs]),
                expected_calibration_error=expected_calibration_error(scores, relevant_pairs),
                best_f1=best_f1_min_score(scores, relevant_pairs),
            )
        )
    return EvalReport(labelled, calibration, tuple(modes), images.failures)


def _mean(values: npt.NDArray[np.float64]) -> float:
    return float(values.mean()) if values.size else math.nan


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a metric with nothing to measure is null."""
    return value if math.isfinite(value) else None
