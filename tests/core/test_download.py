"""First-run download: byte progress from the partial blob, filtering, errors, cancellation."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub import constants

from gallery_app.core.download import (
    DownloadCancelled,
    describe,
    download_model,
    is_cached,
    wanted,
)
from gallery_app.core.errors import ModelUnavailable

MODEL = "someone/siglip-test"
FILES = {
    "config.json": 100,
    "model.safetensors": 5000,
    "pytorch_model.bin": 5000,  # pickled weights: never fetched
    "spiece.model": 300,
    "onnx/model.onnx": 900,  # other formats in subfolders: not ours
    "preprocessor_config.json": 50,
}


class FakeHub:
    """Stands in for the hub: writes each file through a growing `*.incomplete` blob."""

    def __init__(self, cache: Path, files: dict[str, int]) -> None:
        self.cache = cache
        self.files = files
        self.fetched: list[str] = []
        self.partial_seen = threading.Event()

    def model_info(self, model_id: str, files_metadata: bool = False) -> SimpleNamespace:
        assert files_metadata
        return SimpleNamespace(
            siblings=[SimpleNamespace(rfilename=n, size=s) for n, s in self.files.items()]
        )

    def hf_hub_download(self, model_id: str, filename: str) -> str:
        self.fetched.append(filename)
        repo = self.cache / f"models--{model_id.replace('/', '--')}"
        blobs = repo / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        partial = blobs / f"{filename}.incomplete"
        size = self.files[filename]
        if filename == "model.safetensors":
            # Half the file lands, then the watcher must report it before the rest arrives.
            partial.write_bytes(b"x" * (size // 2))
            assert self.partial_seen.wait(30), "the watcher never reported the partial blob"
        partial.write_bytes(b"x" * size)
        snapshot = repo / "snapshots" / "abc"
        snapshot.mkdir(parents=True, exist_ok=True)
        partial.rename(snapshot / filename)
        return str(snapshot / filename)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    fake = FakeHub(tmp_path / "hub", dict(FILES))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(fake.cache))
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: fake)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    return fake


def test_download_reports_bytes_while_the_weights_arrive(hub):
    events = []

    def progress(p):
        events.append(p)
        if p.file == "model.safetensors" and 0 < p.done_bytes - 100 < 5000:
            hub.partial_seen.set()

    folder = download_model(MODEL, progress)

    assert sorted(hub.fetched) == sorted(
        ["config.json", "model.safetensors", "spiece.model", "preprocessor_config.json"]
    )
    total = 100 + 5000 + 300 + 50
    assert {e.total_bytes for e in events} == {total}
    assert events[-1].done_bytes == total
    done = [e.done_bytes for e in events]
    assert done == sorted(done)  # never goes backwards
    assert any(e.file == "model.safetensors" and e.done_bytes == 100 + 2500 for e in events)
    assert (folder / "model.safetensors").stat().st_size == 5000
    assert "MB" in describe(events[-1])


def test_no_safetensors_on_the_hub_is_refused(hub):
    del hub.files["model.safetensors"]
    with pytest.raises(ModelUnavailable, match="safetensors"):
        download_model(MODEL)
    assert hub.fetched == []


def test_offline_gives_an_actionable_error(monkeypatch):
    def offline(*_args, **_kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: SimpleNamespace(model_info=offline))
    with pytest.raises(ModelUnavailable, match=r"Cannot download .*connection") as raised:
        download_model(MODEL)
    assert "no connection to the Hugging Face hub" in str(raised.value)
    assert "OSError" not in str(raised.value)  # the exception's details go to the log


def test_other_failures_say_what_went_wrong_in_one_short_line(monkeypatch):
    def refused(*_args, **_kwargs):
        raise RuntimeError("401 Client Error: repository is gated\n" + "details " * 100)

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: SimpleNamespace(model_info=refused))
    with pytest.raises(ModelUnavailable) as raised:
        download_model(MODEL)
    message = str(raised.value)
    assert "401 Client Error: repository is gated" in message
    assert "\n" not in message and "details" not in message


def test_cancel_stops_between_files(hub):
    hub.partial_seen.set()
    with pytest.raises(DownloadCancelled):
        download_model(MODEL, cancelled=lambda: len(hub.fetched) >= 2)
    assert len(hub.fetched) == 2


def test_wanted_files_are_weights_configs_and_vocab_only():
    assert [name for name in FILES if wanted(name)] == [
        "config.json",
        "model.safetensors",
        "spiece.model",
        "preprocessor_config.json",
    ]


def test_is_cached(tiny_model_dir, tmp_path):
    assert is_cached(str(tiny_model_dir))  # a folder loads without the hub
    assert is_cached(str(tmp_path / "missing"))  # the loader explains a missing folder
    assert not is_cached("nobody/never-downloaded")  # HF_HUB_OFFLINE=1 in the tests
