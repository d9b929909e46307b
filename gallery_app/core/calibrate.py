"""Raw cosine -> calibrated score: score = sigmoid(T * (raw - c)), and the named presets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SEED_TEMPERATURE = 25.0


@dataclass(frozen=True)
class Calibration:
    """A temperature T and a centre c: the raw cosine at which the score is 0.5."""

    preset: str
    temperature: float
    threshold: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number, got {self.threshold}")

    def score(self, raw_cosine: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return calibrated_score(raw_cosine, self.temperature, self.threshold)

    def with_overrides(
        self, temperature: float | None = None, threshold: float | None = None
    ) -> Calibration:
        if temperature is None and threshold is None:
            return self
        return Calibration(
            preset="custom",
            temperature=self.temperature if temperature is None else temperature,
            threshold=self.threshold if threshold is None else threshold,
        )


def calibrated_score(
    raw_cosine: npt.ArrayLike, temperature: float, threshold: float
) -> npt.NDArray[np.float64]:
    """sigmoid(T * (raw - c)), computed without overflow for any input."""
    logits = temperature * (np.asarray(raw_cosine, dtype=np.float64) - threshold)
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


PRESET_NAMES = ("model", "seed")


def preset(name: str, logit_scale: float, logit_bias: float) -> Calibration:
    if name == "model":
        return model_preset(logit_scale, logit_bias)
    if name == "seed":
        return seed_preset()
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
