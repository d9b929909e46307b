"""`gallery-app` with no command: open the desktop window."""

from __future__ import annotations

import argparse

from gallery_app.cli.common import data_dir, fail


def run_gui(args: argparse.Namespace) -> int:
    try:
        from gallery_app.ui.app import run_app
        from gallery_app.ui.platform_check import CannotStart
    except ImportError as exc:  # e.g. a Qt platform library missing
        fail(
            f"the desktop app cannot start ({exc}); the index/search commands still work",
            args.verbose,
        )
        return 1
    try:
        return run_app(data_dir(args), args.model, fast=args.fast)
    except CannotStart as exc:  # no display, or a library Qt needs: one line, never SIGABRT
        fail(str(exc), verbose=False)
        return 1
