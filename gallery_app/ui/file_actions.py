"""What a person does with a photo outside the app: open it, show it in its folder, copy its
path. One place, used by the viewer's buttons and the grid's context menu alike."""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication

SHOW_TIMEOUT_MS = 3000


def open_with_default_app(paths: list[str]) -> bool:
    return all(QDesktopServices.openUrl(QUrl.fromLocalFile(path)) for path in paths)


def show_in_file_manager(paths: list[str]) -> bool:
    """Select the files in the file manager where it can (freedesktop's FileManager1 over
    D-Bus, Finder, Explorer); otherwise open their folders."""
    if not paths:
        return False
    if sys.platform.startswith("linux") and _show_items_over_dbus(paths):
        return True
    if sys.platform == "darwin":
        return QProcess.startDetached("open", ["-R", *paths])[0]
    if sys.platform == "win32":
        return QProcess.startDetached("explorer", ["/select,", paths[0]])[0]
    folders = dict.fromkeys(os.path.dirname(path) for path in paths)
    return all(QDesktopServices.openUrl(QUrl.fromLocalFile(folder)) for folder in folders)


def _show_items_over_dbus(paths: list[str]) -> bool:
    try:
        from PySide6.QtDBus import QDBus, QDBusConnection, QDBusMessage
    except ImportError:
        return False
    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return False
    call = QDBusMessage.createMethodCall(
        "org.freedesktop.FileManager1",
        "/org/freedesktop/FileManager1",
        "org.freedesktop.FileManager1",
        "ShowItems",
    )
    call.setArguments([[QUrl.fromLocalFile(path).toString() for path in paths], ""])
    reply = bus.call(call, QDBus.CallMode.Block, SHOW_TIMEOUT_MS)
    return reply.type() == QDBusMessage.MessageType.ReplyMessage


def copy_paths(paths: list[str]) -> None:
    QGuiApplication.clipboard().setText("\n".join(paths))
