"""`gallery-app search` tells an English-only model's user about queries in other languages."""

from __future__ import annotations

import json

from gallery_app.cli import main
from gallery_app.core.language import MULTILINGUAL_SUGGESTION


def test_search_prints_one_hint_line_for_another_language(
    tiny_model_dir, make_images, tmp_path, capsys
) -> None:
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    assert main([*common, "index", str(make_images(2)[0].parent)]) == 0
    capsys.readouterr()

    assert main([*common, "search", "perro en la playa"]) == 0
    printed = capsys.readouterr()
    hints = [line for line in printed.err.splitlines() if line.startswith("hint:")]
    assert len(hints) == 1 and MULTILINGUAL_SUGGESTION in hints[0] and "Spanish" in hints[0]

    assert main([*common, "search", "perro en la playa", "--json"]) == 0
    printed = capsys.readouterr()
    answer = json.loads(printed.out)  # the hint goes to stderr: stdout stays JSON
    assert MULTILINGUAL_SUGGESTION in answer["language_hint"]
    assert "Spanish" in answer["language_note"]

    assert main([*common, "search", "a dog on the beach"]) == 0
    assert "hint:" not in capsys.readouterr().err
    assert main([*common, "search", "a dog on the beach", "--json"]) == 0
    assert "language_hint" not in json.loads(capsys.readouterr().out)
