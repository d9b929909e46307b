"""What a result set's raw cosines say about the pipeline and the calibration, in plain words."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gallery_app.core.calibrate import Calibration, recommend_calibration
from gallery_app.core.errors import CalibrationError

# Fewer results than these say little about a distribution: one or two photos with a low
# cosine is an ordinary query with no match, three or more all at or below 0 is a pattern.
ALL_NEGATIVE_MIN_COUNT = 3
LOW_VARIANCE_MIN_COUNT = 5
SATURATION_MIN_COUNT = 3

# SigLIP cosines of the best matches for one query typically span a few hundredths; below
# 0.01 the seed's sigmoid(25 * cos) moves a score by about 0.06 per std: they all look alike.
LOW_VARIANCE_STD = 0.01

# Every score within 2% of 0 or 1: the calibration tells nothing about which photo is better.
SATURATED_LOW = 0.02
SATURATED_HIGH = 0.98

# A suggested calibration maps the best result to 0.9 and the median one to 0.1: the top of
# the list then reads as a match and the middle as a non-match, with room above and below.
TARGET_BEST = 0.9
TARGET_MEDIAN = 0.1

# float32 cosines of unit vectors carry rounding noise near 1e-7; a spread this small is
# noise, and a temperature that "spreads" it would rank by noise.
MIN_SPREAD = 1e-6

_CHECK_PIPELINE = (
    "To check, index one photo and search a caption that clearly describes it with "
    "`gallery-app search CAPTION --no-expand --json`: its raw cosine should be above 0, and its "
    "score should equal the model's own sigmoid(logits_per_image) for that pair."
)


@dataclass(frozen=True)
class RawSummary:
    """Count, min, mean, max and population std of raw cosines; all NaN when count is 0."""

    count: int
    min: float
    mean: float
    max: float
    std: float


@dataclass(frozen=True)
class Diagnosis:
    code: str  # "all-negative" | "low-variance" | "saturated-low" | "saturated-high"
    message: str  # what is wrong and what to do, including any suggested values
    suggested_temperature: float | None = None
    suggested_centre: float | None = None


def summarize(raw: npt.ArrayLike) -> RawSummary:
    """Summary of every value in `raw` (any shape).

    An empty input gives count 0 and NaN elsewhere, not 0: a cosine of 0 is a real value and
    must not be shown for "no results". A NaN in the input propagates: it is a bug to see.
    """
    values = np.asarray(raw, dtype=np.float64).ravel()
    if values.size == 0:
        return RawSummary(0, math.nan, math.nan, math.nan, math.nan)
    return RawSummary(
        count=int(values.size),
        min=float(values.min()),
        mean=float(values.mean()),
        max=float(values.max()),
        std=float(values.std()),
    )


def diagnose(raw: npt.ArrayLike, calibration: Calibration) -> list[Diagnosis]:
    """Problems visible in the raw cosines of one result set (one per result), worst first.

    "all-negative" alone when it applies: it points at a pipeline bug, and suggesting a
    temperature that spreads broken cosines would make noise look like confident matches.
    """
    values = np.asarray(raw, dtype=np.float64).ravel()
    count = values.size
    if count == 0:
        return []
    if count >= ALL_NEGATIVE_MIN_COUNT and bool(np.all(values <= 0)):
        return [
            Diagnosis(
                "all-negative",
                f"Every raw cosine is at or below 0 (best {values.max():.4f} over {count} "
                "results), yet SigLIP scores a photo that matches its text above 0. Most likely "
                'the text is tokenized without padding="max_length", max_length=64 (SigLIP '
                "wants input_ids only, no attention mask), or the image and text towers come "
                "from different checkpoints. Fix that before tuning T or c. " + _CHECK_PIPELINE,
            )
        ]

    found = []
    temperature, centre = _spreading_calibration(values) or (None, None)
    suggestion = (
        f" Try T = {temperature:.1f} and c = {centre:.4f}: the best result would score "
        f"{TARGET_BEST:g} and the median one {TARGET_MEDIAN:g}."
        if temperature is not None and centre is not None
        else ""
    )
    std = float(values.std())
    if count >= LOW_VARIANCE_MIN_COUNT and std < LOW_VARIANCE_STD:
        found.append(
            Diagnosis(
                "low-variance",
                f"The raw cosines barely differ (std {std:.4f} over {count} results), so "
                "the ranking rests on tiny differences." + suggestion,
                temperature,
                centre,
            )
        )
    if count >= SATURATION_MIN_COUNT:
        scores = calibration.score(values)
        current = f"T = {calibration.temperature:.1f}, c = {calibration.centre:.4f}"
        if bool(np.all(scores < SATURATED_LOW)):
            found.append(
                Diagnosis(
                    "saturated-low",
                    f"Every score is below {SATURATED_LOW:g} under {current}: either nothing "
                    "in the library matches this query, or c is too high for these "
                    "cosines. If the photos you expected are in the list, lower c." + suggestion,
                    temperature,
                    centre,
                )
            )
        elif bool(np.all(scores > SATURATED_HIGH)):
            found.append(
                Diagnosis(
                    "saturated-high",
                    f"Every score is above {SATURATED_HIGH:g} under {current}, so scores "
                    "cannot tell the results apart; raise c." + suggestion,
                    temperature,
                    centre,
                )
            )
    return found


def _spreading_calibration(values: npt.NDArray[np.float64]) -> tuple[float, float] | None:
    """T and c with sigmoid(T*(max-c)) = TARGET_BEST and sigmoid(T*(median-c)) = TARGET_MEDIAN.

    Subtracting T*(max-c) = logit(best) and T*(median-c) = logit(median) gives T; c follows.
    None when max and median are too close to spread.
    """
    best = float(values.max())
    median = float(np.median(values))
    if not best - median > MIN_SPREAD:
        return None
    logit_best, logit_median = _logit(TARGET_BEST), _logit(TARGET_MEDIAN)
    temperature = (logit_best - logit_median) / (best - median)
    return temperature, best - logit_best / temperature


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


# --- Library-wide: a set of probe queries scored against a sample of photos ----------------

# A matching caption gets a SigLIP cosine of roughly 0.1 to 0.2; if not one of a dozen
# everyday concepts reaches 0.05 in any photo, the text or image side is almost surely wrong.
NEAR_ZERO_RAW = 0.05

# Under a confident calibration (the model's own T is about 117) a handful of pairs can all
# land near 0 or 1 by chance; "all or nothing" is a finding only over many pairs.
SATURATED_BOTH_MIN_COUNT = 50


def diagnose_probes(raw_by_probe: npt.ArrayLike, calibration: Calibration) -> list[Diagnosis]:
    """Problems visible in a (n_images, n_probes) matrix of raw cosines, worst first.

    Unlike `diagnose`, which reads one query's results, this reads many everyday concepts at
    once: when none of them matches any photo, the pipeline is at fault, not the query.
    A pipeline problem is reported alone, for the reason given in `diagnose`.
    """
    raw = np.asarray(raw_by_probe, dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[:, None]
    if raw.size == 0 or raw.shape[0] < ALL_NEGATIVE_MIN_COUNT:
        return []
    best_per_probe = raw.max(axis=0)
    if bool(np.all(raw <= 0)):
        return diagnose(raw, calibration)[:1]
    if bool(np.all(best_per_probe < NEAR_ZERO_RAW)):
        return [
            Diagnosis(
                "near-zero",
                f"No probe query reaches a raw cosine of {NEAR_ZERO_RAW:g} in any of "
                f"{raw.shape[0]} photos (best {best_per_probe.max():.4f} over "
                f"{raw.shape[1]} queries), while a photo that shows a concept usually scores "
                "0.1 or more. Most likely the text is tokenized without "
                'padding="max_length", max_length=64, or the model is mismatched (image and '
                "text towers from different checkpoints, or not a SigLIP model). "
                + _CHECK_PIPELINE,
            )
        ]

    try:
        recommended = recommend_calibration(raw).calibration
    except CalibrationError:
        recommended = None
    suggestion = (
        f" Try T = {recommended.temperature:.1f} and c = {recommended.centre:.4f}: the top "
        "1% of each query's photos here would score 0.9 and the median photo 0.1 "
        "(`recommend` in `gallery-app tune` measures more of the library)."
        if recommended is not None
        else ""
    )
    suggested_t = recommended.temperature if recommended is not None else None
    suggested_c = recommended.centre if recommended is not None else None

    found = []
    # Per probe, so that the offset between two texts does not pass for spread.
    typical_std = float(np.median(raw.std(axis=0)))
    if raw.shape[0] >= LOW_VARIANCE_MIN_COUNT and typical_std < LOW_VARIANCE_STD:
        found.append(
            Diagnosis(
                "low-variance",
                f"For a typical probe query the raw cosines of {raw.shape[0]} photos barely "
                f"differ (median std {typical_std:.4f}), so rankings rest on tiny differences "
                "and the image side may be broken (every photo encoding alike)." + suggestion,
                suggested_t,
                suggested_c,
            )
        )
    if raw.size >= SATURATION_MIN_COUNT:
        scores = calibration.score(raw)
        low, high = scores < SATURATED_LOW, scores > SATURATED_HIGH
        current = f"T = {calibration.temperature:.1f}, c = {calibration.centre:.4f}"
        if bool(np.all(low)):
            found.append(
                Diagnosis(
                    "saturated-low",
                    f"Every score of every probe query is below {SATURATED_LOW:g} under "
                    f"{current}: c is too high for this library's cosines, so even a good "
                    "match reads as no match." + suggestion,
                    suggested_t,
                    suggested_c,
                )
            )
        elif bool(np.all(high)):
            found.append(
                Diagnosis(
                    "saturated-high",
                    f"Every score of every probe query is above {SATURATED_HIGH:g} under "
                    f"{current}: c is too low, so every photo reads as a match." + suggestion,
                    suggested_t,
                    suggested_c,
                )
            )
        elif raw.size >= SATURATED_BOTH_MIN_COUNT and bool(np.all(low | high)):
            found.append(
                Diagnosis(
                    "saturated-both",
                    f"Every score is either below {SATURATED_LOW:g} or above "
                    f"{SATURATED_HIGH:g} under {current}: T is so high that scores are all "
                    "or nothing, and say nothing about which match (or which non-match) is "
                    "better. If you want scores that grade, lower T." + suggestion,
                    suggested_t,
                    suggested_c,
                )
            )
    return found
