"""The installed Qt binding itself: a defect here takes the whole app down, so check for it."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(str)


def test_emitting_signals_keeps_bool_reference_counts(qapp):
    """PySide6 6.12.0 lost a reference to True/False on every emit(); after a few hundred
    emits Python aborts with 'bool_dealloc'. pyproject excludes it; this catches a regression."""
    emitter = _Emitter()
    received = []
    emitter.changed.connect(received.append)
    lonely = _Emitter()  # no receivers: the other path through emit()
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(200):
        emitter.changed.emit("x")
        lonely.changed.emit("y")
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert len(received) == 200
    assert after == before
