"""Teach it your photos: the marks section under the debug table and the mark bar in the viewer.

Panels: they show counts and a fit handed to them and emit what was clicked; the
FeedbackController decides and does.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gallery_app.core.feedback import TOP_ONLY_PRIOR_SCALE, parts_line
from gallery_app.ui import wording

if TYPE_CHECKING:
    from gallery_app.core.calibrate import Calibration
    from gallery_app.ui.feedback_controller import FitOutcome

SYMBOLS = {True: "✓", False: "✗"}


def _tool_button(text: str, tip: str) -> QToolButton:
    """A text button as narrow as its text (QPushButton insists on ~80 px each)."""
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    return button


def _label() -> QLabel:
    label = QLabel(wordWrap=True)
    label.setTextFormat(Qt.TextFormat.PlainText)  # queries and file names are text, not markup
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _calibration_text(calibration: Calibration) -> str:
    return f"T = {calibration.temperature:.2f}, c = {calibration.centre:.4f}"


class FeedbackPanel(QWidget):
    """Mark the selected results, see how many marks there are, fit, compare and apply."""

    mark_requested = Signal(object)  # True, False, or None (take the marks back)
    fit_requested = Signal()
    apply_requested = Signal()
    clear_requested = Signal(bool)  # True: every query's marks; False: the query shown

    FILE, QUERY, MARK, RANK, NOW, FITTED = range(6)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._query = ""
        self._counts = (0, 0)
        self._all_counts = (0, 0)
        title = QLabel("<b>Teach it your photos</b>")
        title.setToolTip(
            "Mark results relevant or not to the query, then fit the calibration to your "
            "marks: scores then read the way you judge photos."
        )
        self.relevant_button = _tool_button(
            "✓ Relevant", "Mark the selected results relevant to this query"
        )
        self.not_relevant_button = _tool_button(
            "✗ Not relevant", "Mark the selected results not relevant to this query"
        )
        self.unmark_button = _tool_button("Unmark", "Take back the marks of the selected results")
        self.relevant_button.clicked.connect(lambda: self.mark_requested.emit(True))
        self.not_relevant_button.clicked.connect(lambda: self.mark_requested.emit(False))
        self.unmark_button.clicked.connect(lambda: self.mark_requested.emit(None))
        self.counts_label = _label()
        self.fit_button = _tool_button(
            "Fit calibration", "Fit T and c to every mark in this library, on the score's cosine"
        )
        self.fit_button.clicked.connect(self.fit_requested)
        self.apply_button = _tool_button(
            "Apply", "Save the fit as your custom calibration (what `gallery-app tune` saves)"
        )
        self.apply_button.clicked.connect(self.apply_requested)
        self.apply_button.setEnabled(False)
        self.clear_button = _tool_button("Clear marks", "Forget marks (asks first)")
        self.clear_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.clear_button)
        self.clear_query_action = menu.addAction("This query's marks…", lambda: self._clear(False))
        self.clear_all_action = menu.addAction("All marks…", lambda: self._clear(True))
        self.clear_button.setMenu(menu)
        self.fit_label = _label()
        self.stale_label = _label()  # the fit shown no longer holds every mark
        self.stale_label.setVisible(False)
        self.fit_table = QTableWidget(0, 6, self)
        self.fit_table.setHorizontalHeaderLabels(["File", "Query", "Mark", "Rank", "Now", "Fitted"])
        self.fit_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.fit_table.verticalHeader().setVisible(False)
        header = self.fit_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.FILE, QHeaderView.ResizeMode.Stretch)
        self.fit_table.setVisible(False)

        marking = QHBoxLayout()
        for button in (self.relevant_button, self.not_relevant_button, self.unmark_button):
            marking.addWidget(button)
        marking.addStretch(1)
        fitting = QHBoxLayout()
        for button in (self.fit_button, self.apply_button, self.clear_button):
            fitting.addWidget(button)
        fitting.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(title)
        layout.addLayout(marking)
        layout.addWidget(self.counts_label)
        layout.addLayout(fitting)
        layout.addWidget(self.fit_label)
        layout.addWidget(self.stale_label)
        layout.addWidget(self.fit_table, 1)

    # -- shown ----------------------------------------------------------------------------------
    def show_counts(
        self, query: str, counts: tuple[int, int], all_counts: tuple[int, int], queries: int
    ) -> None:
        self._query, self._counts, self._all_counts = query, counts, all_counts
        for button in (self.relevant_button, self.not_relevant_button, self.unmark_button):
            button.setEnabled(bool(query))
        everything = sum(all_counts)
        here = (
            f"“{query}”: {counts[0]} ✓ · {counts[1]} ✗. " if query else "Search to mark results. "
        )
        self.counts_label.setText(
            here + f"In this library: {everything} mark{'s' if everything != 1 else ''} "
            f"({all_counts[0]} ✓ · {all_counts[1]} ✗) on {queries} "
            f"quer{'ies' if queries != 1 else 'y'}."
        )
        self.clear_query_action.setEnabled(bool(query) and sum(counts) > 0)
        self.clear_all_action.setEnabled(everything > 0)

    def show_fit_state(self, why_not: str | None, fitting: bool, current: bool) -> None:
        """Fit is live when there are enough marks; Apply while the fit shown is current."""
        self.fit_button.setEnabled(why_not is None and not fitting)
        self.fit_button.setText("Fitting…" if fitting else "Fit calibration")
        self.apply_button.setEnabled(current and not fitting)
        stale = self.fit_table.isVisibleTo(self) and not current and not fitting
        self.stale_label.setText("The marks changed since this fit: fit again to use them.")
        self.stale_label.setVisible(stale)
        if why_not is not None and not fitting and not self.fit_table.isVisibleTo(self):
            self.fit_label.setText(why_not)

    def show_fit(self, outcome: FitOutcome) -> None:
        feedback, current = outcome.feedback, outcome.current
        fitted = feedback.calibration
        now = feedback.scores_under(current)
        after = feedback.scores_under(fitted)
        relevant = np.array([j.relevant for j in feedback.judgements], dtype=bool)
        lines = [
            f"Fitted on {len(feedback.judgements)} marks ({feedback.relevant_count} relevant, "
            f"{feedback.not_relevant_count} not relevant) across {feedback.query_count} "
            f"quer{'ies' if feedback.query_count != 1 else 'y'}, on the {feedback.statistic}: "
            f"{_calibration_text(fitted)} (now {_calibration_text(current)}).",
            _mean_line("Marked relevant", now[relevant], after[relevant]),
            _mean_line("Marked not relevant", now[~relevant], after[~relevant]),
            f"Mean log loss of the marks: {feedback.log_loss_under(current):.3f} now, "
            f"{feedback.log_loss_under(fitted):.3f} fitted (lower fits them better).",
        ]
        if feedback.top_only:
            lines.append(
                f"All marked photos are in the top {feedback.top_ranks} of their query: marks "
                "from the top alone bias a fit, so this one was held "
                f"{1 / TOP_ONLY_PRIOR_SCALE:g}× nearer the model's own calibration. Mark a few "
                f"from lower down (ranks {2 * feedback.top_ranks}–{10 * feedback.top_ranks} in "
                "the debug table) for a fit that can move."
            )
        lines.append(parts_line(feedback.parts))
        if outcome.left_out:
            lines.append(
                f"{len(outcome.left_out)} mark(s) left out: their photos could not be read "
                "when last indexed."
            )
        lines.append("Apply saves it as your custom calibration.")
        self.fit_label.setText("\n".join(line for line in lines if line))
        self._fill_table(outcome, now, after)

    def show_fit_problem(self, message: str) -> None:
        self.fit_label.setText(message)
        self.fit_table.setVisible(False)

    def show_applied(self, calibration: Calibration) -> None:
        self.fit_label.setText(
            f"Saved as your custom calibration: {_calibration_text(calibration)}. Scores use "
            "it now; Undo save in the calibration bar puts back the one before."
        )

    def show_cleared(self, removed: int) -> None:
        self.fit_label.setText(f"{removed} mark{'s' if removed != 1 else ''} forgotten.")
        self.fit_table.setVisible(False)

    # -- read back (tests) --------------------------------------------------------------------
    def counts_text(self) -> str:
        return self.counts_label.text()

    def fit_text(self) -> str:
        return self.fit_label.text()

    def fit_rows(self) -> list[tuple[str, ...]]:
        table = self.fit_table
        return [
            tuple(
                (item.text() if (item := table.item(row, column)) is not None else "")
                for column in range(table.columnCount())
            )
            for row in range(table.rowCount())
        ]

    # -- internals ------------------------------------------------------------------------------
    def _clear(self, everything: bool) -> None:
        if everything:
            count = sum(self._all_counts)
            question = f"Forget all {count} marks in this library, for every query?"
        else:
            count = sum(self._counts)
            question = f"Forget the {count} mark(s) for “{self._query}”?"
        answer = QMessageBox.question(self, "Clear marks", question)
        if answer == QMessageBox.StandardButton.Yes:
            self.clear_requested.emit(everything)

    def _fill_table(self, outcome: FitOutcome, now: np.ndarray, after: np.ndarray) -> None:
        feedback = outcome.feedback
        table = self.fit_table
        table.setRowCount(len(feedback.judgements))
        for row, judgement in enumerate(feedback.judgements):
            cells = (
                os.path.basename(judgement.path),
                judgement.query,
                SYMBOLS[judgement.relevant],
                str(int(feedback.ranks[row])),
                wording.percent(float(now[row])),
                wording.percent(float(after[row])),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == self.FILE:
                    item.setToolTip(judgement.path)
                if column >= self.RANK:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                table.setItem(row, column, item)
        table.setVisible(True)


def _mean_line(what: str, now: np.ndarray, after: np.ndarray) -> str:
    if not len(now):
        return ""
    return (
        f"{what}: mean score {wording.percent(float(now.mean()))} now → "
        f"{wording.percent(float(after.mean()))} fitted."
    )


class MarkBar(QWidget):
    """In the viewer: the photo's mark for the query, and the two buttons (R / N) to set it."""

    RELEVANT_KEY = Qt.Key.Key_R
    NOT_RELEVANT_KEY = Qt.Key.Key_N
    mark_requested = Signal(object)  # True, False, or None (take the mark back)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = _label()
        self.relevant_button = _tool_button(
            "✓ Relevant", "Mark this photo relevant to the query (R; again: unmark)"
        )
        self.not_relevant_button = _tool_button(
            "✗ Not relevant", "Mark this photo not relevant to the query (N; again: unmark)"
        )
        for button, relevant in ((self.relevant_button, True), (self.not_relevant_button, False)):
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with the viewer
            button.clicked.connect(
                lambda checked, relevant=relevant: self.mark_requested.emit(
                    relevant if checked else None
                )
            )
        buttons = QHBoxLayout()
        buttons.addWidget(self.relevant_button)
        buttons.addWidget(self.not_relevant_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(self.label)
        layout.addLayout(buttons)
        self._mark: bool | None = None
        self.setVisible(False)

    def show_mark(self, query: str, relevant: bool | None) -> None:
        """The shown photo's mark for `query`; hidden without a query."""
        self._mark = relevant
        self.setVisible(bool(query))
        state = {True: "marked relevant", False: "marked not relevant", None: "not marked"}
        self.label.setText(f"For “{query}”: {state[relevant]} (keys R / N)" if query else "")
        for button, checked in (
            (self.relevant_button, relevant is True),
            (self.not_relevant_button, relevant is False),
        ):
            blocked = button.blockSignals(True)
            button.setChecked(checked)
            button.blockSignals(blocked)

    def mark(self) -> bool | None:
        return self._mark
