"""Diagnostics over constructed raw-cosine distributions: each problem, and none when healthy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gallery_app.core.calibrate import Calibration, calibrated_score, model_preset, seed_preset
from gallery_app.core.diagnostics import Diagnosis, RawSummary, diagnose, summarize

# A typical SigLIP base checkpoint: logit_scale ~ log(117), logit_bias ~ -12.9.
MODEL = model_preset(math.log(117.0), -12.9)


def codes(diagnoses: list[Diagnosis]) -> list[str]:
    return [d.code for d in diagnoses]


def assert_spreads(diagnosis: Diagnosis, raw: np.ndarray) -> None:
    """The suggestion maps the best result to 0.9 and the median one to 0.1."""
    assert diagnosis.suggested_temperature is not None
    assert diagnosis.suggested_centre is not None
    assert diagnosis.suggested_temperature > 0
    spread = Calibration("custom", diagnosis.suggested_temperature, diagnosis.suggested_centre)
    assert spread.score(raw.max()) == pytest.approx(0.9, abs=1e-6)
    assert spread.score(np.median(raw)) == pytest.approx(0.1, abs=1e-6)
    # The message carries the numbers, so a user reading only the text can apply them.
    assert f"{diagnosis.suggested_temperature:.1f}" in diagnosis.message
    assert f"{diagnosis.suggested_centre:.4f}" in diagnosis.message


def test_summarize_reports_count_min_mean_max_and_population_std():
    raw = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    summary = summarize(raw)
    assert summary.count == 4
    assert summary.min == pytest.approx(0.1)
    assert summary.mean == pytest.approx(0.25)
    assert summary.max == pytest.approx(0.4)
    assert summary.std == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4]))


def test_summarize_flattens_any_shape():
    assert summarize(np.array([[0.1, 0.2], [0.3, 0.4]])).count == 4


def test_summarize_of_nothing_is_count_zero_and_nan():
    summary = summarize(np.array([], dtype=np.float32))
    assert summary.count == 0
    assert all(math.isnan(v) for v in (summary.min, summary.mean, summary.max, summary.std))
    assert isinstance(summary, RawSummary)


def test_all_negative_points_at_the_pipeline_and_nothing_else():
    # The seed document's broken run: every cosine between -0.09 and -0.001.
    raw = np.linspace(-0.0918, -0.0011, 20)
    found = diagnose(raw, seed_preset())
    assert codes(found) == ["all-negative"]
    message = found[0].message
    assert 'padding="max_length"' in message
    assert "max_length=64" in message
    assert "attention mask" in message
    assert "different checkpoints" in message
    assert "gallery-app search" in message
    assert "logits_per_image" in message
    # Spreading broken cosines would make noise look like matches: no T or c offered.
    assert found[0].suggested_temperature is None
    assert found[0].suggested_centre is None


def test_all_negative_counts_zero_as_not_positive():
    assert codes(diagnose(np.array([0.0, -0.2, -0.1]), MODEL)) == ["all-negative"]


def test_one_or_two_negative_results_are_just_a_query_with_no_match():
    assert "all-negative" not in codes(diagnose(np.array([-0.05, -0.02]), seed_preset()))


def test_low_variance_suggests_a_calibration_that_spreads_the_scores():
    rng = np.random.default_rng(0)
    raw = (0.10 + rng.normal(0, 0.003, 20)).astype(np.float32)
    # Centre the calibration on the data so nothing saturates: only the spread is at fault.
    calibration = Calibration("custom", 25.0, float(np.median(raw)))
    found = diagnose(raw, calibration)
    assert codes(found) == ["low-variance"]
    assert "std" in found[0].message
    assert_spreads(found[0], raw.astype(np.float64))


def test_low_variance_needs_enough_results():
    raw = np.array([0.100, 0.101, 0.102, 0.103])
    assert diagnose(raw, Calibration("custom", 25.0, 0.1)) == []


def test_identical_scores_are_flagged_without_a_suggestion():
    found = diagnose(np.full(10, 0.12), Calibration("custom", 25.0, 0.12))
    assert codes(found) == ["low-variance"]
    assert found[0].suggested_temperature is None
    assert found[0].suggested_centre is None


def test_saturated_low_under_the_model_preset():
    # Well spread but all far below the model's c (~0.11): every score is ~0.
    raw = np.linspace(-0.05, 0.05, 12)
    assert np.all(MODEL.score(raw) < 0.02)
    found = diagnose(raw, MODEL)
    assert codes(found) == ["saturated-low"]
    assert "below 0.02" in found[0].message
    assert f"T = {MODEL.temperature:.1f}" in found[0].message
    assert_spreads(found[0], raw)


def test_saturated_high():
    raw = np.linspace(0.10, 0.30, 12)
    calibration = Calibration("custom", 100.0, 0.0)
    assert np.all(calibration.score(raw) > 0.98)
    found = diagnose(raw, calibration)
    assert codes(found) == ["saturated-high"]
    assert "above 0.98" in found[0].message
    assert_spreads(found[0], raw)


def test_low_variance_and_saturation_are_independent_findings():
    raw = np.linspace(0.020, 0.028, 10)
    found = diagnose(raw, MODEL)
    assert codes(found) == ["low-variance", "saturated-low"]
    assert found[0].suggested_temperature == found[1].suggested_temperature


def test_a_healthy_spread_has_no_diagnosis():
    rng = np.random.default_rng(1)
    raw = np.concatenate([rng.uniform(0.12, 0.20, 5), rng.uniform(0.0, 0.08, 15)])
    assert diagnose(raw, MODEL) == []
    scores = calibrated_score(raw, MODEL.temperature, MODEL.centre)
    assert scores.min() < 0.5 < scores.max()


def test_no_results_no_diagnosis():
    assert diagnose(np.array([], dtype=np.float32), MODEL) == []


def test_accepts_a_plain_list():
    assert codes(diagnose([-0.1, -0.2, -0.3], MODEL)) == ["all-negative"]
