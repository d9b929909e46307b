"""Raw cosine -> calibrated score: score = sigmoid(T * (raw - c)), and the named presets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gallery_app.core.errors import CalibrationError, ConfigError

SEED_TEMPERATURE = 25.0


@dataclass(frozen=True)
class Calibration:
    """A temperature T and a centre c: the raw cosine at which the score is 0.5."""

    preset: str
    temperature: float
    centre: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}")
        if not math.isfinite(self.centre):
            raise ValueError(f"centre must be a finite number, got {self.centre}")

    def score(self, raw_cosine: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return calibrated_score(raw_cosine, self.temperature, self.centre)

    def with_overrides(
        self, temperature: float | None = None, centre: float | None = None
    ) -> Calibration:
        if temperature is None and centre is None:
            return self
        return Calibration(
            preset="custom",
            temperature=self.temperature if temperature is None else temperature,
            centre=self.centre if centre is None else centre,
        )


def calibrated_score(
    raw_cosine: npt.ArrayLike, temperature: float, centre: float
) -> npt.NDArray[np.float64]:
    """sigmoid(T * (raw - c)), computed without overflow for any input."""
    logits = temperature * (np.asarray(raw_cosine, dtype=np.float64) - centre)
    # exp of a non-positive number never overflows; pick the branch by sign.
    decay = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay))


def model_preset(logit_scale: float, logit_bias: float) -> Calibration:
    """What the checkpoint itself means: sigmoid(cos * exp(logit_scale) + logit_bias)."""
    temperature = math.exp(logit_scale)
    return Calibration("model", temperature, -logit_bias / temperature)


def seed_preset() -> Calibration:
    """The seed document's formula, sigmoid(25 * cos), kept for comparison."""
    return Calibration("seed", SEED_TEMPERATURE, 0.0)


PRESET_NAMES = ("model", "seed", "custom")


def preset_calibration(
    name: str,
    logit_scale: float | None = None,
    logit_bias: float | None = None,
    custom: tuple[float, float] | None = None,
) -> Calibration:
    """The one place a preset name becomes a Calibration: `search`, `debug-scores`, `eval`,
    `tune` and the window all come here, so a preset means the same everywhere.

    model: the checkpoint's own sigmoid(exp(logit_scale) * cos + logit_bias), which needs both
    numbers; seed: sigmoid(25 * cos); custom: the (T, c) that `tune` `apply` saved.
    """
    if name == "model":
        if logit_scale is None or logit_bias is None:
            raise CalibrationError(
                "The model preset is the checkpoint's own logit_scale and logit_bias; they are "
                "known once the model has loaded."
            )
        return model_preset(logit_scale, logit_bias)
    if name == "seed":
        return seed_preset()
    if name == "custom":
        if custom is None:
            raise ConfigError(
                "No custom calibration is saved yet. Run `gallery-app tune`, then `recommend` "
                "(or `set T` and `centre C`) and `apply` to save one."
            )
        temperature, centre = custom
        return Calibration("custom", temperature, centre)
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")


# --- Image-to-image: the scale of "find similar" ------------------------------------------

# SigLIP's logit_scale and logit_bias were trained on image-text pairs only: nothing in the
# checkpoint says what an image-image cosine means, and those sit much higher than text-image
# ones (near-duplicates ~0.95 and up, two photos of the same subject ~0.6-0.8, unrelated
# photos lower still: ranges for SigLIP given in issue 13, not measured on this machine,
# which has no real weights). So an image query has a fixed scale of its own: c = 0.7, the
# middle of the same-subject band, scores 0.5; T = 15 makes a near-duplicate (0.95) 0.98, a
# clear same-subject photo (0.8) 0.82, the band's low end (0.6) 0.18 and an unrelated photo
# (0.4) 0.01. It is a reading of the cosine in bands, not a probability the model learnt;
# the window's Sharpness (T) and the presets are the text scale and do not apply to it.
IMAGE_TEMPERATURE = 15.0
IMAGE_CENTRE = 0.7
IMAGE_PRESET = "image"


def image_calibration() -> Calibration:
    """The one place an image query's cosine becomes a score (search.Searcher.search_image,
    the window and `search --image` all come here): sigmoid(15 x (cos - 0.7))."""
    return Calibration(IMAGE_PRESET, IMAGE_TEMPERATURE, IMAGE_CENTRE)


# --- Recommendation from the library's score distribution --------------------------------

# In an everyday library a concept matches a small share of the photos: the best 1% for a
# probe should read as matches (>= 0.9) and the typical photo as a non-match (<= 0.1).
RECOMMEND_TOP_FRACTION = 0.01
RECOMMEND_TOP_SCORE = 0.9
RECOMMEND_MEDIAN_SCORE = 0.1

# float32 cosines of unit vectors carry rounding noise near 1e-7: a gap this small is noise,
# and a temperature that "spreads" it would rank by noise.
MIN_RAW_SPREAD = 1e-6


@dataclass(frozen=True)
class Recommendation:
    calibration: Calibration
    top_raw: float  # per-probe (1 - top_fraction) quantile, median over probes
    median_raw: float  # per-probe median, median over probes
    image_count: int
    probe_count: int
    reason: str  # one paragraph a user can read: what was measured and what it maps to


def calibration_through(
    high_raw: float, high_score: float, low_raw: float, low_score: float, preset: str = "custom"
) -> Calibration:
    """The T and c whose sigmoid passes through (high_raw, high_score) and (low_raw, low_score).

    T * (high_raw - c) = logit(high_score) and T * (low_raw - c) = logit(low_score): subtracting
    gives T, and c follows.
    """
    if not 0.0 < low_score < high_score < 1.0:
        raise ValueError(f"need 0 < low_score < high_score < 1, got {low_score}, {high_score}")
    if not high_raw - low_raw > MIN_RAW_SPREAD:
        raise CalibrationError(
            f"The raw cosines are too close to spread ({low_raw:.6f} vs {high_raw:.6f}): "
            "no temperature can separate them. Index more (and more varied) photos."
        )
    logit_high, logit_low = _logit(high_score), _logit(low_score)
    temperature = (logit_high - logit_low) / (high_raw - low_raw)
    return Calibration(preset, temperature, high_raw - logit_high / temperature)


def recommend_calibration(
    raw_by_probe: npt.ArrayLike,
    top_fraction: float = RECOMMEND_TOP_FRACTION,
    top_score: float = RECOMMEND_TOP_SCORE,
    median_score: float = RECOMMEND_MEDIAN_SCORE,
) -> Recommendation:
    """T and c that map the top `top_fraction` of a probe's cosines to `top_score` and its
    median to `median_score`, from a (n_images, n_probes) matrix of raw cosines.

    Quantiles are taken per probe, then the median over probes: every text embedding shifts
    all of its cosines by its own offset, so pooling the probes would let the probe with the
    highest offset supply the whole top 1%, and the median over probes keeps one odd probe
    from moving the result.
    """
    if not 0.0 < top_fraction < 0.5:
        raise ValueError(f"top_fraction must be in (0, 0.5), got {top_fraction}")
    raw = np.asarray(raw_by_probe, dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[:, None]
    if raw.ndim != 2:
        raise ValueError(f"raw_by_probe must be (n_images, n_probes), got shape {raw.shape}")
    image_count, probe_count = raw.shape
    if image_count < 2 or probe_count < 1:
        raise CalibrationError(
            f"A recommendation needs the scores of at least 2 photos for at least 1 query "
            f"(got {image_count} photos, {probe_count} queries). Index more photos first."
        )
    if not np.all(np.isfinite(raw)):
        raise ValueError("raw cosines must be finite")
    top_raw = float(np.median(np.quantile(raw, 1.0 - top_fraction, axis=0)))
    median_raw = float(np.median(np.median(raw, axis=0)))
    calibration = calibration_through(top_raw, top_score, median_raw, median_score)
    reason = (
        f"Over {image_count} photos and {probe_count} probe queries, the top "
        f"{top_fraction:.0%} of a probe's raw cosines start at {top_raw:.4f} and its median "
        f"is {median_raw:.4f} (medians over the probes). T = {calibration.temperature:.1f} and "
        f"c = {calibration.centre:.4f} score those {top_score:g} and {median_score:g}: the "
        "few best photos for a concept read as matches, the typical photo as a non-match."
    )
    return Recommendation(calibration, top_raw, median_raw, image_count, probe_count, reason)


# --- Fit from feedback: Platt scaling with a prior ----------------------------------------

# How far from the prior a fit may wander before the data must insist: T within a factor of
# about 1.5 either way at one standard deviation, and the score at the prior's c within
# sigmoid(+-2) = 0.12..0.88. Tens of judged pairs outweigh this; two or three cannot.
PRIOR_TEMPERATURE_SD_RATIO = 0.5
PRIOR_CENTRE_LOGIT_SD = 2.0
FIT_MAX_ITERATIONS = 100
FIT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CalibrationFit:
    calibration: Calibration
    prior: Calibration
    sample_count: int
    relevant_count: int
    iterations: int
    log_loss: float  # mean negative log-likelihood of the labels under the fit; NaN if no data


def fit_calibration(
    raw: npt.ArrayLike,
    relevant: npt.ArrayLike,
    prior: Calibration,
    temperature_sd_ratio: float = PRIOR_TEMPERATURE_SD_RATIO,
    centre_logit_sd: float = PRIOR_CENTRE_LOGIT_SD,
) -> CalibrationFit:
    """Fit P(relevant | raw) = sigmoid(T * (raw - c)) to judged pairs (Platt scaling).

    The fit is logistic regression on logit = a * raw + b (a = T, b = -T * c), which is convex,
    solved by Newton's method (IRLS) for the maximum a posteriori under a Gaussian prior
    centred on `prior`: a ~ N(T0, (ratio * T0)^2), and the logit at the prior's c,
    a * c0 + b ~ N(0, centre_sd^2). With no data the fit is the prior; with few pairs it
    stays near it, and with all pairs relevant (separable data) T stays finite.
    """
    raw_values = np.asarray(raw, dtype=np.float64).ravel()
    labels = np.asarray(relevant, dtype=np.float64).ravel()
    if raw_values.shape != labels.shape:
        raise ValueError(f"raw has {raw_values.size} values but relevant has {labels.size}")
    if not np.all(np.isfinite(raw_values)):
        raise ValueError("raw cosines must be finite")
    if not np.all((labels == 0.0) | (labels == 1.0)):
        raise ValueError("relevant must hold only 0/1 or False/True")
    if not (temperature_sd_ratio > 0 and centre_logit_sd > 0):
        raise ValueError("prior standard deviations must be positive")

    t0, c0 = prior.temperature, prior.centre
    prior_mean = np.array([t0, -t0 * c0])
    along_temperature = np.array([1.0, 0.0])
    along_centre = np.array([c0, 1.0])  # (a, b) . (c0, 1) = logit at raw = c0
    prior_precision = (
        np.outer(along_temperature, along_temperature) / (temperature_sd_ratio * t0) ** 2
        + np.outer(along_centre, along_centre) / centre_logit_sd**2
    )
    design = np.column_stack([raw_values, np.ones_like(raw_values)])

    def objective(weights: npt.NDArray[np.float64]) -> float:
        logits = design @ weights
        deviation = weights - prior_mean
        # log(1 + e^z) - y z, written with logaddexp so large |z| cannot overflow.
        nll = float(np.sum(np.logaddexp(0.0, logits) - labels * logits))
        return nll + 0.5 * float(deviation @ prior_precision @ deviation)

    weights = prior_mean.copy()
    iterations = 0
    while iterations < FIT_MAX_ITERATIONS:
        iterations += 1
        probability = calibrated_score(design @ weights, 1.0, 0.0)
        gradient = design.T @ (probability - labels) + prior_precision @ (weights - prior_mean)
        curvature = probability * (1.0 - probability)
        hessian = (design * curvature[:, None]).T @ design + prior_precision
        step = np.linalg.solve(hessian, gradient)
        # Newton on a convex objective; halving guards the rare overshoot far from optimum.
        current, scale = objective(weights), 1.0
        while scale > 1e-6 and objective(weights - scale * step) > current:
            scale /= 2.0
        weights = weights - scale * step
        if float(np.max(np.abs(scale * step))) < FIT_TOLERANCE * max(1.0, t0):
            break

    slope, intercept = float(weights[0]), float(weights[1])
    if not slope > 0:
        raise CalibrationError(
            "In this feedback the photos marked relevant do not have higher raw cosines than "
            "the others, so no score can rank them higher. Check the labels (1 = relevant) and "
            "that each path and query were judged together."
        )
    fitted = Calibration("custom", slope, -intercept / slope)
    count = int(raw_values.size)
    log_loss = (
        float(np.mean(np.logaddexp(0.0, design @ weights) - labels * (design @ weights)))
        if count
        else math.nan
    )
    return CalibrationFit(fitted, prior, count, int(labels.sum()), iterations, log_loss)


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))
