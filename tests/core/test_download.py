"""Downloads against a local fake hub: byte progress with speed and time left, file filtering,
cancel mid-file, resume with a Range request, and one-line errors when the hub is not there."""

from __future__ import annotations

import time

import pytest
from fake_hub import serving
from huggingface_hub import constants

from gallery_app.core import download
from gallery_app.core.download import (
    DownloadCancelled,
    DownloadProgress,
    cached_snapshot,
    describe,
    download_model,
    is_cached,
    load_source,
    probe_hub,
    wanted,
)
from gallery_app.core.errors import ModelUnavailable

MODEL = "someone/siglip-test"
WEIGHTS = bytes(range(256)) * 256  # 64 KiB
FILES = {
    "config.json": b'{"model_type": "siglip"}',
    "model.safetensors": WEIGHTS,
    "pytorch_model.bin": b"pickle" * 100,  # pickled weights: never fetched
    "spiece.model": b"vocab" * 60,
    "onnx/model.onnx": b"onnx" * 100,  # other formats in subfolders: not ours
    "preprocessor_config.json": b'{"image_size": 224}',
}
FETCHED = ["config.json", "model.safetensors", "spiece.model", "preprocessor_config.json"]


@pytest.fixture
def online(monkeypatch):
    """The tests run with HF_HUB_OFFLINE=1; these need huggingface_hub willing to connect."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


@pytest.fixture
def small_chunks(monkeypatch):
    # Many chunks per file, so progress and cancellation happen mid-file.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)


def test_download_reports_bytes_speed_and_time_left(monkeypatch, tmp_path, small_chunks):
    monkeypatch.setattr(download, "REPORT_SECONDS", 0.0)
    events: list[DownloadProgress] = []
    with serving(monkeypatch, tmp_path / "hub", MODEL, dict(FILES)) as hub:
        folder = download_model(MODEL, events.append)

    assert sorted(
        p.rsplit("/", 1)[-1] for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p
    ) == sorted(FETCHED)
    total = sum(len(FILES[name]) for name in FETCHED)
    assert {e.total_bytes for e in events} == {total}
    done = [e.done_bytes for e in events]
    assert done == sorted(done) and done[-1] == total  # never goes backwards, ends complete
    mid_file = [e for e in events if e.file == "model.safetensors" and 0 < e.done_bytes < total]
    assert len(mid_file) > 3  # reported while the weights arrive, not only per file
    assert all(e.bytes_per_second > 0 and e.seconds_left is not None for e in mid_file)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    gets = [p.rsplit("/", 1)[-1] for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]
    assert gets[-1] == "model.safetensors"  # weights last: a snapshot with them is complete
    assert cached_snapshot(MODEL) == folder
    assert is_cached(MODEL)


def test_cancel_stops_mid_file_and_the_next_try_resumes(monkeypatch, tmp_path, small_chunks):
    cut = 5 * 4096
    with serving(monkeypatch, tmp_path / "hub", MODEL, dict(FILES)) as hub:
        seen: list[DownloadProgress] = []

        def cancel_mid_weights() -> bool:
            return any(e.file == "model.safetensors" and e.done_bytes >= cut for e in seen)

        monkeypatch.setattr(download, "REPORT_SECONDS", 0.0)
        with pytest.raises(DownloadCancelled):
            download_model(MODEL, seen.append, cancelled=cancel_mid_weights)
        assert cached_snapshot(MODEL) is None
        partial = list((tmp_path / "hub").rglob("*" + download.PARTIAL_SUFFIX))
        assert len(partial) == 1
        kept = partial[0].stat().st_size
        assert 0 < kept < len(WEIGHTS)

        folder = download_model(MODEL)

        assert hub.ranges("model.safetensors") == [None, f"bytes={kept}-"]
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert not list((tmp_path / "hub").rglob("*" + download.PARTIAL_SUFFIX))


def test_no_safetensors_on_the_hub_is_refused(monkeypatch, tmp_path):
    files = {k: v for k, v in FILES.items() if k != "model.safetensors"}
    with (
        serving(monkeypatch, tmp_path / "hub", MODEL, files) as hub,
        pytest.raises(ModelUnavailable, match="safetensors"),
    ):
        download_model(MODEL)
    assert not [p for m, p, _ in hub.requests if "/resolve/" in p]


def test_a_hub_that_is_down_gives_one_short_line(monkeypatch, tmp_path):
    with serving(monkeypatch, tmp_path / "hub", MODEL, dict(FILES)) as hub:
        hub.down = True
        with pytest.raises(ModelUnavailable) as raised:
            download_model(MODEL)
    message = str(raised.value)
    assert "\n" not in message and "HTTP 503" in message
    assert "gallery-app models download someone/siglip-test" in message
    assert "--model FOLDER" in message and str(tmp_path / "hub") in message


def test_unreachable_hub_answers_within_the_probe_time(monkeypatch, tmp_path, online):
    # A port nothing listens on: the connection is refused at once, never retried.
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as raised:
        load_source(MODEL)
    assert time.monotonic() - started < download.PROBE_SECONDS + 1
    assert "no connection to the Hugging Face hub (127.0.0.1:9)" in str(raised.value)


def test_a_probe_that_hangs_gives_up_after_its_timeout(monkeypatch, online):
    import threading

    from huggingface_hub import utils

    release = threading.Event()

    class Hanging:
        def head(self, *_args, **_kwargs):
            release.wait(30)  # a resolver that never answers

    monkeypatch.setattr(utils, "get_session", lambda: Hanging())
    started = time.monotonic()
    reason = probe_hub(timeout=0.3)
    release.set()
    assert time.monotonic() - started < 2
    assert reason is not None and "no answer" in reason


def test_offline_mode_is_respected_without_a_network_call(monkeypatch, tmp_path):
    from huggingface_hub import utils

    def no_session():
        raise AssertionError("the network was asked although HF_HUB_OFFLINE is set")

    monkeypatch.setattr(utils, "get_session", no_session)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE is set"):
        load_source(MODEL)


def test_cancel_before_the_first_byte(monkeypatch, tmp_path):
    with (
        serving(monkeypatch, tmp_path / "hub", MODEL, dict(FILES)) as hub,
        pytest.raises(DownloadCancelled),
    ):
        download_model(MODEL, cancelled=lambda: True)
    assert hub.requests == []


def test_wanted_files_are_weights_configs_and_vocab_only():
    assert [name for name in FILES if wanted(name)] == FETCHED
    assert wanted("tokenizer.json") and wanted("tokenizer.model")  # SigLIP 2's Gemma tokenizer


def test_is_cached(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert is_cached(str(tiny_model_dir))  # a folder loads without the hub
    assert is_cached(str(tmp_path / "missing"))  # the loader explains a missing folder
    assert not is_cached("nobody/never-downloaded")


def test_describe_says_bytes_speed_and_time_left():
    text = describe(DownloadProgress(120_000_000, 813_000_000, "model.safetensors", 11.2e6, 62))
    assert text == "Downloading model.safetensors: 120 of 813 MB · 11.2 MB/s · 1:02 left"
    assert describe(DownloadProgress(0, 813_000_000, "config.json")) == (
        "Downloading config.json: 0 of 813 MB"
    )
