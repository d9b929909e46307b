"""The user settings file: defaults, round trip, versioning, validation, atomic writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gallery_app.core.errors import ConfigError
from gallery_app.core.settings_store import (
    SETTINGS_VERSION,
    UserSettings,
    load_settings,
    parse_settings,
    save_settings,
    settings_path,
)


def test_missing_file_gives_defaults(tmp_path: Path):
    settings = load_settings(tmp_path / "nothing.json")
    assert settings == UserSettings()
    assert (settings.preset, settings.min_score, settings.expand) == ("model", 0.0, True)
    assert not settings.has_custom


def test_path_follows_the_config_dir_env(isolated_dirs: Path, tmp_path: Path):
    assert settings_path() == tmp_path / "config" / "settings.json"


def test_round_trip_through_the_default_path(tmp_path: Path):
    saved = UserSettings("custom", 42.5, 0.075, 0.3, False)
    path = save_settings(saved)
    assert path == tmp_path / "config" / "settings.json"
    assert load_settings() == saved
    on_disk = json.loads(path.read_text())
    assert on_disk["version"] == SETTINGS_VERSION
    assert on_disk["custom_temperature"] == 42.5 and on_disk["preset"] == "custom"
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp file left


def test_save_replaces_the_previous_file(tmp_path: Path):
    path = tmp_path / "s.json"
    save_settings(UserSettings(min_score=0.1), path)
    save_settings(UserSettings(min_score=0.2), path)
    assert load_settings(path).min_score == 0.2


def test_custom_preset_gives_the_saved_calibration():
    settings = UserSettings("custom", 30.0, 0.05)
    calibration = settings.calibration(logit_scale=math.log(117.0), logit_bias=-12.9)
    assert (calibration.preset, calibration.temperature, calibration.centre) == (
        "custom",
        30.0,
        0.05,
    )


def test_model_preset_ignores_saved_custom_values():
    settings = UserSettings("model", 30.0, 0.05)
    calibration = settings.calibration(logit_scale=math.log(117.0), logit_bias=-12.9)
    assert calibration.preset == "model"
    assert calibration.temperature == pytest.approx(117.0)


def test_a_version_1_file_with_custom_threshold_is_migrated(tmp_path: Path):
    path = tmp_path / "settings.json"
    old = {"version": 1, "preset": "custom", "custom_temperature": 30, "custom_threshold": 0.04}
    path.write_text(json.dumps(old))
    settings = load_settings(path)
    assert (settings.preset, settings.custom_centre) == ("custom", 0.04)
    save_settings(settings, path)
    on_disk = json.loads(path.read_text())
    assert on_disk["custom_centre"] == 0.04 and "custom_threshold" not in on_disk
    assert on_disk["version"] == SETTINGS_VERSION == 2
    # a file that has both keys was written after the rename: custom_centre wins
    both = {**old, "custom_centre": 0.09}
    assert parse_settings(both).custom_centre == 0.09


def test_unknown_keys_are_ignored():
    assert parse_settings({"version": 1, "window": [1, 2], "expand": False}).expand is False


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"version": 99}', "newer gallery-app"),
        ('{"version": "1"}', "'version'"),
        ('{"preset": "warm"}', "'preset'"),
        ('{"preset": 3}', "'preset'"),
        ('{"preset": "custom"}', "no custom_temperature"),
        ('{"custom_temperature": 10}', "set together"),
        ('{"custom_temperature": -1, "custom_centre": 0}', "positive"),
        ('{"custom_temperature": "hot", "custom_centre": 0}', "must be a number"),
        ('{"min_score": 1.5}', "between 0 and 1"),
        ('{"min_score": null}', "'min_score'"),
        ('{"expand": "yes"}', "'expand'"),
    ],
)
def test_bad_content_is_a_config_error_naming_the_file(tmp_path: Path, content, fragment):
    path = tmp_path / "settings.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert fragment in str(raised.value)
    assert str(path) in str(raised.value)


def test_invalid_values_cannot_be_constructed_either():
    with pytest.raises(ValueError):
        UserSettings(preset="custom")


def test_an_unwritable_location_is_a_config_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="Cannot write"):
        save_settings(UserSettings(), blocker / "settings.json")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"min_score": 1e999999}', "out of range"),
        ('{"custom_temperature": NaN, "custom_threshold": 0}', "NaN"),
        ('{"custom_temperature": ' + "9" * 5000 + ', "custom_threshold": 0}', "digits"),
        ('{"custom_temperature": 1' + "0" * 350 + ', "custom_threshold": 0}', "finite"),
        ('{"custom_threshold": [1], "custom_temperature": 1}', "must be a number"),
        ('{"min_score": true}', "must be a number"),
        ('{"preset": {"nested": [1, 2]}}', "'preset'"),
        ('{"version": 1' + "0" * 300 + "}", "newer gallery-app"),
    ],
)
def test_hostile_settings_name_the_file_and_the_fix(tmp_path: Path, content, fragment):
    path = tmp_path / "settings.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert fragment in message and str(path) in message
    assert len(message) < 400  # a 5000-digit value is not echoed back
    if "newer" not in fragment:
        assert "delete it to go back to the defaults" in message


def test_a_fifo_settings_file_is_refused(tmp_path: Path):
    import os

    fifo = tmp_path / "settings.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="named pipe"):
        load_settings(fifo)


def test_the_library_address_is_kept_without_a_password_and_used_after_env_and_option(
    tmp_path, monkeypatch
):
    from gallery_app.core.library import LIBRARY_ENV, library_location

    saved = UserSettings(library="postgresql://ann@nas/photos")
    save_settings(saved)
    assert load_settings().library == "postgresql://ann@nas/photos"
    assert library_location() == "postgresql://ann@nas/photos"  # the window's choice
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path))
    assert library_location() == str(tmp_path)  # the environment beats it
    assert library_location("postgresql://bob@other/db") == "postgresql://bob@other/db"
    with pytest.raises(ValueError, match="password"):
        UserSettings(library="postgresql://ann:secret@nas/photos")
