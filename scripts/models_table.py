"""Rewrite README.md's table of models from resources/models.json (the one source).

python scripts/models_table.py          # rewrite the table in place
python scripts/models_table.py --check  # exit 1 if the README's table is out of date
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gallery_app.core.model_catalog import table_markdown  # noqa: E402

START, END = "<!-- models table -->", "<!-- /models table -->"


def main(argv: list[str]) -> int:
    readme = ROOT / "README.md"
    text = readme.read_text("utf-8")
    pattern = re.compile(re.escape(START) + r"\n(?:.*?\n)?" + re.escape(END), re.S)
    if not pattern.search(text):
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return 1
    updated = pattern.sub(lambda _: f"{START}\n{table_markdown()}\n{END}", text)
    if "--check" in argv:
        return 0 if updated == text else 1
    readme.write_text(updated, "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
