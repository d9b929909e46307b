"""Typed user settings declared once, each with a change signal; UI state kept apart."""

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
SAVE_DELAY_MS = 400  # a slider drag is dozens of changes; the file is written once it stops


class Settings(QObject):
    """What the user chose, kept in the same settings file `gallery-app tune` writes.

    Widgets bind to these; they never own the values. A settings file that cannot be parsed is
    never overwritten: the session runs on defaults and `load_error` says why.
    """

    preset_changed = Signal(str)
    custom_changed = Signal(float, float)  # temperature, centre c
    min_score_changed = Signal(float)  # 0 = off
    expand_changed = Signal(bool)

    def __init__(self, path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = path or settings_path()
        self.load_error: str | None = None
        self._dirty = False  # changed since the file was last written
        try:
            self._values = load_settings(self.path)
        except ConfigError as exc:
            self._values = UserSettings()
            self.load_error = f"{exc} Changes in this session will not be saved."
        self._save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.flush)

    @property
    def preset(self) -> str:
        return self._values.preset

    def set_preset(self, name: str) -> None:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}")
        if name == self._values.preset:
            return
        values = self._values
        if name == "custom" and not values.has_custom:
            values = replace(
                values, custom_temperature=DEFAULT_CUSTOM_TEMPERATURE, custom_centre=0.0
            )
        self._update(replace(values, preset=name))
        self.preset_changed.emit(name)

    @property
    def custom(self) -> tuple[float, float]:
        values = self._values
        if values.custom_temperature is None or values.custom_centre is None:
            return DEFAULT_CUSTOM_TEMPERATURE, 0.0
        return values.custom_temperature, values.custom_centre

    def set_custom(self, temperature: float, centre: float) -> None:
        """Choosing a T or c by hand makes the preset 'custom'."""
        Calibration("custom", temperature, centre)  # validates
        changed = (temperature, centre) != self.custom
        self._update(replace(self._values, custom_temperature=temperature, custom_centre=centre))
        self.set_preset("custom")
        if changed:
            self.custom_changed.emit(temperature, centre)

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

    def calibration(self, logit_scale: float | None, logit_bias: float | None) -> Calibration:
        """The calibration in force; 'model' needs the loaded checkpoint's scale and bias."""
        if self.preset == "model" and (logit_scale is None or logit_bias is None):
            # Only the controls read it before the checkpoint loads; nothing is ranked yet.
            return seed_preset()
        return preset_calibration(self.preset, logit_scale, logit_bias, self.custom)

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
