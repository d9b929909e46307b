"""Generated photo-like pixels for tests: importable by name, unlike a conftest (tests/ui has
its own conftest, and `from conftest import` would find whichever was imported first)."""

from __future__ import annotations

import numpy as np


def random_photo(seed: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A smooth, photo-like RGB array (gradients + a blob), different for every seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = rng.uniform(0, 255, 3)
    slope = rng.uniform(-2, 2, (3, 2))
    cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, 20)
    blob = ((x - cx) ** 2 + (y - cy) ** 2 < r**2)[..., None] * rng.uniform(-120, 120, 3)
    channels = [base[c] + slope[c, 0] * x + slope[c, 1] * y for c in range(3)]
    return np.clip(np.stack(channels, axis=-1) + blob, 0, 255).astype(np.uint8)
