"""Shared fixtures: a tiny random SigLIP on disk, an isolated data dir, generated images."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from photos import random_photo
from tiny_model import build_tiny_siglip

# Never reach for the network from tests: a hub lookup must fail fast, not hang.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_siglip(tmp_path_factory.mktemp("models") / "tiny-siglip")


@pytest.fixture(scope="session")
def encoder(tiny_model_dir: Path):
    from gallery_app.core.embeddings import SiglipEncoder

    return SiglipEncoder.load(str(tiny_model_dir), device="cpu", precision="fp32")


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data and config dirs; nothing touches the user's real ones."""
    data = tmp_path / "data"
    monkeypatch.setenv("GALLERY_APP_DATA_DIR", str(data))
    monkeypatch.setenv("GALLERY_APP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("GALLERY_APP_MODEL", raising=False)
    return data


@pytest.fixture
def library(encoder, isolated_dirs: Path):
    from gallery_app.core.library import Library

    lib = Library(isolated_dirs, encoder.model_id, encoder.dim)
    yield lib
    lib.close()


@pytest.fixture
def make_images(tmp_path: Path) -> Callable[..., list[Path]]:
    """make_images(n, folder="photos", ext=".png", start=0) -> paths of generated images."""
    from PIL import Image

    def make(n: int, folder: str = "photos", ext: str = ".png", start: int = 0) -> list[Path]:
        target = tmp_path / folder
        target.mkdir(parents=True, exist_ok=True)
        paths = []
        for seed in range(start, start + n):
            path = target / f"img_{seed:04d}{ext}"
            Image.fromarray(random_photo(seed)).save(path)
            paths.append(path)
        return paths

    return make
