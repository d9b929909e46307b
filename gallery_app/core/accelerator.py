"""Where the model runs (CUDA, MPS or the CPU) and whether its image tower may run in fp16."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEVICE_ENV = "GALLERY_APP_DEVICE"
DEVICES = ("cuda", "mps", "cpu")
# fp16 image embeddings must stay this close to fp32 ones (cosine, worst image of the check
# batch), or the image tower stays fp32: a library must not depend on the precision it used.
FP16_MIN_COSINE = 0.999
CHECK_BATCH = 4


def pick_device(explicit: str | None = None) -> str:
    """`explicit`, else $GALLERY_APP_DEVICE, else the best present: cuda > mps > cpu.

    An asked-for device that is not there falls back to the CPU with a warning: a missing GPU
    must not stop the app.
    """
    import torch

    wanted = (explicit or os.environ.get(DEVICE_ENV, "")).strip().lower()
    if wanted:
        if wanted not in DEVICES:
            log.warning("%s=%r is not one of %s; using the CPU", DEVICE_ENV, wanted, DEVICES)
            return "cpu"
        if wanted == "cpu" or _available(torch, wanted):
            return wanted
        log.warning("%s=%s, but no %s device is present; using the CPU", DEVICE_ENV, wanted, wanted)
        return "cpu"
    for device in ("cuda", "mps"):
        if _available(torch, device):
            return device
    return "cpu"


def _available(torch: Any, device: str) -> bool:
    if device == "cuda":
        return bool(torch.cuda.is_available())
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def describe_device(device: str, image_fp16: bool = False) -> str:
    """'CUDA (NVIDIA H100), images fp16', 'CPU' — what the status bar shows."""
    name = device.upper()
    if device == "cuda":
        with contextlib.suppress(Exception):
            import torch

            name = f"CUDA ({torch.cuda.get_device_name(0)})"
    elif device == "mps":
        name = "Apple GPU (MPS)"
    return name + (", images fp16" if image_fp16 else "")


@contextlib.contextmanager
def image_autocast(device: str, enabled: bool) -> Iterator[None]:
    """fp16 autocast around the image tower on an accelerator; a no-op on the CPU."""
    if not enabled or device not in ("cuda", "mps"):
        yield
        return
    import torch

    with torch.autocast(device_type=device, dtype=torch.float16):
        yield


def image_cosines(
    encode: Callable[[Any], Any], pixels: Any, device: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fp32 vectors, fp16-autocast vectors, per-image cosine) of `encode(pixels)`."""
    import torch

    with torch.inference_mode():
        full = encode(pixels).float()
        with image_autocast(device, True):
            half = encode(pixels).float()
    full_np = _unit(full.cpu().numpy())
    half_np = _unit(half.cpu().numpy())
    return full_np, half_np, np.sum(full_np * half_np, axis=1)


def fp16_keeps_image_vectors(
    encode: Callable[[Any], Any], image_size: tuple[int, int], device: str
) -> tuple[bool, float]:
    """Whether fp16 autocast keeps this model's image embeddings within FP16_MIN_COSINE of
    fp32, measured on a fixed batch of noise images on `device`; and the worst cosine.

    Run once at load on the real weights: the answer depends on the checkpoint and the chip.
    """
    if device not in ("cuda", "mps"):
        return False, 1.0
    import torch

    height, width = image_size
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand((CHECK_BATCH, 3, height, width), generator=generator) * 2 - 1
    try:
        _, _, cosines = image_cosines(encode, pixels.to(device), device)
    except Exception as exc:  # an op without an fp16 kernel on this chip: stay fp32
        log.info("fp16 image check failed on %s: %r", device, exc)
        return False, float("nan")
    worst = float(cosines.min())
    return bool(np.isfinite(worst) and worst >= FP16_MIN_COSINE), worst


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
