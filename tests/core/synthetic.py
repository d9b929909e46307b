"""A library of synthetic vectors (no model, no images) and an encoder of seeded text vectors."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gallery_app.core.catalog import ImageRecord
from gallery_app.core.library import Library

DIM = 32


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


class SeededEncoder:
    """Each prompt's vector is a fixed pseudo-random unit vector, near `near` when given."""

    dim = DIM

    def __init__(self, near: np.ndarray | None = None) -> None:
        self.near = near

    def prompt(self, text: str) -> str:
        return f"a photo of {text}."

    def encode_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        rows = []
        for prompt in prompts:
            seed = int.from_bytes(hashlib.sha1(prompt.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=self.dim)
            if self.near is not None:
                vector = vector * 0.2 + self.near * np.sqrt(self.dim)
            rows.append(vector)
        return unit(np.array(rows))


def synthetic_library(data_dir: Path) -> Library:
    return Library(data_dir, "synthetic/test-model", DIM)


def add_vectors(library: Library, vectors: np.ndarray, folder: str = "/photos", start: int = 0):
    """Catalog first, then the index, as the indexer does; returns the new ids."""
    folder_id = library.catalog.add_folder(folder).id
    records = [
        ImageRecord(f"{folder}/img_{start + n:05d}.jpg", folder_id, 1, 1, vector=vector)
        for n, vector in enumerate(np.asarray(vectors, np.float32))
    ]
    _, ids = library.catalog.write_batch(records)
    library.index.add(ids, vectors)
    return ids


def clustered(rng: np.random.Generator, n: int, clusters: int = 8) -> np.ndarray:
    centres = unit(rng.normal(size=(clusters, DIM)))
    picks = rng.integers(0, clusters, n)
    return unit(centres[picks] + 0.35 * unit(rng.normal(size=(n, DIM))))
