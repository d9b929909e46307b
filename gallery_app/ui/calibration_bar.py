"""The calibration bar: how scores are computed in this window, and saving it for next time.

A panel: widgets bound to a CalibrationState (the session's calibration) and the Settings;
it owns no value. Moving a control changes this view only; *Save as my calibration* writes
it, *Reset* goes back to the saved one, *Undo save* restores what the last save replaced.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QToolButton,
    QWidget,
)

from gallery_app.ui.settings import CalibrationState, Settings

TEMPERATURE_MAX = 300
PRESET_LABELS = {
    "model": "Model's own",
    "seed": "Classic",
    "custom": "Custom",
}


def _tool_button(text: str) -> QToolButton:
    """A text button as narrow as its text (QPushButton insists on ~80 px each)."""
    button = QToolButton()
    button.setText(text)
    return button


class CalibrationBar(QWidget):
    problem = Signal(str)  # a save that could not be written

    def __init__(
        self, state: CalibrationState, settings: Settings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = settings

        self.preset_box = QComboBox()
        for name, label in PRESET_LABELS.items():
            self.preset_box.addItem(label, name)
        self.preset_box.setToolTip(
            "How a photo's similarity to your words becomes a score.\n"
            "The model's own: the probability SigLIP itself assigns (recommended).\n"
            "Classic: the older fixed formula, for comparison.\n"
            "Custom: your own sharpness, or the calibration `gallery-app tune` saved."
        )
        self.temperature_slider = QSlider(Qt.Orientation.Horizontal)
        self.temperature_slider.setRange(1, TEMPERATURE_MAX)
        self.temperature_slider.setMinimumWidth(60)
        self.temperature_slider.setToolTip(
            "Sharpness: how quickly scores go from unlikely to a match as photos get more "
            "similar to your words.\nChanges this window only until you save it."
        )
        self.temperature_label = QLabel()
        self.temperature_label.setMinimumWidth(28)
        self.min_score_box = QSpinBox(minimum=0, maximum=100, singleStep=5, suffix="%")
        self.min_score_box.setSpecialValueText("off")
        self.min_score_box.setToolTip("Hide photos whose score is below this")
        self.save_button = _tool_button("Save")
        self.save_button.setToolTip(
            "Save as my calibration: used next time, by the window and by `gallery-app search`"
        )
        self.reset_button = _tool_button("Reset")
        self.reset_button.setToolTip("Back to the saved calibration")
        self.undo_button = _tool_button("Undo save")
        self.undo_button.setToolTip("Put back the calibration the last save replaced")
        self.saved_label = QLabel()
        self.saved_label.setToolTip("Whether the scores shown use your saved calibration")

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.preset_box)
        sharpness = QLabel("Sharpness")
        sharpness.setToolTip(self.temperature_slider.toolTip())
        layout.addWidget(sharpness)
        layout.addWidget(self.temperature_slider, 1)
        layout.addWidget(self.temperature_label)
        hide = QLabel("Hide below")
        hide.setToolTip(self.min_score_box.toolTip())
        layout.addWidget(hide)
        layout.addWidget(self.min_score_box)
        layout.addWidget(self.saved_label)
        layout.addWidget(self.save_button)
        layout.addWidget(self.reset_button)
        layout.addWidget(self.undo_button)

        self.min_score_box.setValue(round(settings.min_score * 100))
        self.min_score_box.valueChanged.connect(lambda v: settings.set_min_score(v / 100))
        self.preset_box.currentIndexChanged.connect(
            lambda i: state.choose_preset(self.preset_box.itemData(i))
        )
        self.temperature_slider.valueChanged.connect(self._on_slider_moved)
        self.save_button.clicked.connect(lambda: self._report(state.save()))
        self.reset_button.clicked.connect(state.reset)
        self.undo_button.clicked.connect(lambda: self._report(state.undo_save()))
        state.changed.connect(self.sync)
        self.sync()

    def _on_slider_moved(self, value: int) -> None:
        if abs(self.state.calibration().temperature - value) >= 0.5:
            self.state.set_temperature(float(value))

    def _report(self, problem: str | None) -> None:
        if problem:
            self.problem.emit(problem)

    def sync(self) -> None:
        """Show the session's calibration without feeding it back as a change."""
        calibration = self.state.calibration()
        for widget, update in (
            (
                self.preset_box,
                lambda: self.preset_box.setCurrentIndex(
                    self.preset_box.findData(self.state.preset)
                ),
            ),
            (
                self.temperature_slider,
                lambda: self.temperature_slider.setValue(round(calibration.temperature)),
            ),
        ):
            blocked = widget.blockSignals(True)
            update()
            widget.blockSignals(blocked)
        waiting = self.state.preset == "model" and not self.state.model_known
        self.temperature_label.setText("…" if waiting else f"{calibration.temperature:.0f}")
        saved = self.state.is_saved
        self.saved_label.setText("" if saved else "<i>changed</i>")
        self.save_button.setEnabled(not saved)
        self.reset_button.setEnabled(not saved)
        self.undo_button.setVisible(self.settings.can_undo_save)
