"""Library-wide diagnosis over probe queries, on constructed (n_images, n_probes) cosines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gallery_app.core.calibrate import Calibration, model_preset, recommend_calibration
from gallery_app.core.diagnostics import NEAR_ZERO_RAW, diagnose_probes

MODEL = model_preset(math.log(117.0), -12.9)


def codes(found) -> list[str]:
    return [d.code for d in found]


def healthy(images: int = 40, probes: int = 12, seed: int = 0) -> np.ndarray:
    """Mostly non-matches near 0, a few matches per probe around 0.15."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0.0, 0.03, (images, probes))
    matches = rng.random((images, probes)) < 0.1
    return np.where(matches, rng.normal(0.15, 0.02, (images, probes)), raw)


def test_a_healthy_library_has_no_diagnosis():
    assert diagnose_probes(healthy(), MODEL) == []


def test_all_negative_points_at_the_pipeline_alone():
    raw = -np.abs(healthy())
    found = diagnose_probes(raw, MODEL)
    assert codes(found) == ["all-negative"]
    assert 'padding="max_length"' in found[0].message
    assert found[0].suggested_temperature is None


def test_every_probe_near_zero_points_at_the_pipeline():
    rng = np.random.default_rng(1)
    raw = rng.uniform(-0.06, NEAR_ZERO_RAW - 0.01, (30, 12))
    found = diagnose_probes(raw, MODEL)
    assert codes(found) == ["near-zero"]
    message = found[0].message
    assert "max_length" in message and "mismatched" in message
    assert "gallery-app search" in message  # how to check
    assert found[0].suggested_temperature is None


def test_one_probe_with_a_real_match_is_not_near_zero():
    rng = np.random.default_rng(1)
    raw = rng.uniform(-0.06, 0.03, (30, 12))
    raw[4, 7] = 0.2
    assert "near-zero" not in codes(diagnose_probes(raw, MODEL))


def test_low_variance_suggests_the_recommended_calibration():
    rng = np.random.default_rng(2)
    # Every photo nearly the same for each probe, but probes at different offsets.
    raw = rng.normal(0.0, 0.002, (40, 12)) + np.linspace(0.06, 0.2, 12)
    calibration = Calibration("custom", 25.0, float(np.median(raw)))
    found = diagnose_probes(raw, calibration)
    assert "low-variance" in codes(found)
    low = found[codes(found).index("low-variance")]
    expected = recommend_calibration(raw).calibration
    assert low.suggested_temperature == pytest.approx(expected.temperature)
    assert low.suggested_centre == pytest.approx(expected.centre)
    assert f"{expected.temperature:.1f}" in low.message


@pytest.mark.parametrize(
    ("calibration", "code"),
    [
        (Calibration("custom", 117.0, 0.6), "saturated-low"),
        (Calibration("custom", 117.0, -0.4), "saturated-high"),
        (Calibration("custom", 5000.0, 0.1), "saturated-both"),
    ],
)
def test_saturation_under_the_chosen_calibration(calibration, code):
    raw = healthy()
    found = diagnose_probes(raw, calibration)
    assert codes(found) == [code]
    assert f"T = {calibration.temperature:.1f}" in found[0].message
    # The suggestion un-saturates: the suggested calibration spreads the same cosines.
    suggested = Calibration("custom", found[0].suggested_temperature, found[0].suggested_centre)
    scores = suggested.score(raw)
    assert np.mean((scores > 0.02) & (scores < 0.98)) > 0.5


def test_too_few_photos_say_nothing():
    assert diagnose_probes(np.full((2, 12), -0.1), MODEL) == []
    assert diagnose_probes(np.zeros((0, 12)), MODEL) == []


def test_few_all_or_nothing_scores_under_the_model_preset_are_not_a_finding():
    # Four photos x three probes: clear matches and clear non-matches, as SigLIP gives them.
    raw = np.array([[0.2, 0.0, -0.02], [0.01, 0.18, 0.0], [0.0, 0.02, 0.19], [0.02, 0.0, 0.01]])
    assert np.all((MODEL.score(raw) < 0.02) | (MODEL.score(raw) > 0.98))
    assert diagnose_probes(raw, MODEL) == []
