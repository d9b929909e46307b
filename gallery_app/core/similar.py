"""Find similar: a photo (one of the library's, or any image file) -> the query that
`search.Searcher.search_image` runs, on the image-to-image scale (calibrate.image_calibration)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gallery_app.core.errors import QueryImageError
from gallery_app.core.imaging import DecodeError, decode
from gallery_app.core.library import Library
from gallery_app.core.vectors import vector_store


@dataclass(frozen=True, eq=False)
class ImageQuery:
    """A photo to search by: its unit image vector, what to call it, and the library photos
    that are this very file (left out of the results: each would come first at cosine 1)."""

    label: str  # "like IMG_0001.jpg": the header and the debug panel say this
    path: str
    vector: npt.NDArray[np.float32]
    image_ids: tuple[int, ...] = ()


def label_for(path: str) -> str:
    return f"like {os.path.basename(path) or path}"


def photo_query(library: Library, image_id: int) -> ImageQuery:
    """A library photo, by the vector it was indexed with (no model call)."""
    snapshot = vector_store(library.catalog).snapshot()
    positions = snapshot.positions_of([image_id])
    if len(positions) == 0:
        raise QueryImageError(
            "That photo is no longer in the library (removed or changed since it was shown): "
            "search again, then choose Find similar on it."
        )
    position = int(positions[0])
    vector = np.asarray(snapshot.matrix[snapshot.rows[position]], dtype=np.float32)
    path = str(snapshot.paths[position])
    return ImageQuery(label_for(path), path, vector, (int(image_id),))


def file_query(encoder: Any, library: Library, path: str | os.PathLike[str]) -> ImageQuery:
    """Any image file, in the library or not, encoded as indexing encodes a photo: the same
    safe open (regular files only, the allow-listed decoders, the decode memory budget), the
    same model input. A file that cannot be used raises QueryImageError naming it and why."""
    shown = os.fsdecode(path)
    if not os.path.lexists(path):
        raise QueryImageError(f"query image not found: {shown}: check the path")
    resolved = str(Path(path).resolve())
    # As the indexer prepares a photo (Indexer._decoded_batches): the model's input, at the
    # size the model wants.
    spec = encoder.image_spec
    model_px = max(getattr(spec, "height", 224), getattr(spec, "width", 224))
    try:
        decoded = decode(resolved, spec.to_model_input, model_px=model_px)
    except DecodeError as exc:
        raise QueryImageError(
            f"cannot search by {shown}: {exc}; give a JPEG, PNG, GIF, BMP, WebP or TIFF photo"
        ) from exc
    if decoded.model_input is None:  # decode was given a model input: it always makes one
        raise QueryImageError(f"cannot search by {shown}: no model input could be made")
    vector = encoder.encode_pixels(decoded.model_input[None])[0]
    snapshot = vector_store(library.catalog).snapshot()
    same = tuple(int(i) for i in snapshot.ids[snapshot.paths == resolved])
    return ImageQuery(label_for(shown), resolved, np.asarray(vector, np.float32), same)
