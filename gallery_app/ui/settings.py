"""Typed user settings declared once, each with a change signal; UI state kept apart."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QByteArray, QObject, QSettings, Signal

from gallery_app.core.calibrate import Calibration, model_preset, seed_preset

PRESETS = ("model", "seed", "custom")
DEFAULT_CUSTOM_TEMPERATURE = 25.0


class Settings(QObject):
    """What the user chose. Widgets bind to these; they never own the values."""

    preset_changed = Signal(str)
    custom_changed = Signal(float, float)  # temperature, threshold c
    min_score_changed = Signal(float)  # 0 = off
    expand_changed = Signal(bool)

    def __init__(self, store: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        preset = str(store.value("search/preset", "model"))
        self._preset = preset if preset in PRESETS else "model"
        self._temperature = _positive(store.value("search/temperature"), DEFAULT_CUSTOM_TEMPERATURE)
        self._threshold = _finite(store.value("search/threshold"), 0.0)
        self._min_score = min(max(_finite(store.value("search/min_score"), 0.0), 0.0), 1.0)
        self._expand = str(store.value("search/expand", "true")).lower() == "true"

    @property
    def preset(self) -> str:
        return self._preset

    def set_preset(self, name: str) -> None:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}")
        if name != self._preset:
            self._preset = name
            self._store.setValue("search/preset", name)
            self.preset_changed.emit(name)

    @property
    def custom(self) -> tuple[float, float]:
        return self._temperature, self._threshold

    def set_custom(self, temperature: float, threshold: float) -> None:
        """Choosing a T or c by hand makes the preset 'custom'."""
        Calibration("custom", temperature, threshold)  # validates
        changed = (temperature, threshold) != (self._temperature, self._threshold)
        self._temperature, self._threshold = temperature, threshold
        self._store.setValue("search/temperature", temperature)
        self._store.setValue("search/threshold", threshold)
        self.set_preset("custom")
        if changed:
            self.custom_changed.emit(temperature, threshold)

    @property
    def min_score(self) -> float:
        return self._min_score

    def set_min_score(self, value: float) -> None:
        value = min(max(value, 0.0), 1.0)
        if value != self._min_score:
            self._min_score = value
            self._store.setValue("search/min_score", value)
            self.min_score_changed.emit(value)

    @property
    def expand(self) -> bool:
        return self._expand

    def set_expand(self, on: bool) -> None:
        if on != self._expand:
            self._expand = on
            self._store.setValue("search/expand", "true" if on else "false")
            self.expand_changed.emit(on)

    def calibration(self, logit_scale: float | None, logit_bias: float | None) -> Calibration:
        """The calibration in force; 'model' needs the loaded checkpoint's scale and bias."""
        if self._preset == "model" and logit_scale is not None and logit_bias is not None:
            return model_preset(logit_scale, logit_bias)
        if self._preset == "seed" or self._preset == "model":
            return seed_preset()
        return Calibration("custom", self._temperature, self._threshold)


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


def _finite(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _positive(value: Any, default: float) -> float:
    number = _finite(value, default)
    return number if number > 0 else default
