"""Calibration: score = sigmoid(T * (raw - c)), the model/seed presets, and overrides."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from gallery_app.core.calibrate import (
    PRESET_NAMES,
    SEED_TEMPERATURE,
    Calibration,
    calibrated_score,
    model_preset,
    preset_calibration,
    seed_preset,
)
from gallery_app.core.errors import CalibrationError, ConfigError

BASE_224_SCALE = math.log(117.33)
BASE_224_BIAS = -12.93


def naive_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --- calibrated_score --------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.5, 1.0, 10.0, 25.0, 117.33])
@pytest.mark.parametrize("centre", [-0.3, 0.0, 0.11, 0.5])
def test_matches_the_sigmoid_formula(temperature, centre):
    raw = np.linspace(-1.0, 1.0, 201)
    expected = 1.0 / (1.0 + np.exp(-temperature * (raw - centre)))
    got = calibrated_score(raw, temperature, centre)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_scalar_input():
    got = calibrated_score(0.2, 10.0, 0.1)
    assert float(got) == pytest.approx(1.0 / (1.0 + math.exp(-1.0)), rel=1e-12)


def test_numerically_stable_for_huge_inputs():
    raw = np.concatenate([np.linspace(-1e6, 1e6, 10_001), [-1e6, 1e6, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = calibrated_score(raw, 1000.0, 0.0)
    assert not np.isnan(got).any()
    assert np.isfinite(got).all()
    assert (got >= 0.0).all()
    assert (got <= 1.0).all()
    assert got[-3] == pytest.approx(0.0, abs=1e-300)
    assert got[-2] == 1.0
    assert got[-1] == 0.5


def test_numerically_stable_at_the_floating_point_extremes():
    raw = np.array([-1e300, -1.0, 1.0, 1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = calibrated_score(raw, 1e6, 0.0)
    assert not np.isnan(got).any()
    assert got[0] == 0.0
    assert got[-1] == 1.0


def test_tiny_scores_keep_relative_precision():
    # Far below the centre the score is ~exp(logit); it must not be flushed to 0 early.
    got = calibrated_score(np.array([-0.7, -0.05]), 1000.0, 0.0)
    assert got[0] == pytest.approx(math.exp(-700.0), rel=1e-12)
    assert got[0] > 0.0
    assert got[1] == pytest.approx(math.exp(-50.0) / (1.0 + math.exp(-50.0)), rel=1e-12)
    # and close to 1 the complement is still resolved
    assert 1.0 - float(calibrated_score(0.03, 1000.0, 0.0)) == pytest.approx(
        math.exp(-30.0), rel=1e-6
    )


def test_preserves_2d_shape():
    raw = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    got = calibrated_score(raw, 25.0, 0.1)
    assert got.shape == (3, 4)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, naive_sigmoid(25.0 * (raw - 0.1)), rtol=1e-12)


def test_accepts_lists_and_float32():
    as_list = calibrated_score([0.0, 0.1, 0.2], 25.0, 0.1)
    as_f32 = calibrated_score(np.array([0.0, 0.1, 0.2], dtype=np.float32), 25.0, 0.1)
    assert as_list.shape == (3,)
    assert as_f32.dtype == np.float64
    np.testing.assert_allclose(as_f32, as_list, rtol=1e-6)


@pytest.mark.parametrize(("temperature", "centre"), [(1.0, 0.0), (25.0, 0.1), (117.33, -0.2)])
def test_monotonic_increasing(temperature, centre):
    raw = np.linspace(-1.0, 1.0, 1001)
    got = calibrated_score(raw, temperature, centre)
    assert (np.diff(got) >= 0).all()
    assert got[-1] > got[0]


@pytest.mark.parametrize("centre", [-0.4, 0.0, 0.11, 0.9])
def test_half_at_the_centre(centre):
    assert float(calibrated_score(centre, 42.0, centre)) == 0.5


def test_symmetric_around_the_centre():
    delta = np.linspace(0.0, 0.5, 51)
    above = calibrated_score(0.1 + delta, 30.0, 0.1)
    below = calibrated_score(0.1 - delta, 30.0, 0.1)
    np.testing.assert_allclose(above + below, 1.0, rtol=1e-12)


# --- presets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logit_scale", "logit_bias"),
    [(BASE_224_SCALE, BASE_224_BIAS), (math.log(10.0), -10.0), (2.3, 0.0), (4.0, 3.5)],
)
def test_model_preset_parameters(logit_scale, logit_bias):
    calibration = model_preset(logit_scale, logit_bias)
    temperature = math.exp(logit_scale)
    assert calibration.preset == "model"
    assert calibration.temperature == pytest.approx(temperature, rel=1e-15)
    assert calibration.centre == pytest.approx(-logit_bias / temperature, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    ("logit_scale", "logit_bias"),
    [(BASE_224_SCALE, BASE_224_BIAS), (math.log(10.0), -10.0), (2.3, 0.0), (4.0, 3.5)],
)
def test_model_preset_reproduces_the_checkpoint_probability(logit_scale, logit_bias):
    # The product's core identity: score(cos) == sigmoid(cos * exp(logit_scale) + logit_bias).
    calibration = model_preset(logit_scale, logit_bias)
    cosines = np.array([-1.0, -0.3, -0.0566, 0.0, 0.05, 0.11, 0.2, 0.35, 1.0])
    expected = naive_sigmoid(cosines * math.exp(logit_scale) + logit_bias)
    np.testing.assert_allclose(calibration.score(cosines), expected, rtol=1e-9, atol=1e-300)


def test_model_preset_base_224_centre_near_point_one_one():
    calibration = model_preset(BASE_224_SCALE, BASE_224_BIAS)
    expected = 1.0 / (1.0 + math.exp(-(0.11 * 117.33 + BASE_224_BIAS)))
    got = float(calibration.score(0.11))
    assert got == pytest.approx(expected, rel=1e-9)
    assert got == pytest.approx(0.5, abs=0.01)
    assert calibration.centre == pytest.approx(12.93 / 117.33, rel=1e-9)


def test_seed_preset():
    calibration = seed_preset()
    assert calibration.preset == "seed"
    assert calibration.temperature == SEED_TEMPERATURE == 25.0
    assert calibration.centre == 0.0
    expected = 1.0 / (1.0 + math.exp(25 * 0.0566))
    got = float(calibration.score(-0.0566))
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(0.195, abs=1e-3)
    assert float(calibration.score(0.0)) == 0.5


def test_preset_dispatch():
    assert PRESET_NAMES == ("model", "seed", "custom")
    assert preset_calibration("model", BASE_224_SCALE, BASE_224_BIAS) == model_preset(
        BASE_224_SCALE, BASE_224_BIAS
    )
    # the seed preset ignores the checkpoint's parameters, and needs none
    assert preset_calibration("seed", BASE_224_SCALE, BASE_224_BIAS) == seed_preset()
    assert preset_calibration("seed") == seed_preset()
    custom = preset_calibration("custom", BASE_224_SCALE, BASE_224_BIAS, custom=(33.0, 0.07))
    assert custom == Calibration("custom", 33.0, 0.07)


def test_the_model_preset_needs_the_checkpoint_numbers():
    with pytest.raises(CalibrationError, match="logit_scale"):
        preset_calibration("model")
    with pytest.raises(CalibrationError):
        preset_calibration("model", BASE_224_SCALE, None)


def test_the_custom_preset_needs_a_saved_calibration():
    with pytest.raises(ConfigError, match="gallery-app tune"):
        preset_calibration("custom", BASE_224_SCALE, BASE_224_BIAS)
    with pytest.raises(ValueError, match="temperature"):
        preset_calibration("custom", custom=(0.0, 0.1))


@pytest.mark.parametrize("name", ["nope", "", "Model", "threshold"])
def test_preset_unknown_name(name):
    with pytest.raises(ValueError, match="unknown preset"):
        preset_calibration(name, BASE_224_SCALE, BASE_224_BIAS)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_saved_settings_resolve_presets_through_the_one_function(name):
    from gallery_app.core.settings_store import UserSettings

    settings = UserSettings(name, 40.0, 0.02)
    assert settings.calibration(BASE_224_SCALE, BASE_224_BIAS) == preset_calibration(
        name, BASE_224_SCALE, BASE_224_BIAS, custom=(40.0, 0.02)
    )


# --- Calibration and overrides -----------------------------------------------------------


def test_with_overrides_nothing_returns_same_object():
    calibration = model_preset(BASE_224_SCALE, BASE_224_BIAS)
    assert calibration.with_overrides() is calibration
    assert calibration.with_overrides(None, None) is calibration


def test_with_overrides_temperature_keeps_centre():
    calibration = model_preset(BASE_224_SCALE, BASE_224_BIAS)
    custom = calibration.with_overrides(temperature=50.0)
    assert custom.preset == "custom"
    assert custom.temperature == 50.0
    assert custom.centre == calibration.centre
    assert calibration.preset == "model"  # the original is untouched
    assert float(custom.score(calibration.centre)) == 0.5


def test_with_overrides_centre_keeps_temperature():
    calibration = seed_preset()
    custom = calibration.with_overrides(centre=0.12)
    assert custom == Calibration("custom", SEED_TEMPERATURE, 0.12)
    assert float(custom.score(0.12)) == 0.5


def test_with_overrides_both():
    custom = seed_preset().with_overrides(temperature=10.0, centre=-0.1)
    assert custom == Calibration("custom", 10.0, -0.1)


def test_with_overrides_zero_centre_is_an_override():
    calibration = model_preset(BASE_224_SCALE, BASE_224_BIAS)
    custom = calibration.with_overrides(centre=0.0)
    assert custom.centre == 0.0
    assert custom.preset == "custom"


@pytest.mark.parametrize("temperature", [0.0, -1.0, -25.0, math.nan, math.inf, -math.inf])
def test_with_overrides_rejects_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        seed_preset().with_overrides(temperature=temperature)


@pytest.mark.parametrize("centre", [math.nan, math.inf, -math.inf])
def test_with_overrides_rejects_non_finite_centre(centre):
    with pytest.raises(ValueError, match="centre"):
        seed_preset().with_overrides(centre=centre)


@pytest.mark.parametrize(
    ("temperature", "centre"), [(0.0, 0.0), (-1.0, 0.0), (math.nan, 0.0), (1.0, math.inf)]
)
def test_calibration_rejects_bad_values(temperature, centre):
    with pytest.raises(ValueError):
        Calibration("custom", temperature, centre)


def test_calibration_is_frozen():
    calibration = seed_preset()
    with pytest.raises(AttributeError):
        calibration.temperature = 1.0  # type: ignore[misc]
