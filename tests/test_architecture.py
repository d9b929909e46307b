"""Layering: gallery_app.core never imports Qt (so the CLI, tests and benchmarks can use it), and
the CLI's command modules share only public names (import-linter checks the layers too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gallery_app"
CORE = PACKAGE / "core"
CLI = PACKAGE / "cli"
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "gallery_app.ui")


def module_name(source: Path) -> str:
    parts = source.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_sources_never_import_qt():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 8
    offenders = {
        f"{path.relative_to(CORE)}: {name}"
        for path in files
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN or name.startswith("gallery_app.ui")
    }
    assert offenders == set()


def test_importing_all_of_core_loads_no_qt():
    modules = [module_name(path) for path in CORE.rglob("*.py")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in "
        f"{FORBIDDEN!r} or k.startswith('gallery_app.ui')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def private_names_from_other_cli_modules(text: str, this: str) -> set[str]:
    """`from gallery_app.cli.x import _y` (or `from .x import _y`), and `x._y` on a cli module
    imported as `x`: a command module reaching into another's private helpers."""
    tree = ast.parse(text)
    package = this.rpartition(".")[0]
    cli_aliases: dict[str, str] = {}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{module}" if module else base
            if not module.startswith("gallery_app.cli") or module == this:
                continue
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.add(f"{module}.{alias.name}")
                else:  # `from gallery_app.cli import search`: a module, read below
                    cli_aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gallery_app.cli.") and alias.asname:
                    cli_aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in cli_aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.add(f"{cli_aliases[node.value.id]}.{node.attr}")
    return found


def test_cli_modules_import_no_private_name_of_another():
    files = sorted(CLI.rglob("*.py"))
    assert len(files) >= 8
    offenders = {
        f"{path.relative_to(CLI)}: {name}"
        for path in files
        for name in private_names_from_other_cli_modules(path.read_text(), module_name(path))
    }
    assert offenders == set()
    # The check sees each way of reaching a private name (and a public one is fine).
    probe = (
        "from gallery_app.cli.common import _work_folder, printable\n"
        "from .search import _hidden\n"
        "from gallery_app.cli import index\n"
        "import gallery_app.cli.tune as tune\n"
        "index._secret, tune._other, index.register\n"
    )
    assert private_names_from_other_cli_modules(probe, "gallery_app.cli.cache") == {
        "gallery_app.cli.common._work_folder",
        "gallery_app.cli.search._hidden",
        "gallery_app.cli.index._secret",
        "gallery_app.cli.tune._other",
    }


def opened_here(node: ast.AST) -> str | None:
    """`Library(...)`, `Catalog(...)` or `SiglipEncoder.load(...)`: the call, else None."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name) and func.id in ("Library", "Catalog"):
        return func.id
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in ("Library", "Catalog", "SiglipEncoder")
    ):
        return f"{func.value.id}.{func.attr}"
    return None


def test_only_cli_common_opens_the_encoder_and_the_library():
    """One place turns --model, --prompt-template and --fast into an encoder, and opens the
    library read-only or with the writer lock: a command that did it its own way could
    ignore an option (eval once ignored --fast)."""
    calls = {
        path.name: {
            opened
            for node in ast.walk(ast.parse(path.read_text()))
            if (opened := opened_here(node)) is not None
        }
        for path in sorted(CLI.rglob("*.py"))
    }
    assert calls.pop("common.py") == {"SiglipEncoder.load", "Library", "Catalog"}
    assert {name: opened for name, opened in calls.items() if opened} == {}
