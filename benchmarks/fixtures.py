"""Benchmark inputs: a SigLIP-base-shaped checkpoint (random weights, real vocab) and photos.

Speed does not depend on weight values, so random weights in the real architecture
(`SiglipConfig()` defaults: ViT-B/16 at 224 px, 12-layer text tower, 64 tokens) time the same
as the released checkpoint. Both are built once and cached under ~/.cache/gallery_app_bench.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

# One recipe for SigLIP's SentencePiece vocab, shared with the tests' tiny model.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.tiny_model import train_vocab

CACHE_ENV = "GALLERY_APP_BENCH_CACHE"
MODEL_VERSION = 1
PHOTO_VERSION = 2
VOCAB_SIZE = 4000

PHOTO_SIZES = {
    # A 12 MP camera/phone photo and a phone-sized share (what messengers and screenshots give).
    "12mp": (4000, 3000),
    "phone": (1600, 1200),
}


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gallery_app_bench"


def _corpus(lines: int = 20000, seed: int = 0) -> str:
    """Caption-like text from the expansion dictionary's words, so the pieces look like queries."""
    from gallery_app.core.expansion import builtin_dictionary

    words: list[str] = []
    for entry in builtin_dictionary().entries.values():
        words += list(entry.members) + [w for w, _ in entry.broader]
    fillers = ["on the", "in the", "at", "with a", "near the", "under a", "and", "of the"]
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        parts = ["a photo of"]
        for _ in range(rng.randint(1, 4)):
            parts += [rng.choice(words), rng.choice(fillers)]
        parts.append(rng.choice(words))
        out.append(" ".join(parts) + ".")
    return "\n".join(out) + "\n"


def build_base_model(folder: Path) -> Path:
    """SigLIP-base (SiglipConfig defaults) with random weights and a trained SentencePiece vocab."""
    import torch
    from transformers import (
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipProcessor,
        SiglipTokenizer,
    )

    tmp = Path(tempfile.mkdtemp(prefix="siglip-base-", dir=folder.parent))
    try:
        vocab = train_vocab(tmp, VOCAB_SIZE, _corpus())
        config = SiglipConfig()
        tokenizer = SiglipTokenizer(
            vocab_file=str(vocab),
            model_max_length=config.text_config.max_position_embeddings,
        )
        processor = SiglipProcessor(image_processor=SiglipImageProcessor(), tokenizer=tokenizer)
        out = tmp / "model"
        processor.save_pretrained(out)
        torch.manual_seed(0)
        SiglipModel(config).eval().save_pretrained(out, safe_serialization=True)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(out, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def base_model_dir() -> Path:
    folder = cache_dir() / f"siglip-base-random-v{MODEL_VERSION}"
    if not (folder / "model.safetensors").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        build_base_model(folder)
    return folder


def photo_pixels(seed: int, size: tuple[int, int]) -> np.ndarray:
    """Smooth gradients, blobs and fine noise: compresses like a photo, not like a flat card."""
    rng = np.random.default_rng(seed)
    width, height = size
    small_h, small_w = max(height // 16, 2), max(width // 16, 2)
    yy, xx = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    base = rng.uniform(40, 215, 3)
    slope = rng.uniform(-1.5, 1.5, (3, 2)) * 16 / max(small_w, small_h) * 10
    img = np.stack([base[c] + slope[c, 0] * xx + slope[c, 1] * yy for c in range(3)], -1)
    for _ in range(12):
        cx, cy = rng.uniform(0, small_w), rng.uniform(0, small_h)
        radius = rng.uniform(2, max(small_w, small_h) / 4)
        mask = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))[..., None]
        img += mask * rng.uniform(-90, 90, 3)
    from PIL import Image

    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    big = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    # Sensor-like grain, mostly luma: files of ~1 byte a pixel at quality 90, like a phone's.
    noise = rng.normal(0, 9, (height, width, 1)) + rng.normal(0, 3, (height, width, 3))
    return np.clip(big + noise.astype(np.int16), 0, 255).astype(np.uint8)


def photo_folder(kind: str, count: int) -> Path:
    """count JPEGs (quality 90, like a camera) of PHOTO_SIZES[kind], cached on disk."""
    from PIL import Image

    folder = cache_dir() / f"photos-v{PHOTO_VERSION}" / kind
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        path = folder / f"IMG_{seed:05d}.jpg"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            Image.fromarray(photo_pixels(seed, PHOTO_SIZES[kind])).save(tmp, "JPEG", quality=90)
            os.replace(tmp, path)
    return folder


def photo_subset(kind: str, count: int, into: Path) -> Path:
    """A fresh folder with the first count photos hard-linked (indexing needs a clean folder)."""
    source = photo_folder(kind, count)
    into.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        name = f"IMG_{seed:05d}.jpg"
        target = into / name
        if not target.exists():
            try:
                os.link(source / name, target)
            except OSError:
                shutil.copy2(source / name, target)
    return into


def embedding_like_vectors(
    count: int, queries: int, dim: int = 768, scenes: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(image vectors, text query vectors) shaped like SigLIP's, unit length, float32.

    Image embeddings are anisotropic (a shared mean direction) and come in bursts of similar
    shots (scenes); text queries sit elsewhere on the sphere (text-image cosines ~0.2 for a
    match, ~0 otherwise). That makes queries out of the images' distribution, which is the
    hard case for a graph index and the one this app has.
    """
    rng = np.random.default_rng(seed)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    image_mean = unit(rng.standard_normal(dim))
    text_mean = unit(rng.standard_normal(dim))
    centers = unit(rng.standard_normal((scenes, dim)))
    images = np.empty((count, dim), np.float32)
    for first in range(0, count, 10000):  # in chunks: float64 noise for 100k x 768 is 600 MB
        n = min(10000, count - first)
        noise = rng.standard_normal((n, dim)).astype(np.float32) * (0.6 / np.sqrt(dim))
        images[first : first + n] = unit(
            0.6 * image_mean + 0.5 * centers[rng.integers(0, scenes, n)] + noise
        )
    noise = rng.standard_normal((queries, dim)).astype(np.float32) * (0.5 / np.sqrt(dim))
    texts = unit(0.8 * text_mean + 0.3 * centers[rng.integers(0, scenes, queries)] + noise)
    return images, texts
