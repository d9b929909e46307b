"""What a person does with a photo outside the app: open it, show it in its folder, copy its
path. One place, used by the viewer's buttons and the grid's context menu alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication


def open_with_default_app(paths: list[str]) -> bool:
    return all(QDesktopServices.openUrl(QUrl.fromLocalFile(path)) for path in paths)


def show_in_file_manager(paths: list[str]) -> bool:
    """Select the files in the file manager where it can (freedesktop's FileManager1 over
    D-Bus, Finder, Explorer); otherwise open their folders."""
    if not paths:
        return False
    if sys.platform.startswith("linux") and shutil.which("dbus-send"):
        uris = ",".join(QUrl.fromLocalFile(path).toString() for path in paths)
        try:
            done = subprocess.run(
                [
                    "dbus-send",
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.FileManager1",
                    "/org/freedesktop/FileManager1",
                    "org.freedesktop.FileManager1.ShowItems",
                    f"array:string:{uris}",
                    "string:",
                ],
                capture_output=True,
                timeout=5,
            )
            if done.returncode == 0:
                return True
        except (OSError, subprocess.SubprocessError):
            pass
    if sys.platform == "darwin":
        return subprocess.run(["open", "-R", *paths], check=False).returncode == 0
    if sys.platform == "win32":
        return subprocess.run(["explorer", "/select,", paths[0]], check=False).returncode == 0
    folders = dict.fromkeys(os.path.dirname(path) for path in paths)
    return all(QDesktopServices.openUrl(QUrl.fromLocalFile(folder)) for folder in folders)


def copy_paths(paths: list[str]) -> None:
    QGuiApplication.clipboard().setText("\n".join(paths))
