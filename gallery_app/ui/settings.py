"""Typed user settings declared once, each with a change signal; the session's calibration
(what the sliders show) kept apart from the saved one; UI state (geometry) apart from both."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QObject, QSettings, QTimer, Signal

from gallery_app.core.calibrate import Calibration, preset_calibration, seed_preset
from gallery_app.core.errors import ConfigError
from gallery_app.core.settings_store import (
    SETTINGS_PRESETS,
    UserSettings,
    load_settings,
    save_settings,
    settings_path,
)

PRESETS = SETTINGS_PRESETS
DEFAULT_CUSTOM_TEMPERATURE = 25.0
SAVE_DELAY_MS = 400  # a burst of changes is written once it stops


class Settings(QObject):
    """What the user chose, kept in the same settings file the CLI (`tune`, `search`) reads.

    Widgets bind to these; they never own the values. The calibration in the file changes
    only through `save_calibration` (or `undo_save`): moving a slider never writes it. A file
    that cannot be parsed is never overwritten: the session runs on defaults and `load_error`
    says why.
    """

    saved_calibration_changed = Signal()
    min_score_changed = Signal(float)  # 0 = off
    expand_changed = Signal(bool)

    def __init__(self, path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = path or settings_path()
        self.load_error: str | None = None
        self._dirty = False  # changed since the file was last written
        self._undo: list[UserSettings] = []  # the calibrations before each save, newest last
        try:
            self._values = load_settings(self.path)
        except ConfigError as exc:
            self._values = UserSettings()
            self.load_error = f"{exc} Changes in this session will not be saved."
        self._save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.flush)

    # -- the saved calibration ------------------------------------------------------------
    @property
    def preset(self) -> str:
        return self._values.preset

    @property
    def custom(self) -> tuple[float, float] | None:
        values = self._values
        if values.custom_temperature is None or values.custom_centre is None:
            return None
        return values.custom_temperature, values.custom_centre

    def saved_calibration(self, logit_scale: float | None, logit_bias: float | None) -> Calibration:
        return resolve(self.preset, self.custom, logit_scale, logit_bias)

    def save_calibration(self, calibration: Calibration) -> str | None:
        """Make `calibration` the saved one (a custom T and c is the same `custom` preset
        `tune apply` writes); written at once. Returns an error message instead of raising."""
        before = self._values
        if calibration.preset == "custom":
            values = replace(
                before,
                preset="custom",
                custom_temperature=calibration.temperature,
                custom_centre=calibration.centre,
            )
        else:
            values = replace(before, preset=calibration.preset)
        if values == before:
            return None
        self._undo.append(before)
        self._values = values
        self._dirty = True
        self.saved_calibration_changed.emit()
        return self.flush()

    @property
    def can_undo_save(self) -> bool:
        return bool(self._undo)

    def undo_save(self) -> str | None:
        """Put back the calibration the last save replaced."""
        if not self._undo:
            return None
        previous = self._undo.pop()
        self._values = replace(
            self._values,
            preset=previous.preset,
            custom_temperature=previous.custom_temperature,
            custom_centre=previous.custom_centre,
        )
        self._dirty = True
        self.saved_calibration_changed.emit()
        return self.flush()

    # -- view choices, saved as they change -----------------------------------------------
    @property
    def min_score(self) -> float:
        return self._values.min_score

    def set_min_score(self, value: float) -> None:
        value = min(max(value, 0.0), 1.0)
        if value != self._values.min_score:
            self._update(replace(self._values, min_score=value))
            self.min_score_changed.emit(value)

    @property
    def expand(self) -> bool:
        return self._values.expand

    def set_expand(self, on: bool) -> None:
        if on != self._values.expand:
            self._update(replace(self._values, expand=on))
            self.expand_changed.emit(on)

    @property
    def model(self) -> str | None:
        """The model chosen in the window last time (hub id or folder), if any."""
        return self._values.model

    def set_model(self, model: str) -> None:
        if model != self._values.model:
            self._update(replace(self._values, model=model))

    @property
    def library(self) -> str | None:
        """Where the libraries live, as chosen in Preferences (see core.library_location)."""
        return self._values.library

    def set_library(self, location: str | None) -> None:
        """Save where the libraries live: a postgresql:// address (stored without its
        password) or a folder; None or blank for the data folder."""
        from gallery_app.core.pg_catalog import is_postgres_url, without_password

        location = (location or "").strip() or None
        if location is not None and is_postgres_url(location):
            location = without_password(location)
        if location != self._values.library:
            self._update(replace(self._values, library=location))
            self.flush()  # read by the next start and by the command line

    # -- the file ---------------------------------------------------------------------------
    def flush(self) -> str | None:
        """Write pending changes now; returns an error message instead of raising."""
        self._save_timer.stop()
        if not self._dirty or self.load_error is not None:
            return None
        try:
            save_settings(self._values, self.path)
        except ConfigError as exc:
            return str(exc)
        self._dirty = False
        return None

    def _update(self, values: UserSettings) -> None:
        self._values = values
        self._dirty = True
        self._save_timer.start()


def resolve(
    preset: str,
    custom: tuple[float, float] | None,
    logit_scale: float | None,
    logit_bias: float | None,
) -> Calibration:
    """The Calibration a preset stands for; 'model' needs the checkpoint's scale and bias
    (the seed formula stands in until the model is loaded)."""
    if preset == "model" and (logit_scale is None or logit_bias is None):
        return seed_preset()  # only the controls read it before the checkpoint loads
    return preset_calibration(
        preset, logit_scale, logit_bias, custom or (DEFAULT_CUSTOM_TEMPERATURE, 0.0)
    )


class CalibrationState(QObject):
    """The calibration this window scores with: starts as the saved one, follows the controls,
    and is written only by `save()`. `reset()` goes back to the saved one."""

    changed = Signal()  # the session calibration, or whether it is saved, changed

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self._model: tuple[float, float] | None = None  # logit scale, bias of the checkpoint
        self._preset = settings.preset
        self._custom = settings.custom
        settings.saved_calibration_changed.connect(self.changed)

    def set_model_parameters(self, logit_scale: float, logit_bias: float) -> None:
        self._model = (logit_scale, logit_bias)
        self.changed.emit()

    @property
    def model_known(self) -> bool:
        return self._model is not None

    @property
    def preset(self) -> str:
        return self._preset

    def calibration(self) -> Calibration:
        scale, bias = self._model or (None, None)
        return resolve(self._preset, self._custom, scale, bias)

    def saved(self) -> Calibration:
        scale, bias = self._model or (None, None)
        return self._settings.saved_calibration(scale, bias)

    @property
    def is_saved(self) -> bool:
        return self._preset == self._settings.preset and (
            self._preset != "custom" or self._custom == self._settings.custom
        )

    def choose_preset(self, name: str) -> None:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}")
        if name == self._preset:
            return
        if name == "custom" and self._custom is None:
            self._custom = self._settings.custom or self._as_custom(self.calibration())
        self._preset = name
        self.changed.emit()

    def set_temperature(self, temperature: float) -> None:
        """Choosing a T by hand makes the session's calibration custom (keeping its c)."""
        current = self.calibration()
        if self._preset == "custom" and abs(current.temperature - temperature) < 1e-9:
            return
        Calibration("custom", temperature, current.centre)  # validates
        self._custom = (temperature, current.centre)
        self._preset = "custom"
        self.changed.emit()

    def reset(self) -> None:
        """Back to the saved calibration."""
        self._preset, self._custom = self._settings.preset, self._settings.custom
        self.changed.emit()

    def save(self) -> str | None:
        problem = self._settings.save_calibration(self.calibration())
        self.changed.emit()
        return problem

    def undo_save(self) -> str | None:
        problem = self._settings.undo_save()
        self.reset()
        return problem

    @staticmethod
    def _as_custom(calibration: Calibration) -> tuple[float, float]:
        return calibration.temperature, calibration.centre


class UiState:
    """Window geometry, splitter sizes, dock visibility: restored, never a user 'setting'."""

    def __init__(self, store: QSettings) -> None:
        self._store = store

    def value(self, key: str, default: Any = None) -> Any:
        return self._store.value(f"ui/{key}", default)

    def bytes_value(self, key: str) -> QByteArray | None:
        value = self._store.value(f"ui/{key}")
        return value if isinstance(value, QByteArray) else None

    def set_value(self, key: str, value: Any) -> None:
        self._store.setValue(f"ui/{key}", value)
