"""The real window on a real X server (Xvfb): it starts, fits the screen, searches when a
person types, shows thumbnails, and quits cleanly. Skipped where Xvfb/xdotool are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from gallery_app.cli import main as cli

TOOLS = ("Xvfb", "xdotool", "import")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or not all(shutil.which(t) for t in TOOLS),
        reason="needs Xvfb, xdotool and ImageMagick's import (apt install xvfb xdotool "
        "imagemagick)",
    ),
]
SCREEN = (1366, 768)


@pytest.fixture
def display(tmp_path):
    number = 150 + os.getpid() % 500
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    socket = Path(f"/tmp/.X11-unix/X{number}")
    deadline = time.monotonic() + 20
    while not socket.exists() and time.monotonic() < deadline and server.poll() is None:
        time.sleep(0.05)
    if not socket.exists():
        server.kill()
        pytest.skip("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(10)


def x(display: str, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["xdotool", *args],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )
    return done.stdout


def screenshot(display: str, path: Path) -> Image.Image:
    subprocess.run(
        ["import", "-window", "root", str(path)],
        env={**os.environ, "DISPLAY": display},
        check=True,
        timeout=60,
    )
    return Image.open(path).convert("RGB")


def test_the_real_window_starts_searches_and_quits(
    display, tiny_model_dir, make_images, tmp_path, isolated_dirs
):
    photos = make_images(8, ext=".jpg")
    assert cli(["--model", str(tiny_model_dir), "index", str(photos[0].parent)]) == 0
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = display
    app = subprocess.Popen(
        [sys.executable, "-m", "gallery_app", "--model", str(tiny_model_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        window = x(display, "search", "--sync", "--onlyvisible", "--name", "^Gallery$").split()[0]
        geometry = x(display, "getwindowgeometry", "--shell", window)
        values = dict(line.split("=") for line in geometry.split())
        assert int(values["WIDTH"]) <= SCREEN[0] and int(values["HEIGHT"]) <= SCREEN[1]

        deadline = time.monotonic() + 120
        before = screenshot(display, tmp_path / "before.png")
        while ImageStat.Stat(before.crop((230, 80, 900, 600))).stddev[0] < 10:
            assert time.monotonic() < deadline, "the library's thumbnails never appeared"
            time.sleep(0.5)
            before = screenshot(display, tmp_path / "before.png")

        x(display, "mousemove", "--window", window, "400", "29", "click", "1")
        x(display, "type", "--delay", "20", "dog on the beach")
        x(display, "key", "Return")
        after = before
        while after.tobytes() == before.tobytes():
            assert time.monotonic() < deadline, "typing a query changed nothing on screen"
            time.sleep(0.5)
            after = screenshot(display, tmp_path / "after.png")

        x(display, "key", "--window", window, "ctrl+q")
        assert app.wait(60) == 0
    finally:
        if app.poll() is None:
            app.kill()
        _out, err = app.communicate(timeout=30)
    assert "Traceback" not in err, err
