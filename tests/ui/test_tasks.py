"""The one worker pattern: a thread per task, one error channel, stop-all that waits."""

from __future__ import annotations

import threading

import pytest

from gallery_app.core.errors import GalleryError
from gallery_app.ui.tasks import Task, TaskRunner


class Echo(Task):
    def __init__(self, value):
        super().__init__()
        self.value = value
        self.thread_name = None

    def work(self):
        self.thread_name = threading.current_thread().name
        return self.value


class Fails(Task):
    title = "Counting sheep"

    def __init__(self, exc):
        super().__init__()
        self.exc = exc

    def work(self):
        raise self.exc


class WaitsForCancel(Task):
    def __init__(self, started: threading.Event):
        super().__init__()
        self.started = started

    def work(self):
        self.started.set()
        while not self.cancelled:
            self.token._event.wait(0.01)
        return "stopped"


@pytest.fixture
def runner(qapp):
    runner = TaskRunner()
    yield runner
    runner.stop_all()


def test_a_task_runs_off_the_gui_thread_and_returns_its_result(qtbot, runner):
    task = Echo(42)
    results = []
    task.result.connect(results.append)
    runner.start(task)
    qtbot.waitUntil(lambda: results == [42], timeout=10_000)
    assert task.thread_name != threading.main_thread().name
    qtbot.waitUntil(lambda: runner.running() == [], timeout=10_000)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (GalleryError("The folder /x does not exist"), "The folder /x does not exist"),
        (ValueError("bad pixel"), "Counting sheep failed: bad pixel"),
    ],
)
def test_every_failure_leaves_through_one_errored_signal(qtbot, runner, exc, expected):
    with qtbot.waitSignal(runner.errored, timeout=10_000) as got:
        runner.start(Fails(exc))
    assert got.args == [expected]
    assert "unexpected" not in got.args[0].lower()


def test_stop_all_cancels_and_waits_then_nothing_starts(qtbot, runner):
    started = threading.Event()
    task = WaitsForCancel(started)
    results = []
    task.result.connect(results.append)
    runner.start(task)
    assert started.wait(10)
    runner.stop_all()
    assert runner.running() == []
    assert task.cancelled
    late = Echo(1)
    runner.start(late)  # after close: refused quietly
    assert runner.running() == []
