"""The user's settings on disk: preset, custom T and c, minimum score, expansion, model."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gallery_app.core.calibrate import PRESET_NAMES, Calibration, preset_calibration
from gallery_app.core.errors import ConfigError
from gallery_app.core.jsonfile import DEFAULT_FIX, read_json_file

# 2: custom_threshold was renamed custom_centre (version 1 files are read and migrated).
SETTINGS_VERSION = 2
SETTINGS_FILE_NAME = "settings.json"
SETTINGS_PRESETS = PRESET_NAMES


@dataclass(frozen=True)
class UserSettings:
    """What the app searches with; `custom_*` hold the calibration saved by `tune` `apply`."""

    preset: str = "model"
    custom_temperature: float | None = None
    custom_centre: float | None = None
    min_score: float = 0.0
    expand: bool = True
    model: str | None = None  # hub id or folder chosen in the window; None: the default
    # Where the libraries live, chosen in Preferences: a postgresql:// address (never with its
    # password: libpq reads PGPASSWORD or ~/.pgpass) or a folder; None: the data folder.
    library: str | None = None

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def has_custom(self) -> bool:
        return self.custom is not None

    @property
    def custom(self) -> tuple[float, float] | None:
        """The saved custom (T, c), or None when `tune` `apply` has not saved one."""
        if self.custom_temperature is None or self.custom_centre is None:
            return None
        return self.custom_temperature, self.custom_centre

    def calibration(self, logit_scale: float, logit_bias: float) -> Calibration:
        """The calibration the chosen preset stands for, given the checkpoint's parameters."""
        return preset_calibration(self.preset, logit_scale, logit_bias, self.custom)


def custom_calibration(settings: UserSettings) -> Calibration:
    return preset_calibration("custom", custom=settings.custom)


def settings_path(config_dir: Path | None = None) -> Path:
    if config_dir is None:
        from gallery_app.core.library import default_config_dir

        config_dir = default_config_dir()
    return config_dir / SETTINGS_FILE_NAME


def load_settings(path: Path | None = None) -> UserSettings:
    """The saved settings, or the defaults when there is no file yet."""
    path = path or settings_path()
    try:
        data = read_json_file(path, "Settings file", fix=DEFAULT_FIX)
    except FileNotFoundError:
        return UserSettings()
    return parse_settings(data, str(path), fix=DEFAULT_FIX)


def parse_settings(data: Any, origin: str = "settings", fix: str = "") -> UserSettings:
    """Settings from decoded JSON; unknown keys are ignored so older versions read newer files.
    `fix`, when given, ends every message about a bad value (what to do about the file)."""

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{origin}: {problem}" + (f". {fix}" if fix else ""))

    if not isinstance(data, dict):
        raise bad(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("version", SETTINGS_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"'version' must be a positive integer, got {_shown(version)}")
    if version > SETTINGS_VERSION:
        raise ConfigError(
            f"{origin} was written by a newer gallery-app (settings version {_shown(version)}, "
            f"this one reads {SETTINGS_VERSION}). Upgrade gallery-app."
        )
    defaults = UserSettings()
    preset_name = data.get("preset", defaults.preset)
    if not isinstance(preset_name, str):
        raise bad(f"'preset' must be a string, got {_shown(preset_name)}")
    expand = data.get("expand", defaults.expand)
    if not isinstance(expand, bool):
        raise bad(f"'expand' must be true or false, got {_shown(expand)}")
    model = data.get("model")
    if model is not None and not (isinstance(model, str) and model.strip()):
        raise bad(f"'model' must be a hub id or a folder, got {_shown(model)}")
    library = data.get("library")
    if library is not None and not (isinstance(library, str) and library.strip()):
        raise bad(f"'library' must be a postgresql:// address or a folder, got {_shown(library)}")
    try:
        min_score = _number(data, "min_score", defaults.min_score)
        if min_score is None:
            raise ValueError("'min_score' must be a number, got null")
        return UserSettings(
            preset=preset_name,
            custom_temperature=_number(data, "custom_temperature", None),
            custom_centre=_number(data, _centre_key(data), None),
            min_score=min_score,
            expand=expand,
            model=model,
            library=library,
        )
    except ValueError as exc:
        raise bad(str(exc)) from exc


def _centre_key(data: dict[str, Any]) -> str:
    """custom_centre, or custom_threshold in a file saved before the rename (version 1)."""
    if "custom_centre" not in data and "custom_threshold" in data:
        return "custom_threshold"
    return "custom_centre"


def save_settings(settings: UserSettings, path: Path | None = None) -> Path:
    """Write atomically (temp file + os.replace): a crash leaves the old file or the new one."""
    path = path or settings_path()
    payload = {"version": SETTINGS_VERSION, **asdict(settings)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"Cannot write settings file {path}: {exc}") from exc
    return path


def _number(data: dict[str, Any], key: str, default: float | None) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key!r} must be a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{key!r} must be a finite number, got {_shown(value)}")
    return number


def _shown(value: Any) -> str:
    """A bad value in a message: its repr, cut short (a file may hold a 10000-digit number)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(settings: UserSettings) -> str | None:
    """What makes these settings invalid, in words; None when they are valid."""
    if settings.preset not in SETTINGS_PRESETS:
        names = ", ".join(SETTINGS_PRESETS)
        return f"'preset' must be one of {names}, got {_shown(settings.preset)}"
    temperature = settings.custom_temperature
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        return f"'custom_temperature' must be a positive number, got {temperature}"
    centre = settings.custom_centre
    if centre is not None and not math.isfinite(centre):
        return f"'custom_centre' must be a finite number, got {centre}"
    if (temperature is None) != (centre is None):
        return "'custom_temperature' and 'custom_centre' must be set together"
    if settings.preset == "custom" and temperature is None:
        return "'preset' is 'custom' but no custom_temperature and custom_centre are set"
    if not (math.isfinite(settings.min_score) and 0.0 <= settings.min_score <= 1.0):
        return f"'min_score' must be between 0 and 1, got {settings.min_score}"
    if not isinstance(settings.expand, bool):
        return f"'expand' must be true or false, got {settings.expand!r}"
    if settings.library is not None and "://" in settings.library:
        from urllib.parse import urlsplit

        if urlsplit(settings.library).password is not None:
            return "'library' must not hold a password: put it in ~/.pgpass or PGPASSWORD"
    return None
