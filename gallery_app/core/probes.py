"""Scoring texts against photos outside a search: probe queries, image files, library samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gallery_app.core.imaging import DecodeError, decode
from gallery_app.core.library import Library

# Everyday concepts that most personal photo libraries hold a few of: if none of them matches
# any photo, suspect the pipeline before the photos.
DEFAULT_PROBE_QUERIES = (
    "person",
    "dog",
    "cat",
    "car",
    "tree",
    "sky",
    "food",
    "building",
    "beach",
    "flower",
    "snow",
    "city at night",
)
DEFAULT_SAMPLE_SIZE = 20
ENCODE_BATCH = 8


class ImageEncoder(Protocol):
    dim: int

    @property
    def image_spec(self) -> object: ...

    def encode_pixels(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


class PromptEncoder(Protocol):
    def prompt(self, text: str) -> str: ...

    def encode_prompts(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class TextImageEncoder(ImageEncoder, PromptEncoder, Protocol):
    """Both towers, as SiglipEncoder has them."""


@dataclass(frozen=True)
class ImageVectors:
    """Unit vectors of photos, with the paths they belong to (same order)."""

    paths: tuple[str, ...]
    vectors: npt.NDArray[np.float32]  # (n, dim)
    failures: tuple[tuple[str, str], ...] = ()  # (path, reason) of files that could not be read


def encode_files(
    encoder: ImageEncoder, paths: Sequence[str | Path], batch_size: int = ENCODE_BATCH
) -> ImageVectors:
    """Decode and encode image files the way the indexer does; unreadable files are listed."""
    spec = encoder.image_spec
    to_input = getattr(spec, "to_model_input", None)
    model_px = max(getattr(spec, "height", 224), getattr(spec, "width", 224))
    kept: list[str] = []
    pending: list[npt.NDArray[np.float32]] = []
    chunks: list[npt.NDArray[np.float32]] = []
    failures: list[tuple[str, str]] = []
    for path in paths:
        name = str(Path(path).expanduser().resolve())
        try:
            decoded = decode(name, to_input, model_px=model_px)
        except DecodeError as exc:
            failures.append((name, str(exc)))
            continue
        if decoded.model_input is None:
            failures.append((name, "no model input"))
            continue
        kept.append(name)
        pending.append(decoded.model_input)
        if len(pending) == batch_size:  # encode as we go: a big folder's pixels never pile up
            chunks.append(encoder.encode_pixels(np.stack(pending)))
            pending = []
    if pending:
        chunks.append(encoder.encode_pixels(np.stack(pending)))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)
    return ImageVectors(tuple(kept), vectors.astype(np.float32), tuple(failures))


def sample_library(library: Library, count: int | None = DEFAULT_SAMPLE_SIZE) -> ImageVectors:
    """`count` indexed photos spread evenly over the catalog (all when None): the same
    library gives the same sample, so two runs of a report can be compared."""
    ids = sorted(library.catalog.vector_ids())
    if count is not None and len(ids) > count:
        picks = np.linspace(0, len(ids) - 1, count).round().astype(int)
        ids = [ids[i] for i in picks]
    found_ids, vectors = library.catalog.vectors(ids=ids)
    info = library.catalog.images(found_ids.tolist())
    return ImageVectors(tuple(info[int(i)].path for i in found_ids), vectors)


def probe_raw(
    encoder: PromptEncoder, queries: Sequence[str], images: ImageVectors
) -> npt.NDArray[np.float32]:
    """Raw cosines (n_images, n_queries) of each query's prompt, as typed (no expansion)."""
    text = encoder.encode_prompts([encoder.prompt(q) for q in queries])
    return (images.vectors @ text.T).astype(np.float32)
