"""`gallery-app` and its subcommands: one module per command group (see dispatch.py)."""

from gallery_app.cli.dispatch import build_parser, main

__all__ = ["build_parser", "main"]
