"""Run in a subprocess by the crash tests: index a folder, then hang inside a chosen batch.

    python index_child.py MODEL DATA FOLDER BATCH_SIZE HANG_AT_BATCH MARKER SAVE_INTERVAL_S

Batches before HANG_AT_BATCH are encoded and committed normally; batch HANG_AT_BATCH writes
MARKER and blocks, so the parent can SIGKILL it with that batch in flight.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from gallery_app.core.embeddings import SiglipEncoder
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library


class HangingEncoder:
    def __init__(self, inner: SiglipEncoder, hang_at: int, marker: Path) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.image_spec = inner.image_spec
        self.hang_at = hang_at
        self.marker = marker
        self.batches = 0

    def encode_pixels(self, pixels):
        if self.batches == self.hang_at:
            self.marker.write_text(str(self.batches), encoding="utf-8")
            threading.Event().wait()  # until SIGKILL
        self.batches += 1
        return self.inner.encode_pixels(pixels)


def main() -> None:
    model, data, folder, batch, hang_at, marker, save_interval = sys.argv[1:8]
    encoder = SiglipEncoder.load(model, device="cpu")
    library = Library(Path(data), encoder.model_id, encoder.dim)
    hanging = HangingEncoder(encoder, int(hang_at), Path(marker))
    Indexer(library, hanging, batch_size=int(batch), save_interval_s=float(save_interval)).index(
        [folder]
    )


if __name__ == "__main__":
    main()
