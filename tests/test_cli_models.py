"""`gallery-app models`: the catalog with cached ones marked, and downloads (progress, Ctrl-C)."""

from __future__ import annotations

import json
import shutil

import pytest
from fake_hub import serving
from huggingface_hub import constants

from gallery_app.cli import main
from gallery_app.core.embeddings import DEFAULT_MODEL
from gallery_app.core.model_catalog import load_catalog

CACHED = "google/siglip2-base-patch16-224"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_model_dir):
    cache = tmp_path / "hub"
    repo = cache / f"models--{CACHED.replace('/', '--')}"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / "abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_models_json_lists_the_catalog_with_cached_ones_marked(hub_cache, capsys):
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in listing["models"]] == [e.id for e in load_catalog()]
    assert [m["id"] for m in listing["models"] if m["cached"]] == [CACHED]
    assert listing["cache"] == str(hub_cache)
    assert listing["in_use"] == DEFAULT_MODEL  # nothing chosen: the default
    assert [m["id"] for m in listing["models"] if m["default"]] == [DEFAULT_MODEL]


def test_models_lists_in_words_and_marks_the_model_in_use(hub_cache, capsys, monkeypatch):
    monkeypatch.setenv("GALLERY_APP_MODEL", CACHED)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if CACHED in row and row.startswith("*"))
    assert "[cached]" in line and "multilingual" in line
    assert "gallery-app models download ID" in out


def test_models_download_fetches_into_the_cache(monkeypatch, tmp_path, capsys):
    from gallery_app.core.download import is_cached

    files = {
        "config.json": b"{}",
        "model.safetensors": b"w" * 5000,
        "preprocessor_config.json": b"{}",
    }
    with serving(monkeypatch, tmp_path / "hub", "someone/siglip-x", files):
        assert main(["models", "download", "someone/siglip-x"]) == 0
    assert is_cached("someone/siglip-x")
    err = capsys.readouterr().err
    assert "not in the catalog" in err and "downloaded someone/siglip-x" in err


def test_ctrl_c_cancels_the_download_in_one_line(monkeypatch, capsys):
    from gallery_app.core import download
    from gallery_app.core.download import DownloadProgress

    def interrupted(model_id, progress=None, cancelled=None):
        progress(DownloadProgress(300_000_000, 1_500_000_000, "model.safetensors", 1e7, 120))
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "download_model", interrupted)
    monkeypatch.setattr(download, "is_cached", lambda model_id: False)
    assert main(["models", "download", CACHED]) == 130
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert lines[-1].startswith(f"download of {CACHED} cancelled")
    assert "continue where it stopped" in lines[-1]
    assert sum("cancelled" in line for line in lines) == 1
