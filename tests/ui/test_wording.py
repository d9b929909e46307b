"""Scores in words: the bands and percentages under each thumbnail."""

from __future__ import annotations

import pytest

from gallery_app.ui import wording


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (0.873, "87% match"),
        (0.5, "50% match"),
        (0.4999, "49% possible"),
        (0.34, "34% possible"),
        (0.2, "20% possible"),
        (0.08, "8%"),
        (0.004, "<1%"),
        (0.0, "0%"),
        (0.996, ">99% match"),
        (None, ""),
    ],
)
def test_score_labels(score, label):
    assert wording.score_label(score) == label
