"""One pick_device(): cuda > mps > cpu, GALLERY_APP_DEVICE overrides; fp16 only on accelerators."""

from __future__ import annotations

import logging

import pytest
import torch

from gallery_app.core import accelerator
from gallery_app.core.accelerator import fp16_keeps_image_vectors, image_autocast, pick_device


@pytest.fixture
def devices(monkeypatch):
    """Pretend which accelerators are present."""
    present = {"cuda": False, "mps": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: present["cuda"])

    class Mps:
        @staticmethod
        def is_available() -> bool:
            return present["mps"]

    monkeypatch.setattr(torch.backends, "mps", Mps)
    monkeypatch.delenv(accelerator.DEVICE_ENV, raising=False)
    return present


def test_prefers_cuda_then_mps_then_cpu(devices):
    assert pick_device() == "cpu"
    devices["mps"] = True
    assert pick_device() == "mps"
    devices["cuda"] = True
    assert pick_device() == "cuda"


def test_the_environment_overrides(devices, monkeypatch):
    devices["cuda"] = True
    monkeypatch.setenv(accelerator.DEVICE_ENV, "cpu")
    assert pick_device() == "cpu"
    monkeypatch.setenv(accelerator.DEVICE_ENV, "CUDA")
    assert pick_device() == "cuda"
    assert pick_device("cpu") == "cpu"  # an explicit device beats the environment


def test_an_absent_or_unknown_device_falls_back_to_the_cpu_with_a_warning(
    devices, monkeypatch, caplog
):
    monkeypatch.setenv(accelerator.DEVICE_ENV, "mps")
    with caplog.at_level(logging.WARNING):
        assert pick_device() == "cpu"
    monkeypatch.setenv(accelerator.DEVICE_ENV, "tpu")
    with caplog.at_level(logging.WARNING):
        assert pick_device() == "cpu"
    assert "no mps device" in caplog.text and "'tpu' is not one of" in caplog.text


def test_the_loader_uses_pick_device(devices, monkeypatch, tiny_model_dir):
    from gallery_app.core.embeddings import SiglipEncoder

    monkeypatch.setenv(accelerator.DEVICE_ENV, "cpu")
    devices["cuda"] = True  # present, but the environment says cpu
    encoder = SiglipEncoder.load(str(tiny_model_dir), precision="fp32")
    assert encoder.device == "cpu" and encoder.image_fp16 is False


def test_fp16_is_never_used_on_the_cpu():
    calls = []

    def encode(pixels):
        calls.append(pixels)
        return pixels.flatten(1)

    assert fp16_keeps_image_vectors(encode, (8, 8), "cpu") == (False, 1.0)
    assert calls == []  # not even measured
    with image_autocast("cpu", True):
        assert not torch.is_autocast_enabled()


def test_fp16_check_refuses_an_encoder_that_moves_vectors(monkeypatch):
    """The check compares fp32 with autocast on the device: a tower whose output changes
    beyond cosine 0.999 under autocast stays fp32."""
    autocast_on = {"on": False}

    class FakeAutocast:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            autocast_on["on"] = True

        def __exit__(self, *exc):
            autocast_on["on"] = False

    monkeypatch.setattr(torch, "autocast", FakeAutocast)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *_a, **_k: self)  # no GPU here

    def drifting(pixels):
        out = pixels.flatten(1)[:, :16].clone()
        if autocast_on["on"]:
            out[:, 0] += 10.0  # what a tower that overflows in fp16 does to its vectors
        return out

    def steady(pixels):
        return pixels.flatten(1)[:, :16].clone()

    keeps, worst = fp16_keeps_image_vectors(drifting, (8, 8), "cuda")
    assert not keeps and worst < 0.999
    keeps, worst = fp16_keeps_image_vectors(steady, (8, 8), "cuda")
    assert keeps and worst == pytest.approx(1.0)


def test_fp16_check_stays_fp32_when_the_chip_lacks_a_kernel():
    def broken(_pixels):
        raise RuntimeError("no CUDA here")  # also what a missing fp16 kernel raises

    keeps, worst = fp16_keeps_image_vectors(broken, (8, 8), "cuda")
    assert keeps is False and worst != worst  # NaN: nothing was measured
