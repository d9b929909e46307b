"""Before Qt starts: is there a display, and can Qt's platform plugin load? One line if not.

Without a display, or with a library the xcb plugin needs missing, QApplication aborts the
process (SIGABRT, a core dump) with a hint that names the wrong package. This checks first,
without importing QtGui: the plugin is loaded with the dynamic linker, which names the
missing library, and an X display is tried with libxcb itself.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# The shared objects Qt's xcb plugin needs that desktops often lack -> (Debian/Ubuntu, Fedora).
XCB_PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
}
ALL_DEBIAN = " ".join(debian for debian, _ in XCB_PACKAGES.values())
ALL_FEDORA = " ".join(sorted({fedora for _, fedora in XCB_PACKAGES.values()}))

Loader = Callable[[str], object]


class CannotStart(Exception):
    """The desktop app cannot start here; the message names the cause and the fix."""


def check(env: Mapping[str, str] | None = None, load: Loader | None = None) -> None:
    """Raise CannotStart when QApplication would abort; return quietly when it can start."""
    env = os.environ if env is None else env
    load = load or _load
    if not sys.platform.startswith("linux"):
        return  # macOS and Windows always have their platform plugin
    requested = env.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip().lower()
    if requested and requested != "xcb":
        return  # offscreen, wayland, vnc, ...: Qt reports its own problems without aborting
    if not requested and env.get("WAYLAND_DISPLAY"):
        return  # Qt picks its wayland plugin
    if not env.get("DISPLAY"):
        raise CannotStart(
            "no display found (DISPLAY and WAYLAND_DISPLAY are not set): start it from a "
            "desktop session, or set QT_QPA_PLATFORM=offscreen for a window nobody sees; "
            "the command line (gallery-app index / search) works without one"
        )
    plugin = xcb_plugin()
    if plugin is not None:
        try:
            load(str(plugin))
        except OSError as exc:
            raise CannotStart(missing_library_message(str(exc))) from None
    if not can_connect(env["DISPLAY"], load):
        raise CannotStart(
            f"cannot connect to the X display {env['DISPLAY']!r}: check that it is running "
            "and that this user may use it (xhost, XAUTHORITY)"
        )


def missing_library_message(linker_error: str) -> str:
    """'libxcb-icccm.so.4: cannot open shared object file' -> what to install, by distro."""
    found = re.search(r"(lib[\w.+-]+\.so(?:\.\d+)*)", linker_error)
    library = found.group(1) if found else None
    if library in XCB_PACKAGES:
        debian, fedora = XCB_PACKAGES[library]
        fix = f"sudo apt install {debian} (Debian/Ubuntu) or sudo dnf install {fedora} (Fedora)"
    else:
        fix = f"sudo apt install {ALL_DEBIAN} (Debian/Ubuntu) or sudo dnf install {ALL_FEDORA}"
    what = library or linker_error
    return (
        f"the desktop app cannot start: {what} is missing (Qt's xcb platform plugin needs "
        f"it). Install it with: {fix}; the command line works without it"
    )


def xcb_plugin() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        plugin = Path(folder) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.exists():
            return plugin
    return None


def can_connect(display: str, load: Loader) -> bool:
    """Open and close one X connection with libxcb (what Qt would do, minus the abort)."""
    try:
        xcb = load("libxcb.so.1")
    except OSError:
        return True  # no libxcb to ask: let Qt try (the plugin check above names libraries)
    if not isinstance(xcb, ctypes.CDLL):
        return True
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    try:
        return xcb.xcb_connection_has_error(connection) == 0
    finally:
        xcb.xcb_disconnect(connection)


def _load(path: str) -> ctypes.CDLL:
    return ctypes.CDLL(path, mode=os.RTLD_LAZY | getattr(os, "RTLD_LOCAL", 0))
