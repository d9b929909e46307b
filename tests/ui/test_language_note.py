"""The window says what a query's language changed: debug panel note, status-bar hint."""

from __future__ import annotations

import numpy as np
import pytest
from window_helpers import index_folder, search

from gallery_app.core.calibrate import Calibration
from gallery_app.core.language import MULTILINGUAL_SUGGESTION
from gallery_app.core.search import PromptVariant, SearchHits
from gallery_app.ui.debug_panel import DebugPanel

pytestmark = pytest.mark.qt_log_level_fail("WARNING")


def hits(note: str = "", hint: str = "") -> SearchHits:
    variant = PromptVariant("perro", "a photo of perro.", 1.0)
    return SearchHits(
        "perro",
        (variant,),
        np.arange(2, dtype=np.int64),
        ("/a.jpg", "/b.jpg"),
        np.asarray([[0.1], [0.05]], dtype=np.float32),
        language_note=note,
        language_hint=hint,
    )


def test_the_debug_panel_shows_the_language_note_and_hint(qtbot) -> None:
    panel = DebugPanel()
    qtbot.addWidget(panel)
    calibration = Calibration("custom", 10.0, 0.1)
    noted = hits("Query looks Spanish (perro): searched as typed", "use a multilingual model")
    panel.show_search(noted, noted.rank(calibration), calibration)
    assert panel.language_text() == (
        "Query looks Spanish (perro): searched as typed\nuse a multilingual model"
    )
    plain = hits()
    panel.show_search(plain, plain.rank(calibration), calibration)
    assert panel.language_text() == ""


def test_an_english_only_model_hints_at_a_multilingual_one(
    qtbot, open_window, tiny_model_dir, make_images
) -> None:
    window = open_window(str(tiny_model_dir))
    index_folder(qtbot, window, make_images(3)[0].parent)
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    search(qtbot, window, "perro en la playa")
    assert any(MULTILINGUAL_SUGGESTION in message for message in messages)
    assert "Spanish" in window.debug_panel.language_text()
    assert MULTILINGUAL_SUGGESTION in window.debug_panel.language_text()
    search(qtbot, window, "dog on the beach")
    assert window.debug_panel.language_text() == ""
