"""The debug-scores report: probe queries x photos, raw cosines, calibrated scores, diagnosis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gallery_app.core.calibrate import Calibration
from gallery_app.core.diagnostics import Diagnosis, RawSummary, diagnose_probes, summarize
from gallery_app.core.errors import GalleryError
from gallery_app.core.library import Library
from gallery_app.core.probes import (
    DEFAULT_SAMPLE_SIZE,
    ImageVectors,
    TextImageEncoder,
    encode_files,
    probe_raw,
    sample_library,
)


@dataclass(frozen=True)
class QueryRow:
    """One probe over all photos: raw cosine and score ranges, and the photo it liked best."""

    query: str
    prompt: str
    raw: RawSummary
    score: RawSummary
    best_path: str
    best_raw: float
    best_score: float


@dataclass(frozen=True)
class ImageRow:
    """One photo over all probes: its raw cosine range, and the probe it matched best."""

    path: str
    raw: RawSummary
    best_query: str


@dataclass(frozen=True)
class ScoreReport:
    calibration: Calibration
    queries: tuple[str, ...]
    prompts: tuple[str, ...]
    paths: tuple[str, ...]
    raw: npt.NDArray[np.float32]  # (n_images, n_queries)
    scores: npt.NDArray[np.float64]  # calibration.score(raw)
    by_query: tuple[QueryRow, ...]
    by_image: tuple[ImageRow, ...]
    diagnoses: tuple[Diagnosis, ...]
    failures: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "preset": self.calibration.preset,
            "temperature": self.calibration.temperature,
            "centre": self.calibration.centre,
            "queries": [
                {
                    "query": row.query,
                    "prompt": row.prompt,
                    "raw": _range_json(row.raw),
                    "score": _range_json(row.score),
                    "best": {"path": row.best_path, "raw": row.best_raw, "score": row.best_score},
                }
                for row in self.by_query
            ],
            "images": [
                {
                    "path": row.path,
                    "raw": _range_json(row.raw),
                    "best_query": row.best_query,
                    "raw_by_query": [float(v) for v in self.raw[i]],
                    "score_by_query": [float(v) for v in self.scores[i]],
                }
                for i, row in enumerate(self.by_image)
            ],
            "diagnoses": [
                {
                    "code": d.code,
                    "message": d.message,
                    "suggested_temperature": d.suggested_temperature,
                    "suggested_centre": d.suggested_centre,
                }
                for d in self.diagnoses
            ],
            "failed": [{"path": path, "reason": reason} for path, reason in self.failures],
        }


def score_report(
    raw: npt.ArrayLike,
    queries: Sequence[str],
    prompts: Sequence[str],
    paths: Sequence[str],
    calibration: Calibration,
    failures: Sequence[tuple[str, str]] = (),
) -> ScoreReport:
    """The report of a (n_images, n_queries) raw cosine matrix, computed on plain values."""
    matrix = np.asarray(raw, dtype=np.float32)
    if matrix.shape != (len(paths), len(queries)) or len(prompts) != len(queries):
        raise ValueError(
            f"raw has shape {matrix.shape}, expected ({len(paths)}, {len(queries)}) "
            f"with {len(queries)} prompts"
        )
    if matrix.size == 0:
        raise ValueError("a score report needs at least one photo and one query")
    scores = calibration.score(matrix)
    by_query = []
    for j, query in enumerate(queries):
        best = int(np.argmax(matrix[:, j]))
        by_query.append(
            QueryRow(
                query=query,
                prompt=prompts[j],
                raw=summarize(matrix[:, j]),
                score=summarize(scores[:, j]),
                best_path=paths[best],
                best_raw=float(matrix[best, j]),
                best_score=float(scores[best, j]),
            )
        )
    by_image = tuple(
        ImageRow(path, summarize(matrix[i]), queries[int(np.argmax(matrix[i]))])
        for i, path in enumerate(paths)
    )
    return ScoreReport(
        calibration=calibration,
        queries=tuple(queries),
        prompts=tuple(prompts),
        paths=tuple(paths),
        raw=matrix,
        scores=scores,
        by_query=tuple(by_query),
        by_image=by_image,
        diagnoses=tuple(diagnose_probes(matrix, calibration)),
        failures=tuple(failures),
    )


def build_score_report(
    encoder: TextImageEncoder,
    library: Library | None,
    queries: Sequence[str],
    calibration: Calibration,
    image_paths: Sequence[str | Path] = (),
    sample_size: int = DEFAULT_SAMPLE_SIZE,
) -> ScoreReport:
    """Score the given image files, or else a sample of the library, against the queries."""
    if not queries:
        raise ValueError("at least one query is needed")
    if image_paths:
        images = encode_files(encoder, image_paths)
    elif library is not None:
        images = sample_library(library, sample_size)
    else:
        images = ImageVectors((), np.zeros((0, 0), np.float32))
    if not images.paths:
        if image_paths:
            reasons = "; ".join(f"{path}: {reason}" for path, reason in images.failures)
            raise GalleryError(f"None of the images could be read ({reasons}).")
        raise GalleryError(
            "The library is empty: run `gallery-app index FOLDER` first, or name image files."
        )
    raw = probe_raw(encoder, queries, images)
    prompts = [encoder.prompt(q) for q in queries]
    return score_report(raw, queries, prompts, images.paths, calibration, images.failures)


def _range_json(summary: RawSummary) -> dict[str, float]:
    return {"min": summary.min, "mean": summary.mean, "max": summary.max, "std": summary.std}
