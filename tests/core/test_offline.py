"""A first run that never hangs: a cached hub model loads with every socket forbidden; a model
that is neither cached nor reachable fails in one line naming the fixes, quickly."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from gallery_app.core.download import cached_snapshot, is_cached

REPO = "someone/tiny-siglip"
COMMIT = "1111111111111111111111111111111111111111"


@pytest.fixture
def no_sockets(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""
    attempts: list[object] = []

    def refuse(*args, **_kwargs):
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_model_dir):
    """The tiny model laid out as huggingface_hub caches a download, with offline mode off."""
    cache = tmp_path / "hub"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return repo


def test_a_cached_hub_model_loads_without_any_network_call(hub_cache, no_sockets):
    from gallery_app.core.embeddings import SiglipEncoder

    assert cached_snapshot(REPO) == hub_cache / "snapshots" / COMMIT
    encoder = SiglipEncoder.load(REPO, device="cpu", precision="fp32")
    vectors = encoder.encode_texts(["a dog"])
    assert encoder.model_id == REPO and vectors.shape == (1, encoder.dim)
    assert no_sockets == []


def test_a_half_downloaded_model_is_not_cached(hub_cache):
    (hub_cache / "snapshots" / COMMIT / "model.safetensors").unlink()
    assert cached_snapshot(REPO) is None and not is_cached(REPO)


def test_uncached_and_unreachable_is_one_line_naming_the_fixes(tmp_path):
    """The CLI as a new user runs it, offline mode not set, the hub not answering."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    photos = tmp_path / "photos"
    photos.mkdir()
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gallery_app",
            "--model",
            "google/siglip2-base-patch16-224",
            "index",
            str(photos),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    line = lines[0]
    assert "no connection to the Hugging Face hub (127.0.0.1:9)" in line
    assert "gallery-app models download google/siglip2-base-patch16-224" in line
    assert "--model FOLDER" in line and str(Path(tmp_path / "hf" / "hub")) in line
    assert "Retry" not in run.stderr
    # Interpreter and torch start-up included; the hub retries used to take 30 s and more.
    assert elapsed < 60, elapsed
