"""Recommending T and c from a library's cosines, and fitting them to judged pairs (Platt)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gallery_app.core.calibrate import (
    Calibration,
    calibrated_score,
    calibration_through,
    fit_calibration,
    model_preset,
    recommend_calibration,
)
from gallery_app.core.errors import CalibrationError

BASE_224 = model_preset(math.log(117.33), -12.93)
LOGIT_90 = math.log(9.0)


def probe_matrix(
    temperature: float, centre: float, images: int, probes: int, seed: int = 0
) -> np.ndarray:
    """Cosines whose per-probe 99th percentile scores exactly 0.9 and median 0.1 under (T, c)."""
    rng = np.random.default_rng(seed)
    columns = []
    for _ in range(probes):
        z = rng.standard_normal(images) ** 3  # skewed, like real cosines: a few strong matches
        z = (z - np.median(z)) / (np.quantile(z, 0.99) - np.median(z))  # median 0, q99 1
        logits = -LOGIT_90 + 2 * LOGIT_90 * z
        columns.append(centre + logits / temperature)
    return np.column_stack(columns)


# --- calibration_through / recommend_calibration ------------------------------------------


def test_calibration_through_two_points():
    calibration = calibration_through(0.2, 0.9, 0.05, 0.1)
    assert calibration.score(0.2) == pytest.approx(0.9)
    assert calibration.score(0.05) == pytest.approx(0.1)


def test_calibration_through_refuses_points_too_close():
    with pytest.raises(CalibrationError, match="too close"):
        calibration_through(0.1, 0.9, 0.1, 0.1)


@pytest.mark.parametrize(("temperature", "centre"), [(117.0, 0.11), (40.0, 0.07), (8.0, -0.2)])
def test_recommend_recovers_the_calibration_that_generated_the_cosines(temperature, centre):
    raw = probe_matrix(temperature, centre, images=2000, probes=12)
    recommendation = recommend_calibration(raw)
    assert recommendation.calibration.temperature == pytest.approx(temperature, rel=1e-6)
    assert recommendation.calibration.centre == pytest.approx(centre, abs=1e-6)
    assert (recommendation.image_count, recommendation.probe_count) == (2000, 12)
    assert "2000 photos and 12 probe queries" in recommendation.reason


def test_recommend_maps_the_top_percent_high_and_the_median_low_for_each_probe():
    rng = np.random.default_rng(3)
    # Every probe has its own offset, as every text embedding has.
    raw = rng.normal(0.0, 0.03, (1000, 8)) + rng.uniform(-0.05, 0.05, 8)
    calibration = recommend_calibration(raw).calibration
    top = calibration.score(np.quantile(raw, 0.99, axis=0))
    middle = calibration.score(np.median(raw, axis=0))
    assert np.median(top) == pytest.approx(0.9, abs=0.02)
    assert np.median(middle) == pytest.approx(0.1, abs=0.02)


def test_recommend_is_not_driven_by_one_probe_with_a_large_offset():
    raw = probe_matrix(50.0, 0.05, images=1000, probes=9)
    raw[:, 0] += 0.5  # one text whose cosines all sit far above the rest
    assert recommend_calibration(raw).calibration.centre == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize("raw", [np.zeros((1, 5)), np.full((50, 3), 0.1)])
def test_recommend_refuses_data_it_cannot_spread(raw):
    with pytest.raises(CalibrationError):
        recommend_calibration(raw)


# --- fit_calibration ----------------------------------------------------------------------


def judged_pairs(temperature: float, centre: float, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    raw = rng.uniform(-0.1, 0.35, count)
    relevant = rng.random(count) < calibrated_score(raw, temperature, centre)
    return raw, relevant


@pytest.mark.parametrize(("temperature", "centre"), [(60.0, 0.05), (150.0, 0.15), (20.0, 0.0)])
def test_fit_recovers_known_temperature_and_centre(temperature, centre):
    raw, relevant = judged_pairs(temperature, centre, 20_000)
    fit = fit_calibration(raw, relevant, prior=BASE_224)
    assert fit.calibration.temperature == pytest.approx(temperature, rel=0.1)
    assert fit.calibration.centre == pytest.approx(centre, abs=0.01)
    assert fit.calibration.preset == "custom"
    assert (fit.sample_count, fit.relevant_count) == (20_000, int(relevant.sum()))


def test_fit_matches_an_unregularised_likelihood_optimum_when_data_is_plentiful():
    raw, relevant = judged_pairs(60.0, 0.05, 5000, seed=1)
    fit = fit_calibration(raw, relevant, prior=BASE_224)

    def nll(temperature: float, centre: float) -> float:
        logits = temperature * (raw - centre)
        return float(np.sum(np.logaddexp(0, logits) - relevant * logits))

    best = nll(fit.calibration.temperature, fit.calibration.centre)
    for dt, dc in [(2, 0), (-2, 0), (0, 0.002), (0, -0.002)]:
        assert best < nll(fit.calibration.temperature + dt, fit.calibration.centre + dc)
    assert fit.log_loss == pytest.approx(best / len(raw))


def test_no_feedback_gives_the_prior():
    fit = fit_calibration([], [], prior=BASE_224)
    assert fit.calibration.temperature == pytest.approx(BASE_224.temperature)
    assert fit.calibration.centre == pytest.approx(BASE_224.centre)
    assert fit.sample_count == 0 and math.isnan(fit.log_loss)


def test_scarce_feedback_stays_near_the_prior():
    # Two judged pairs, perfectly separated: alone, a plain logistic fit would send T to
    # infinity and could put c anywhere between them.
    fit = fit_calibration([0.125, 0.095], [True, False], prior=BASE_224)
    assert fit.calibration.temperature == pytest.approx(BASE_224.temperature, rel=0.5)
    assert fit.calibration.centre == pytest.approx(BASE_224.centre, abs=0.02)


def test_separable_feedback_keeps_a_finite_temperature():
    raw = np.array([0.05, 0.06, 0.07, 0.15, 0.16, 0.17])
    fit = fit_calibration(raw, [0, 0, 0, 1, 1, 1], prior=BASE_224)
    assert math.isfinite(fit.calibration.temperature)
    assert fit.calibration.temperature < 10 * BASE_224.temperature
    assert 0.07 < fit.calibration.centre < 0.15
    assert fit.iterations < 100


def test_more_feedback_moves_the_fit_further_from_the_prior():
    prior = Calibration("model", 117.0, 0.11)
    distances = []
    for count in (10, 100, 10_000):
        raw, relevant = judged_pairs(40.0, 0.0, count, seed=2)
        fit = fit_calibration(raw, relevant, prior=prior)
        distances.append(abs(fit.calibration.centre - 0.0))
    assert distances[2] < distances[0]
    assert distances[2] < 0.01


def test_feedback_that_ranks_relevant_photos_lower_is_refused():
    raw, relevant = judged_pairs(60.0, 0.05, 2000)
    with pytest.raises(CalibrationError, match="relevant"):
        fit_calibration(raw, ~relevant, prior=BASE_224)


@pytest.mark.parametrize(
    ("raw", "relevant"),
    [([0.1, 0.2], [1]), ([0.1, math.nan], [1, 0]), ([0.1, 0.2], [1, 2])],
)
def test_fit_rejects_malformed_input(raw, relevant):
    with pytest.raises(ValueError):
        fit_calibration(raw, relevant, prior=BASE_224)
