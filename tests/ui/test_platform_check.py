"""Starts or says why: no display or a missing xcb library is one line and exit 1, never
SIGABRT."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gallery_app.ui import platform_check
from gallery_app.ui.platform_check import CannotStart, check

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Linux's")


def test_no_display_at_all_is_one_line_and_exit_1(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["GALLERY_APP_DATA_DIR"] = str(tmp_path / "data")
    out = subprocess.run(
        [sys.executable, "-m", "gallery_app"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 1  # not -6 (SIGABRT)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gallery-app: error: no display found")
    assert "QT_QPA_PLATFORM=offscreen" in lines[0]


def test_a_missing_xcb_library_names_the_packages_to_install():
    def linker(path):
        if path.endswith("libqxcb.so"):
            raise OSError("libxcb-icccm.so.4: cannot open shared object file: No such file")
        raise AssertionError("the display is not tried when the plugin cannot load")

    if platform_check.xcb_plugin() is None:
        pytest.skip("this PySide6 has no xcb plugin")
    with pytest.raises(CannotStart) as raised:
        check({"DISPLAY": ":0"}, load=linker)
    message = str(raised.value)
    assert "libxcb-icccm.so.4 is missing" in message
    assert "apt install libxcb-icccm4" in message and "dnf install xcb-util-wm" in message


def test_an_unreachable_display_is_named(tmp_path):
    if platform_check.xcb_plugin() is None:
        pytest.skip("this PySide6 has no xcb plugin")
    try:
        platform_check._load(str(platform_check.xcb_plugin()))
    except OSError as exc:
        pytest.skip(f"xcb libraries not installed here: {exc}")
    with pytest.raises(CannotStart, match="cannot connect to the X display ':4711'"):
        check({"DISPLAY": ":4711"})


@pytest.mark.parametrize(
    "env",
    [{"QT_QPA_PLATFORM": "offscreen"}, {"WAYLAND_DISPLAY": "wayland-0"}],
)
def test_other_platforms_are_left_to_qt(env):
    check(env, load=lambda path: (_ for _ in ()).throw(AssertionError(path)))
